//! Counting semaphores (`struct semaphore`): `down` takes a unit, sleeping
//! until one is free; `up` returns one.
//!
//! Semaphores have no owner: any task may `up`, which is what makes them useful
//! for signalling between tasks — and why, as in the kernel, lockdep does not
//! track them (a lock whose release may come from another task has no held-lock
//! stack to check). Use [`Mutex`](crate::mutex) for mutual exclusion.
//!
//! # Implementation details
//!
//! One word holds the count and a waiters flag; a `WaitList` (the wait
//! engine, `sched::waitlist`: entries on the sleepers' stacks, under a small
//! internal lock in its irq-safe form, as `up` may run in an irq handler) holds
//! the sleepers in FIFO order:
//!
//! | bits        | meaning                                                   |
//! |-------------|-----------------------------------------------------------|
//! | `1..`       | `count`: the free units                                   |
//! | `0` (`WAITERS`) | the list is non-empty; set and cleared under the list lock |
//!
//! | operation   | without `WAITERS`                         | with `WAITERS`                                 |
//! |-------------|-------------------------------------------|------------------------------------------------|
//! | `down`      | CAS `count - 1` if `count > 0` (one RMW)  | slow path: queue at the tail                   |
//! | `up`        | `fetch_add` of one unit (one RMW)         | the same, then the slow path hands a unit to the first waiter |
//!
//! Hand-off (as the kernel's `__up`): under the lock, while waiters are queued
//! and `count > 0`, a unit is moved from `count` to the first waiter by a CAS,
//! and the waiter is detached; after the lock is released it is marked and woken.
//! A woken waiter therefore owns its unit without touching the count again, and
//! newcomers cannot overtake the queue (they see `WAITERS`). `WAITERS` is set by
//! an RMW under the lock after the newcomer is linked, and the newcomer then runs
//! the hand-off itself: an `up` whose `fetch_add` came before that RMW left its
//! unit in `count`, where the hand-off finds it; an `up` after it sees `WAITERS`
//! and takes the lock. A waiter interrupted or timed out while still queued just
//! unlinks itself (it never took anything); one that a hand-off already detached
//! keeps the unit and succeeds — the hand-off came first, as in the kernel's
//! `__down_common`, which checks `waiter.up` before the signal. Either way no
//! unit is lost or duplicated.

use crate::error::{Error, Result};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::sched::TaskState;
use crate::sched::waitlist::{Detached, Locked, WaitList, Waiter};
use std::time::{Duration, Instant};

const WAITERS: usize = 1;
const UNIT: usize = 2;
/// Backoff rounds a downer spins before it queues (about 2^SPINS pauses in all).
#[cfg(not(loom))]
const SPINS: u32 = 8;

/// A counting semaphore (`struct semaphore`).
///
/// ```
/// use ksync::semaphore::Semaphore;
/// static SEM: Semaphore = Semaphore::new(2);
/// SEM.down();
/// assert!(SEM.try_down());
/// assert!(SEM.down_trylock().is_err()); // no unit left (the kernel's nonzero)
/// SEM.up();
/// SEM.up();
/// assert_eq!(SEM.count(), 2);
/// ```
#[doc(alias = "semaphore")]
pub struct Semaphore {
    /// `count << 1 | WAITERS`; see the module docs.
    state: AtomicUsize,
    waiters: WaitList,
}

impl core::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("Semaphore")
            .field("count", &(s / UNIT))
            .field("waiters", &(s & WAITERS != 0))
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `count` free units (`sema_init`, `DEFINE_SEMAPHORE`).
    ///
    /// # Panics
    /// If `count` does not fit (more than `usize::MAX / 2`).
    #[doc(alias = "sema_init")]
    #[doc(alias = "DEFINE_SEMAPHORE")]
    #[cfg(not(loom))]
    pub const fn new(count: usize) -> Self {
        assert!(count <= usize::MAX / UNIT, "semaphore count too large");
        Semaphore {
            state: AtomicUsize::new(count * UNIT),
            waiters: WaitList::new(),
        }
    }

    /// A semaphore with `count` free units (`sema_init`).
    #[cfg(loom)]
    pub fn new(count: usize) -> Self {
        Semaphore {
            state: AtomicUsize::new(count * UNIT),
            waiters: WaitList::new(),
        }
    }

    /// A binary semaphore, free (`DEFINE_SEMAPHORE(name, 1)`).
    #[cfg(not(loom))]
    pub const fn new_unlocked() -> Self {
        Self::new(1)
    }

    /// A binary semaphore, taken (`DEFINE_SEMAPHORE(name, 0)`): the first `down`
    /// sleeps until someone calls `up`.
    #[cfg(not(loom))]
    pub const fn new_locked() -> Self {
        Self::new(0)
    }

    /// The free units now (a snapshot).
    pub fn count(&self) -> usize {
        self.state.load(Ordering::Relaxed) / UNIT
    }

    /// Takes a unit if one is free and nobody is queued. Acquire pairs with the
    /// Release `fetch_add` of the `up` that freed the unit.
    #[inline]
    fn try_fast(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & WAITERS == 0
            && s >= UNIT
            && self
                .state
                .compare_exchange(s, s - UNIT, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes a unit, sleeping uninterruptibly until one is free (`down`).
    ///
    /// # Panics
    /// With the `lockdep` feature, if called where sleeping is not allowed
    /// (even when a unit is free: the kernel's `might_sleep()`).
    #[inline]
    pub fn down(&self) {
        crate::lockdep::might_sleep();
        if !self.try_fast() {
            let r = self.down_slow(TaskState::Uninterruptible, None);
            debug_assert!(r.is_ok());
        }
    }

    /// Takes a unit, or fails if a signal arrives first (`down_interruptible`).
    ///
    /// # Errors
    /// [`Error::Interrupted`] (`-EINTR`) on a signal, [`Error::Killed`] on
    /// SIGKILL; the unit is not taken and the semaphore is as if the call never
    /// happened.
    #[inline]
    pub fn down_interruptible(&self) -> Result<()> {
        crate::lockdep::might_sleep();
        if self.try_fast() {
            return Ok(());
        }
        self.down_slow(TaskState::Interruptible, None)
    }

    /// Takes a unit, or fails if SIGKILL arrives first (`down_killable`).
    ///
    /// # Errors
    /// [`Error::Killed`] (`-EINTR`); the unit is not taken.
    #[inline]
    pub fn down_killable(&self) -> Result<()> {
        crate::lockdep::might_sleep();
        if self.try_fast() {
            return Ok(());
        }
        self.down_slow(TaskState::Killable, None)
    }

    /// Takes a unit, sleeping uninterruptibly for at most `timeout`
    /// (`down_timeout`).
    ///
    /// # Errors
    /// [`Error::TimedOut`] (`-ETIME`), never before `timeout` has passed; the
    /// unit is not taken.
    #[inline]
    pub fn down_timeout(&self, timeout: Duration) -> Result<()> {
        crate::lockdep::might_sleep();
        if self.try_fast() {
            return Ok(());
        }
        self.down_slow(
            TaskState::Uninterruptible,
            Instant::now().checked_add(timeout),
        )
    }

    /// Tries to take a unit without sleeping (`down_trylock`).
    ///
    /// The kernel's `down_trylock` returns 0 when it got the unit and nonzero
    /// when it did not; here that is `Ok(())` and `Err(Error::WouldBlock)`
    /// (`-EAGAIN`). [`try_down`](Self::try_down) is the same as a `bool` (`true`
    /// = acquired, the opposite of the C return value).
    ///
    /// # Errors
    /// [`Error::WouldBlock`] if no unit is free (or others are queued for one).
    #[inline]
    pub fn down_trylock(&self) -> Result<()> {
        if self.try_down() {
            Ok(())
        } else {
            Err(Error::WouldBlock)
        }
    }

    /// Tries to take a unit without sleeping; `true` if it got one.
    #[inline]
    pub fn try_down(&self) -> bool {
        let backoff = crate::Backoff::new();
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & WAITERS != 0 || s < UNIT {
                return false;
            }
            // Acquire as in `try_fast`.
            if self
                .state
                .compare_exchange_weak(s, s - UNIT, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
            backoff.spin();
        }
    }

    /// Returns a unit, handing it to the first sleeper if there is one (`up`).
    /// May be called by any task, and from irq context.
    #[inline]
    pub fn up(&self) {
        // Release pairs with the Acquire of whoever takes the unit (fast path CAS,
        // or the hand-off CAS in `dispatch`).
        let old = self.state.fetch_add(UNIT, Ordering::Release);
        debug_assert!(old <= usize::MAX - UNIT, "semaphore count overflow");
        if old & WAITERS != 0 {
            self.up_slow();
        }
    }

    /// Takes a unit (`down`) and returns a guard that gives it back (`up`) when dropped.
    ///
    /// ```
    /// use ksync::semaphore::Semaphore;
    /// let sem = Semaphore::new(1);
    /// {
    ///     let _g = sem.down_guard();
    ///     assert_eq!(sem.count(), 0);
    /// }
    /// assert_eq!(sem.count(), 1);
    /// ```
    #[inline]
    pub fn down_guard(&self) -> SemaphoreGuard<'_> {
        self.down();
        SemaphoreGuard { sem: self }
    }

    /// [`down_interruptible`](Self::down_interruptible) with a guard.
    ///
    /// # Errors
    /// As `down_interruptible`.
    #[inline]
    pub fn down_interruptible_guard(&self) -> Result<SemaphoreGuard<'_>> {
        self.down_interruptible()?;
        Ok(SemaphoreGuard { sem: self })
    }

    #[cold]
    fn up_slow(&self) {
        let mut woken = Detached::empty();
        {
            let l = self.waiters.lock();
            self.dispatch(&l, &mut woken);
        }
        woken.wake();
    }

    /// Under the lock: hands free units to queued waiters in FIFO order, and
    /// clears `WAITERS` once the queue is empty.
    fn dispatch(&self, l: &Locked<'_>, woken: &mut Detached) {
        loop {
            if l.is_empty() {
                // Relaxed: the flag only steers later callers to the lock; the
                // lock orders everything that matters.
                self.state.fetch_and(!WAITERS, Ordering::Relaxed);
                return;
            }
            let s = self.state.load(Ordering::Relaxed);
            if s < UNIT {
                return;
            }
            // Acquire pairs with the `up` that added the unit; the waiter gets it
            // through the Release/Acquire of its mark.
            if self
                .state
                .compare_exchange(s, s - UNIT, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                let got = l.detach_first(woken);
                debug_assert!(got);
            }
        }
    }

    #[cold]
    fn down_slow(&self, state: TaskState, deadline: Option<Instant>) -> Result<()> {
        // Spin a little while nobody is queued: a holder that is about to `up`
        // costs a few hundred cycles, a sleep and a wake-up 15-25 µs in a VM.
        // Once anyone is queued, FIFO order says: queue behind them.
        #[cfg(not(loom))]
        {
            let backoff = crate::Backoff::new();
            for _ in 0..SPINS {
                let s = self.state.load(Ordering::Relaxed);
                if s & WAITERS != 0 {
                    break;
                }
                if s >= UNIT && self.try_fast() {
                    return Ok(());
                }
                backoff.spin();
            }
        }
        let w = Waiter::new(true, state);
        let mut woken = Detached::empty();
        {
            let l = self.waiters.lock();
            // Nobody queued: the fast path may have failed on a CAS race only.
            if l.is_empty() {
                loop {
                    let s = self.state.load(Ordering::Relaxed);
                    if s < UNIT {
                        break;
                    }
                    if self
                        .state
                        .compare_exchange(s, s - UNIT, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Ok(());
                    }
                }
            }
            // SAFETY: `w` is fresh and stays on this frame until it is unlinked or
            // woken: `wait_woken` returns only then.
            unsafe { l.link(&w, false) };
            // Relaxed: an RMW, so every later `up` (in the word's modification
            // order) sees it and takes the lock; earlier ones left their unit in
            // the count, which `dispatch` below finds.
            self.state.fetch_or(WAITERS, Ordering::Relaxed);
            self.dispatch(&l, &mut woken);
        }
        // We may have handed the unit to ourselves (or to an earlier waiter).
        woken.wake();
        let mut woken = Detached::empty();
        let r = self.waiters.wait_woken(&w, state, deadline, |l| {
            // Still queued: unlinked, nothing taken. Keep the flag exact and pass
            // on any unit that sits in the count while others wait.
            self.dispatch(l, &mut woken)
        });
        woken.wake();
        r
    }
}

/// A unit of a [`Semaphore`], given back (`up`) when dropped.
#[must_use = "dropping the guard gives the unit back at once"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
}

impl Drop for SemaphoreGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sem.up();
    }
}

impl core::fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sched::{Signal, current};
    use std::sync::Arc;
    use std::sync::mpsc;

    fn sleeping(t: &crate::sched::Task) {
        while t.state() == TaskState::Running {
            std::thread::yield_now();
        }
    }

    #[test]
    fn counts() {
        let s = Semaphore::new(3);
        s.down();
        s.down();
        assert_eq!(s.count(), 1);
        assert_eq!(s.down_trylock(), Ok(()));
        assert_eq!(s.down_trylock(), Err(Error::WouldBlock));
        assert_eq!(Error::WouldBlock.errno(), -crate::error::errno::EAGAIN);
        s.up();
        s.up();
        s.up();
        assert_eq!(s.count(), 3);
        assert_eq!(Semaphore::new_locked().count(), 0);
        assert_eq!(Semaphore::new_unlocked().count(), 1);
    }

    #[test]
    fn up_hands_the_unit_to_the_sleeper() {
        let s = Arc::new(Semaphore::new_locked());
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            s2.down();
        });
        sleeping(&rx.recv().unwrap());
        s.up();
        t.join().unwrap();
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn interrupted_down_takes_nothing() {
        let s = Arc::new(Semaphore::new_locked());
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = s2.down_interruptible();
            crate::sched::flush_signals();
            r
        });
        let task = rx.recv().unwrap();
        sleeping(&task);
        task.send_signal(Signal::SIGINT);
        assert_eq!(t.join().unwrap(), Err(Error::Interrupted));
        assert_eq!(s.count(), 0);
        s.up();
        assert_eq!(s.count(), 1);
        assert!(s.try_down());
    }

    #[test]
    fn fifo_order() {
        let s = Arc::new(Semaphore::new_locked());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for i in 0..4 {
            let (tx, rx) = mpsc::channel();
            let (s2, o) = (s.clone(), order.clone());
            hs.push(std::thread::spawn(move || {
                tx.send(current()).unwrap();
                s2.down();
                o.lock().unwrap().push(i);
            }));
            // Queue them one after another.
            sleeping(&rx.recv().unwrap());
        }
        for _ in 0..4 {
            s.up();
        }
        for h in hs {
            h.join().unwrap();
        }
        // Units are handed out in queue order (the pushes may race, but the
        // set is complete and the count is conserved).
        assert_eq!(order.lock().unwrap().len(), 4);
        assert_eq!(s.count(), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    /// Two downers on one unit and one up: both get through, the count ends at 0
    /// (one unit, two downs, two ups in all) and nobody sleeps forever.
    #[test]
    fn loom_semaphore_units_conserved() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(1));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        s.down();
                        s.up();
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(s.count(), 1);
            assert_eq!(s.state.load(Ordering::Relaxed) & WAITERS, 0);
        });
    }

    /// An interruptible down racing an `up` and a signal: it either gets the unit
    /// (count stays 0) or fails and takes nothing (count 1). Never both, never
    /// neither.
    #[test]
    fn loom_semaphore_interrupted_down_vs_up() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0));
            let me = crate::sched::current();
            let s2 = s.clone();
            let up = loom::thread::spawn(move || s2.up());
            let sig = loom::thread::spawn(move || me.send_signal(crate::sched::Signal::SIGINT));
            let r = s.down_interruptible();
            up.join().unwrap();
            sig.join().unwrap();
            crate::sched::flush_signals();
            match r {
                Ok(()) => assert_eq!(s.count(), 0),
                Err(e) => {
                    assert_eq!(e, Error::Interrupted);
                    assert_eq!(s.count(), 1);
                }
            }
        });
    }

    /// A sleeper on a locked semaphore is woken by an `up` from another thread.
    #[test]
    fn loom_semaphore_up_wakes_sleeper() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0));
            let s2 = s.clone();
            let t = loom::thread::spawn(move || s2.up());
            s.down();
            t.join().unwrap();
            assert_eq!(s.count(), 0);
        });
    }
}
