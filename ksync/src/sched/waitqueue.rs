//! Wait queues (`wait_queue_head_t`): tasks sleep until a condition holds, and
//! whoever makes it hold wakes them.
//!
//! [`WaitQueue`] is the public type; its sleepers queue on the wait engine,
//! [`waitlist`](super::waitlist) (entries on the sleepers' stacks, in a list
//! under an irq-safe internal lock), which every sleeping primitive shares.
//!
//! # Implementation details
//!
//! A waker detaches entries under the list's lock and marks and wakes them after
//! releasing it; a waiter that leaves early takes its entry off the list, or
//! waits for the mark if a waker detached it first (the engine's module docs).
//!
//! ## No lost wake-ups on the lock-free empty check
//!
//! [`WaitQueue::wake_up`] with nobody waiting costs one fence and one load: it
//! reads the `active` flag (set under the lock while the list is non-empty)
//! without taking the lock. This is the store-buffering pattern of the kernel's
//! `wq_has_sleeper()`:
//!
//! ```text
//!   waiter                               waker
//!   link entry; active = true (lock)     cond = true
//!   fence(SeqCst)                   (A)  fence(SeqCst)                  (B)
//!   if cond { leave }                    if !active { return }
//!   sleep                                lock; detach; mark; wake_up
//! ```
//!
//! The two SeqCst fences are totally ordered. If (A) comes first, the waker's load
//! after (B) sees `active == true` and takes the lock, where it finds the entry
//! (the store was made under the lock the waker now takes). If (B) comes first,
//! the waiter's load after (A) sees `cond == true` and it never sleeps. A wake-up
//! between the waiter's check and its sleep leaves a token on its task's futex
//! word, which makes [`sleep`] return at once: the token plays the role of the
//! kernel's `set_current_state()` before the check. The fence pair rather than
//! the membarrier pair: the waiter side runs on every wait, and membarrier's
//! IPIs in a VM would cost more than the fence saves on the waker side.

use super::sleep::sleep;
use super::task::TaskState;
use super::waitlist::{WaitList, Waiter};
use crate::error::{Error, Result};
use crate::loom::sync::atomic::{Ordering, fence};
use core::marker::{PhantomData, PhantomPinned};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The wait queue.

/// A wait queue (`wait_queue_head_t`): tasks sleep in it until a condition
/// holds. Entries live on the sleepers' stacks; nothing allocates.
///
/// Non-exclusive waiters are all woken by every [`wake_up`](Self::wake_up);
/// exclusive waiters (`*_exclusive` methods, the kernel's `WQ_FLAG_EXCLUSIVE`)
/// queue behind them in FIFO order and `wake_up` wakes only one of them, which
/// avoids the thundering herd.
///
/// ```
/// use ksync::sched::WaitQueue;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// static WQ: WaitQueue = WaitQueue::new();
/// static READY: AtomicBool = AtomicBool::new(false);
///
/// let t = std::thread::spawn(|| WQ.wait_event(|| READY.load(Ordering::Acquire)));
/// READY.store(true, Ordering::Release);
/// WQ.wake_up();
/// t.join().unwrap();
/// ```
#[doc(alias = "wait_queue_head_t")]
#[doc(alias = "wait_queue_head")]
#[doc(alias = "DECLARE_WAIT_QUEUE_HEAD")]
pub struct WaitQueue {
    list: WaitList,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WaitQueue")
            .field("active", &self.list.is_active())
            .finish()
    }
}

impl WaitQueue {
    /// Empties the queue, forgetting its entries: in the child of a fork
    /// (see [`WaitList::reinit_after_fork`]).
    ///
    /// # Safety
    /// As [`WaitList::reinit_after_fork`].
    #[cfg(not(loom))]
    pub(crate) unsafe fn reinit_after_fork(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.list.reinit_after_fork() };
    }

    /// An empty wait queue (`init_waitqueue_head`, `DECLARE_WAIT_QUEUE_HEAD`).
    #[doc(alias = "init_waitqueue_head")]
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        WaitQueue {
            list: WaitList::new(),
        }
    }

    /// An empty wait queue (`init_waitqueue_head`).
    #[cfg(loom)]
    pub fn new() -> Self {
        WaitQueue {
            list: WaitList::new(),
        }
    }

    /// Whether any task waits (`waitqueue_active`, `wq_has_sleeper`). Includes
    /// the full barrier of `wq_has_sleeper`: a condition stored before this call is
    /// seen by every waiter that this call does not see.
    #[doc(alias = "waitqueue_active")]
    #[doc(alias = "wq_has_sleeper")]
    #[inline]
    pub fn has_sleeper(&self) -> bool {
        // SeqCst fence (B): pairs with fence (A) in `prepare` (module docs).
        fence(Ordering::SeqCst);
        self.list.is_active()
    }

    /// Sleeps uninterruptibly until `cond()` returns true (`wait_event`).
    ///
    /// `cond` runs on the caller's thread, before each sleep and after each
    /// wake-up; it must not sleep itself.
    pub fn wait_event(&self, cond: impl FnMut() -> bool) {
        let r = self.wait_common(false, TaskState::Uninterruptible, None, cond);
        debug_assert!(r.is_ok());
    }

    /// [`wait_event`](Self::wait_event) as an exclusive waiter (`wait_event_exclusive`):
    /// a [`wake_up`](Self::wake_up) wakes only one exclusive waiter.
    pub fn wait_event_exclusive(&self, cond: impl FnMut() -> bool) {
        let r = self.wait_common(true, TaskState::Uninterruptible, None, cond);
        debug_assert!(r.is_ok());
    }

    /// Sleeps until `cond()` holds or a signal arrives (`wait_event_interruptible`).
    ///
    /// # Errors
    /// [`Error::Interrupted`] (`-ERESTARTSYS`/`-EINTR`) if a signal is pending and
    /// `cond()` is still false; [`Error::Killed`] for SIGKILL. The queue is left as
    /// if the call never happened; an exclusive waiter that was woken passes the
    /// wake-up on to the next one.
    pub fn wait_event_interruptible(&self, cond: impl FnMut() -> bool) -> Result<()> {
        self.wait_common(false, TaskState::Interruptible, None, cond)
    }

    /// [`wait_event_interruptible`](Self::wait_event_interruptible) as an exclusive
    /// waiter (`wait_event_interruptible_exclusive`).
    ///
    /// # Errors
    /// As `wait_event_interruptible`.
    pub fn wait_event_interruptible_exclusive(&self, cond: impl FnMut() -> bool) -> Result<()> {
        self.wait_common(true, TaskState::Interruptible, None, cond)
    }

    /// Sleeps until `cond()` holds or SIGKILL arrives (`wait_event_killable`).
    ///
    /// # Errors
    /// [`Error::Killed`] if SIGKILL is pending and `cond()` is still false.
    pub fn wait_event_killable(&self, cond: impl FnMut() -> bool) -> Result<()> {
        self.wait_common(false, TaskState::Killable, None, cond)
    }

    /// Sleeps uninterruptibly until `cond()` holds or `timeout` passes
    /// (`wait_event_timeout`).
    ///
    /// Returns the time left as the kernel does: `Some(left)` if `cond()` held
    /// (`left` may be zero if it became true just as the time ran out — the
    /// kernel's `1`), `None` on timeout with `cond()` false (the kernel's `0`).
    ///
    /// ```
    /// use ksync::sched::WaitQueue;
    /// use std::time::Duration;
    /// let wq = WaitQueue::new();
    /// assert_eq!(wq.wait_event_timeout(|| false, Duration::from_millis(1)), None);
    /// assert!(wq.wait_event_timeout(|| true, Duration::from_secs(1)).is_some());
    /// ```
    pub fn wait_event_timeout(
        &self,
        cond: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Option<Duration> {
        let deadline = Instant::now().checked_add(timeout);
        match self.wait_common(false, TaskState::Uninterruptible, deadline, cond) {
            Ok(()) => Some(left(deadline)),
            Err(_) => None,
        }
    }

    /// Sleeps until `cond()` holds, a signal arrives or `timeout` passes
    /// (`wait_event_interruptible_timeout`).
    ///
    /// Returns `Ok(Some(left))` if `cond()` held, `Ok(None)` on timeout (the
    /// kernel's `0`).
    ///
    /// # Errors
    /// [`Error::Interrupted`] / [`Error::Killed`] as
    /// [`wait_event_interruptible`](Self::wait_event_interruptible).
    pub fn wait_event_interruptible_timeout(
        &self,
        cond: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<Option<Duration>> {
        let deadline = Instant::now().checked_add(timeout);
        match self.wait_common(false, TaskState::Interruptible, deadline, cond) {
            Ok(()) => Ok(Some(left(deadline))),
            Err(Error::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sleeps until `cond()` holds, SIGKILL arrives or `timeout` passes
    /// (`wait_event_killable_timeout`); results as
    /// [`wait_event_interruptible_timeout`](Self::wait_event_interruptible_timeout).
    ///
    /// # Errors
    /// [`Error::Killed`] if SIGKILL is pending.
    pub fn wait_event_killable_timeout(
        &self,
        cond: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<Option<Duration>> {
        let deadline = Instant::now().checked_add(timeout);
        match self.wait_common(false, TaskState::Killable, deadline, cond) {
            Ok(()) => Ok(Some(left(deadline))),
            Err(Error::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The general form behind every `wait_event*` (`___wait_event`): wait as
    /// an `exclusive` waiter or not, sleeping in `state`, until `cond()` holds or
    /// `deadline` passes.
    ///
    /// # Errors
    /// [`Error::Interrupted`], [`Error::Killed`] (per `state`) or
    /// [`Error::TimedOut`], each only with `cond()` false.
    #[doc(alias = "___wait_event")]
    pub fn wait_event_state(
        &self,
        exclusive: bool,
        state: TaskState,
        deadline: Option<Instant>,
        cond: impl FnMut() -> bool,
    ) -> Result<()> {
        self.wait_common(exclusive, state, deadline, cond)
    }

    fn wait_common(
        &self,
        exclusive: bool,
        state: TaskState,
        deadline: Option<Instant>,
        mut cond: impl FnMut() -> bool,
    ) -> Result<()> {
        crate::lockdep::might_sleep();
        if cond() {
            return Ok(());
        }
        self.wait_slow(exclusive, state, deadline, &mut cond)
    }

    #[cold]
    fn wait_slow(
        &self,
        exclusive: bool,
        state: TaskState,
        deadline: Option<Instant>,
        cond: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        // Poll briefly first: a condition that comes true within a few µs costs
        // neither side a futex call.
        if super::poll_before_sleep(deadline, &mut *cond) {
            return Ok(());
        }
        let state = if state == TaskState::Running {
            TaskState::Uninterruptible
        } else {
            state
        };
        let entry = Waiter::new(exclusive, state);
        let w = &entry;
        // SAFETY: `entry` is fresh and stays on this frame, which returns only after
        // it is unlinked or woken (every exit goes through `leave`, or sees the mark).
        unsafe { self.prepare(w) };
        loop {
            if cond() {
                self.leave(w);
                return Ok(());
            }
            match sleep(state, deadline) {
                Ok(()) if w.is_woken() => {
                    // Woken: off the list, and the waker's condition store is
                    // visible (Acquire on the mark). Check before re-queueing.
                    if cond() {
                        return Ok(());
                    }
                    // SAFETY: as above; woken, so unlinked and the waker is done.
                    unsafe { self.prepare(w) };
                }
                // Spurious: still linked, or a waker's mark and wake-up are on
                // their way (the entry must not be re-linked before the mark).
                Ok(()) => {}
                Err(e) => {
                    self.leave(w);
                    // As the kernel: a condition that holds wins over the signal.
                    return if cond() { Ok(()) } else { Err(e) };
                }
            }
        }
    }

    /// Takes `w` off the list as its owner stops waiting (`finish_wait`). An
    /// exclusive waiter that a wake-up detached since its last condition check
    /// cannot tell whether that wake-up is the one it is answering (its condition
    /// may have been made true by an earlier event), so it passes one on to the
    /// next exclusive waiter: at worst a spurious wake-up, never a lost one.
    fn leave(&self, w: &Waiter) {
        if self.finish(w) && w.exclusive {
            self.wake_common(1, false);
        }
    }

    /// Links `w` and publishes it (`prepare_to_wait`).
    ///
    /// # Safety
    /// As [`Locked::link`](super::waitlist::Locked::link).
    unsafe fn prepare(&self, w: &Waiter) {
        {
            let l = self.list.lock();
            // SAFETY: forwarded from the caller.
            unsafe { l.link(w, !w.exclusive) };
        }
        // SeqCst fence (A): pairs with fence (B) in `wake_common`/`has_sleeper`
        // (module docs): our `active` store comes before our condition check.
        fence(Ordering::SeqCst);
    }

    /// Unlinks `w` if still linked (`finish_wait`); returns whether it was woken.
    fn finish(&self, w: &Waiter) -> bool {
        self.list.leave(w, |_| {})
    }

    #[inline]
    fn wake_common(&self, nr_exclusive: usize, interruptible_only: bool) -> usize {
        if !self.has_sleeper() {
            return 0;
        }
        self.wake_slow(nr_exclusive, interruptible_only)
    }

    #[cold]
    fn wake_slow(&self, nr_exclusive: usize, interruptible_only: bool) -> usize {
        let d = self.list.lock().detach(nr_exclusive, interruptible_only);
        d.wake()
    }

    /// Wakes every non-exclusive waiter and one exclusive waiter (`wake_up`).
    /// Returns how many tasks were woken. With nobody waiting this is a fence
    /// and a load: no lock.
    #[inline]
    pub fn wake_up(&self) -> usize {
        self.wake_common(1, false)
    }

    /// Wakes every non-exclusive waiter and up to `nr` exclusive ones
    /// (`wake_up_nr`; `nr == 0` wakes all).
    #[inline]
    pub fn wake_up_nr(&self, nr: usize) -> usize {
        self.wake_common(nr, false)
    }

    /// Wakes every waiter, exclusive or not (`wake_up_all`).
    #[inline]
    pub fn wake_up_all(&self) -> usize {
        self.wake_common(0, false)
    }

    /// As [`wake_up`](Self::wake_up), but wakes only waiters in an interruptible
    /// sleep (`wake_up_interruptible`); uninterruptible and killable ones stay.
    #[inline]
    pub fn wake_up_interruptible(&self) -> usize {
        self.wake_common(1, true)
    }

    /// Wakes every interruptible waiter (`wake_up_interruptible_all`).
    #[inline]
    pub fn wake_up_interruptible_all(&self) -> usize {
        self.wake_common(0, true)
    }

    /// As [`wake_up_interruptible`](Self::wake_up_interruptible) with up to `nr`
    /// exclusive waiters (`wake_up_interruptible_nr`).
    #[inline]
    pub fn wake_up_interruptible_nr(&self, nr: usize) -> usize {
        self.wake_common(nr, true)
    }
}

fn left(deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(d) => d.saturating_duration_since(Instant::now()),
        None => Duration::MAX,
    }
}

/// Sleeps on a [`WaitQueue`] until a condition holds (`wait_event(wq, cond)`):
/// `wait_event!(wq, cond)` is `wq.wait_event(|| cond)`; the `interruptible`,
/// `killable` and `timeout` forms forward to the methods of those names.
///
/// ```
/// use ksync::sched::WaitQueue;
/// use ksync::wait_event;
/// use std::time::Duration;
/// let wq = WaitQueue::new();
/// let x = 1;
/// wait_event!(wq, x == 1);
/// assert_eq!(wait_event!(interruptible wq, x == 1), Ok(()));
/// assert_eq!(wait_event!(timeout wq, x == 2, Duration::from_millis(1)), None);
/// ```
#[macro_export]
macro_rules! wait_event {
    (interruptible $wq:expr, $cond:expr) => {
        $wq.wait_event_interruptible(|| $cond)
    };
    (killable $wq:expr, $cond:expr) => {
        $wq.wait_event_killable(|| $cond)
    };
    (timeout $wq:expr, $cond:expr, $timeout:expr) => {
        $wq.wait_event_timeout(|| $cond, $timeout)
    };
    (interruptible_timeout $wq:expr, $cond:expr, $timeout:expr) => {
        $wq.wait_event_interruptible_timeout(|| $cond, $timeout)
    };
    ($wq:expr, $cond:expr) => {
        $wq.wait_event(|| $cond)
    };
}

/// Marker making the raw-entry API below `!Send`.
type NotSend = PhantomData<*mut ()>;

/// A waiter entry for open-coded waits (`DEFINE_WAIT`, `struct wait_queue_entry`):
/// `prepare_to_wait`, check, [`sleep`], [`finish_wait`](Self::finish_wait), as
/// in the kernel. The entry is bound to one queue and must stay in place while
/// queued, so it is used pinned: `core::pin::pin!(WaitQueueEntry::new(&wq))`.
/// Dropping it finishes the wait. It is `!Send`: it belongs to the task that made it.
///
/// As in the kernel, [`finish_wait`](Self::finish_wait) only reports whether the
/// entry was woken: an exclusive waiter that gives up after being woken should
/// pass the wake-up on (`wq.wake_up()`); the `wait_event*` methods do that for you.
///
/// ```
/// use ksync::sched::{self, TaskState, WaitQueue, WaitQueueEntry};
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// static WQ: WaitQueue = WaitQueue::new();
/// static FLAG: AtomicBool = AtomicBool::new(false);
/// let t = std::thread::spawn(|| {
///     let e = core::pin::pin!(WaitQueueEntry::new(&WQ));
///     loop {
///         e.as_ref().prepare_to_wait(TaskState::Uninterruptible);
///         if FLAG.load(Ordering::Acquire) {
///             break;
///         }
///         let _ = sched::sleep(TaskState::Uninterruptible, None);
///     }
///     e.as_ref().finish_wait();
/// });
/// FLAG.store(true, Ordering::Release);
/// WQ.wake_up();
/// t.join().unwrap();
/// ```
///
/// ```compile_fail
/// use ksync::sched::{WaitQueue, WaitQueueEntry};
/// static WQ: WaitQueue = WaitQueue::new();
/// let e = WaitQueueEntry::new(&WQ);
/// std::thread::spawn(move || drop(e)); // !Send
/// ```
#[doc(alias = "wait_queue_entry")]
#[doc(alias = "DEFINE_WAIT")]
#[doc(alias = "init_wait")]
pub struct WaitQueueEntry<'a> {
    wq: &'a WaitQueue,
    /// Created on the first `prepare`, with the state and exclusivity given there.
    w: core::cell::Cell<Option<Waiter>>,
    _not_send: NotSend,
    _pin: PhantomPinned,
}

impl<'a> WaitQueueEntry<'a> {
    /// An entry for the current task on `wq`, not yet queued.
    pub fn new(wq: &'a WaitQueue) -> Self {
        WaitQueueEntry {
            wq,
            w: core::cell::Cell::new(None),
            _not_send: PhantomData,
            _pin: PhantomPinned,
        }
    }

    fn waiter(self: core::pin::Pin<&Self>, exclusive: bool, state: TaskState) -> &Waiter {
        let reuse =
            matches!(self.current(), Some(w) if w.exclusive == exclusive && w.state == state);
        if !reuse {
            // Replacing an entry is allowed only while it is off the queue.
            self.finish_wait();
            // SAFETY: the old entry is off the queue and no waker holds it (finish_wait
            // waited for any pending mark); no reference into the slot is alive (the
            // borrows from `current` ended) and the entry is !Sync, so no other thread
            // sees it. Assigning drops the old entry in place, as pinning requires.
            unsafe { *self.w.as_ptr() = Some(Waiter::new(exclusive, state)) };
        }
        self.get_ref().current().expect("set above")
    }

    fn current(&self) -> Option<&Waiter> {
        // SAFETY: shared read of the slot; only `waiter` writes it, never while a
        // reference from here is alive (both are on this thread, not reentrant).
        unsafe { (*self.w.as_ptr()).as_ref() }
    }

    fn queue(self: core::pin::Pin<&Self>, exclusive: bool, state: TaskState) {
        let wq = self.wq;
        let w = self.waiter(exclusive, state);
        let mut l = wq.list.lock();
        if !l.is_linked(w) {
            if l.is_detached(w) && !w.is_woken() {
                // A waker is about to mark it: let it finish before re-queueing.
                drop(l);
                w.wait_for_mark();
                l = wq.list.lock();
            }
            // SAFETY: unlinked and not detached-unmarked; linked only into `wq`'s
            // list (the entry is bound to `wq`); pinned, and its Drop finishes the
            // wait, so it is unlinked (or woken) before its memory goes away.
            unsafe { l.link(w, !exclusive) };
        }
        drop(l);
        // SeqCst fence (A), as in `WaitQueue::prepare`.
        fence(Ordering::SeqCst);
    }

    /// Queues the entry as a non-exclusive waiter unless it is queued
    /// (`prepare_to_wait`; with [`add_wait_queue`](Self::add_wait_queue)'s
    /// placement, at the head). The caller then checks its condition and calls
    /// [`sched::sleep`](super::sleep) with the same `state`.
    pub fn prepare_to_wait(self: core::pin::Pin<&Self>, state: TaskState) {
        self.queue(false, state);
    }

    /// Queues the entry as an exclusive waiter, at the tail
    /// (`prepare_to_wait_exclusive`).
    pub fn prepare_to_wait_exclusive(self: core::pin::Pin<&Self>, state: TaskState) {
        self.queue(true, state);
    }

    /// Queues a non-exclusive uninterruptible waiter (`add_wait_queue`).
    pub fn add_wait_queue(self: core::pin::Pin<&Self>) {
        self.queue(false, TaskState::Uninterruptible);
    }

    /// Queues an exclusive uninterruptible waiter (`add_wait_queue_exclusive`).
    pub fn add_wait_queue_exclusive(self: core::pin::Pin<&Self>) {
        self.queue(true, TaskState::Uninterruptible);
    }

    /// Whether a wake-up took the entry off the queue since it was queued.
    pub fn is_woken(&self) -> bool {
        self.current().is_some_and(Waiter::is_woken)
    }

    /// Takes the entry off the queue if it is still on it (`finish_wait`,
    /// `remove_wait_queue`); returns whether it was woken.
    #[doc(alias = "remove_wait_queue")]
    pub fn finish_wait(self: core::pin::Pin<&Self>) -> bool {
        match self.current() {
            None => false,
            Some(w) => self.wq.list.leave(w, |_| {}),
        }
    }
}

impl Drop for WaitQueueEntry<'_> {
    fn drop(&mut self) {
        // SAFETY: `self` is pinned for its whole life (the API takes Pin<&Self>)
        // and is being dropped in place.
        let this = unsafe { core::pin::Pin::new_unchecked(&*self) };
        this.finish_wait();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sched::{Signal, current};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as O};
    use std::sync::mpsc;

    fn wait_until_sleeping(t: &crate::sched::Task, st: TaskState) {
        while t.state() != st {
            std::thread::yield_now();
        }
    }

    #[test]
    fn wake_up_with_no_waiters_wakes_nobody() {
        let wq = WaitQueue::new();
        assert_eq!(wq.wake_up(), 0);
        assert_eq!(wq.wake_up_all(), 0);
        assert!(!wq.has_sleeper());
    }

    #[test]
    fn exclusive_and_non_exclusive_wake_counts() {
        static WQ: WaitQueue = WaitQueue::new();
        static GO: AtomicUsize = AtomicUsize::new(0);
        static DONE: AtomicUsize = AtomicUsize::new(0);
        let mut tasks = Vec::new();
        let mut hs = Vec::new();
        for i in 0..6 {
            let (tx, rx) = mpsc::channel();
            hs.push(std::thread::spawn(move || {
                tx.send(current()).unwrap();
                // Each waiter waits for its own ticket: the condition stays false
                // for the others, so a wake-up count is exactly who got woken.
                let cond = || GO.load(O::Acquire) > 0;
                if i < 3 {
                    WQ.wait_event(cond);
                } else {
                    WQ.wait_event_exclusive(cond);
                }
                DONE.fetch_add(1, O::Relaxed);
            }));
            tasks.push(rx.recv().unwrap());
        }
        for t in &tasks {
            wait_until_sleeping(t, TaskState::Uninterruptible);
        }
        // 3 non-exclusive + 1 exclusive.
        GO.store(1, O::Release);
        assert_eq!(WQ.wake_up(), 4);
        // 2 exclusive left; wake_up_nr(1) wakes one of them.
        assert_eq!(WQ.wake_up_nr(1), 1);
        assert_eq!(WQ.wake_up_all(), 1);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(DONE.load(O::Relaxed), 6);
    }

    #[test]
    fn wake_up_interruptible_leaves_uninterruptible_sleepers() {
        let wq = Arc::new(WaitQueue::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (wq2, f2) = (wq.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            wq2.wait_event(|| f2.load(O::Acquire));
        });
        let task = rx.recv().unwrap();
        wait_until_sleeping(&task, TaskState::Uninterruptible);
        flag.store(true, O::Release);
        assert_eq!(wq.wake_up_interruptible(), 0);
        assert_eq!(wq.wake_up(), 1);
        t.join().unwrap();
    }

    #[test]
    fn interruptible_wait_returns_eintr_and_leaves_the_queue() {
        let wq = Arc::new(WaitQueue::new());
        let (tx, rx) = mpsc::channel();
        let wq2 = wq.clone();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = wq2.wait_event_interruptible(|| false);
            crate::sched::flush_signals();
            r
        });
        let task = rx.recv().unwrap();
        wait_until_sleeping(&task, TaskState::Interruptible);
        task.send_signal(Signal::SIGUSR1);
        let r = t.join().unwrap();
        assert_eq!(r, Err(Error::Interrupted));
        assert_eq!(r.unwrap_err().errno(), -crate::error::errno::EINTR);
        assert!(!wq.has_sleeper());
    }

    #[test]
    fn timeout_reports_zero_after_the_deadline() {
        let wq = WaitQueue::new();
        let start = Instant::now();
        assert_eq!(
            wq.wait_event_timeout(|| false, Duration::from_millis(10)),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
        let r = wq.wait_event_interruptible_timeout(|| false, Duration::from_millis(2));
        assert_eq!(r, Ok(None));
        assert!(!wq.has_sleeper());
    }

    #[test]
    fn exclusive_waiter_interrupted_after_wake_passes_it_on() {
        // A woken exclusive waiter that leaves on a signal passes the wake-up on:
        // simulate by waking the entry, then interrupting its owner before it runs.
        let wq = Arc::new(WaitQueue::new());
        let items = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel();
            let (wq2, it) = (wq.clone(), items.clone());
            hs.push(std::thread::spawn(move || {
                tx.send(current()).unwrap();
                let r = wq2.wait_event_interruptible_exclusive(|| {
                    it.fetch_update(O::AcqRel, O::Acquire, |n| n.checked_sub(1))
                        .is_ok()
                });
                crate::sched::flush_signals();
                r
            }));
            tasks.push(rx.recv().unwrap());
        }
        for t in &tasks {
            wait_until_sleeping(t, TaskState::Interruptible);
        }
        // Signal both, then post one item and wake one: whichever took it, the
        // other returns Interrupted; nobody is left sleeping with an item queued.
        for t in &tasks {
            t.send_signal(Signal::SIGUSR1);
        }
        items.store(1, O::Release);
        wq.wake_up();
        let rs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let oks = rs.iter().filter(|r| r.is_ok()).count();
        assert_eq!(items.load(O::Relaxed) + oks, 1);
    }

    #[test]
    fn entry_api_prepare_sleep_finish() {
        let wq = WaitQueue::new();
        let e = core::pin::pin!(WaitQueueEntry::new(&wq));
        e.as_ref()
            .prepare_to_wait_exclusive(TaskState::Interruptible);
        assert!(wq.has_sleeper());
        assert_eq!(wq.wake_up(), 1);
        assert!(e.is_woken());
        assert_eq!(sleep(TaskState::Interruptible, None), Ok(()));
        assert!(e.as_ref().finish_wait());
        assert!(!wq.has_sleeper());
        e.as_ref().add_wait_queue();
        assert!(wq.has_sleeper());
        assert!(!e.as_ref().finish_wait());
        assert!(!wq.has_sleeper());
    }

    #[test]
    fn stress_16_threads_no_lost_wakeups() {
        // Producers post tokens and wake; consumers take tokens as exclusive waiters.
        let wq = Arc::new(WaitQueue::new());
        let tokens = Arc::new(AtomicUsize::new(0));
        const PER: usize = 2000;
        let mut hs = Vec::new();
        for i in 0..16 {
            let (wq, tokens) = (wq.clone(), tokens.clone());
            hs.push(std::thread::spawn(move || {
                for _ in 0..PER {
                    if i % 2 == 0 {
                        tokens.fetch_add(1, O::Release);
                        wq.wake_up();
                    } else {
                        wq.wait_event_exclusive(|| {
                            tokens
                                .fetch_update(O::AcqRel, O::Acquire, |n| n.checked_sub(1))
                                .is_ok()
                        });
                    }
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(tokens.load(O::Relaxed), 0);
        assert!(!wq.has_sleeper());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::sync::atomic::{AtomicBool, AtomicU32};
    use crate::sched::current;

    /// The sleep path itself under loom: a wake-up from another thread, before or
    /// after the sleep, is never lost.
    #[test]
    fn loom_sleep_wake_up() {
        loom::model(|| {
            let flag = Arc::new(AtomicBool::new(false));
            let me = current();
            let f2 = flag.clone();
            let t = loom::thread::spawn(move || {
                f2.store(true, Ordering::Release);
                me.wake_up();
            });
            while !flag.load(Ordering::Acquire) {
                let _ = sleep(TaskState::Uninterruptible, None);
            }
            t.join().unwrap();
        });
    }

    /// wait_event vs a waker that sets the condition and calls wake_up (with the
    /// lock-free empty check): the waiter always finishes.
    #[test]
    fn loom_wait_event_no_lost_wakeup() {
        loom::model(|| {
            let wq = Arc::new(WaitQueue::new());
            let flag = Arc::new(AtomicBool::new(false));
            let (wq2, f2) = (wq.clone(), flag.clone());
            let t = loom::thread::spawn(move || {
                f2.store(true, Ordering::Relaxed);
                wq2.wake_up();
            });
            wq.wait_event(|| flag.load(Ordering::Relaxed));
            t.join().unwrap();
        });
    }

    /// An interruptible exclusive waiter that is signalled around the time it is
    /// woken must not swallow the wake-up: the other exclusive waiter gets the
    /// token (directly or passed on) unless the signalled one took it.
    #[test]
    fn loom_interrupted_exclusive_waiter_passes_wakeup_on() {
        loom::model(|| {
            let wq = Arc::new(WaitQueue::new());
            let tokens = Arc::new(AtomicU32::new(0));
            let take = |t: &AtomicU32| {
                t.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
            };
            let (tx, rx) = loom::sync::mpsc::channel();
            let (wq_a, tok_a) = (wq.clone(), tokens.clone());
            let a = loom::thread::spawn(move || {
                tx.send(current()).unwrap();
                let r = wq_a.wait_event_interruptible_exclusive(|| take(&tok_a));
                crate::sched::flush_signals();
                r.is_ok()
            });
            let (wq_b, tok_b) = (wq.clone(), tokens.clone());
            let b = loom::thread::spawn(move || wq_b.wait_event_exclusive(|| take(&tok_b)));
            let task_a = rx.recv().unwrap();
            tokens.fetch_add(1, Ordering::Release);
            wq.wake_up();
            task_a.send_signal(crate::sched::Signal::SIGINT);
            if a.join().unwrap() {
                // A took the token: give B its own.
                tokens.fetch_add(1, Ordering::Release);
                wq.wake_up();
            }
            b.join().unwrap();
        });
    }

    /// Two exclusive waiters, two single wake-ups, two tokens: both finish.
    #[test]
    fn loom_exclusive_wakeups_not_lost() {
        loom::model(|| {
            let wq = Arc::new(WaitQueue::new());
            let tokens = Arc::new(AtomicU32::new(0));
            let mut hs = Vec::new();
            for _ in 0..2 {
                let (wq, tokens) = (wq.clone(), tokens.clone());
                hs.push(loom::thread::spawn(move || {
                    wq.wait_event_exclusive(|| {
                        tokens
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                            .is_ok()
                    });
                }));
            }
            for _ in 0..2 {
                tokens.fetch_add(1, Ordering::Release);
                wq.wake_up();
            }
            for h in hs {
                h.join().unwrap();
            }
        });
    }
}
