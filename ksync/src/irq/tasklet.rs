//! Tasklets: deferred functions that never run on two threads at once.
//!
//! # State word
//!
//! | bit | name | set by | cleared by |
//! |---|---|---|---|
//! | 0 | `SCHED` | [`Tasklet::schedule`] (the one that sets it queues the tasklet) | the runner, just before calling the function |
//! | 1 | `RUN` | the runner (a try-lock: only one thread runs it) | the runner, after the function returns |
//! | 2–31 | generation | whoever sets `SCHED` from clear: the fork generation then | — |
//!
//! The generation counts the forks this process descends from (modulo 2^30).
//! `SCHED` and `RUN` hold only in the generation stamped beside them: in a
//! child of `fork`, a tasklet that was queued on, or running on, a thread the
//! child lacks keeps the parent's bits, which mean nothing there, and is idle
//! — it can be scheduled again and killed. The child's fork handler
//! ([`restamp_in_child`]) bumps the generation and stamps the new one on the
//! tasklets that are still somewhere: on the forking thread's lists, on its
//! run in progress, and handed to `ksoftirqd`.
//!
//! `count` is the disable depth: a tasklet taken off a list while disabled (or
//! while `RUN` is held by another thread) is queued again and its softirq
//! re-raised, as the kernel's `tasklet_action` does.
//!
//! A tasklet is linked into the scheduling thread's list through its own `next`
//! field (intrusive: scheduling never allocates, so irq handlers may schedule).
//! That is why tasklets are `&'static`: a list may hold one until it runs, on
//! any thread. Put them in a `static`, or `Box::leak` one made at run time.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use super::softirq::{self, Softirq, raise_softirq_irqoff};
use crate::Backoff;
use crate::ctx::{local_irq_restore, local_irq_save};

/// An intrusive FIFO of tasklets linked through `Tasklet::next`. The owner
/// changes it only with irqs disabled (thread lists) or under a lock (the
/// `ksoftirqd` list).
struct TaskletList {
    pub(crate) head: AtomicPtr<Tasklet>,
    pub(crate) tail: AtomicPtr<Tasklet>,
}

impl TaskletList {
    pub(crate) const fn new() -> Self {
        TaskletList {
            head: AtomicPtr::new(ptr::null_mut()),
            tail: AtomicPtr::new(ptr::null_mut()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Appends `t`. The caller excludes every other user of the list (irqs off
    /// for a thread list, the lock for a shared one) and owns `t`'s link (it set
    /// `TASKLET_STATE_SCHED`, or took `t` off another list).
    pub(crate) fn push(&self, t: &'static Tasklet) {
        let p = t as *const Tasklet as *mut Tasklet;
        t.next.store(ptr::null_mut(), Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        if tail.is_null() {
            self.head.store(p, Ordering::Relaxed);
        } else {
            // SAFETY: list entries are `&'static Tasklet`s (see `push`'s argument).
            unsafe { &*tail }.next.store(p, Ordering::Relaxed);
        }
        self.tail.store(p, Ordering::Relaxed);
    }

    /// Takes the whole list, leaving it empty; returns its head.
    pub(crate) fn take(&self) -> *mut Tasklet {
        let head = self.head.load(Ordering::Relaxed);
        self.head.store(ptr::null_mut(), Ordering::Relaxed);
        self.tail.store(ptr::null_mut(), Ordering::Relaxed);
        head
    }

    /// Moves every entry of `other` to the end of this list.
    pub(crate) fn splice(&self, other: &TaskletList) {
        let oh = other.head.load(Ordering::Relaxed);
        if oh.is_null() {
            return;
        }
        let ot = other.tail.load(Ordering::Relaxed);
        other.take();
        let tail = self.tail.load(Ordering::Relaxed);
        if tail.is_null() {
            self.head.store(oh, Ordering::Relaxed);
        } else {
            // SAFETY: list entries are `&'static Tasklet`s.
            unsafe { &*tail }.next.store(oh, Ordering::Relaxed);
        }
        self.tail.store(ot, Ordering::Relaxed);
    }
}

thread_local! {
    /// This thread's `[TASKLET_SOFTIRQ list, HI_SOFTIRQ list]`, changed only with
    /// irqs off. Const-initialised, no destructor (atomics only): reachable from
    /// the irq signal handler.
    static TASKLETS: [TaskletList; 2] = const { [TaskletList::new(), TaskletList::new()] };
}

/// Tasklets handed to `ksoftirqd` (`[TASKLET_SOFTIRQ, HI_SOFTIRQ]`), protected
/// by the `ksoftirqd` lock, which the softirq layer holds when it calls
/// [`give_to_ksoftirqd`] and [`take_from_ksoftirqd`].
static HANDED: [TaskletList; 2] = [TaskletList::new(), TaskletList::new()];

/// Moves this thread's tasklets to [`HANDED`] (under the `ksoftirqd` lock, irqs off).
fn give_to_ksoftirqd() {
    TASKLETS.with(|own| {
        HANDED[0].splice(&own[0]);
        HANDED[1].splice(&own[1]);
    });
}

/// Moves [`HANDED`] to this thread's lists (under the `ksoftirqd` lock, irqs
/// off); whether it held any tasklet.
fn take_from_ksoftirqd() -> bool {
    let any = !HANDED[0].is_empty() || !HANDED[1].is_empty();
    TASKLETS.with(|own| {
        own[0].splice(&HANDED[0]);
        own[1].splice(&HANDED[1]);
    });
    any
}

const SCHED: u32 = 1;
const RUN: u32 = 2;
/// The bits of the state word below the generation.
const BITS: u32 = SCHED | RUN;
/// Where the generation starts in the state word.
const GEN_SHIFT: u32 = 2;

/// The fork generation: bumped (only) in a child of `fork`, by
/// [`restamp_in_child`], while the child has one thread.
static GEN: AtomicU32 = AtomicU32::new(0);

/// The current generation, in place in a state word.
#[inline]
fn stamp() -> u32 {
    GEN.load(Ordering::Relaxed) << GEN_SHIFT
}

/// The bits of state word `s` that hold: none if they were set in another
/// generation (by a thread of a parent process).
#[inline]
fn live(s: u32) -> u32 {
    if s & !BITS == stamp() { s & BITS } else { 0 }
}

thread_local! {
    /// This thread's run in progress in [`tasklet_action`]: the tasklet whose
    /// function runs (null between functions) and the rest of the list it
    /// took, for [`restamp_in_child`]. Const-initialised, no destructor.
    static RUNNING: [core::cell::Cell<*mut Tasklet>; 2] =
        const { [core::cell::Cell::new(ptr::null_mut()), core::cell::Cell::new(ptr::null_mut())] };
}

/// In a child of `fork`, alone, irqs off, holding the `ksoftirqd` lock: starts
/// a new generation and stamps it on the tasklets the child still has — the
/// forking thread's lists and its run in progress, and the ones handed to
/// `ksoftirqd`. Every other tasklet's `SCHED` and `RUN` were set by threads
/// the child lacks, and no longer hold. (No fork handlers under loom.)
#[cfg(not(loom))]
pub(super) fn restamp_in_child() {
    let old = stamp();
    GEN.store(
        GEN.load(Ordering::Relaxed).wrapping_add(1) & (u32::MAX >> GEN_SHIFT),
        Ordering::Relaxed,
    );
    let new = stamp();
    let restamp_chain = |mut p: *mut Tasklet| {
        while !p.is_null() {
            // SAFETY: lists and runs hold only `&'static Tasklet`s.
            let t: &'static Tasklet = unsafe { &*p };
            // On a list of ours: scheduled, in the new generation; running
            // only if it is the one our run in progress is calling.
            let run = RUNNING.with(|r| core::ptr::eq(r[0].get(), p)) as u32 * RUN;
            t.state.store(new | SCHED | run, Ordering::Relaxed);
            p = t.next.load(Ordering::Relaxed);
        }
    };
    TASKLETS.with(|own| {
        restamp_chain(own[0].head.load(Ordering::Relaxed));
        restamp_chain(own[1].head.load(Ordering::Relaxed));
    });
    restamp_chain(HANDED[0].head.load(Ordering::Relaxed));
    restamp_chain(HANDED[1].head.load(Ordering::Relaxed));
    RUNNING.with(|r| {
        restamp_chain(r[1].get());
        let cur = r[0].get();
        if !cur.is_null() {
            // SAFETY: as above.
            let t: &'static Tasklet = unsafe { &*cur };
            let s = t.state.load(Ordering::Relaxed);
            // Not found on a list of ours above: it runs here, and a `SCHED`
            // it has again belongs to a list the child lacks.
            if s & !BITS == old {
                t.state.store(new | RUN, Ordering::Relaxed);
            }
        }
    });
}

/// A tasklet (`struct tasklet_struct`): a function and its data, run once per
/// scheduling in softirq context, never concurrently with itself.
///
/// ```
/// use ksync::irq::Tasklet;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
/// fn work(data: usize) {
///     assert!(ksync::sched::in_serving_softirq());
///     RUNS.fetch_add(data, Ordering::Relaxed);
/// }
/// static T: Tasklet = Tasklet::new(work, 1);
///
/// // The kernel idiom: schedule with bottom halves off, run at local_bh_enable.
/// ksync::irq::local_bh_disable();
/// T.schedule();
/// T.schedule(); // already pending: runs once
/// ksync::irq::local_bh_enable();
/// assert_eq!(RUNS.load(Ordering::Relaxed), 1);
/// T.kill();
/// ```
pub struct Tasklet {
    state: AtomicU32,
    count: AtomicU32,
    /// The list link; owned by whoever set `SCHED` (or took it off a list).
    pub(crate) next: AtomicPtr<Tasklet>,
    func: fn(usize),
    data: usize,
}

impl Tasklet {
    /// A tasklet that calls `func(data)` (`DECLARE_TASKLET`, `tasklet_init`,
    /// `tasklet_setup`). The function runs in softirq context, possibly inside a
    /// signal handler: it must be async-signal-safe.
    #[doc(alias = "tasklet_init")]
    #[doc(alias = "DECLARE_TASKLET")]
    #[doc(alias = "tasklet_setup")]
    pub const fn new(func: fn(usize), data: usize) -> Tasklet {
        Tasklet {
            state: AtomicU32::new(0),
            count: AtomicU32::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            func,
            data,
        }
    }

    /// The data word given to [`Tasklet::new`].
    pub fn data(&self) -> usize {
        self.data
    }

    /// Schedules the tasklet on this thread's `TASKLET_SOFTIRQ` list
    /// (`tasklet_schedule`). If it is already scheduled and has not started
    /// running, nothing happens: it runs once. From an irq handler or with bhs
    /// disabled it runs at irq exit / `local_bh_enable` on this thread; from
    /// plain task context `ksoftirqd` runs it. Async-signal-safe.
    #[doc(alias = "tasklet_schedule")]
    pub fn schedule(&'static self) {
        self.schedule_on(0, Softirq::Tasklet);
    }

    /// As [`schedule`](Self::schedule), on the high-priority list
    /// (`HI_SOFTIRQ`, run before every other softirq) — `tasklet_hi_schedule`.
    #[doc(alias = "tasklet_hi_schedule")]
    pub fn hi_schedule(&'static self) {
        self.schedule_on(1, Softirq::Hi);
    }

    fn schedule_on(&'static self, list: usize, nr: Softirq) {
        // The thread that sets the bit owns the `next` link.
        if self.claim_sched() {
            let flags = local_irq_save();
            softirq::open_handover(give_to_ksoftirqd, take_from_ksoftirqd);
            TASKLETS.with(|l| l[list].push(self));
            softirq::open_builtin(
                nr,
                if list == 0 {
                    tasklet_softirq
                } else {
                    tasklet_hi_softirq
                },
            );
            raise_softirq_irqoff(nr);
            local_irq_restore(flags);
        }
    }

    /// Sets `SCHED` if it is clear (or stale: another generation's), stamping
    /// this generation; whether it did, and so owns the `next` link.
    ///
    /// Always one successful RMW, even when `SCHED` is set already (it then
    /// writes the word back unchanged), as `test_and_set_bit` is a full
    /// barrier either way: AcqRel's Release publishes the caller's writes to
    /// the run that will clear `SCHED` (its AcqRel `fetch_and` reads this
    /// RMW's value or a later one), so a tasklet scheduled again before it
    /// starts running sees what its second scheduler wrote.
    #[inline]
    fn claim_sched(&self) -> bool {
        let now = stamp();
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let bits = live(s);
            let (new, claims) = if bits & SCHED != 0 {
                (s, false)
            } else {
                (now | bits | SCHED, true)
            };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return claims,
                Err(x) => s = x,
            }
        }
    }

    /// Whether the tasklet is scheduled and has not started running.
    pub fn is_scheduled(&self) -> bool {
        live(self.state.load(Ordering::Relaxed)) & SCHED != 0
    }

    /// Whether the tasklet's function is running now, on any thread.
    pub fn is_running(&self) -> bool {
        live(self.state.load(Ordering::Relaxed)) & RUN != 0
    }

    /// Disables the tasklet without waiting (`tasklet_disable_nosync`): it may
    /// still be scheduled but will not run until [`enable`](Self::enable)d.
    #[doc(alias = "tasklet_disable_nosync")]
    pub fn disable_nosync(&self) {
        // SeqCst: the runner's count check after taking RUN must see this, or we
        // see its RUN bit in `unlock_wait` (`smp_mb__after_atomic` in the kernel).
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// Disables the tasklet and waits until it is not running on any thread
    /// (`tasklet_disable`). Nests; each needs an [`enable`](Self::enable).
    /// Calling it from the tasklet's own function deadlocks.
    #[doc(alias = "tasklet_disable")]
    pub fn disable(&self) {
        self.disable_nosync();
        self.unlock_wait();
    }

    /// Re-enables the tasklet (`tasklet_enable`).
    ///
    /// # Panics
    /// If it was not disabled.
    #[doc(alias = "tasklet_enable")]
    pub fn enable(&self) {
        // Release: what the disabler did is visible to the next run (Acquire count
        // load in `tasklet_action`).
        let old = self.count.fetch_sub(1, Ordering::Release);
        if old == 0 {
            self.count.fetch_add(1, Ordering::Relaxed);
            panic!("ksync: tasklet_enable on a tasklet that is not disabled");
        }
    }

    /// Waits until the function is not running on any thread (`tasklet_unlock_wait`).
    #[doc(alias = "tasklet_unlock_wait")]
    pub fn unlock_wait(&self) {
        let backoff = Backoff::new();
        // Acquire pairs with the runner's Release clear of RUN: its writes are
        // visible once we see the bit clear.
        while live(self.state.load(Ordering::Acquire)) & RUN != 0 {
            backoff.snooze();
        }
    }

    /// Waits until the tasklet is neither scheduled nor running, keeping it from
    /// being scheduled meanwhile (`tasklet_kill`). A tasklet that is scheduled
    /// while disabled is waited for until it is enabled and has run.
    ///
    /// # Panics
    /// In interrupt context (it waits for softirqs, which cannot run there).
    #[doc(alias = "tasklet_kill")]
    pub fn kill(&'static self) {
        if crate::ctx::in_interrupt() {
            panic!("ksync: tasklet_kill called from interrupt context");
        }
        let backoff = Backoff::new();
        // Own SCHED ourselves, so nobody queues it while we wait.
        while !self.claim_sched() {
            // It may be on this thread's own list (raised with irqs off).
            softirq::do_softirq();
            backoff.snooze();
        }
        self.unlock_wait();
        self.state.fetch_and(!SCHED, Ordering::Release);
    }
}

impl core::fmt::Debug for Tasklet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tasklet")
            .field("scheduled", &self.is_scheduled())
            .field("running", &self.is_running())
            .field("disabled", &(self.count.load(Ordering::Relaxed) != 0))
            .field("data", &self.data)
            .finish()
    }
}

/// `TASKLET_SOFTIRQ`'s action (`tasklet_action`).
fn tasklet_softirq() {
    TASKLETS.with(|l| tasklet_action(&l[0], 0));
}

/// `HI_SOFTIRQ`'s action (`tasklet_hi_action`).
fn tasklet_hi_softirq() {
    TASKLETS.with(|l| tasklet_action(&l[1], 1));
}

/// Runs the tasklets on this thread's list `list` (0: `TASKLET_SOFTIRQ`,
/// 1: `HI_SOFTIRQ`), in softirq context.
fn tasklet_action(own: &TaskletList, list: usize) {
    let nr = if list == 0 {
        Softirq::Tasklet
    } else {
        Softirq::Hi
    };
    let flags = local_irq_save();
    let mut p = own.take();
    local_irq_restore(flags);
    while !p.is_null() {
        // SAFETY: lists hold only `&'static Tasklet`s (`schedule_on` takes one).
        let t: &'static Tasklet = unsafe { &*p };
        let p_cur = p;
        p = t.next.load(Ordering::Relaxed);
        // Acquire pairs with the Release clear of RUN by the previous runner.
        if t.state.fetch_or(RUN, Ordering::Acquire) & RUN == 0 {
            if t.count.load(Ordering::SeqCst) == 0 {
                if t.state.fetch_and(!SCHED, Ordering::AcqRel) & SCHED == 0 {
                    let msg = b"ksync: tasklet on a list without TASKLET_STATE_SCHED\n";
                    crate::arch::signal::write_stderr(msg);
                }
                // For a fork inside the function (`restamp_in_child`).
                RUNNING.with(|r| {
                    r[0].set(p_cur);
                    r[1].set(p);
                });
                (t.func)(t.data);
                RUNNING.with(|r| {
                    r[0].set(ptr::null_mut());
                    r[1].set(ptr::null_mut());
                });
                // Release pairs with the Acquire RUN try-lock of the next runner and
                // with `unlock_wait`.
                t.state.fetch_and(!RUN, Ordering::Release);
                continue;
            }
            t.state.fetch_and(!RUN, Ordering::Release);
        }
        // Disabled, or running on another thread: queue it again.
        let flags = local_irq_save();
        own.push(t);
        raise_softirq_irqoff(nr);
        local_irq_restore(flags);
    }
}
