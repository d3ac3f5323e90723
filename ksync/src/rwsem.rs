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
//! The lock words are those of the queued rwlock
//! ([`RwLock`](crate::spinlock::RwLock), after the kernel's
//! `kernel/locking/qrwlock.c`), and the queue is a sleeping
//! [`RawMutex`] instead of a spinning MCS lock, so
//! every wait may sleep and be interrupted. Two words on one cache line:
//!
//! | `wlocked` | meaning |
//! |-----------|---------|
//! | 0         | no writer |
//! | `WLOCKED` | a writer holds the lock, or has just claimed it and checks for readers |
//! | `WAITING` | the queue-head writer waits for the readers to drain: new readers turn away into the queue |
//!
//! | `cnts` bits | name         | meaning |
//! |-------------|--------------|---------|
//! | 0           | `SLEEPING_W` | the queue head sleeps until `wlocked` changes: a release of `wlocked` must wake it |
//! | 1           | `SLEEPING_R` | the queue-head writer sleeps until the readers drain: the last reader out must wake it |
//! | 2–31        | reader count | in units of `READER` (4) |
//!
//! **Fast paths: one RMW each way, and a store for the write release.**
//! `down_read` adds its bias to `cnts` with one `fetch_add` (it never fails
//! and retries, as a CAS does when readers crowd the line) and then loads
//! `wlocked`; `up_read` is one `fetch_sub`. `down_write` claims `wlocked` by a
//! CAS from 0 and then loads `cnts`; only the claimer writes `wlocked` until
//! it stores 0 again, so `up_write` is a plain release store, a
//! [`light_barrier`] and a load of `cnts` for a sleeping queue head. The
//! reader's and the writer's pairs are SeqCst (the store-buffering pattern:
//! locked RMWs on x86, so no fence instruction): at least one of the two sees
//! the other. A reader that sees a writer's word takes its bias back and
//! queues; a writer that sees readers after its claim gives the word back and
//! queues. So a writer holds the lock exactly when it owns `WLOCKED` and saw
//! no reader after claiming it. (The kernel keeps the writer byte inside the
//! count and releases it with a byte store; Rust forbids racing mixed-size
//! atomics on one word, hence the second word.)
//!
//! **Slow paths: one queue, one waiter on the words.** Contenders queue on
//! `wait_lock`, a [`RawMutex`] used without lockdep
//! (it spins while its holder runs, then sleeps FIFO with a bounded hand-off):
//! only its holder, the queue head, waits on the lock words.
//! - *A head reader* adds its bias and waits for `WLOCKED` to clear (a
//!   fast-path writer that claims the word meanwhile sees the bias and gives
//!   it back), then lets the queue go on: the readers queued behind it follow
//!   one after another without sleeping, and join the readers in the lock.
//! - *A head writer* waits for `wlocked` to be 0, claims it as `WAITING` —
//!   which turns new readers away into the queue — waits for the readers
//!   already in to drain, then stores `WLOCKED` and re-checks the readers
//!   (the handshake above; back to `WAITING` if one came in). It waits only
//!   for readers that came before it, so a stream of readers cannot starve a
//!   writer; and while a head reader waits, its bias keeps fast-path writers
//!   out, so a stream of writers cannot starve readers.
//! - Readers that arrive while only readers hold the lock join them on the
//!   fast path; writers take a free lock past the queue with one CAS (the
//!   lock is never left idle while a sleeper wakes up).
//!
//! The head's waits spin a bounded time and then sleep (`sched::sleep`, so
//! signals end them). Before it sleeps, the head links itself on `sleeper`
//! (the wait engine's list: at most the one head), sets its flag in `cnts`,
//! and re-checks. Waiting on `wlocked` it sets `SLEEPING_W` and issues
//! [`heavy_barrier`]; every release of `wlocked` stores, issues
//! [`light_barrier`] and loads `cnts`: the asymmetric fence pair, so either the
//! release sees the flag and wakes the head, or the head's re-check sees the
//! release. Waiting for readers it sets `SLEEPING_R` with an RMW on `cnts`,
//! which the last reader's `fetch_sub` sees: RMWs on one word are ordered, no
//! fence needed.
//!
//! **An interrupted or killed wait leaves no trace.** A waiter still queued on
//! `wait_lock` leaves it as a mutex waiter does; a head reader takes its bias
//! back; a head writer gives `WAITING` back (the readers it turned away are
//! queued behind it and go on once it lets go of `wait_lock`). The one mark a
//! head leaves in the words, its sleep flag, is cleared before it returns.
//!
//! Readers in interrupt context are refused (a panic, as for any sleeping
//! lock), so a writer claims `wlocked` with its held value: unlike the
//! spinning rwlocks' claims, it need not carry the thread's id.

use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::backoff::Spin;
use crate::error::Result;
use crate::lock::twoword::{reader_enter, reader_try, writer_try};
use crate::lock::{
    Backend, Guard, Lock, ReadGuard, SharedBackend, SleepingBackend, SleepingSharedBackend,
};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::sb_fence;
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use crate::mutex::RawMutex;
use crate::sched::TaskState;
use crate::sched::waitlist::{Plain, WaitList, Waiter};

/// `wlocked`: a writer holds the lock (or checks for readers after claiming it).
const WLOCKED: u32 = 1;
/// `wlocked`: the queue-head writer waits for the readers to drain.
const WAITING: u32 = 2;
/// `cnts`: the queue head sleeps until `wlocked` changes.
const SLEEPING_W: u32 = 1;
/// `cnts`: the queue-head writer sleeps until the readers drain.
const SLEEPING_R: u32 = 2;
/// `cnts`: one reader's bias.
const READER: u32 = 4;

/// The raw reader-writer semaphore (`struct rw_semaphore` without the data): the
/// two lock words, the queue and the lockdep map. The backend of
/// [`RwSemaphore<T>`]; its shared side is the readers'.
#[repr(C)]
pub struct RawRwSemaphore {
    /// Reader biases and the head's sleep flags (module docs).
    cnts: AtomicU32,
    /// The writer's word: 0, `WLOCKED` or `WAITING`; written only by the
    /// writer that claimed it from 0.
    wlocked: AtomicU32,
    /// The queue: its holder is the one waiter on the lock words. Never seen
    /// by lockdep (the semaphore's own map is).
    wait_lock: RawMutex,
    /// The queue head, linked while it sleeps on a lock word, so that a
    /// release that sees its flag can wake it.
    sleeper: WaitList<Plain>,
    dep_map: LockdepMap,
}

/// A reader-writer semaphore guarding a `T` (`struct rw_semaphore`): the generic
/// [`Lock`] over the [`RawRwSemaphore`] backend. `Sync` for `T: Send + Sync`:
/// writers get `&mut T` from any thread, readers share `&T` at once.
///
/// See the [module docs](self) for the algorithm: readers share, writers
/// queue fairly behind the readers already in, and nobody starves.
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
            cnts: AtomicU32::new(0),
            wlocked: AtomicU32::new(0),
            wait_lock: RawMutex::new(),
            sleeper: WaitList::new(),
            dep_map,
        }
    }

    /// A free semaphore with the lockdep map `dep_map` (loom build).
    #[cfg(loom)]
    fn with_map(dep_map: LockdepMap) -> RawRwSemaphore {
        RawRwSemaphore {
            cnts: AtomicU32::new(0),
            wlocked: AtomicU32::new(0),
            wait_lock: RawMutex::new(),
            sleeper: WaitList::new(),
            dep_map,
        }
    }
}

// SAFETY: a writer holds the lock only while it owns `wlocked` as `WLOCKED`
// (claimed from 0 by a CAS, or stored by the queue head that owns the word as
// `WAITING`: one writer at a time) and saw no reader bias in `cnts` after
// claiming it; a reader holds it only with its bias in `cnts` and `WLOCKED`
// unseen after adding it (the SeqCst handshake of the module docs: one of the
// two sees the other). Entering accesses are Acquire (SeqCst), exits Release.
// Readers share the `T` at once, so `Concurrent<T>` is `T`.
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

    /// `down_write_trylock`: takes it if no one holds it and no writer waits
    /// for the readers to drain. Like the kernel's, it may overtake queued
    /// waiters.
    #[inline(always)]
    fn try_lock(&self) -> bool {
        self.try_write()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        self.release_wlocked();
    }

    #[inline(always)]
    fn is_locked(&self) -> bool {
        self.wlocked.load(Ordering::Relaxed) & WLOCKED != 0
            || self.cnts.load(Ordering::Relaxed) >= READER
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
        self.unbias();
    }

    #[inline(always)]
    fn is_write_locked(&self) -> bool {
        self.wlocked.load(Ordering::Relaxed) & WLOCKED != 0
    }
}

// SAFETY: `write_acquire` takes the write lock as `lock` does when it returns
// `Ok`; an interrupted or killed wait leaves the semaphore as if the call never
// happened (module docs: the waiter leaves the queue, gives back `WAITING` and
// clears its sleep flag).
unsafe impl SleepingBackend for RawRwSemaphore {
    #[inline]
    fn lock_sleeping(&self, state: TaskState) -> Result<()> {
        self.write_acquire(state)
    }
}

// SAFETY: as for `SleepingBackend`, with `read_acquire` and a read lock (an
// interrupted head reader takes its bias back).
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
    /// How many readers hold it. A snapshot, which also counts readers passing
    /// through the fast path that are about to be turned away by a writer.
    pub fn reader_count(&self) -> u32 {
        self.raw.cnts.load(Ordering::Relaxed) / READER
    }

    /// Whether readers hold it (`rw_read_held`, though Solaris asks whether
    /// *this* thread is one of them). A snapshot.
    #[doc(alias = "rw_read_held")]
    pub fn is_read_locked(&self) -> bool {
        self.reader_count() > 0
    }

    /// Turns the caller's read hold into the write hold without letting go, if
    /// it is the only reader and no writer waits for the lock (Solaris's
    /// `rw_tryupgrade`); otherwise returns the read guard untouched. Nothing
    /// another writer could do happens in between, so what was read under the
    /// read hold is still true under the write hold. Like Solaris's, it may
    /// fail spuriously: a reader passing through at that moment (one that is
    /// being turned away, too) counts as another reader.
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

    /// `down_read` without lockdep (the caller records it): the fast path,
    /// then the slow path in `state`.
    #[inline]
    fn read_acquire(&self, state: TaskState) -> Result<()> {
        if reader_enter(&self.cnts, &self.wlocked, READER) == 0 {
            return Ok(());
        }
        self.read_slow(state)
    }

    /// `down_read_trylock` without lockdep: fails while a writer holds the
    /// lock or waits for the readers to drain.
    #[inline]
    fn try_read(&self) -> bool {
        reader_try(
            &self.cnts,
            &self.wlocked,
            READER,
            |w| w == 0,
            || self.unbias(),
        )
    }

    /// Drops one reader bias: `up_read`, or a reader backing off.
    #[inline]
    fn unbias(&self) {
        // Release: pairs with the Acquire of the writer that waits for the
        // readers to drain (its load of `cnts`).
        let c = self.cnts.fetch_sub(READER, Ordering::Release);
        if c & SLEEPING_R != 0 && c < 2 * READER {
            // The last reader out, and the head writer sleeps waiting for it.
            self.wake_head();
        }
    }

    // ---- write side -----------------------------------------------------------

    /// `down_write_trylock` without lockdep: takes a free lock — past queued
    /// waiters, but not past a writer that waits for the readers to drain
    /// (it owns `wlocked`).
    #[inline]
    fn try_write(&self) -> bool {
        // No irq reader can see through the claim: it is the held value.
        writer_try(
            &self.wlocked,
            &self.cnts,
            READER,
            || WLOCKED,
            None,
            || self.give_back(),
        )
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

    /// Stores 0 to `wlocked`, which we own (`up_write`, a claim given back, an
    /// interrupted head writer's `WAITING`), and wakes the queue head if it
    /// sleeps on it.
    #[inline]
    fn release_wlocked(&self) {
        // Nobody else writes `wlocked` while we own it. Release: pairs with
        // the Acquire of the next reader's or writer's access to it.
        self.wlocked.store(0, Ordering::Release);
        // Orders the store before the `cnts` load, with the head's
        // `heavy_barrier` between its `SLEEPING_W` and its re-check of
        // `wlocked`: one of the two sees the other.
        light_barrier();
        if self.cnts.load(Ordering::Relaxed) & SLEEPING_W != 0 {
            self.wake_head();
        }
    }

    /// A reader came in before our fast-path claim of `wlocked`: give the
    /// word back.
    #[cold]
    fn give_back(&self) {
        self.release_wlocked();
    }

    /// `rw_tryupgrade`: the caller's read hold becomes the write hold if it is
    /// the only reader and no writer waits. The caller holds a read lock.
    fn try_upgrade(&self) -> bool {
        // A writer waiting for the readers (or holding a claim) goes first.
        if self.wlocked.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // SeqCst: the writer's handshake, as in `try_write`: after our claim,
        // a reader that adds its bias sees `WLOCKED` and backs off.
        if self
            .wlocked
            .compare_exchange(0, WLOCKED, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        sb_fence();
        if self.cnts.load(Ordering::SeqCst) >= 2 * READER {
            // Another reader holds it (or is passing through).
            self.give_back();
            return false;
        }
        // Only our bias is left: drop it. No writer waits for the readers
        // (`WAITING` would be in `wlocked`, which we own), so `SLEEPING_R` is
        // clear and nobody needs waking. Relaxed: we hold the lock already.
        self.cnts.fetch_sub(READER, Ordering::Relaxed);
        lockdep::release(&self.dep_map);
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, true, 0);
        true
    }

    /// `downgrade_write`: writer → reader, atomically; queued readers follow,
    /// writers stay out (our bias is in before `WLOCKED` goes).
    fn downgrade(&self) {
        lockdep::release(&self.dep_map);
        lockdep::acquire(&self.dep_map, AcquireKind::Read, true, 0);
        debug_assert_eq!(self.wlocked.load(Ordering::Relaxed), WLOCKED);
        // Relaxed: we hold the lock; the release below publishes our writes.
        // A writer that claims `wlocked` after our release sees this bias.
        self.cnts.fetch_add(READER, Ordering::Relaxed);
        self.release_wlocked();
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

    /// Takes `wait_lock`, the queue (an interrupted wait leaves it untouched).
    fn enqueue(&self, state: TaskState) -> Result<()> {
        self.wait_lock.acquire_queue(state)
    }

    /// Lets the next queued waiter be the head.
    fn dequeue(&self) {
        // SAFETY: every caller took `wait_lock` with `enqueue` and lets go of
        // it once.
        // The backend's unlock: no lockdep release (lockdep never saw the
        // queue), no owner check.
        unsafe { <RawMutex as Backend>::unlock(&self.wait_lock) };
    }

    /// `rwsem_down_read_slowpath`: our bias is in, and a writer's word was seen.
    #[cold]
    fn read_slow(&self, state: TaskState) -> Result<()> {
        // Our bias came and went, but a waiting writer may have seen it and
        // gone to sleep: leave as `up_read` does.
        self.unbias();
        self.check_context();
        lockdep::lock_contended(&self.dep_map);
        lockdep::might_sleep();
        self.enqueue(state)?;
        // SeqCst: as in `read_acquire`. No writer waits for the readers now
        // (only the head does, and we are the head), so only a holder or a
        // fast-path writer's claim can be in `wlocked`: the holder releases,
        // a claimer sees our bias and gives the word back.
        self.cnts.fetch_add(READER, Ordering::SeqCst);
        sb_fence();
        let r = self.head_wait(SLEEPING_W, state, || {
            // SeqCst, Acquire: the reader's side of the handshake; pairs with
            // the Release store of the release we waited for.
            self.wlocked.load(Ordering::SeqCst) & WLOCKED == 0
        });
        if r.is_err() {
            self.unbias();
        }
        self.dequeue();
        r
    }

    /// `rwsem_down_write_slowpath`.
    #[cold]
    fn write_slow(&self, state: TaskState) -> Result<()> {
        self.check_context();
        lockdep::lock_contended(&self.dep_map);
        lockdep::might_sleep();
        self.enqueue(state)?;
        let r = self.head_write(state);
        self.dequeue();
        r
    }

    /// The queue-head writer (we hold `wait_lock`): claim `wlocked` as
    /// `WAITING`, wait for the readers to drain, take `WLOCKED`. On `Err`,
    /// `wlocked` is ours no more.
    fn head_write(&self, state: TaskState) -> Result<()> {
        if self.try_write() {
            return Ok(());
        }
        // Claim the writer's word as WAITING, turning new readers away into
        // the queue. Relaxed: the claim publishes nothing, and the lock is
        // taken below with SeqCst.
        loop {
            self.head_wait(SLEEPING_W, state, || {
                // Acquire: pairs with the Release store of the release.
                self.wlocked.load(Ordering::Acquire) == 0
            })?;
            if self
                .wlocked
                .compare_exchange(0, WAITING, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        loop {
            let drained = self.head_wait(SLEEPING_R, state, || {
                // Acquire: pairs with the last reader's Release `fetch_sub`.
                self.cnts.load(Ordering::Acquire) < READER
            });
            if let Err(e) = drained {
                // Interrupted: give `WAITING` back. Nobody sleeps on it (we are
                // the head), and the readers it turned away are queued behind
                // us.
                self.release_wlocked();
                return Err(e);
            }
            // SeqCst: the writer's half of the handshake (module docs): a
            // reader that biased before this store is seen below, one after
            // sees `WLOCKED` (and nobody else writes the word we own).
            self.wlocked.store(WLOCKED, Ordering::SeqCst);
            sb_fence();
            // SeqCst: as above; Acquire pairs with the last reader's Release
            // `fetch_sub`.
            if self.cnts.load(Ordering::SeqCst) < READER {
                return Ok(());
            }
            // A fast-path reader biased first and is about to see our word
            // and back off. Nobody sleeps on `wlocked` (we are the head), so a
            // store gives `WLOCKED` back.
            self.wlocked.store(WAITING, Ordering::Relaxed);
        }
    }

    /// The queue head's wait (we hold `wait_lock`) until `done()`: spins a
    /// bounded time, then sleeps with `flag` (`SLEEPING_W` or `SLEEPING_R`)
    /// set in `cnts` until a release wakes it. Returns with the flag clear
    /// and `sleeper` empty; `Err` if a signal ended the sleep first (per
    /// `state`).
    fn head_wait(&self, flag: u32, state: TaskState, done: impl Fn() -> bool) -> Result<()> {
        let spin = Spin::new();
        while !spin.is_completed() {
            if done() {
                return Ok(());
            }
            spin.snooze();
        }
        let node = Waiter::tagged(flag);
        {
            let q = self.sleeper.lock();
            // SAFETY: `node` is linked only into this list and stays on this
            // frame until we unlink it below (wakers never detach it).
            unsafe { q.push_back(&node) };
        }
        let r = loop {
            // Relaxed: `SLEEPING_R` is ordered with the readers' RMWs on the
            // same word (the last one sees it, or we see it gone below);
            // `SLEEPING_W` by the heavy barrier.
            self.cnts.fetch_or(flag, Ordering::Relaxed);
            if flag == SLEEPING_W {
                // Pairs with the `light_barrier` of `release_wlocked`: either
                // it sees our flag and wakes us, or we see its store below.
                heavy_barrier();
            }
            if done() {
                break Ok(());
            }
            // A wake-up that came since our flag makes this return at once.
            if let Err(e) = crate::sched::sleep(state, None) {
                // The lock may have become ours to take as the signal came:
                // take it rather than report a wait that ended anyway.
                break if done() { Ok(()) } else { Err(e) };
            }
        };
        // Relaxed: the flag only asks for wake-ups; the wait is over.
        self.cnts.fetch_and(!flag, Ordering::Relaxed);
        self.sleeper.lock().remove(&node);
        r
    }

    /// A release saw a sleep flag: wakes the queue head, if it sleeps.
    #[cold]
    fn wake_head(&self) {
        let task = self.sleeper.lock().front().map(|w| w.task().clone());
        if let Some(t) = task {
            t.wake_up();
        }
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

    /// `(cnts, wlocked)`.
    fn words<T: ?Sized>(s: &RwSemaphore<T>) -> (u32, u32) {
        (
            s.raw.cnts.load(Ordering::Relaxed),
            s.raw.wlocked.load(Ordering::Relaxed),
        )
    }

    /// Waits until `f` holds of the words (a state, not a time).
    fn wait_words<T: ?Sized>(s: &RwSemaphore<T>, f: impl Fn((u32, u32)) -> bool) {
        while !f(words(s)) {
            std::thread::yield_now();
        }
    }

    /// Waits until `task` sleeps in `state`.
    fn wait_state(task: &crate::sched::Task, state: TaskState) {
        while task.state() != state {
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
        assert!(!s.raw.wait_lock.is_locked());
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
        // Its bias is gone, the queue is free, no sleep flag is left.
        assert_eq!(words(&s), (0, WLOCKED));
        assert!(!s.raw.wait_lock.is_locked());
        drop(w);
        assert!(s.try_write().is_some());
    }

    /// The fast-path rule: readers join readers; a writer waiting for them to
    /// drain (it owns `wlocked` as `WAITING`) turns new readers and writers
    /// away, and lets them in again when it gives the word back.
    #[test]
    fn readers_join_readers_but_not_past_a_waiting_writer() {
        let s = RwSemaphore::new(());
        let r = s.read();
        let r2 = s.try_read().expect("a reader joins readers");
        assert_eq!(s.reader_count(), 2);
        drop(r2);
        // (No writer is really queued: the word is given back before any
        // release could act on it.)
        s.raw.wlocked.store(WAITING, Ordering::Relaxed);
        assert!(s.try_read().is_none(), "a waiting writer keeps readers out");
        assert_eq!(words(&s), (READER, WAITING), "the turned-away bias is gone");
        s.raw.wlocked.store(0, Ordering::Relaxed);
        drop(r);
        s.raw.wlocked.store(WAITING, Ordering::Relaxed);
        assert!(
            s.try_write().is_none(),
            "a waiting writer keeps writers out"
        );
        s.raw.wlocked.store(0, Ordering::Relaxed);
        assert!(s.try_write().is_some());
    }

    /// A writer queues behind our read and claims `WAITING`: new readers
    /// queue from then on. One of them is interrupted while it waits in the
    /// queue: the semaphore is as if it never came; then the writer gets in
    /// on our release, and a reader that stayed queued after it.
    #[test]
    fn interrupted_reader_behind_a_waiting_writer_leaves_no_trace() {
        let s = Arc::new(RwSemaphore::new(0u32));
        let r = s.read();
        let (s1, s2, s3) = (s.clone(), s.clone(), s.clone());
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            *s1.write() += 1;
        });
        let wtask = rx.recv().unwrap();
        // Stable from here: the writer owns `WAITING` and sleeps until our
        // read drains.
        wait_words(&s, |w| w == (READER | SLEEPING_R, WAITING));
        wait_state(&wtask, TaskState::Uninterruptible);
        assert!(
            s.try_read().is_none(),
            "a writer waiting for the readers must block new readers"
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
        wait_state(&rtask, TaskState::Interruptible);
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
        wait_state(&rtask, TaskState::Uninterruptible);
        drop(r);
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), 1);
        assert_eq!(words(&s), (0, 0));
    }

    /// A killable writer waits for our read with `WAITING` claimed, a reader
    /// queues behind it, and the writer is killed: leaving, it gives the word
    /// back and the reader it blocked gets in at once.
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
        wait_words(&s, |(_, w)| w == WAITING);
        let s3 = s.clone();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            drop(s3.read());
        });
        let rtask = rx.recv().unwrap();
        wait_state(&rtask, TaskState::Uninterruptible);
        wait_state(&wtask, TaskState::Killable);
        wtask.send_signal(Signal::SIGKILL);
        assert_eq!(writer.join().unwrap(), Err(Error::Killed));
        reader.join().unwrap();
        assert_eq!(words(&s), (READER, 0));
        drop(r);
        assert_eq!(words(&s), (0, 0));
        assert!(!s.raw.wait_lock.is_locked());
    }

    /// A killed head writer (asleep, waiting for our read) leaves no flag
    /// behind; the writer queued behind it becomes the head and gets in when
    /// our read leaves.
    #[test]
    fn killed_writer_passes_the_queue_on() {
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
        wait_state(&ktask, TaskState::Killable);
        let s3 = s.clone();
        let (tx, rx) = mpsc::channel();
        let other = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            *s3.write() += 1;
        });
        let otask = rx.recv().unwrap();
        wait_state(&otask, TaskState::Uninterruptible);
        ktask.send_signal(Signal::SIGKILL);
        assert_eq!(killed.join().unwrap(), Err(Error::Killed));
        // The second writer is the head now, waiting for our read.
        wait_words(&s, |w| w == (READER | SLEEPING_R, WAITING));
        drop(r);
        other.join().unwrap();
        assert_eq!(words(&s), (0, 0));
        assert_eq!(*s.read(), 1);
    }

    /// `rw_tryupgrade` fails while a writer waits for the readers (it goes
    /// first), and the read hold is intact after a failure.
    #[test]
    fn try_upgrade_yields_to_a_waiting_writer() {
        let s = Arc::new(RwSemaphore::new(0u32));
        let r = s.read();
        let s2 = s.clone();
        let writer = std::thread::spawn(move || *s2.write() += 1);
        wait_words(&s, |(_, w)| w == WAITING);
        let Err(r) = s.try_upgrade(r) else {
            panic!("a waiting writer goes first");
        };
        assert_eq!(s.reader_count(), 1);
        drop(r);
        writer.join().unwrap();
        let Ok(w) = s.try_upgrade(s.read()) else {
            panic!("the only reader");
        };
        assert_eq!(*w, 1);
        drop(w);
        assert_eq!(words(&s), (0, 0));
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
        assert!(!s.raw.wait_lock.is_locked());
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
            assert_idle(&s);
        });
    }

    /// The head writer claims `WAITING`, spends its (one-round) spin and
    /// sleeps with `SLEEPING_R`; the last reader's `fetch_sub` sees the flag
    /// and wakes it. A lost wake-up shows as a deadlock.
    #[test]
    fn loom_rwsem_sleeping_writer_is_woken_by_the_last_reader() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new(0u32));
            let r = s.read();
            let s2 = s.clone();
            let w = loom::thread::spawn(move || {
                *s2.write() += 1;
            });
            while s.raw.cnts.load(Ordering::Relaxed) & SLEEPING_R == 0 {
                loom::thread::yield_now();
            }
            assert!(
                s.try_read().is_none(),
                "the waiting writer turns readers away"
            );
            drop(r);
            w.join().unwrap();
            assert_eq!(*s.read(), 1);
            assert_idle(&s);
        });
    }

    /// The head reader waits for a writer with its bias in and, its
    /// (one-round) spin spent, sleeps with `SLEEPING_W`; the writer's release
    /// (plain store, light barrier, load of `cnts`), at any point of that,
    /// must see the flag or be seen by the reader's re-check after its heavy
    /// barrier. A lost wake-up shows as a deadlock.
    #[test]
    fn loom_rwsem_sleeping_reader_is_woken_by_the_write_release() {
        loom::model(|| {
            let s = Arc::new(RwSemaphore::new(0u32));
            let mut g = s.write();
            let s2 = s.clone();
            let r = loom::thread::spawn(move || *s2.read());
            // Wait until the reader has spent its spin and linked itself to
            // sleep (loom runs a yielding spinner only when every other thread
            // yields or blocks too), but not for its flag: the release races
            // with the flag, the barrier and the re-check.
            while s.raw.sleeper.lock().is_empty() {
                loom::thread::yield_now();
            }
            *g += 1;
            drop(g);
            assert_eq!(r.join().unwrap(), 1);
            assert_idle(&s);
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

    /// The semaphore is free, nobody is queued and no flag is left.
    fn assert_idle<T>(s: &RwSemaphore<T>) {
        assert_eq!(s.raw.cnts.load(Ordering::Relaxed), 0);
        assert_eq!(s.raw.wlocked.load(Ordering::Relaxed), 0);
        assert!(!s.raw.wait_lock.is_locked());
        assert!(s.raw.sleeper.lock().is_empty());
    }

    /// A reader waiting behind a writer is interrupted while the writer's
    /// release lets it in: either the release wins (it held the lock and
    /// released it) or the signal does (no trace); no bias or flag is left.
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
    /// wakes it: whatever wins, no flag, bias, claim or queue entry is left
    /// behind.
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
