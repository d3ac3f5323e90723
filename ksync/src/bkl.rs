//! The Big Kernel Lock: `lock_kernel`, `unlock_kernel`, `kernel_locked`.
//!
//! One global, recursive lock: a task may take it again while holding it (a
//! per-task depth, the kernel's `current->lock_depth`). It is the only lock that
//! may be held across a sleep: [`crate::sched::sleep`] releases it before
//! blocking and retakes it, at the same depth, when the task runs again — so a
//! BKL holder that sleeps in [`Semaphore::down`](crate::semaphore::Semaphore::down)
//! lets other tasks take the BKL meanwhile.
//!
//! ```
//! use ksync::bkl;
//! bkl::lock_kernel();
//! bkl::lock_kernel(); // recursive
//! assert!(bkl::kernel_locked());
//! bkl::unlock_kernel();
//! bkl::unlock_kernel();
//! assert!(!bkl::kernel_locked());
//! {
//!     let _g = bkl::BklGuard::new();
//!     assert!(bkl::kernel_locked());
//! }
//! ```
//!
//! # Implementation details
//!
//! The lock is ksync's one internal lock, `rawlock::RawLock` (std's
//! three-state futex mutex: free, held, held with a sleeper on the futex).
//!
//! The holder's depth lives in a thread-local: only the holder reads or writes
//! its own. Taking it polls for a bounded time (a spinning lock, as the
//! kernel's was), then sleeps on the futex — the holder may itself be asleep
//! holding nothing but its depth, or preempted, so spinning forever would be wrong
//! in user space. Without the holder's task on a CPU the futex slow path costs
//! nothing while waiting.
//!
//! # Lockdep
//!
//! The BKL has one lockdep map, `kernel_lock`, of the default wait type — not
//! spinning: it is legal to sleep holding it. Its recursion is by design, so
//! lockdep sees only the outermost level: [`lock_kernel`] calls `acquire`
//! (before waiting) when the depth goes 0 → 1 and [`unlock_kernel`] calls
//! `release` when it goes back to 0; nested levels are invisible to it.
//! Across a sleep the map is released with the lock and, when the task runs
//! again, re-acquired as a trylock (no new dependency): the task retakes the
//! BKL holding at most sleeping locks (a spinning one would have been
//! reported by `might_sleep`), and any BKL holder that waits for one of those
//! sleeps and so drops the BKL — the retake cannot close a deadlock.

use crate::lockdep::{self, AcquireKind, LockdepMap};
#[cfg(not(loom))]
use crate::rawlock::RawLock;
use core::cell::Cell;
use core::marker::PhantomData;

/// The lock itself: ksync's one internal lock (`rawlock`), std's three-state
/// futex mutex. Under loom it does not exist (loom's atomics cannot sit in a
/// static); no model takes the BKL, and `release_for_sleep` reports depth 0.
#[cfg(not(loom))]
static BKL: RawLock = RawLock::new();

/// The BKL's lockdep map: one class, not spinning (sleeping while holding it
/// is legal).
static BKL_MAP: LockdepMap = LockdepMap::new("kernel_lock");

thread_local! {
    /// This task's BKL depth (`current->lock_depth + 1`).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

#[inline]
fn raw_lock() {
    #[cfg(not(loom))]
    BKL.lock();
    #[cfg(loom)]
    unreachable!("the loom models never take the Big Kernel Lock");
}

#[inline]
fn raw_unlock() {
    // SAFETY: called only when this task's depth drops from 1 to 0 (or for a
    // sleep), so it holds the lock.
    #[cfg(not(loom))]
    unsafe {
        BKL.unlock()
    };
    #[cfg(loom)]
    unreachable!("the loom models never take the Big Kernel Lock");
}

/// Takes the Big Kernel Lock, or deepens this task's hold on it (`lock_kernel`).
#[inline]
pub fn lock_kernel() {
    let d = DEPTH.with(Cell::get);
    if d == 0 {
        // Outermost level only (the recursion is legal); before waiting, so
        // an inversion is reported before it hangs.
        lockdep::acquire(&BKL_MAP, AcquireKind::Exclusive, false, 0);
        raw_lock();
    }
    DEPTH.with(|c| c.set(d + 1));
}

/// Undoes one [`lock_kernel`] (`unlock_kernel`); the lock is released when the
/// depth reaches zero.
///
/// # Panics
/// If the current task does not hold the BKL.
#[inline]
pub fn unlock_kernel() {
    let d = DEPTH.with(Cell::get);
    assert!(
        d > 0,
        "unlock_kernel() called by a task that does not hold the Big Kernel Lock"
    );
    DEPTH.with(|c| c.set(d - 1));
    if d == 1 {
        lockdep::release(&BKL_MAP);
        raw_unlock();
    }
}

/// Whether the current task holds the BKL (`kernel_locked`).
#[inline]
pub fn kernel_locked() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// This task's BKL depth (0 when not held).
#[inline]
pub fn depth() -> u32 {
    DEPTH.with(Cell::get)
}

/// Holds the BKL (one level of it) until dropped. `!Send`: the depth belongs to
/// the task that took it.
///
/// ```compile_fail
/// let g = ksync::bkl::BklGuard::new();
/// std::thread::spawn(move || drop(g));
/// ```
#[must_use = "dropping the guard releases the BKL at once"]
pub struct BklGuard {
    _not_send: PhantomData<*mut ()>,
}

impl BklGuard {
    /// Takes the BKL ([`lock_kernel`]).
    #[inline]
    #[allow(clippy::new_without_default)]
    pub fn new() -> BklGuard {
        lock_kernel();
        BklGuard {
            _not_send: PhantomData,
        }
    }
}

impl Drop for BklGuard {
    #[inline]
    fn drop(&mut self) {
        unlock_kernel();
    }
}

impl core::fmt::Debug for BklGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BklGuard").field("depth", &depth()).finish()
    }
}

/// Releases the BKL if the current task holds it, returning the depth to restore
/// (0 if not held). Called by [`crate::sched::sleep`] before it blocks.
#[inline]
pub(crate) fn release_for_sleep() -> u32 {
    #[cfg(loom)]
    {
        0
    }
    #[cfg(not(loom))]
    {
        let d = DEPTH.with(Cell::get);
        if d > 0 {
            DEPTH.with(|c| c.set(0));
            lockdep::release(&BKL_MAP);
            raw_unlock();
        }
        d
    }
}

/// Retakes the BKL at `depth` after a sleep (nothing for 0).
#[inline]
pub(crate) fn reacquire_after_sleep(depth: u32) {
    if depth > 0 {
        raw_lock();
        // As a trylock: retaking the BKL after a sleep adds no dependency
        // (module docs, "Lockdep").
        lockdep::acquire(&BKL_MAP, AcquireKind::Exclusive, true, 0);
        DEPTH.with(|c| c.set(depth));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;

    #[test]
    fn recursive_depth() {
        std::thread::spawn(|| {
            assert!(!kernel_locked());
            lock_kernel();
            lock_kernel();
            assert_eq!(depth(), 2);
            unlock_kernel();
            assert!(kernel_locked());
            unlock_kernel();
            assert!(!kernel_locked());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn unlock_without_lock_panics() {
        let r = std::thread::spawn(unlock_kernel).join();
        let msg = r.unwrap_err();
        let msg = msg
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| msg.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("does not hold the Big Kernel Lock"), "{msg}");
    }

    #[test]
    fn excludes_other_tasks() {
        use std::sync::atomic::AtomicUsize;
        static IN: AtomicUsize = AtomicUsize::new(0);
        let hs: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..2000 {
                        let _g = BklGuard::new();
                        let _g2 = BklGuard::new();
                        assert_eq!(IN.fetch_add(1, Ordering::Relaxed), 0);
                        core::hint::spin_loop();
                        IN.fetch_sub(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
}
