//! [`RwSpinBackend<R>`]: any raw reader-writer spin algorithm `R` with its
//! lockdep map, the backend of [`RwLockOf<T, R>`]; and the rwlock-only methods
//! of the generic [`Lock`] (the `_irq`, `_irqsave`, `_bh` variants of both
//! sides). [`RwLock<T>`](super::RwLock) (`rwlock_t`) is the queued fair one;
//! [`ReaderPrefRwLock<T>`](super::ReaderPrefRwLock) the classic
//! reader-preferring word.

use super::raw::RawRwSpin;
use crate::lock::{self, Backend, BhOff, IrqOff, IrqSave, Lock, Preempt, SharedBackend};
use crate::lockdep::{self, AcquireKind, LockdepMap};

/// A reader-writer spinlock protecting a `T`, over the raw algorithm `B`: the
/// generic [`Lock`] with the [`RwSpinBackend<B>`] backend.
pub type RwLockOf<T, B> = Lock<T, RwSpinBackend<B>>;

/// A read lock on a [`RwLockOf`]; dropping it is `read_unlock` (or
/// `read_unlock_irq`/`_irqrestore`/`_bh` by the variant `C` that made it).
pub type ReadGuard<'a, T, B, C = Preempt> = lock::ReadGuard<'a, T, RwSpinBackend<B>, C>;

/// The write lock on a [`RwLockOf`]; dropping it is `write_unlock` (or
/// `write_unlock_irq`/`_irqrestore`/`_bh`). `!Send`, as every guard.
///
/// ```compile_fail
/// use ksync::spinlock::RwLock;
/// static L: RwLock<u32> = RwLock::new(0);
/// let g = L.write();
/// std::thread::spawn(move || drop(g)); // error: the guard is not Send
/// ```
#[doc(alias = "write_unlock")]
#[doc(alias = "write_unlock_irq")]
#[doc(alias = "write_unlock_irqrestore")]
#[doc(alias = "write_unlock_bh")]
pub type WriteGuard<'a, T, B, C = Preempt> = lock::Guard<'a, T, RwSpinBackend<B>, C>;

/// The backend of a reader-writer spinlock: the raw algorithm `B` and the
/// lockdep map.
pub struct RwSpinBackend<B: RawRwSpin> {
    raw: B,
    dep_map: LockdepMap,
}

// SAFETY: `B: RawRwSpin` guarantees reader-writer exclusion with Acquire/Release
// ordering; these methods forward to it. Readers share the `T` at once, so
// `Concurrent<T>` is `T` (the lock is `Sync` only for `T: Send + Sync`).
unsafe impl<B: RawRwSpin> Backend for RwSpinBackend<B> {
    type GuardState = Preempt;
    type Concurrent<T: ?Sized> = T;
    const NAME: &'static str = B::NAME;

    #[track_caller]
    fn new() -> Self {
        RwSpinBackend {
            #[cfg(not(loom))]
            raw: B::INIT,
            #[cfg(loom)]
            raw: B::new(),
            dep_map: LockdepMap::new_spinning("rwlock_t"),
        }
    }

    #[inline(always)]
    fn dep_map(&self) -> Option<&LockdepMap> {
        Some(&self.dep_map)
    }

    #[inline(always)]
    fn lock(&self) {
        // With lock statistics on (one relaxed load; a constant `false`
        // without the `lockdep` feature), the kernel's LOCK_CONTENDED: one
        // try first, and a failed try is a contention.
        if lockdep::lock_stat_on() {
            if self.raw.try_write() {
                return;
            }
            lockdep::lock_contended(&self.dep_map);
        }
        self.raw.write()
    }

    #[inline(always)]
    fn try_lock(&self) -> bool {
        self.raw.try_write()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the write lock (`Backend::unlock`).
        unsafe { self.raw.write_unlock() }
    }

    #[inline(always)]
    fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }
}

// SAFETY: as for `Backend` above: `RawRwSpin` excludes writers from readers.
unsafe impl<B: RawRwSpin> SharedBackend for RwSpinBackend<B> {
    #[inline(always)]
    fn read_kind(&self) -> AcquireKind {
        // rwlock_t readers are recursive (a reader may re-enter while another
        // read is held), except where the lock makes them wait behind a
        // waiting writer: the fair lock queues non-interrupt readers, so there
        // a nested read_lock can deadlock and is a plain shared acquisition —
        // the kernel's `rwlock_acquire_read` with `read_lock_is_recursive()`
        // (recursive only for !CONFIG_QUEUED_RWLOCKS or in_interrupt()).
        if B::NAME == "queued-rw" && !crate::ctx::in_interrupt() {
            AcquireKind::Read
        } else {
            AcquireKind::RecursiveRead
        }
    }

    #[inline(always)]
    fn lock_shared(&self) {
        // Lock statistics: as in `lock`.
        if lockdep::lock_stat_on() {
            if self.raw.try_read() {
                return;
            }
            lockdep::lock_contended(&self.dep_map);
        }
        self.raw.read()
    }

    #[inline(always)]
    fn try_lock_shared(&self) -> bool {
        self.raw.try_read()
    }

    #[inline(always)]
    unsafe fn unlock_shared(&self) {
        // SAFETY: the caller holds a read lock (`SharedBackend::unlock_shared`).
        unsafe { self.raw.read_unlock() }
    }

    #[inline(always)]
    fn is_write_locked(&self) -> bool {
        self.raw.is_write_locked()
    }
}

impl<T, B: RawRwSpin> RwLockOf<T, B> {
    /// A new unlocked rwlock holding `data` (`DEFINE_RWLOCK`, `rwlock_init`). Its
    /// lockdep class is the caller's source location.
    ///
    /// ```
    /// use ksync::spinlock::RwLock;
    /// static TABLE: RwLock<[u32; 4]> = RwLock::new([0; 4]); // DEFINE_RWLOCK
    /// TABLE.write()[1] = 7;
    /// assert_eq!(TABLE.read()[1], 7);
    /// ```
    #[doc(alias = "DEFINE_RWLOCK")]
    #[doc(alias = "rwlock_init")]
    #[cfg(not(loom))]
    #[track_caller]
    #[inline]
    pub const fn new(data: T) -> Self {
        let raw = RwSpinBackend {
            raw: B::INIT,
            dep_map: LockdepMap::new_spinning("rwlock_t"),
        };
        Lock::from_raw(raw, data)
    }

    /// A new rwlock whose lockdep class is `key` (`rwlock_init` +
    /// `lockdep_set_class`): rwlocks made at several places share one class.
    #[cfg(not(loom))]
    #[doc(alias = "lockdep_set_class")]
    #[track_caller]
    pub const fn with_class(
        data: T,
        name: &'static str,
        key: &'static crate::lockdep::LockClassKey,
    ) -> Self {
        let raw = RwSpinBackend {
            raw: B::INIT,
            dep_map: LockdepMap::with_key(name, key).spinning(),
        };
        Lock::from_raw(raw, data)
    }

    /// A new unlocked rwlock (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(data: T) -> Self {
        Lock::from_raw(<RwSpinBackend<B> as Backend>::new(), data)
    }
}

impl<T: ?Sized, B: RawRwSpin> RwLockOf<T, B> {
    /// `read_lock_irq` / `read_unlock_irq`.
    #[doc(alias = "read_lock_irq")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn read_irq(&self) -> ReadGuard<'_, T, B, IrqOff> {
        self.read_in(0)
    }

    /// `read_lock_irqsave` / `read_unlock_irqrestore`.
    #[doc(alias = "read_lock_irqsave")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn read_irqsave(&self) -> ReadGuard<'_, T, B, IrqSave> {
        self.read_in(0)
    }

    /// `read_lock_bh` / `read_unlock_bh`.
    #[doc(alias = "read_lock_bh")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn read_bh(&self) -> ReadGuard<'_, T, B, BhOff> {
        self.read_in(0)
    }

    /// `write_lock_irq` / `write_unlock_irq`.
    #[doc(alias = "write_lock_irq")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn write_irq(&self) -> WriteGuard<'_, T, B, IrqOff> {
        self.lock_in(0)
    }

    /// `write_lock_irqsave` / `write_unlock_irqrestore`.
    #[doc(alias = "write_lock_irqsave")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn write_irqsave(&self) -> WriteGuard<'_, T, B, IrqSave> {
        self.lock_in(0)
    }

    /// `write_lock_bh` / `write_unlock_bh`.
    #[doc(alias = "write_lock_bh")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn write_bh(&self) -> WriteGuard<'_, T, B, BhOff> {
        self.lock_in(0)
    }

    /// Tries once for a read lock with irqs saved and disabled
    /// (`read_trylock_irqsave`).
    #[doc(alias = "read_trylock_irqsave")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_read_irqsave(&self) -> Option<ReadGuard<'_, T, B, IrqSave>> {
        self.try_read_in()
    }

    /// Tries once for the write lock with irqs saved and disabled
    /// (`write_trylock_irqsave`).
    #[doc(alias = "write_trylock_irqsave")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_write_irqsave(&self) -> Option<WriteGuard<'_, T, B, IrqSave>> {
        self.try_lock_in()
    }

    /// The raw algorithm under this lock.
    #[inline]
    pub fn raw(&self) -> &B {
        &self.raw.raw
    }
}
