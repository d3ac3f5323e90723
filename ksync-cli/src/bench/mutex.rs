//! Benchmark groups for the mutex area (registered in `super::all`).

use super::Group;

pub fn groups() -> Vec<Group> {
    Vec::new()
}
