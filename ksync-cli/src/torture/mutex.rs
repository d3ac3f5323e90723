//! Torture types for the mutex area (registered in `super::all`).

use super::TortureType;

pub fn types() -> Vec<TortureType> {
    Vec::new()
}
