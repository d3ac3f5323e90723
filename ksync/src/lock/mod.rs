//! The one generic lock: [`Lock<T, B>`] guards a `T` with a raw lock `B` (a
//! [`Backend`]), and a [`Guard`] — or a [`ReadGuard`] on the shared side of a
//! reader-writer lock — proves it is held and unlocks on drop. Every lock of
//! ksync is an alias over it (the shape of Rust-for-Linux's `kernel::sync::lock`):
//!
//! | lock | `B` (backend) | plain guard state |
//! |---|---|---|
//! | [`SpinLock<T>`](crate::spinlock::SpinLock), [`RawSpinLock<T>`](crate::spinlock::RawSpinLock), [`spinlock::Lock<T, R>`](crate::spinlock::Lock) | [`SpinBackend<R>`](crate::spinlock::SpinBackend) | [`Preempt`] |
//! | [`RwLock<T>`](crate::spinlock::RwLock), [`RwLockOf<T, R>`](crate::spinlock::RwLockOf) | [`RwSpinBackend<R>`](crate::spinlock::RwSpinBackend) (shared) | [`Preempt`] |
//! | [`Mutex<T>`](crate::mutex::Mutex) | [`RawMutex`](crate::mutex::RawMutex) | `()` |
//! | [`RwSemaphore<T>`](crate::rwsem::RwSemaphore) | [`RawRwSemaphore`](crate::rwsem::RawRwSemaphore) (shared) | `()` |
//! | [`LocalLock<T>`](crate::percpu::LocalLock) | [`RawLocalLock`](crate::percpu::RawLocalLock) | [`Preempt`] |
//! | [`RtMutex<T>`](crate::rtmutex::RtMutex) | [`RawRtMutex`](crate::rtmutex::RawRtMutex) | `()` |
//! | [`PercpuRwSemaphore<T>`](crate::percpu_rwsem::PercpuRwSemaphore) | [`RawPercpuRwSemaphore`](crate::percpu_rwsem::RawPercpuRwSemaphore) (shared) | `()` |
//!
//! A backend is the raw lock (the lock word, its algorithm and its lockdep map),
//! with no data and no context handling. The guard's third parameter, its
//! [`GuardState`], is what the unlock must restore besides the lock: the plain
//! variant's is the backend's own ([`Backend::GuardState`]); a spinlock's `_irq`,
//! `_irqsave` and `_bh` methods return guards over [`IrqOff`], [`IrqSave`] (the
//! saved flags) and [`BhOff`]. Being types, the plain guard's drop has nothing to
//! match and costs the raw unlock and one decrement of the preempt count (the
//! kernel's non-debug `preempt_enable`; the underflow check stays in debug
//! builds and with `lockdep`).
//!
//! ## The two paths (DESIGN.md)
//! Acquire: [`GuardState::enter`] (irqs or bhs off, then the preempt count, as the
//! kernel's `__raw_spin_lock_irqsave`) → lockdep `acquire` (before waiting, so
//! recursion is reported instead of hanging) → the backend's lock, which may spin
//! or sleep. Release: lockdep `release` → the backend's unlock →
//! [`GuardState::exit`] (irqs restored before the preempt count drops; for bhs the
//! count drops first). Both live once, here, for every lock.
//!
//! [`Guard::do_unlocked`] runs a closure with the lock released and retakes it
//! after (both paths above, in order): what a condition variable's wait needs.
//!
//! A backend whose waits sleep ([`SleepingBackend`], [`SleepingSharedBackend`])
//! gets the interruptible and killable entry points (`lock_interruptible`,
//! `read_killable`, …) from the generic lock too, written once.
//!
//! ## Guards are `!Send`
//! The unlock must run on the locking thread: the preempt count, the irq/bh state
//! a guard restores and lockdep's held-lock stack are per thread, the mutex
//! records its owner's tid, and the MCS lock's queue node is the thread's own.
//!
//! ```compile_fail
//! use ksync::spinlock::SpinLock;
//! static L: SpinLock<u32> = SpinLock::new(0);
//! let g = L.lock();
//! std::thread::spawn(move || drop(g)); // error: the guard is not Send
//! ```
//!
//! ## `Sync`
//! A lock that gives `&mut T` to one thread at a time is `Sync` for `T: Send`;
//! one that lets readers share `&T` at once needs `T: Send + Sync` too
//! ([`Backend::Concurrent`]).
//!
//! ```
//! fn must_be_sync<T: Sync>(_: &T) {}
//! must_be_sync(&ksync::mutex::Mutex::new(std::cell::Cell::new(0))); // one at a time
//! ```
//!
//! ```compile_fail
//! fn must_be_sync<T: Sync>(_: &T) {}
//! // Readers on two threads would share the Cell: not Sync.
//! must_be_sync(&ksync::spinlock::RwLock::new(std::cell::Cell::new(0)));
//! ```
//!
//! No poisoning (as in the kernel and parking_lot): a panic unwinding through a
//! guard releases the lock.

#[cfg(all(feature = "lock_api", not(loom)))]
mod adapters;
mod sleeping;
mod state;
pub(crate) mod twoword;

pub use sleeping::{SleepingBackend, SleepingSharedBackend};
pub use state::{AnyCtx, BhOff, GuardState, IrqOff, IrqSave, Preempt};

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::ctx::IrqFlags;
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::UnsafeCell;

/// A raw lock that [`Lock<T, B>`] wraps: the lock word and its algorithm, with
/// its lockdep map, and no data (`arch_spinlock_t` + `dep_map`, `struct mutex`).
///
/// The backend's methods do not call lockdep and change no context: [`Lock`]
/// does both, around them. [`lock`](Backend::lock) may spin or sleep; a backend
/// that can be interrupted offers that through its own `Result`-returning entry
/// points, which its lock type passes to [`Lock`]'s acquire path (the mutex's
/// [`lock_interruptible`](crate::mutex::Mutex::lock_interruptible)).
///
/// # Safety
/// Implementations must guarantee mutual exclusion: between a successful
/// [`lock`](Backend::lock) or [`try_lock`](Backend::try_lock) and the matching
/// [`unlock`](Backend::unlock) no other `lock`/`try_lock` succeeds (nor, for a
/// [`SharedBackend`], a shared lock), and each acquisition synchronizes-with
/// (Acquire) the release (Release) it follows, so the critical sections are
/// ordered. [`Concurrent`](Backend::Concurrent) must be `()` unless the backend
/// admits several holders at once.
pub unsafe trait Backend: Send + Sync {
    /// What the plain variant's guard restores on unlock: [`Preempt`] for
    /// spinning locks, `()` for sleeping ones.
    type GuardState: GuardState;

    /// What several threads may see of the `T` at once: `()` for an exclusive
    /// lock, `T` itself for one with concurrent readers. [`Lock<T, B>`] is
    /// `Sync` when `T: Send` and `Concurrent<T>: Sync`.
    type Concurrent<T: ?Sized>: ?Sized;

    /// Short name for `Debug` and diagnostics, e.g. `"queued"`, `"mutex"`.
    const NAME: &'static str;

    /// A new unlocked raw lock whose lockdep class is the caller's location
    /// (for `Default` and `From`; the const constructors are per lock type).
    #[track_caller]
    fn new() -> Self;

    /// The lockdep map, or `None` for a lock that lockdep does not track.
    fn dep_map(&self) -> Option<&LockdepMap>;

    /// Acquires the lock, waiting (spinning or sleeping) until it is free.
    fn lock(&self);

    /// Tries once to acquire the lock.
    fn try_lock(&self) -> bool;

    /// Releases the lock.
    ///
    /// # Safety
    /// The lock must be held exclusively by the calling thread.
    unsafe fn unlock(&self);

    /// Whether the lock is held by someone. A snapshot.
    fn is_locked(&self) -> bool;
}

/// A [`Backend`] with a shared (reader) side: `rwlock_t`, `struct rw_semaphore`.
///
/// # Safety
/// Besides [`Backend`]'s contract: while a shared lock is held, no exclusive
/// lock is granted, and each shared acquisition synchronizes-with (Acquire) the
/// exclusive release (Release) it follows.
pub unsafe trait SharedBackend: Backend {
    /// How lockdep records a shared acquisition: [`AcquireKind::Read`] unless
    /// readers may nest past a waiting writer (`RecursiveRead`).
    #[inline(always)]
    fn read_kind(&self) -> AcquireKind {
        AcquireKind::Read
    }

    /// Acquires a shared lock, waiting until no writer holds or blocks it.
    fn lock_shared(&self);

    /// Tries once to acquire a shared lock.
    fn try_lock_shared(&self) -> bool;

    /// Releases a shared lock.
    ///
    /// # Safety
    /// A shared lock must be held by the calling thread.
    unsafe fn unlock_shared(&self);

    /// [`lock_shared`](Self::lock_shared), returning a hint that the
    /// [`ReadGuard`] keeps for [`unlock_shared_hinted`](Self::unlock_shared_hinted):
    /// where the backend recorded this hold (a reader's own counter, as the
    /// `rcu_read_lock` guard keeps its counter), so that the release need not
    /// look it up again. `0`, no hint, by default.
    #[inline(always)]
    fn lock_shared_hinted(&self) -> usize {
        self.lock_shared();
        0
    }

    /// Releases a shared lock taken with `hint`.
    ///
    /// # Safety
    /// As [`unlock_shared`](Self::unlock_shared); `hint` is what the
    /// acquisition of this hold returned from
    /// [`lock_shared_hinted`](Self::lock_shared_hinted), or `0`.
    #[inline(always)]
    unsafe fn unlock_shared_hinted(&self, hint: usize) {
        let _ = hint;
        // SAFETY: our caller holds a shared lock on this thread.
        unsafe { self.unlock_shared() }
    }

    /// Whether a writer holds the lock. A snapshot.
    fn is_write_locked(&self) -> bool;
}

/// Undoes a [`GuardState::enter`] if the lockdep hook between it and the lock
/// panics (`KSYNC_LOCKDEP=panic` reporting recursion or an inversion): the
/// caller `mem::forget`s it once the hook returned. Without the `lockdep`
/// feature the hook cannot panic and this compiles to nothing.
struct ExitOnUnwind<C: GuardState>(C);

impl<C: GuardState> Drop for ExitOnUnwind<C> {
    #[inline]
    fn drop(&mut self) {
        self.0.exit();
    }
}

/// The one release path, on the raw lock alone (what a mapped guard keeps):
/// lockdep `release` → `unlock` → `ctx.exit()`.
///
/// # Safety
/// This thread holds `raw` in the mode that `unlock` releases, taken through
/// [`Lock`]'s acquire paths with the state `ctx`, and no guard of that
/// acquisition is used after this.
#[inline(always)]
unsafe fn release_raw<B: Backend, C: GuardState>(raw: &B, ctx: C, unlock: impl FnOnce(&B)) {
    if let Some(map) = raw.dep_map() {
        lockdep::release(map);
    }
    unlock(raw);
    ctx.exit();
}

/// A `T` guarded by the raw lock `B`. Aliases name the kernel's locks: see the
/// [module docs](self).
///
/// # Invariants
/// `data` is accessed only through a [`Guard`] (which exists only while `raw` is
/// held exclusively by its thread), a [`ReadGuard`] (shared access while a
/// shared lock is held), `&mut self`, or by value.
pub struct Lock<T: ?Sized, B: Backend> {
    pub(crate) raw: B,
    data: UnsafeCell<T>,
}

// SAFETY: a `&Lock` hands `&mut T` to one thread at a time, which moves the `T`
// between threads: `T: Send` is needed, and enough for an exclusive lock (as for
// `std::sync::Mutex`). A lock with concurrent readers also lets several threads
// hold `&T` at once, which needs `T: Sync`: its backend's `Concurrent<T>` is `T`.
// `B` is `Sync` by `Backend`'s supertrait.
unsafe impl<T: ?Sized + Send, B: Backend> Sync for Lock<T, B> where B::Concurrent<T>: Sync {}

impl<T, B: Backend> Lock<T, B> {
    /// A lock over `raw` (unlocked) holding `data`. The lock types' own `new`
    /// (`SpinLock::new`, `Mutex::new` …) call this with their raw lock.
    #[cfg(not(loom))]
    #[inline]
    pub const fn from_raw(raw: B, data: T) -> Self {
        Lock {
            raw,
            data: UnsafeCell::new(data),
        }
    }

    /// A lock over `raw` holding `data` (loom build).
    #[cfg(loom)]
    pub fn from_raw(raw: B, data: T) -> Self {
        Lock {
            raw,
            data: UnsafeCell::new(data),
        }
    }

    /// Consumes the lock and returns the data.
    #[inline]
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

/// `lockdep::assert_held(&lock)` and the other assertions: the backend's map.
impl<T: ?Sized, B: Backend> lockdep::LockdepTracked for Lock<T, B> {
    #[inline]
    fn lockdep_map(&self) -> Option<&LockdepMap> {
        self.raw.dep_map()
    }
}

impl<T: ?Sized, B: Backend> Lock<T, B> {
    /// The one acquire path: `enter` (the context change) → lockdep `acquire`
    /// → `lock` (the backend's wait). On `Err` the lock was not taken: lockdep's
    /// acquisition and the context change are undone.
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub(crate) fn acquire<C: GuardState, E>(
        &self,
        enter: impl FnOnce() -> C,
        kind: AcquireKind,
        subclass: u32,
        lock: impl FnOnce(&B) -> Result<(), E>,
    ) -> Result<C, E> {
        let ctx = enter();
        // Before waiting, as the kernel's spin_acquire + LOCK_CONTENDED, so
        // recursion is reported instead of hanging. If the report panics, the
        // context is restored and the lock was never touched.
        let undo = ExitOnUnwind(ctx);
        if let Some(map) = self.raw.dep_map() {
            lockdep::acquire(map, kind, false, subclass);
        }
        core::mem::forget(undo);
        match lock(&self.raw) {
            Ok(()) => {
                // Lock statistics (one relaxed load while they are off): the
                // wait, if the backend's slow path reported one, ends here.
                if let Some(map) = self.raw.dep_map() {
                    lockdep::lock_acquired(map);
                }
                Ok(ctx)
            }
            Err(e) => {
                if let Some(map) = self.raw.dep_map() {
                    lockdep::release(map);
                }
                ctx.exit();
                Err(e)
            }
        }
    }

    /// The one try-acquire path: `C::enter` → `try_lock` → lockdep `acquire`
    /// (as a trylock, after success); on failure the context is restored.
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub(crate) fn try_acquire<C: GuardState>(
        &self,
        kind: AcquireKind,
        try_lock: impl FnOnce(&B) -> bool,
    ) -> Option<C> {
        let ctx = C::enter();
        if try_lock(&self.raw) {
            if let Some(map) = self.raw.dep_map() {
                lockdep::acquire(map, kind, true, 0);
                lockdep::lock_acquired(map);
            }
            Some(ctx)
        } else {
            ctx.exit();
            None
        }
    }

    /// The one release path: lockdep `release` → `unlock` → `ctx.exit()`.
    ///
    /// # Safety
    /// This thread holds the lock in the mode that `unlock` releases, taken
    /// through [`acquire`](Self::acquire) or [`try_acquire`](Self::try_acquire)
    /// with the state `ctx`, and no guard of that acquisition is used after this.
    #[inline(always)]
    pub(crate) unsafe fn release<C: GuardState>(&self, ctx: C, unlock: impl FnOnce(&B)) {
        // SAFETY: the caller's contract, for this lock's raw lock.
        unsafe { release_raw(&self.raw, ctx, unlock) }
    }

    /// Acquires exclusively with the guard state `C` (a lock variant).
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub(crate) fn lock_in<C: GuardState>(&self, subclass: u32) -> Guard<'_, T, B, C> {
        let r = self.acquire(C::enter, AcquireKind::Exclusive, subclass, |b| {
            b.lock();
            Ok::<(), core::convert::Infallible>(())
        });
        let Ok(ctx) = r;
        // SAFETY: `acquire` took the lock exclusively on this thread with `ctx`.
        unsafe { Guard::new(self, ctx) }
    }

    /// Acquires exclusively (with the backend's own guard state) through
    /// `lock`, a backend entry point that may fail: an interruptible or killable
    /// sleep (`mutex_lock_interruptible`).
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub(crate) fn lock_with<E>(
        &self,
        lock: impl FnOnce(&B) -> Result<(), E>,
    ) -> Result<Guard<'_, T, B>, E> {
        let enter = <B::GuardState as GuardState>::enter;
        let ctx = self.acquire(enter, AcquireKind::Exclusive, 0, lock)?;
        // SAFETY: `acquire` took the lock exclusively on this thread with `ctx`.
        Ok(unsafe { Guard::new(self, ctx) })
    }

    /// Tries once to acquire exclusively with the guard state `C`.
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub(crate) fn try_lock_in<C: GuardState>(&self) -> Option<Guard<'_, T, B, C>> {
        let ctx = self.try_acquire::<C>(AcquireKind::Exclusive, B::try_lock)?;
        // SAFETY: `try_acquire` took the lock exclusively on this thread with `ctx`.
        Some(unsafe { Guard::new(self, ctx) })
    }

    /// Acquires the lock, waiting until it is free; the guard unlocks on drop.
    /// A spinlock spins (then sleeps on a futex until kicked) with the preempt
    /// count raised from before the wait until the unlock (`spin_lock`); a mutex
    /// or rwsem (write side) sleeps uninterruptibly (`mutex_lock`, `down_write`);
    /// a [`LocalLock`](crate::percpu::LocalLock) disables preemption
    /// (`local_lock`).
    ///
    /// It returns the guard itself, not std's `LockResult`: ksync's locks do not
    /// poison. A panic that unwinds through a guard releases the lock, and the
    /// next `lock` gets the data as the panicking thread left it (as in the
    /// kernel and parking_lot).
    ///
    /// ```
    /// use ksync::spinlock::SpinLock;
    /// let lock = SpinLock::new(vec![1]);
    /// lock.lock().push(2);
    /// assert_eq!(*lock.lock(), [1, 2]);
    /// ```
    ///
    /// # Panics
    /// A mutex panics on recursive locking by its owner and in interrupt
    /// context (it would deadlock or sleep where it must not).
    ///
    /// ```should_panic
    /// let m = ksync::mutex::Mutex::new(());
    /// let _g = m.lock();
    /// let _g2 = m.lock(); // panics: recursive locking
    /// ```
    #[doc(alias = "spin_lock")]
    #[doc(alias = "raw_spin_lock")]
    #[doc(alias = "mutex_lock")]
    #[doc(alias = "local_lock")]
    #[doc(alias = "mutex_enter")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock(&self) -> Guard<'_, T, B> {
        self.lock_in(0)
    }

    /// [`lock`](Self::lock) with a lockdep subclass (`spin_lock_nested`,
    /// `mutex_lock_nested`): taking two locks of one class nested — a parent and
    /// a child of the same type, say — is reported as possible recursive locking
    /// unless the inner acquisition names a different subclass. Without the
    /// `lockdep` feature it is `lock`.
    ///
    /// ```
    /// use ksync::spinlock::SpinLock;
    /// let locks: Vec<SpinLock<u32>> = (0..2).map(SpinLock::new).collect(); // one class
    /// let parent = locks[0].lock();
    /// let child = locks[1].lock_nested(1); // SINGLE_DEPTH_NESTING
    /// assert_eq!(*parent + *child, 1);
    /// ```
    ///
    /// ```
    /// use ksync::mutex::Mutex;
    /// // One creation site: one lock class for every node.
    /// let nodes: Vec<Mutex<u32>> = (0..2).map(Mutex::new).collect();
    /// let parent = nodes[0].lock();
    /// let child = nodes[1].lock_nested(1); // SINGLE_DEPTH_NESTING: no report
    /// assert_eq!(*parent + *child, 1);
    /// # drop((child, parent));
    /// # assert!(ksync::lockdep::take_reports().is_empty());
    /// ```
    #[doc(alias = "spin_lock_nested")]
    #[doc(alias = "raw_spin_lock_nested")]
    #[doc(alias = "mutex_lock_nested")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_nested(&self, subclass: u32) -> Guard<'_, T, B> {
        self.lock_in(subclass)
    }

    /// [`lock`](Self::lock) under a nest lock (`mutex_lock_nest_lock`,
    /// `spin_lock_nest_lock`): `nest` is the guard of an outer lock that
    /// serializes every acquisition of this lock's class, so lockdep lets any
    /// number of locks of the class be held together under it (as one entry,
    /// not as recursion) and reports taking one without `nest` held. Without
    /// the `lockdep` feature it is `lock`.
    ///
    /// ```
    /// use ksync::mutex::Mutex;
    /// let outer = Mutex::new(());
    /// // One creation site: one lock class for every item.
    /// let items: Vec<Mutex<u32>> = (0..3).map(Mutex::new).collect();
    /// let o = outer.lock();
    /// let held: Vec<_> = items.iter().map(|m| m.lock_nest_lock(&o)).collect();
    /// assert_eq!(held.iter().map(|g| **g).sum::<u32>(), 3);
    /// drop(held);
    /// drop(o);
    /// # assert!(ksync::lockdep::take_reports().is_empty());
    /// ```
    #[doc(alias = "mutex_lock_nest_lock")]
    #[doc(alias = "spin_lock_nest_lock")]
    #[doc(alias = "raw_spin_lock_nest_lock")]
    #[inline]
    pub fn lock_nest_lock<U: ?Sized, B2: Backend, C2: GuardState>(
        &self,
        nest: &Guard<'_, U, B2, C2>,
    ) -> Guard<'_, T, B> {
        let ctx = <B::GuardState as GuardState>::enter();
        // As in `acquire`: lockdep before the wait; a report that panics
        // restores the context.
        let undo = ExitOnUnwind(ctx);
        match (self.raw.dep_map(), nest.lock.raw.dep_map()) {
            (Some(map), Some(outer)) => {
                lockdep::acquire_nest(map, AcquireKind::Exclusive, false, outer)
            }
            (Some(map), None) => lockdep::acquire(map, AcquireKind::Exclusive, false, 0),
            (None, _) => {}
        }
        core::mem::forget(undo);
        self.raw.lock();
        // SAFETY: we took the lock exclusively on this thread with `ctx`.
        unsafe { Guard::new(self, ctx) }
    }

    /// Tries once to acquire (`spin_trylock`, `mutex_trylock`,
    /// `down_write_trylock`); `None` if the lock is held.
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
    #[doc(alias = "mutex_trylock")]
    #[doc(alias = "mutex_tryenter")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_lock(&self) -> Option<Guard<'_, T, B>> {
        self.try_lock_in()
    }

    /// Whether the lock is held (`spin_is_locked`, `mutex_is_locked`,
    /// `rwsem_is_locked`). A snapshot, for assertions and heuristics only.
    #[doc(alias = "spin_is_locked")]
    #[doc(alias = "raw_spin_is_locked")]
    #[doc(alias = "mutex_is_locked")]
    #[doc(alias = "rwsem_is_locked")]
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// A mutable reference to the data, with no locking: `&mut self` proves no
    /// one else can hold the lock.
    #[inline]
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` excludes every other access to the data.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// A raw pointer to the data (for code that holds the lock by other means,
    /// such as the raw lock's own API). Dereferencing it is up to the caller.
    #[inline]
    pub fn data_ptr(&self) -> *mut T {
        self.data.with_mut(|p| p)
    }
}

impl<T: ?Sized, B: SharedBackend> Lock<T, B> {
    /// Acquires a shared lock with the guard state `C` (a lock variant).
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub(crate) fn read_in<C: GuardState>(&self, subclass: u32) -> ReadGuard<'_, T, B, C> {
        let kind = self.raw.read_kind();
        let mut hint = 0;
        let r = self.acquire(C::enter, kind, subclass, |b| {
            hint = b.lock_shared_hinted();
            Ok::<(), core::convert::Infallible>(())
        });
        let Ok(ctx) = r;
        // SAFETY: `acquire` took a shared lock on this thread with `ctx`, and
        // `lock_shared_hinted` returned `hint`.
        unsafe { ReadGuard::new_hinted(self, ctx, hint) }
    }

    /// Acquires a shared lock (with the backend's own guard state) through
    /// `lock`, a backend entry point that may fail (`down_read_killable`).
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub(crate) fn read_with<E>(
        &self,
        lock: impl FnOnce(&B) -> Result<(), E>,
    ) -> Result<ReadGuard<'_, T, B>, E> {
        let enter = <B::GuardState as GuardState>::enter;
        let ctx = self.acquire(enter, self.raw.read_kind(), 0, lock)?;
        // SAFETY: `acquire` took a shared lock on this thread with `ctx`.
        Ok(unsafe { ReadGuard::new(self, ctx) })
    }

    /// Tries once to acquire a shared lock with the guard state `C`.
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub(crate) fn try_read_in<C: GuardState>(&self) -> Option<ReadGuard<'_, T, B, C>> {
        let ctx = self.try_acquire::<C>(self.raw.read_kind(), B::try_lock_shared)?;
        // SAFETY: `try_acquire` took a shared lock on this thread with `ctx`.
        Some(unsafe { ReadGuard::new(self, ctx) })
    }

    /// Acquires a shared (read) lock (`read_lock`, `down_read`); the guard drops
    /// it (`read_unlock`, `up_read`). Readers share; writers wait.
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
    #[doc(alias = "down_read")]
    #[doc(alias = "rw_enter")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn read(&self) -> ReadGuard<'_, T, B> {
        self.read_in(0)
    }

    /// Tries once for a shared lock (`read_trylock`, `down_read_trylock`).
    #[doc(alias = "read_trylock")]
    #[doc(alias = "down_read_trylock")]
    #[doc(alias = "rw_tryenter")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_read(&self) -> Option<ReadGuard<'_, T, B>> {
        self.try_read_in()
    }

    /// Acquires the exclusive (write) lock (`write_lock`, `down_write`): the same
    /// as [`lock`](Self::lock).
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
    #[doc(alias = "down_write")]
    #[doc(alias = "rw_enter")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn write(&self) -> Guard<'_, T, B> {
        self.lock_in(0)
    }

    /// Tries once for the exclusive lock (`write_trylock`, `down_write_trylock`).
    #[doc(alias = "write_trylock")]
    #[doc(alias = "down_write_trylock")]
    #[doc(alias = "rw_tryenter")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_write(&self) -> Option<Guard<'_, T, B>> {
        self.try_lock_in()
    }

    /// Whether a writer holds the lock (`rw_write_held`, though Solaris asks
    /// whether *this* thread is the writer). A snapshot.
    #[doc(alias = "rw_write_held")]
    #[inline]
    pub fn is_write_locked(&self) -> bool {
        self.raw.is_write_locked()
    }
}

impl<T: Default, B: Backend> Default for Lock<T, B> {
    #[track_caller]
    fn default() -> Self {
        Lock::from_raw(B::new(), T::default())
    }
}

impl<T, B: Backend> From<T> for Lock<T, B> {
    #[track_caller]
    fn from(data: T) -> Self {
        Lock::from_raw(B::new(), data)
    }
}

/// The name a user knows a lock by, for `Debug`: the alias over the backend
/// named `name` ([`Backend::NAME`]); `"Lock"` for a backend not listed here.
fn alias_name(name: &str) -> &'static str {
    match name {
        "queued" | "ticket" | "mcs" | "tas" | "ttas" => "SpinLock",
        "raw-queued" => "RawSpinLock",
        "queued-rw" | "reader-pref" => "RwLock",
        "mutex" => "Mutex",
        "rw_semaphore" => "RwSemaphore",
        "local_lock" => "LocalLock",
        _ => "Lock",
    }
}

/// Shows the data when the lock can be taken without waiting (one `try_lock`,
/// released at once), `<locked>` otherwise, under the lock's own name:
/// `Mutex { data: 5, .. }`, `SpinLock { data: <locked>, .. }`. A reader-writer
/// lock held by readers shows `<locked>` too (the check takes it exclusively).
/// The internal words are left out (`..`): they are a snapshot that means
/// nothing by the time it is printed.
///
/// ```
/// let m = ksync::mutex::Mutex::new(5);
/// assert_eq!(format!("{m:?}"), "Mutex { data: 5, .. }");
/// let g = m.lock();
/// assert_eq!(format!("{m:?}"), "Mutex { data: <locked>, .. }");
/// # drop(g);
/// ```
impl<T: ?Sized + fmt::Debug, B: Backend> fmt::Debug for Lock<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(alias_name(B::NAME));
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// The proof that a [`Lock`] is held exclusively: access to the data; unlocks on
/// drop (`spin_unlock`, `mutex_unlock`, `up_write`, `local_unlock`), then
/// restores its [`GuardState`] `C` (`spin_unlock_irq`, `spin_unlock_irqrestore`,
/// `spin_unlock_bh` by the variant that made it).
///
/// `!Send`: the unlock must run on the locking thread (see the
/// [module docs](self#guards-are-send)).
///
/// ```compile_fail
/// fn must_be_send<T: Send>(_: T) {}
/// let m = ksync::mutex::Mutex::new(0);
/// must_be_send(m.lock()); // error: the guard is not Send
/// ```
///
/// # Invariants
/// `lock` is held exclusively by the thread that made the guard, which entered
/// the context `state` before taking it.
#[doc(alias = "spin_unlock")]
#[doc(alias = "spin_unlock_irq")]
#[doc(alias = "spin_unlock_irqrestore")]
#[doc(alias = "spin_unlock_bh")]
#[doc(alias = "raw_spin_unlock")]
#[doc(alias = "raw_spin_unlock_irqrestore")]
#[must_use = "the lock is released when the guard is dropped"]
pub struct Guard<'a, T: ?Sized, B: Backend, C: GuardState = <B as Backend>::GuardState> {
    lock: &'a Lock<T, B>,
    state: C,
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: sharing a guard shares `&T` (hence `T: Sync`) and a copy of its state
// (`saved_flags`: a plain value); the unlock stays with the owner (`!Send`).
unsafe impl<T: ?Sized + Sync, B: Backend, C: GuardState> Sync for Guard<'_, T, B, C> {}

impl<'a, T: ?Sized, B: Backend, C: GuardState> Guard<'a, T, B, C> {
    /// # Safety
    /// This thread holds `lock` exclusively, taken after entering `state`.
    #[inline(always)]
    pub(crate) unsafe fn new(lock: &'a Lock<T, B>, state: C) -> Self {
        // INVARIANT: the caller took the lock exclusively on this thread, with `state`.
        Guard {
            lock,
            state,
            _not_send: PhantomData,
        }
    }

    /// The lock this guard holds: for a condition variable that hands the hold
    /// to the kernel and back ([`RtCondVar`](crate::rtmutex::RtCondVar)).
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn lock_ref(&self) -> &'a Lock<T, B> {
        self.lock
    }

    /// Takes the guard apart without unlocking: the caller now owns the
    /// exclusive hold and the state to restore.
    #[inline(always)]
    pub(crate) fn into_parts(self) -> (&'a Lock<T, B>, C) {
        let parts = (self.lock, self.state);
        core::mem::forget(self);
        parts
    }

    /// Unlocks now: the same as dropping the guard (`spin_unlock`,
    /// `mutex_unlock`, `up_write`, `local_unlock`).
    #[doc(alias = "mutex_unlock")]
    #[doc(alias = "up_write")]
    #[doc(alias = "local_unlock")]
    #[doc(alias = "mutex_exit")]
    #[doc(alias = "rw_exit")]
    #[inline]
    pub fn unlock(self) {
        drop(self)
    }

    /// The irq flags saved by a `lock_irqsave`, if this guard holds any.
    #[inline]
    pub fn saved_flags(&self) -> Option<IrqFlags> {
        self.state.saved_flags()
    }

    /// Runs `f` with the lock released and the guard's context restored, then
    /// retakes both (the release and acquire paths, in order): what a condition
    /// variable's wait does around its sleep. The relock is uninterruptible and
    /// records lockdep subclass 0. If `f` panics, the lock is retaken before the
    /// unwinding continues, so the guard's drop releases it as usual.
    ///
    /// ```
    /// use ksync::spinlock::SpinLock;
    /// let m = SpinLock::new(1);
    /// let mut g = m.lock();
    /// let seen = g.do_unlocked(|| *m.try_lock().expect("released meanwhile"));
    /// assert_eq!(seen, 1);
    /// assert!(m.try_lock().is_none()); // held again
    /// ```
    pub fn do_unlocked<U>(&mut self, f: impl FnOnce() -> U) -> U {
        struct Relock<'g, 'a, T: ?Sized, B: Backend, C: GuardState>(&'g mut Guard<'a, T, B, C>);
        impl<T: ?Sized, B: Backend, C: GuardState> Drop for Relock<'_, '_, T, B, C> {
            fn drop(&mut self) {
                let g = &mut *self.0;
                let r = g.lock.acquire(
                    || g.state.reenter(),
                    AcquireKind::Exclusive,
                    0,
                    |b| {
                        b.lock();
                        Ok::<(), core::convert::Infallible>(())
                    },
                );
                let Ok(state) = r;
                // INVARIANT: the lock is held exclusively again by this thread,
                // taken after entering `state`.
                g.state = state;
            }
        }
        // SAFETY: the guard proves this thread holds the lock exclusively with
        // `state`; `Relock` retakes it (also on unwind) before the guard, which
        // we borrow mutably throughout, can be used or dropped again.
        unsafe { self.lock.release(self.state, |b| b.unlock()) };
        let _relock = Relock(self);
        f()
    }

    /// Turns a typed guard into one whose variant is chosen at run time, for
    /// code that picks `lock`, `lock_irq`, `lock_irqsave` or `lock_bh` from a
    /// value and keeps one guard type.
    ///
    /// ```
    /// use ksync::lock::AnyCtx;
    /// use ksync::spinlock::{LockGuard, SpinLock};
    /// let l = SpinLock::new(0);
    /// let irq = true;
    /// let mut g: LockGuard<'_, u32, _, AnyCtx> =
    ///     if irq { l.lock_irqsave().into_any() } else { l.lock().into_any() };
    /// *g += 1;
    /// assert!(g.saved_flags().is_some());
    /// ```
    #[inline]
    pub fn into_any(self) -> Guard<'a, T, B, AnyCtx>
    where
        C: Into<AnyCtx>,
    {
        let (lock, state) = self.into_parts();
        // SAFETY: the parts of a guard: held exclusively by this thread, `state`
        // is what its acquisition entered (the same variant, as `AnyCtx`).
        unsafe { Guard::new(lock, state.into()) }
    }
}

impl<T: ?Sized, B: Backend, C: GuardState> Deref for Guard<'_, T, B, C> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock
        // exclusively (type invariant), so no `&mut T` exists elsewhere.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized, B: Backend, C: GuardState> DerefMut for Guard<'_, T, B, C> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held exclusively (type invariant) and `&mut self`
        // makes this the only reference.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: ?Sized, B: Backend, C: GuardState> Drop for Guard<'_, T, B, C> {
    /// lockdep release, the backend's unlock, the context restore.
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard proves this thread holds the lock exclusively, taken
        // with `state` (type invariant); the guard is gone after this.
        unsafe { self.lock.release(self.state, |b| b.unlock()) }
    }
}

impl<T: ?Sized + fmt::Debug, B: Backend, C: GuardState> fmt::Debug for Guard<'_, T, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display, B: Backend, C: GuardState> fmt::Display for Guard<'_, T, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// The proof that a shared (read) lock on a [`Lock`] is held: `&T` only; drops
/// it on drop (`read_unlock`, `up_read`, and the `_irq`/`_irqrestore`/`_bh`
/// variants by its [`GuardState`] `C`).
///
/// `!Send`, for the same reasons as [`Guard`].
///
/// ```compile_fail
/// use ksync::spinlock::RwLock;
/// static L: RwLock<u32> = RwLock::new(0);
/// let g = L.read();
/// std::thread::spawn(move || drop(g)); // error: the guard is not Send
/// ```
///
/// Covariant in `T` (and `'a`), as std's `RwLockReadGuard`: it only reads, so a
/// guard of `&'static str` may be used where one of a shorter-lived `&str` is
/// expected. It keeps the raw lock and a pointer to the data rather than the
/// [`Lock`] (whose `UnsafeCell` would make it invariant), which is also what lets
/// [`map`](Self::map) return a `ReadGuard` of a part of the data.
///
/// ```
/// use ksync::rwsem::RwSemReadGuard;
/// use ksync::spinlock::RwLockReadGuard;
/// fn shorten<'a, 'g>(g: RwLockReadGuard<'g, &'static str>) -> RwLockReadGuard<'g, &'a str> { g }
/// fn shorten_sem<'a, 'g>(g: RwSemReadGuard<'g, &'static str>) -> RwSemReadGuard<'g, &'a str> { g }
/// let l = ksync::spinlock::RwLock::new("eth0");
/// assert_eq!(*shorten(l.read()), "eth0");
/// let s = ksync::rwsem::RwSemaphore::new("eth1");
/// assert_eq!(*shorten_sem(s.read()), "eth1");
/// ```
///
/// # Invariants
/// A shared lock on `raw` is held by the thread that made the guard, which
/// entered the context `state` before taking it; `data` points into the data
/// that `raw` protects (the [`Lock`]'s, or a part of it), valid for `'a`;
/// `hint` is 0 or what that acquisition's `lock_shared_hinted` returned.
#[doc(alias = "read_unlock")]
#[doc(alias = "read_unlock_irq")]
#[doc(alias = "read_unlock_irqrestore")]
#[doc(alias = "read_unlock_bh")]
#[doc(alias = "rw_exit")]
#[must_use = "the read lock is released when the guard is dropped"]
pub struct ReadGuard<'a, T: ?Sized, B: SharedBackend, C: GuardState = <B as Backend>::GuardState> {
    raw: &'a B,
    data: NonNull<T>,
    state: C,
    /// For [`SharedBackend::unlock_shared_hinted`]: what the acquisition
    /// returned, or 0.
    hint: usize,
    _marker: PhantomData<(&'a T, *mut ())>,
}

// SAFETY: sharing a read guard shares `&T` only (hence `T: Sync`), and a copy
// of its state.
unsafe impl<T: ?Sized + Sync, B: SharedBackend, C: GuardState> Sync for ReadGuard<'_, T, B, C> {}

impl<'a, T: ?Sized, B: SharedBackend, C: GuardState> ReadGuard<'a, T, B, C> {
    /// # Safety
    /// This thread holds a shared lock on `lock`, taken after entering `state`.
    #[inline(always)]
    pub(crate) unsafe fn new(lock: &'a Lock<T, B>, state: C) -> Self {
        // SAFETY: the caller's contract; 0 is no hint.
        unsafe { Self::new_hinted(lock, state, 0) }
    }

    /// # Safety
    /// As [`new`](Self::new), and `hint` is 0 or what the acquisition's
    /// `lock_shared_hinted` returned.
    #[inline(always)]
    pub(crate) unsafe fn new_hinted(lock: &'a Lock<T, B>, state: C, hint: usize) -> Self {
        // A read access (`with`): readers on several threads take this pointer at
        // once, which loom must not see as a write.
        let data = lock.data.with(|p| p as *mut T);
        // INVARIANT: the caller took a shared lock on this thread, with `state`
        // and `hint`; `data` is the lock's data, borrowed for `'a` with the lock.
        ReadGuard {
            raw: &lock.raw,
            // SAFETY: a pointer into a live `UnsafeCell` is never null.
            data: unsafe { NonNull::new_unchecked(data) },
            state,
            hint,
            _marker: PhantomData,
        }
    }

    /// Drops the read lock now: the same as dropping the guard (`read_unlock`,
    /// `up_read`).
    #[doc(alias = "up_read")]
    #[doc(alias = "rw_exit")] // Solaris, RW_READER
    #[inline]
    pub fn unlock(self) {
        drop(self)
    }

    /// The irq flags saved by a `read_irqsave`, if this guard holds any.
    #[inline]
    pub fn saved_flags(&self) -> Option<IrqFlags> {
        self.state.saved_flags()
    }

    /// The raw lock this guard holds a shared lock on.
    #[inline]
    pub(crate) fn raw(&self) -> &'a B {
        self.raw
    }

    /// Takes the guard apart without unlocking.
    #[inline(always)]
    pub(crate) fn into_parts(self) -> (&'a B, NonNull<T>, C) {
        let parts = (self.raw, self.data, self.state);
        core::mem::forget(self);
        parts
    }

    /// A read guard whose variant is chosen at run time: see
    /// [`Guard::into_any`].
    #[inline]
    pub fn into_any(self) -> ReadGuard<'a, T, B, AnyCtx>
    where
        C: Into<AnyCtx>,
    {
        let hint = self.hint;
        let (raw, data, state) = self.into_parts();
        // INVARIANT: the parts of a read guard: a shared lock held by this
        // thread, `state` is what its acquisition entered (the same variant, as
        // `AnyCtx`), `data` and `hint` unchanged.
        ReadGuard {
            raw,
            data,
            state: state.into(),
            hint,
            _marker: PhantomData,
        }
    }

    /// A read guard of a part of the data, holding the same read lock
    /// (`RwLockReadGuard::map` of std and parking_lot). An associated function
    /// (`ReadGuard::map(g, f)`), so that it does not hide a method of `T`. If
    /// `f` panics, the guard is dropped and the lock released.
    ///
    /// ```
    /// use ksync::lock::ReadGuard;
    /// let l = ksync::spinlock::RwLock::new((1, String::from("eth0")));
    /// let name = ReadGuard::map(l.read(), |v| v.1.as_str());
    /// assert_eq!(&*name, "eth0");
    /// assert!(l.try_write().is_none()); // still read-locked
    /// drop(name);
    /// assert!(l.try_write().is_some());
    /// ```
    #[inline]
    pub fn map<U: ?Sized>(this: Self, f: impl FnOnce(&T) -> &U) -> ReadGuard<'a, U, B, C> {
        let data = NonNull::from(f(&*this));
        let hint = this.hint;
        let (raw, _, state) = this.into_parts();
        // INVARIANT: the same shared lock, state and hint; `data` points into the
        // data that `raw` protects, valid while it is held (`f` had only `&T`).
        ReadGuard {
            raw,
            data,
            state,
            hint,
            _marker: PhantomData,
        }
    }

    /// [`map`](Self::map) to a part that may be absent: `Err` gives the guard
    /// back, still holding the lock.
    ///
    /// ```
    /// use ksync::lock::ReadGuard;
    /// let l = ksync::rwsem::RwSemaphore::new(vec![1, 2]);
    /// let g = ReadGuard::try_map(l.read(), |v| v.get(5)).expect_err("no element 5");
    /// let second = ReadGuard::try_map(g, |v| v.get(1)).expect("element 1");
    /// assert_eq!(*second, 2);
    /// ```
    ///
    /// # Errors
    /// The guard, unchanged, when `f` returns `None`.
    #[inline]
    pub fn try_map<U: ?Sized>(
        this: Self,
        f: impl FnOnce(&T) -> Option<&U>,
    ) -> Result<ReadGuard<'a, U, B, C>, Self> {
        let Some(part) = f(&*this) else {
            return Err(this);
        };
        let data = NonNull::from(part);
        let hint = this.hint;
        let (raw, _, state) = this.into_parts();
        // INVARIANT: as in `map`: the same lock, state and hint, `data` inside
        // its data.
        Ok(ReadGuard {
            raw,
            data,
            state,
            hint,
            _marker: PhantomData,
        })
    }
}

impl<T: ?Sized, B: SharedBackend, C: GuardState> Deref for ReadGuard<'_, T, B, C> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a shared lock is held (type invariant): no writer has `&mut T`,
        // readers only share `&T`, and `data` points into the protected data.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized, B: SharedBackend, C: GuardState> Drop for ReadGuard<'_, T, B, C> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard proves this thread holds a shared lock on `raw`,
        // taken with `state` and `hint` (type invariant); the guard is gone
        // after this.
        unsafe { release_raw(self.raw, self.state, |b| b.unlock_shared_hinted(self.hint)) }
    }
}

impl<T: ?Sized + fmt::Debug, B: SharedBackend, C: GuardState> fmt::Debug
    for ReadGuard<'_, T, B, C>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display, B: SharedBackend, C: GuardState> fmt::Display
    for ReadGuard<'_, T, B, C>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A [`Guard`] narrowed to a part of the data by [`Guard::map`] or
/// [`Guard::try_map`]: the same exclusive hold, `&mut U` to the part, the same
/// unlock and context restore on drop (parking_lot's `MappedMutexGuard`).
/// Unlike a `Guard` it cannot [`do_unlocked`](Guard::do_unlocked) (the part
/// may not survive the unlock), so a condition variable does not take it.
///
/// `!Send`, for the same reasons as [`Guard`]; invariant in `U`, as any guard
/// that gives `&mut`.
///
/// ```compile_fail
/// use ksync::lock::Guard;
/// let m = ksync::mutex::Mutex::new((0, 0));
/// let g = Guard::map(m.lock(), |v| &mut v.0);
/// std::thread::spawn(move || drop(g)); // error: the guard is not Send
/// ```
///
/// # Invariants
/// `raw` is held exclusively by the thread that made the guard, which entered
/// the context `state` before taking it; `data` points into the data that `raw`
/// protects, valid for `'a`, and no other reference to it exists.
#[must_use = "the lock is released when the guard is dropped"]
pub struct MappedGuard<'a, U: ?Sized, B: Backend, C: GuardState = <B as Backend>::GuardState> {
    raw: &'a B,
    data: NonNull<U>,
    state: C,
    _marker: PhantomData<(&'a mut U, *mut ())>,
}

// SAFETY: sharing a mapped guard shares `&U` (hence `U: Sync`) and a copy of its
// state; the unlock stays with the owner (`!Send`).
unsafe impl<U: ?Sized + Sync, B: Backend, C: GuardState> Sync for MappedGuard<'_, U, B, C> {}

impl<'a, T: ?Sized, B: Backend, C: GuardState> Guard<'a, T, B, C> {
    /// A guard of a part of the data, holding the same lock (`MutexGuard::map`
    /// of parking_lot): unlocks, and restores the context, on drop. An
    /// associated function (`Guard::map(g, f)`), so that it does not hide a
    /// method of `T`. If `f` panics, the guard is dropped and the lock released.
    ///
    /// ```
    /// use ksync::lock::Guard;
    /// let m = ksync::mutex::Mutex::new((0u32, vec![1]));
    /// let mut list = Guard::map(m.lock(), |v| &mut v.1);
    /// list.push(2);
    /// assert!(m.try_lock().is_none()); // still locked
    /// drop(list);
    /// assert_eq!(m.lock().1, [1, 2]);
    /// ```
    #[doc(alias = "MappedMutexGuard")]
    #[inline]
    pub fn map<U: ?Sized>(
        mut this: Self,
        f: impl FnOnce(&mut T) -> &mut U,
    ) -> MappedGuard<'a, U, B, C> {
        let data = NonNull::from(f(&mut *this));
        let (lock, state) = this.into_parts();
        // INVARIANT: the same exclusive hold and state; `data` points into the
        // lock's data (`f` got the only `&mut T`), valid while it is held.
        MappedGuard {
            raw: &lock.raw,
            data,
            state,
            _marker: PhantomData,
        }
    }

    /// [`map`](Self::map) to a part that may be absent: `Err` gives the guard
    /// back, still holding the lock.
    ///
    /// ```
    /// use ksync::lock::Guard;
    /// let l = ksync::spinlock::SpinLock::new([1, 2, 3]);
    /// let g = Guard::try_map(l.lock(), |v| v.get_mut(7)).expect_err("no element 7");
    /// let mut last = Guard::try_map(g, |v| v.last_mut()).expect("not empty");
    /// *last = 30;
    /// drop(last);
    /// assert_eq!(*l.lock(), [1, 2, 30]);
    /// ```
    ///
    /// # Errors
    /// The guard, unchanged, when `f` returns `None`.
    #[inline]
    pub fn try_map<U: ?Sized>(
        mut this: Self,
        f: impl FnOnce(&mut T) -> Option<&mut U>,
    ) -> Result<MappedGuard<'a, U, B, C>, Self> {
        let Some(part) = f(&mut *this) else {
            return Err(this);
        };
        let data = NonNull::from(part);
        let (lock, state) = this.into_parts();
        // INVARIANT: as in `map`: the same hold and state, `data` inside its data.
        Ok(MappedGuard {
            raw: &lock.raw,
            data,
            state,
            _marker: PhantomData,
        })
    }
}

impl<'a, U: ?Sized, B: Backend, C: GuardState> MappedGuard<'a, U, B, C> {
    /// Takes the guard apart without unlocking.
    #[inline(always)]
    fn into_parts(self) -> (&'a B, NonNull<U>, C) {
        let parts = (self.raw, self.data, self.state);
        core::mem::forget(self);
        parts
    }

    /// Narrows further: a guard of a part of this part.
    #[inline]
    pub fn map<V: ?Sized>(
        mut this: Self,
        f: impl FnOnce(&mut U) -> &mut V,
    ) -> MappedGuard<'a, V, B, C> {
        let data = NonNull::from(f(&mut *this));
        let (raw, _, state) = this.into_parts();
        // INVARIANT: the same hold and state; `data` inside the part, so inside
        // the protected data.
        MappedGuard {
            raw,
            data,
            state,
            _marker: PhantomData,
        }
    }

    /// Narrows further to a part that may be absent; `Err` gives the guard back.
    ///
    /// # Errors
    /// The guard, unchanged, when `f` returns `None`.
    #[inline]
    pub fn try_map<V: ?Sized>(
        mut this: Self,
        f: impl FnOnce(&mut U) -> Option<&mut V>,
    ) -> Result<MappedGuard<'a, V, B, C>, Self> {
        let Some(part) = f(&mut *this) else {
            return Err(this);
        };
        let data = NonNull::from(part);
        let (raw, _, state) = this.into_parts();
        // INVARIANT: as in `map`.
        Ok(MappedGuard {
            raw,
            data,
            state,
            _marker: PhantomData,
        })
    }

    /// Unlocks now: the same as dropping the guard.
    #[inline]
    pub fn unlock(self) {
        drop(self)
    }

    /// The irq flags saved by a `lock_irqsave`, if this guard holds any.
    #[inline]
    pub fn saved_flags(&self) -> Option<IrqFlags> {
        self.state.saved_flags()
    }
}

impl<U: ?Sized, B: Backend, C: GuardState> Deref for MappedGuard<'_, U, B, C> {
    type Target = U;
    #[inline]
    fn deref(&self) -> &U {
        // SAFETY: the lock is held exclusively and `data` points into its data
        // (type invariant): no `&mut` to it exists elsewhere.
        unsafe { self.data.as_ref() }
    }
}

impl<U: ?Sized, B: Backend, C: GuardState> DerefMut for MappedGuard<'_, U, B, C> {
    #[inline]
    fn deref_mut(&mut self) -> &mut U {
        // SAFETY: the lock is held exclusively, `data` points into its data (type
        // invariant), and `&mut self` makes this the only reference.
        unsafe { self.data.as_mut() }
    }
}

impl<U: ?Sized, B: Backend, C: GuardState> Drop for MappedGuard<'_, U, B, C> {
    /// lockdep release, the backend's unlock, the context restore: as [`Guard`].
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard proves this thread holds `raw` exclusively, taken with
        // `state` (type invariant); the guard is gone after this.
        unsafe { release_raw(self.raw, self.state, |b| b.unlock()) }
    }
}

impl<U: ?Sized + fmt::Debug, B: Backend, C: GuardState> fmt::Debug for MappedGuard<'_, U, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<U: ?Sized + fmt::Display, B: Backend, C: GuardState> fmt::Display
    for MappedGuard<'_, U, B, C>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
