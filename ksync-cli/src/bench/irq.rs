//! Benchmark groups for the irq area (registered in `super::all`).

use super::Group;

pub fn groups() -> Vec<Group> {
    Vec::new()
}
