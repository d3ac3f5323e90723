//! The Big Kernel Lock: `lock_kernel`, `unlock_kernel`, `kernel_locked`.
//!
//! The only lock that may be held across a sleep: [`crate::sched::sleep`] releases
//! it before blocking and retakes it, at the same depth, afterwards.

/// Releases the BKL if the current task holds it, returning the depth to restore
/// (0 if not held). Called by [`crate::sched::sleep`] before it blocks.
#[inline]
pub(crate) fn release_for_sleep() -> u32 {
    0
}

/// Retakes the BKL at `depth` after a sleep (nothing for 0).
#[inline]
pub(crate) fn reacquire_after_sleep(depth: u32) {
    debug_assert_eq!(depth, 0);
}
