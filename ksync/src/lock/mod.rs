//! The generic spinlock [`Lock<T, B>`] over any raw algorithm `B`, and its one
//! guard type [`LockGuard`].
//!
//! The four paths (DESIGN.md): acquire = context change (`_irq`/`_irqsave`/`_bh`
//! disable, then the preempt count raised *before* spinning, as the kernel's
//! `__raw_spin_lock` does) → lockdep `acquire` → raw lock; release = lockdep
//! `release` → raw unlock → context restore. The variants differ only in the
//! [`Ctx`] the guard carries.

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use crate::irq::{self, IrqFlags};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::sched::{preempt_disable, preempt_enable};
use crate::spinlock::raw::{RawSpin, Spin};

/// The execution-context change a guard undoes on drop.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ctx {
    /// Plain `spin_lock`: only the preempt count.
    Plain,
    /// `spin_lock_irq`: re-enable irqs on unlock.
    Irq,
    /// `spin_lock_irqsave`: restore the saved flags on unlock.
    IrqSave(IrqFlags),
    /// `spin_lock_bh`: re-enable bottom halves on unlock.
    Bh,
}

#[derive(Clone, Copy)]
pub(crate) enum CtxKind {
    Plain,
    Irq,
    IrqSave,
    Bh,
}

/// Undoes a [`Ctx::enter`] if the lockdep hook between it and the lock panics
/// (`KSYNC_LOCKDEP=panic` reporting recursion or an inversion): the caller
/// `mem::forget`s it once the hook returned. Without the `lockdep` feature the
/// hook cannot panic and this compiles to nothing.
pub(crate) struct ExitOnUnwind(pub(crate) Ctx);

impl Drop for ExitOnUnwind {
    #[inline]
    fn drop(&mut self) {
        self.0.exit();
    }
}

impl Ctx {
    /// Enters the context (irqs or bhs off), then raises the preempt count.
    #[inline(always)]
    pub(crate) fn enter(kind: CtxKind) -> Ctx {
        let ctx = match kind {
            CtxKind::Plain => Ctx::Plain,
            CtxKind::Irq => {
                irq::local_irq_disable();
                Ctx::Irq
            }
            CtxKind::IrqSave => Ctx::IrqSave(irq::local_irq_save()),
            CtxKind::Bh => {
                irq::local_bh_disable();
                Ctx::Bh
            }
        };
        preempt_disable();
        ctx
    }

    /// Undoes [`Ctx::enter`] in the kernel's order: irqs are restored before the
    /// preempt count drops (`__raw_spin_unlock_irqrestore`); for bhs the preempt
    /// count drops first so pending softirqs run preemptible
    /// (`__local_bh_enable_ip`).
    #[inline(always)]
    pub(crate) fn exit(self) {
        match self {
            Ctx::Plain => preempt_enable(),
            Ctx::Irq => {
                irq::local_irq_enable();
                preempt_enable();
            }
            Ctx::IrqSave(flags) => {
                irq::local_irq_restore(flags);
                preempt_enable();
            }
            Ctx::Bh => {
                preempt_enable();
                irq::local_bh_enable();
            }
        }
    }
}

/// A spinlock protecting a `T`, over the raw algorithm `B` (`spinlock_t` when `B`
/// is [`Queued`](super::raw::Queued): see [`SpinLock`](super::SpinLock)).
///
/// # Invariants
/// `data` is accessed only through a [`LockGuard`] (which exists only while
/// `raw` is held by its thread), through `&mut self`, or by value.
pub struct Lock<T: ?Sized, B: RawSpin> {
    raw: B,
    dep_map: LockdepMap,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands `&mut T` to one thread at a time, so sharing the lock
// moves `T` between threads: `T: Send` is needed, and enough (as `Mutex<T>`).
unsafe impl<T: ?Sized + Send, B: RawSpin> Sync for Lock<T, B> {}
// SAFETY: sending the lock sends the `T`; the raw lock is `Send` by its trait.
unsafe impl<T: ?Sized + Send, B: RawSpin> Send for Lock<T, B> {}

impl<T, B: RawSpin> Lock<T, B> {
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
        Lock {
            raw: B::INIT,
            dep_map: LockdepMap::new_spinning("spinlock_t"),
            data: UnsafeCell::new(data),
        }
    }

    /// A new unlocked lock holding `data` (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(data: T) -> Self {
        Lock {
            raw: B::new(),
            dep_map: LockdepMap::new_spinning("spinlock_t"),
            data: UnsafeCell::new(data),
        }
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
        Lock {
            raw: B::INIT,
            dep_map: LockdepMap::with_key(name, key).spinning(),
            data: UnsafeCell::new(data),
        }
    }

    /// Consumes the lock and returns the data.
    #[inline]
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized, B: RawSpin> Lock<T, B> {
    #[inline(always)]
    fn lock_in(&self, kind: CtxKind) -> LockGuard<'_, T, B> {
        self.lock_in_sub(kind, 0)
    }

    #[inline(always)]
    fn lock_in_sub(&self, kind: CtxKind, subclass: u32) -> LockGuard<'_, T, B> {
        let ctx = Ctx::enter(kind);
        // Before spinning, as the kernel's spin_acquire + LOCK_CONTENDED, so
        // recursion is reported instead of hanging. If the report panics, the
        // context is restored and the lock was never touched.
        let undo = ExitOnUnwind(ctx);
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, false, subclass);
        core::mem::forget(undo);
        self.raw.lock();
        // INVARIANT: `raw` is held by this thread until the guard drops.
        LockGuard {
            lock: self,
            ctx,
            _not_send: PhantomData,
        }
    }

    #[inline(always)]
    fn try_lock_in(&self, kind: CtxKind) -> Option<LockGuard<'_, T, B>> {
        let ctx = Ctx::enter(kind);
        if self.raw.try_lock() {
            lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, true, 0);
            // INVARIANT: `raw` is held by this thread until the guard drops.
            Some(LockGuard {
                lock: self,
                ctx,
                _not_send: PhantomData,
            })
        } else {
            ctx.exit();
            None
        }
    }

    /// Acquires the lock, spinning until it is free (`spin_lock`); the guard
    /// unlocks on drop (`spin_unlock`). Preemption is "disabled" (the preempt
    /// count raised) from before the wait until the unlock.
    ///
    /// ```
    /// use ksync::spinlock::SpinLock;
    /// let lock = SpinLock::new(vec![1]);
    /// lock.lock().push(2);
    /// assert_eq!(*lock.lock(), [1, 2]);
    /// ```
    #[doc(alias = "spin_lock")]
    #[doc(alias = "raw_spin_lock")]
    #[inline]
    pub fn lock(&self) -> LockGuard<'_, T, B> {
        self.lock_in(CtxKind::Plain)
    }

    /// [`lock`](Self::lock) with a lockdep subclass (`spin_lock_nested`): taking
    /// two locks of one class nested — a parent and a child of the same type, say —
    /// is reported as possible recursive locking unless the inner acquisition
    /// names a different subclass. Without the `lockdep` feature it is `lock`.
    ///
    /// ```
    /// use ksync::spinlock::SpinLock;
    /// let locks: Vec<SpinLock<u32>> = (0..2).map(SpinLock::new).collect(); // one class
    /// let parent = locks[0].lock();
    /// let child = locks[1].lock_nested(1); // SINGLE_DEPTH_NESTING
    /// assert_eq!(*parent + *child, 1);
    /// ```
    #[doc(alias = "spin_lock_nested")]
    #[doc(alias = "raw_spin_lock_nested")]
    #[inline]
    pub fn lock_nested(&self, subclass: u32) -> LockGuard<'_, T, B> {
        self.lock_in_sub(CtxKind::Plain, subclass)
    }

    /// Disables irqs on this thread, then acquires (`spin_lock_irq`); the guard
    /// unlocks and re-enables irqs unconditionally (`spin_unlock_irq`). Use only
    /// where irqs are known to be on; otherwise [`lock_irqsave`](Self::lock_irqsave).
    #[doc(alias = "spin_lock_irq")]
    #[doc(alias = "raw_spin_lock_irq")]
    #[inline]
    pub fn lock_irq(&self) -> LockGuard<'_, T, B> {
        self.lock_in(CtxKind::Irq)
    }

    /// Saves the irq state and disables irqs, then acquires (`spin_lock_irqsave`);
    /// the guard holds the saved [`IrqFlags`] and restores them on drop
    /// (`spin_unlock_irqrestore`). Safe against a handler on this thread that
    /// takes the same lock.
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
    pub fn lock_irqsave(&self) -> LockGuard<'_, T, B> {
        self.lock_in(CtxKind::IrqSave)
    }

    /// Disables bottom halves, then acquires (`spin_lock_bh`); the guard unlocks
    /// and re-enables them (`spin_unlock_bh`).
    #[doc(alias = "spin_lock_bh")]
    #[doc(alias = "raw_spin_lock_bh")]
    #[inline]
    pub fn lock_bh(&self) -> LockGuard<'_, T, B> {
        self.lock_in(CtxKind::Bh)
    }

    /// Tries once to acquire (`spin_trylock`); `None` if the lock is held.
    ///
    /// ```
    /// use ksync::spinlock::SpinLock;
    /// let lock = SpinLock::new(());
    /// let g = lock.try_lock().expect("free");
    /// assert!(lock.try_lock().is_none());
    /// drop(g);
    /// assert!(lock.try_lock().is_some());
    /// ```
    #[doc(alias = "spin_trylock")]
    #[doc(alias = "raw_spin_trylock")]
    #[inline]
    pub fn try_lock(&self) -> Option<LockGuard<'_, T, B>> {
        self.try_lock_in(CtxKind::Plain)
    }

    /// [`try_lock`](Self::try_lock) with irqs disabled while held
    /// (`spin_trylock_irq`); on failure irqs are re-enabled.
    #[doc(alias = "spin_trylock_irq")]
    #[doc(alias = "raw_spin_trylock_irq")]
    #[inline]
    pub fn try_lock_irq(&self) -> Option<LockGuard<'_, T, B>> {
        self.try_lock_in(CtxKind::Irq)
    }

    /// [`try_lock`](Self::try_lock) with irqs saved and disabled
    /// (`spin_trylock_irqsave`); on failure the flags are restored at once.
    #[doc(alias = "spin_trylock_irqsave")]
    #[doc(alias = "raw_spin_trylock_irqsave")]
    #[inline]
    pub fn try_lock_irqsave(&self) -> Option<LockGuard<'_, T, B>> {
        self.try_lock_in(CtxKind::IrqSave)
    }

    /// [`try_lock`](Self::try_lock) with bottom halves disabled
    /// (`spin_trylock_bh`); on failure they are re-enabled.
    #[doc(alias = "spin_trylock_bh")]
    #[doc(alias = "raw_spin_trylock_bh")]
    #[inline]
    pub fn try_lock_bh(&self) -> Option<LockGuard<'_, T, B>> {
        self.try_lock_in(CtxKind::Bh)
    }

    /// Whether the lock is held (`spin_is_locked`). A snapshot, for assertions
    /// and heuristics only.
    #[doc(alias = "spin_is_locked")]
    #[doc(alias = "raw_spin_is_locked")]
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Whether other threads are waiting for the lock (`spin_is_contended`): a
    /// holder in a long loop may drop and retake it (`cond_resched_lock`).
    #[doc(alias = "spin_is_contended")]
    #[doc(alias = "raw_spin_is_contended")]
    #[inline]
    pub fn is_contended(&self) -> bool {
        self.raw.is_contended()
    }

    /// Waits until the lock is not held, without taking it (`spin_unlock_wait`,
    /// removed from the kernel in 4.13): everything the holder did before its
    /// unlock is visible afterwards (Acquire fence).
    #[doc(alias = "spin_unlock_wait")]
    #[doc(alias = "raw_spin_unlock_wait")]
    pub fn unlock_wait(&self) {
        let spin = Spin::new();
        while self.raw.is_locked() {
            spin.snooze();
        }
        // Upgrades the Relaxed `is_locked` load that saw the lock free: pairs
        // with the holder's Release unlock.
        crate::loom::sync::atomic::fence(crate::loom::sync::atomic::Ordering::Acquire);
    }

    /// A mutable reference to the data, with no locking: `&mut self` proves no
    /// one else can hold the lock.
    #[inline]
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The raw algorithm under this lock.
    #[inline]
    pub fn raw(&self) -> &B {
        &self.raw
    }

    /// A raw pointer to the data (for FFI-style code that holds the lock by other
    /// means). Dereferencing it is up to the caller.
    #[inline]
    pub fn data_ptr(&self) -> *mut T {
        self.data.get()
    }

    /// Releases the lock without a guard, e.g. after `mem::forget` on a guard.
    ///
    /// # Safety
    /// The lock must be held by the calling thread through a guard that was
    /// forgotten; the preempt count and irq/bh state the guard would have
    /// restored are *not* restored (do that yourself).
    #[inline]
    pub unsafe fn force_unlock(&self) {
        lockdep::release(&self.dep_map);
        // SAFETY: the caller guarantees the lock is held by this thread.
        unsafe { self.raw.unlock() };
    }
}

impl<T: Default, B: RawSpin> Default for Lock<T, B> {
    #[track_caller]
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T, B: RawSpin> From<T> for Lock<T, B> {
    #[track_caller]
    fn from(data: T) -> Self {
        Self::new(data)
    }
}

impl<T: ?Sized + fmt::Debug, B: RawSpin> fmt::Debug for Lock<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Lock");
        d.field("algorithm", &B::NAME);
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// The guard of a [`Lock`]: access to the data while the lock is held; unlocks
/// on drop (`spin_unlock`, `spin_unlock_irq`, `spin_unlock_irqrestore`,
/// `spin_unlock_bh`, by the variant that made it).
///
/// `!Send`: the unlock must run on the locking thread, because the preempt
/// count, the irq/bh state it restores and lockdep's held-lock stack are per
/// thread (and the MCS algorithm's queue node is the thread's own).
///
/// ```compile_fail
/// use ksync::spinlock::SpinLock;
/// static L: SpinLock<u32> = SpinLock::new(0);
/// let g = L.lock();
/// std::thread::spawn(move || drop(g)); // error: the guard is not Send
/// ```
#[doc(alias = "spin_unlock")]
#[doc(alias = "spin_unlock_irq")]
#[doc(alias = "spin_unlock_irqrestore")]
#[doc(alias = "spin_unlock_bh")]
#[doc(alias = "raw_spin_unlock")]
#[doc(alias = "raw_spin_unlock_irqrestore")]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a, T: ?Sized, B: RawSpin> {
    lock: &'a Lock<T, B>,
    ctx: Ctx,
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Sync, B: RawSpin> Sync for LockGuard<'_, T, B> {}

impl<T: ?Sized, B: RawSpin> LockGuard<'_, T, B> {
    /// The irq flags saved by [`Lock::lock_irqsave`], if this guard holds any.
    pub fn saved_flags(&self) -> Option<IrqFlags> {
        match self.ctx {
            Ctx::IrqSave(f) => Some(f),
            _ => None,
        }
    }
}

impl<T: ?Sized, B: RawSpin> Deref for LockGuard<'_, T, B> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock
        // (type invariant), so no `&mut T` exists elsewhere.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, B: RawSpin> DerefMut for LockGuard<'_, T, B> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized, B: RawSpin> Drop for LockGuard<'_, T, B> {
    /// `spin_unlock` and its variants: lockdep release, raw unlock, context restore.
    #[inline]
    fn drop(&mut self) {
        lockdep::release(&self.lock.dep_map);
        // SAFETY: the guard's existence proves this thread holds the lock.
        unsafe { self.lock.raw.unlock() };
        self.ctx.exit();
    }
}

impl<T: ?Sized + fmt::Debug, B: RawSpin> fmt::Debug for LockGuard<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display, B: RawSpin> fmt::Display for LockGuard<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
