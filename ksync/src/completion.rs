//! Completions (`struct completion`): one task waits until another says that
//! something is done.
//!
//! Built for the case a semaphore gets wrong (SPEC §12): the waiter may free the
//! completion the moment it wakes — typically a completion on the waiter's stack,
//! or the last `Arc` reference — so [`Completion::complete`] must not touch it
//! after the wake-up.
//!
//! With the `lockdep` feature every wait (but not [`Completion::try_wait`])
//! checks `might_sleep()` first, so waiting in atomic context — under a
//! spinlock, with irqs off, in an RCU read section — is reported even when the
//! completion is already done. A completion has no lockdep map and joins no lock
//! order, as in the kernel (whose cross-release tracking of completions was
//! removed); a wait for a completion that a lock holder must signal is not found.
//!
//! # Implementation details
//!
//! | field     | protected by   | meaning                                                  |
//! |-----------|----------------|----------------------------------------------------------|
//! | `done`    | the list lock  | completions not yet consumed; `u32::MAX` after `complete_all` (sticky) |
//! | `waiters` | its own lock   | sleepers, FIFO, entries on their stacks                  |
//!
//! `complete` takes the internal lock, and either detaches the first waiter
//! (handing it the completion directly: `done` is not touched) or increments
//! `done`; it releases the lock; then it marks the detached entry `WOKEN`
//! (Release) and wakes its task through its own reference to the task. Its last
//! access to the completion is the lock release, which happens before the mark;
//! the waiter returns only after it sees the mark (Acquire), or after it took the
//! lock itself (`try_wait`, `done`, the fast path of `wait`), which orders it
//! after the completer's release. So whenever the waiter can observe the
//! completion, the completer is already done with it. (The futex wake that a
//! contended unlock issues after its release store passes only the address to
//! the kernel, as std's `Mutex` does; it reads no memory.)
//!
//! A waiter interrupted or timed out while queued unlinks itself and returns the
//! error; one that `complete` already detached takes the completion and returns
//! `Ok` (the hand-off came first), so no `complete` is ever lost.

use crate::error::Result;
use crate::loom::UnsafeCell;
use crate::sched::TaskState;
use crate::sched::waitlist::{Detached, WaitList, Waiter};
use std::time::{Duration, Instant};

const ALL: u32 = u32::MAX;

/// A completion (`struct completion`).
///
/// ```
/// use ksync::completion::Completion;
/// use std::sync::Arc;
///
/// let done = Arc::new(Completion::new());
/// let d2 = done.clone();
/// let t = std::thread::spawn(move || d2.complete());
/// done.wait(); // wait_for_completion
/// t.join().unwrap();
/// ```
#[doc(alias = "completion")]
pub struct Completion {
    done: UnsafeCell<u32>,
    waiters: WaitList,
}

// SAFETY: `done` is only accessed under `waiters`' lock; the list is Sync.
unsafe impl Sync for Completion {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for Completion {}

impl Default for Completion {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Completion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Completion")
            .field("done", &self.is_done())
            .finish()
    }
}

impl Completion {
    /// A completion not yet done (`DECLARE_COMPLETION`, `init_completion`).
    #[doc(alias = "DECLARE_COMPLETION")]
    #[doc(alias = "init_completion")]
    #[doc(alias = "DECLARE_COMPLETION_ONSTACK")]
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Completion {
            done: UnsafeCell::new(0),
            waiters: WaitList::new(),
        }
    }

    /// A completion not yet done (`init_completion`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Completion {
            done: UnsafeCell::new(0),
            waiters: WaitList::new(),
        }
    }

    /// Makes the completion not done again, for reuse (`reinit_completion`).
    /// Call it only when no one waits on it (as in the kernel).
    #[doc(alias = "reinit_completion")]
    pub fn reinit(&self) {
        let _l = self.waiters.lock();
        // SAFETY: `done` is protected by the lock we hold.
        self.done.with_mut(|d| unsafe { *d = 0 });
    }

    /// Signals one waiter: wakes the first task waiting, or lets the next
    /// [`wait`](Self::wait) return at once (`complete`). Callable from any task
    /// and from irq context. The completion may be freed by the woken waiter
    /// while this call is still running: it does not touch it after the hand-off.
    pub fn complete(&self) {
        let mut woken = Detached::empty();
        {
            let l = self.waiters.lock();
            if !l.detach_first(&mut woken) {
                // SAFETY: `done` is protected by the lock we hold.
                self.done.with_mut(|d| unsafe {
                    if *d != ALL {
                        *d += 1;
                    }
                });
            }
        }
        // The completion may be gone from here on: only the detached entry (on
        // the waiter's stack, valid until marked) and the task are touched.
        woken.wake();
    }

    /// Signals every waiter, now and in the future, until
    /// [`reinit`](Self::reinit) (`complete_all`).
    pub fn complete_all(&self) {
        let woken = {
            let l = self.waiters.lock();
            // SAFETY: `done` is protected by the lock we hold.
            self.done.with_mut(|d| unsafe { *d = ALL });
            l.detach(0, false)
        };
        woken.wake();
    }

    /// Takes one completion if one is there, under the lock (so that the
    /// completer is done with the completion when this returns true).
    fn take(&self) -> bool {
        let _l = self.waiters.lock();
        // SAFETY: `done` is protected by the lock we hold.
        self.done.with_mut(|d| unsafe {
            match *d {
                0 => false,
                ALL => true,
                _ => {
                    *d -= 1;
                    true
                }
            }
        })
    }

    fn wait_common(&self, state: TaskState, deadline: Option<Instant>) -> Result<()> {
        crate::lockdep::might_sleep();
        // Poll briefly first (taking a completion under the lock when one is
        // there): a completion that arrives within a few µs costs neither the
        // completer a futex wake nor us a sleep.
        if crate::sched::poll_before_sleep(deadline, || self.take()) {
            return Ok(());
        }
        let w = Waiter::new(true, state);
        {
            let l = self.waiters.lock();
            // SAFETY: `done` is protected by the lock we hold.
            let got = self.done.with_mut(|d| unsafe {
                match *d {
                    0 => false,
                    ALL => true,
                    _ => {
                        *d -= 1;
                        true
                    }
                }
            });
            if got {
                return Ok(());
            }
            // SAFETY: `w` stays on this frame until unlinked or woken:
            // `wait_woken` returns only then.
            unsafe { l.link(&w, false) };
        }
        self.waiters.wait_woken(&w, state, deadline, |_| {})
    }

    /// Sleeps uninterruptibly until the completion is done and takes one
    /// completion (`wait_for_completion`).
    #[doc(alias = "wait_for_completion")]
    pub fn wait(&self) {
        let r = self.wait_common(TaskState::Uninterruptible, None);
        debug_assert!(r.is_ok());
    }

    /// As [`wait`](Self::wait), but a signal ends the wait
    /// (`wait_for_completion_interruptible`).
    ///
    /// # Errors
    /// [`Error::Interrupted`](crate::Error::Interrupted) (`-ERESTARTSYS`), or
    /// [`Error::Killed`](crate::Error::Killed); no completion is consumed.
    #[doc(alias = "wait_for_completion_interruptible")]
    pub fn wait_interruptible(&self) -> Result<()> {
        self.wait_common(TaskState::Interruptible, None)
    }

    /// As [`wait`](Self::wait), but SIGKILL ends the wait
    /// (`wait_for_completion_killable`).
    ///
    /// # Errors
    /// [`Error::Killed`](crate::Error::Killed); no completion is consumed.
    #[doc(alias = "wait_for_completion_killable")]
    pub fn wait_killable(&self) -> Result<()> {
        self.wait_common(TaskState::Killable, None)
    }

    /// As [`wait`](Self::wait) for at most `timeout`
    /// (`wait_for_completion_timeout`).
    ///
    /// Returns the time left as the kernel does: `Some(left)` when completed
    /// (`left` may be zero), `None` on timeout (the kernel's `0`).
    ///
    /// ```
    /// use ksync::completion::Completion;
    /// use std::time::Duration;
    /// let c = Completion::new();
    /// assert_eq!(c.wait_timeout(Duration::from_millis(1)), None);
    /// c.complete();
    /// assert!(c.wait_timeout(Duration::from_millis(1)).is_some());
    /// ```
    #[doc(alias = "wait_for_completion_timeout")]
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now().checked_add(timeout);
        match self.wait_common(TaskState::Uninterruptible, deadline) {
            Ok(()) => Some(deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            })),
            Err(_) => None,
        }
    }

    /// As [`wait_interruptible`](Self::wait_interruptible) for at most `timeout`
    /// (`wait_for_completion_interruptible_timeout`): `Ok(Some(left))` when
    /// completed, `Ok(None)` on timeout.
    ///
    /// # Errors
    /// As `wait_interruptible`.
    #[doc(alias = "wait_for_completion_interruptible_timeout")]
    pub fn wait_interruptible_timeout(&self, timeout: Duration) -> Result<Option<Duration>> {
        let deadline = Instant::now().checked_add(timeout);
        match self.wait_common(TaskState::Interruptible, deadline) {
            Ok(()) => Ok(Some(deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            }))),
            Err(crate::Error::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes one completion if one is available, without sleeping
    /// (`try_wait_for_completion`): `true` if it did.
    #[doc(alias = "try_wait_for_completion")]
    pub fn try_wait(&self) -> bool {
        self.take()
    }

    /// Whether a completion is available and nobody is waiting
    /// (`completion_done`). Takes the lock, so that when it returns true the
    /// completer has finished with the completion.
    #[doc(alias = "completion_done")]
    pub fn is_done(&self) -> bool {
        let _l = self.waiters.lock();
        // SAFETY: `done` is protected by the lock we hold.
        self.done.with(|d| unsafe { *d != 0 })
    }

    /// Alias of [`is_done`](Self::is_done) under the short name.
    pub fn done(&self) -> bool {
        self.is_done()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Error;
    use crate::sched::{Signal, current};
    use std::sync::Arc;
    use std::sync::mpsc;

    #[test]
    fn complete_before_wait_counts() {
        let c = Completion::new();
        assert!(!c.done());
        c.complete();
        c.complete();
        assert!(c.done());
        c.wait();
        assert!(c.try_wait());
        assert!(!c.try_wait());
        assert!(!c.done());
    }

    #[test]
    fn complete_all_and_reinit() {
        let c = Arc::new(Completion::new());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || c.wait())
            })
            .collect();
        c.complete_all();
        for h in hs {
            h.join().unwrap();
        }
        // Sticky until reinit.
        c.wait();
        assert!(c.try_wait());
        c.reinit();
        assert!(!c.try_wait());
        assert_eq!(c.wait_timeout(Duration::from_millis(2)), None);
    }

    #[test]
    fn interrupted_wait_consumes_nothing() {
        let c = Arc::new(Completion::new());
        let (tx, rx) = mpsc::channel();
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = c2.wait_interruptible();
            crate::sched::flush_signals();
            r
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Interruptible {
            std::thread::yield_now();
        }
        task.send_signal(Signal::SIGTERM);
        assert_eq!(t.join().unwrap(), Err(Error::Interrupted));
        c.complete();
        assert!(c.try_wait());
    }

    #[test]
    fn waiter_frees_the_completion_on_wake() {
        // SPEC §12: the waiter drops the last reference the moment it wakes, while
        // the completer may still be inside complete(); 2000 rounds.
        for _ in 0..2000 {
            let c = Arc::new(Completion::new());
            let raw: *const Completion = Arc::as_ptr(&c);
            let addr = raw as usize;
            // The completer uses a plain reference that does not keep it alive.
            let t = std::thread::spawn(move || {
                // SAFETY: the waiter frees the completion only after complete()
                // handed it over, and complete() touches it no more after that;
                // this is exactly the property under test (ASan/Miri would flag a
                // violation; here a corrupted heap would crash).
                let c = unsafe { &*(addr as *const Completion) };
                c.complete();
            });
            c.wait();
            drop(c);
            t.join().unwrap();
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    /// complete vs wait, in both orders: the waiter always returns.
    #[test]
    fn loom_complete_vs_wait() {
        loom::model(|| {
            let c = Arc::new(Completion::new());
            let c2 = c.clone();
            let t = loom::thread::spawn(move || c2.complete());
            c.wait();
            t.join().unwrap();
            assert!(!c.try_wait());
        });
    }

    /// An interruptible wait racing `complete` and a signal: either it takes the
    /// completion, or it fails and the completion stays for the next waiter.
    #[test]
    fn loom_interrupted_wait_vs_complete() {
        loom::model(|| {
            let c = Arc::new(Completion::new());
            let me = crate::sched::current();
            let c2 = c.clone();
            let t = loom::thread::spawn(move || c2.complete());
            let sig = loom::thread::spawn(move || me.send_signal(crate::sched::Signal::SIGINT));
            let r = c.wait_interruptible();
            t.join().unwrap();
            sig.join().unwrap();
            crate::sched::flush_signals();
            assert_eq!(c.try_wait(), r.is_err());
        });
    }

    /// The waiter frees the completion as soon as it wakes: the completer's
    /// accesses to it must all happen before (loom reports a use after free of
    /// the loom cells and atomics inside as a causality violation).
    #[test]
    fn loom_free_after_wake() {
        loom::model(|| {
            let c = Box::new(Completion::new());
            let addr = &*c as *const Completion as usize;
            let t = loom::thread::spawn(move || {
                // SAFETY: the property under test: complete() does not touch the
                // completion after the waiter can observe the hand-off.
                let c = unsafe { &*(addr as *const Completion) };
                c.complete();
            });
            c.wait();
            drop(c);
            t.join().unwrap();
        });
    }
}
