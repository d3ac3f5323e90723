//! `struct rt_mutex` as [`RtMutex<T>`]: a sleeping mutex with priority
//! inheritance, and [`RtCondVar`], a condition variable that keeps the
//! inheritance across its wait.
//!
//! A waiter of higher priority lends it to the holder, transitively along a
//! chain of holders that wait on other `RtMutex`es, so a low-priority holder
//! cannot be starved by medium-priority work while a high-priority task waits
//! for it (the Mars Pathfinder failure). In user space the kernel does this for
//! us: the lock word is a PI futex ([`arch::futex::pi`](crate::arch::futex::pi)),
//! and contention goes to `FUTEX_LOCK_PI`/`FUTEX_UNLOCK_PI`, which queue the
//! waiters in the kernel's own `rt_mutex` and boost the owner.
//!
//! | kernel | ksync |
//! |---|---|
//! | `DEFINE_RT_MUTEX`, `rt_mutex_init` | [`RtMutex::new`] |
//! | `rt_mutex_lock`, `rt_mutex_unlock` | [`lock`](crate::lock::Lock::lock), drop the guard |
//! | `rt_mutex_lock_interruptible` | [`RtMutex::lock_interruptible`] |
//! | `rt_mutex_trylock` | [`try_lock`](crate::lock::Lock::try_lock) |
//! | `rt_mutex_timed_lock` | [`RtMutex::lock_timeout`] |
//! | `pthread_cond_t` over a PI mutex | [`RtCondVar`] |
//!
//! # Implementation details
//!
//! The word is the kernel's PI futex word (futex(2)):
//!
//! | value | meaning | next |
//! |---|---|---|
//! | `0` | free | lock: CAS `0 → tid` in user space |
//! | `tid` | held by `tid`, nobody waits | unlock: CAS `tid → 0` in user space |
//! | `tid \| WAITERS` | held, the kernel queues waiters | unlock: `FUTEX_UNLOCK_PI` hands it to the top waiter |
//! | `tid \| OWNER_DIED` | its owner exited holding it | `FUTEX_TRYLOCK_PI`/`FUTEX_LOCK_PI` take it over |
//!
//! Only the kernel sets `WAITERS` (inside `FUTEX_LOCK_PI`, atomically with
//! queueing the waiter and boosting the owner), so the uncontended lock and
//! unlock are one CAS each and never enter the kernel, and a contended unlock
//! cannot be missed: the owner's CAS `tid → 0` fails once `WAITERS` is set.
//! The unlock must be that CAS, not a plain store as [`Mutex`](crate::mutex::Mutex)'s
//! release is: the kernel may set `WAITERS` between any load and a store, and
//! a store of `0` would strand the waiters it queued. So an uncontended
//! lock+unlock is two CASes, as `parking_lot::Mutex`'s and glibc's PI mutex's.
//!
//! Orderings: the user-space lock CAS is Acquire and pairs with the Release
//! CAS of the user-space unlock. When the kernel hands the lock over
//! (`FUTEX_UNLOCK_PI` → a waiter's `FUTEX_LOCK_PI` returns), both system calls
//! take the futex's hash-bucket lock and the `rt_mutex`'s wait lock, so the old
//! owner's critical section happens before the new owner's.
//!
//! ## The exception to the one sleep path
//! The waits here are the kernel's: a waiter must sit in the kernel's PI chain,
//! not on its own task word, or nobody could lend it anything. They run inside
//! `sched::sleep_in_kernel`, which does what [`sched::sleep`]
//! does around a block — the might-sleep check, the BKL dropped and retaken, the
//! task's state shown (`Uninterruptible`, `Interruptible`) — while the kernel
//! does the block.
//!
//! ## Bounding an interruptible wait
//! The kernel restarts a `FUTEX_LOCK_PI` interrupted by a signal handler by
//! itself (it never returns `EINTR`), and a ksync signal
//! ([`Task::send_signal`](crate::sched::Task::send_signal)) does not reach it
//! at all. So [`RtMutex::lock_interruptible`] waits in slices of
//! [`SIGNAL_SLICE`]: each slice is a timed `FUTEX_LOCK_PI2` (an absolute
//! `CLOCK_MONOTONIC` deadline), and between slices it checks the task's
//! pending signals. A signal ends the wait within one slice. While it is
//! between two slices the waiter is off the PI chain for a few microseconds:
//! the owner's boost drops and comes back with the next slice. The plain
//! [`lock`](crate::lock::Lock::lock) waits in one untimed call.

use core::fmt;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::arch::futex::pi::{self, PiError};
use crate::error::{Error, Result};
use crate::lock::{Backend, Guard, Lock};
use crate::lockdep::{self, AcquireKind, LockClassKey, LockdepMap};
use crate::sched::{self, TaskState};

/// How long an interruptible or timed wait stays in the kernel before it
/// checks the task's pending signals (see the module docs): the longest a
/// ksync signal waits to end a [`RtMutex::lock_interruptible`].
pub const SIGNAL_SLICE: Duration = Duration::from_millis(2);

/// The caller's kernel thread id ([`crate::ctx::current_id`]: cached, so the
/// fast path makes no system call, and refreshed in a forked child). The PI
/// futex protocol needs the real tid: the kernel finds the owner's task (to
/// boost it) from it.
#[inline(always)]
fn current_tid() -> u32 {
    crate::ctx::current_id()
}

/// The raw priority-inheriting mutex: the PI futex word and the lockdep map,
/// without data. [`RtMutex<T>`] is this plus a `T`.
///
/// # Invariants
/// `word` follows the PI futex protocol of the [module docs](self): `0`, or
/// the owner's tid with the kernel's `WAITERS`/`OWNER_DIED` bits.
pub struct RawRtMutex {
    /// The PI futex word (see the table in the module docs).
    word: AtomicU32,
    dep_map: LockdepMap,
}

impl RawRtMutex {
    /// An unlocked rt_mutex whose lockdep class is the caller's location.
    #[track_caller]
    pub const fn new() -> RawRtMutex {
        // INVARIANT: 0 is the free state of the protocol.
        RawRtMutex {
            word: AtomicU32::new(0),
            dep_map: LockdepMap::new_sleeping("rt_mutex"),
        }
    }

    /// An unlocked rt_mutex whose lockdep class is `key`, named `name`
    /// (`__rt_mutex_init(lock, name, key)`).
    #[doc(alias = "__rt_mutex_init")]
    #[track_caller]
    pub const fn with_class(name: &'static str, key: &'static LockClassKey) -> RawRtMutex {
        // INVARIANT: 0 is the free state of the protocol.
        RawRtMutex {
            word: AtomicU32::new(0),
            dep_map: LockdepMap::with_key(name, key).sleeping(),
        }
    }

    /// Whether anyone holds it (`rt_mutex_is_locked`). A snapshot.
    #[doc(alias = "rt_mutex_is_locked")]
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & pi::TID_MASK != 0
    }

    /// The owner's thread id, if held. A snapshot, for diagnostics.
    #[inline]
    pub fn owner(&self) -> Option<i32> {
        match self.word.load(Ordering::Relaxed) & pi::TID_MASK {
            0 => None,
            t => Some(t as i32),
        }
    }

    /// Whether the kernel has waiters queued on it (`FUTEX_WAITERS`). A snapshot.
    #[inline]
    pub fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Relaxed) & pi::WAITERS != 0
    }

    /// The uncontended lock: CAS `0 → tid`. Acquire pairs with the Release CAS
    /// of the previous user-space unlock.
    #[inline(always)]
    fn try_fast(&self, tid: u32) -> bool {
        self.word
            .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Waits in the kernel until the lock is ours: in one untimed
    /// `FUTEX_LOCK_PI` for an uninterruptible wait with no deadline, else in
    /// [`SIGNAL_SLICE`]s that check the task's signals in between.
    #[cold]
    fn lock_slow(&self, state: TaskState, deadline: Option<Instant>) -> Result<()> {
        lockdep::lock_contended(&self.dep_map);
        if state == TaskState::Uninterruptible && deadline.is_none() {
            return match sched::sleep_in_kernel(state, || pi::lock(&self.word, None)) {
                Ok(()) => Ok(()),
                Err(_) => Err(Error::Deadlock),
            };
        }
        loop {
            match state {
                TaskState::Interruptible if sched::fatal_signal_pending() => {
                    return Err(Error::Killed);
                }
                TaskState::Interruptible if sched::signal_pending() => {
                    return Err(Error::Interrupted);
                }
                TaskState::Killable if sched::fatal_signal_pending() => return Err(Error::Killed),
                _ => {}
            }
            let slice = Instant::now() + SIGNAL_SLICE;
            let until = deadline.map_or(slice, |d| d.min(slice));
            match sched::sleep_in_kernel(state, || pi::lock(&self.word, Some(until))) {
                Ok(()) => return Ok(()),
                Err(PiError::Deadlock) => return Err(Error::Deadlock),
                Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(Error::TimedOut);
                }
                Err(_) => {} // the slice ended: check signals, go on
            }
        }
    }

    /// Takes the lock, waiting in `state` until `deadline`.
    #[inline]
    fn acquire(&self, state: TaskState, deadline: Option<Instant>) -> Result<()> {
        if self.try_fast(current_tid()) {
            return Ok(());
        }
        self.lock_slow(state, deadline)
    }

    /// Releases the lock the caller owns: CAS `tid → 0` (Release, paired with
    /// the next lock's Acquire CAS), or `FUTEX_UNLOCK_PI` when the kernel has
    /// waiters queued (the CAS fails on the `WAITERS` bit).
    ///
    /// # Safety
    /// The calling thread owns the lock.
    #[inline]
    unsafe fn release(&self) {
        let tid = current_tid();
        if self
            .word
            .compare_exchange(tid, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.release_slow(tid);
        }
    }

    #[cold]
    fn release_slow(&self, tid: u32) {
        let w = self.word.load(Ordering::Relaxed);
        assert_eq!(
            w & pi::TID_MASK,
            tid,
            "ksync: rt_mutex unlocked by a thread that does not own it (owner {})",
            w & pi::TID_MASK
        );
        pi::unlock(&self.word);
    }
}

impl Default for RawRtMutex {
    #[track_caller]
    fn default() -> Self {
        RawRtMutex::new()
    }
}

impl fmt::Debug for RawRtMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRtMutex")
            .field("owner", &self.owner())
            .field("waiters", &self.has_waiters())
            .finish()
    }
}

// SAFETY: the word grants the lock to one thread at a time: the user-space CAS
// `0 → tid` succeeds for one thread, and the kernel sets the owner only while
// the word is free or hands it over from the unlocking owner under its own
// locks. Acquire on lock pairs with the Release CAS of a user-space unlock, and
// the kernel's hand-off orders the two owners through its locks (module docs).
// Exclusive only: `Concurrent` is `()`.
unsafe impl Backend for RawRtMutex {
    type GuardState = ();
    type Concurrent<T: ?Sized> = ();
    const NAME: &'static str = "rt_mutex";

    #[track_caller]
    fn new() -> Self {
        RawRtMutex::new()
    }

    #[inline(always)]
    fn dep_map(&self) -> Option<&LockdepMap> {
        Some(&self.dep_map)
    }

    /// # Panics
    /// If the kernel reports a deadlock (the caller already holds it, or the
    /// chain of owners leads back to the caller), which would hang for ever;
    /// lockdep, when enabled, reports recursion before this.
    #[inline(always)]
    fn lock(&self) {
        if let Err(e) = self.acquire(TaskState::Uninterruptible, None) {
            panic!("ksync: rt_mutex_lock would deadlock ({e}): recursive locking or a lock cycle");
        }
    }

    /// One CAS `0 → tid`; when the word says the owner died, `FUTEX_TRYLOCK_PI`,
    /// which takes such a lock over.
    #[inline(always)]
    fn try_lock(&self) -> bool {
        let tid = current_tid();
        if self.try_fast(tid) {
            return true;
        }
        self.word.load(Ordering::Relaxed) & pi::OWNER_DIED != 0 && pi::trylock(&self.word)
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        // SAFETY: the caller owns the lock (`Backend::unlock`).
        unsafe { self.release() }
    }

    #[inline(always)]
    fn is_locked(&self) -> bool {
        RawRtMutex::is_locked(self)
    }
}

/// A sleeping mutex with priority inheritance (`struct rt_mutex`), guarding a
/// `T`: the generic [`Lock`] over [`RawRtMutex`].
///
/// Uncontended, lock and unlock are one CAS each in user space; a contended
/// lock waits in the kernel, which lends the waiter's priority to the owner
/// (see the [module docs](self)). Not recursive. `Sync` for `T: Send`.
///
/// ```
/// use ksync::rtmutex::RtMutex;
/// static LOG: RtMutex<Vec<u32>> = RtMutex::new(Vec::new()); // DEFINE_RT_MUTEX
/// LOG.lock().push(1);                                       // rt_mutex_lock
/// assert!(LOG.try_lock().is_some());                        // rt_mutex_trylock
/// ```
#[doc(alias = "rt_mutex")]
#[doc(alias = "DEFINE_RT_MUTEX")]
#[doc(alias = "rt_mutex_lock")]
#[doc(alias = "rt_mutex_trylock")]
#[doc(alias = "rt_mutex_unlock")]
#[doc(alias = "pthread_mutex_t")]
#[doc(alias = "PTHREAD_PRIO_INHERIT")]
pub type RtMutex<T> = Lock<T, RawRtMutex>;

/// The proof that an [`RtMutex`] is held; unlocks on drop (`rt_mutex_unlock`).
///
/// `!Send`: the PI futex word names the owner's tid, and only the owner may
/// unlock (the kernel refuses anyone else).
///
/// ```compile_fail
/// fn must_be_send<T: Send>(_: T) {}
/// let m = ksync::rtmutex::RtMutex::new(0);
/// must_be_send(m.lock()); // error: the guard is not Send
/// ```
pub type RtMutexGuard<'a, T> = Guard<'a, T, RawRtMutex>;

impl<T> RtMutex<T> {
    /// A new unlocked rt_mutex holding `data` (`DEFINE_RT_MUTEX`,
    /// `rt_mutex_init`); `const`, for statics. Its lockdep class is the
    /// caller's location.
    #[doc(alias = "rt_mutex_init")]
    #[track_caller]
    pub const fn new(data: T) -> RtMutex<T> {
        Lock::from_raw(RawRtMutex::new(), data)
    }

    /// A new unlocked rt_mutex whose lockdep class is `key`, named `name`.
    #[track_caller]
    pub const fn with_class(data: T, name: &'static str, key: &'static LockClassKey) -> Self {
        Lock::from_raw(RawRtMutex::with_class(name, key), data)
    }
}

impl<T: ?Sized> RtMutex<T> {
    /// Locks, or returns [`Error::Interrupted`] (`-EINTR`) if a signal is sent
    /// to the task while it waits (`rt_mutex_lock_interruptible`); the signal
    /// is noticed within [`SIGNAL_SLICE`] (module docs).
    ///
    /// # Errors
    /// [`Error::Interrupted`], [`Error::Killed`] for SIGKILL, and
    /// [`Error::Deadlock`] (`-EDEADLK`) when the kernel finds that the wait
    /// would never end (the caller holds it, or an ABBA cycle of rt_mutexes).
    #[doc(alias = "rt_mutex_lock_interruptible")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_interruptible(&self) -> Result<RtMutexGuard<'_, T>> {
        self.lock_with(|m| m.acquire(TaskState::Interruptible, None))
    }

    /// Locks, or gives up with [`Error::TimedOut`] (`-ETIME`) once `timeout`
    /// has passed (`rt_mutex_timed_lock`). Uninterruptible.
    ///
    /// # Errors
    /// [`Error::TimedOut`], [`Error::Deadlock`].
    #[doc(alias = "rt_mutex_timed_lock")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<RtMutexGuard<'_, T>> {
        let deadline = Instant::now().checked_add(timeout);
        self.lock_with(|m| m.acquire(TaskState::Uninterruptible, deadline))
    }

    /// Locks, reporting a deadlock the kernel finds as [`Error::Deadlock`]
    /// instead of panicking as [`lock`](Lock::lock) does.
    ///
    /// # Errors
    /// [`Error::Deadlock`].
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_checked(&self) -> Result<RtMutexGuard<'_, T>> {
        self.lock_with(|m| m.acquire(TaskState::Uninterruptible, None))
    }

    /// The raw rt_mutex, for [`RawRtMutex::owner`] and the like.
    pub fn raw(&self) -> &RawRtMutex {
        &self.raw
    }
}

/// A condition variable for [`RtMutex`] that keeps priority inheritance
/// across the wait (a `pthread_cond_t` waited on with a PI mutex).
///
/// A waiter releases the mutex and sleeps in `FUTEX_WAIT_REQUEUE_PI`; a
/// notifier's `FUTEX_CMP_REQUEUE_PI` moves waiters from the condition straight
/// onto the mutex, in the kernel, so from that moment they wait in its PI chain
/// (boosting its owner) and wake as its owner: no thundering herd, no window
/// without inheritance.
///
/// A condition variable serves one mutex: the first wait binds it, and waiting
/// with another mutex panics (the kernel requires every requeue target of one
/// word to be the same).
///
/// ```
/// use ksync::rtmutex::{RtCondVar, RtMutex};
/// let (m, cv) = (RtMutex::new(false), RtCondVar::new());
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         *m.lock() = true;
///         cv.notify_one();
///     });
///     let mut g = m.lock();
///     while !*g {
///         cv.wait(&mut g);
///     }
/// });
/// ```
///
/// # Invariants
/// `mutex` is null or the word of the first [`RtMutex`] waited with, and
/// stays that once set.
#[doc(alias = "pthread_cond_t")]
pub struct RtCondVar {
    /// The condition word: a sequence number that every notify bumps, so a
    /// waiter that read it before releasing the mutex cannot miss a notify.
    seq: AtomicU32,
    /// How many waiters are between reading `seq` and returning: a notify with
    /// none makes no system call.
    waiters: AtomicU32,
    /// The PI word of the mutex this condition variable serves (Invariants).
    mutex: AtomicPtr<AtomicU32>,
}

impl RtCondVar {
    /// A condition variable with no waiter and no mutex bound yet.
    pub const fn new() -> RtCondVar {
        RtCondVar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            mutex: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    fn bind(&self, word: &AtomicU32) {
        let p = word as *const AtomicU32 as *mut AtomicU32;
        // INVARIANT: set once, from null; never changed after.
        match self.mutex.compare_exchange(
            core::ptr::null_mut(),
            p,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => {}
            Err(q) if q == p => {}
            Err(_) => panic!("ksync: an RtCondVar waited on with two different RtMutexes"),
        }
    }

    /// Releases the mutex, sleeps until notified, and returns holding it again
    /// (`pthread_cond_wait`). Wake-ups may be spurious: wait in a loop.
    #[inline]
    pub fn wait<T: ?Sized>(&self, guard: &mut RtMutexGuard<'_, T>) {
        let r = self.wait_in(guard, TaskState::Uninterruptible, None);
        debug_assert!(r.is_ok());
    }

    /// [`wait`](Self::wait) that a signal ends with [`Error::Interrupted`]
    /// (noticed within [`SIGNAL_SLICE`]); the mutex is held again either way.
    ///
    /// # Errors
    /// [`Error::Interrupted`], [`Error::Killed`].
    pub fn wait_interruptible<T: ?Sized>(&self, guard: &mut RtMutexGuard<'_, T>) -> Result<()> {
        self.wait_in(guard, TaskState::Interruptible, None)
    }

    /// [`wait`](Self::wait) for at most `timeout`; the mutex is held again
    /// either way (`pthread_cond_timedwait`).
    ///
    /// # Errors
    /// [`Error::TimedOut`].
    pub fn wait_timeout<T: ?Sized>(
        &self,
        guard: &mut RtMutexGuard<'_, T>,
        timeout: Duration,
    ) -> Result<()> {
        self.wait_in(
            guard,
            TaskState::Uninterruptible,
            Instant::now().checked_add(timeout),
        )
    }

    fn wait_in<T: ?Sized>(
        &self,
        guard: &mut RtMutexGuard<'_, T>,
        state: TaskState,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let lock = guard.lock_ref();
        let raw: &RawRtMutex = &lock.raw;
        self.bind(&raw.word);
        // SeqCst, paired with the notifier's SeqCst `seq` bump and `waiters`
        // load (store-buffering): either it sees this waiter, or this waiter's
        // `seq` load below sees its bump and does not sleep.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let seq = self.seq.load(Ordering::SeqCst);

        /// Retakes the lock (uninterruptibly, through the acquire path) if the
        /// kernel did not hand it to us, also on unwind, and leaves `waiters`.
        struct Relock<'c> {
            cv: &'c RtCondVar,
            raw: &'c RawRtMutex,
            owned: bool,
        }
        impl Drop for Relock<'_> {
            fn drop(&mut self) {
                self.cv.waiters.fetch_sub(1, Ordering::Relaxed);
                if let Some(map) = self.raw.dep_map() {
                    lockdep::acquire(map, AcquireKind::Exclusive, false, 0);
                }
                if !self.owned {
                    Backend::lock(self.raw);
                }
            }
        }

        // The release path of the generic lock, by hand: the guard stays
        // borrowed and `Relock` restores what it proves before it is used again.
        if let Some(map) = raw.dep_map() {
            lockdep::release(map);
        }
        // SAFETY: the guard proves this thread owns the lock; `Relock` retakes
        // it (or the kernel hands it back) before the guard can be used again.
        unsafe { raw.release() };
        let mut relock = Relock {
            cv: self,
            raw,
            owned: false,
        };
        let mut result = Ok(());
        loop {
            let until = match (state, deadline) {
                (TaskState::Uninterruptible, None) => None,
                (_, d) => {
                    let slice = Instant::now() + SIGNAL_SLICE;
                    Some(d.map_or(slice, |d| d.min(slice)))
                }
            };
            let r = sched::sleep_in_kernel(state, || {
                pi::wait_requeue(&self.seq, seq, &raw.word, until)
            });
            match r {
                Ok(()) => {
                    relock.owned = true;
                    break;
                }
                // The word moved on (a notify), or a signal after the requeue:
                // awake without the lock; `Relock` takes it.
                Err(PiError::Again) | Err(PiError::Deadlock) => break,
                Err(PiError::TimedOut) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        result = Err(Error::TimedOut);
                        break;
                    }
                    if state == TaskState::Interruptible && sched::signal_pending() {
                        result = Err(if sched::fatal_signal_pending() {
                            Error::Killed
                        } else {
                            Error::Interrupted
                        });
                        break;
                    }
                    // The slice ended: wait again on the same `seq`, so a
                    // notify that came meanwhile ends the wait at once.
                }
            }
        }
        drop(relock);
        result
    }

    /// Wakes one waiter, if any (`pthread_cond_signal`): the kernel gives it
    /// the mutex if free, else queues it on the mutex in priority order.
    /// Returns whether there was a waiter to notify.
    pub fn notify_one(&self) -> bool {
        self.notify(0)
    }

    /// Wakes every waiter (`pthread_cond_broadcast`): one gets the mutex (or
    /// queues on it), the rest are requeued onto it and wake one by one as
    /// owners. Returns whether there were waiters.
    pub fn notify_all(&self) -> bool {
        self.notify(u32::MAX)
    }

    fn notify(&self, nr_requeue: u32) -> bool {
        // SeqCst: see `wait_in` (store-buffering with the waiter's
        // `waiters` increment and `seq` load).
        let mut seq = self.seq.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let word = self.mutex.load(Ordering::SeqCst);
        if word.is_null() {
            return false;
        }
        loop {
            // SAFETY: `word` is the word of the mutex every waiter names
            // (`bind`, Invariants); a waiter in the kernel keeps its guard, so
            // that mutex is alive while the kernel may touch it.
            match unsafe { pi::cmp_requeue(&self.seq, word, nr_requeue, seq) } {
                Ok(n) => return n > 0,
                // Another notify bumped the word between ours and the call:
                // requeue against the current value.
                Err(PiError::Again) => seq = self.seq.load(Ordering::SeqCst),
                Err(e) => panic!("ksync: FUTEX_CMP_REQUEUE_PI failed: {e:?}"),
            }
        }
    }
}

impl Default for RtCondVar {
    fn default() -> Self {
        RtCondVar::new()
    }
}

impl fmt::Debug for RtCondVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtCondVar")
            .field("waiters", &self.waiters.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::{Signal, current};
    use std::sync::mpsc;

    fn wait_until(mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < end, "condition not reached in 30 s");
            std::thread::yield_now();
        }
    }

    #[test]
    fn uncontended_lock_is_the_owner_tid_in_user_space() {
        let m = RtMutex::new(1);
        let g = m.lock();
        assert_eq!(m.raw().owner(), Some(crate::arch::gettid()));
        assert!(!m.raw().has_waiters());
        assert!(m.try_lock().is_none());
        drop(g);
        assert!(!m.is_locked());
        assert_eq!(m.raw().word.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn contended_lock_goes_through_the_kernel_and_is_handed_over() {
        let m = RtMutex::new(0u64);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            let g = m.lock();
            s.spawn(|| {
                tx.send(current()).unwrap();
                *m.lock() += 1;
            });
            let waiter = rx.recv().unwrap();
            wait_until(|| waiter.state() == TaskState::Uninterruptible && m.raw().has_waiters());
            drop(g); // FUTEX_UNLOCK_PI: the waiter owns it now
        });
        assert_eq!(*m.lock(), 1);
        assert_eq!(m.raw().word.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn many_threads_exclude_each_other() {
        let m = RtMutex::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        let mut g = m.lock();
                        let v = *g;
                        std::hint::black_box(&mut *g);
                        *g = v + 1;
                    }
                });
            }
        });
        assert_eq!(*m.lock(), 8000);
    }

    #[test]
    fn self_deadlock_is_reported_by_the_kernel() {
        let m = RtMutex::new(());
        let _g = m.lock();
        // The lockdep build reports the recursion first (and may panic): only
        // the plain build asks the kernel.
        if !cfg!(feature = "lockdep") {
            assert_eq!(m.lock_checked().err(), Some(Error::Deadlock));
            assert_eq!(m.lock_interruptible().err(), Some(Error::Deadlock));
        }
    }

    #[test]
    fn timed_lock_times_out_and_then_succeeds() {
        let m = RtMutex::new(());
        std::thread::scope(|s| {
            let g = m.lock();
            s.spawn(|| {
                let t = Instant::now();
                assert_eq!(
                    m.lock_timeout(Duration::from_millis(10)).err(),
                    Some(Error::TimedOut)
                );
                assert!(t.elapsed() >= Duration::from_millis(10));
            })
            .join()
            .unwrap();
            drop(g);
            s.spawn(|| assert!(m.lock_timeout(Duration::from_secs(30)).is_ok()));
        });
    }

    #[test]
    fn a_signal_ends_an_interruptible_wait() {
        let m = RtMutex::new(());
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            let g = m.lock();
            let t = s.spawn(|| {
                tx.send(current()).unwrap();
                let r = m.lock_interruptible().map(|_| ());
                crate::sched::flush_signals();
                r
            });
            let waiter = rx.recv().unwrap();
            wait_until(|| waiter.state() == TaskState::Interruptible);
            waiter.send_signal(Signal::SIGUSR1);
            assert_eq!(t.join().unwrap(), Err(Error::Interrupted));
            drop(g);
        });
        assert!(!m.is_locked());
    }

    #[test]
    fn condvar_wakes_one_and_all_with_the_mutex_held() {
        let m = RtMutex::new(0u32);
        let cv = RtCondVar::new();
        assert!(!cv.notify_one()); // nobody waits: no system call
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    let mut g = m.lock();
                    *g += 1;
                    while *g < 100 {
                        cv.wait(&mut g);
                    }
                    // Woken as the owner: the mutex is ours.
                    assert_eq!(m.raw().owner(), Some(crate::arch::gettid()));
                });
            }
            wait_until(|| *m.lock() == 3 && cv.waiters.load(Ordering::SeqCst) == 3);
            *m.lock() = 100;
            assert!(cv.notify_all());
        });
        assert!(!m.is_locked());
    }

    #[test]
    fn condvar_wait_timeout_and_interruptible_return_holding_the_mutex() {
        let m = RtMutex::new(());
        let cv = RtCondVar::new();
        let mut g = m.lock();
        assert_eq!(
            cv.wait_timeout(&mut g, Duration::from_millis(5)),
            Err(Error::TimedOut)
        );
        assert_eq!(m.raw().owner(), Some(crate::arch::gettid()));
        current().send_signal(Signal::SIGUSR1);
        assert_eq!(cv.wait_interruptible(&mut g), Err(Error::Interrupted));
        crate::sched::flush_signals();
        assert_eq!(m.raw().owner(), Some(crate::arch::gettid()));
        drop(g);
        assert!(!m.is_locked());
    }

    #[test]
    #[should_panic(expected = "two different RtMutexes")]
    fn condvar_serves_one_mutex() {
        let (a, b) = (RtMutex::new(()), RtMutex::new(()));
        let cv = RtCondVar::new();
        let mut g = a.lock();
        let _ = cv.wait_timeout(&mut g, Duration::from_millis(1));
        drop(g);
        let mut g = b.lock();
        cv.wait(&mut g);
    }
}
