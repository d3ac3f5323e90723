//! [`SpinBackend<R>`]: any raw spin algorithm `R` with its lockdep map (the
//! kernel's `raw_spinlock`: `arch_spinlock_t raw_lock` + `dep_map`), the backend
//! of [`SpinLock<T>`](super::SpinLock) and every `spinlock::Lock<T, R>`; and
//! the spinlock-only methods of the generic [`Lock`]: the `_irq`, `_irqsave`,
//! `_bh` variants, whose guards carry [`IrqOff`], [`IrqSave`] and [`BhOff`].

use super::raw::{RawSpin, Spin};
use crate::lock::{Backend, BhOff, Guard, IrqOff, IrqSave, Lock, Preempt};
use crate::lockdep::{self, LockdepMap};

/// The backend of a spinlock: the raw algorithm `R` and the lockdep map.
pub struct SpinBackend<R: RawSpin> {
    raw: R,
    dep_map: LockdepMap,
}

/// The lockdep name of a spinlock of algorithm `R`.
const fn map_name<R: RawSpin>() -> &'static str {
    if R::RAW {
        "raw_spinlock_t"
    } else {
        "spinlock_t"
    }
}

/// `map` with the wait types of a spinlock of algorithm `R`: `raw_spinlock_t`'s
/// ([`WaitType::Spin`](lockdep::WaitType::Spin)) for a raw one, else
/// `spinlock_t`'s ([`WaitType::Config`](lockdep::WaitType::Config)).
const fn spin_waits<R: RawSpin>(map: LockdepMap) -> LockdepMap {
    if R::RAW {
        map.raw_spinning()
    } else {
        map.spinning()
    }
}

// SAFETY: `R: RawSpin` guarantees mutual exclusion with Acquire/Release
// ordering; these methods forward to it. Exclusive only: `Concurrent` is `()`.
unsafe impl<R: RawSpin> Backend for SpinBackend<R> {
    type GuardState = Preempt;
    type Concurrent<T: ?Sized> = ();
    const NAME: &'static str = R::NAME;

    #[track_caller]
    fn new() -> Self {
        SpinBackend {
            #[cfg(not(loom))]
            raw: R::INIT,
            #[cfg(loom)]
            raw: R::new(),
            dep_map: spin_waits::<R>(LockdepMap::new(map_name::<R>())),
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
            if self.raw.try_lock() {
                return;
            }
            lockdep::lock_contended(&self.dep_map);
        }
        self.raw.lock()
    }

    #[inline(always)]
    fn try_lock(&self) -> bool {
        self.raw.try_lock()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock on this thread (`Backend::unlock`).
        unsafe { self.raw.unlock() }
    }

    #[inline(always)]
    fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }
}

impl<T, R: RawSpin> Lock<T, SpinBackend<R>> {
    /// A new unlocked lock holding `data` (`DEFINE_SPINLOCK`, `spin_lock_init`).
    /// Its lockdep class is the caller's source location.
    ///
    /// ```
    /// use ksync::spinlock::SpinLock;
    /// static COUNT: SpinLock<u64> = SpinLock::new(0); // DEFINE_SPINLOCK
    /// *COUNT.lock() += 1;
    /// assert_eq!(*COUNT.lock(), 1);
    /// ```
    #[doc(alias = "DEFINE_SPINLOCK")]
    #[doc(alias = "spin_lock_init")]
    #[doc(alias = "DEFINE_RAW_SPINLOCK")]
    #[doc(alias = "raw_spin_lock_init")]
    #[cfg(not(loom))]
    #[track_caller]
    #[inline]
    pub const fn new(data: T) -> Self {
        let raw = SpinBackend {
            raw: R::INIT,
            dep_map: spin_waits::<R>(LockdepMap::new(map_name::<R>())),
        };
        Lock::from_raw(raw, data)
    }

    /// A new unlocked lock holding `data` (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(data: T) -> Self {
        Lock::from_raw(<SpinBackend<R> as Backend>::new(), data)
    }

    /// A new lock whose lockdep class is `key` (`spin_lock_init` +
    /// `lockdep_set_class`): locks made at several places share one class.
    #[cfg(not(loom))]
    #[doc(alias = "lockdep_set_class")]
    #[track_caller]
    pub const fn with_class(
        data: T,
        name: &'static str,
        key: &'static lockdep::LockClassKey,
    ) -> Self {
        let raw = SpinBackend {
            raw: R::INIT,
            dep_map: spin_waits::<R>(LockdepMap::with_key(name, key)),
        };
        Lock::from_raw(raw, data)
    }
}

impl<T: ?Sized, R: RawSpin> Lock<T, SpinBackend<R>> {
    /// Disables irqs on this thread, then acquires (`spin_lock_irq`); the guard
    /// unlocks and re-enables irqs unconditionally (`spin_unlock_irq`). Use only
    /// where irqs are known to be on; otherwise [`lock_irqsave`](Self::lock_irqsave).
    #[doc(alias = "spin_lock_irq")]
    #[doc(alias = "raw_spin_lock_irq")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_irq(&self) -> Guard<'_, T, SpinBackend<R>, IrqOff> {
        self.lock_in(0)
    }

    /// Saves the irq state and disables irqs, then acquires (`spin_lock_irqsave`);
    /// the guard holds the saved [`IrqFlags`](crate::ctx::IrqFlags) and restores
    /// them on drop (`spin_unlock_irqrestore`). Safe against a handler on this
    /// thread that takes the same lock.
    ///
    /// ```
    /// use ksync::spinlock::SpinLock;
    /// let lock = SpinLock::new(0);
    /// {
    ///     let mut g = lock.lock_irqsave();
    ///     assert!(ksync::irq::irqs_disabled());
    ///     *g += 1;
    /// }
    /// assert!(!ksync::irq::irqs_disabled());
    /// ```
    #[doc(alias = "spin_lock_irqsave")]
    #[doc(alias = "raw_spin_lock_irqsave")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_irqsave(&self) -> Guard<'_, T, SpinBackend<R>, IrqSave> {
        self.lock_in(0)
    }

    /// Disables bottom halves, then acquires (`spin_lock_bh`); the guard unlocks
    /// and re-enables them (`spin_unlock_bh`).
    #[doc(alias = "spin_lock_bh")]
    #[doc(alias = "raw_spin_lock_bh")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_bh(&self) -> Guard<'_, T, SpinBackend<R>, BhOff> {
        self.lock_in(0)
    }

    /// [`try_lock`](Self::try_lock) with irqs disabled while held
    /// (`spin_trylock_irq`); on failure irqs are re-enabled.
    #[doc(alias = "spin_trylock_irq")]
    #[doc(alias = "raw_spin_trylock_irq")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_lock_irq(&self) -> Option<Guard<'_, T, SpinBackend<R>, IrqOff>> {
        self.try_lock_in()
    }

    /// [`try_lock`](Self::try_lock) with irqs saved and disabled
    /// (`spin_trylock_irqsave`); on failure the flags are restored at once.
    #[doc(alias = "spin_trylock_irqsave")]
    #[doc(alias = "raw_spin_trylock_irqsave")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_lock_irqsave(&self) -> Option<Guard<'_, T, SpinBackend<R>, IrqSave>> {
        self.try_lock_in()
    }

    /// [`try_lock`](Self::try_lock) with bottom halves disabled
    /// (`spin_trylock_bh`); on failure they are re-enabled.
    #[doc(alias = "spin_trylock_bh")]
    #[doc(alias = "raw_spin_trylock_bh")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_lock_bh(&self) -> Option<Guard<'_, T, SpinBackend<R>, BhOff>> {
        self.try_lock_in()
    }

    /// Whether other threads are waiting for the lock (`spin_is_contended`): a
    /// holder in a long loop may drop and retake it (`cond_resched_lock`).
    #[doc(alias = "spin_is_contended")]
    #[doc(alias = "raw_spin_is_contended")]
    #[inline]
    pub fn is_contended(&self) -> bool {
        self.raw.raw.is_contended()
    }

    /// Waits until the lock is not held, without taking it (`spin_unlock_wait`,
    /// removed from the kernel in 4.13): everything the holder did before its
    /// unlock is visible afterwards (Acquire fence).
    #[doc(alias = "spin_unlock_wait")]
    #[doc(alias = "raw_spin_unlock_wait")]
    pub fn unlock_wait(&self) {
        let spin = Spin::new();
        while self.raw.raw.is_locked() {
            spin.snooze();
        }
        // Upgrades the Relaxed `is_locked` load that saw the lock free: pairs
        // with the holder's Release unlock.
        crate::loom::sync::atomic::fence(crate::loom::sync::atomic::Ordering::Acquire);
    }

    /// The raw algorithm under this lock.
    #[inline]
    pub fn raw(&self) -> &R {
        &self.raw.raw
    }

    /// Releases the lock without a guard, e.g. after `mem::forget` on a guard.
    ///
    /// # Safety
    /// The lock must be held by the calling thread through a guard that was
    /// forgotten; the preempt count and irq/bh state the guard would have
    /// restored are *not* restored (do that yourself).
    #[inline]
    pub unsafe fn force_unlock(&self) {
        lockdep::release(&self.raw.dep_map);
        // SAFETY: the caller guarantees the lock is held by this thread.
        unsafe { self.raw.raw.unlock() };
    }
}
