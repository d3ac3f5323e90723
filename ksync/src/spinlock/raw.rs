//! The raw-lock traits every spin algorithm implements.
//!
//! A raw lock is only the lock word and its algorithm: no data, no guard, no
//! preempt count, no lockdep. [`Lock`](super::Lock) and
//! [`RwLockOf`](super::RwLockOf) wrap any of them into the kernel's `spinlock_t`
//! and `rwlock_t` semantics. With the `lock_api` feature every raw lock also
//! implements `lock_api::RawMutex` / `lock_api::RawRwLock` (lock_api 0.4).

pub use super::mcs::Mcs;
pub use super::qrwlock::QueuedRw;
pub use super::qspinlock::{Queued, RawQueued};
pub use super::rwraw::ReaderPref;
pub use super::tas::{Tas, Ttas};
pub use super::ticket::Ticket;

pub(crate) use crate::backoff::Spin;

/// A raw mutual-exclusion spin algorithm (`arch_spinlock_t`).
///
/// # Safety
/// Implementations must guarantee mutual exclusion: between a successful
/// [`lock`](RawSpin::lock) or [`try_lock`](RawSpin::try_lock) and the matching
/// [`unlock`](RawSpin::unlock) no other call to `lock`/`try_lock` succeeds, and
/// `lock` must synchronize-with (Acquire) the previous `unlock` (Release), so the
/// critical sections are totally ordered.
pub unsafe trait RawSpin: Send + Sync {
    /// The unlocked value (`__ARCH_SPIN_LOCK_UNLOCKED`).
    #[cfg(not(loom))]
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self;

    /// A new unlocked lock (under loom, where atomics have no `const fn new`).
    #[cfg(loom)]
    fn new() -> Self;

    /// Short name for diagnostics and benchmark tables, e.g. `"ticket"`.
    const NAME: &'static str;

    /// Whether a lock of this algorithm is a `raw_spinlock_t`, which spins on
    /// every kernel (lockdep's [`WaitType::Spin`](crate::lockdep::WaitType::Spin)),
    /// rather than a `spinlock_t`, which PREEMPT_RT turns into a sleeping lock
    /// ([`WaitType::Config`](crate::lockdep::WaitType::Config)): only raw
    /// spinlocks may be taken inside a raw one. True only for
    /// [`RawQueued`], the algorithm of
    /// [`RawSpinLock`](super::RawSpinLock).
    const RAW: bool = false;

    /// Acquires the lock, spinning (and, for the queued lock, sleeping) until it
    /// is free (`arch_spin_lock`).
    fn lock(&self);

    /// Tries once to acquire the lock (`arch_spin_trylock`).
    fn try_lock(&self) -> bool;

    /// Releases the lock (`arch_spin_unlock`).
    ///
    /// # Safety
    /// The lock must be held, and by the calling thread for algorithms whose
    /// queue nodes are per thread (MCS).
    unsafe fn unlock(&self);

    /// Whether the lock is held by someone (`arch_spin_is_locked`). A snapshot.
    fn is_locked(&self) -> bool;

    /// Whether someone is waiting for the lock (`arch_spin_is_contended`). A
    /// snapshot.
    fn is_contended(&self) -> bool;
}

/// A raw reader-writer spin algorithm (`arch_rwlock_t`).
///
/// # Safety
/// Implementations must guarantee that while a write lock is held no other read
/// or write lock is granted, that read locks exclude writers, and that each
/// acquisition synchronizes-with (Acquire) the releases (Release) it follows.
pub unsafe trait RawRwSpin: Send + Sync {
    /// The unlocked value (`__ARCH_RW_LOCK_UNLOCKED`).
    #[cfg(not(loom))]
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self;

    /// A new unlocked lock (under loom).
    #[cfg(loom)]
    fn new() -> Self;

    /// Short name for diagnostics and benchmark tables.
    const NAME: &'static str;

    /// Acquires a read lock (`arch_read_lock`).
    fn read(&self);
    /// Tries once to acquire a read lock (`arch_read_trylock`).
    fn try_read(&self) -> bool;
    /// Releases a read lock (`arch_read_unlock`).
    ///
    /// # Safety
    /// A read lock must be held by the caller.
    unsafe fn read_unlock(&self);
    /// Acquires the write lock (`arch_write_lock`).
    fn write(&self);
    /// Tries once to acquire the write lock (`arch_write_trylock`).
    fn try_write(&self) -> bool;
    /// Releases the write lock (`arch_write_unlock`).
    ///
    /// # Safety
    /// The write lock must be held by the caller.
    unsafe fn write_unlock(&self);
    /// Whether readers or a writer hold the lock. A snapshot.
    fn is_locked(&self) -> bool;
    /// Whether a writer holds the lock. A snapshot.
    fn is_write_locked(&self) -> bool;
}
