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
//! The algorithm borrows from the kernel's `kernel/locking/rwsem.c` (a count
//! word with a writer bit, waiter flags and the reader count; `RWSEM_FLAG_HANDOFF`;
//! readers woken as a batch by `rwsem_mark_wake`) and from parking_lot's
//! `src/raw_rwlock.rs` (a writer first blocks new readers, then waits for the
//! active ones to drain; unlocks wake instead of hand over, with hand-off only
//! once a waiter has waited too long). The state word:
//!
//! | bits      | name             | meaning | set / cleared |
//! |-----------|------------------|---------|---------------|
//! | 0         | `WRITER`         | a writer holds the lock | by the acquiring writer (CAS) or its granter; by `up_write` |
//! | 1         | `WAITERS`        | the wait list is not empty | under the list lock |
//! | 2         | `WRITER_WAITING` | a writer is queued: new readers queue instead of entering | under the list lock |
//! | 3         | `HANDOFF`        | the first queued writer has waited too long: nobody but it may take the lock next | under the list lock |
//! | 4..32     | readers          | readers holding the lock, in units of `READER` (16) | reader fast path (CAS), `up_read`, reader grants |
//!
//! Invariant: `WRITER` and a non-zero reader count never coexist.
//!
//! **Fairness: phase-fair with writer preference and hand-off.** The phases
//! alternate:
//! - *readers enter freely* while no writer holds or waits (one CAS);
//! - *a writer arriving* spins briefly while another writer holds it, then
//!   queues and sets `WRITER_WAITING`: from then on new readers queue, and the
//!   writer waits (spinning a bounded time on the word, then sleeping) for the
//!   active readers to drain — the last one wakes it. So a stream of readers
//!   cannot starve a writer;
//! - *a writer releasing* with readers queued wakes **all** of them at once
//!   (they do not convoy one by one), even those that queued behind later
//!   writers, and lets them in past `WRITER_WAITING` (a one-time ticket): the
//!   readers that arrived while a writer waited get their turn after it;
//! - the lock is not handed to a sleeping thread by default: a lock granted to
//!   a sleeper stays idle for the 15–25 µs that waking it takes, which is what
//!   made strict FIFO hand-off convoy. So woken waiters retry, and a writer that
//!   is awake may take the free lock first (lock stealing, as in the kernel's
//!   mutex and parking_lot). The woken writer keeps its place in the queue;
//! - **hand-off** bounds what stealing can cost (the kernel's
//!   `RWSEM_FLAG_HANDOFF`): a reader that was woken and lost the race to a
//!   writer, or a writer that has waited [`HANDOFF_AFTER`](crate::mutex::HANDOFF_AFTER)
//!   (1 ms), sets `HANDOFF`: newcomers (readers and writers) stop taking the
//!   lock, and the release that frees it grants it directly — to all queued
//!   readers, or to that writer. So a reader waits at most about two writer
//!   critical sections, and nobody starves.
//!
//! **Fast paths.** `read`: one CAS adding `READER` when none of `WRITER`,
//! `WRITER_WAITING`, `HANDOFF` is set (queued readers alone do not stop it).
//! `write`: one CAS `0 → WRITER`. `up_read`: one `fetch_sub`; the last reader
//! out with `WAITERS` set takes the slow path (wakes the first writer). `up_write`:
//! one CAS `WRITER → 0`, which fails only if a flag is set; then, under the list
//! lock, it frees the lock and wakes the queued readers or the first writer (or
//! grants it on hand-off) in one CAS.
//!
//! **No lost wake-up.** A waiter queues under the list lock and sets its flags
//! with an RMW on the word; every release is an RMW on the same word (or runs
//! under the list lock), so the two are totally ordered: either the release sees
//! `WAITERS` and wakes/grants, or the waiter, re-checking after its RMW, sees the
//! released state. Each step that can make the lock available to a waiter (a
//! release, a waiter queueing, leaving or asking for hand-off, a woken reader
//! giving up) runs the same grant/wake step (`grant_or_wake`). Woken writers stay
//! queued (so `WRITER_WAITING` stays set) until they take the lock; woken
//! readers are unlinked and, if they lose the race, queue again. Waiters spin
//! (then yield) for a few µs before sleeping, so a wake-up arriving soon costs no
//! futex wake.
//!
//! The waiters queue on `sched::waitlist` (the wait engine every sleeping
//! primitive shares) in its plain form; a grant travels as the entry's hand-off
//! payload (`GRANTED`, against `WOKEN` for a waiter woken to retry).
//!
//! A waiter interrupted (or killed) unlinks itself, clears `HANDOFF` if it had
//! set it, and re-runs the grant/wake step, so whatever its leaving unblocks
//! (readers queued behind a writer, the next writer) is woken: a wake-up it
//! absorbed is passed on. If a grant reached it first, it owns the lock and
//! returns `Ok`, as if the signal had come just after.

use crate::backoff::Spin;
use crate::error::Result;
use crate::lock::{
    Backend, Guard, Lock, ReadGuard, SharedBackend, SleepingBackend, SleepingSharedBackend,
};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use crate::sched::waitlist::{Detached, Locked, Plain, WOKEN, WaitList, Waiter};
use crate::sched::{Task, TaskState};

const WRITER: u32 = 1;
const WAITERS: u32 = 2;
const WRITER_WAITING: u32 = 4;
const HANDOFF: u32 = 8;
const READER: u32 = 16;
const FLAGS: u32 = WAITERS | WRITER_WAITING | HANDOFF;
const READER_MASK: u32 = !(WRITER | FLAGS);
/// What keeps a newcomer reader out.
const READ_BLOCKED: u32 = WRITER | WRITER_WAITING | HANDOFF;

/// Waiter tags.
const WANT_READ: u32 = 0;
const WANT_WRITE: u32 = 1;

/// The grant (`sched::waitlist`'s hand-off payload) of a waiter handed the
/// lock: a reader counted in `READER_MASK`, or the writer with `WRITER` set on
/// its behalf. A waiter woken to retry is marked [`WOKEN`] instead.
const GRANTED: u32 = 2;

/// Why [`RawRwSemaphore::grant_or_wake`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// The caller holds `WRITER` and releases it in the same step: the queued
    /// readers' turn.
    WriterRelease,
    /// A writer became a reader: the queued readers' turn too.
    Downgrade,
    /// A reader left, a waiter queued or gave up, or asked for hand-off.
    Other,
}

/// Whom [`RawRwSemaphore::grant_or_wake`] passes the lock to.
enum Grant<'q> {
    /// Hand-off to all queued readers: they hold the lock when woken.
    Readers,
    /// Wake all queued readers to retry.
    WakeReaders,
    Writer(&'q Waiter),
    Wake(&'q Waiter),
    Nobody,
}

/// Optimistic-spin rounds (each a [`Backoff::spin`](crate::Backoff::spin), up to
/// 64 `pause`s: a few µs in all, less than a futex wake-up in this VM).
const SPIN_ROUNDS: u32 = if cfg!(loom) { 1 } else { 10 };

/// The raw reader-writer semaphore (`struct rw_semaphore` without the data): the
/// state word, the wait list and the lockdep map. The backend of
/// [`RwSemaphore<T>`]; its shared side is the readers'.
pub struct RawRwSemaphore {
    state: AtomicU32,
    waiters: WaitList<Plain>,
    /// Queued readers / writers; changed only with the list lock held (atomics
    /// only so that the type stays `Sync`; Relaxed, the lock orders them).
    queued_readers: AtomicU32,
    queued_writers: AtomicU32,
    dep_map: LockdepMap,
}

/// A reader-writer semaphore guarding a `T` (`struct rw_semaphore`): the generic
/// [`Lock`] over the [`RawRwSemaphore`] backend. `Sync` for `T: Send + Sync`:
/// writers get `&mut T` from any thread, readers share `&T` at once.
///
/// See the [module docs](self) for the fairness policy (phase-fair with writer
/// preference and hand-off).
#[doc(alias = "rw_semaphore")]
#[doc(alias = "DECLARE_RWSEM")]
pub type RwSemaphore<T> = Lock<T, RawRwSemaphore>;

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
pub type RwSemReadGuard<'a, T> = ReadGuard<'a, T, RawRwSemaphore>;

/// Exclusive access; `up_write` on drop. `!Send` (see [`RwSemReadGuard`]).
///
/// ```compile_fail
/// fn must_be_send<T: Send>(_: T) {}
/// let s = ksync::rwsem::RwSemaphore::new(0);
/// must_be_send(s.write()); // error: the guard is not Send
/// ```
pub type RwSemWriteGuard<'a, T> = Guard<'a, T, RawRwSemaphore>;

impl RawRwSemaphore {
    /// A free semaphore with the lockdep map `dep_map`.
    #[cfg(not(loom))]
    const fn with_map(dep_map: LockdepMap) -> RawRwSemaphore {
        RawRwSemaphore {
            state: AtomicU32::new(0),
            waiters: WaitList::new(),
            queued_readers: AtomicU32::new(0),
            queued_writers: AtomicU32::new(0),
            dep_map,
        }
    }

    /// A free semaphore with the lockdep map `dep_map` (loom build).
    #[cfg(loom)]
    fn with_map(dep_map: LockdepMap) -> RawRwSemaphore {
        RawRwSemaphore {
            state: AtomicU32::new(0),
            waiters: WaitList::new(),
            queued_readers: AtomicU32::new(0),
            queued_writers: AtomicU32::new(0),
            dep_map,
        }
    }
}

// SAFETY: the state word grants `WRITER` to one holder while no reader holds it,
// and readers only while no writer does (the invariant in the module docs);
// every acquisition is an Acquire RMW (or a grant read through `done` with
// Acquire) pairing with the Release of the release it follows. Readers share
// the `T` at once, so `Concurrent<T>` is `T`.
unsafe impl Backend for RawRwSemaphore {
    type GuardState = ();
    type Concurrent<T: ?Sized> = T;
    const NAME: &'static str = "rw_semaphore";

    #[track_caller]
    fn new() -> Self {
        RawRwSemaphore::with_map(LockdepMap::new_sleeping("rw_semaphore"))
    }

    #[inline(always)]
    fn dep_map(&self) -> Option<&LockdepMap> {
        Some(&self.dep_map)
    }

    #[inline(always)]
    fn lock(&self) {
        let r = self.write_acquire(TaskState::Uninterruptible);
        debug_assert!(r.is_ok());
    }

    /// `down_write_trylock`: takes it if no one holds it and no hand-off is
    /// pending. Like the kernel's, it may overtake queued waiters.
    #[inline(always)]
    fn try_lock(&self) -> bool {
        self.try_write_fast() || self.try_write_steal()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        self.up_write();
    }

    #[inline(always)]
    fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & (WRITER | READER_MASK) != 0
    }
}

// SAFETY: as for `Backend` above.
unsafe impl SharedBackend for RawRwSemaphore {
    #[inline(always)]
    fn lock_shared(&self) {
        let r = self.read_acquire(TaskState::Uninterruptible);
        debug_assert!(r.is_ok());
    }

    #[inline(always)]
    fn try_lock_shared(&self) -> bool {
        self.try_read()
    }

    #[inline(always)]
    unsafe fn unlock_shared(&self) {
        self.up_read();
    }

    #[inline(always)]
    fn is_write_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WRITER != 0
    }
}

// SAFETY: `write_acquire` takes the write lock as `lock` does when it returns
// `Ok`; an interrupted or killed wait leaves the semaphore as if the call never
// happened (module docs: the waiter leaves the queue and passes on any grant it
// absorbed).
unsafe impl SleepingBackend for RawRwSemaphore {
    #[inline]
    fn lock_sleeping(&self, state: TaskState) -> Result<()> {
        self.write_acquire(state)
    }
}

// SAFETY: as for `SleepingBackend`, with `read_acquire` and a read lock.
unsafe impl SleepingSharedBackend for RawRwSemaphore {
    #[inline]
    fn lock_shared_sleeping(&self, state: TaskState) -> Result<()> {
        self.read_acquire(state)
    }
}

impl<T> RwSemaphore<T> {
    /// A new, free semaphore holding `data` (`init_rwsem`, `DECLARE_RWSEM`).
    /// `const`; its lockdep class is the caller's location.
    #[doc(alias = "init_rwsem")]
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new(data: T) -> RwSemaphore<T> {
        let raw = RawRwSemaphore::with_map(LockdepMap::new_sleeping("rw_semaphore"));
        Lock::from_raw(raw, data)
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
        let raw = RawRwSemaphore::with_map(LockdepMap::with_key(name, key).sleeping());
        Lock::from_raw(raw, data)
    }

    /// A new, free semaphore (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(data: T) -> RwSemaphore<T> {
        Lock::from_raw(<RawRwSemaphore as Backend>::new(), data)
    }
}

impl<T: ?Sized> RwSemaphore<T> {
    /// How many readers hold it. A snapshot.
    pub fn reader_count(&self) -> u32 {
        (self.raw.state.load(Ordering::Relaxed) & READER_MASK) / READER
    }
}

impl<'a, T: ?Sized> RwSemWriteGuard<'a, T> {
    /// Turns write access into read access without letting a writer in between
    /// (`downgrade_write`): readers queued at the head get in too.
    #[doc(alias = "downgrade_write")]
    pub fn downgrade(self) -> RwSemReadGuard<'a, T> {
        let (sem, ctx) = self.into_parts();
        sem.raw.downgrade();
        // SAFETY: `downgrade` turned this thread's write lock into a read lock.
        unsafe { ReadGuard::new(sem, ctx) }
    }
}

impl RawRwSemaphore {
    // ---- read side ------------------------------------------------------------

    #[inline]
    fn try_read_fast(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        // Acquire pairs with the Release of the last writer's `up_write`.
        s & READ_BLOCKED == 0
            && self
                .state
                .compare_exchange_weak(s, s + READER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// `down_read` without lockdep (the caller records it): the fast path, then
    /// the slow path in `state`.
    #[inline]
    fn read_acquire(&self, state: TaskState) -> Result<()> {
        if self.try_read_fast() {
            return Ok(());
        }
        self.read_slow(state)
    }

    /// `down_read_trylock` without lockdep: fails while a writer holds it, waits
    /// for it, or a hand-off is pending.
    #[inline]
    fn try_read(&self) -> bool {
        let backoff = Spin::new();
        let mut s = self.state.load(Ordering::Relaxed);
        while s & READ_BLOCKED == 0 {
            // Acquire as in `try_read_fast`.
            match self.state.compare_exchange_weak(
                s,
                s + READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
            backoff.spin();
        }
        false
    }

    /// `up_read` (lockdep released by the caller).
    #[inline]
    fn up_read(&self) {
        // Release pairs with the Acquire of the next writer (its CAS, or the
        // granter's CAS in `grant_or_wake`).
        let prev = self.state.fetch_sub(READER, Ordering::Release);
        if prev & READER_MASK == READER && prev & WAITERS != 0 {
            self.wake_slow(Turn::Other);
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

    /// `down_write` without lockdep (the caller records it): the fast path,
    /// then the slow path in `state`.
    #[inline]
    fn write_acquire(&self, state: TaskState) -> Result<()> {
        if self.try_write_fast() {
            return Ok(());
        }
        self.write_slow(state)
    }

    /// Takes the lock for writing if it is free and no hand-off is pending, even
    /// with waiters queued (lock stealing; module docs).
    #[inline]
    fn try_write_steal(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        // Acquire pairs with the Release of the previous holders' releases.
        s & (WRITER | READER_MASK | HANDOFF) == 0
            && self
                .state
                .compare_exchange(s, s | WRITER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// `up_write` (lockdep released by the caller).
    #[inline]
    fn up_write(&self) {
        // Release pairs with the Acquire of the next holder. Fails only when a
        // flag is set (someone waits): then hand over under the list lock.
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.up_write_slow();
        }
    }

    #[cold]
    fn up_write_slow(&self) {
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            // Release `WRITER` and pass the lock on in one CAS: wake the queued
            // readers (with their ticket past `WRITER_WAITING`), or the first
            // writer, or grant it to the waiter that asked for hand-off.
            self.grant_or_wake(&q, &mut woken, &mut wake, Turn::WriterRelease);
        }
        woken.wake();
        if let Some(t) = wake {
            t.wake_up();
        }
    }

    /// `downgrade_write`: writer → reader, atomically; queued readers are let
    /// in, writers stay excluded (the reader count is never zero in between).
    fn downgrade(&self) {
        lockdep::release(&self.dep_map);
        lockdep::acquire(&self.dep_map, AcquireKind::Read, true, 0);
        // Release: our writes are visible to the readers granted below (and to
        // later acquirers). `READER - WRITER` turns the writer bit into one reader.
        let prev = self.state.fetch_add(READER - WRITER, Ordering::Release);
        debug_assert!(prev & WRITER != 0);
        if prev & WAITERS != 0 {
            self.wake_slow(Turn::Downgrade);
        }
    }

    // ---- shared slow paths -------------------------------------------------------

    fn check_context(&self) {
        if crate::ctx::in_interrupt() {
            // Refused: undo the caller's lockdep acquire first, so the held-lock
            // stack stays balanced for whoever catches the panic.
            lockdep::release(&self.dep_map);
            panic!("down_read/down_write: an rw_semaphore may not be taken in interrupt context");
        }
    }

    /// Recomputes the flag bits from the queue counts (list lock held).
    fn flags_for(&self, handoff: bool) -> u32 {
        let nr = self.queued_readers.load(Ordering::Relaxed);
        let nw = self.queued_writers.load(Ordering::Relaxed);
        let mut f = 0;
        if nr + nw != 0 {
            f |= WAITERS;
        }
        if nw != 0 {
            f |= WRITER_WAITING;
        }
        if handoff {
            f |= HANDOFF;
        }
        f
    }

    /// Sets the flag bits to `flags` (list lock held; the other bits may move
    /// under us: readers leaving, a writer stealing).
    fn set_flags(&self, flags: u32) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            // SeqCst: a waiter's flag RMW and every release RMW on this word are
            // totally ordered (the no-lost-wake-up argument, module docs).
            match self.state.compare_exchange_weak(
                s,
                (s & !FLAGS) | flags,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    #[cold]
    fn read_slow(&self, state: TaskState) -> Result<()> {
        self.check_context();
        // Spin a little while a writer holds it (its section is likely short)
        // and no writer queues behind it.
        let backoff = Spin::new();
        for _ in 0..SPIN_ROUNDS {
            let s = self.state.load(Ordering::Relaxed);
            if s & (WRITER_WAITING | HANDOFF) != 0 {
                break;
            }
            if s & WRITER == 0 && self.try_read_fast() {
                return Ok(());
            }
            backoff.spin();
        }
        lockdep::might_sleep();
        let node = Waiter::tagged(WANT_READ);
        #[cfg(not(loom))]
        let start = std::time::Instant::now();
        let mut lost = false;
        loop {
            let mut woken = Detached::empty();
            let mut wake = None;
            {
                let q = self.waiters.lock();
                // SAFETY: `node` is linked only into this list and stays on this
                // frame until unlinked: we go on only after a waker detached and
                // marked it, or `leave` unlinked it.
                unsafe { q.push_back(&node) };
                self.queued_readers.fetch_add(1, Ordering::Relaxed);
                let mut handoff = self.state.load(Ordering::Relaxed) & HANDOFF != 0;
                #[cfg(not(loom))]
                let too_long = start.elapsed() >= crate::mutex::HANDOFF_AFTER;
                #[cfg(loom)]
                let too_long = false;
                if !handoff && (lost || too_long) {
                    // Woken once and a writer got in first (or waited too
                    // long): the queued readers get the lock next, so a stream
                    // of writers cannot starve them (module docs).
                    node.handoff.set(true);
                    handoff = true;
                }
                self.set_flags(self.flags_for(handoff));
                // What blocked us may be gone already (released before our
                // flags landed): the common step wakes or grants us then.
                self.grant_or_wake(&q, &mut woken, &mut wake, Turn::Other);
            }
            woken.wake();
            if let Some(t) = wake {
                t.wake_up();
            }
            // Wait for a waker: spin first, then sleep.
            let backoff = Spin::new();
            let mut spins = 0;
            while !node.is_woken() {
                if spins < SPIN_ROUNDS {
                    spins += 1;
                    backoff.snooze();
                } else if let Err(e) = crate::sched::sleep(state, None) {
                    return if self.leave(&node) { Ok(()) } else { Err(e) };
                }
            }
            if node.grant() == GRANTED {
                // Granted (hand-off): we hold the lock.
                return Ok(());
            }
            // Woken by a writer's release (or with no writer queued): we may
            // enter even past `WRITER_WAITING`, but not past a writer or a
            // pending hand-off. Acquire as in `try_read_fast`.
            let backoff = Spin::new();
            for _ in 0..SPIN_ROUNDS {
                let s = self.state.load(Ordering::Relaxed);
                if s & HANDOFF != 0 {
                    break;
                }
                if s & WRITER == 0
                    && self
                        .state
                        .compare_exchange_weak(s, s + READER, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return Ok(());
                }
                backoff.spin();
            }
            // A writer got in first: queue again (which resets the mark),
            // asking for hand-off.
            lost = true;
        }
    }

    #[cold]
    fn write_slow(&self, state: TaskState) -> Result<()> {
        self.check_context();
        // Spin a little while another writer holds it; readers may hold it for
        // long, so if they do, queue at once to stop new ones coming in.
        let backoff = Spin::new();
        for _ in 0..SPIN_ROUNDS {
            let s = self.state.load(Ordering::Relaxed);
            if s & (READER_MASK | WAITERS | HANDOFF) != 0 {
                break;
            }
            if s & WRITER == 0 && self.try_write_steal() {
                return Ok(());
            }
            backoff.snooze();
        }
        lockdep::might_sleep();
        let node = Waiter::tagged(WANT_WRITE);
        #[cfg(not(loom))]
        let start = std::time::Instant::now();
        {
            let q = self.waiters.lock();
            // SAFETY: `node` is linked only into this list and stays on this
            // frame until unlinked: we return only after it was granted (marked),
            // after unlinking it ourselves (`acquired`) or after `leave` unlinked it.
            unsafe { q.push_back(&node) };
            self.queued_writers.fetch_add(1, Ordering::Relaxed);
            let handoff = self.state.load(Ordering::Relaxed) & HANDOFF != 0;
            // From here on new readers queue.
            self.set_flags(self.flags_for(handoff));
        }
        loop {
            // Wait for the active holders to drain: spin, then sleep. Every
            // release that frees the lock with us queued wakes the first writer
            // (`grant_or_wake`); the RMW above orders our flags with it.
            let backoff = Spin::new();
            for _ in 0..SPIN_ROUNDS {
                if node.is_woken() {
                    return Ok(());
                }
                if self.try_write_steal() {
                    self.acquired(&node);
                    return Ok(());
                }
                backoff.snooze();
            }
            if node.is_woken() {
                return Ok(());
            }
            if self.try_write_steal() {
                self.acquired(&node);
                return Ok(());
            }
            if let Err(e) = crate::sched::sleep(state, None) {
                return if self.leave(&node) { Ok(()) } else { Err(e) };
            }
            #[cfg(not(loom))]
            if !node.handoff.get() && start.elapsed() >= crate::mutex::HANDOFF_AFTER {
                self.request_handoff(&node);
            }
        }
    }

    /// A queued writer took the lock itself: unlink it (it holds `WRITER`, so no
    /// grant can reach it meanwhile).
    fn acquired(&self, node: &Waiter) {
        let q = self.waiters.lock();
        let was = q.remove(node);
        debug_assert!(was, "a writer that took the lock itself is still queued");
        self.queued_writers.fetch_sub(1, Ordering::Relaxed);
        // A hand-off requested meanwhile by another writer stays pending.
        debug_assert!(!node.handoff.get());
        let handoff = self.state.load(Ordering::Relaxed) & HANDOFF != 0;
        self.set_flags(self.flags_for(handoff));
    }

    /// A queued writer has waited too long: from now on the lock goes to it next
    /// (`RWSEM_FLAG_HANDOFF`), unless another waiter asked first.
    #[cfg(not(loom))]
    #[cold]
    fn request_handoff(&self, node: &Waiter) {
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            if !q.is_linked(node) || self.state.load(Ordering::Relaxed) & HANDOFF != 0 {
                return;
            }
            node.handoff.set(true);
            self.set_flags(self.flags_for(true));
            // The lock may be free already: grant it to us now.
            self.grant_or_wake(&q, &mut woken, &mut wake, Turn::Other);
        }
        woken.wake();
        if let Some(t) = wake {
            t.wake_up();
        }
    }

    /// The waiter that asked for hand-off.
    fn flagged<'q>(q: &'q Locked<'_, Plain>) -> Option<&'q Waiter> {
        let mut p = q.front();
        while let Some(w) = p {
            if w.handoff.get() {
                return Some(w);
            }
            p = q.next_of(w);
        }
        None
    }

    fn first_writer<'q>(&self, q: &'q Locked<'_, Plain>) -> Option<&'q Waiter> {
        let mut p = q.front();
        while let Some(w) = p {
            if w.tag == WANT_WRITE {
                return Some(w);
            }
            p = q.next_of(w);
        }
        None
    }

    /// The one step that passes the lock on to waiters, run with the list lock
    /// held whenever the lock may have become available to them (`turn` says
    /// why), unless a writer holds it (other than the caller, which releases
    /// `WRITER` in this step's CAS):
    /// - `HANDOFF` set: grants it to all queued readers if a reader asked, or to
    ///   the writer that asked once no reader holds it;
    /// - readers queued and it is their turn (a writer is releasing or
    ///   downgrading, or no writer is queued): unlinks and wakes all of them to
    ///   retry, past `WRITER_WAITING`;
    /// - it is free and a writer is queued: leaves the first writer's task in
    ///   `wake`, to be woken to retry (it stays queued).
    fn grant_or_wake(
        &self,
        q: &Locked<'_, Plain>,
        woken: &mut Detached,
        wake: &mut Option<Task>,
        turn: Turn,
    ) {
        let releasing = turn == Turn::WriterRelease;
        let readers_turn = turn != Turn::Other;
        loop {
            // Acquire: the releases we grant after (their Release RMWs) happen
            // before the granted critical sections, through the waiter's mark
            // (Release/Acquire);
            // a woken waiter instead acquires with its own CAS.
            let s = self.state.load(Ordering::Acquire);
            let base = if releasing {
                debug_assert!(s & WRITER != 0 && s & READER_MASK == 0);
                s & !WRITER
            } else if s & WRITER != 0 {
                return;
            } else {
                s
            };
            let nr = self.queued_readers.load(Ordering::Relaxed);
            let nw = self.queued_writers.load(Ordering::Relaxed);
            let queued = |nr: u32, nw: u32| {
                (if nr + nw != 0 { WAITERS } else { 0 }) | if nw != 0 { WRITER_WAITING } else { 0 }
            };
            // What to do, as (new word, whom to grant or wake).
            let (new, grant) = if base & HANDOFF != 0 {
                // A waiter that waited too long gets the lock next.
                let Some(f) = Self::flagged(q) else {
                    unreachable!("HANDOFF set with no waiter asking for it");
                };
                if f.tag == WANT_READ {
                    // All queued readers (none holds `WRITER` now).
                    let new = ((base & !FLAGS) + nr * READER) | queued(0, nw);
                    (new, Grant::Readers)
                } else if base & READER_MASK == 0 {
                    (
                        (base & !FLAGS) | WRITER | queued(nr, nw - 1),
                        Grant::Writer(f),
                    )
                } else {
                    (base, Grant::Nobody)
                }
            } else if nr != 0 && (readers_turn || nw == 0) {
                // Every queued reader at once, to retry (module docs).
                ((base & !FLAGS) | queued(0, nw), Grant::WakeReaders)
            } else if nw != 0 && base & (WRITER | READER_MASK) == 0 {
                let Some(first) = self.first_writer(q) else {
                    unreachable!("queued_writers is non-zero with no writer queued");
                };
                (base, Grant::Wake(first))
            } else {
                (base, Grant::Nobody)
            };
            // Release (when releasing `WRITER`): our critical section happens
            // before the next holders'. Only reader releases, newcomer readers
            // (while `WRITER_WAITING` is clear) and a stealing writer race with
            // this CAS (the flags change only under the list lock): retry then.
            if new != s
                && self
                    .state
                    .compare_exchange(s, new, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            match grant {
                Grant::Readers | Grant::WakeReaders => {
                    // The mark tells a reader whether it was granted the lock
                    // or only woken (read with Acquire).
                    let mark = if matches!(grant, Grant::Readers) {
                        GRANTED
                    } else {
                        WOKEN
                    };
                    self.queued_readers.store(0, Ordering::Relaxed);
                    let mut p = q.front();
                    while let Some(w) = p {
                        p = q.next_of(w);
                        if w.tag == WANT_READ {
                            // Its request for hand-off, if any, is answered.
                            w.handoff.set(false);
                            q.hand_off(w, mark, woken);
                        }
                    }
                }
                Grant::Writer(f) => {
                    self.queued_writers.store(nw - 1, Ordering::Relaxed);
                    q.hand_off(f, GRANTED, woken);
                }
                Grant::Wake(first) => *wake = Some(first.task().clone()),
                Grant::Nobody => {}
            }
            return;
        }
    }

    /// A release freed the lock (or downgraded) with waiters queued.
    #[cold]
    fn wake_slow(&self, turn: Turn) {
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            self.grant_or_wake(&q, &mut woken, &mut wake, turn);
        }
        woken.wake();
        if let Some(t) = wake {
            t.wake_up();
        }
    }

    /// A waiter gives up. Returns `true` if a grant reached it first.
    #[cold]
    fn leave(&self, node: &Waiter) -> bool {
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            if !q.is_linked(node) {
                drop(q);
                node.wait_for_mark();
                if node.grant() == GRANTED {
                    // Granted: we hold the lock.
                    return true;
                }
                // A reader woken to retry: those behind it (a writer the lock
                // would have reached after our read) must not lose the wake-up.
                self.wake_slow(Turn::Other);
                return false;
            }
            q.remove(node);
            if node.tag == WANT_READ {
                self.queued_readers.fetch_sub(1, Ordering::Relaxed);
            } else {
                self.queued_writers.fetch_sub(1, Ordering::Relaxed);
            }
            let handoff = self.state.load(Ordering::Relaxed) & HANDOFF != 0 && !node.handoff.get();
            node.handoff.set(false);
            self.set_flags(self.flags_for(handoff));
            // Our leaving may unblock others (readers behind a writer), and a
            // wake-up we absorbed must reach the next writer.
            self.grant_or_wake(&q, &mut woken, &mut wake, Turn::Other);
        }
        woken.wake();
        if let Some(t) = wake {
            t.wake_up();
        }
        false
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
    fn reader_gets_in_under_three_continuous_writers() {
        let s = Arc::new(RwSemaphore::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let (s, stop, writes) = (s.clone(), stop.clone(), writes.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        *s.write() += 1;
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        while writes.load(Ordering::Relaxed) < 1000 {
            std::thread::yield_now();
        }
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        let reader = std::thread::spawn(move || {
            let mut last = 0;
            for _ in 0..100 {
                let v = *s2.read();
                assert!(v >= last);
                last = v;
            }
            tx.send(()).unwrap();
        });
        let got = rx.recv_timeout(Duration::from_secs(60));
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        reader.join().unwrap();
        assert!(got.is_ok(), "the reader starved under continuous writers");
        assert_eq!(*s.read(), writes.load(Ordering::Relaxed));
        assert_eq!(s.raw.state.load(Ordering::Relaxed), 0);
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
        assert_eq!(s.raw.state.load(Ordering::Relaxed), WRITER);
        drop(w);
        assert!(s.try_write().is_some());
    }

    #[test]
    fn interrupted_reader_behind_a_waiting_writer_leaves_no_trace() {
        let s = Arc::new(RwSemaphore::new(0u32));
        let r = s.read();
        // A writer queues behind our read: new readers are blocked from now on.
        let (s1, s2) = (s.clone(), s.clone());
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            *s1.write() += 1;
        });
        let wtask = rx.recv().unwrap();
        while wtask.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        assert!(
            s.try_read().is_none(),
            "a waiting writer must block new readers"
        );
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = s2.read_interruptible().map(|g| *g);
            crate::sched::flush_signals();
            r
        });
        let rtask = rx.recv().unwrap();
        while rtask.state() != TaskState::Interruptible {
            std::thread::yield_now();
        }
        rtask.send_signal(Signal::SIGINT);
        assert_eq!(reader.join().unwrap(), Err(Error::Interrupted));
        // Only our read and the queued writer remain.
        assert_eq!(
            s.raw.state.load(Ordering::Relaxed),
            READER | WAITERS | WRITER_WAITING
        );
        drop(r);
        writer.join().unwrap();
        assert_eq!(s.raw.state.load(Ordering::Relaxed), 0);
        assert_eq!(*s.read(), 1);
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
        assert_eq!(s.raw.state.load(Ordering::Relaxed), 0);
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
        assert_eq!(s.raw.state.load(Ordering::Relaxed), 0);
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
    /// Two readers and a writer: exclusion, readers see consistent pairs, and
    /// every wake-up (batch reader wake, last-reader writer wake) is delivered.
    #[test]
    fn loom_rwsem_two_readers_one_writer() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new((0u32, 0u32)));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        let g = s.read();
                        assert_eq!(g.0, g.1);
                    })
                })
                .collect();
            {
                let mut g = s.write();
                g.0 += 1;
                g.1 += 1;
            }
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(s.raw.state.load(Ordering::Relaxed), 0);
        });
    }

    /// A queued writer blocks new readers (so a reader stream cannot starve it):
    /// once `WRITER_WAITING` is up, `try_read` fails, and when the active reader
    /// leaves, the writer gets in.
    #[test]
    fn loom_rwsem_waiting_writer_blocks_new_readers() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new(0u32));
            let r = s.read();
            let s2 = s.clone();
            let w = loom::thread::spawn(move || {
                *s2.write() += 1;
            });
            while s.raw.state.load(Ordering::Relaxed) & WRITER_WAITING == 0 {
                loom::thread::yield_now();
            }
            assert!(s.try_read().is_none());
            drop(r);
            w.join().unwrap();
            assert_eq!(*s.read(), 1);
        });
    }
}
