//! Shared by the lockdep benches: a test-and-set lock that can be taken with or
//! without the lockdep hooks, so one binary compares the two.

use ksync::lockdep::{self, AcquireKind, LockdepMap};
use std::sync::atomic::{AtomicBool, Ordering};

/// A test-and-set spinlock with a lockdep map, calling the hooks as ksync's locks do.
pub struct BitLock {
    locked: AtomicBool,
    map: LockdepMap,
}

impl BitLock {
    /// An unlocked lock whose lockdep class is the caller's site.
    #[track_caller]
    pub const fn new(name: &'static str) -> Self {
        BitLock {
            locked: AtomicBool::new(false),
            map: LockdepMap::new_spinning(name),
        }
    }

    /// Takes the lock without telling lockdep.
    #[inline]
    pub fn lock_bare(&self) {
        // Acquire: pairs with the Release store in `unlock_bare`.
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    /// Releases the lock without telling lockdep.
    #[inline]
    pub fn unlock_bare(&self) {
        // Release: pairs with the Acquire CAS in `lock_bare`.
        self.locked.store(false, Ordering::Release);
    }

    /// Takes the lock through the hooks (acquire before waiting, as ksync's locks).
    #[inline]
    pub fn lock(&self) {
        lockdep::acquire(&self.map, AcquireKind::Exclusive, false, 0);
        self.lock_bare();
    }

    /// Releases the lock, then tells lockdep.
    #[inline]
    pub fn unlock(&self) {
        self.unlock_bare();
        lockdep::release(&self.map);
    }
}
