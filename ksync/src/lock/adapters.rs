//! `lock_api` 0.4 adapters for the sleeping locks (feature `lock_api`), as the
//! spin algorithms have them: `lock_api::Mutex<ksync::mutex::RawMutex, T>` and
//! `lock_api::RwLock<ksync::rwsem::RawRwSemaphore, T>` work, for code written
//! against parking_lot's API.
//!
//! Lockdep sees them as it sees ksync's own guards: the acquisition is recorded
//! before the wait and the release before the unlock. lock_api builds every
//! lock from one constant (`INIT`), so all locks of one adapter type share one
//! lockdep class (the constant's); nesting two of them is reported as
//! recursive locking. Use ksync's own [`Mutex`](crate::mutex::Mutex) /
//! [`RwSemaphore`](crate::rwsem::RwSemaphore) (a class per creation site, or
//! `with_class`) where that matters.
//!
//! ```
//! use ksync::mutex::RawMutex;
//! use ksync::rwsem::RawRwSemaphore;
//!
//! let m: lock_api::Mutex<RawMutex, u32> = lock_api::Mutex::new(1);
//! *m.lock() += 1;
//! assert_eq!(*m.lock(), 2);
//!
//! let rw: lock_api::RwLock<RawRwSemaphore, Vec<u8>> = lock_api::RwLock::new(Vec::new());
//! rw.write().push(7);
//! assert_eq!(rw.read().len(), 1);
//! assert!(rw.try_write().is_some());
//! ```

use super::{Backend, SharedBackend};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::mutex::RawMutex;
use crate::rwsem::RawRwSemaphore;

// SAFETY: `RawMutex` is a mutual-exclusion lock whose lock is Acquire and
// unlock Release (its `Backend` contract); its own `lock`/`try_lock`/`unlock`
// record lockdep, and the unlock checks the owner.
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawMutex::new();
    // The mutex records its owner's tid, and lockdep's held locks are per thread.
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        RawMutex::lock(self)
    }

    #[inline]
    fn try_lock(&self) -> bool {
        RawMutex::try_lock(self)
    }

    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: lock_api's contract: the lock is held in this context.
        unsafe { RawMutex::unlock(self) }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        RawMutex::is_locked(self)
    }
}

/// The lockdep map of a raw rw-semaphore (always present).
#[inline(always)]
fn map(s: &RawRwSemaphore) -> &LockdepMap {
    s.dep_map().expect("a rw-semaphore has a lockdep map")
}

// SAFETY: `RawRwSemaphore` is a reader-writer lock (its `Backend` and
// `SharedBackend` contracts: no writer beside readers or another writer,
// Acquire acquisitions pairing with Release releases).
unsafe impl lock_api::RawRwLock for RawRwSemaphore {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawRwSemaphore::with_map(LockdepMap::new_sleeping("rw_semaphore"));
    // Lockdep's held locks are per thread.
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock_shared(&self) {
        // Before the wait, as the generic lock's acquire path records it.
        lockdep::acquire(map(self), AcquireKind::Read, false, 0);
        SharedBackend::lock_shared(self);
        lockdep::lock_acquired(map(self));
    }

    #[inline]
    fn try_lock_shared(&self) -> bool {
        let ok = SharedBackend::try_lock_shared(self);
        if ok {
            lockdep::acquire(map(self), AcquireKind::Read, true, 0);
            lockdep::lock_acquired(map(self));
        }
        ok
    }

    #[inline]
    unsafe fn unlock_shared(&self) {
        lockdep::release(map(self));
        // SAFETY: lock_api's contract: a shared lock is held in this context.
        unsafe { SharedBackend::unlock_shared(self) }
    }

    #[inline]
    fn lock_exclusive(&self) {
        lockdep::acquire(map(self), AcquireKind::Exclusive, false, 0);
        Backend::lock(self);
        lockdep::lock_acquired(map(self));
    }

    #[inline]
    fn try_lock_exclusive(&self) -> bool {
        let ok = Backend::try_lock(self);
        if ok {
            lockdep::acquire(map(self), AcquireKind::Exclusive, true, 0);
            lockdep::lock_acquired(map(self));
        }
        ok
    }

    #[inline]
    unsafe fn unlock_exclusive(&self) {
        lockdep::release(map(self));
        // SAFETY: lock_api's contract: the exclusive lock is held in this context.
        unsafe { Backend::unlock(self) }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        Backend::is_locked(self)
    }

    #[inline]
    fn is_locked_exclusive(&self) -> bool {
        SharedBackend::is_write_locked(self)
    }
}
