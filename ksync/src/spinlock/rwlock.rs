//! The generic reader-writer spinlock [`RwLockOf<T, B>`] over any raw rw
//! algorithm, and its guards. [`RwLock<T>`](super::RwLock) (`rwlock_t`) is the
//! queued fair one; [`ReaderPrefRwLock<T>`](super::ReaderPrefRwLock) the classic
//! reader-preferring word.

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use super::raw::RawRwSpin;
use crate::lock::{Ctx, CtxKind, ExitOnUnwind};
use crate::lockdep::{self, AcquireKind, LockdepMap};

/// A reader-writer spinlock protecting a `T`, over the raw algorithm `B`.
///
/// # Invariants
/// `data` is read only through a [`ReadGuard`] or written through a
/// [`WriteGuard`], which exist only while `raw` is held in that mode by their
/// thread; or through `&mut self` / by value.
pub struct RwLockOf<T: ?Sized, B: RawRwSpin> {
    raw: B,
    dep_map: LockdepMap,
    data: UnsafeCell<T>,
}

// SAFETY: readers on several threads share `&T` (needs `T: Sync`); a writer gets
// `&mut T` and may move values across threads (needs `T: Send`).
unsafe impl<T: ?Sized + Send + Sync, B: RawRwSpin> Sync for RwLockOf<T, B> {}
// SAFETY: sending the lock sends the `T`.
unsafe impl<T: ?Sized + Send, B: RawRwSpin> Send for RwLockOf<T, B> {}

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
        RwLockOf {
            raw: B::INIT,
            dep_map: LockdepMap::new_spinning("rwlock_t"),
            data: UnsafeCell::new(data),
        }
    }

    /// A new unlocked rwlock (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(data: T) -> Self {
        RwLockOf {
            raw: B::new(),
            dep_map: LockdepMap::new_spinning("rwlock_t"),
            data: UnsafeCell::new(data),
        }
    }

    /// Consumes the lock and returns the data.
    #[inline]
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized, B: RawRwSpin> RwLockOf<T, B> {
    #[inline(always)]
    fn read_kind() -> AcquireKind {
        // rwlock_t readers are recursive (a reader may re-enter while another
        // read is held), except where the lock makes them wait behind a
        // waiting writer: the fair lock queues non-interrupt readers, so there
        // a nested read_lock can deadlock and is a plain shared acquisition —
        // the kernel's `rwlock_acquire_read` with `read_lock_is_recursive()`
        // (recursive only for !CONFIG_QUEUED_RWLOCKS or in_interrupt()).
        if B::NAME == "queued-rw" && !crate::sched::in_interrupt() {
            AcquireKind::Read
        } else {
            AcquireKind::RecursiveRead
        }
    }

    #[inline(always)]
    fn read_in(&self, kind: CtxKind) -> ReadGuard<'_, T, B> {
        let ctx = Ctx::enter(kind);
        // Before waiting (recursion reported, not hung); a panicking report
        // restores the context.
        let undo = ExitOnUnwind(ctx);
        lockdep::acquire(&self.dep_map, Self::read_kind(), false, 0);
        core::mem::forget(undo);
        self.raw.read();
        // INVARIANT: a read lock is held by this thread until the guard drops.
        ReadGuard {
            lock: self,
            ctx,
            _not_send: PhantomData,
        }
    }

    #[inline(always)]
    fn write_in(&self, kind: CtxKind) -> WriteGuard<'_, T, B> {
        let ctx = Ctx::enter(kind);
        // As in `read_in`.
        let undo = ExitOnUnwind(ctx);
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, false, 0);
        core::mem::forget(undo);
        self.raw.write();
        // INVARIANT: the write lock is held by this thread until the guard drops.
        WriteGuard {
            lock: self,
            ctx,
            _not_send: PhantomData,
        }
    }

    #[inline(always)]
    fn try_read_in(&self, kind: CtxKind) -> Option<ReadGuard<'_, T, B>> {
        let ctx = Ctx::enter(kind);
        if self.raw.try_read() {
            lockdep::acquire(&self.dep_map, Self::read_kind(), true, 0);
            // INVARIANT: as in `read_in`.
            Some(ReadGuard {
                lock: self,
                ctx,
                _not_send: PhantomData,
            })
        } else {
            ctx.exit();
            None
        }
    }

    #[inline(always)]
    fn try_write_in(&self, kind: CtxKind) -> Option<WriteGuard<'_, T, B>> {
        let ctx = Ctx::enter(kind);
        if self.raw.try_write() {
            lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, true, 0);
            // INVARIANT: as in `write_in`.
            Some(WriteGuard {
                lock: self,
                ctx,
                _not_send: PhantomData,
            })
        } else {
            ctx.exit();
            None
        }
    }

    /// Acquires a read lock (`read_lock`); the guard drops it (`read_unlock`).
    ///
    /// ```
    /// use ksync::spinlock::RwLock;
    /// let l = RwLock::new(5);
    /// std::thread::scope(|s| {
    ///     let a = l.read();
    ///     // Readers share: another thread reads while this one holds a read lock.
    ///     // (Not twice on one thread: on the fair lock a writer arriving in
    ///     // between would deadlock that, and lockdep reports it.)
    ///     s.spawn(|| assert_eq!(*l.read(), 5)).join().unwrap();
    ///     assert_eq!(*a, 5);
    /// });
    /// ```
    #[doc(alias = "read_lock")]
    #[inline]
    pub fn read(&self) -> ReadGuard<'_, T, B> {
        self.read_in(CtxKind::Plain)
    }

    /// `read_lock_irq` / `read_unlock_irq`.
    #[doc(alias = "read_lock_irq")]
    #[inline]
    pub fn read_irq(&self) -> ReadGuard<'_, T, B> {
        self.read_in(CtxKind::Irq)
    }

    /// `read_lock_irqsave` / `read_unlock_irqrestore`.
    #[doc(alias = "read_lock_irqsave")]
    #[inline]
    pub fn read_irqsave(&self) -> ReadGuard<'_, T, B> {
        self.read_in(CtxKind::IrqSave)
    }

    /// `read_lock_bh` / `read_unlock_bh`.
    #[doc(alias = "read_lock_bh")]
    #[inline]
    pub fn read_bh(&self) -> ReadGuard<'_, T, B> {
        self.read_in(CtxKind::Bh)
    }

    /// Acquires the write lock (`write_lock`); the guard drops it
    /// (`write_unlock`).
    ///
    /// ```
    /// use ksync::spinlock::RwLock;
    /// let l = RwLock::new(Vec::new());
    /// l.write().push(1);
    /// assert!(l.try_read().is_some());
    /// let w = l.write();
    /// assert!(l.try_read().is_none() && l.try_write().is_none());
    /// drop(w);
    /// ```
    #[doc(alias = "write_lock")]
    #[inline]
    pub fn write(&self) -> WriteGuard<'_, T, B> {
        self.write_in(CtxKind::Plain)
    }

    /// `write_lock_irq` / `write_unlock_irq`.
    #[doc(alias = "write_lock_irq")]
    #[inline]
    pub fn write_irq(&self) -> WriteGuard<'_, T, B> {
        self.write_in(CtxKind::Irq)
    }

    /// `write_lock_irqsave` / `write_unlock_irqrestore`.
    #[doc(alias = "write_lock_irqsave")]
    #[inline]
    pub fn write_irqsave(&self) -> WriteGuard<'_, T, B> {
        self.write_in(CtxKind::IrqSave)
    }

    /// `write_lock_bh` / `write_unlock_bh`.
    #[doc(alias = "write_lock_bh")]
    #[inline]
    pub fn write_bh(&self) -> WriteGuard<'_, T, B> {
        self.write_in(CtxKind::Bh)
    }

    /// Tries once for a read lock (`read_trylock`).
    #[doc(alias = "read_trylock")]
    #[inline]
    pub fn try_read(&self) -> Option<ReadGuard<'_, T, B>> {
        self.try_read_in(CtxKind::Plain)
    }

    /// Tries once for a read lock with irqs saved and disabled
    /// (`read_trylock_irqsave`).
    #[doc(alias = "read_trylock_irqsave")]
    #[inline]
    pub fn try_read_irqsave(&self) -> Option<ReadGuard<'_, T, B>> {
        self.try_read_in(CtxKind::IrqSave)
    }

    /// Tries once for the write lock (`write_trylock`).
    #[doc(alias = "write_trylock")]
    #[inline]
    pub fn try_write(&self) -> Option<WriteGuard<'_, T, B>> {
        self.try_write_in(CtxKind::Plain)
    }

    /// Tries once for the write lock with irqs saved and disabled
    /// (`write_trylock_irqsave`).
    #[doc(alias = "write_trylock_irqsave")]
    #[inline]
    pub fn try_write_irqsave(&self) -> Option<WriteGuard<'_, T, B>> {
        self.try_write_in(CtxKind::IrqSave)
    }

    /// Whether readers or a writer hold the lock. A snapshot.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Whether a writer holds the lock. A snapshot.
    #[inline]
    pub fn is_write_locked(&self) -> bool {
        self.raw.is_write_locked()
    }

    /// A mutable reference to the data, with no locking.
    #[inline]
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The raw algorithm under this lock.
    #[inline]
    pub fn raw(&self) -> &B {
        &self.raw
    }
}

impl<T: Default, B: RawRwSpin> Default for RwLockOf<T, B> {
    #[track_caller]
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug, B: RawRwSpin> fmt::Debug for RwLockOf<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        d.field("algorithm", &B::NAME);
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<write-locked>")),
        };
        d.finish()
    }
}

/// A read lock on a [`RwLockOf`]; dropping it is `read_unlock` (or
/// `read_unlock_irq`/`_irqrestore`/`_bh` by the variant that made it).
///
/// `!Send`: the preempt count, irq state and lockdep's held-lock stack it
/// restores are per thread.
///
/// ```compile_fail
/// use ksync::spinlock::RwLock;
/// static L: RwLock<u32> = RwLock::new(0);
/// let g = L.read();
/// std::thread::spawn(move || drop(g)); // error: the guard is not Send
/// ```
#[doc(alias = "read_unlock")]
#[doc(alias = "read_unlock_irq")]
#[doc(alias = "read_unlock_irqrestore")]
#[doc(alias = "read_unlock_bh")]
#[must_use = "the read lock is released when the guard is dropped"]
pub struct ReadGuard<'a, T: ?Sized, B: RawRwSpin> {
    lock: &'a RwLockOf<T, B>,
    ctx: Ctx,
    _not_send: PhantomData<*mut ()>,
}

/// The write lock on a [`RwLockOf`]; dropping it is `write_unlock` (or
/// `write_unlock_irq`/`_irqrestore`/`_bh`).
///
/// `!Send`, for the same reasons as [`ReadGuard`].
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
#[must_use = "the write lock is released when the guard is dropped"]
pub struct WriteGuard<'a, T: ?Sized, B: RawRwSpin> {
    lock: &'a RwLockOf<T, B>,
    ctx: Ctx,
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: sharing a guard shares `&T` only.
unsafe impl<T: ?Sized + Sync, B: RawRwSpin> Sync for ReadGuard<'_, T, B> {}
// SAFETY: sharing a guard shares `&T` only.
unsafe impl<T: ?Sized + Sync, B: RawRwSpin> Sync for WriteGuard<'_, T, B> {}

impl<T: ?Sized, B: RawRwSpin> Deref for ReadGuard<'_, T, B> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a read lock is held (type invariant): no writer has `&mut T`.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, B: RawRwSpin> Deref for WriteGuard<'_, T, B> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held (type invariant): no other reference.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, B: RawRwSpin> DerefMut for WriteGuard<'_, T, B> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write lock is held and `&mut self` is unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized, B: RawRwSpin> Drop for ReadGuard<'_, T, B> {
    #[inline]
    fn drop(&mut self) {
        lockdep::release(&self.lock.dep_map);
        // SAFETY: the guard proves this thread holds a read lock.
        unsafe { self.lock.raw.read_unlock() };
        self.ctx.exit();
    }
}

impl<T: ?Sized, B: RawRwSpin> Drop for WriteGuard<'_, T, B> {
    #[inline]
    fn drop(&mut self) {
        lockdep::release(&self.lock.dep_map);
        // SAFETY: the guard proves this thread holds the write lock.
        unsafe { self.lock.raw.write_unlock() };
        self.ctx.exit();
    }
}

impl<T: ?Sized + fmt::Debug, B: RawRwSpin> fmt::Debug for ReadGuard<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug, B: RawRwSpin> fmt::Debug for WriteGuard<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
