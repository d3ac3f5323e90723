//! Benchmark groups for the sleeping area (registered in `super::all`).

use super::Group;

pub fn groups() -> Vec<Group> {
    Vec::new()
}
