//! [`RawLock`]: the small internal lock of ksync's own data structures: a wait
//! list's links, the Big Kernel Lock and the per-CPU `local_lock_t`. Built on
//! `arch` and `backoff` only, so that every layer above them may use it. (The
//! irq layer's timer-base and ksoftirqd-queue lock, `irq::sync`, stays a
//! test-and-test-and-set flag of `core` atomics: it must be a `const` static in
//! the loom build too, where this lock's loom atomics cannot be.)
//!
//! # Implementation details
//!
//! std's three-state futex mutex (library/std/src/sys/sync/mutex/futex.rs):
//!
//! | value       | meaning                          | next                                   |
//! |-------------|----------------------------------|----------------------------------------|
//! | `UNLOCKED`  | free                             | CAS to `LOCKED`                        |
//! | `LOCKED`    | held, nobody sleeps on it        | unlock stores `UNLOCKED`               |
//! | `CONTENDED` | held, a locker may sleep on it   | unlock stores `UNLOCKED` and futex-wakes one |
//!
//! A contended locker polls the word with [`Spin`] (spin, then yield) for a
//! bounded number of rounds, then swaps in `CONTENDED` and sleeps on the word.
//! The futex wait here is not a `sched::sleep`: holding a `RawLock` is like
//! holding a raw spinlock (its critical sections are a few pointer updates),
//! and waiting for one is the spinlocks' pv slow path, which DESIGN.md lists
//! among the futex waits outside the sleep path. It knows nothing of irqs: a
//! user that an irq handler may re-enter on the same thread disables them
//! around it (see `sched::waitlist`'s irq-safe form).

use crate::arch::futex;
#[cfg(not(loom))]
use crate::backoff::Spin;
use crate::loom::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A futex mutex without data, guard or lockdep: one `u32`, all-zero unlocked.
/// Fast path: one CAS to lock, one swap to unlock.
pub(crate) struct RawLock {
    /// `UNLOCKED`, `LOCKED` or `CONTENDED` (module docs).
    state: AtomicU32,
}

impl RawLock {
    /// An unlocked lock.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        RawLock {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    /// An unlocked lock (loom build: loom's atomics have no `const fn new`).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        RawLock {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    /// Makes the lock unlocked again, whoever held it: in the child of a
    /// fork, for a lock whose holder was another thread of the parent.
    ///
    /// # Safety
    /// The caller is the process's only thread, and what the lock protects is
    /// consistent without the holder's critical section (or is reset too).
    #[cfg(not(loom))]
    pub(crate) unsafe fn reinit_after_fork(&self) {
        self.state.store(UNLOCKED, Ordering::Relaxed);
    }

    /// Takes the lock, polling and then sleeping on its word while it is held.
    #[inline]
    pub(crate) fn lock(&self) {
        // Acquire pairs with the Release swap in `unlock`: the previous holder's
        // critical section happens before ours.
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    /// Takes the lock if it is free; never waits.
    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        // Acquire as in `lock`.
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether some thread holds the lock (a snapshot).
    #[inline]
    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }

    #[cold]
    fn lock_contended(&self) {
        #[cfg(not(loom))]
        {
            let spin = Spin::new();
            while !spin.is_completed() {
                // Acquire as in `lock`; CAS only when the load says it can succeed.
                if self.state.load(Ordering::Relaxed) == UNLOCKED
                    && self
                        .state
                        .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return;
                }
                spin.snooze();
            }
        }
        // Under loom the poll is skipped: the sleep below is the path the
        // models must reach, and a poll round would only add states.
        // Acquire as in `lock`. Once we swap in CONTENDED we own the lock if it was
        // free, and whoever holds it otherwise will wake us.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            futex::wait(&self.state, CONTENDED, None);
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The lock is held (by the caller: nothing else releases it).
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // Release pairs with the Acquire in `lock`. The wake after the swap only
        // passes the word's address to the kernel (as std's Mutex does): it reads
        // no memory, so it is harmless if the lock's owner has freed it meanwhile.
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex::wake_one(&self.state);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_and_wakes_contended_lockers() {
        // A plain counter under the lock: lost updates would show as a short count,
        // and a locker left asleep on CONTENDED would hang the join.
        struct Shared(RawLock, core::cell::UnsafeCell<u64>);
        // SAFETY: the counter is only touched with the lock held.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared(RawLock::new(), core::cell::UnsafeCell::new(0)));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        s.0.lock();
                        // SAFETY: lock held.
                        unsafe { *s.1.get() += 1 };
                        // SAFETY: locked just above by this thread.
                        unsafe { s.0.unlock() };
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // SAFETY: every thread has finished.
        assert_eq!(unsafe { *s.1.get() }, 80_000);
        assert_eq!(s.0.state.load(Ordering::Relaxed), UNLOCKED);
    }

    #[test]
    fn try_lock_takes_only_a_free_lock() {
        let l = RawLock::new();
        assert!(!l.is_locked());
        assert!(l.try_lock());
        assert!(l.is_locked());
        assert!(!l.try_lock(), "a held lock must refuse");
        // SAFETY: taken by the try_lock above.
        unsafe { l.unlock() };
        assert!(!l.is_locked() && l.try_lock());
        // SAFETY: taken just above.
        unsafe { l.unlock() };
    }
}
