//! `struct ww_mutex` as [`WwMutex<T>`]: wound/wait mutexes, for taking many
//! locks of one class in any order without deadlock.
//!
//! A transaction opens an acquire context ([`WwAcquireCtx`]) on a class
//! ([`WwClass`]); the context's *stamp* (a ticket from the class's counter)
//! says how old it is. When two transactions want each other's locks, the
//! older one wins and the younger one backs off: its lock call returns
//! [`Error::Deadlock`] (`-EDEADLK`), it drops every lock of the transaction,
//! sleeps on the contended lock with [`WwMutex::lock_slow`] (which cannot
//! fail: it holds nothing), and tries the rest again. The younger transaction
//! keeps its stamp across the retry, so it ages and eventually wins.
//!
//! | kernel | ksync |
//! |---|---|
//! | `DEFINE_WW_CLASS(c)`, `DEFINE_WD_CLASS(c)` | `static C: WwClass = WwClass::new(..)`, [`WwClass::new_wait_die`] |
//! | `ww_mutex_init`, `struct ww_mutex` | [`WwMutex::new`] |
//! | `ww_acquire_init` / `ww_acquire_done` / `ww_acquire_fini` | [`WwAcquireCtx::new`] / [`WwAcquireCtx::done`] / drop the context |
//! | `ww_mutex_lock`, `ww_mutex_lock_interruptible` | [`WwMutex::lock`], [`WwMutex::lock_interruptible`] |
//! | `ww_mutex_lock_slow`, `ww_mutex_lock_slow_interruptible` | [`WwMutex::lock_slow`], [`WwMutex::lock_slow_interruptible`] |
//! | `ww_mutex_trylock` | [`WwMutex::try_lock`] |
//! | `ww_mutex_lock(lock, NULL)` | [`WwMutex::lock_noctx`] |
//! | `ww_mutex_unlock` | drop the [`WwMutexGuard`] ([`WwMutexGuard::unlock`]) |
//! | `ww_mutex_is_locked` | [`WwMutex::is_locked`] |
//! | `-EDEADLK`, `-EALREADY` | [`Error::Deadlock`], [`Error::AlreadyHeld`] |
//!
//! ```
//! use ksync::ww_mutex::{WwAcquireCtx, WwClass, WwMutex};
//! use ksync::Error;
//!
//! static BUF: WwClass = WwClass::new("buf_acquire", "buf_mutex"); // DEFINE_WW_CLASS
//! let bufs: Vec<WwMutex<u32>> = (0..3).map(|i| WwMutex::new(&BUF, i)).collect();
//!
//! // Take bufs 2 and 0, in that order, backing off if an older transaction
//! // holds one of them (the kernel's retry loop from ww-mutex-design.rst).
//! let ctx = WwAcquireCtx::new(&BUF); // ww_acquire_init
//! let order = [2, 0];
//! let mut contended: Option<usize> = None;
//! let held = 'retry: loop {
//!     let mut held = Vec::new();
//!     if let Some(i) = contended {
//!         held.push((i, bufs[i].lock_slow(&ctx))); // sleeps; holds nothing, cannot fail
//!     }
//!     for &i in &order {
//!         if Some(i) == contended {
//!             continue;
//!         }
//!         match bufs[i].lock(&ctx) {
//!             Ok(g) => held.push((i, g)),
//!             Err(Error::Deadlock) => {
//!                 drop(held); // unlock everything, then wait for `i` first
//!                 contended = Some(i);
//!                 continue 'retry;
//!             }
//!             Err(e) => panic!("{e}"),
//!         }
//!     }
//!     break held;
//! };
//! ctx.done(); // ww_acquire_done: no more locks in this transaction
//! assert_eq!(held.iter().map(|(_, g)| **g).sum::<u32>(), 2);
//! drop(held);
//! drop(ctx); // ww_acquire_fini
//! ```
//!
//! Two flavours decide who backs off, as the class says:
//! - **Wound-wait** ([`WwClass::new`], `DEFINE_WW_CLASS`): an older context
//!   that finds a lock held by a younger one *wounds* the holder — sets its
//!   wounded flag, and wakes it if it sleeps on another lock — and waits. The
//!   wounded context gets `Err(Deadlock)` at its next lock call, or at once if
//!   it is waiting, provided it holds locks (one that holds none cannot be in
//!   a cycle; the flag is cleared when it starts over). A younger context waits
//!   for an older holder.
//! - **Wait-die** ([`WwClass::new_wait_die`], `DEFINE_WD_CLASS`): a younger
//!   context that holds locks and meets an older holder, or an older waiter
//!   queued ahead of it, *dies* (`Err(Deadlock)`) at once, and a younger waiter
//!   that holds locks dies when an older one queues ahead of it; an older
//!   context waits.
//!
//! A context that holds no locks never backs off, which is what makes
//! [`lock_slow`](WwMutex::lock_slow) infallible.
//!
//! The context remembers the lock that told it to back off (the kernel's
//! `ww_ctx->contending_lock`, kept there only with `DEBUG_WW_MUTEXES`), from
//! the `Err(Deadlock)` until that lock is taken. Misusing the protocol panics,
//! as each is a `DEBUG_LOCKS_WARN` in the kernel: [`lock_slow`](WwMutex::lock_slow)
//! with no `Err(Deadlock)` to back off from, and, after one, taking any other
//! lock of the transaction first or taking the contended one again without
//! dropping the others. The checks come before the attempt, so a panic
//! leaves every lock as it was.
//!
//! # Implementation details
//!
//! The state is one word, `owner`, and a wait list (the wait engine
//! `sched::waitlist` in its plain form, the kernel's `wait_lock` and
//! `wait_list`):
//!
//! | `owner` | meaning |
//! |---|---|
//! | `0` | free (and nobody waits) |
//! | `ctx \| LOCKED` | held by the acquire context at address `ctx` (0: no context, [`lock_noctx`](WwMutex::lock_noctx)) |
//! | `… \| WAITERS` | the wait list is not empty |
//!
//! The holder's context is in the lock word itself, so the kernel's
//! `ww_mutex_set_context_fastpath` race (a holder seen before its context is)
//! cannot happen. Transitions: `0 → ctx|LOCKED` by a CAS (the fast path, or a
//! contender under the list lock); `ctx|LOCKED → 0` by the holder's CAS
//! (unlock, only while `WAITERS` is clear); `x → x|WAITERS` by a contender's
//! CAS under the list lock, atomically with seeing the lock held; under the
//! list lock, the holder's unlock hands the lock straight to the first waiter
//! (`→ its ctx|LOCKED`, `WAITERS` kept if others wait) or frees it, and a
//! waiter that leaves an emptied list clears `WAITERS`. So `WAITERS` is set
//! exactly while the list is non-empty (under the list lock), and the lock is
//! never free while anyone waits: an unlock with waiters always hands off, and
//! a newcomer never barges past a waiter.
//!
//! Uncontended lock and unlock are one CAS each. The lock CAS is Acquire and
//! pairs with the Release CAS of the previous unlock; it is also Release, to
//! publish the context it writes into the word to the contenders that read
//! the word with Acquire and then look at the context (loom found the race
//! without it). A hand-off is ordered by the wait engine's mark (the
//! unlocker's Release store of the grant, the new owner's Acquire load), which
//! follows the old owner's critical section.
//!
//! **The holder's context stays alive while a contender looks at it.** A
//! contender reads the holder's context (its stamp, to decide; its wounded flag
//! and task, to wound it) only under the list lock and after `WAITERS` is set
//! in the word that names that holder. The holder cannot release the lock
//! without the list lock then (its unlock CAS fails), and its context outlives
//! its guards (they borrow it). A context lives in a box, so moving the
//! [`WwAcquireCtx`] does not move what the lock words point to; if a guard is
//! leaked (`mem::forget`), dropping the context leaks the box too (and panics),
//! so a lock word never names freed memory.
//!
//! A contender whose CAS failed polls the word briefly (bounded, loads only)
//! while nobody is queued, and takes the lock if it comes free; once anyone
//! waits it queues at once, so no contender barges past a waiter.
//!
//! **Waiters are sorted by stamp** (a context queues before the first younger
//! context; a waiter without one at the tail when it comes, as the kernel's
//! `__ww_mutex_add_waiter`), so the hand-off goes to the oldest transaction. Deciding to wound or die happens when a contender
//! queues, under the list lock; a waiter told to die is detached from the list
//! with the grant `DIE`, and a waiter wounded while it sleeps on another lock
//! is woken (without being detached) and leaves that list itself.
//!
//! **Lockdep** (feature `lockdep`): the context is a held lock of the class's
//! acquire class from `new` to its drop, and the nest lock of its mutexes
//! (`lockdep::acquire_nest`), so any number of mutexes of the class held
//! together under one context are not reported as recursion (a mutex of the
//! class held from *before* the context still is, as in the kernel). Two
//! contexts of one class open on one thread are reported as recursion (the
//! kernel's `ww_test_two_contexts`).

use crate::backoff::Spin;
use crate::error::{Error, Result};
use crate::lockdep::{self, AcquireKind, LockClassKey, LockdepMap};
use crate::loom::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sched::waitlist::{Detached, Locked, Plain, WaitList, Waiter};
use crate::sched::{Task, TaskState, current, sleep};
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
// The stamp counter is a plain std atomic in every build: loom need not model
// it (its order is the interleaving's), and it keeps `WwClass::new` const.
use core::sync::atomic::AtomicU64;

/// `owner` bit: the wait list is not empty.
const WAITERS: usize = 1;
/// `owner` bit: the lock is held.
const LOCKED: usize = 2;
/// `owner` bits naming the holder's context (0: none).
const CTX_MASK: usize = !(WAITERS | LOCKED);

/// The grant (wait engine hand-off payload) of a waiter the lock was handed
/// to: `owner` names its context already.
const HANDED: u32 = 2;
/// The grant of a waiter told to die (wait-die): an older context queued
/// ahead of it.
const DIE: u32 = 3;

/// Waiter tag bit: the waiter has a context.
const HAS_CTX: u32 = 1;
/// Waiter tag bit: the waiter's context holds other locks (so it may wound,
/// or be told to die).
const HOLDS: u32 = 2;

// ---------------------------------------------------------------------------
// The class.

/// A class of wound/wait mutexes (`struct ww_class`, `DEFINE_WW_CLASS`): the
/// stamp counter that orders the transactions on its mutexes, the flavour
/// (wound-wait or wait-die), and the two lockdep classes (the contexts', the
/// mutexes'). Declare it as a `static`.
///
/// ```
/// use ksync::ww_mutex::WwClass;
/// static RESV: WwClass = WwClass::new("reservation_ww_class_acquire", "reservation_ww_class_mutex");
/// static WD: WwClass = WwClass::new_wait_die("wd_acquire", "wd_mutex");
/// assert!(!RESV.is_wait_die() && WD.is_wait_die());
/// ```
#[doc(alias = "ww_class")]
pub struct WwClass {
    /// The next stamp (`ww_class.stamp`); one `fetch_add` per context.
    stamp: AtomicU64,
    wait_die: bool,
    acquire_key: LockClassKey,
    mutex_key: LockClassKey,
}

impl WwClass {
    /// A wound-wait class (`DEFINE_WW_CLASS`); lockdep names its contexts
    /// `acquire_name` and its mutexes `mutex_name`.
    #[doc(alias = "DEFINE_WW_CLASS")]
    pub const fn new(acquire_name: &'static str, mutex_name: &'static str) -> WwClass {
        WwClass::with(false, acquire_name, mutex_name)
    }

    /// A wait-die class (`DEFINE_WD_CLASS`).
    #[doc(alias = "DEFINE_WD_CLASS")]
    pub const fn new_wait_die(acquire_name: &'static str, mutex_name: &'static str) -> WwClass {
        WwClass::with(true, acquire_name, mutex_name)
    }

    const fn with(wait_die: bool, acquire_name: &'static str, mutex_name: &'static str) -> WwClass {
        WwClass {
            stamp: AtomicU64::new(0),
            wait_die,
            acquire_key: LockClassKey::new(acquire_name),
            mutex_key: LockClassKey::new(mutex_name),
        }
    }

    /// Whether the class is wait-die (`ww_class.is_wait_die`); else wound-wait.
    pub const fn is_wait_die(&self) -> bool {
        self.wait_die
    }

    /// The name of the class's mutexes, for messages.
    pub const fn name(&self) -> &'static str {
        self.mutex_key.name()
    }
}

impl fmt::Debug for WwClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WwClass")
            .field("name", &self.name())
            .field("wait_die", &self.wait_die)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The acquire context.

/// What a context's lock words point to (boxed: see the module docs).
///
/// # Invariants
/// `acquired` and `done` are touched only by the context's thread. Other
/// threads read `stamp`, `wait_die` and `task`, and store `wounded`, only
/// through a lock word that names this context, under that lock's list lock,
/// with `WAITERS` set in it.
struct CtxInner {
    stamp: u64,
    wait_die: bool,
    class: &'static WwClass,
    /// How many mutexes the context holds (`ww_acquire_ctx.acquired`).
    acquired: Cell<u32>,
    /// `ww_acquire_done` was called: no more locks.
    done: Cell<bool>,
    /// The address of the [`WwMutex`] whose lock call returned
    /// `Err(Deadlock)` to this context, until the context takes it; 0 none
    /// (`ww_acquire_ctx.contending_lock`).
    contending: Cell<usize>,
    /// Set by an older context that wants a lock this one holds (wound-wait).
    wounded: AtomicBool,
    /// The context's thread, to wake it when it is wounded while it sleeps.
    task: Task,
    /// The context as lockdep sees it: held from `new` to drop, the nest
    /// lock of the context's mutexes (`ww_acquire_ctx.dep_map`).
    dep_map: LockdepMap,
}

impl CtxInner {
    /// Whether `self` is younger than `other` (`__ww_ctx_less`): its stamp is
    /// later. Stamps come from one counter and are unique within a class.
    #[inline]
    fn younger_than(&self, other: &CtxInner) -> bool {
        self.stamp > other.stamp
    }
}

/// An acquire context (`struct ww_acquire_ctx`, `ww_acquire_init`): one
/// transaction that takes several [`WwMutex`]es of one [`WwClass`]. Its stamp
/// orders it against the class's other transactions; keep the context (and its
/// stamp) across back-offs and retries, so the transaction ages and wins.
///
/// Drop it (`ww_acquire_fini`) once every mutex it took is unlocked. It is
/// `!Send`: the locks it takes are its thread's, and the mutexes wake that
/// thread when it is wounded.
///
/// ```compile_fail
/// use ksync::ww_mutex::{WwAcquireCtx, WwClass};
/// static C: WwClass = WwClass::new("c_acquire", "c_mutex");
/// let ctx = WwAcquireCtx::new(&C);
/// std::thread::spawn(move || drop(ctx)); // a context stays on its thread
/// ```
#[doc(alias = "ww_acquire_ctx")]
#[doc(alias = "ww_acquire_fini")]
pub struct WwAcquireCtx {
    inner: NonNull<CtxInner>,
    class: &'static WwClass,
    _not_send: PhantomData<*mut ()>,
}

impl WwAcquireCtx {
    /// Opens a transaction on `class` (`ww_acquire_init`): takes the next stamp
    /// and, with lockdep, holds the class's acquire class until the drop.
    #[doc(alias = "ww_acquire_init")]
    #[track_caller]
    pub fn new(class: &'static WwClass) -> WwAcquireCtx {
        // Relaxed: the stamp only needs to be unique and increasing in the
        // counter's modification order; nothing is published with it.
        let stamp = class.stamp.fetch_add(1, Ordering::Relaxed);
        let inner = NonNull::from(Box::leak(Box::new(CtxInner {
            stamp,
            wait_die: class.wait_die,
            class,
            acquired: Cell::new(0),
            done: Cell::new(false),
            contending: Cell::new(0),
            wounded: AtomicBool::new(false),
            task: current(),
            dep_map: LockdepMap::with_key(class.acquire_key.name(), &class.acquire_key).sleeping(),
        })));
        // SAFETY: just leaked: the box is valid until our drop frees it.
        let map = unsafe { &inner.as_ref().dep_map };
        lockdep::acquire(map, AcquireKind::Exclusive, false, 0);
        WwAcquireCtx {
            inner,
            class,
            _not_send: PhantomData,
        }
    }

    #[inline]
    fn inner(&self) -> &CtxInner {
        // SAFETY: the box lives until our drop (or for ever, if a guard leaked).
        unsafe { self.inner.as_ref() }
    }

    /// Marks the end of the acquire phase (`ww_acquire_done`): the context
    /// takes no more locks; a lock call after this panics.
    ///
    /// # Panics
    /// If called twice.
    #[doc(alias = "ww_acquire_done")]
    pub fn done(&self) {
        let c = self.inner();
        assert!(!c.done.get(), "ww_acquire_done called twice on one context");
        c.done.set(true);
    }

    /// The context's stamp: smaller is older.
    pub fn stamp(&self) -> u64 {
        self.inner().stamp
    }

    /// How many mutexes the context holds (`ww_acquire_ctx.acquired`).
    pub fn acquired(&self) -> u32 {
        self.inner().acquired.get()
    }

    /// Whether an older context wounded this one (wound-wait): its next lock
    /// call returns [`Error::Deadlock`] while it holds locks.
    pub fn is_wounded(&self) -> bool {
        self.inner().wounded.load(Ordering::Relaxed)
    }

    /// The class the context belongs to.
    pub fn class(&self) -> &'static WwClass {
        self.class
    }

    /// The context's address, as a lock word names it (`LOCKED` and `WAITERS`
    /// bits clear: a box of `CtxInner` is at least 8-aligned).
    #[inline]
    fn id(&self) -> usize {
        self.inner.as_ptr().expose_provenance()
    }
}

const _: () = assert!(core::mem::align_of::<CtxInner>() > CTX_MASK.trailing_ones() as usize);

impl Drop for WwAcquireCtx {
    /// `ww_acquire_fini`.
    fn drop(&mut self) {
        let held = self.inner().acquired.get();
        if held != 0 {
            // A guard was leaked: a lock word still names this context, so its
            // box must never be freed. Leak it and report the misuse.
            if !std::thread::panicking() {
                panic!(
                    "ww_acquire_fini: the context still holds {held} ww_mutex(es) (a guard was leaked)"
                );
            }
            return;
        }
        lockdep::release(&self.inner().dep_map);
        // SAFETY: the box came from `Box::leak` in `new`; no lock word names
        // this context (it holds nothing), no guard borrows it (we are dropped),
        // so nobody else can reach it.
        drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
    }
}

impl fmt::Debug for WwAcquireCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.inner();
        f.debug_struct("WwAcquireCtx")
            .field("class", &self.class.name())
            .field("stamp", &c.stamp)
            .field("acquired", &c.acquired.get())
            .field("done", &c.done.get())
            .field("wounded", &c.wounded.load(Ordering::Relaxed))
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The mutex.

/// A wound/wait mutex guarding a `T` (`struct ww_mutex`): see the
/// [module docs](self). Taken with a context ([`lock`](Self::lock) and its
/// forms) it joins that transaction; taken without one
/// ([`lock_noctx`](Self::lock_noctx)) it is a plain sleeping mutex.
///
/// No poisoning: a panic that unwinds through a guard releases the lock, as in
/// the kernel and parking_lot.
///
/// # Invariants
/// `data` is reached only through a [`WwMutexGuard`], which exists only while
/// its thread holds the lock (`owner` has `LOCKED` and names its context), or
/// through `&mut self`.
#[doc(alias = "ww_mutex")]
pub struct WwMutex<T: ?Sized> {
    /// The state word (module docs).
    owner: AtomicUsize,
    /// Contenders, oldest context first; protected by its own lock.
    waiters: WaitList<Plain>,
    class: &'static WwClass,
    dep_map: LockdepMap,
    data: UnsafeCell<T>,
}

// SAFETY: a `&WwMutex` hands `&mut T` to one thread at a time (type
// invariant), which moves the `T` between threads: `T: Send` is needed and
// enough, as for `std::sync::Mutex`. The other fields are atomics, the wait
// list (Sync), a `'static` class (Sync) and the lockdep map (Sync).
unsafe impl<T: ?Sized + Send> Sync for WwMutex<T> {}

impl<T> WwMutex<T> {
    /// An unlocked mutex of `class` holding `value` (`ww_mutex_init`).
    #[doc(alias = "ww_mutex_init")]
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new(class: &'static WwClass, value: T) -> WwMutex<T> {
        WwMutex {
            owner: AtomicUsize::new(0),
            waiters: WaitList::new(),
            class,
            dep_map: LockdepMap::with_key(class.mutex_key.name(), &class.mutex_key).sleeping(),
            data: UnsafeCell::new(value),
        }
    }

    /// An unlocked mutex of `class` holding `value` (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(class: &'static WwClass, value: T) -> WwMutex<T> {
        WwMutex {
            owner: AtomicUsize::new(0),
            waiters: WaitList::new(),
            class,
            dep_map: LockdepMap::with_key(class.mutex_key.name(), &class.mutex_key).sleeping(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> WwMutex<T> {
    /// Takes the mutex into the transaction `ctx` (`ww_mutex_lock`), sleeping
    /// uninterruptibly while it waits.
    ///
    /// # Errors
    /// - [`Error::Deadlock`] (`-EDEADLK`): the transaction must back off — drop
    ///   every guard it holds, then take this mutex with
    ///   [`lock_slow`](Self::lock_slow) and the others again. Only a context
    ///   that holds locks gets it: wounded by an older one (wound-wait), or
    ///   meeting an older holder or waiter (wait-die).
    /// - [`Error::AlreadyHeld`] (`-EALREADY`): `ctx` holds this mutex already.
    ///
    /// ```
    /// use ksync::ww_mutex::{WwAcquireCtx, WwClass, WwMutex};
    /// static C: WwClass = WwClass::new("c_acquire", "c_mutex");
    /// let m = WwMutex::new(&C, 5);
    /// let ctx = WwAcquireCtx::new(&C);
    /// let g = m.lock(&ctx).unwrap();
    /// assert_eq!(m.lock(&ctx).unwrap_err(), ksync::Error::AlreadyHeld);
    /// assert_eq!(*g, 5);
    /// ```
    ///
    /// # Panics
    /// After [`WwAcquireCtx::done`], or with a context of another class; and
    /// after an `Err(Deadlock)` of another mutex to `ctx`, until that one is
    /// taken ([`lock_slow`](Self::lock_slow)), or of this one while `ctx`
    /// still holds locks.
    #[doc(alias = "ww_mutex_lock")]
    #[inline]
    pub fn lock<'a>(&'a self, ctx: &'a WwAcquireCtx) -> Result<WwMutexGuard<'a, T>> {
        self.lock_ctx(ctx, TaskState::Uninterruptible, false)
    }

    /// [`lock`](Self::lock), but a signal sent to the task while it sleeps
    /// ends the wait (`ww_mutex_lock_interruptible`); the mutex is then left as
    /// if the call never happened.
    ///
    /// # Errors
    /// As [`lock`](Self::lock), and [`Error::Interrupted`] (`-EINTR`) or
    /// [`Error::Killed`] (SIGKILL).
    ///
    /// # Panics
    /// As [`lock`](Self::lock).
    #[doc(alias = "ww_mutex_lock_interruptible")]
    #[inline]
    pub fn lock_interruptible<'a>(&'a self, ctx: &'a WwAcquireCtx) -> Result<WwMutexGuard<'a, T>> {
        self.lock_ctx(ctx, TaskState::Interruptible, false)
    }

    /// Takes the contended mutex after a back-off (`ww_mutex_lock_slow`):
    /// `ctx` holds nothing now, so no deadlock check can fail and this waits
    /// until the mutex is its.
    ///
    /// # Panics
    /// If `ctx` holds any lock (back off first: drop them all), if this is
    /// not the mutex whose lock call returned `Err(Deadlock)` to `ctx` (or
    /// none did: then take it with [`lock`](Self::lock)), and as
    /// [`lock`](Self::lock).
    #[doc(alias = "ww_mutex_lock_slow")]
    pub fn lock_slow<'a>(&'a self, ctx: &'a WwAcquireCtx) -> WwMutexGuard<'a, T> {
        match self.lock_ctx(ctx, TaskState::Uninterruptible, true) {
            Ok(g) => g,
            // Holding nothing, a context is never told to back off or found
            // holding this mutex; an uninterruptible sleep does not fail.
            Err(e) => unreachable!("ww_mutex_lock_slow failed: {e}"),
        }
    }

    /// [`lock_slow`](Self::lock_slow), interruptible by a signal
    /// (`ww_mutex_lock_slow_interruptible`).
    ///
    /// # Errors
    /// [`Error::Interrupted`] or [`Error::Killed`]; the mutex is untouched.
    ///
    /// # Panics
    /// As [`lock_slow`](Self::lock_slow).
    #[doc(alias = "ww_mutex_lock_slow_interruptible")]
    pub fn lock_slow_interruptible<'a>(
        &'a self,
        ctx: &'a WwAcquireCtx,
    ) -> Result<WwMutexGuard<'a, T>> {
        self.lock_ctx(ctx, TaskState::Interruptible, true)
    }

    /// Takes the mutex without a context (`ww_mutex_lock(lock, NULL)`): a
    /// plain sleeping mutex, never wounded and never told to back off; it
    /// waits behind every context queued before it.
    #[inline]
    pub fn lock_noctx(&self) -> WwMutexGuard<'_, T> {
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, false, 0);
        if self
            .owner
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Without a context nothing can fail: no back-off, no signal.
            let r = self.lock_contended(None, LOCKED, TaskState::Uninterruptible);
            debug_assert!(r.is_ok());
        }
        // INVARIANT: we hold the lock, the word names no context.
        WwMutexGuard {
            lock: self,
            ctx: None,
            _not_send: PhantomData,
        }
    }

    /// Takes the mutex if it is free, without sleeping (`ww_mutex_trylock`),
    /// into `ctx`'s transaction if one is given. No back-off can be asked of a
    /// trylock: it never waits.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] if the mutex is held (or others wait for it),
    /// [`Error::AlreadyHeld`] if `ctx` holds it.
    ///
    /// ```
    /// use ksync::ww_mutex::{WwAcquireCtx, WwClass, WwMutex};
    /// static C: WwClass = WwClass::new("c_acquire", "c_mutex");
    /// let m = WwMutex::new(&C, ());
    /// let g = m.try_lock(None).unwrap();
    /// assert_eq!(m.try_lock(None).unwrap_err(), ksync::Error::WouldBlock);
    /// drop(g);
    /// let ctx = WwAcquireCtx::new(&C);
    /// let _g = m.try_lock(Some(&ctx)).unwrap();
    /// assert_eq!(ctx.acquired(), 1);
    /// ```
    ///
    /// # Panics
    /// As [`lock`](Self::lock), for a context.
    #[doc(alias = "ww_mutex_trylock")]
    pub fn try_lock<'a>(&'a self, ctx: Option<&'a WwAcquireCtx>) -> Result<WwMutexGuard<'a, T>> {
        let me = match ctx {
            Some(c) => {
                self.check_ctx(c);
                self.check_contending(c.inner());
                c.id() | LOCKED
            }
            None => LOCKED,
        };
        // Acquire: pairs with the Release of the unlock we follow; Release
        // publishes our context to contenders, as in `lock_ctx`.
        match self
            .owner
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => {
                match ctx {
                    Some(c) => {
                        lockdep::acquire_nest(
                            &self.dep_map,
                            AcquireKind::Exclusive,
                            true,
                            &c.inner().dep_map,
                        );
                        c.inner().acquired.set(c.inner().acquired.get() + 1);
                        c.inner().contending.set(0);
                    }
                    None => lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, true, 0),
                }
                // INVARIANT: we hold the lock and the word names `ctx`.
                Ok(WwMutexGuard {
                    lock: self,
                    ctx: ctx.map(WwAcquireCtx::inner),
                    _not_send: PhantomData,
                })
            }
            Err(v) if ctx.is_some() && v & CTX_MASK == me & CTX_MASK => Err(Error::AlreadyHeld),
            Err(_) => Err(Error::WouldBlock),
        }
    }

    /// Whether the mutex is held (`ww_mutex_is_locked`). A snapshot.
    #[doc(alias = "ww_mutex_is_locked")]
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.owner.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// The class of the mutex.
    pub fn class(&self) -> &'static WwClass {
        self.class
    }

    /// A mutable reference to the data: `&mut self` proves nobody holds it.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` excludes every other access to the data.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// The checks every lock with a context makes first: the class, and
    /// `ww_acquire_done`.
    #[inline]
    fn check_ctx(&self, ctx: &WwAcquireCtx) {
        let c = ctx.inner();
        assert!(
            core::ptr::eq(c.class, self.class),
            "ww_mutex of class {} locked with a context of class {}",
            self.class.name(),
            c.class.name()
        );
        assert!(
            !c.done.get(),
            "ww_mutex_lock after ww_acquire_done on a context of class {}",
            self.class.name()
        );
    }

    /// The kernel's `ww_mutex_lock_acquired` checks of the contending lock,
    /// made before the attempt so that a panic leaves the lock untaken: after
    /// an `Err(Deadlock)`, the next lock the context takes is the contended
    /// one (`edeadlk_acquire_wrong`, `edeadlk_acquire_more`), and only once
    /// it has dropped every other (`edeadlk_no_unlock`). A second
    /// `Err(Deadlock)` before the back-off (the kernel's check in
    /// `__ww_mutex_kill`) cannot happen then: it needs a lock held.
    #[inline]
    fn check_contending(&self, c: &CtxInner) {
        let contending = c.contending.get();
        if contending == 0 {
            return;
        }
        assert!(
            contending == self.addr(),
            "ww_mutex of class {} locked after another ww_mutex returned -EDEADLK: \
             back off and take that one first (lock_slow)",
            self.class.name()
        );
        let held = c.acquired.get();
        assert!(
            held == 0,
            "ww_mutex of class {} locked again after its -EDEADLK with {held} lock(s) still held: \
             back off (drop them) first",
            self.class.name()
        );
    }

    /// The mutex's address, as a context's `contending` names it.
    #[inline]
    fn addr(&self) -> usize {
        (self as *const Self).cast::<()>().addr()
    }

    /// The lock paths with a context: `slow` for `ww_mutex_lock_slow`.
    #[inline]
    fn lock_ctx<'a>(
        &'a self,
        ctx: &'a WwAcquireCtx,
        state: TaskState,
        slow: bool,
    ) -> Result<WwMutexGuard<'a, T>> {
        self.check_ctx(ctx);
        let c = ctx.inner();
        let held = c.acquired.get();
        if slow {
            assert_eq!(
                held, 0,
                "ww_mutex_lock_slow with {held} lock(s) held: back off (drop them) first"
            );
            assert!(
                c.contending.get() != 0,
                "ww_mutex_lock_slow of class {} with no -EDEADLK to back off from: take it with lock",
                self.class.name()
            );
        }
        self.check_contending(c);
        if held == 0 {
            // Starting over: a wound received before the back-off is spent.
            c.wounded.store(false, Ordering::Relaxed);
        } else if c.wounded.load(Ordering::Relaxed) {
            // Wound-wait: an older context wants a lock we hold; back off now.
            c.contending.set(self.addr());
            return Err(Error::Deadlock);
        }
        lockdep::acquire_nest(&self.dep_map, AcquireKind::Exclusive, false, &c.dep_map);
        let me = ctx.id() | LOCKED;
        // Acquire: pairs with the Release of the unlock we follow. Release:
        // publishes our context (its stamp, flags, task) to the contenders
        // that find it named here (their Acquire reads in `lock_contended`).
        let r = match self
            .owner
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(_) => self.lock_contended(Some(c), me, state),
        };
        match r {
            Ok(()) => {
                c.acquired.set(held + 1);
                c.contending.set(0);
                // INVARIANT: we hold the lock and the word names `ctx`.
                Ok(WwMutexGuard {
                    lock: self,
                    ctx: Some(c),
                    _not_send: PhantomData,
                })
            }
            Err(e) => {
                lockdep::release(&self.dep_map);
                if e == Error::Deadlock {
                    c.contending.set(self.addr());
                }
                Err(e)
            }
        }
    }

    /// The slow path: `me` (our context's address `| LOCKED`, or `LOCKED`
    /// alone) takes the lock, or queues in stamp order and sleeps until the
    /// lock is handed to it, it must back off, or (for `Interruptible`) a
    /// signal comes.
    #[cold]
    fn lock_contended(&self, ctx: Option<&CtxInner>, me: usize, state: TaskState) -> Result<()> {
        if ctx.is_some() && self.owner.load(Ordering::Relaxed) & CTX_MASK == me & CTX_MASK {
            // Only we could change a word that names us: no race.
            return Err(Error::AlreadyHeld);
        }
        // Poll a little first (DESIGN.md: a wait that ends up sleeping may
        // poll briefly): a holder about to unlock, with nobody queued, lets us
        // take the lock without queueing or sleeping. Never past a waiter:
        // with WAITERS set the lock is handed off, so we queue at once.
        let spin = Spin::new();
        loop {
            let v = self.owner.load(Ordering::Relaxed);
            // AcqRel: as the fast path's CAS in `lock_ctx`.
            if v == 0
                && self
                    .owner
                    .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return Ok(());
            }
            if v & WAITERS != 0 || spin.is_completed() {
                break;
            }
            spin.snooze();
        }
        let holds = ctx.is_some_and(|c| c.acquired.get() > 0);
        let tag = match ctx {
            Some(_) if holds => HAS_CTX | HOLDS,
            Some(_) => HAS_CTX,
            None => 0,
        };
        let w = Waiter::keyed(tag, me & CTX_MASK);
        let mut detached = Detached::empty();
        let mut wound: Option<Task> = None;
        {
            let l = self.waiters.lock();
            // Acquire (this load and both CASes, success or failure): pairs
            // with the Release of the CAS that put the holder's context into the
            // word (or of the unlock that freed it), so the context's fields are
            // visible to the decisions below. A word written by a hand-off is
            // ordered by the list lock we hold.
            let mut cur = self.owner.load(Ordering::Acquire);
            // Take the lock if it is free, else set WAITERS atomically with
            // seeing it held by `cur`'s context.
            loop {
                if cur & LOCKED == 0 {
                    // Free: nobody waits (an unlock hands off to a waiter).
                    debug_assert!(l.is_empty() && cur == 0);
                    // AcqRel: as the fast path's CAS in `lock_ctx`.
                    match self
                        .owner
                        .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => return Ok(()),
                        Err(v) => cur = v,
                    }
                    continue;
                }
                if cur & WAITERS != 0 {
                    break;
                }
                // Once set, the holder's unlock CAS fails on WAITERS and its
                // unlock goes through the list lock we hold.
                match self.owner.compare_exchange(
                    cur,
                    cur | WAITERS,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        cur |= WAITERS;
                        break;
                    }
                    Err(v) => cur = v,
                }
            }
            // The holder's context, alive while we hold the list lock with
            // WAITERS set (module docs).
            let hold = Self::ctx_at(&l, cur);
            if let Err(e) = self.decide_and_queue(&l, &w, ctx, hold, &mut detached, &mut wound) {
                if l.is_empty() {
                    self.owner.fetch_and(!WAITERS, Ordering::Relaxed);
                }
                drop(l);
                detached.wake();
                return Err(e);
            }
        }
        detached.wake();
        if let Some(t) = wound {
            t.wake_up();
        }
        self.wait(&w, ctx, holds, state)
    }

    /// The context a lock word names, if any.
    ///
    /// `word` was read under `_locked` with `WAITERS` set; the reference lives
    /// no longer than that hold of the list lock.
    #[inline]
    fn ctx_at<'l>(_locked: &'l Locked<'_, Plain>, word: usize) -> Option<&'l CtxInner> {
        let addr = word & CTX_MASK;
        if addr == 0 {
            return None;
        }
        // SAFETY: a word names a context only while that context holds the
        // lock through a guard, which borrows the (boxed) context; with WAITERS
        // set and the list lock held by our caller, the holder cannot release
        // before our caller lets go of the list lock (module docs), and the box
        // is never freed while a lock word names it (`WwAcquireCtx::drop`).
        Some(unsafe { &*core::ptr::with_exposed_provenance::<CtxInner>(addr) })
    }

    /// Under the list lock, with WAITERS set and the lock held by `hold`:
    /// decides whether `ctx` must die (wait-die), queues `w` in stamp order,
    /// tells younger waiters behind it to die (wait-die), or wounds the holder
    /// (wound-wait; the task to wake goes to `wound`).
    fn decide_and_queue<'l>(
        &self,
        l: &Locked<'l, Plain>,
        w: &Waiter,
        ctx: Option<&CtxInner>,
        hold: Option<&CtxInner>,
        detached: &mut Detached,
        wound: &mut Option<Task>,
    ) -> Result<()> {
        let Some(c) = ctx else {
            // SAFETY: `w` is fresh, linked only into this list, and `wait`
            // returns only once it is unlinked or marked.
            unsafe { l.push_back(w) };
            return Ok(());
        };
        let holds = w.tag & HOLDS != 0;
        if c.wait_die && holds && hold.is_some_and(|h| c.younger_than(h)) {
            // Wait-die: the holder is older; die at once.
            return Err(Error::Deadlock);
        }
        // Find our place: before the first waiter with a younger context.
        let mut at = l.front();
        let mut older_ahead = false;
        while let Some(x) = at {
            if x.tag & HAS_CTX != 0 {
                let xc = Self::waiter_ctx(x);
                if xc.younger_than(c) {
                    break;
                }
                older_ahead = true;
            }
            at = l.next_of(x);
        }
        if c.wait_die && holds && older_ahead {
            // Wait-die: an older transaction waits ahead of us; die.
            return Err(Error::Deadlock);
        }
        // SAFETY: `w` is fresh, linked only into this list, and `wait` returns
        // only once it is unlinked or marked.
        unsafe {
            match at {
                Some(x) => l.insert_before(w, x),
                None => l.push_back(w),
            }
        }
        if c.wait_die {
            // Every context queued behind us is younger: those that hold
            // locks die (`__ww_mutex_die`).
            let mut next = l.next_of(w);
            while let Some(x) = next {
                next = l.next_of(x);
                if x.tag & (HAS_CTX | HOLDS) == HAS_CTX | HOLDS {
                    l.hand_off(x, DIE, detached);
                }
            }
        } else if holds
            && let Some(h) = hold
            && h.younger_than(c)
        {
            // Wound-wait: wound the younger holder (`__ww_mutex_wound`).
            // Relaxed: the holder reads the flag after consuming the wake-up
            // (Acquire), which our `wake_up` (SeqCst swap) releases; at its next
            // lock call it needs no ordering, only to see the flag eventually.
            h.wounded.store(true, Ordering::Relaxed);
            *wound = Some(h.task.clone());
        }
        Ok(())
    }

    /// The context of a queued waiter that has one.
    #[inline]
    fn waiter_ctx(w: &Waiter) -> &CtxInner {
        debug_assert!(w.tag & HAS_CTX != 0 && w.key != 0);
        // SAFETY: a queued waiter's `key` is its context's address; the waiter
        // sleeps in `lock_contended` with a borrow of that context until its
        // entry is unlinked or marked, which cannot happen while the caller
        // holds the list lock through which it reached `w`.
        unsafe { &*core::ptr::with_exposed_provenance::<CtxInner>(w.key) }
    }

    /// Sleeps until `w` is handed the lock (`Ok`), told to die, wounded while
    /// holding locks, or interrupted (`Err`).
    fn wait(
        &self,
        w: &Waiter,
        ctx: Option<&CtxInner>,
        holds: bool,
        state: TaskState,
    ) -> Result<()> {
        let wound_wait = ctx.is_some_and(|c| !c.wait_die);
        let err = loop {
            if w.is_woken() {
                return Self::granted(w);
            }
            if wound_wait
                && holds
                && let Some(c) = ctx
                && c.wounded.load(Ordering::Relaxed)
            {
                break Error::Deadlock;
            }
            if let Err(e) = sleep(state, None) {
                break e;
            }
        };
        let woken = self.waiters.leave(w, |l| {
            if l.is_empty() {
                // Relaxed: under the list lock, as every WAITERS change.
                self.owner.fetch_and(!WAITERS, Ordering::Relaxed);
            }
        });
        if woken {
            // A hand-off (or a die) reached us before we left: it wins, as the
            // wait engine's completion rule says.
            return Self::granted(w);
        }
        Err(err)
    }

    /// What a marked waiter was given.
    #[inline]
    fn granted(w: &Waiter) -> Result<()> {
        match w.grant() {
            HANDED => Ok(()),
            DIE => Err(Error::Deadlock),
            g => unreachable!("ww_mutex waiter woken with grant {g}"),
        }
    }

    /// Releases the lock held as `me` (`ww_mutex_unlock`).
    ///
    /// # Safety
    /// The calling thread holds the lock, and `owner` (bits other than
    /// `WAITERS`) is `me`.
    #[inline]
    unsafe fn unlock(&self, me: usize) {
        // Release: pairs with the Acquire CAS of the next lock.
        if self
            .owner
            .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    /// The unlock with WAITERS set: under the list lock, hand the lock to the
    /// first waiter, or free it if the list emptied meanwhile.
    #[cold]
    fn unlock_slow(&self) {
        let mut d = Detached::empty();
        {
            let l = self.waiters.lock();
            match l.front() {
                Some(f) => {
                    let more = if l.next_of(f).is_some() { WAITERS } else { 0 };
                    // Relaxed: the new owner is ordered after our critical
                    // section by the hand-off mark (Release in `Detached::wake`,
                    // Acquire in `Waiter::grant`); other readers of the word
                    // act on it under the list lock or by a CAS that fails.
                    self.owner.store(f.key | LOCKED | more, Ordering::Relaxed);
                    l.hand_off(f, HANDED, &mut d);
                }
                // Release: pairs with the Acquire CAS of the next lock.
                None => self.owner.store(0, Ordering::Release),
            }
        }
        d.wake();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for WwMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WwMutex")
            .field("class", &self.class.name())
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// The guard of a held [`WwMutex`]: derefs to the data, unlocks on drop
/// (`ww_mutex_unlock`), and counts itself out of its context.
///
/// `!Send`: the lock, its context and lockdep's held-lock stack belong to the
/// thread that took it.
///
/// ```compile_fail
/// use ksync::ww_mutex::{WwClass, WwMutex};
/// static C: WwClass = WwClass::new("c_acquire", "c_mutex");
/// static M: WwMutex<u32> = WwMutex::new(&C, 0);
/// let g = M.lock_noctx();
/// std::thread::spawn(move || drop(g));
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct WwMutexGuard<'a, T: ?Sized> {
    lock: &'a WwMutex<T>,
    ctx: Option<&'a CtxInner>,
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: sharing the guard shares `&T` only (`T: Sync`); the unlock and the
// context stay with the owning thread (`!Send`).
unsafe impl<T: ?Sized + Sync> Sync for WwMutexGuard<'_, T> {}

impl<T: ?Sized> WwMutexGuard<'_, T> {
    /// Unlocks now (`ww_mutex_unlock`): the same as dropping the guard.
    #[doc(alias = "ww_mutex_unlock")]
    #[inline]
    pub fn unlock(self) {
        drop(self)
    }
}

impl<T: ?Sized> Drop for WwMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        lockdep::release(&self.lock.dep_map);
        let me = match self.ctx {
            Some(c) => {
                c.acquired.set(c.acquired.get() - 1);
                (c as *const CtxInner).expose_provenance() | LOCKED
            }
            None => LOCKED,
        };
        // SAFETY: the guard exists only while this thread holds the lock as
        // `me` (type invariant of `WwMutex`).
        unsafe { self.lock.unlock(me) };
    }
}

impl<T: ?Sized> Deref for WwMutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock
        // (type invariant), so no `&mut T` exists elsewhere.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> DerefMut for WwMutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock
        // exclusively (type invariant), and `&mut self` makes this the only
        // reference through it.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for WwMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The kernel's back-off loop (`ww-mutex-design.rst`), shared by the unit
/// tests and the loom models: takes `ms[i]` for each `i` of `order` under
/// `ctx`; on `-EDEADLK` drops every guard, takes the contended lock first with
/// `lock_slow`, and goes on with the rest. Returns the guards and the number
/// of back-offs.
#[cfg(test)]
fn acquire_all<'a, T>(
    ctx: &'a WwAcquireCtx,
    ms: &'a [WwMutex<T>],
    order: &[usize],
) -> (Vec<WwMutexGuard<'a, T>>, u64) {
    let mut backoffs = 0;
    let mut contended: Option<usize> = None;
    loop {
        let mut held = Vec::new();
        if let Some(i) = contended {
            held.push(ms[i].lock_slow(ctx));
        }
        let mut failed = None;
        for &i in order {
            if Some(i) == contended {
                continue;
            }
            match ms[i].lock(ctx) {
                Ok(g) => held.push(g),
                Err(Error::Deadlock) => {
                    failed = Some(i);
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        match failed {
            None => return (held, backoffs),
            Some(i) => {
                backoffs += 1;
                drop(held);
                contended = Some(i);
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;
