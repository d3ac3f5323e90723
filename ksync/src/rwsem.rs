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
//! word with a writer bit and the reader count, waiter flags,
//! `RWSEM_FLAG_HANDOFF`, readers granted as a batch by `rwsem_mark_wake`), from
//! parking_lot's `src/raw_rwlock.rs` (running contenders spin and barge, with
//! hand-off only once a waiter has waited too long) and from our own mutex (a
//! plain release store for the unlock, paid for by the sleeper's membarrier).
//! Two words on one cache line:
//!
//! | `count`   | name     | meaning |
//! |-----------|----------|---------|
//! | bit 0     | `WRITER` | a writer holds the lock |
//! | bits 1..32 | readers | readers holding the lock, in units of `READER` (2) |
//!
//! | `flags` bit     | meaning | set / cleared (always under the list lock) |
//! |-----------------|---------|---------------|
//! | `READERS_WAIT`  | readers are queued: the next writer release grants them the lock | by a reader queueing / by the grant, or the last reader leaving the queue |
//! | `WRITER_SLEEPS` | a queued writer is (about to be) asleep: the release that frees the lock must wake the first queued writer | by a writer before it sleeps, and by a writer leaving the queue with writers behind it / by the wake-up |
//! | `HANDOFF`       | the queued writer marked `handoff` has waited too long: nobody else may take the lock; the release that frees it grants it to that writer | by that writer / by the grant, or that writer leaving |
//!
//! Invariants: `count` is exactly `WRITER` while a writer holds the lock (no
//! reader count beside it), so nobody but the holder writes `count` then, and
//! the holder's release is a plain store. Readers change `count` only by a CAS
//! from a value without `WRITER`, writers only by a CAS from 0, and granters
//! (under the list lock) by a CAS from a value without `WRITER`, or by a store
//! when they are the releasing writer. If a queued writer sleeps without a
//! wake-up on its way, then `WRITER_SLEEPS` is set or the first queued writer
//! is awake (it will take the lock, or set `WRITER_SLEEPS` before it sleeps, or
//! set it as it leaves the queue or takes the lock with writers behind it).
//!
//! **Policy: readers share, writers barge, hand-off bounds both.**
//! - *A reader* enters whenever no writer holds the lock and no hand-off is
//!   pending — also while writers wait: readers that arrive while other
//!   readers hold it join them without sleeping. While a writer holds it, a
//!   reader spins a few µs (writer sections are short), then queues and
//!   sleeps. Every writer release with readers queued grants the lock to *all*
//!   of them at once (the kernel's `rwsem_mark_wake`): a woken reader never
//!   retries, so a stream of writers cannot starve it — it waits for at most
//!   the writer that holds the lock and one that asked for hand-off.
//! - *A writer* takes a free lock with one CAS, past queued waiters (barging,
//!   as the mutex and parking_lot do): the lock is never left idle while a
//!   sleeper wakes up. Otherwise it spins a few µs polling for a free lock,
//!   then queues and sleeps; the release that frees the lock wakes the first
//!   queued writer (once: `WRITER_SLEEPS`), which retries and keeps its place.
//! - *Hand-off* (the kernel's `RWSEM_FLAG_HANDOFF`): a queued writer that has
//!   waited [`HANDOFF_AFTER`](crate::mutex::HANDOFF_AFTER) (1 ms; it sleeps
//!   with that deadline, as a stream of overlapping readers may never free
//!   the lock) sets `HANDOFF`: new readers and writers stop taking the lock,
//!   and the release that frees it grants it to that writer, which then
//!   grants the readers queued meanwhile on its release. So nobody starves.
//!
//! **Fast paths.** `down_read`: a load of each word and one CAS adding
//! `READER` (no `WRITER`, no `HANDOFF`). `up_read`: one `fetch_sub`; only the
//! last reader out reads `flags` (after a [`light_barrier`]) and wakes or
//! grants a writer if one sleeps or asked for hand-off. `down_write`: a load
//! of `flags` and one CAS `0 → WRITER`. `up_write`: a load of `flags`; if none
//! is set, a release store of 0, a [`light_barrier`] and a second load of
//! `flags`; if a waiter is there, the release and the grant happen in one
//! step under the list lock.
//!
//! **No lost wake-up or grant.** Each release that frees the lock (or lets
//! readers in: a downgrade) writes `count` and then, after a
//! [`light_barrier`], reads `flags`; each waiter sets its flag under the list
//! lock and then, after a [`heavy_barrier`], re-reads `count` in the common
//! grant/wake step (`grant_or_wake`). The barrier pair acts as a SeqCst fence
//! on both sides (the store-buffering pattern), so either the release sees the
//! flag and runs the grant/wake step, or the waiter's step sees the released
//! lock and grants or wakes itself. Every grant is made under the list lock,
//! and a release that finds a flag set at its start (`up_write`) grants in
//! the same step as it releases, so a hand-off cannot be stolen.
//!
//! The waiters queue on `sched::waitlist` (the wait engine every sleeping
//! primitive shares) in its plain form; a grant travels as the entry's
//! hand-off payload (`GRANTED`). Readers are only ever granted; writers are
//! woken to retry (they stay queued, the mark untouched) or granted on
//! hand-off.
//!
//! A waiter interrupted (or killed) unlinks itself, clears `HANDOFF` if it had
//! set it, passes on a writer wake-up it may have absorbed (`WRITER_SLEEPS`),
//! and re-runs the grant/wake step, so whatever its leaving unblocks (readers
//! queued behind its hand-off) is granted. If a grant reached it first, it
//! owns the lock and returns `Ok`, as if the signal had come just after.

use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::backoff::Spin;
use crate::error::{Error, Result};
use crate::lock::{
    Backend, Guard, Lock, ReadGuard, SharedBackend, SleepingBackend, SleepingSharedBackend,
};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use crate::sched::waitlist::{Detached, Locked, Plain, WaitList, Waiter};
use crate::sched::{Task, TaskState};

/// `count`: a writer holds the lock.
const WRITER: u32 = 1;
/// `count`: one reader holding the lock.
const READER: u32 = 2;
/// `flags`: readers are queued (module docs).
const READERS_WAIT: u32 = 1;
/// `flags`: a queued writer sleeps; the release that frees the lock wakes the
/// first queued writer.
const WRITER_SLEEPS: u32 = 2;
/// `flags`: the flagged writer gets the lock next.
const HANDOFF: u32 = 4;

/// Waiter tags.
const WANT_READ: u32 = 0;
const WANT_WRITE: u32 = 1;

/// The grant (`sched::waitlist`'s hand-off payload) of a waiter handed the
/// lock: a reader counted in `count`, or the writer with `WRITER` set on its
/// behalf. A writer woken to retry stays queued and unmarked.
const GRANTED: u32 = 2;

/// Optimistic-spin rounds (each a [`Backoff::snooze`](crate::Backoff::snooze),
/// up to 64 `pause`s and then a yield: a few µs in all, less than a futex
/// wake-up in this VM).
const SPIN_ROUNDS: u32 = if cfg!(loom) { 1 } else { 10 };

/// The raw reader-writer semaphore (`struct rw_semaphore` without the data): the
/// two state words, the wait list and the lockdep map. The backend of
/// [`RwSemaphore<T>`]; its shared side is the readers'.
#[repr(C)]
pub struct RawRwSemaphore {
    /// `WRITER`, or the readers holding the lock (module docs).
    count: AtomicU32,
    /// `READERS_WAIT`, `WRITER_SLEEPS`, `HANDOFF`; written only under the list
    /// lock, read by the fast paths without it.
    flags: AtomicU32,
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
/// See the [module docs](self) for the policy (readers share, writers barge,
/// hand-off bounds both).
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
    pub(crate) const fn with_map(dep_map: LockdepMap) -> RawRwSemaphore {
        RawRwSemaphore {
            count: AtomicU32::new(0),
            flags: AtomicU32::new(0),
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
            count: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            waiters: WaitList::new(),
            queued_readers: AtomicU32::new(0),
            queued_writers: AtomicU32::new(0),
            dep_map,
        }
    }
}

// SAFETY: `count` grants `WRITER` to one holder while no reader holds it, and
// readers only while no writer does (the invariants in the module docs);
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
        self.try_write()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        self.up_write();
    }

    #[inline(always)]
    fn is_locked(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
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
        self.count.load(Ordering::Relaxed) & WRITER != 0
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
        self.raw.count.load(Ordering::Relaxed) / READER
    }

    /// Whether readers hold it (`rw_read_held`, though Solaris asks whether
    /// *this* thread is one of them). A snapshot.
    #[doc(alias = "rw_read_held")]
    pub fn is_read_locked(&self) -> bool {
        self.reader_count() > 0
    }

    /// Turns the caller's read hold into the write hold without letting go, if
    /// it is the only reader and no writer has asked for hand-off (Solaris's
    /// `rw_tryupgrade`); otherwise returns the read guard untouched. Nothing
    /// another writer could do happens in between, so what was read under the
    /// read hold is still true under the write hold.
    ///
    /// ```
    /// use ksync::rwsem::RwSemaphore;
    /// let s = RwSemaphore::new(1);
    /// let r = s.read();
    /// let mut w = s.try_upgrade(r).ok().expect("the only reader");
    /// *w += 1;
    /// drop(w);
    /// let (r1, r2) = (s.read(), s.read());
    /// let r1 = s.try_upgrade(r1).err().expect("another reader holds it");
    /// assert_eq!((*r1, *r2), (2, 2));
    /// ```
    ///
    /// # Panics
    /// If `guard` is a read guard of another semaphore.
    #[doc(alias = "rw_tryupgrade")]
    pub fn try_upgrade<'a>(
        &'a self,
        guard: RwSemReadGuard<'a, T>,
    ) -> core::result::Result<RwSemWriteGuard<'a, T>, RwSemReadGuard<'a, T>> {
        assert!(
            core::ptr::eq(guard.raw(), &self.raw),
            "RwSemaphore::try_upgrade: the read guard belongs to another semaphore"
        );
        if !self.raw.try_upgrade() {
            return Err(guard);
        }
        let (_, _, ctx) = guard.into_parts();
        // SAFETY: `try_upgrade` turned this thread's read lock on `self` into
        // the write lock (the lockdep record too), with the same guard state.
        Ok(unsafe { Guard::new(self, ctx) })
    }
}

impl<'a, T: ?Sized> RwSemWriteGuard<'a, T> {
    /// Turns write access into read access without letting a writer in between
    /// (`downgrade_write`): readers queued at the head get in too.
    #[doc(alias = "downgrade_write")]
    #[doc(alias = "rw_downgrade")] // Solaris
    pub fn downgrade(self) -> RwSemReadGuard<'a, T> {
        let (sem, ctx) = self.into_parts();
        sem.raw.downgrade();
        // SAFETY: `downgrade` turned this thread's write lock into a read lock.
        unsafe { ReadGuard::new(sem, ctx) }
    }
}

impl RawRwSemaphore {
    // ---- read side ------------------------------------------------------------

    /// One try at `down_read`: enters if no writer holds the lock and no
    /// hand-off is pending (queued writers do not keep it out).
    #[inline]
    fn try_read_fast(&self) -> bool {
        let c = self.count.load(Ordering::Relaxed);
        // Acquire pairs with the Release of the last writer's `up_write` (or of
        // the granter's CAS that handed the lock on).
        c & WRITER == 0
            && self.flags.load(Ordering::Relaxed) & HANDOFF == 0
            && self
                .count
                .compare_exchange_weak(c, c + READER, Ordering::Acquire, Ordering::Relaxed)
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

    /// `down_read_trylock` without lockdep: fails while a writer holds it or a
    /// hand-off is pending.
    #[inline]
    fn try_read(&self) -> bool {
        let backoff = Spin::new();
        let mut c = self.count.load(Ordering::Relaxed);
        while c & WRITER == 0 && self.flags.load(Ordering::Relaxed) & HANDOFF == 0 {
            // Acquire as in `try_read_fast`.
            match self.count.compare_exchange_weak(
                c,
                c + READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
            backoff.spin();
        }
        false
    }

    /// `up_read` (lockdep released by the caller).
    #[inline]
    fn up_read(&self) {
        // Release pairs with the Acquire of the next writer (its CAS, or the
        // granter's load and CAS in `grant_or_wake`).
        if self.count.fetch_sub(READER, Ordering::Release) == READER {
            // The last reader out freed the lock. Orders our RMW before the
            // `flags` load, with the waiter's `heavy_barrier` between its flag
            // and its re-check of `count` (module docs: no lost wake-up).
            light_barrier();
            if self.flags.load(Ordering::Relaxed) & (WRITER_SLEEPS | HANDOFF) != 0 {
                self.wake_slow();
            }
        }
    }

    // ---- write side -----------------------------------------------------------

    /// `down_write_trylock` without lockdep: takes it if no one holds it and no
    /// hand-off is pending — past queued waiters (barging, module docs).
    #[inline]
    fn try_write(&self) -> bool {
        // Acquire pairs with the Release of the previous holders' releases.
        self.flags.load(Ordering::Relaxed) & HANDOFF == 0
            && self
                .count
                .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// `down_write` without lockdep (the caller records it): the fast path,
    /// then the slow path in `state`.
    #[inline]
    fn write_acquire(&self, state: TaskState) -> Result<()> {
        if self.try_write() {
            return Ok(());
        }
        self.write_slow(state)
    }

    /// `up_write` (lockdep released by the caller).
    #[inline]
    fn up_write(&self) {
        if self.flags.load(Ordering::Relaxed) != 0 {
            // Someone waits: release and pass the lock on in one step.
            return self.up_write_slow();
        }
        // Nobody but us writes `count` while `WRITER` is set (module docs), so
        // a store releases it. Release pairs with the Acquire of the next
        // holder's CAS (or a granter's load).
        self.count.store(0, Ordering::Release);
        // Orders the store before the `flags` load, with the waiter's
        // `heavy_barrier` (module docs: no lost wake-up).
        light_barrier();
        if self.flags.load(Ordering::Relaxed) != 0 {
            self.wake_slow();
        }
    }

    #[cold]
    fn up_write_slow(&self) {
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            // Release `WRITER` and pass the lock on in one step: grant it to the
            // queued readers or to the writer that asked for hand-off, or wake
            // the first writer.
            self.grant_or_wake(&q, &mut woken, &mut wake, true);
        }
        woken.wake();
        if let Some(t) = wake {
            t.wake_up();
        }
    }

    /// `downgrade_write`: writer → reader, atomically; queued readers are let
    /// in, writers stay excluded (the reader count is never zero in between).
    /// `rw_tryupgrade`: the caller's read hold becomes the write hold if it is
    /// the only reader and no hand-off is pending. The caller holds a read lock.
    fn try_upgrade(&self) -> bool {
        // A writer that asked for hand-off has waited long enough: it goes
        // first (one that sets HANDOFF just after this load waits for our
        // release like any writer behind a holder).
        if self.flags.load(Ordering::Relaxed) & HANDOFF != 0 {
            return false;
        }
        // `count == READER`: we are the only holder, so `WRITER` may replace
        // our reader unit (the invariant: `count` is exactly `WRITER` while a
        // writer holds it). Relaxed: we already hold the lock; our release
        // (`up_write`) orders our writes for the next holder.
        if self
            .count
            .compare_exchange(READER, WRITER, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        lockdep::release(&self.dep_map);
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, true, 0);
        true
    }

    fn downgrade(&self) {
        lockdep::release(&self.dep_map);
        lockdep::acquire(&self.dep_map, AcquireKind::Read, true, 0);
        // We hold `WRITER`, so `count` is exactly `WRITER` and nobody else
        // writes it: a store turns it into one reader. Release: our writes are
        // visible to the readers granted below and to later acquirers.
        debug_assert_eq!(self.count.load(Ordering::Relaxed), WRITER);
        self.count.store(READER, Ordering::Release);
        // As in `up_write`: a reader queued behind us sees the reader count, or
        // we see its flag.
        light_barrier();
        if self.flags.load(Ordering::Relaxed) & READERS_WAIT != 0 {
            self.wake_slow();
        }
    }

    // ---- slow paths ------------------------------------------------------------

    fn check_context(&self) {
        if crate::ctx::in_interrupt() {
            // Refused: undo the caller's lockdep acquire first, so the held-lock
            // stack stays balanced for whoever catches the panic.
            lockdep::release(&self.dep_map);
            panic!("down_read/down_write: an rw_semaphore may not be taken in interrupt context");
        }
    }

    /// Sets `flags` to `f` (list lock held: the only writers of `flags`, so a
    /// store does). Relaxed: ordered before the caller's re-check of `count`
    /// by its `heavy_barrier`, where the flag must be seen by a release.
    fn set_flags(&self, f: u32) {
        self.flags.store(f, Ordering::Relaxed);
    }

    /// Runs the common grant/wake step after setting a flag (list lock held).
    fn after_flag(&self, q: &Locked<'_, Plain>, woken: &mut Detached, wake: &mut Option<Task>) {
        // Pairs with the releaser's `light_barrier` between its `count` write
        // and its `flags` load: either it sees our flag, or the step below
        // sees its release (module docs: no lost wake-up).
        heavy_barrier();
        self.grant_or_wake(q, woken, wake, false);
    }

    #[cold]
    fn read_slow(&self, state: TaskState) -> Result<()> {
        self.check_context();
        lockdep::lock_contended(&self.dep_map);
        // Spin a little while a writer holds it: its section is likely short.
        let backoff = Spin::new();
        for _ in 0..SPIN_ROUNDS {
            if self.flags.load(Ordering::Relaxed) & HANDOFF != 0 {
                break;
            }
            if self.try_read_fast() {
                return Ok(());
            }
            backoff.snooze();
        }
        lockdep::might_sleep();
        let node = Waiter::tagged(WANT_READ);
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            // SAFETY: `node` is linked only into this list and stays on this
            // frame until unlinked: we return only after a granter detached and
            // marked it, or after `leave` unlinked it.
            unsafe { q.push_back(&node) };
            self.queued_readers.fetch_add(1, Ordering::Relaxed);
            self.set_flags(self.flags.load(Ordering::Relaxed) | READERS_WAIT);
            // What blocked us may be gone already (released before our flag
            // landed): the step grants us then.
            self.after_flag(&q, &mut woken, &mut wake);
        }
        woken.wake();
        if let Some(t) = wake {
            t.wake_up();
        }
        // Readers are only ever granted: wait for the mark, spinning first.
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
        debug_assert_eq!(node.grant(), GRANTED);
        Ok(())
    }

    #[cold]
    fn write_slow(&self, state: TaskState) -> Result<()> {
        self.check_context();
        lockdep::lock_contended(&self.dep_map);
        // Spin a little for a free lock (readers' and writers' sections are
        // likely short, and readers come and go).
        let backoff = Spin::new();
        for _ in 0..SPIN_ROUNDS {
            if self.count.load(Ordering::Relaxed) == 0 && self.try_write() {
                return Ok(());
            }
            backoff.snooze();
        }
        lockdep::might_sleep();
        let node = Waiter::tagged(WANT_WRITE);
        #[cfg(not(loom))]
        let deadline = std::time::Instant::now() + crate::mutex::HANDOFF_AFTER;
        {
            let q = self.waiters.lock();
            // SAFETY: `node` is linked only into this list and stays on this
            // frame until unlinked: we return only after it was granted (marked),
            // after unlinking it ourselves (`acquired`) or after `leave` unlinked it.
            unsafe { q.push_back(&node) };
            self.queued_writers.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(loom)]
        let mut vain = false;
        loop {
            // Poll for a free lock (we are awake: no flag needed), then sleep.
            let backoff = Spin::new();
            for _ in 0..SPIN_ROUNDS {
                if node.is_woken() {
                    return Ok(());
                }
                if self.count.load(Ordering::Relaxed) == 0 && self.try_write() {
                    self.acquired(&node);
                    return Ok(());
                }
                backoff.snooze();
            }
            #[cfg(not(loom))]
            let too_long = std::time::Instant::now() >= deadline;
            // Under loom, time does not pass: one wake-up in vain is too long.
            #[cfg(loom)]
            let too_long = vain;
            if too_long && !node.handoff.get() {
                self.request_handoff(&node);
            }
            if !self.prepare_sleep(&node) {
                return Ok(());
            }
            // Until our bounded wait is over. After it, with hand-off ours we
            // sleep until granted; else (another writer has it) we look again
            // every `HANDOFF_AFTER`: readers that keep overlapping may never
            // free the lock to wake us, and we must ask for hand-off in turn.
            #[cfg(not(loom))]
            let until = if node.handoff.get() {
                None
            } else if too_long {
                Some(std::time::Instant::now() + crate::mutex::HANDOFF_AFTER)
            } else {
                Some(deadline)
            };
            #[cfg(loom)]
            let until = None;
            match crate::sched::sleep(state, until) {
                Ok(()) | Err(Error::TimedOut) => {}
                Err(e) => return if self.leave(&node) { Ok(()) } else { Err(e) },
            }
            if node.is_woken() {
                return Ok(());
            }
            #[cfg(loom)]
            {
                vain = true;
            }
        }
    }

    /// A queued writer is about to sleep: sets `WRITER_SLEEPS` and re-checks
    /// the lock. Returns `false` if the lock was granted to us meanwhile.
    fn prepare_sleep(&self, node: &Waiter) -> bool {
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            if !q.is_linked(node) {
                // Granted (hand-off): the mark is on its way.
                drop(q);
                node.wait_for_mark();
                return false;
            }
            self.set_flags(self.flags.load(Ordering::Relaxed) | WRITER_SLEEPS);
            // If the lock is free already, this wakes the first writer (us, or
            // one ahead of us) or grants it on hand-off.
            self.after_flag(&q, &mut woken, &mut wake);
        }
        woken.wake();
        if let Some(t) = wake {
            t.wake_up();
        }
        true
    }

    /// A queued writer took the lock itself: unlink it (it holds `WRITER`, so no
    /// grant can reach it meanwhile). Writers behind it may sleep with their
    /// wake-up spent on us: `WRITER_SLEEPS` for them (module docs, invariants).
    fn acquired(&self, node: &Waiter) {
        let q = self.waiters.lock();
        let was = q.remove(node);
        debug_assert!(was, "a writer that took the lock itself is still queued");
        debug_assert!(!node.handoff.get());
        let nw = self.queued_writers.load(Ordering::Relaxed) - 1;
        self.queued_writers.store(nw, Ordering::Relaxed);
        // We hold `WRITER`: our release sees the flag, no barrier needed. The
        // flag we may have set before a sleep that timed out goes with us.
        let f = self.flags.load(Ordering::Relaxed);
        self.set_flags(if nw != 0 {
            f | WRITER_SLEEPS
        } else {
            f & !WRITER_SLEEPS
        });
    }

    /// A queued writer has waited too long: from now on the lock goes to it next
    /// (`RWSEM_FLAG_HANDOFF`), unless another writer asked first.
    #[cold]
    fn request_handoff(&self, node: &Waiter) {
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            if !q.is_linked(node) || self.flags.load(Ordering::Relaxed) & HANDOFF != 0 {
                return;
            }
            node.handoff.set(true);
            self.set_flags(self.flags.load(Ordering::Relaxed) | HANDOFF);
            // The lock may be free already: the step grants it to us now.
            self.after_flag(&q, &mut woken, &mut wake);
        }
        woken.wake();
        if let Some(t) = wake {
            t.wake_up();
        }
    }

    /// The writer that asked for hand-off.
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

    fn first_writer<'q>(q: &'q Locked<'_, Plain>) -> Option<&'q Waiter> {
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
    /// held whenever the lock may have become available to them: by the
    /// releasing writer (`releasing`: it holds `WRITER` and releases it in this
    /// step), or by anyone else while no writer holds it (it returns at once
    /// if one does: that writer's release runs it):
    /// - `HANDOFF` set: grants the lock to the flagged writer once no reader
    ///   holds it;
    /// - else readers queued: grants the lock to all of them at once;
    /// - else the lock free, `WRITER_SLEEPS` set: wakes the first writer to
    ///   retry (it stays queued) and clears the flag.
    fn grant_or_wake(
        &self,
        q: &Locked<'_, Plain>,
        woken: &mut Detached,
        wake: &mut Option<Task>,
        releasing: bool,
    ) {
        let f = self.flags.load(Ordering::Relaxed);
        let nr = self.queued_readers.load(Ordering::Relaxed);
        let nw = self.queued_writers.load(Ordering::Relaxed);
        loop {
            // Acquire: the release we pass the lock on after (its Release
            // store or RMW) happens before the granted critical sections,
            // through the waiter's mark (Release/Acquire) — a woken writer
            // acquires with its own CAS instead.
            let c = if releasing {
                WRITER
            } else {
                self.count.load(Ordering::Acquire)
            };
            if !releasing && c & WRITER != 0 {
                return;
            }
            let base = if releasing { 0 } else { c };
            // What to do: the new `count`, and whom to grant or wake.
            if f & HANDOFF != 0 {
                if base != 0 {
                    // Readers hold it: the last one out runs this step again.
                    if releasing {
                        unreachable!("a writer held the lock with readers");
                    }
                    return;
                }
                let Some(w) = Self::flagged(q) else {
                    unreachable!("HANDOFF set with no writer asking for it");
                };
                if !self.set_count(c, WRITER, releasing) {
                    continue;
                }
                w.handoff.set(false);
                self.queued_writers.store(nw - 1, Ordering::Relaxed);
                // Writers behind it may have had their wake-up spent on it.
                let nf = if nw - 1 != 0 {
                    (f & !HANDOFF) | WRITER_SLEEPS
                } else {
                    f & !(HANDOFF | WRITER_SLEEPS)
                };
                self.set_flags(nf);
                q.hand_off(w, GRANTED, woken);
            } else if nr != 0 {
                if !self.set_count(c, base + nr * READER, releasing) {
                    continue;
                }
                self.queued_readers.store(0, Ordering::Relaxed);
                self.set_flags(f & !READERS_WAIT);
                let mut p = q.front();
                while let Some(w) = p {
                    p = q.next_of(w);
                    if w.tag == WANT_READ {
                        q.hand_off(w, GRANTED, woken);
                    }
                }
            } else {
                if releasing {
                    // Release: pairs with the Acquire of the next holder.
                    self.count.store(0, Ordering::Release);
                }
                if base == 0 && f & WRITER_SLEEPS != 0 {
                    let Some(first) = Self::first_writer(q) else {
                        unreachable!("WRITER_SLEEPS set with no writer queued");
                    };
                    self.set_flags(f & !WRITER_SLEEPS);
                    *wake = Some(first.task().clone());
                }
            }
            return;
        }
    }

    /// Moves `count` from `c` to `new` for a grant: a Release store by the
    /// releasing writer (nobody else writes `count` while it holds `WRITER`),
    /// else a CAS (readers may come and go meanwhile). `false`: retry.
    fn set_count(&self, c: u32, new: u32, releasing: bool) -> bool {
        if releasing {
            // Release: the writer's critical section happens before the granted ones.
            self.count.store(new, Ordering::Release);
            true
        } else {
            // AcqRel: we pass on the release we read (see `grant_or_wake`).
            self.count
                .compare_exchange(c, new, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }
    }

    /// A release freed the lock (or downgraded) with a flag set.
    #[cold]
    fn wake_slow(&self) {
        let mut woken = Detached::empty();
        let mut wake = None;
        {
            let q = self.waiters.lock();
            self.grant_or_wake(&q, &mut woken, &mut wake, false);
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
                // Only grants unlink a waiter: we hold the lock.
                drop(q);
                node.wait_for_mark();
                debug_assert_eq!(node.grant(), GRANTED);
                return true;
            }
            q.remove(node);
            let mut f = self.flags.load(Ordering::Relaxed);
            if node.tag == WANT_READ {
                let nr = self.queued_readers.load(Ordering::Relaxed) - 1;
                self.queued_readers.store(nr, Ordering::Relaxed);
                if nr == 0 {
                    f &= !READERS_WAIT;
                }
            } else {
                let nw = self.queued_writers.load(Ordering::Relaxed) - 1;
                self.queued_writers.store(nw, Ordering::Relaxed);
                if node.handoff.get() {
                    node.handoff.set(false);
                    f &= !HANDOFF;
                }
                if nw != 0 {
                    // A wake-up we absorbed must reach the next writer.
                    f |= WRITER_SLEEPS;
                } else {
                    f &= !WRITER_SLEEPS;
                }
            }
            self.set_flags(f);
            // Our leaving may unblock others (readers behind our hand-off).
            self.after_flag(&q, &mut woken, &mut wake);
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

    /// `(count, flags)`.
    fn words<T: ?Sized>(s: &RwSemaphore<T>) -> (u32, u32) {
        (
            s.raw.count.load(Ordering::Relaxed),
            s.raw.flags.load(Ordering::Relaxed),
        )
    }

    /// Waits until `f` holds of the flags (a state, not a time: the writer's
    /// bounded wait passes on its own clock).
    fn wait_flags<T: ?Sized>(s: &RwSemaphore<T>, f: impl Fn(u32) -> bool) {
        while !f(s.raw.flags.load(Ordering::Relaxed)) {
            std::thread::yield_now();
        }
    }

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
        assert_eq!(words(&s), (0, 0));
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
        assert_eq!(words(&s), (WRITER, 0));
        drop(w);
        assert!(s.try_write().is_some());
    }

    /// The fast-path rule: queued waiters alone (readers, a sleeping writer)
    /// do not keep a new reader out; a pending hand-off does, and keeps a
    /// barging writer out too.
    #[test]
    fn readers_join_readers_past_waiters_but_not_past_a_handoff() {
        let s = RwSemaphore::new(());
        let r = s.read();
        s.raw
            .flags
            .store(READERS_WAIT | WRITER_SLEEPS, Ordering::Relaxed);
        let r2 = s
            .try_read()
            .expect("a reader joins readers past sleeping waiters");
        assert_eq!(s.reader_count(), 2);
        drop(r2);
        // (No writer is really queued: the flags are cleared before any
        // release could act on them.)
        s.raw.flags.store(HANDOFF, Ordering::Relaxed);
        assert!(
            s.try_read().is_none(),
            "a pending hand-off keeps readers out"
        );
        s.raw.flags.store(0, Ordering::Relaxed);
        drop(r);
        s.raw.flags.store(HANDOFF, Ordering::Relaxed);
        assert!(
            s.try_write().is_none(),
            "a pending hand-off keeps writers out"
        );
        s.raw.flags.store(0, Ordering::Relaxed);
        assert!(s.try_write().is_some());
    }

    /// A writer queues behind our read and, its bounded wait over, asks for
    /// hand-off: new readers queue from then on. One of them is interrupted:
    /// the semaphore is as if it never came; then the writer gets in on our
    /// release, and the queued reader after it.
    #[test]
    fn interrupted_reader_behind_a_handoff_leaves_no_trace() {
        let s = Arc::new(RwSemaphore::new(0u32));
        let r = s.read();
        let (s1, s2, s3) = (s.clone(), s.clone(), s.clone());
        let writer = std::thread::spawn(move || {
            *s1.write() += 1;
        });
        // Stable from here: the writer asked for hand-off and sleeps (it set
        // `WRITER_SLEEPS` before its first sleep and nobody has woken it).
        wait_flags(&s, |f| f == HANDOFF | WRITER_SLEEPS);
        assert!(
            s.try_read().is_none(),
            "a writer past its bounded wait must block new readers"
        );
        let before = words(&s);
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
        assert_ne!(words(&s).1 & READERS_WAIT, 0);
        rtask.send_signal(Signal::SIGINT);
        assert_eq!(reader.join().unwrap(), Err(Error::Interrupted));
        // Only our read and the waiting writer remain.
        assert_eq!(words(&s), before);
        // A reader that stays queued gets in after the writer.
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            *s3.read()
        });
        let rtask = rx.recv().unwrap();
        while rtask.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        drop(r);
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), 1);
        assert_eq!(words(&s), (0, 0));
    }

    /// A killable writer asks for hand-off behind our read, a reader queues
    /// behind the hand-off, and the writer is killed: leaving, it clears the
    /// hand-off and the reader it blocked is granted at once.
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
        wait_flags(&s, |f| f & HANDOFF != 0);
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
        while wtask.state() != TaskState::Killable {
            std::thread::yield_now();
        }
        wtask.send_signal(Signal::SIGKILL);
        assert_eq!(writer.join().unwrap(), Err(Error::Killed));
        reader.join().unwrap();
        assert_eq!(words(&s), (READER, 0));
        drop(r);
        assert_eq!(words(&s), (0, 0));
    }

    /// A killed writer that had not asked for hand-off (asleep, waiting for
    /// readers) leaves no flag behind; a second queued writer still gets its
    /// wake-up when the readers leave.
    #[test]
    fn killed_writer_passes_its_wake_up_on() {
        let s = Arc::new(RwSemaphore::new(0u32));
        let r = s.read();
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        let killed = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = s2.write_killable().map(|_| ());
            crate::sched::flush_signals();
            r
        });
        let ktask = rx.recv().unwrap();
        while ktask.state() != TaskState::Killable {
            std::thread::yield_now();
        }
        let s3 = s.clone();
        let (tx, rx) = mpsc::channel();
        let other = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            *s3.write() += 1;
        });
        let otask = rx.recv().unwrap();
        while otask.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        ktask.send_signal(Signal::SIGKILL);
        assert_eq!(killed.join().unwrap(), Err(Error::Killed));
        drop(r);
        other.join().unwrap();
        assert_eq!(words(&s), (0, 0));
        assert_eq!(*s.read(), 1);
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
        assert_eq!(words(&s), (0, 0));
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
            assert_eq!(s.raw.count.load(Ordering::Relaxed), 0);
            assert_eq!(s.raw.flags.load(Ordering::Relaxed), 0);
        });
    }

    /// Readers join readers past a sleeping writer (the new policy: only a
    /// writer past its bounded wait keeps them out); when the readers leave,
    /// the last one's release wakes the writer (`WRITER_SLEEPS`).
    #[test]
    fn loom_rwsem_reader_joins_past_a_sleeping_writer() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new(0u32));
            let r = s.read();
            let s2 = s.clone();
            let w = loom::thread::spawn(move || {
                *s2.write() += 1;
            });
            while s.raw.flags.load(Ordering::Relaxed) & WRITER_SLEEPS == 0 {
                loom::thread::yield_now();
            }
            let r2 = s
                .try_read()
                .expect("a reader joins readers past a sleeping writer");
            drop(r);
            drop(r2);
            w.join().unwrap();
            assert_eq!(*s.read(), 1);
            assert_eq!(s.raw.count.load(Ordering::Relaxed), 0);
            assert_eq!(s.raw.flags.load(Ordering::Relaxed), 0);
        });
    }

    /// Hand-off: a writer woken in vain (a reader barged in first) asks for
    /// hand-off (under loom, one wake-up in vain is "too long"); from then on
    /// readers queue, and the release that frees the lock grants it to the
    /// writer, whose release grants the queued reader. No grant or wake-up is
    /// lost in any interleaving.
    #[test]
    fn loom_rwsem_writer_handoff_then_readers() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new(0u32));
            let r = s.read();
            let s2 = s.clone();
            let w = loom::thread::spawn(move || {
                *s2.write() += 1;
            });
            while s.raw.flags.load(Ordering::Relaxed) & WRITER_SLEEPS == 0 {
                loom::thread::yield_now();
            }
            // Release (waking the writer) and barge straight back in.
            drop(r);
            let v = *s.read();
            // A second read after the writer may have asked for hand-off: it
            // queues behind the writer or gets in before it.
            let v2 = *s.read();
            assert!(v <= v2 && v2 <= 1);
            w.join().unwrap();
            assert_eq!(*s.read(), 1);
            assert_eq!(s.raw.count.load(Ordering::Relaxed), 0);
            assert_eq!(s.raw.flags.load(Ordering::Relaxed), 0);
        });
    }

    /// Spawns `wait` against `s`, then signals the waiting thread with `sig`.
    fn spawn_and_signal(
        s: &Arc<RwSemaphore<u32>>,
        wait: fn(&RwSemaphore<u32>) -> crate::Result<()>,
        sig: crate::sched::Signal,
    ) -> loom::thread::JoinHandle<crate::Result<()>> {
        let task = Arc::new(loom::sync::Mutex::new(None));
        let (s2, task2) = (s.clone(), task.clone());
        let t = loom::thread::spawn(move || {
            *task2.lock().unwrap() = Some(crate::sched::current());
            let r = wait(&s2);
            crate::sched::flush_signals();
            r
        });
        let victim = loop {
            if let Some(v) = task.lock().unwrap().clone() {
                break v;
            }
            loom::thread::yield_now();
        };
        victim.send_signal(sig);
        t
    }

    /// The semaphore is free and nobody is queued or flagged.
    fn assert_idle(s: &RwSemaphore<u32>) {
        assert_eq!(s.raw.count.load(Ordering::Relaxed), 0);
        assert_eq!(s.raw.flags.load(Ordering::Relaxed), 0);
        assert_eq!(s.raw.queued_readers.load(Ordering::Relaxed), 0);
        assert_eq!(s.raw.queued_writers.load(Ordering::Relaxed), 0);
    }

    /// A reader waiting behind a writer is interrupted while the writer's
    /// release grants it the lock: either the grant wins (it held the lock
    /// and released it) or the signal does (no trace); no grant is lost or
    /// left counted.
    #[test]
    fn loom_rwsem_interrupted_reader_vs_grant() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new(0u32));
            let g = s.write();
            let t = spawn_and_signal(
                &s,
                |s| s.read_interruptible().map(|_| ()),
                crate::sched::Signal::SIGUSR1,
            );
            drop(g);
            match t.join().unwrap() {
                Ok(()) | Err(crate::Error::Interrupted) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
            assert_idle(&s);
        });
    }

    /// A writer waiting for a reader is killed while the reader's release
    /// wakes it (or, under loom, while it asks for hand-off): whatever wins,
    /// no flag, count or queue entry is left behind.
    #[test]
    fn loom_rwsem_killed_writer_vs_release() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new(0u32));
            let r = s.read();
            let t = spawn_and_signal(
                &s,
                |s| s.write_killable().map(|mut g| *g += 1),
                crate::sched::Signal::SIGKILL,
            );
            drop(r);
            let res = t.join().unwrap();
            match res {
                Ok(()) => assert_eq!(*s.read(), 1),
                Err(crate::Error::Killed) => assert_eq!(*s.read(), 0),
                Err(e) => panic!("unexpected {e:?}"),
            }
            assert_idle(&s);
        });
    }
}
