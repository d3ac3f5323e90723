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
//! The policy is the sleeping locks' (DESIGN.md, "Key decisions"): a running
//! `down` may take a free unit past the sleepers (throughput: the unit does not
//! wait for a sleeper to wake up, 15–25 µs in a VM), the sleepers keep FIFO
//! order among themselves, a sleeper that has been first for [`HANDOFF_AFTER`]
//! (or been woken [`HANDOFF_WAKEUPS`] times in vain) gets the next unit handed
//! to it directly (no starvation), and an `up` wakes nobody while a contender
//! is awake to take the unit. A sleeper keeps a timer only while the
//! semaphore is busy: a `down` that waits for a unit nobody gives costs
//! nothing while it waits.
//!
//! One 64-bit word holds everything the fast paths and the wake-up decision
//! need, so that each of them is one atomic read-modify-write whose result is
//! exact (no store→load fence is needed anywhere: every decision reads the
//! word it changes); a `WaitList` (the wait engine, `sched::waitlist`, in its
//! irq-safe form, as `up` may run in an irq handler) holds the sleepers:
//!
//! | bits      | name       | meaning                                                        |
//! |-----------|------------|----------------------------------------------------------------|
//! | `18..64`  | count      | the free units (`UNIT` = bit 18)                               |
//! | `2..18`   | spinners   | awake contenders: downers polling for a unit, and waiters a kick woke (counted by their waker) |
//! | `1`       | `HANDOFF`  | the first sleeper has waited too long: free units are its, nobody else may take one |
//! | `0`       | `WAITERS`  | the list is non-empty                                          |
//!
//! `WAITERS` and `HANDOFF` mirror the list: after every change of the list,
//! under its lock, `settle` (or the kick that changed it) sets them to "the
//! list is non-empty" and "its first entry asked for hand-off"
//! (`Waiter::handoff`). The spinners field is changed by RMWs only, each by
//! the contender it counts, except that a kick counts the waiter it wakes.
//!
//! | operation | what it does |
//! |-----------|--------------|
//! | `down` (fast) | CAS `count - 1` if `count > 0` and no `HANDOFF` (one RMW) |
//! | `up`      | `fetch_add(UNIT)` (one RMW); if the old word shows sleepers and no awake contender, or `HANDOFF`: a kick |
//! | `down` (slow) | count itself a spinner, poll for a free unit (every pause: a unit caught at once lets the holder's work after its `up` overlap ours) for a bounded time (`SPIN_TIME`, 50 µs); then queue at the tail, uncount in the same CAS that sets the flags, and sleep |
//! | kick      | under the list lock, while a unit is free and nobody may take it (`stranded`): with `HANDOFF`, move a unit to the first sleeper (the wait engine's hand-off payload, `GRANTED`); without, wake the first sleeper and count it as a spinner |
//!
//! A woken sleeper polls as a spinner; if it loses the unit to a running
//! `down`, it queues again at the *front* (it keeps its place), and asks for
//! hand-off if it has waited long enough. A first sleeper that nobody wakes
//! (contenders keep trading the unit) asks for itself: while the semaphore
//! is busy, a sleeper wakes every [`HANDOFF_AFTER`] and asks if it is first.
//! Once a whole period passes with nothing on the slow paths (a count of
//! their events, `events`), a sleeper that is not first stops its timer and
//! is marked untimed, and the contenders time it instead: the list notes when
//! an untimed sleeper becomes first, and a spinning newcomer that sees it has
//! been first for [`HANDOFF_AFTER`] sets its `handoff` flag under the list
//! lock (and kicks), then queues behind it.
//!
//! **Why no unit or wake-up is lost.** Call the word *stranded* when a unit is
//! free, sleepers are queued, and either `HANDOFF` is set or no contender is
//! counted: nobody will take that unit unless a kick runs. Every operation
//! that can make the word stranded reads the exact result of its own RMW and
//! runs a kick if it did: the `up` whose `fetch_add` freed the unit; a spinner
//! that takes a unit and uncounts (a counting semaphore may have more units
//! free); a spinner that gives up (its queueing CAS uncounts it, and it kicks
//! under the lock after); a sleeper that leaves on a signal or a deadline; one
//! whose request sets `HANDOFF`. An `up` that saw a contender counted leaves
//! the unit to it: that contender either takes a unit or uncounts, and either
//! way checks for stranding. Since all of these are RMWs of one word, they
//! are totally ordered, and each sees the one before it. A kick's list
//! changes and flag changes happen together under the list lock, so the
//! flags a CAS sees describe the list.
//!
//! **Leaving early.** A sleeper interrupted or timed out while still queued
//! unlinks itself (it never took anything), settles the flags and kicks (it
//! may have been the first, with `HANDOFF`, or have absorbed a wake-up). One
//! that a kick already detached takes what the kick gave: a handed unit is
//! kept and the `down` succeeds — the hand-off came first, as in the kernel's
//! `__down_common`, which checks `waiter.up` before the signal; a plain
//! wake-up is given back by uncounting (and kicking if that strands the word)
//! before the error is returned. Either way the semaphore is as if the call
//! never happened, and no unit is lost or duplicated.

use crate::backoff::{Patience, now_ns};
use crate::error::{Error, Result};
use crate::loom::sync::atomic::{AtomicU64, Ordering};
use crate::sched::TaskState;
use crate::sched::waitlist::{Detached, FrontClock, Locked, WaitList, Waiter};
use std::time::{Duration, Instant};

/// The list is non-empty.
const WAITERS: u64 = 1;
/// The list's first entry asked for hand-off.
const HANDOFF: u64 = 2;
/// One awake contender in the spinners field.
const SPINNER: u64 = 4;
/// The spinners field (16 bits: a contender that finds it full sleeps at once).
const SPINNERS: u64 = 0xffff * SPINNER;
/// One free unit: the count is the word's top 46 bits.
const UNIT: u64 = SPINNERS + SPINNER;
/// The largest count.
const MAX_COUNT: u64 = u64::MAX / UNIT;
/// The grant (the wait engine's hand-off payload) of a sleeper that a kick
/// gave a unit: it owns the unit, the count no longer holds it.
const GRANTED: u32 = 2;

/// How long an awake contender (a downer whose fast path failed, or a sleeper
/// just woken) polls for a free unit before it sleeps: longer than a futex
/// wake-up costs in this VM (15–25 µs), as the mutex's spin.
#[cfg(not(loom))]
const SPIN_TIME: Duration = Duration::from_micros(50);
/// Under loom patience is always exhausted (one poll).
#[cfg(loom)]
const SPIN_TIME: Duration = Duration::ZERO;

/// How many polls (of one pause each, a few µs in all) a spinning contender
/// makes between two yields of its CPU.
const YIELD_EVERY: u32 = 256;

/// How many polls a spinning contender makes between two readings of the
/// clock for [`SPIN_TIME`]: a vDSO clock read costs as much as a few polls
/// in a VM, and every poll it delays is a hand-off it may catch late. Under
/// loom every poll (patience is always exhausted there: one poll).
const CLOCK_EVERY: u32 = if cfg!(loom) { 1 } else { 16 };

/// The starvation bound. A sleeper that has been first this long gets the
/// next unit handed to it (`HANDOFF`): its timer asks for it, or, if it sleeps
/// untimed (the semaphore was idle), a spinning contender that sees it asks
/// on its behalf (an `up` wakes nobody while a contender is awake, and the
/// contenders are who could keep a sleeper waiting for ever). A woken sleeper
/// that loses after waiting this long in all asks for itself when it
/// requeues.
pub const HANDOFF_AFTER: Duration = Duration::from_millis(1);

/// A sleeper woken this many times without getting a unit asks for hand-off.
pub const HANDOFF_WAKEUPS: u32 = if cfg!(loom) { 1 } else { 8 };

/// Whether the word needs a kick: sleepers queued, and either a unit reserved
/// for the first (`HANDOFF`) or no contender awake to take a free one.
#[inline(always)]
const fn needs_kick(s: u64) -> bool {
    s & WAITERS != 0 && (s & HANDOFF != 0 || s & SPINNERS == 0)
}

/// Whether a unit is free that nobody will take unless a kick runs (module
/// docs: "Why no unit or wake-up is lost").
#[inline(always)]
const fn stranded(s: u64) -> bool {
    s >= UNIT && needs_kick(s)
}

/// The flag bits that describe the list from `first` on (`None`: empty).
fn flags_from(first: Option<&Waiter>) -> u64 {
    match first {
        None => 0,
        Some(w) if w.handoff.get() => WAITERS | HANDOFF,
        Some(_) => WAITERS,
    }
}

/// What a downer whose fast path failed did on entering the slow path.
enum Entry {
    /// Took a free unit after all.
    Took,
    /// Counted itself a spinner.
    Counted,
    /// Neither: a hand-off is pending, or the spinners field is full; it
    /// queues at once.
    Queue,
}

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
    /// `count | spinners | HANDOFF | WAITERS`; see the module docs.
    state: AtomicU64,
    /// When the list's first entry became first, if it sleeps untimed:
    /// spinning contenders ask for hand-off on its behalf once it has waited
    /// [`HANDOFF_AFTER`] there.
    front_clock: FrontClock,
    /// Slow-path events (a contender entering, a spinner taking a unit, a
    /// kick), counted with plain loads and stores (an increment lost to a
    /// race does not matter): a sleeper whose timer finds the count as it
    /// left it knows the semaphore has been idle for a whole period, and
    /// stops its timer. Not in the loom build.
    #[cfg(not(loom))]
    events: core::sync::atomic::AtomicU32,
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
    /// If `count` does not fit (more than 2^46 - 1).
    #[doc(alias = "sema_init")]
    #[doc(alias = "DEFINE_SEMAPHORE")]
    #[cfg(not(loom))]
    pub const fn new(count: usize) -> Self {
        assert!(count as u64 <= MAX_COUNT, "semaphore count too large");
        Semaphore {
            state: AtomicU64::new(count as u64 * UNIT),
            front_clock: FrontClock::new(HANDOFF_AFTER),
            events: core::sync::atomic::AtomicU32::new(0),
            waiters: WaitList::new(),
        }
    }

    /// Makes the semaphore one with `count` free units and no waiter or
    /// spinner, forgetting the waiters: in the child of a fork, where they
    /// belong to the parent's other threads (see
    /// [`WaitList::reinit_after_fork`](crate::sched::waitlist::WaitList::reinit_after_fork)).
    ///
    /// # Safety
    /// As `WaitList::reinit_after_fork`; `count` is what the caller knows the
    /// count to be once the parent's other threads are gone (the units they
    /// held are theirs to give back, which they never will).
    #[cfg(not(loom))]
    pub(crate) unsafe fn reinit_after_fork(&self, count: usize) {
        assert!(count as u64 <= MAX_COUNT, "semaphore count too large");
        // SAFETY: the caller's contract.
        unsafe { self.waiters.reinit_after_fork() };
        self.front_clock.reset();
        self.state.store(count as u64 * UNIT, Ordering::Relaxed);
    }

    /// A semaphore with `count` free units (`sema_init`).
    #[cfg(loom)]
    pub fn new(count: usize) -> Self {
        Semaphore {
            state: AtomicU64::new(count as u64 * UNIT),
            front_clock: FrontClock::new(HANDOFF_AFTER),
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

    /// The free units now (a snapshot; a unit on its way to a sleeper that
    /// asked for hand-off counts until the kick moves it).
    pub fn count(&self) -> usize {
        (self.state.load(Ordering::Relaxed) / UNIT) as usize
    }

    /// Takes a unit if one is free and not reserved for a sleeper (`HANDOFF`).
    /// Acquire pairs with the Release `fetch_add` of the `up` that freed the
    /// unit (the CAS reads from it or from a later RMW in its release sequence).
    #[inline]
    fn try_fast(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & HANDOFF == 0
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
    #[doc(alias = "sema_p")] // Solaris
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
    #[doc(alias = "sema_p_sig")] // Solaris
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
    /// [`Error::WouldBlock`] if no unit is free (or the free one is reserved
    /// for a sleeper that has waited too long).
    #[inline]
    pub fn down_trylock(&self) -> Result<()> {
        if self.try_down() {
            Ok(())
        } else {
            Err(Error::WouldBlock)
        }
    }

    /// Tries to take a unit without sleeping; `true` if it got one. Like the
    /// kernel's, it takes a free unit even while others sleep for one, unless
    /// the first sleeper has waited long enough to have it handed over.
    #[inline]
    #[doc(alias = "sema_tryp")] // Solaris
    pub fn try_down(&self) -> bool {
        let backoff = crate::Backoff::new();
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & HANDOFF != 0 || s < UNIT {
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

    /// Returns a unit (`up`): it stays in the count for whoever runs to take it,
    /// unless the first sleeper asked for hand-off or nobody is awake to take
    /// it (then a kick hands it over or wakes the first sleeper). May be called
    /// by any task, and from irq context.
    #[inline]
    #[doc(alias = "sema_v")] // Solaris
    pub fn up(&self) {
        // Release pairs with the Acquire of whoever takes the unit (a down's CAS,
        // or the kick's CAS that moves it to a sleeper).
        let old = self.state.fetch_add(UNIT, Ordering::Release);
        if old >= MAX_COUNT * UNIT {
            self.up_overflow();
        }
        // The exact old word: if it showed a contender counted, that contender
        // checks for stranding when it stops (module docs).
        if needs_kick(old) {
            self.kick_slow();
        }
    }

    /// `up` found the count already at [`MAX_COUNT`]: its add wrapped the count
    /// to zero. Takes the add back (a `down` racing it saw no unit and waits
    /// or fails as it would have anyway), so no unit is lost, then panics, in
    /// every build.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn up_overflow(&self) -> ! {
        // Relaxed: undoes our own add; the count's units are ordered by the
        // downs' Acquire and the ups' Release as always.
        self.state.fetch_sub(UNIT, Ordering::Relaxed);
        panic!(
            "Semaphore::up: the count is already at its maximum ({MAX_COUNT}): an up() without its down()?"
        );
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

    /// Takes the list lock and kicks.
    #[cold]
    fn kick_slow(&self) {
        let mut woken = Detached::empty();
        {
            let l = self.waiters.lock();
            self.kick(&l, &mut woken);
        }
        woken.wake();
    }

    /// Under the list lock, while the word is stranded: hands a free unit to
    /// the first sleeper if it asked (`HANDOFF`), else wakes it and counts it
    /// as a spinner (once it is counted, the word is no longer stranded). Each
    /// step changes the count, the spinners and the flags in one CAS, and the
    /// list under the same lock, so the flags keep describing the list.
    fn kick(&self, l: &Locked<'_>, woken: &mut Detached) {
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if !stranded(s) {
                self.note_front(l);
                return;
            }
            let first = l
                .front()
                .expect("WAITERS is set only while the list is non-empty");
            let rest = flags_from(l.next_of(first));
            let (new, grant) = if s & HANDOFF != 0 {
                ((s - UNIT) & !(WAITERS | HANDOFF) | rest, GRANTED)
            } else {
                ((s + SPINNER) & !(WAITERS | HANDOFF) | rest, 0)
            };
            // Acquire (when it takes a unit): pairs with the `up` that freed it;
            // the sleeper gets it through its mark's Release/Acquire.
            if self
                .state
                .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.note_event();
                if grant == GRANTED {
                    l.hand_off(first, GRANTED, woken);
                } else {
                    l.take(first, woken);
                }
            }
        }
    }

    /// Under the list lock, after every change of the list (each ends with a
    /// kick): notes when its first entry became first, if that changed and
    /// it sleeps untimed.
    #[inline]
    fn note_front(&self, l: &Locked<'_>) {
        self.front_clock.note(l.front());
    }

    /// Counts a slow-path event (see `events`).
    #[inline]
    fn note_event(&self) {
        #[cfg(not(loom))]
        {
            let n = self.events.load(Ordering::Relaxed);
            self.events.store(n.wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// A spinning contender found that the untimed first sleeper has been
    /// first for [`HANDOFF_AFTER`]: asks for the next unit to be handed to
    /// it, on its behalf (it has no timer to ask with), and kicks (a free
    /// unit goes to it at once). `true` if a hand-off is pending or done: the
    /// contender stops polling and queues.
    #[cold]
    fn ask_handoff_for_first(&self) -> bool {
        let mut woken = Detached::empty();
        let asked = {
            let l = self.waiters.lock();
            match l.front() {
                // Again under the list lock, where the front clock is exact:
                // the front may have changed since the spinner looked.
                Some(first) if !first.handoff.get() && self.front_clock.waited(now_ns()) => {
                    // Under the lock: the flag of a linked entry is read by kicks.
                    first.handoff.set(true);
                    self.settle(&l, 0, &mut woken);
                    true
                }
                _ => false,
            }
        };
        woken.wake();
        asked
    }

    /// Under the list lock, after linking or unlinking an entry: sets the
    /// flags to describe the list, and subtracts `uncount` from the spinners
    /// (a contender that stops polling to sleep) in the same CAS. Then kicks.
    fn settle(&self, l: &Locked<'_>, uncount: u64, woken: &mut Detached) {
        let flags = flags_from(l.front());
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let new = (s - uncount) & !(WAITERS | HANDOFF) | flags;
            // Relaxed: no unit changes hands here; the kick below takes units
            // with its own Acquire CAS.
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.kick(l, woken);
    }

    /// A contender stops counting itself without a unit (a woken sleeper that
    /// leaves on a signal): if that strands the word, kick.
    fn uncount(&self) {
        // Relaxed: no unit changes hands; the RMW's exact result decides.
        let new = self.state.fetch_sub(SPINNER, Ordering::Relaxed) - SPINNER;
        if stranded(new) {
            self.kick_slow();
        }
    }

    /// Takes a free unit for a counted contender and uncounts it in one CAS,
    /// unless the unit is reserved (`HANDOFF`). If others still wait and units
    /// are left with nobody counted (a counting semaphore), kicks.
    fn take_counted(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s >= UNIT && s & HANDOFF == 0 {
            let new = s - UNIT - SPINNER;
            // Acquire as in `try_fast`.
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.note_event();
                    if stranded(new) {
                        self.kick_slow();
                    }
                    return true;
                }
                Err(now) => s = now,
            }
        }
        false
    }

    /// Entering the slow path: take a unit that came free after all, or count
    /// ourselves a spinner (not while a hand-off is pending: the unit is
    /// reserved, so queue behind the sleeper that asked).
    fn enter(&self) -> Entry {
        self.note_event();
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let (new, took) = if s & HANDOFF != 0 {
                return Entry::Queue;
            } else if s >= UNIT {
                (s - UNIT, true)
            } else if s & SPINNERS != SPINNERS {
                (s + SPINNER, false)
            } else {
                return Entry::Queue;
            };
            // Acquire as in `try_fast` (when it takes a unit).
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) if took => return Entry::Took,
                Ok(_) => return Entry::Counted,
                Err(now) => s = now,
            }
        }
    }

    /// A counted contender polls for a free unit for `SPIN_TIME`, once a
    /// pause (reading the clock every `CLOCK_EVERY` polls, yielding its CPU
    /// every `YIELD_EVERY`, so that on an oversubscribed machine the holder
    /// gets it), and not while a unit is reserved for a sleeper. `true`: took
    /// one and is uncounted; `false`: still counted (the caller queues,
    /// uncounting as it does).
    ///
    /// The polls are close together, unlike the mutex's (which double from
    /// 1 to 8 µs to leave a busy owner its bursts): a semaphore's holders
    /// commonly do work between their `up` and their next `down`, and a unit
    /// caught within a cache miss of its `up` keeps both CPUs busy — the
    /// poller's critical section overlaps the upper's other work — where a
    /// poll that comes later leaves the unit idle meanwhile (at 8 threads on
    /// 2 CPUs the hand-off gap is most of what a unit costs beyond its
    /// critical section). Polling with loads, the poller keeps a shared copy
    /// of the line: a poll misses only after the word changed, so closer
    /// polls cost the holder nothing more than its `up`'s one miss.
    fn spin(&self, newcomer: bool) -> bool {
        let patience = Patience::start();
        let mut polls = 0u32;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & HANDOFF != 0 {
                return false;
            }
            if s >= UNIT && self.take_counted() {
                return true;
            }
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(CLOCK_EVERY) {
                // One clock reading for both checks.
                let now = now_ns();
                // The first sleeper has waited its bound at the front: ask for
                // the next unit to be handed to it, and queue behind it. (Not
                // a sleeper just woken: it was ahead of that one, and keeps
                // its place when it requeues.)
                if newcomer
                    && s & WAITERS != 0
                    && self.front_clock.waited(now)
                    && self.ask_handoff_for_first()
                {
                    return false;
                }
                if patience.elapsed_at(now) >= SPIN_TIME.as_nanos() as u64 {
                    return false;
                }
            }
            if polls.is_multiple_of(YIELD_EVERY) {
                crate::arch::yield_now();
            }
            crate::arch::cpu_relax();
        }
    }

    #[cold]
    fn down_slow(&self, state: TaskState, deadline: Option<Instant>) -> Result<()> {
        let counted = match self.enter() {
            Entry::Took => return Ok(()),
            Entry::Counted => {
                if self.spin(true) {
                    return Ok(());
                }
                true
            }
            Entry::Queue => false,
        };
        self.down_queued(state, deadline, counted)
    }

    /// Queue, sleep, and on a plain wake-up poll as a spinner; requeue at the
    /// front on losing. `counted`: we are counted as a spinner now (the
    /// queueing CAS uncounts us).
    fn down_queued(
        &self,
        state: TaskState,
        deadline: Option<Instant>,
        mut counted: bool,
    ) -> Result<()> {
        let w = Waiter::new(true, state);
        #[cfg(not(loom))]
        let start = Instant::now();
        let mut wakeups = 0u32;
        loop {
            let mut woken = Detached::empty();
            {
                let l = self.waiters.lock();
                // SAFETY: `w` is linked only into this list and stays on this
                // frame until it is unlinked or marked: `sleep_queued` returns
                // only then (a requeue after a wake-up relinks it, resetting the
                // mark).
                unsafe { l.link(&w, wakeups > 0) };
                self.settle(&l, if counted { SPINNER } else { 0 }, &mut woken);
            }
            // The kick may have woken us (or handed us a unit), or others.
            woken.wake();
            if self.sleep_queued(&w, state, deadline)? {
                return Ok(());
            }
            // Woken, and counted as a spinner by the kick that woke us.
            if self.spin(false) {
                return Ok(());
            }
            counted = true;
            wakeups += 1;
            #[cfg(not(loom))]
            let long = wakeups >= HANDOFF_WAKEUPS || start.elapsed() >= HANDOFF_AFTER;
            #[cfg(loom)]
            let long = wakeups >= HANDOFF_WAKEUPS;
            // Unlinked (a kick took us off the list): only we read the flags.
            w.handoff.set(long);
            w.untimed.set(false);
        }
    }

    /// Sleeps until a kick detaches and marks `w`: `Ok(true)` if it handed us a
    /// unit, `Ok(false)` for a plain wake-up (we are counted as a spinner).
    /// While the semaphore is busy, wakes every [`HANDOFF_AFTER`] to ask for
    /// hand-off if it is first; once a whole period passed with no slow-path
    /// event (`events`), sleeps with no timer but the caller's deadline,
    /// marked untimed (spinners time it once it is first). On a signal or
    /// the deadline, leaves (module docs, "Leaving early").
    fn sleep_queued(
        &self,
        w: &Waiter,
        state: TaskState,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        if w.handoff.get() {
            // Requeued first, asking for hand-off: the next `up` hands us its
            // unit (which nobody else may take meanwhile), so wait for it
            // awake a little before paying for a sleep and a wake-up.
            let spin = crate::backoff::Spin::new();
            while !w.is_woken() && !spin.is_completed() {
                spin.snooze();
            }
        }
        // When we look next, and `events` when we last looked.
        #[cfg(not(loom))]
        let mut look_at = Some((
            Instant::now() + HANDOFF_AFTER,
            self.events.load(Ordering::Relaxed),
        ));
        loop {
            if w.is_woken() {
                return Ok(w.grant() == GRANTED);
            }
            #[cfg(not(loom))]
            let wake_at = match look_at {
                Some((at, _)) if !w.handoff.get() => Some(deadline.map_or(at, |d| d.min(at))),
                _ => deadline,
            };
            #[cfg(loom)]
            let wake_at = deadline;
            match crate::sched::sleep(state, wake_at) {
                // A wake-up, or a spurious one: the loop looks at the mark.
                Ok(()) => {}
                Err(Error::TimedOut) if deadline.is_none_or(|d| Instant::now() < d) => {
                    #[cfg(not(loom))]
                    {
                        let now = self.events.load(Ordering::Relaxed);
                        let idle = look_at.is_none_or(|(_, seen)| seen == now);
                        self.timer_ran_out(w, idle);
                        look_at = (!idle).then(|| (Instant::now() + HANDOFF_AFTER, now));
                    }
                }
                Err(e) => return self.leave(w, e),
            }
        }
    }

    /// A queued sleeper's timer ran out: if it is first, it asks for the next
    /// unit (and gets a free one at once, through the kick); if not, and
    /// nothing happened since its last look (`idle`), it is marked untimed,
    /// for spinners to time once it is first.
    #[cfg(not(loom))]
    #[cold]
    fn timer_ran_out(&self, w: &Waiter, idle: bool) {
        let mut woken = Detached::empty();
        {
            let l = self.waiters.lock();
            if l.front().is_some_and(|f| core::ptr::eq(f, w)) && !w.handoff.get() {
                // Under the lock: the flag of a linked entry is read by kicks.
                w.handoff.set(true);
                self.settle(&l, 0, &mut woken);
            } else if idle && l.is_linked(w) {
                // Under the lock: `note_front` reads a linked entry's flag.
                w.untimed.set(true);
            }
        }
        woken.wake();
    }

    /// Leaves the wait after `err` (a signal or the deadline): `Ok(true)` if a
    /// kick handed us a unit first, else `Err(err)`, with anything our entry
    /// absorbed passed on.
    #[cold]
    fn leave(&self, w: &Waiter, err: Error) -> Result<bool> {
        let mut woken = Detached::empty();
        let detached = self.waiters.leave(w, |l| self.settle(l, 0, &mut woken));
        woken.wake();
        if !detached {
            return Err(err);
        }
        if w.grant() == GRANTED {
            return Ok(true);
        }
        // A plain wake-up: its kick counted us. Give it back.
        self.uncount();
        Err(err)
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

    /// An `up` past the maximum panics in every build and loses no unit (it
    /// used to wrap the count to zero first, and to panic only in debug builds).
    #[test]
    fn up_past_the_maximum_panics_and_keeps_the_count() {
        let s = Semaphore::new(MAX_COUNT as usize);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.up()));
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("already at its maximum"), "{msg}");
        assert_eq!(s.count(), MAX_COUNT as usize);
        assert!(s.try_down());
        s.up(); // back at the maximum: allowed
    }
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

    /// Waits until `cond` holds; false after 30 s, a bound that only turns a
    /// hang into a failure.
    fn wait_until(cond: impl Fn() -> bool) -> bool {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while !cond() {
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// Waits until `s` has an untimed first sleeper that has been first for
    /// `HANDOFF_AFTER` (a state, not a sleep: on a slow machine it comes
    /// later, never earlier).
    fn wait_until_first_waited_too_long(s: &Semaphore) {
        assert!(
            wait_until(
                || s.state.load(Ordering::Relaxed) & WAITERS != 0 && s.front_clock.waited(now_ns())
            ),
            "the sleeper never queued"
        );
    }

    /// A sleeper stops its timer on an idle semaphore: `down`s on a semaphore
    /// that stays at 0 for many times `HANDOFF_AFTER` wake at most twice each
    /// (the first asks for hand-off; the others look until a whole period
    /// passes with nothing happening, and the later `down`s entering count
    /// as something), not every `HANDOFF_AFTER` (a thousand wake-ups a second
    /// for each idle waiter, as they did).
    #[test]
    fn downs_sleep_through_a_long_wait_woken_at_most_twice() {
        let s = Arc::new(Semaphore::new_locked());
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                let (tx, rx) = mpsc::channel();
                let s2 = s.clone();
                let t = std::thread::spawn(move || {
                    tx.send(current()).unwrap();
                    s2.down();
                });
                let task = rx.recv().unwrap();
                assert!(
                    wait_until(|| task.state() == TaskState::Uninterruptible),
                    "the down never went to sleep"
                );
                (t, task)
            })
            .collect();
        let before: Vec<u64> = sleepers
            .iter()
            .map(|(_, task)| crate::arch::sched::voluntary_switches(task.tid()))
            .collect();
        std::thread::sleep(HANDOFF_AFTER * 20);
        for ((_, task), before) in sleepers.iter().zip(before) {
            let woken = crate::arch::sched::voluntary_switches(task.tid()) - before;
            assert!(
                woken <= 2,
                "a sleeper woke {woken} times while no unit came"
            );
            assert!(wait_until(|| task.state() == TaskState::Uninterruptible));
        }
        for _ in 0..3 {
            s.up();
        }
        for (t, _) in sleepers {
            t.join().unwrap();
        }
        assert_eq!(s.state.load(Ordering::Relaxed), 0);
    }

    /// The starvation bound for an untimed sleeper: a first sleeper that no
    /// `up` would wake (a contender is awake) and that sleeps without a
    /// timer is asked for by that contender once it has been first for
    /// `HANDOFF_AFTER`; the contender queues behind it, and the next `up`
    /// hands the sleeper the unit.
    ///
    /// The sleeper must be first without having asked, and untimed: it
    /// queues second, behind one whose timer asks for itself; its own timer
    /// finds the semaphore idle, and it sleeps on untimed; then the first
    /// gets a unit, and it is first.
    #[test]
    fn a_spinner_asks_for_the_handoff_on_behalf_of_an_untimed_first_sleeper() {
        let s = Arc::new(Semaphore::new_locked());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let spawn_down = |name: &'static str| {
            let (tx, rx) = mpsc::channel();
            let (s, order) = (s.clone(), order.clone());
            let t = std::thread::spawn(move || {
                tx.send(current()).unwrap();
                s.down();
                order.lock().unwrap().push(name);
            });
            let task = rx.recv().unwrap();
            assert!(
                wait_until(|| task.state() == TaskState::Uninterruptible),
                "{name} never went to sleep"
            );
            (t, task)
        };
        let (first, _) = spawn_down("first");
        let (sleeper, sleeper_task) = spawn_down("sleeper");
        // The sleeper's timer: it wakes once, finds nothing happened, and
        // sleeps on without one, marked untimed.
        assert!(
            wait_until(|| {
                let l = s.waiters.lock();
                l.front()
                    .and_then(|f| l.next_of(f))
                    .is_some_and(|w| w.untimed.get())
            }),
            "the sleeper's timer never stopped"
        );
        assert!(wait_until(
            || sleeper_task.state() == TaskState::Uninterruptible
        ));
        // The first asked for itself (its timer); the unit goes to it.
        assert!(wait_until(
            || s.state.load(Ordering::Relaxed) == WAITERS | HANDOFF
        ));
        s.up();
        first.join().unwrap();
        wait_until_first_waited_too_long(&s);
        assert_eq!(s.state.load(Ordering::Relaxed), WAITERS);
        let (s3, order3) = (s.clone(), order.clone());
        let contender = std::thread::spawn(move || {
            s3.down();
            order3.lock().unwrap().push("contender");
        });
        // The contender spins, sees the first sleeper's time is up, and asks.
        assert!(
            wait_until(|| s.state.load(Ordering::Relaxed) & HANDOFF != 0),
            "the spinner never asked for hand-off on the sleeper's behalf"
        );
        s.up();
        sleeper.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["first", "sleeper"]);
        s.up();
        contender.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["first", "sleeper", "contender"]);
        assert_eq!(s.state.load(Ordering::Relaxed), 0);
    }

    /// A sleeper that asked for hand-off (the unit reserved for it) and is then
    /// interrupted leaves nothing behind: no flag, so running downs may take
    /// the next unit again.
    #[test]
    fn interrupted_after_asking_for_handoff_leaves_no_reservation() {
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
        assert!(
            wait_until(|| s.state.load(Ordering::Relaxed) & HANDOFF != 0),
            "the sleeper's timer never asked for hand-off"
        );
        task.send_signal(Signal::SIGINT);
        assert_eq!(t.join().unwrap(), Err(Error::Interrupted));
        assert_eq!(s.state.load(Ordering::Relaxed), 0);
        s.up();
        assert!(s.try_down());
    }

    /// A timed-out down while a holder keeps releasing and retaking the unit
    /// (barging past the sleeper) takes nothing and leaves no flag or
    /// spinner behind.
    #[test]
    fn timed_out_downs_against_a_barging_holder_leave_the_word_clean() {
        let s = Arc::new(Semaphore::new(1));
        let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let (s2, stop2) = (s.clone(), stop.clone());
        let holder = std::thread::spawn(move || {
            while !stop2.load(core::sync::atomic::Ordering::Relaxed) {
                s2.down();
                core::hint::spin_loop();
                s2.up();
            }
        });
        let (mut ok, mut timed_out) = (0, 0);
        for _ in 0..200 {
            match s.down_timeout(Duration::from_micros(20)) {
                Ok(()) => {
                    ok += 1;
                    s.up();
                }
                Err(e) => {
                    assert_eq!(e, Error::TimedOut);
                    timed_out += 1;
                }
            }
        }
        stop.store(true, core::sync::atomic::Ordering::Relaxed);
        holder.join().unwrap();
        assert_eq!(ok + timed_out, 200);
        assert_eq!(s.state.load(Ordering::Relaxed), UNIT);
    }

    /// 16 threads (more than the CPUs) on a binary semaphore used as a lock:
    /// mutual exclusion, every unit back, no flag or spinner left.
    #[test]
    fn stress_16_threads() {
        let s = Semaphore::new(1);
        let inside = core::sync::atomic::AtomicUsize::new(0);
        let total = core::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..16 {
                sc.spawn(|| {
                    for i in 0..2000 {
                        s.down();
                        let n = inside.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                        assert_eq!(n, 0, "two holders of a binary semaphore");
                        total.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                        inside.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
                        s.up();
                        if i % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                });
            }
        });
        assert_eq!(total.load(core::sync::atomic::Ordering::Relaxed), 16 * 2000);
        assert_eq!(s.state.load(Ordering::Relaxed), UNIT);
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
            // One unit, no flag, no spinner left counted.
            assert_eq!(s.state.load(Ordering::Relaxed), UNIT);
        });
    }

    /// Barging and hand-off: A takes the unit twice in a row (a running
    /// `down` may take it past a sleeper), B once. Under loom a sleeper asks
    /// for hand-off after one vain wake-up (`HANDOFF_WAKEUPS`), so A's second
    /// `down` either barges or finds the unit reserved for B and queues behind
    /// it. Nobody sleeps for ever (loom reports a deadlock) and the word ends
    /// exactly as it began.
    #[test]
    fn loom_semaphore_barging_and_handoff() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(1));
            let s2 = s.clone();
            let b = loom::thread::spawn(move || {
                s2.down();
                s2.up();
            });
            for _ in 0..2 {
                s.down();
                s.up();
            }
            b.join().unwrap();
            assert_eq!(s.state.load(Ordering::Relaxed), UNIT);
        });
    }

    /// A counting semaphore: two sleepers, two `up`s. The second unit must not
    /// be stranded while the first woken sleeper is counted awake (it kicks
    /// when it takes its unit and leaves a free one with nobody counted).
    #[test]
    fn loom_semaphore_two_units_two_sleepers() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.down())
                })
                .collect();
            s.up();
            s.up();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(s.state.load(Ordering::Relaxed), 0);
        });
    }

    /// An interrupted down against a barging holder: the holder releases and
    /// retakes the unit while the signal races; the down either gets a unit
    /// (and gives it back) or fails having taken nothing, and a wake-up it
    /// absorbed is passed on (else the holder's second `down` would hang).
    #[test]
    fn loom_semaphore_interrupted_down_vs_barging_holder() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(1));
            s.down();
            let me = crate::sched::current();
            let s2 = s.clone();
            let holder = loom::thread::spawn(move || {
                s2.up();
                s2.down();
                s2.up();
            });
            me.send_signal(crate::sched::Signal::SIGINT);
            let r = s.down_interruptible();
            if r.is_ok() {
                s.up();
            }
            holder.join().unwrap();
            crate::sched::flush_signals();
            assert_eq!(s.state.load(Ordering::Relaxed), UNIT);
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
                Ok(()) => assert_eq!(s.state.load(Ordering::Relaxed), 0),
                Err(e) => {
                    assert_eq!(e, Error::Interrupted);
                    assert_eq!(s.state.load(Ordering::Relaxed), UNIT);
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
