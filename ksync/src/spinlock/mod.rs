//! Spinlocks (`spinlock_t`, `raw_spinlock_t`) and reader-writer spinlocks
//! (`rwlock_t`).
//!
//! | kernel                               | ksync                                   |
//! |--------------------------------------|-----------------------------------------|
//! | `spinlock_t`, `DEFINE_SPINLOCK`      | [`SpinLock<T>`], [`SpinLock::new`] (queued lock) |
//! | `raw_spinlock_t`                     | [`RawSpinLock<T>`] (queued, own type)   |
//! | `spin_lock` / `spin_unlock`          | [`Lock::lock`](crate::lock::Lock::lock) / drop the [`Guard`](crate::lock::Guard) |
//! | `spin_lock_irq`, `_irqsave`, `_bh`   | [`lock_irq`](crate::lock::Lock::lock_irq), [`lock_irqsave`](crate::lock::Lock::lock_irqsave), [`lock_bh`](crate::lock::Lock::lock_bh) |
//! | `spin_trylock` (+ `_irq`, `_irqsave`, `_bh`) | [`try_lock`](crate::lock::Lock::try_lock) and variants |
//! | `rwlock_t`, `DEFINE_RWLOCK`          | [`RwLock<T>`] (queued, fair), [`ReaderPrefRwLock<T>`] (classic) |
//! | `read_lock` / `write_lock` (+ variants) | [`read`](crate::lock::Lock::read) / [`write`](crate::lock::Lock::write) … |
//!
//! Every spinlock is the one generic [`crate::lock::Lock<T, B>`] and its one
//! [`Guard`](crate::lock::Guard): [`SpinBackend<R>`] over any raw algorithm `R`
//! of [`raw`] (`spinlock::Lock<T, R>` names that), [`RwSpinBackend<R>`] for the
//! rwlocks (with the shared [`ReadGuard`](crate::lock::ReadGuard)). The
//! `_irq`/`_irqsave`/`_bh` variants are the guard's state type
//! ([`IrqOff`](crate::lock::IrqOff), [`IrqSave`](crate::lock::IrqSave),
//! [`BhOff`](crate::lock::BhOff)), not copies of the guard.
//!
//! ## Semantics
//! A holder may not sleep. The preempt count is raised from before the wait
//! until the unlock (user space cannot stop the OS scheduler; the count marks
//! atomic context for the debugging checks). The `_irqsave` guard carries the
//! saved [`IrqFlags`](crate::ctx::IrqFlags) and restores them on drop. No
//! poisoning: a panic unwinding through a guard releases the lock.
//!
//! ## The algorithms ([`raw`])
//! - [`raw::Queued`]: the kernel's queued spinlock with the paravirtual slow path —
//!   a waiter spins a bounded time and then sleeps on a futex until kicked, so a
//!   holder preempted by the OS does not make its waiters burn their time slices.
//!   Uncontended lock+unlock is one CAS and one release store; the rare sleeper
//!   pays for the store→load ordering with `membarrier` (the asymmetric fence
//!   pair of [`crate::arch::membarrier`]).
//! - [`raw::Ticket`], [`raw::Mcs`], [`raw::Tas`], [`raw::Ttas`]: the classic
//!   algorithms, usable as backends (`Lock<T, raw::Mcs>`) and compared side by
//!   side in `ksync bench --group spinlock`.
//! - [`raw::QueuedRw`] (the kernel's `qrwlock`, fair) and [`raw::ReaderPref`]
//!   (the classic reader-preferring word) for the rwlocks.
//!
//! With the `lock_api` feature every raw lock implements `lock_api::RawMutex` or
//! `lock_api::RawRwLock` of **lock_api 0.4**, the version parking_lot 0.12 and
//! the rest of the ecosystem build on, so `lock_api::Mutex<raw::Queued, T>` works
//! (without ksync's preempt count and lockdep hooks, which live in
//! [`crate::lock::Lock`]).
//!
//! ## Cache lines
//! A raw spinlock is 4 to 16 bytes (the queued lock under [`SpinLock`] is 16;
//! the rwlocks' words and writer queue, 24 for `QueuedRw`, 32 for `ReaderPref`).
//! Related hot locks (one per bucket, per CPU, per queue) placed next to each
//! other share a cache line, and every acquisition of one steals the line
//! from the users of the others (false sharing). Use
//! [`PaddedSpinLock<T>`] (a [`CachePadded`](crate::arch::CachePadded) lock, 128
//! bytes) for such arrays, or pad the structure that holds the lock.
//!
//! ```
//! use ksync::spinlock::{PaddedSpinLock, SpinLock};
//! use ksync::arch::CachePadded;
//! // One lock per bucket, each on its own cache line.
//! static BUCKETS: [PaddedSpinLock<u64>; 4] =
//!     [const { CachePadded::new(SpinLock::new(0)) }; 4];
//! *BUCKETS[2].lock() += 1;
//! assert_eq!(core::mem::size_of_val(&BUCKETS[0]), 128);
//! ```

mod backend;
mod mcs;
mod node;
mod qrwlock;
mod qspinlock;
mod rwlock;
mod rwraw;
mod tas;
mod ticket;

pub mod raw;

pub use backend::SpinBackend;
pub use rwlock::{ReadGuard, RwLockOf, RwSpinBackend, WriteGuard};

/// The generic spinlock over the raw algorithm `R` (`Lock<T, raw::Mcs>`): the
/// generic [`Lock`](crate::lock::Lock) with the [`SpinBackend<R>`] backend.
pub type Lock<T, R> = crate::lock::Lock<T, SpinBackend<R>>;

/// The guard of a [`Lock`]: the generic [`Guard`](crate::lock::Guard) whose
/// state `C` is the variant that made it ([`Preempt`](crate::lock::Preempt) for
/// `lock`, [`IrqOff`](crate::lock::IrqOff), [`IrqSave`](crate::lock::IrqSave),
/// [`BhOff`](crate::lock::BhOff), or [`AnyCtx`](crate::lock::AnyCtx) after
/// [`into_any`](crate::lock::Guard::into_any)).
pub type LockGuard<'a, T, R, C = crate::lock::Preempt> =
    crate::lock::Guard<'a, T, SpinBackend<R>, C>;

/// `spinlock_t`: the queued spinlock with the paravirtual slow path
/// ([`raw::Queued`]).
#[doc(alias = "spinlock_t")]
pub type SpinLock<T> = Lock<T, raw::Queued>;

/// The guard of a [`SpinLock`] (its `lock`; the variants' guards are
/// `LockGuard<'a, T, raw::Queued, C>`).
pub type SpinLockGuard<'a, T> = LockGuard<'a, T, raw::Queued>;

/// `raw_spinlock_t`: the same queued algorithm as [`SpinLock`], as its own
/// type ([`raw::RawQueued`]) so the two stay distinct, as in C. (In the kernel
/// the difference matters only under PREEMPT_RT, where `spinlock_t` becomes a
/// sleeping rt_mutex and `raw_spinlock_t` keeps spinning.) A strict-FIFO ticket
/// lock was the first choice; it collapses when threads outnumber CPUs (the
/// next ticket's thread is often not running), which the bench shows — use
/// [`TicketSpinLock`] where strict FIFO order matters more.
#[doc(alias = "raw_spinlock_t")]
#[doc(alias = "DEFINE_RAW_SPINLOCK")]
pub type RawSpinLock<T> = Lock<T, raw::RawQueued>;

/// A spinlock on the ticket algorithm ([`raw::Ticket`]): strict FIFO, never
/// sleeps.
pub type TicketSpinLock<T> = Lock<T, raw::Ticket>;

/// A [`SpinLock`] on a cache line of its own (128 bytes), for arrays of related
/// locks.
pub type PaddedSpinLock<T> = crate::arch::CachePadded<SpinLock<T>>;

/// `rwlock_t`: the queued fair rwlock ([`raw::QueuedRw`], the kernel's qrwlock).
#[doc(alias = "rwlock_t")]
pub type RwLock<T> = RwLockOf<T, raw::QueuedRw>;

/// The classic reader-preferring `rwlock_t` ([`raw::ReaderPref`]): new readers
/// enter while a writer waits, so writers can starve.
pub type ReaderPrefRwLock<T> = RwLockOf<T, raw::ReaderPref>;

/// The read guard of an [`RwLock`].
pub type RwLockReadGuard<'a, T> = ReadGuard<'a, T, raw::QueuedRw>;
/// The write guard of an [`RwLock`].
pub type RwLockWriteGuard<'a, T> = WriteGuard<'a, T, raw::QueuedRw>;

#[cfg(all(feature = "lock_api", not(loom)))]
mod lock_api_impls {
    use super::raw::*;

    macro_rules! raw_mutex {
        ($($t:ty),*) => {$(
            // SAFETY: `RawSpin` guarantees mutual exclusion with Acquire/Release.
            unsafe impl lock_api::RawMutex for $t {
                #[allow(clippy::declare_interior_mutable_const)]
                const INIT: Self = <$t as RawSpin>::INIT;
                // The MCS node and the preempt-count discipline are per thread.
                type GuardMarker = lock_api::GuardNoSend;
                #[inline]
                fn lock(&self) {
                    RawSpin::lock(self)
                }
                #[inline]
                fn try_lock(&self) -> bool {
                    RawSpin::try_lock(self)
                }
                #[inline]
                unsafe fn unlock(&self) {
                    // SAFETY: lock_api's contract: the lock is held by this context.
                    unsafe { RawSpin::unlock(self) }
                }
                #[inline]
                fn is_locked(&self) -> bool {
                    RawSpin::is_locked(self)
                }
            }
        )*};
    }
    raw_mutex!(Queued, RawQueued, Ticket, Mcs, Tas, Ttas);

    macro_rules! raw_rwlock {
        ($($t:ty),*) => {$(
            // SAFETY: `RawRwSpin` guarantees reader-writer exclusion.
            unsafe impl lock_api::RawRwLock for $t {
                #[allow(clippy::declare_interior_mutable_const)]
                const INIT: Self = <$t as RawRwSpin>::INIT;
                type GuardMarker = lock_api::GuardNoSend;
                #[inline]
                fn lock_shared(&self) {
                    RawRwSpin::read(self)
                }
                #[inline]
                fn try_lock_shared(&self) -> bool {
                    RawRwSpin::try_read(self)
                }
                #[inline]
                unsafe fn unlock_shared(&self) {
                    // SAFETY: lock_api's contract: a shared lock is held.
                    unsafe { RawRwSpin::read_unlock(self) }
                }
                #[inline]
                fn lock_exclusive(&self) {
                    RawRwSpin::write(self)
                }
                #[inline]
                fn try_lock_exclusive(&self) -> bool {
                    RawRwSpin::try_write(self)
                }
                #[inline]
                unsafe fn unlock_exclusive(&self) {
                    // SAFETY: lock_api's contract: the exclusive lock is held.
                    unsafe { RawRwSpin::write_unlock(self) }
                }
                #[inline]
                fn is_locked(&self) -> bool {
                    RawRwSpin::is_locked(self)
                }
                #[inline]
                fn is_locked_exclusive(&self) -> bool {
                    RawRwSpin::is_write_locked(self)
                }
            }
        )*};
    }
    raw_rwlock!(QueuedRw, ReaderPref);
}

/// Shared loom model bodies (one test body over every algorithm).
#[cfg(all(test, loom))]
pub(crate) mod loom_support {
    use super::raw::{RawRwSpin, RawSpin};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// `threads` threads each take the lock once and increment a loom cell:
    /// loom reports any overlap of the increments (a mutual-exclusion failure)
    /// and any execution where a thread never wakes (a lost wake-up).
    pub(crate) fn mutual_exclusion<R: RawSpin + 'static>(threads: usize) {
        loom::model(move || {
            let shared = Arc::new((R::new(), UnsafeCell::new(0usize)));
            let handles: Vec<_> = (1..threads)
                .map(|_| {
                    let s = shared.clone();
                    loom::thread::spawn(move || critical(&s))
                })
                .collect();
            critical(&shared);
            for h in handles {
                h.join().unwrap();
            }
            let n = shared.1.with(|p| {
                // SAFETY: every thread has joined; nobody else touches the cell.
                unsafe { *p }
            });
            assert_eq!(n, threads);
            assert!(!shared.0.is_locked());
        });
    }

    fn critical<R: RawSpin>(s: &(R, UnsafeCell<usize>)) {
        s.0.lock();
        s.1.with_mut(|p| {
            // SAFETY: the lock is held; loom checks that no other access overlaps.
            unsafe { *p += 1 }
        });
        // SAFETY: locked just above on this thread.
        unsafe { s.0.unlock() };
    }

    /// Two writers and a reader: writers exclude each other and the reader.
    pub(crate) fn rw_exclusion<R: RawRwSpin + 'static>() {
        loom::model(|| {
            let shared = Arc::new((R::new(), UnsafeCell::new(0usize)));
            let s1 = shared.clone();
            let w = loom::thread::spawn(move || {
                s1.0.write();
                // SAFETY: write lock held; loom checks exclusivity.
                s1.1.with_mut(|p| unsafe { *p += 1 });
                // SAFETY: locked just above.
                unsafe { s1.0.write_unlock() };
            });
            let s2 = shared.clone();
            let r = loom::thread::spawn(move || {
                s2.0.read();
                // SAFETY: read lock held; loom checks no writer overlaps.
                let v = s2.1.with(|p| unsafe { *p });
                assert!(v <= 2);
                // SAFETY: locked just above.
                unsafe { s2.0.read_unlock() };
            });
            shared.0.write();
            // SAFETY: write lock held.
            shared.1.with_mut(|p| unsafe { *p += 1 });
            // SAFETY: locked just above.
            unsafe { shared.0.write_unlock() };
            w.join().unwrap();
            r.join().unwrap();
            // SAFETY: all joined.
            assert_eq!(shared.1.with(|p| unsafe { *p }), 2);
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
