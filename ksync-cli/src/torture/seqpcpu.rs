//! Torture types for the seqpcpu area (registered in `super::all`).

use super::TortureType;

pub fn types() -> Vec<TortureType> {
    Vec::new()
}
