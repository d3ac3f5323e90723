//! Benchmark group: spinlocks and rwlocks against spin, parking_lot and std.

use super::Group;

pub fn groups() -> Vec<Group> {
    Vec::new()
}
