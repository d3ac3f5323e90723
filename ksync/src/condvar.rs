//! Condition variables over ksync's [`Mutex`](crate::mutex::Mutex), as in Solaris and POSIX (SPEC §13):
//! wait (atomically release the mutex and sleep), signal, broadcast, timed wait.
//!
//! | POSIX / Solaris | ksync |
//! |---|---|
//! | `pthread_cond_init`, `cv_init` | [`CondVar::new`] |
//! | `pthread_cond_wait`, `cv_wait` | [`CondVar::wait`], [`CondVar::wait_while`] |
//! | `pthread_cond_timedwait`, `cv_timedwait` | [`CondVar::wait_timeout`], [`CondVar::wait_until`] |
//! | `cv_wait_sig` | [`CondVar::wait_interruptible`] |
//! | `pthread_cond_signal`, `cv_signal` | [`CondVar::notify_one`] |
//! | `pthread_cond_broadcast`, `cv_broadcast` | [`CondVar::notify_all`] |
//!
//! ```
//! use ksync::{condvar::CondVar, mutex::Mutex};
//! use std::sync::Arc;
//!
//! let pair = Arc::new((Mutex::new(false), CondVar::new()));
//! let p2 = pair.clone();
//! let t = std::thread::spawn(move || {
//!     *p2.0.lock() = true;
//!     p2.1.notify_one();
//! });
//! let (m, cv) = &*pair;
//! let mut ready = m.lock();
//! cv.wait_while(&mut ready, |r| !*r);
//! assert!(*ready);
//! drop(ready);
//! t.join().unwrap();
//! ```
//!
//! # Implementation details
//!
//! A FIFO list of waiter entries on the sleepers' stacks (`sched::waitlist`,
//! the wait engine the mutex uses too, in its plain form, with its own small
//! lock) and a count of entries for a fast
//! no-waiter check. `wait` links its entry *before* it unlocks the mutex, so a
//! notifier that changed the condition under the mutex afterwards always finds
//! it: no wake-up is lost between the unlock and the sleep. `notify_one` unlinks
//! the first entry, `notify_all` every entry; each is marked woken and its task
//! woken after the list lock is dropped, and never touched again (the completion
//! rule). A waiter that is interrupted or times out unlinks itself; if a notify
//! unlinked it first, it reports success instead, so the notification is not
//! lost to the others. The sleep goes through [`sched::sleep`](crate::sched::sleep).
//!
//! Lockdep sees a wait as the mutex's unlock followed by its lock: the mutex
//! leaves the held-lock stack before the sleep (so waiting with *another* lock
//! of a spinning kind held is still reported as a sleep in atomic context) and
//! is acquired again, as a blocking acquisition, after it — recording again the
//! order of any lock held around the wait before the mutex. The condition
//! variable itself has no lockdep map (as the kernel's wait queues have none).
//!
//! The `waiters` count is read with Relaxed in `notify_*`: a waiter links itself
//! and bumps the count before it unlocks the mutex (Release), and a notifier that
//! must see it took the mutex afterwards (Acquire), so the count's increment
//! happens before the notifier's read. A notify that does not synchronise with
//! the waiter through the mutex may miss it, as POSIX allows.

use crate::error::{Error, Result};
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use crate::mutex::MutexGuard;
use crate::sched::TaskState;
use crate::sched::waitlist::{Detached, Plain, WaitList, Waiter};
use core::fmt;
use std::time::{Duration, Instant};

/// A condition variable used with a [`Mutex`](crate::mutex::Mutex).
///
/// One condition variable may be used with different mutexes over time, each
/// wait with whichever mutex protects the condition.
#[doc(alias = "pthread_cond_t")]
#[doc(alias = "kcondvar_t")]
pub struct CondVar {
    /// Linked entries (protected by `list`'s lock; read unlocked as a hint).
    waiters: AtomicU32,
    list: WaitList<Plain>,
}

/// Whether a timed wait returned because its time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the deadline passed without a notification.
    pub fn timed_out(self) -> bool {
        self.0
    }
}

impl CondVar {
    /// A condition variable with no waiters (`pthread_cond_init`, `cv_init`).
    #[doc(alias = "pthread_cond_init")]
    #[doc(alias = "cv_init")]
    #[cfg(not(loom))]
    pub const fn new() -> CondVar {
        CondVar {
            waiters: AtomicU32::new(0),
            list: WaitList::new(),
        }
    }

    /// A condition variable with no waiters (loom build).
    #[cfg(loom)]
    pub fn new() -> CondVar {
        CondVar {
            waiters: AtomicU32::new(0),
            list: WaitList::new(),
        }
    }

    /// Atomically unlocks the guard's mutex and sleeps (uninterruptibly) until
    /// notified, then relocks it (`pthread_cond_wait`, `cv_wait`). May return
    /// spuriously never — but the condition may have changed again by the time
    /// the mutex is retaken: re-check it, or use [`wait_while`](CondVar::wait_while).
    #[doc(alias = "pthread_cond_wait")]
    #[doc(alias = "cv_wait")]
    pub fn wait<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>) {
        let r = self.wait_on(guard, TaskState::Uninterruptible, None);
        debug_assert!(r.is_ok());
    }

    /// Waits while `condition` holds, re-checking after every wake-up.
    pub fn wait_while<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) {
        while condition(&mut **guard) {
            self.wait(guard);
        }
    }

    /// [`wait`](CondVar::wait), interruptible: returns [`Error::Interrupted`]
    /// (`-EINTR`) if a signal arrives first (`cv_wait_sig`). The mutex is held
    /// again on return either way.
    ///
    /// # Errors
    /// [`Error::Interrupted`], or [`Error::Killed`] for SIGKILL.
    #[doc(alias = "cv_wait_sig")]
    pub fn wait_interruptible<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>) -> Result<()> {
        self.wait_on(guard, TaskState::Interruptible, None)
    }

    /// [`wait`](CondVar::wait) for at most `timeout` (`pthread_cond_timedwait`,
    /// `cv_timedwait`). The mutex is held again on return.
    #[doc(alias = "pthread_cond_timedwait")]
    #[doc(alias = "cv_timedwait")]
    pub fn wait_timeout<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        match Instant::now().checked_add(timeout) {
            Some(d) => self.wait_until(guard, d),
            None => {
                self.wait(guard);
                WaitTimeoutResult(false)
            }
        }
    }

    /// [`wait`](CondVar::wait) until `deadline` at the latest.
    pub fn wait_until<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        match self.wait_on(guard, TaskState::Uninterruptible, Some(deadline)) {
            Ok(()) => WaitTimeoutResult(false),
            Err(e) => {
                debug_assert_eq!(e, Error::TimedOut);
                WaitTimeoutResult(true)
            }
        }
    }

    /// Waits while `condition` holds, for at most `timeout` in all
    /// (`std::sync::Condvar::wait_timeout_while`): re-checks it after every
    /// wake-up, and once more when the time runs out. The mutex is held again on
    /// return. [`timed_out`](WaitTimeoutResult::timed_out) is `true` only if the
    /// condition still held at the deadline.
    ///
    /// ```
    /// use ksync::{condvar::CondVar, mutex::Mutex};
    /// use std::time::Duration;
    /// let (m, cv) = (Mutex::new(0), CondVar::new());
    /// let mut g = m.lock();
    /// let r = cv.wait_timeout_while(&mut g, Duration::from_millis(5), |v| *v == 0);
    /// assert!(r.timed_out()); // nobody changed it
    /// *g = 1;
    /// let r = cv.wait_timeout_while(&mut g, Duration::from_secs(60), |v| *v == 0);
    /// assert!(!r.timed_out()); // false at once: no wait
    /// ```
    pub fn wait_timeout_while<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> WaitTimeoutResult {
        let deadline = Instant::now().checked_add(timeout);
        while condition(&mut **guard) {
            match deadline {
                Some(d) => {
                    if self.wait_until(guard, d).timed_out() {
                        // A change made just before the deadline still counts.
                        return WaitTimeoutResult(condition(&mut **guard));
                    }
                }
                None => self.wait(guard),
            }
        }
        WaitTimeoutResult(false)
    }

    fn wait_on<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        state: TaskState,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let node = Waiter::tagged(0);
        {
            let q = self.list.lock();
            // SAFETY: `node` is fresh, linked only into this list, and stays on
            // this frame until it is unlinked: we return only after a notifier
            // detached and marked it, or after we unlinked it ourselves in `leave`.
            unsafe { q.push_back(&node) };
            self.waiters.fetch_add(1, Ordering::Relaxed);
        }
        // Unlocks the mutex (lockdep release, then the unlock's Release store),
        // sleeps, and relocks it uninterruptibly before the guard is usable again.
        guard.do_unlocked(|| {
            loop {
                if node.is_woken() {
                    break Ok(());
                }
                match crate::sched::sleep(state, deadline) {
                    Ok(()) => continue,
                    Err(e) => break if self.leave(&node) { Ok(()) } else { Err(e) },
                }
            }
        })
    }

    /// Gives up waiting; returns `true` if a notify got to the entry first.
    #[cold]
    fn leave(&self, node: &Waiter) -> bool {
        let q = self.list.lock();
        if q.remove(node) {
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            false
        } else {
            drop(q);
            node.wait_for_mark();
            true
        }
    }

    /// Wakes one waiter, the longest waiting (`pthread_cond_signal`, `cv_signal`).
    /// Returns whether there was one.
    #[doc(alias = "pthread_cond_signal")]
    #[doc(alias = "cv_signal")]
    #[doc(alias = "signal")]
    pub fn notify_one(&self) -> bool {
        if self.waiters.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut woken = Detached::empty();
        {
            let q = self.list.lock();
            let Some(first) = q.front() else { return false };
            q.take(first, &mut woken);
            self.waiters.fetch_sub(1, Ordering::Relaxed);
        }
        woken.wake();
        true
    }

    /// Wakes every waiter (`pthread_cond_broadcast`, `cv_broadcast`). Returns how
    /// many there were.
    #[doc(alias = "pthread_cond_broadcast")]
    #[doc(alias = "cv_broadcast")]
    #[doc(alias = "broadcast")]
    pub fn notify_all(&self) -> usize {
        if self.waiters.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let mut woken = Detached::empty();
        let mut n = 0;
        {
            let q = self.list.lock();
            while let Some(first) = q.front() {
                q.take(first, &mut woken);
                n += 1;
            }
            self.waiters.fetch_sub(n, Ordering::Relaxed);
        }
        woken.wake();
        n as usize
    }
}

impl Default for CondVar {
    fn default() -> Self {
        CondVar::new()
    }
}

impl fmt::Debug for CondVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CondVar")
            .field("waiters", &self.waiters.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::mutex::Mutex;
    use crate::sched::{Signal, current};
    use std::sync::Arc;
    use std::sync::mpsc;

    /// The waiter really sleeps (task state observed) before the notify, and the
    /// notify wakes it.
    #[test]
    fn waiter_sleeps_until_notified() {
        let pair = Arc::new((Mutex::new(0u32), CondVar::new()));
        let p2 = pair.clone();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let mut g = p2.0.lock();
            while *g == 0 {
                p2.1.wait(&mut g);
            }
            *g
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        *pair.0.lock() = 5;
        assert!(pair.1.notify_one());
        assert_eq!(t.join().unwrap(), 5);
        assert!(!pair.1.notify_one());
    }

    #[test]
    fn notify_all_wakes_every_sleeper() {
        let pair = Arc::new((Mutex::new(false), CondVar::new()));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let p = pair.clone();
                let (tx, rx) = mpsc::channel();
                let h = std::thread::spawn(move || {
                    tx.send(current()).unwrap();
                    let mut g = p.0.lock();
                    p.1.wait_while(&mut g, |go| !*go);
                });
                (rx.recv().unwrap(), h)
            })
            .collect();
        for (t, _) in &tasks {
            while t.state() != TaskState::Uninterruptible {
                std::thread::yield_now();
            }
        }
        *pair.0.lock() = true;
        assert_eq!(pair.1.notify_all(), 4);
        for (_, h) in tasks {
            h.join().unwrap();
        }
    }

    #[test]
    fn wait_timeout_times_out_and_keeps_the_lock() {
        let m = Mutex::new(());
        let cv = CondVar::new();
        let mut g = m.lock();
        let start = Instant::now();
        let r = cv.wait_timeout(&mut g, Duration::from_millis(10));
        assert!(r.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert!(m.raw().is_owned_by_current());
        assert_eq!(cv.waiters.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn interruptible_wait_returns_eintr_with_the_mutex_held() {
        let pair = Arc::new((Mutex::new(0), CondVar::new()));
        let p2 = pair.clone();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let mut g = p2.0.lock();
            let r = p2.1.wait_interruptible(&mut g);
            crate::sched::flush_signals();
            let owned = p2.0.raw().is_owned_by_current();
            *g += 1;
            (r, owned)
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Interruptible {
            std::thread::yield_now();
        }
        task.send_signal(Signal::SIGUSR1);
        let (r, owned) = t.join().unwrap();
        assert_eq!(r, Err(Error::Interrupted));
        assert!(owned);
        assert_eq!(*pair.0.lock(), 1);
        assert_eq!(pair.1.waiters.load(Ordering::Relaxed), 0);
    }

    /// `wait_timeout_while` returns when the predicate turns false, and only
    /// then: the waiter sleeps again after each notify that leaves it true.
    #[test]
    fn wait_timeout_while_returns_on_the_predicate() {
        // (value, how many times the waiter checked the predicate)
        let pair = Arc::new((Mutex::new((0u32, 0u32)), CondVar::new()));
        let p2 = pair.clone();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let mut g = p2.0.lock();
            let r =
                p2.1.wait_timeout_while(&mut g, Duration::from_secs(600), |v| {
                    v.1 += 1;
                    v.0 < 3
                });
            (r, *g, p2.0.raw().is_owned_by_current())
        });
        let task = rx.recv().unwrap();
        for i in 1..=3 {
            // The i-th check is done; the waiter linked itself before it let the
            // mutex go, and then sleeps.
            while pair.0.lock().1 < i {
                std::thread::yield_now();
            }
            while task.state() != TaskState::Uninterruptible {
                std::thread::yield_now();
            }
            pair.0.lock().0 = i;
            assert!(pair.1.notify_one());
        }
        let (r, seen, owned) = t.join().unwrap();
        assert!(!r.timed_out());
        assert_eq!(seen, (3, 4));
        assert!(owned);
    }

    /// `wait_timeout_while` returns at the deadline when the predicate stays
    /// true, having waited at least the timeout, with the mutex held.
    #[test]
    fn wait_timeout_while_returns_at_the_deadline() {
        let m = Mutex::new(0u32);
        let cv = CondVar::new();
        let mut g = m.lock();
        let start = Instant::now();
        let mut checks = 0;
        let r = cv.wait_timeout_while(&mut g, Duration::from_millis(10), |_| {
            checks += 1;
            true
        });
        assert!(r.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert!(checks >= 2, "checked before waiting and at the deadline");
        assert!(m.raw().is_owned_by_current());
        assert_eq!(cv.waiters.load(Ordering::Relaxed), 0);
    }

    /// Ping-pong: every notify is seen (a lost one would hang past the watchdog).
    #[test]
    fn no_lost_notify_in_ping_pong() {
        let st = Arc::new((Mutex::new(0u32), CondVar::new()));
        let s2 = st.clone();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            for i in 0..2000u32 {
                let mut g = s2.0.lock();
                s2.1.wait_while(&mut g, |v| *v != 2 * i + 1);
                *g += 1;
                s2.1.notify_one();
            }
            tx.send(()).unwrap();
        });
        for i in 0..2000u32 {
            let mut g = st.0.lock();
            st.1.wait_while(&mut g, |v| *v != 2 * i);
            *g += 1;
            st.1.notify_one();
        }
        assert!(rx.recv_timeout(Duration::from_secs(60)).is_ok());
        t.join().unwrap();
        assert_eq!(*st.0.lock(), 4000);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::mutex::Mutex;

    /// No lost wake-up between the waiter's unlock and its sleep.
    #[test]
    fn loom_condvar_no_lost_notify() {
        loom::model(|| {
            let st = Arc::new((Mutex::new(false), CondVar::new()));
            let s2 = st.clone();
            let t = loom::thread::spawn(move || {
                *s2.0.lock() = true;
                s2.1.notify_one();
            });
            let mut g = st.0.lock();
            st.1.wait_while(&mut g, |v| !*v);
            drop(g);
            t.join().unwrap();
        });
    }
}
