//! `struct rw_semaphore`: many sleeping readers or one sleeping writer, guarding data.
//!
//! | kernel | ksync |
//! |---|---|
//! | `DECLARE_RWSEM`, `init_rwsem` | `static S: RwSemaphore<T> = RwSemaphore::new(v)`, [`RwSemaphore::new`] |
//! | `down_read` / `up_read` | [`RwSemaphore::read`] / drop of the [`RwSemReadGuard`] |
//! | `down_write` / `up_write` | [`RwSemaphore::write`] / drop of the [`RwSemWriteGuard`] |
//! | `down_read_trylock`, `down_write_trylock` | [`RwSemaphore::try_read`], [`RwSemaphore::try_write`] |
//! | `down_read_killable`, `down_write_killable` | [`RwSemaphore::read_killable`], [`RwSemaphore::write_killable`] |
//! | `down_read_interruptible` | [`RwSemaphore::read_interruptible`] |
//! | `downgrade_write` | [`RwSemWriteGuard::downgrade`] |
//!
//! ```
//! use ksync::rwsem::RwSemaphore;
//!
//! static CONFIG: RwSemaphore<Vec<String>> = RwSemaphore::new(Vec::new()); // DECLARE_RWSEM
//!
//! CONFIG.write().push("mtu=1500".into());        // down_write … up_write
//! assert_eq!(CONFIG.read().len(), 1);             // down_read … up_read
//! let w = CONFIG.write();
//! let r = w.downgrade();                          // downgrade_write
//! assert!(CONFIG.try_read().is_some());           // other readers get in
//! assert!(CONFIG.try_write().is_none());          // writers do not
//! drop(r);
//! ```
//!
//! # Implementation details
//!
//! The state word (after the kernel's `kernel/locking/rwsem.c`, whose count also
//! holds a writer bit, a waiters flag and the reader count):
//!
//! | bits      | name      | meaning |
//! |-----------|-----------|---------|
//! | 0         | `WRITER`  | a writer holds the lock |
//! | 1         | `WAITERS` | the wait list is not empty (set and cleared with the list lock held) |
//! | 2..32     | readers   | number of readers holding the lock, in units of `READER` (4) |
//!
//! Invariant: `WRITER` and a non-zero reader count never coexist.
//!
//! **Fairness: FIFO hand-off (task-fair).** While anyone waits (`WAITERS`), no
//! newcomer takes the lock on the fast path, not even a reader while other
//! readers hold it: it queues. When the lock becomes free for the first waiter,
//! the releaser *grants* it, under the list lock: it adds the writer bit or the
//! reader counts on behalf of the waiters at the head of the queue (one writer,
//! or every consecutive reader), unlinks them and wakes them; they return owning
//! the lock without retrying. So a writer cannot starve behind a stream of
//! readers (readers arriving after it queue behind it), and readers cannot starve
//! behind a stream of writers (a writer's release grants the readers queued
//! before the next writer). The price against reader-preferring locks is that a
//! reader waits when a writer is queued even though readers hold the lock — the
//! same trade the kernel makes.
//!
//! Fast paths: `read` is one CAS adding `READER` if neither `WRITER` nor
//! `WAITERS` is set; `write` is one CAS `0 → WRITER`. Releases are one RMW
//! (`fetch_sub`, Release); they enter the slow path only when they freed the lock
//! and `WAITERS` was set. Because setting `WAITERS` and every release are RMWs on
//! the same word, they are totally ordered: either the release sees `WAITERS`
//! and grants, or the waiter's `fetch_or` returns the released state and it
//! grants itself (and whoever is first) before sleeping. No fence pair is needed.
//!
//! A queued waiter first spins (bounded) on its entry's `done` flag before it
//! sleeps: critical sections are usually short, so the grant tends to arrive
//! while it spins and costs no wake-up — without this, every writer arriving
//! among busy readers put all of them to sleep and back (a convoy).
//!
//! A waiter that is interrupted (or killed) unlinks itself and re-runs the grant
//! step, since its leaving may unblock the readers queued behind it. If a grant
//! reached it first, it owns the lock and returns `Ok`.

use crate::error::Result;
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use crate::mutex::{Locked, WaitList, Waiter, Woken};
use crate::sched::TaskState;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

const WRITER: u32 = 1;
const WAITERS: u32 = 2;
const READER: u32 = 4;
const READER_MASK: u32 = !(WRITER | WAITERS);

/// Waiter tags.
const WANT_READ: u32 = 0;
const WANT_WRITE: u32 = 1;

/// Optimistic-spin rounds before queueing (each a [`Backoff::spin`](crate::Backoff::spin)).
const SPIN_ROUNDS: u32 = if cfg!(loom) { 1 } else { 10 };

/// A reader-writer semaphore guarding a `T` (`struct rw_semaphore`).
///
/// See the [module docs](self) for the fairness policy (FIFO hand-off).
#[doc(alias = "rw_semaphore")]
#[doc(alias = "DECLARE_RWSEM")]
pub struct RwSemaphore<T: ?Sized> {
    state: AtomicU32,
    waiters: WaitList,
    dep_map: LockdepMap,
    data: UnsafeCell<T>,
}

// SAFETY: the semaphore owns its `T`.
unsafe impl<T: ?Sized + Send> Send for RwSemaphore<T> {}
// SAFETY: writers get `&mut T` from any thread (needs `T: Send`), readers share
// `&T` across threads at once (needs `T: Sync`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwSemaphore<T> {}

impl<T> RwSemaphore<T> {
    /// A new, free semaphore holding `data` (`init_rwsem`, `DECLARE_RWSEM`).
    /// `const`; its lockdep class is the caller's location.
    #[doc(alias = "init_rwsem")]
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new(data: T) -> RwSemaphore<T> {
        RwSemaphore {
            state: AtomicU32::new(0),
            waiters: WaitList::new(),
            dep_map: LockdepMap::new_sleeping("rw_semaphore"),
            data: UnsafeCell::new(data),
        }
    }

    /// A new, free semaphore whose lockdep class is `key`, named `name`
    /// (`__init_rwsem(sem, name, key)`, `lockdep_set_class`).
    ///
    /// ```
    /// use ksync::{lockdep::LockClassKey, rwsem::RwSemaphore};
    /// static MMAP_LOCK: LockClassKey = LockClassKey::new("mm->mmap_lock");
    /// let s = RwSemaphore::with_class(0, "mm->mmap_lock", &MMAP_LOCK);
    /// assert_eq!(*s.read(), 0);
    /// ```
    #[doc(alias = "__init_rwsem")]
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn with_class(
        data: T,
        name: &'static str,
        key: &'static lockdep::LockClassKey,
    ) -> RwSemaphore<T> {
        RwSemaphore {
            state: AtomicU32::new(0),
            waiters: WaitList::new(),
            dep_map: LockdepMap::with_key(name, key).sleeping(),
            data: UnsafeCell::new(data),
        }
    }

    /// A new, free semaphore (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(data: T) -> RwSemaphore<T> {
        RwSemaphore {
            state: AtomicU32::new(0),
            waiters: WaitList::new(),
            dep_map: LockdepMap::new_sleeping("rw_semaphore"),
            data: UnsafeCell::new(data),
        }
    }

    /// Consumes the semaphore, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwSemaphore<T> {
    // ---- read side ------------------------------------------------------------

    #[inline]
    fn try_read_fast(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        // Acquire pairs with the Release of the last writer's release.
        s & (WRITER | WAITERS) == 0
            && self
                .state
                .compare_exchange_weak(s, s + READER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes the semaphore for reading, sleeping uninterruptibly (`down_read`).
    #[doc(alias = "down_read")]
    #[inline]
    pub fn read(&self) -> RwSemReadGuard<'_, T> {
        self.read_nested(0)
    }

    /// [`read`](Self::read) with a lockdep subclass (`down_read_nested`), for two
    /// semaphores of one lock class taken nested; ignored without the feature.
    #[doc(alias = "down_read_nested")]
    #[inline]
    pub fn read_nested(&self, subclass: u32) -> RwSemReadGuard<'_, T> {
        // Before waiting; the map is a sleeping one, so down_read in atomic
        // context is reported even uncontended (down_read's might_sleep()).
        lockdep::acquire(&self.dep_map, AcquireKind::Read, false, subclass);
        if !self.try_read_fast() {
            let r = self.lock_slow(WANT_READ, TaskState::Uninterruptible);
            debug_assert!(r.is_ok());
        }
        self.read_guard()
    }

    /// Takes it for reading, or returns [`Error::Interrupted`](crate::Error::Interrupted)
    /// if a signal arrives while sleeping (`down_read_interruptible`).
    ///
    /// # Errors
    /// [`Error::Interrupted`](crate::Error::Interrupted), [`Error::Killed`](crate::Error::Killed).
    #[doc(alias = "down_read_interruptible")]
    #[inline]
    pub fn read_interruptible(&self) -> Result<RwSemReadGuard<'_, T>> {
        self.read_state(TaskState::Interruptible)
    }

    /// Takes it for reading, or returns [`Error::Killed`](crate::Error::Killed) on
    /// SIGKILL (`down_read_killable`).
    ///
    /// # Errors
    /// [`Error::Killed`](crate::Error::Killed).
    #[doc(alias = "down_read_killable")]
    #[inline]
    pub fn read_killable(&self) -> Result<RwSemReadGuard<'_, T>> {
        self.read_state(TaskState::Killable)
    }

    #[inline]
    fn read_state(&self, state: TaskState) -> Result<RwSemReadGuard<'_, T>> {
        lockdep::acquire(&self.dep_map, AcquireKind::Read, false, 0);
        if !self.try_read_fast() {
            if let Err(e) = self.lock_slow(WANT_READ, state) {
                lockdep::release(&self.dep_map);
                return Err(e);
            }
        }
        Ok(self.read_guard())
    }

    /// Takes it for reading if that needs no wait (`down_read_trylock`): fails
    /// while a writer holds it or anyone is queued.
    #[doc(alias = "down_read_trylock")]
    #[inline]
    pub fn try_read(&self) -> Option<RwSemReadGuard<'_, T>> {
        let backoff = crate::mutex::Relax::new();
        let mut s = self.state.load(Ordering::Relaxed);
        while s & (WRITER | WAITERS) == 0 {
            // Acquire as in `try_read_fast`.
            match self.state.compare_exchange_weak(
                s,
                s + READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    lockdep::acquire(&self.dep_map, AcquireKind::Read, true, 0);
                    return Some(self.read_guard());
                }
                Err(now) => s = now,
            }
            backoff.spin();
        }
        None
    }

    #[inline]
    fn read_guard(&self) -> RwSemReadGuard<'_, T> {
        RwSemReadGuard {
            sem: self,
            _not_send: PhantomData,
        }
    }

    /// `up_read`.
    #[inline]
    fn up_read(&self) {
        lockdep::release(&self.dep_map);
        // Release pairs with the Acquire of the next writer (fast CAS or grant).
        let prev = self.state.fetch_sub(READER, Ordering::Release);
        if prev == READER | WAITERS {
            self.wake_slow();
        }
    }

    // ---- write side -----------------------------------------------------------

    #[inline]
    fn try_write_fast(&self) -> bool {
        // Acquire pairs with the Release of the previous holders' releases.
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the semaphore for writing, sleeping uninterruptibly (`down_write`).
    #[doc(alias = "down_write")]
    #[inline]
    pub fn write(&self) -> RwSemWriteGuard<'_, T> {
        self.write_nested(0)
    }

    /// [`write`](Self::write) with a lockdep subclass (`down_write_nested`), for
    /// two semaphores of one lock class taken nested; ignored without the feature.
    #[doc(alias = "down_write_nested")]
    #[inline]
    pub fn write_nested(&self, subclass: u32) -> RwSemWriteGuard<'_, T> {
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, false, subclass);
        if !self.try_write_fast() {
            let r = self.lock_slow(WANT_WRITE, TaskState::Uninterruptible);
            debug_assert!(r.is_ok());
        }
        self.write_guard()
    }

    /// Takes it for writing, or returns [`Error::Interrupted`](crate::Error::Interrupted)
    /// if a signal arrives while sleeping.
    ///
    /// # Errors
    /// [`Error::Interrupted`](crate::Error::Interrupted), [`Error::Killed`](crate::Error::Killed).
    #[inline]
    pub fn write_interruptible(&self) -> Result<RwSemWriteGuard<'_, T>> {
        self.write_state(TaskState::Interruptible)
    }

    /// Takes it for writing, or returns [`Error::Killed`](crate::Error::Killed) on
    /// SIGKILL (`down_write_killable`).
    ///
    /// # Errors
    /// [`Error::Killed`](crate::Error::Killed).
    #[doc(alias = "down_write_killable")]
    #[inline]
    pub fn write_killable(&self) -> Result<RwSemWriteGuard<'_, T>> {
        self.write_state(TaskState::Killable)
    }

    #[inline]
    fn write_state(&self, state: TaskState) -> Result<RwSemWriteGuard<'_, T>> {
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, false, 0);
        if !self.try_write_fast() {
            if let Err(e) = self.lock_slow(WANT_WRITE, state) {
                lockdep::release(&self.dep_map);
                return Err(e);
            }
        }
        Ok(self.write_guard())
    }

    /// Takes it for writing if it is free and nobody waits (`down_write_trylock`).
    #[doc(alias = "down_write_trylock")]
    #[inline]
    pub fn try_write(&self) -> Option<RwSemWriteGuard<'_, T>> {
        if self.try_write_fast() {
            lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, true, 0);
            Some(self.write_guard())
        } else {
            None
        }
    }

    #[inline]
    fn write_guard(&self) -> RwSemWriteGuard<'_, T> {
        RwSemWriteGuard {
            sem: self,
            _not_send: PhantomData,
        }
    }

    /// `up_write`.
    #[inline]
    fn up_write(&self) {
        lockdep::release(&self.dep_map);
        // Release pairs with the Acquire of the next holder.
        let prev = self.state.fetch_sub(WRITER, Ordering::Release);
        if prev & WAITERS != 0 {
            self.wake_slow();
        }
    }

    /// `downgrade_write`: writer → reader, atomically; queued readers at the head
    /// are let in, writers stay excluded.
    fn downgrade(&self) {
        lockdep::release(&self.dep_map);
        lockdep::acquire(&self.dep_map, AcquireKind::Read, true, 0);
        // Release: our writes are visible to the readers granted below (and to
        // later acquirers). `READER - WRITER` turns the writer bit into one reader.
        let prev = self.state.fetch_add(READER - WRITER, Ordering::Release);
        debug_assert!(prev & WRITER != 0);
        if prev & WAITERS != 0 {
            self.wake_slow();
        }
    }

    // ---- shared slow paths -------------------------------------------------------

    /// Whether anyone holds the semaphore (`rwsem_is_locked`). A snapshot.
    #[doc(alias = "rwsem_is_locked")]
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & (WRITER | READER_MASK) != 0
    }

    /// Whether a writer holds it. A snapshot.
    pub fn is_write_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WRITER != 0
    }

    /// How many readers hold it. A snapshot.
    pub fn reader_count(&self) -> u32 {
        (self.state.load(Ordering::Relaxed) & READER_MASK) / READER
    }

    /// Mutable access without locking: `&mut self` proves no one holds it.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` excludes every other access.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// Bounded optimistic spin while no one is queued.
    fn spin(&self, kind: u32) -> bool {
        let backoff = crate::mutex::Relax::new();
        for _ in 0..SPIN_ROUNDS {
            let s = self.state.load(Ordering::Relaxed);
            if s & WAITERS != 0 {
                return false;
            }
            let ok = if kind == WANT_READ {
                s & WRITER == 0 && self.try_read_fast()
            } else {
                s == 0 && self.try_write_fast()
            };
            if ok {
                return true;
            }
            backoff.spin();
        }
        false
    }

    #[cold]
    fn lock_slow(&self, kind: u32, state: TaskState) -> Result<()> {
        if crate::sched::in_interrupt() {
            // Refused: undo the caller's lockdep acquire first, so the held-lock
            // stack stays balanced for whoever catches the panic.
            lockdep::release(&self.dep_map);
            panic!("down_read/down_write: an rw_semaphore may not be taken in interrupt context");
        }
        if self.spin(kind) {
            return Ok(());
        }
        lockdep::might_sleep();
        let node = Waiter::new(crate::sched::current(), kind);
        let mut woken = Woken::new();
        {
            let q = self.waiters.lock();
            // SAFETY: `node` stays on this frame until unlinked: we return only
            // after it was granted (`done`) or after `leave` unlinked it.
            unsafe { q.push_back(&node) };
            // SeqCst RMW: ordered with every release's RMW on this word (module docs).
            self.state.fetch_or(WAITERS, Ordering::SeqCst);
            // The lock may have been freed before our bit landed: grant now.
            self.grant(&q, &mut woken);
        }
        woken.wake_all();
        // A grant often comes within microseconds (short critical sections): wait
        // for it spinning first, so that it costs no wake-up. The granter's
        // `wake_up` then only leaves a token (a later spurious `sleep` return).
        let backoff = crate::mutex::Relax::new();
        for _ in 0..SPIN_ROUNDS {
            if node.is_done() {
                return Ok(());
            }
            backoff.spin();
        }
        loop {
            if node.is_done() {
                return Ok(());
            }
            if let Err(e) = crate::sched::sleep(state, None) {
                return if self.leave(&node) { Ok(()) } else { Err(e) };
            }
        }
    }

    /// Grants the lock to the waiters at the head that can have it now, moving
    /// them to `woken`; clears `WAITERS` if the list empties. List lock held.
    fn grant(&self, q: &Locked<'_>, woken: &mut Woken) {
        while let Some(first) = q.front() {
            // Acquire: the releases we grant after (their Release RMWs) happen
            // before the granted critical sections, through `done` (Release/Acquire).
            let s = self.state.load(Ordering::Acquire);
            let (can, add) = if first.tag == WANT_WRITE {
                (s & (WRITER | READER_MASK) == 0, WRITER)
            } else {
                (s & WRITER == 0, READER)
            };
            if !can {
                break;
            }
            // Only releases (which never set bits) race with us here: newcomers
            // see WAITERS and queue. Retry the CAS if a release landed.
            if self
                .state
                .compare_exchange(s, s + add, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let was_writer = first.tag == WANT_WRITE;
            q.take(first, woken);
            if was_writer {
                break;
            }
        }
        if q.is_empty() {
            self.state.fetch_and(!WAITERS, Ordering::Relaxed);
        }
    }

    /// A release freed the lock (or downgraded) with waiters queued.
    #[cold]
    fn wake_slow(&self) {
        let mut woken = Woken::new();
        {
            let q = self.waiters.lock();
            self.grant(&q, &mut woken);
        }
        woken.wake_all();
    }

    /// A waiter gives up. Returns `true` if a grant reached it first.
    #[cold]
    fn leave(&self, node: &Waiter) -> bool {
        let mut woken = Woken::new();
        {
            let q = self.waiters.lock();
            if !node.is_linked(&q) {
                drop(q);
                node.wait_done();
                return true;
            }
            q.remove(node);
            // Our leaving may unblock those behind us (readers behind a writer).
            self.grant(&q, &mut woken);
        }
        woken.wake_all();
        false
    }
}

impl<T: Default> Default for RwSemaphore<T> {
    #[track_caller]
    fn default() -> Self {
        RwSemaphore::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwSemaphore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_read() {
            Some(g) => f.debug_struct("RwSemaphore").field("data", &&*g).finish(),
            None => f
                .debug_struct("RwSemaphore")
                .field("state", &self.state.load(Ordering::Relaxed))
                .finish_non_exhaustive(),
        }
    }
}

/// Shared access; `up_read` on drop.
///
/// `!Send`: lockdep's held-lock stack is per thread, and the kernel requires
/// `up_read` by the task that did `down_read`.
///
/// ```compile_fail
/// fn must_be_send<T: Send>(_: T) {}
/// let s = ksync::rwsem::RwSemaphore::new(0);
/// must_be_send(s.read()); // error: the guard is not Send
/// ```
#[must_use = "the semaphore is released as soon as the guard is dropped"]
pub struct RwSemReadGuard<'a, T: ?Sized> {
    sem: &'a RwSemaphore<T>,
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: sharing a read guard shares `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwSemReadGuard<'_, T> {}

impl<T: ?Sized> RwSemReadGuard<'_, T> {
    /// Releases now (`up_read`).
    #[doc(alias = "up_read")]
    pub fn unlock(self) {
        drop(self)
    }
}

impl<T: ?Sized> Deref for RwSemReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a read guard excludes writers; readers only share `&T`.
        self.sem.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> Drop for RwSemReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.sem.up_read();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwSemReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access; `up_write` on drop. `!Send` (see [`RwSemReadGuard`]).
///
/// ```compile_fail
/// fn must_be_send<T: Send>(_: T) {}
/// let s = ksync::rwsem::RwSemaphore::new(0);
/// must_be_send(s.write()); // error: the guard is not Send
/// ```
#[must_use = "the semaphore is released as soon as the guard is dropped"]
pub struct RwSemWriteGuard<'a, T: ?Sized> {
    sem: &'a RwSemaphore<T>,
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: sharing a write guard shares `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwSemWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwSemWriteGuard<'a, T> {
    /// Turns write access into read access without letting a writer in between
    /// (`downgrade_write`): readers queued at the head get in too.
    #[doc(alias = "downgrade_write")]
    pub fn downgrade(self) -> RwSemReadGuard<'a, T> {
        let sem = self.sem;
        core::mem::forget(self);
        sem.downgrade();
        sem.read_guard()
    }

    /// Releases now (`up_write`).
    #[doc(alias = "up_write")]
    pub fn unlock(self) {
        drop(self)
    }
}

impl<T: ?Sized> Deref for RwSemWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a write guard is exclusive.
        self.sem.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> DerefMut for RwSemWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a write guard is exclusive, and `&mut self` makes this the only borrow.
        self.sem.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: ?Sized> Drop for RwSemWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.sem.up_write();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwSemWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Error;
    use crate::sched::{Signal, current};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn readers_share_writers_exclude() {
        let s = RwSemaphore::new(1);
        let r1 = s.read();
        let r2 = s.try_read().unwrap();
        assert_eq!(*r1 + *r2, 2);
        assert_eq!(s.reader_count(), 2);
        assert!(s.try_write().is_none());
        drop((r1, r2));
        let mut w = s.try_write().unwrap();
        *w = 3;
        assert!(s.is_write_locked());
        assert!(s.try_read().is_none());
        drop(w);
        assert!(!s.is_locked());
        assert_eq!(s.into_inner(), 3);
    }

    #[test]
    fn downgrade_admits_readers_and_excludes_writers() {
        let s = Arc::new(RwSemaphore::new(0));
        let mut w = s.write();
        *w = 7;
        // A writer and a reader queue behind us.
        let (s1, s2) = (s.clone(), s.clone());
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            *s1.read()
        });
        let rtask = rx.recv().unwrap();
        while rtask.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        let r = w.downgrade();
        assert_eq!(*r, 7);
        // The queued reader was granted.
        assert_eq!(reader.join().unwrap(), 7);
        // A new reader gets in; a writer does not.
        assert!(s.try_read().is_some());
        assert!(s.try_write().is_none());
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            *s2.write() += 1;
        });
        let wtask = rx.recv().unwrap();
        while wtask.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        assert!(!writer.is_finished());
        drop(r);
        writer.join().unwrap();
        assert_eq!(*s.read(), 8);
    }

    #[test]
    fn writer_gets_in_under_four_continuous_readers() {
        let s = Arc::new(RwSemaphore::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (s, stop, reads) = (s.clone(), stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let g = s.read();
                        for _ in 0..100 {
                            core::hint::spin_loop();
                        }
                        drop(g);
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        while reads.load(Ordering::Relaxed) < 1000 {
            std::thread::yield_now();
        }
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        let writer = std::thread::spawn(move || {
            for _ in 0..10 {
                *s2.write() += 1;
            }
            tx.send(()).unwrap();
        });
        let got = rx.recv_timeout(Duration::from_secs(60));
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        writer.join().unwrap();
        assert!(got.is_ok(), "the writer starved under continuous readers");
        assert_eq!(*s.read(), 10);
    }

    #[test]
    fn interruptible_read_returns_eintr_and_leaves_the_state_alone() {
        let s = Arc::new(RwSemaphore::new(()));
        let w = s.write();
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = s2.read_interruptible().map(|_| ());
            crate::sched::flush_signals();
            r
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Interruptible {
            std::thread::yield_now();
        }
        task.send_signal(Signal::SIGINT);
        assert_eq!(t.join().unwrap(), Err(Error::Interrupted));
        assert_eq!(s.state.load(Ordering::Relaxed), WRITER);
        drop(w);
        assert!(s.try_write().is_some());
    }

    #[test]
    fn killed_writer_unblocks_the_readers_queued_behind_it() {
        let s = Arc::new(RwSemaphore::new(()));
        let r = s.read();
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        let writer = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = s2.write_killable().map(|_| ());
            crate::sched::flush_signals();
            r
        });
        let wtask = rx.recv().unwrap();
        while wtask.state() != TaskState::Killable {
            std::thread::yield_now();
        }
        let s3 = s.clone();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            drop(s3.read());
        });
        let rtask = rx.recv().unwrap();
        while rtask.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        wtask.send_signal(Signal::SIGKILL);
        assert_eq!(writer.join().unwrap(), Err(Error::Killed));
        reader.join().unwrap();
        drop(r);
        assert_eq!(s.state.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn stress_16_threads_readers_and_writers() {
        let s = RwSemaphore::new((0u64, 0u64));
        std::thread::scope(|sc| {
            for i in 0..16 {
                let s = &s;
                sc.spawn(move || {
                    for j in 0..1500u64 {
                        if i % 4 == 0 || j % 8 == 0 {
                            let mut g = s.write();
                            g.0 += 1;
                            g.1 += 1;
                        } else {
                            let g = s.read();
                            assert_eq!(g.0, g.1);
                        }
                        if j % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                });
            }
        });
        // 4 writer threads × 1500 + 12 threads × 1500/8 (rounded up: 188).
        let expected = 4 * 1500 + 12 * 188;
        let g = s.read();
        assert_eq!(*g, (expected, expected));
        drop(g);
        assert_eq!(s.state.load(Ordering::Relaxed), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    /// A writer and a reader: exclusion (cell checks), the reader sees a
    /// consistent pair, nobody sleeps forever.
    #[test]
    fn loom_rwsem_writer_and_reader() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new((0u32, 0u32)));
            let s2 = s.clone();
            let t = loom::thread::spawn(move || {
                let mut g = s2.write();
                g.0 += 1;
                g.1 += 1;
            });
            {
                let g = s.read();
                assert_eq!(g.0, g.1);
            }
            t.join().unwrap();
            assert_eq!(*s.read(), (1, 1));
        });
    }

    /// Two writers and a downgrade: the downgraded reader and the other writer
    /// exclude each other, and every grant is delivered.
    #[test]
    fn loom_rwsem_writers_and_downgrade() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new(0u32));
            let s2 = s.clone();
            let t = loom::thread::spawn(move || {
                *s2.write() += 1;
            });
            let mut w = s.write();
            *w += 1;
            let r = w.downgrade();
            assert!(*r >= 1);
            drop(r);
            t.join().unwrap();
            assert_eq!(*s.read(), 2);
        });
    }
}
