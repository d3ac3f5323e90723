//! Test-and-set and test-and-test-and-set locks: the simplest spinlocks, kept as
//! baselines (the bench shows what their cache-line bouncing costs).
//!
//! | `locked` | meaning  | transitions                                   |
//! |----------|----------|-----------------------------------------------|
//! | 0        | unlocked | → 1 by `lock` (swap or CAS)                   |
//! | 1        | locked   | → 0 by `unlock` (release store, holder only)  |
//!
//! [`Tas`] hammers the word with `swap` while it waits, so every waiter steals
//! the line from the holder on every try; [`Ttas`] waits with plain loads
//! (the line stays shared in every waiter's cache until the release store
//! invalidates it) and attempts the CAS only when it can succeed. Neither is
//! fair and neither sleeps; both back off with [`crate::Backoff`] and yield once
//! the backoff is spent, so a preempted holder gets the CPU back.

use super::raw::{RawSpin, Spin};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

/// Test-and-set spinlock: `swap(1)` until it returns 0.
#[derive(Debug)]
pub struct Tas {
    locked: AtomicU32,
}

/// Test-and-test-and-set spinlock: spin on loads, CAS when the lock looks free.
#[derive(Debug)]
pub struct Ttas {
    locked: AtomicU32,
}

// SAFETY: `locked` goes 0→1 only by an atomic RMW that saw 0 (one winner), and
// back to 0 only by the holder; Acquire on the RMW pairs with the Release store.
unsafe impl RawSpin for Tas {
    #[cfg(not(loom))]
    const INIT: Self = Tas {
        locked: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        Tas {
            locked: AtomicU32::new(0),
        }
    }
    const NAME: &'static str = "tas";

    #[inline]
    fn lock(&self) {
        // Acquire: pairs with the Release store in `unlock`.
        if self.locked.swap(1, Ordering::Acquire) != 0 {
            self.lock_slow();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        // Acquire: pairs with the Release store in `unlock`.
        self.locked.swap(1, Ordering::Acquire) == 0
    }

    #[inline]
    unsafe fn unlock(&self) {
        // Release: pairs with the Acquire swap of the next holder.
        self.locked.store(0, Ordering::Release);
    }

    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed) != 0
    }

    fn is_contended(&self) -> bool {
        false
    }
}

impl Tas {
    #[cold]
    fn lock_slow(&self) {
        let spin = Spin::new();
        loop {
            if spin.is_completed() {
                crate::arch::yield_now();
            } else {
                spin.snooze();
            }
            // Acquire: as in `lock`.
            if self.locked.swap(1, Ordering::Acquire) == 0 {
                return;
            }
        }
    }
}

// SAFETY: as for `Tas`: one CAS winner per 0→1 transition, Acquire/Release pair.
unsafe impl RawSpin for Ttas {
    #[cfg(not(loom))]
    const INIT: Self = Ttas {
        locked: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        Ttas {
            locked: AtomicU32::new(0),
        }
    }
    const NAME: &'static str = "ttas";

    #[inline]
    fn lock(&self) {
        // Acquire: pairs with the Release store in `unlock`.
        if self
            .locked
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.locked.load(Ordering::Relaxed) == 0
            && self
                .locked
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    #[inline]
    unsafe fn unlock(&self) {
        // Release: pairs with the Acquire CAS of the next holder.
        self.locked.store(0, Ordering::Release);
    }

    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed) != 0
    }

    fn is_contended(&self) -> bool {
        false
    }
}

impl Ttas {
    #[cold]
    fn lock_slow(&self) {
        let spin = Spin::new();
        loop {
            // Spin on loads only; Relaxed because the CAS below acquires.
            while self.locked.load(Ordering::Relaxed) != 0 {
                if spin.is_completed() {
                    crate::arch::yield_now();
                } else {
                    spin.snooze();
                }
            }
            if self
                .locked
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            spin.spin();
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    // Test-and-set has no loom model: its waiters spin by writing (`swap`),
    // and loom cannot bound such a loop ("exceeded maximum number of
    // branches"). Its exclusion argument is the RMW-that-saw-0 one TTAS's model
    // checks; the stress tests cover it.

    #[test]
    fn loom_ttas_mutual_exclusion() {
        super::super::loom_support::mutual_exclusion::<Ttas>(2);
    }
}
