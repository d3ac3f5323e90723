//! Benchmark groups for the seqpcpu area (registered in `super::all`).

use super::Group;

pub fn groups() -> Vec<Group> {
    Vec::new()
}
