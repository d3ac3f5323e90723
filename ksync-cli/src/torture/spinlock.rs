//! Torture types for spinlocks and rwlocks.

use super::TortureType;

pub fn types() -> Vec<TortureType> {
    Vec::new()
}
