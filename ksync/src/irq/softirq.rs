//! Softirqs: the kernel's fixed table of deferred work, served per thread at
//! hardirq exit and at `local_bh_enable`, with `ksoftirqd` taking the overflow.
//!
//! # Where softirqs run, and why there
//!
//! Pending softirqs run on the thread that raised them:
//!
//! - at **hardirq exit** ([`irq_exit`]), when the outermost irq handler on the
//!   thread returns and the thread was not in a softirq or bh-disabled section —
//!   that is, *inside the irq signal handler*, as the kernel runs them on the
//!   interrupt's way out;
//! - at [`local_bh_enable`](super::local_bh_enable) when the bh count drops to
//!   zero, and at `local_irq_enable` for softirqs raised while irqs were off;
//! - in the per-process **`ksoftirqd`** thread, for softirqs raised from task
//!   context (as `raise_softirq` wakes `ksoftirqd` in the kernel) and for the
//!   work one pass leaves over: a pass restarts at most [`MAX_SOFTIRQ_RESTART`]
//!   times and for at most 2 ms (`MAX_SOFTIRQ_TIME`), then hands the thread's
//!   pending bits and tasklets to `ksoftirqd`.
//!
//! Running them inside the signal handler was chosen over deferring them out of
//! it because it is what the kernel model promises and what code written for it
//! relies on: work an irq handler defers runs *before the interrupted code
//! resumes*, with that thread's per-thread data, in bounded time even when the
//! interrupted thread spins forever in a loop that never re-enables anything.
//! Deferring to the next `local_bh_enable` would starve such a thread's
//! softirqs, and deferring everything to `ksoftirqd` would lose the per-thread
//! (per-CPU) affinity that makes softirq data lock-free. The price is the
//! kernel's own rule: **softirq actions, tasklet functions and timer callbacks
//! must be async-signal-safe** — they are atomic context already (no sleeping),
//! and in ksync additionally no allocation and no std locks (see the
//! [module docs](super#what-a-handler-may-call)).
//!
//! While a softirq is served the preempt count carries `SOFTIRQ_OFFSET`
//! ([`in_serving_softirq`](crate::ctx::in_serving_softirq)), so an irq that
//! arrives meanwhile does not start a second pass at its exit: a softirq never
//! preempts a softirq on the same thread. The same softirq may run on several
//! threads at once (as on several CPUs); tasklets are the serialized kind.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::local::{IrqLocal, LOCAL};
use super::sync::IrqSpinLock;
use crate::arch::time::now_ns;
use crate::ctx::{
    self, Deferred, HARDIRQ_OFFSET, SOFTIRQ_OFFSET, in_interrupt, irqs_disabled, preempt_count,
    preempt_count_add, preempt_count_sub,
};
use crate::error::{Error, Result};

/// The softirq numbers, in priority order (lower runs first), as the kernel's
/// `enum { HI_SOFTIRQ, TIMER_SOFTIRQ, ... }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Softirq {
    /// High-priority tasklets (`HI_SOFTIRQ`). Owned by ksync.
    #[doc(alias = "HI_SOFTIRQ")]
    Hi = 0,
    /// Timers (`TIMER_SOFTIRQ`). Owned by ksync.
    #[doc(alias = "TIMER_SOFTIRQ")]
    Timer = 1,
    /// Network transmit (`NET_TX_SOFTIRQ`).
    #[doc(alias = "NET_TX_SOFTIRQ")]
    NetTx = 2,
    /// Network receive (`NET_RX_SOFTIRQ`).
    #[doc(alias = "NET_RX_SOFTIRQ")]
    NetRx = 3,
    /// Block-layer completions (`BLOCK_SOFTIRQ`).
    #[doc(alias = "BLOCK_SOFTIRQ")]
    Block = 4,
    /// Interrupt polling (`IRQ_POLL_SOFTIRQ`).
    #[doc(alias = "IRQ_POLL_SOFTIRQ")]
    IrqPoll = 5,
    /// Ordinary tasklets (`TASKLET_SOFTIRQ`). Owned by ksync.
    #[doc(alias = "TASKLET_SOFTIRQ")]
    Tasklet = 6,
    /// Scheduler work (`SCHED_SOFTIRQ`).
    #[doc(alias = "SCHED_SOFTIRQ")]
    Sched = 7,
    /// High-resolution timers (`HRTIMER_SOFTIRQ`).
    #[doc(alias = "HRTIMER_SOFTIRQ")]
    Hrtimer = 8,
    /// RCU callbacks (`RCU_SOFTIRQ`).
    #[doc(alias = "RCU_SOFTIRQ")]
    Rcu = 9,
}

/// The number of softirqs (`NR_SOFTIRQS`).
pub const NR_SOFTIRQS: usize = 10;

/// How many times one pass re-checks for newly raised softirqs before handing
/// the rest to `ksoftirqd` (`MAX_SOFTIRQ_RESTART`).
pub const MAX_SOFTIRQ_RESTART: u32 = 10;

/// How long one pass may run before handing the rest to `ksoftirqd`
/// (`MAX_SOFTIRQ_TIME`, 2 ms).
const MAX_SOFTIRQ_TIME_NS: u64 = 2_000_000;

impl Softirq {
    /// Every softirq, in priority order.
    pub const ALL: [Softirq; NR_SOFTIRQS] = [
        Softirq::Hi,
        Softirq::Timer,
        Softirq::NetTx,
        Softirq::NetRx,
        Softirq::Block,
        Softirq::IrqPoll,
        Softirq::Tasklet,
        Softirq::Sched,
        Softirq::Hrtimer,
        Softirq::Rcu,
    ];

    /// The kernel's name for it, e.g. `"NET_RX"` (as in `/proc/softirqs`).
    pub const fn name(self) -> &'static str {
        [
            "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER",
            "RCU",
        ][self as usize]
    }

    /// How many times this softirq's action has run, on all threads.
    pub fn count(self) -> u64 {
        COUNTS[self as usize].load(Ordering::Relaxed)
    }

    /// Whether ksync implements this softirq itself (tasklets and timers).
    pub const fn is_builtin(self) -> bool {
        matches!(self, Softirq::Hi | Softirq::Timer | Softirq::Tasklet)
    }
}

/// The actions as `fn()` cast to `usize`; 0 = none. The built-in ones
/// (tasklets, timers) are set by their owners with [`open_builtin`] before they
/// first raise their softirq, the others by [`open_softirq`].
static ACTIONS: [AtomicUsize; NR_SOFTIRQS] = [const { AtomicUsize::new(0) }; NR_SOFTIRQS];
static COUNTS: [AtomicU64; NR_SOFTIRQS] = [const { AtomicU64::new(0) }; NR_SOFTIRQS];

/// Sets the action run for softirq `nr` (`open_softirq(nr, action)`), replacing
/// any previous one. The action runs in softirq context, possibly inside a
/// signal handler, and must be async-signal-safe.
///
/// # Errors
/// [`Error::Busy`] for the softirqs ksync implements itself (`HI`, `TIMER`,
/// `TASKLET`).
pub fn open_softirq(nr: Softirq, action: fn()) -> Result<()> {
    if nr.is_builtin() {
        return Err(Error::Busy);
    }
    // Release pairs with the Acquire load in `run_action`.
    ACTIONS[nr as usize].store(action as usize, Ordering::Release);
    start_ksoftirqd();
    Ok(())
}

/// Sets the action of a softirq ksync implements itself (`HI`, `TIMER`,
/// `TASKLET`), as the kernel's `softirq_init` and `init_timers` call
/// `open_softirq`. Its owner calls it before it first raises `nr`, so the
/// softirq layer needs no knowledge of tasklets or timers. Async-signal-safe.
#[inline]
pub(crate) fn open_builtin(nr: Softirq, action: fn()) {
    debug_assert!(nr.is_builtin());
    let slot = &ACTIONS[nr as usize];
    // Release pairs with the Acquire load in `run_action`; the load first keeps
    // the common case (already set) from writing a shared line.
    if slot.load(Ordering::Relaxed) == 0 {
        slot.store(action as usize, Ordering::Release);
    }
}

/// How the tasklets' per-thread lists move to and from `ksoftirqd`, as `fn`s
/// cast to `usize` (0: no tasklet was ever scheduled, so there is nothing to
/// move): `[give, take]`. `give` moves the calling thread's lists to the
/// shared ones, `take: fn() -> bool` moves the shared lists to the calling
/// thread's and says whether they held any; both run under the `ksoftirqd`
/// lock, which protects the shared lists. Set by [`open_handover`].
static HANDOVER: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

/// Sets the functions that move per-thread tasklet lists to `ksoftirqd` and
/// back (see [`HANDOVER`]), so that the softirq layer needs no knowledge of
/// tasklets. Called before the first tasklet is queued on a thread.
/// Async-signal-safe.
#[inline]
pub(crate) fn open_handover(give: fn(), take: fn() -> bool) {
    // Relaxed: `give` is called only by a thread that queued a tasklet, after
    // this call on that thread; `take` only by `ksoftirqd` after it took the
    // lock that the giving thread released after its own call here.
    if HANDOVER[0].load(Ordering::Relaxed) == 0 {
        HANDOVER[1].store(take as usize, Ordering::Relaxed);
        HANDOVER[0].store(give as usize, Ordering::Relaxed);
    }
}

/// Moves this thread's tasklets to `ksoftirqd`'s lists. Under the `ksoftirqd`
/// lock.
fn give_tasklets() {
    let give = HANDOVER[0].load(Ordering::Relaxed);
    if give != 0 {
        // SAFETY: nonzero values of `HANDOVER[0]` are `fn()`s stored by
        // `open_handover`.
        let give: fn() = unsafe { core::mem::transmute::<usize, fn()>(give) };
        give();
    }
}

/// Moves `ksoftirqd`'s lists of tasklets to this thread's; whether there were
/// any. Under the `ksoftirqd` lock.
fn take_tasklets() -> bool {
    let take = HANDOVER[1].load(Ordering::Relaxed);
    if take == 0 {
        return false;
    }
    // SAFETY: nonzero values of `HANDOVER[1]` are `fn() -> bool`s stored by
    // `open_handover`.
    let take: fn() -> bool = unsafe { core::mem::transmute::<usize, fn() -> bool>(take) };
    take()
}

/// Marks softirq `nr` pending on this thread; irqs must be disabled or the
/// caller in interrupt context (`raise_softirq_irqoff`). Outside interrupt
/// context (task context with bhs enabled) it wakes `ksoftirqd` to run it, as
/// the kernel does; inside, it runs at irq exit or `local_bh_enable`.
/// Async-signal-safe.
pub fn raise_softirq_irqoff(nr: Softirq) {
    LOCAL.with(|l| {
        l.softirq_pending
            .fetch_or(1 << nr as u32, Ordering::Relaxed);
        ctx::defer_work(Deferred::Softirqs, run_deferred_softirqs);
        if !in_interrupt() {
            wakeup_softirqd(l);
        }
    });
}

/// [`raise_softirq_irqoff`] with irqs disabled around it (`raise_softirq`).
pub fn raise_softirq(nr: Softirq) {
    let flags = super::local_irq_save();
    raise_softirq_irqoff(nr);
    super::local_irq_restore(flags);
}

/// Leaves hardirq context (`irq_exit()`): drops the hardirq count and, if this
/// was the outermost irq and bottom halves are enabled, runs pending softirqs.
///
/// # Panics
/// Without a matching [`irq_enter`](super::irq_enter).
pub fn irq_exit() {
    preempt_count_sub(HARDIRQ_OFFSET);
    if preempt_count() & ctx::HARDIRQ_MASK == 0 {
        // Out of the outermost hardirq: back to the default that a hardirq
        // emulated by the preempt count alone gets (see `irq_enter`).
        ctx::set_hardirq_threaded(true);
    }
    LOCAL.with(run_pending_if_allowed);
}

/// Runs this thread's pending softirqs now if not in interrupt context
/// (`do_softirq()`).
pub fn do_softirq() {
    LOCAL.with(run_pending_if_allowed);
}

/// The runner of [`Deferred::Softirqs`], called by `local_bh_enable`,
/// `local_irq_enable` and `local_irq_restore` (through [`ctx`]) when softirqs
/// were raised on this thread: runs them if this is no interrupt context and
/// irqs are on.
#[cold]
#[inline(never)]
fn run_deferred_softirqs() {
    ctx::take_deferred(Deferred::Softirqs);
    LOCAL.with(|l| {
        run_pending_if_allowed(l);
        // Not allowed here (bhs or irqs still off, an interrupt context), or
        // raised again: leave the bit set for the next enable.
        if l.softirq_pending.load(Ordering::Relaxed) != 0 {
            ctx::defer_work(Deferred::Softirqs, run_deferred_softirqs);
        }
    });
    // Irqs held during the pass beyond its windows (one per window) run now
    // that it is over, if irqs are on: each handler's own exit serves the
    // softirqs it raises.
    if !irqs_disabled() && !in_interrupt() {
        let flags = super::local_irq_save();
        super::local_irq_restore(flags);
    }
}

pub(crate) fn run_pending_if_allowed(l: &IrqLocal) {
    if l.softirq_pending.load(Ordering::Relaxed) != 0 && !in_interrupt() && !irqs_disabled() {
        do_softirq_pass(l);
    }
}

/// `__do_softirq`: serves pending softirqs in priority order, restarting while
/// new ones are raised, within the restart and time bounds.
fn do_softirq_pass(l: &IrqLocal) {
    preempt_count_add(SOFTIRQ_OFFSET);
    let start = now_ns();
    let mut restart = MAX_SOFTIRQ_RESTART;
    loop {
        let mut pending = l.softirq_pending.swap(0, Ordering::Relaxed);
        while pending != 0 {
            let nr = pending.trailing_zeros();
            pending &= pending - 1;
            run_action(nr as usize);
            irq_window(l);
        }
        if l.softirq_pending.load(Ordering::Relaxed) == 0 {
            break;
        }
        restart -= 1;
        if restart == 0 || now_ns().wrapping_sub(start) > MAX_SOFTIRQ_TIME_NS {
            wakeup_softirqd(l);
            break;
        }
    }
    preempt_count_sub(SOFTIRQ_OFFSET);
    // After the count drops: an irq arriving from here on does not hold the
    // signal (it no longer interrupts a pass), one that arrived before did.
    release_held_irqs(l);
}

/// The kernel serves softirqs with irqs enabled, so irqs that arrive meanwhile
/// are taken one at a time, the softirq code running on between them. ksync's
/// irqs queue rather than coalesce, so a pass opens that window itself between
/// two actions: the irq signal is unblocked if an irq that interrupted the pass
/// left it blocked (the next queued irq is delivered now), and an irq held
/// pending meanwhile is replayed (a save/restore pair runs the held-irq replay,
/// which stops after a handler that raised a softirq). Async-signal-safe.
fn irq_window(l: &IrqLocal) {
    release_held_irqs(l);
    let flags = super::local_irq_save();
    super::local_irq_restore(flags);
}

/// Unblocks the irq signal if an irq that interrupted this pass left it
/// blocked (see the irq signal handler). Async-signal-safe.
fn release_held_irqs(l: &IrqLocal) {
    let sig = l.irq_held.swap(0, Ordering::Relaxed);
    if sig != 0 {
        crate::arch::signal::unblock(sig);
    }
}

fn run_action(nr: usize) {
    let count = preempt_count();
    COUNTS[nr].fetch_add(1, Ordering::Relaxed);
    // Acquire pairs with the Release stores in `open_softirq` and `open_builtin`.
    let a = ACTIONS[nr].load(Ordering::Acquire);
    if a != 0 {
        // SAFETY: nonzero entries are `fn()`s stored by `open_softirq` or
        // `open_builtin`.
        let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(a) };
        f();
    }
    fixup_count(
        count,
        b"ksync: softirq action returned with a changed preempt count; fixed up\n",
    );
}

/// The kernel's "huh, entered softirq with preempt_count X, exited with Y?":
/// restores the count a handler or action left unbalanced, and says so on
/// stderr (with `write(2)`, which is async-signal-safe). Panicking is not an
/// option inside a signal handler.
pub(crate) fn fixup_count(expected: u32, msg: &'static [u8]) {
    let now = preempt_count();
    if now != expected {
        if now > expected {
            preempt_count_sub(now - expected);
        } else {
            preempt_count_add(expected - now);
        }
        crate::arch::signal::write_stderr(msg);
    }
}

/// The `ksoftirqd` thread's queue: softirq bits handed over by threads, under
/// `lock` (which also protects the tasklet lists handed over, see
/// [`HANDOVER`]).
struct Ksoftirqd {
    lock: IrqSpinLock,
    pending: AtomicU32,
    /// Bumped on every hand-over; the thread futex-waits on it.
    word: AtomicU32,
    started: AtomicBool,
}

static KSOFTIRQD: Ksoftirqd = Ksoftirqd {
    lock: IrqSpinLock::new(),
    pending: AtomicU32::new(0),
    word: AtomicU32::new(0),
    started: AtomicBool::new(false),
};

/// Serializes the start of `ksoftirqd` (and is held across a `fork`, see
/// [`super::fork`]).
pub(super) static START: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// Whether this thread is `ksoftirqd`.
    static IS_KSOFTIRQD: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Starts `ksoftirqd` if it is not running (task context only: it spawns a
/// thread).
pub(crate) fn start_ksoftirqd() {
    if KSOFTIRQD.started.load(Ordering::Acquire) {
        return;
    }
    // Marked: a fork from a signal handler here must not wait for it.
    let _g = crate::arch::lock_marked(&START);
    if KSOFTIRQD.started.load(Ordering::Relaxed) {
        return;
    }
    if std::thread::Builder::new()
        .name("ksoftirqd".into())
        .spawn(ksoftirqd_main)
        .is_ok()
    {
        // Release pairs with the Acquire load above and in `wakeup_softirqd`.
        KSOFTIRQD.started.store(true, Ordering::Release);
    }
}

/// Hands this thread's pending softirqs and tasklets to `ksoftirqd`
/// (`wakeup_softirqd`). In a signal handler before `ksoftirqd` exists (it cannot
/// be spawned there) the work stays pending on this thread.
fn wakeup_softirqd(l: &IrqLocal) {
    if !KSOFTIRQD.started.load(Ordering::Acquire) {
        if l.in_signal.load(Ordering::Relaxed) != 0 {
            return;
        }
        start_ksoftirqd();
        if !KSOFTIRQD.started.load(Ordering::Acquire) {
            return;
        }
    }
    let flags = KSOFTIRQD.lock.lock();
    let bits = l.softirq_pending.swap(0, Ordering::Relaxed);
    give_tasklets();
    KSOFTIRQD.pending.fetch_or(bits, Ordering::Relaxed);
    // Release: the queue contents (written under the lock) are visible to the
    // thread once it sees the new word value (Acquire load in `ksoftirqd_main`);
    // it also takes the lock before reading them.
    KSOFTIRQD.word.fetch_add(1, Ordering::Release);
    KSOFTIRQD.lock.unlock(flags);
    futex_wake(&KSOFTIRQD.word);
}

/// Takes the `ksoftirqd` queue's lock for a `fork` (irqs off until
/// [`fork_unlock`]), so that no other thread is inside it when the child is
/// made.
#[cfg(not(loom))]
pub(super) fn fork_lock() -> ctx::IrqFlags {
    KSOFTIRQD.lock.lock_unmarked()
}

/// Lets go of what [`fork_lock`] took.
#[cfg(not(loom))]
pub(super) fn fork_unlock(flags: ctx::IrqFlags) {
    KSOFTIRQD.lock.unlock_unmarked(flags);
}

/// In the child of a `fork`, alone and under [`fork_lock`]: the parent's
/// `ksoftirqd` is not in the child, so it is marked as not started; returns
/// whether it ran in the parent (and is to be started again). The queue and
/// the tasklets handed over stay, for the new thread. If the forking thread
/// is `ksoftirqd` itself, it still is in the child and nothing changes.
#[cfg(not(loom))]
pub(super) fn forget_ksoftirqd_in_child() -> bool {
    if IS_KSOFTIRQD.with(core::cell::Cell::get) {
        return false;
    }
    KSOFTIRQD.started.swap(false, Ordering::Relaxed)
}

fn ksoftirqd_main() {
    IS_KSOFTIRQD.with(|k| k.set(true));
    let mut busy_streak = 0u32;
    loop {
        // Acquire pairs with the Release increment in `wakeup_softirqd`.
        let seen = KSOFTIRQD.word.load(Ordering::Acquire);
        let took = LOCAL.with(|l| {
            let flags = KSOFTIRQD.lock.lock();
            let bits = KSOFTIRQD.pending.swap(0, Ordering::Relaxed);
            let lists = take_tasklets();
            l.softirq_pending.fetch_or(bits, Ordering::Relaxed);
            ctx::defer_work(Deferred::Softirqs, run_deferred_softirqs);
            // The unlock re-enables irqs, which serves the softirqs just taken
            // (task context, bhs enabled); the pass hands leftovers back to us.
            KSOFTIRQD.lock.unlock(flags);
            run_pending_if_allowed(l);
            bits != 0 || lists
        });
        if took {
            // Work that keeps coming back (a disabled tasklet re-queued forever)
            // must not burn a CPU: yield, and nap after a long busy streak.
            busy_streak += 1;
            if busy_streak > 16 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            } else {
                crate::arch::yield_now();
            }
        } else {
            busy_streak = 0;
            futex_wait(&KSOFTIRQD.word, seen);
        }
    }
}

/// Futex wait on a plain atomic (the loom shim's futex takes loom atomics, and
/// signal handlers are outside what loom models).
pub(crate) fn futex_wait(word: &AtomicU32, seen: u32) {
    #[cfg(not(loom))]
    crate::arch::futex::wait(word, seen, None);
    #[cfg(loom)]
    {
        let _ = (word, seen);
        crate::arch::yield_now();
    }
}

/// Futex wake of one waiter; async-signal-safe (one system call).
pub(crate) fn futex_wake(word: &AtomicU32) {
    #[cfg(not(loom))]
    crate::arch::futex::wake_one(word);
    #[cfg(loom)]
    let _ = word;
}
