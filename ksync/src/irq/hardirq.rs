//! Hard interrupts: irq lines, the real-time signal that carries them, the
//! handler that dispatches them, and the replay of irqs held pending while a
//! thread had irqs disabled.
//!
//! # Implementation details
//!
//! `raise_irq` sends `irq_signal()` with `rt_tgsigqueueinfo(2)`: `si_code` is
//! `SI_QUEUE`, `si_pid` our pid and `si_value` carries `IRQ_TAG << 32 | line`, so
//! the handler knows which line was raised and can tell ksync's signals from any
//! other sender's. Real-time signals queue one entry per send, which is why each
//! raise runs the handler exactly once.
//!
//! The signal is installed without `SA_NODEFER`: the kernel blocks it while the
//! handler starts, so queued irqs are delivered one frame at a time (with
//! `SA_NODEFER` a burst of queued signals would stack one frame per signal before
//! any handler ran). Once the handler has marked its line in progress it unblocks
//! the signal so that other lines nest; an arrival of a line that is in progress
//! (or of any line while irqs are disabled) only bumps the line's pending count
//! and returns. `sigreturn` restores the interrupted code's mask.
//!
//! Per line, in the shared descriptor table: the handler (a `fn` pointer as
//! `usize`, 0 = free), the number of threads running it now (`active`, for
//! `synchronize_irq`) and the number of times it ran (`count`).

use core::ffi::c_void;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::local::LOCAL;
use super::threaded::{self, IrqHardHandler, IrqReturn, IrqThread, IrqThreadFn};
use crate::arch::signal::{self, ErrnoGuard, SigInfo};
use crate::ctx::{
    self, Deferred, HARDIRQ_OFFSET, in_serving_softirq, irqs_disabled, preempt_count,
    preempt_count_add,
};
use crate::error::{Error, Result};
use crate::sched::Task;

/// The number of irq lines (`NR_IRQS`): lines are `0..NR_IRQS`.
pub const NR_IRQS: usize = 16;

/// The timer interrupt's line (as IRQ 0, the PIT's, on a PC). Owned by ksync's
/// timer code: [`request_irq`](super::request_irq) refuses it.
pub const TIMER_IRQ: u32 = 0;

/// An irq handler (`irq_handler_t`): called with the line number, in hardirq
/// context, inside a signal handler. Must be async-signal-safe (see the
/// [module docs](super#what-a-handler-may-call)).
pub type IrqHandler = fn(u32);

/// This thread's irq lines (per thread, as the kernel's are per CPU). Every
/// field is touched only by its own thread, in task context or in the irq
/// signal handlers that interrupt it; a handler runs to completion before the
/// code it interrupted resumes, so the fields are atomics only to make that
/// interleaving well defined (Relaxed throughout), and read-modify-writes are
/// single instructions a signal cannot split.
struct Lines {
    /// Bit `n`: line `n`'s handler runs now on this thread.
    in_progress: AtomicU32,
    /// Sum of `pending`: the fast "anything to replay?" check.
    pending_total: AtomicU32,
    /// Raises of line `n` not yet handled (held while irqs are off or the line
    /// is in progress).
    pending: [AtomicU32; NR_IRQS],
    /// Arrival stamp of the oldest pending raise of line `n` (replay order).
    first_seq: [AtomicU64; NR_IRQS],
    /// The next arrival stamp.
    seq: AtomicU64,
}

thread_local! {
    /// Const-initialised, no destructor (atomics only): reachable from the irq
    /// signal handler.
    static LINES: Lines = const {
        Lines {
            in_progress: AtomicU32::new(0),
            pending_total: AtomicU32::new(0),
            pending: [const { AtomicU32::new(0) }; NR_IRQS],
            first_seq: [const { AtomicU64::new(0) }; NR_IRQS],
            seq: AtomicU64::new(0),
        }
    };
}

/// The tag in the upper half of `si_value` that marks a signal as ksync's irq.
const IRQ_TAG: u64 = 0x6b73_796e; // "ksyn"

/// `IrqDesc::handler` of a line that `free_irq` is unbinding: taken, but
/// with no handler to run (no function lives at address 1).
const FREEING: usize = 1;

struct IrqDesc {
    /// The handler as a `fn(u32)` cast to `usize` (an [`IrqHardHandler`] for a
    /// threaded line: its `thread.thread_fn` is nonzero); 0 when the line is
    /// free, [`FREEING`] while `free_irq` unbinds it.
    handler: AtomicUsize,
    /// The thread side of a threaded line.
    thread: IrqThread,
    /// Threads running this line's handler now.
    active: AtomicU32,
    /// Handler runs so far (`kstat_irqs`).
    count: AtomicU64,
}

static DESCS: [IrqDesc; NR_IRQS] = [const {
    IrqDesc {
        handler: AtomicUsize::new(0),
        thread: IrqThread::new(),
        active: AtomicU32::new(0),
        count: AtomicU64::new(0),
    }
}; NR_IRQS];

/// Names given to `request_irq`, for [`irq_name`]; never touched by a handler.
static NAMES: Mutex<[Option<&'static str>; NR_IRQS]> = Mutex::new([None; NR_IRQS]);

/// The installed signal number; 0 until the handler is installed.
static SIGNO: AtomicI32 = AtomicI32::new(0);
/// Guards installation.
static INSTALL: Mutex<()> = Mutex::new(());
/// Signals of our number that were not ksync irqs, or irqs of a freed line.
static SPURIOUS: AtomicU64 = AtomicU64::new(0);

/// The real-time signal that carries irqs: `SIGRTMAX - 3` unless the
/// environment variable `KSYNC_IRQ_SIGNAL` named another one when the first
/// irq was requested.
pub fn irq_signal() -> i32 {
    match SIGNO.load(Ordering::Acquire) {
        0 => chosen_signal(),
        s => s,
    }
}

fn chosen_signal() -> i32 {
    std::env::var("KSYNC_IRQ_SIGNAL")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| signal::sigrtmax() - 3)
}

fn install() -> Result<()> {
    // Marked: a fork from a signal handler here must not wait for it.
    let _g = crate::arch::lock_marked(&INSTALL);
    if SIGNO.load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    let sig = chosen_signal();
    if !(signal::sigrtmin()..=signal::sigrtmax()).contains(&sig) {
        return Err(Error::InvalidArgument);
    }
    if signal::has_handler(sig)? {
        return Err(Error::Busy); // the program's own handler: leave it alone
    }
    signal::install_info_handler(sig, irq_signal_handler)?;
    // Release pairs with the Acquire loads in `raise_irq_tid`: a raiser that sees
    // the number sees the handler installed.
    SIGNO.store(sig, Ordering::Release);
    Ok(())
}

fn check_line(irq: u32) -> Result<&'static IrqDesc> {
    DESCS.get(irq as usize).ok_or(Error::InvalidArgument)
}

/// Binds `handler` to line `irq` on behalf of [`request_irq`](super::request_irq)
/// (which refuses [`TIMER_IRQ`]) and of the timer code; installs the irq signal
/// handler on first use.
///
/// # Errors
/// As [`request_irq`](super::request_irq).
pub(crate) fn request(irq: u32, handler: IrqHandler, name: &'static str) -> Result<()> {
    bind(irq, handler as usize, 0, name)
}

/// Binds the hard handler `handler` (its address) and the thread function
/// `thread_fn` (0: none) to line `irq`, under the names lock that orders
/// every binding and unbinding.
fn bind(irq: u32, handler: usize, thread_fn: usize, name: &'static str) -> Result<()> {
    let desc = check_line(irq)?;
    install()?;
    let mut names = crate::arch::lock_marked(&NAMES);
    if desc.handler.load(Ordering::Relaxed) != 0 {
        return Err(Error::Busy);
    }
    // Relaxed: published by the SeqCst store of the handler below, which the
    // dispatcher loads (SeqCst) before it reads this.
    desc.thread.thread_fn.store(thread_fn, Ordering::Relaxed);
    // SeqCst pairs with the handler dispatch's `active` increment and load (see
    // `free_irq`); here it only needs to publish the handler (Release).
    desc.handler.store(handler, Ordering::SeqCst);
    names[irq as usize] = Some(name);
    Ok(())
}

/// The hard handler of a threaded line requested without one
/// (`irq_default_primary_handler`): wakes the thread.
fn irq_default_primary_handler(_irq: u32) -> IrqReturn {
    IrqReturn::WakeThread
}

/// Binds a threaded handler to line `irq` on behalf of
/// [`request_threaded_irq`](super::request_threaded_irq), and starts the
/// line's thread.
///
/// # Errors
/// As [`request_threaded_irq`](super::request_threaded_irq).
pub(crate) fn request_threaded(
    irq: u32,
    handler: Option<IrqHardHandler>,
    thread_fn: IrqThreadFn,
    name: &'static str,
) -> Result<()> {
    let desc = check_line(irq)?;
    let hard = handler.unwrap_or(irq_default_primary_handler);
    bind(irq, hard as usize, thread_fn as usize, name)?;
    // A wake before the thread exists leaves `RUN` set: it runs at its start.
    if let Err(e) = threaded::start(irq, &desc.thread, name) {
        let _ = free_irq(irq);
        return Err(e);
    }
    Ok(())
}

/// Unbinds line `irq` and waits until no thread runs its handler any more
/// (`free_irq`, which calls `synchronize_irq`); for a threaded line, also until
/// its thread function is done, and then stops and joins the line's thread.
/// Irqs of the line raised but not yet delivered are then counted as spurious.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad or ksync-owned line, [`Error::NotFound`]
/// if it had no handler.
///
/// # Panics
/// When called from the line's own handler on this thread, or from its thread
/// function (it would wait for itself).
pub fn free_irq(irq: u32) -> Result<()> {
    let desc = check_line(irq)?;
    if irq == TIMER_IRQ {
        return Err(Error::InvalidArgument);
    }
    let mut names = crate::arch::lock_marked(&NAMES);
    // Relaxed: every binding and unbinding holds the names lock, as here.
    if desc.handler.load(Ordering::Relaxed) <= FREEING {
        return Err(Error::NotFound);
    }
    // SeqCst: store→load against the dispatcher's `active` increment then
    // handler load. Either the dispatcher sees FREEING, or `synchronize_irq`
    // sees it active. FREEING keeps the line taken (`bind` refuses it) until
    // its thread is gone.
    desc.handler.store(FREEING, Ordering::SeqCst);
    names[irq as usize] = None;
    drop(names);
    synchronize_irq(irq);
    if desc.thread.thread_fn.load(Ordering::Relaxed) != 0 {
        threaded::stop(&desc.thread);
    }
    // SeqCst, as the other stores of `handler`: the line is free again.
    desc.handler.store(0, Ordering::SeqCst);
    Ok(())
}

/// Waits until no thread is running line `irq`'s handler (`synchronize_irq`),
/// and for a threaded line until its thread function has served every wake
/// the hard handlers gave it.
///
/// # Panics
/// When called from that handler on this thread or from the line's thread
/// function, or for a line `>= NR_IRQS`
/// (with the error [`raise_irq`] returns for it, [`Error::InvalidArgument`],
/// and the line named: the kernel's `synchronize_irq` returns nothing either).
pub fn synchronize_irq(irq: u32) {
    let desc = match check_line(irq) {
        Ok(desc) => desc,
        Err(e) => {
            panic!("ksync: synchronize_irq({irq}): no such irq line, lines are 0..{NR_IRQS}: {e}")
        }
    };
    if LINES.with(|l| l.in_progress.load(Ordering::Relaxed)) & (1 << irq) != 0 {
        panic!("ksync: synchronize_irq({irq}) called from irq {irq}'s own handler: deadlock");
    }
    if threaded::is_thread_of(irq) {
        panic!("ksync: synchronize_irq({irq}) called from irq {irq}'s thread function: deadlock");
    }
    let backoff = crate::Backoff::new();
    // SeqCst pairs with the dispatcher (see `free_irq`).
    while desc.active.load(Ordering::SeqCst) != 0 {
        backoff.snooze();
    }
    // The hard handlers are done, so no new wake comes from one that ran
    // before this call.
    while !desc.thread.idle() {
        backoff.snooze();
    }
}

/// What a `fork` holds of the lines: the installation lock, the names lock
/// (which orders every binding and unbinding) and every line's thread slot
/// (see [`super::fork`]).
#[cfg(not(loom))]
pub(super) struct ForkHold {
    _install: std::sync::MutexGuard<'static, ()>,
    _names: std::sync::MutexGuard<'static, [Option<&'static str>; NR_IRQS]>,
    slots: [threaded::SlotGuard; NR_IRQS],
}

/// Takes the locks of [`ForkHold`]. Called with the timer's and
/// `ksoftirqd`'s start locks held (the order `ensure_ticker` takes them in),
/// before the irq-disabling spinlocks.
#[cfg(not(loom))]
pub(super) fn fork_lock() -> ForkHold {
    // Unmarked (see `ForkLockMark`): the fork handler's own. `install` and
    // `bind` nest them in this order; the names lock is held only for a few
    // stores, never across a wait.
    let install = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    ForkHold {
        _install: install,
        _names: names,
        slots: core::array::from_fn(|i| threaded::lock_slot(&DESCS[i].thread)),
    }
}

/// In the child of a `fork`, alone and under [`fork_lock`]: only the
/// handlers running on this thread still run, so every line's `active`
/// count becomes this thread's share of it (or `synchronize_irq` would wait
/// for ever for handlers on threads the child lacks); an unbinding that such
/// a thread had begun is finished; and each threaded line's thread is
/// forgotten. Returns the lines whose thread is to be started again, with
/// their names.
#[cfg(not(loom))]
pub(super) fn reset_in_child(hold: &mut ForkHold) -> [Option<&'static str>; NR_IRQS] {
    let mine = LINES.with(|l| l.in_progress.load(Ordering::Relaxed));
    core::array::from_fn(|i| {
        let desc = &DESCS[i];
        desc.active.store((mine >> i) & 1, Ordering::Relaxed);
        let freeing = desc.handler.load(Ordering::Relaxed) == FREEING;
        let name = threaded::reset_in_child(i as u32, &desc.thread, &mut hold.slots[i], !freeing);
        if freeing && !threaded::is_thread_of(i as u32) {
            desc.handler.store(0, Ordering::Relaxed);
        }
        name
    })
}

/// In the child of a `fork`, after the locks are let go: starts the threads
/// [`reset_in_child`] listed. A line whose thread cannot be started is
/// unbound, as `request_threaded_irq` leaves a line whose thread it cannot
/// start, and said so on stderr.
#[cfg(not(loom))]
pub(super) fn restart_threads_in_child(names: [Option<&'static str>; NR_IRQS]) {
    for (irq, name) in names.into_iter().enumerate() {
        let Some(name) = name else { continue };
        if threaded::start(irq as u32, &DESCS[irq].thread, name).is_err() {
            signal::write_stderr(
                b"ksync: an irq thread could not be started in a forked child; its line is freed\n",
            );
            let _ = free_irq(irq as u32);
        }
    }
}

/// How many times line `irq`'s handler has run, on all threads (`kstat_irqs`).
/// 0 for lines out of range.
pub fn irq_count(irq: u32) -> u64 {
    DESCS
        .get(irq as usize)
        .map_or(0, |d| d.count.load(Ordering::Relaxed))
}

/// The name line `irq` was requested with.
pub fn irq_name(irq: u32) -> Option<&'static str> {
    crate::arch::lock_marked(&NAMES)
        .get(irq as usize)
        .copied()
        .flatten()
}

/// Signals of the irq number that were not ksync irqs, and irqs that arrived
/// for a line with no handler (the kernel's "nobody cared" count).
pub fn spurious_count() -> u64 {
    SPURIOUS.load(Ordering::Relaxed)
}

/// Raises line `irq` on `task`'s thread: its handler runs there asynchronously,
/// once for this raise (or, if that thread has irqs disabled, at its next
/// `local_irq_enable`/`local_irq_restore`). Raising at the calling thread runs
/// the handler before this returns (when irqs are enabled).
///
/// Everything the caller wrote before `raise_irq` is visible to the handler:
/// sending and delivering the signal both take the target's signal lock in the
/// kernel, which orders them like a release/acquire pair. Async-signal-safe:
/// handlers may raise irqs.
///
/// # Errors
/// - [`Error::InvalidArgument`]: `irq >= NR_IRQS`;
/// - [`Error::NotFound`]: no handler is bound to the line, or the thread exited;
/// - [`Error::WouldBlock`]: the kernel's queue of pending signals is full
///   (`RLIMIT_SIGPENDING`); nothing was raised, try again later.
#[doc(alias = "generic_handle_irq")]
pub fn raise_irq(irq: u32, task: &Task) -> Result<()> {
    if task.has_exited() {
        return Err(Error::NotFound);
    }
    raise_irq_tid(irq, task.tid())
}

/// [`raise_irq`] for a thread named by its kernel thread id (`gettid`), which
/// must be a thread of this process. Async-signal-safe.
///
/// # Errors
/// As [`raise_irq`].
pub fn raise_irq_tid(irq: u32, tid: i32) -> Result<()> {
    let desc = check_line(irq)?;
    // Acquire pairs with the Release store in `install`.
    let sig = SIGNO.load(Ordering::Acquire);
    if sig == 0 || desc.handler.load(Ordering::Relaxed) <= FREEING {
        return Err(Error::NotFound);
    }
    signal::queue_to_thread(tid, sig, IRQ_TAG << 32 | irq as u64)
}

/// The irq signal's handler. Async-signal-safe: thread-local atomics, the
/// handlers (which must be), and `pthread_sigmask`.
extern "C" fn irq_signal_handler(sig: i32, info: *mut SigInfo, uc: *mut c_void) {
    // Restore errno on return, so the interrupted code never sees our system
    // calls' errors.
    let _errno = ErrnoGuard::save();
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo.
    let value = unsafe { signal::queued_value(info) };
    match value {
        Some(v) if v >> 32 == IRQ_TAG && ((v as u32) as usize) < NR_IRQS => {
            LINES.with(|l| arrived(l, v as u32));
            if in_serving_softirq() {
                // This irq interrupted a softirq pass: return to it with the
                // irq signal blocked, so that the pass runs on before the next
                // queued irq is delivered; it unblocks the signal after each
                // action (and at its end). Without this, a queue of raised irqs
                // is delivered frame after frame before the interrupted pass
                // runs one more instruction, and a storm starves the softirqs
                // its own handlers raise. In the kernel each irq's return lets
                // the interrupted softirq run on, which this restores.
                // SAFETY: `uc` is this running handler's ucontext.
                unsafe { signal::block_on_return(uc, sig) };
                LOCAL.with(|x| x.irq_held.store(sig, Ordering::Relaxed));
            }
        }
        _ => {
            SPURIOUS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One delivery of line `irq` to this thread, in its signal handler.
fn arrived(l: &Lines, irq: u32) {
    let bit = 1u32 << irq;
    LOCAL.with(|x| x.in_signal.fetch_add(1, Ordering::Relaxed));
    if irqs_disabled() || l.in_progress.load(Ordering::Relaxed) & bit != 0 {
        defer(l, irq);
    } else {
        // Mark the line before unblocking, so its next arrival is deferred rather
        // than re-entering the handler.
        l.in_progress.fetch_or(bit, Ordering::Relaxed);
        unblock_irq_signal();
        run_handler(l, irq);
        replay(l);
    }
    LOCAL.with(|x| x.in_signal.fetch_sub(1, Ordering::Relaxed));
}

/// Lets irqs of other lines nest in this handler. `sigreturn` restores the
/// interrupted code's mask afterwards.
fn unblock_irq_signal() {
    signal::unblock(SIGNO.load(Ordering::Relaxed));
}

/// Holds one raise of `irq` pending on this thread.
fn defer(l: &Lines, irq: u32) {
    let n = irq as usize;
    if l.pending[n].fetch_add(1, Ordering::Relaxed) == 0 {
        l.first_seq[n].store(l.seq.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
    }
    l.pending_total.fetch_add(1, Ordering::Relaxed);
    ctx::defer_work(Deferred::Irqs, run_held_irqs);
}

/// Enters hardirq context on this thread (`irq_enter()`): the preempt count's
/// hardirq field goes up by one. ksync's irq dispatch calls it around every
/// handler; call it yourself only to emulate an interrupt in task context, paired
/// with [`irq_exit`](super::irq_exit). As in the kernel, the outermost entry
/// counts as a hardirq PREEMPT_RT would not thread (lockdep allows raw
/// spinlocks only) until [`lockdep_hardirq_threaded`](crate::ctx::lockdep_hardirq_threaded)
/// says it would, as a `request_irq` handler's dispatch does.
pub fn irq_enter() {
    if preempt_count() & ctx::HARDIRQ_MASK == 0 {
        // The outermost hardirq: no handler has said it would be threaded
        // yet (`lockdep_hardirq_enter`).
        ctx::set_hardirq_threaded(false);
    }
    preempt_count_add(HARDIRQ_OFFSET);
}

/// Runs `irq`'s handler on this thread; the line's `in_progress` bit is already
/// set and is cleared here, before `irq_exit` runs softirqs.
fn run_handler(l: &Lines, irq: u32) {
    let desc = &DESCS[irq as usize];
    irq_enter();
    let count = preempt_count();
    // SeqCst pairs with `free_irq` (see there).
    desc.active.fetch_add(1, Ordering::SeqCst);
    let h = desc.handler.load(Ordering::SeqCst);
    if h > FREEING {
        desc.count.fetch_add(1, Ordering::Relaxed);
        // Relaxed: stored before the handler, which the SeqCst load above saw.
        let t = desc.thread.thread_fn.load(Ordering::Relaxed);
        if t == 0 {
            // A handler of `request_irq`: PREEMPT_RT would force it into a
            // thread, so lockdep lets it take `spinlock_t`s.
            let was = ctx::set_hardirq_threaded(true);
            // SAFETY: nonzero values of `handler` on a line without a thread
            // function are `IrqHandler`s stored by `request`; fn pointers and
            // usize have the same size on Linux targets.
            let f: IrqHandler = unsafe { core::mem::transmute::<usize, IrqHandler>(h) };
            f(irq);
            ctx::set_hardirq_threaded(was);
        } else {
            // The hard half of a threaded line runs in hardirq context for
            // real (as with IRQF_ONESHOT): raw spinlocks only.
            let was = ctx::set_hardirq_threaded(false);
            // SAFETY: nonzero values of `handler` on a line with a thread
            // function are `IrqHardHandler`s stored by `request_threaded`
            // (both are written under the names lock, the thread function
            // first); fn pointers and usize have the same size on Linux.
            let f = unsafe { core::mem::transmute::<usize, IrqHardHandler>(h) };
            if f(irq) == IrqReturn::WakeThread {
                desc.thread.wake();
            }
            ctx::set_hardirq_threaded(was);
        }
    } else {
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
    }
    // Release: what the handler did happens before `synchronize_irq` returns.
    desc.active.fetch_sub(1, Ordering::Release);
    super::softirq::fixup_count(
        count,
        b"ksync: irq handler returned with a changed preempt count; fixed up\n",
    );
    l.in_progress.fetch_and(!(1 << irq), Ordering::Relaxed);
    super::softirq::irq_exit();
}

/// Runs the irqs held pending on this thread, oldest line first, while irqs are
/// enabled. Lines whose handler is in progress (further up this thread's stack)
/// are left for that handler's own replay.
///
/// Inside a softirq pass, the replay runs one handler and stops: the rest stay
/// held (their deferred-work bit set) for the pass's next irq window (its next
/// `local_irq_restore`, or the window after its next action). Each held irq is
/// one raise, and the kernel takes irqs one at a time with the interrupted
/// softirq code running on between them; replaying a storm of thousands in one
/// go would starve the very softirqs its handlers raise. (Outside a pass the
/// replay runs them all: each handler's `irq_exit` serves the softirqs it
/// raised before the next one runs.)
fn replay(l: &Lines) {
    while !irqs_disabled() && l.pending_total.load(Ordering::Relaxed) != 0 {
        let busy = l.in_progress.load(Ordering::Relaxed);
        let mut best: Option<(usize, u64)> = None;
        for n in 0..NR_IRQS {
            if busy & (1 << n) == 0 && l.pending[n].load(Ordering::Relaxed) != 0 {
                let seq = l.first_seq[n].load(Ordering::Relaxed);
                if best.is_none_or(|(_, s)| seq < s) {
                    best = Some((n, seq));
                }
            }
        }
        let Some((n, _)) = best else { return };
        let bit = 1u32 << n;
        if l.in_progress.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            return; // a nested frame took the line meanwhile; it replays it
        }
        // Claim one raise; a nested arrival may have run it meanwhile.
        if l.pending[n]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1))
            .is_err()
        {
            l.in_progress.fetch_and(!bit, Ordering::Relaxed);
            continue;
        }
        l.pending_total.fetch_sub(1, Ordering::Relaxed);
        run_handler(l, n as u32);
        if in_serving_softirq() {
            return;
        }
    }
}

/// The runner of [`Deferred::Irqs`], called by `local_irq_enable` and
/// `local_irq_restore` (through [`ctx`]) when irqs were held pending: runs them,
/// oldest line first.
#[cold]
#[inline(never)]
fn run_held_irqs() {
    ctx::take_deferred(Deferred::Irqs);
    LINES.with(|l| {
        replay(l);
        // Lines still in progress further up this thread's stack, or irqs that
        // went off again in a handler: leave the bit set for the next enable.
        if l.pending_total.load(Ordering::Relaxed) != 0 {
            ctx::defer_work(Deferred::Irqs, run_held_irqs);
        }
    });
}
