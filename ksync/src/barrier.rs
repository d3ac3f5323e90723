//! Barriers (in progress)
