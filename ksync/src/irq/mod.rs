//! Interrupts as real POSIX signals; softirqs, tasklets, timers and `jiffies`;
//! `local_irq_*` and `local_bh_*`.
//!
//! In the kernel an interrupt can stop a task at any instruction, a later
//! interrupt can stop an earlier interrupt's handler, and deferred work
//! (softirqs, tasklets, timers) runs when the last hardirq on a CPU exits. ksync
//! reproduces this on threads: a thread is the CPU, a real-time signal delivered
//! to it is the interrupt.
//!
//! # How the mapping works
//!
//! - **Irq lines.** There are [`NR_IRQS`] lines, `0..16`. [`request_irq`] binds a
//!   handler (`fn(irq)`) to a line; [`free_irq`] unbinds it and waits until no
//!   thread still runs it (`synchronize_irq`). Line [`TIMER_IRQ`] (0) is the timer
//!   interrupt and belongs to ksync. [`request_threaded_irq`] binds a hard
//!   handler and a thread function: the hard handler returns
//!   [`IrqReturn::WakeThread`] to have the function run on the line's own
//!   thread (`irq/<n>-<name>`), in task context, where it may sleep.
//! - **One real-time signal** carries every line: [`irq_signal()`], which is
//!   `SIGRTMAX - 3` (61 with glibc) unless the environment variable
//!   `KSYNC_IRQ_SIGNAL` names another number at the first `request_irq`.
//!   [`raise_irq`] queues that signal to the chosen thread with
//!   `rt_tgsigqueueinfo(2)`, the line number in the signal's value (`si_value`).
//!   Real-time signals queue (they do not merge), so **every successful
//!   `raise_irq` runs the handler exactly once** on that thread: irqs are counted,
//!   never coalesced. When the kernel's per-user queue of pending signals is full
//!   (`RLIMIT_SIGPENDING`), `raise_irq` fails with [`Error::WouldBlock`](crate::Error::WouldBlock)
//!   and nothing was raised.
//! - **The handler runs asynchronously on the target thread**, in hardirq context:
//!   the preempt count is raised by `HARDIRQ_OFFSET` around it, so
//!   [`in_hardirq()`](crate::ctx::in_hardirq) is true inside. A line's handler
//!   is never re-entered on the same thread while it runs: an irq of that line
//!   arriving meanwhile is held pending and runs right after. Irqs of *other*
//!   lines nest, as on the kernel's original design (the signal is unblocked for
//!   the handler's duration; the nesting depth is bounded by the number of lines).
//! - **`local_irq_disable` is a per-thread flag, not a system call** (lazy
//!   masking, as powerpc's soft-masked interrupts). The signal is still
//!   delivered, but its handler only records the irq as pending (a count per
//!   line, stamped with its arrival order) and returns. [`local_irq_enable`] and
//!   [`local_irq_restore`] then run the pending handlers, oldest line first (a
//!   line raised several times runs back to back, once per raise): none lost,
//!   none run twice. Disabling costs a thread-local store (about 1 ns) where
//!   `pthread_sigmask` costs a system call. (Irqs still queued to a thread when
//!   it exits are dropped with it, as an offlined CPU's would be; a thread should
//!   not exit with irqs or bottom halves disabled.)
//! - **Softirqs run at hardirq exit, inside the signal handler**, exactly as in
//!   the kernel model: when the outermost handler on a thread returns and bottom
//!   halves are enabled ([`irq_exit`]), and at [`local_bh_enable`] when the
//!   count drops to zero. Serving them raises the count by `SOFTIRQ_OFFSET`, so a
//!   softirq never preempts a softirq on the same thread. One pass is bounded
//!   ([`MAX_SOFTIRQ_RESTART`] restarts, 2 ms); the rest goes to the per-process
//!   `ksoftirqd` thread, which also runs softirqs raised from task context.
//! - **Irqs are taken one at a time around softirqs.** The kernel serves
//!   softirqs with irqs enabled and takes each irq as its own entry and exit, so
//!   the interrupted softirq code runs on between two irqs. ksync's irqs queue
//!   (they are counted, not coalesced), so a burst of raises would otherwise be
//!   delivered frame after frame, or replayed in one loop, before the pass ran
//!   again, and a storm would starve the softirqs its own handlers raise. So an
//!   irq that interrupts a softirq pass returns to it with the irq signal
//!   blocked, an irq held pending is replayed one per irq window inside a pass,
//!   and the pass opens a window (unblock, replay one) after each action; the
//!   rest go by the pass's restart bound to `ksoftirqd` as above.
//!   See [`softirq`] for why they run inside the handler rather than being
//!   deferred out of it.
//! - **Tasklets** ([`Tasklet`]) are queued on the scheduling thread's list and run
//!   from `TASKLET_SOFTIRQ`/`HI_SOFTIRQ`; **timers** ([`Timer`]) run from
//!   `TIMER_SOFTIRQ` on the ticker thread, whose timer irq advances [`jiffies()`]
//!   at [`hz()`] (250 by default) while any timer is armed.
//!
//! The first [`request_irq`] starts two threads: `ksoftirqd` (parked until work
//! is handed to it) and `ktimer` (parked while no timer is armed).
//!
//! **Across `fork()`**, these threads and each threaded line's thread are
//! started again in the child (which the fork leaves with its forking thread
//! only), by `pthread_atfork` handlers that need no call from the program.
//! Work queued for them (softirqs and tasklets handed to `ksoftirqd`, armed
//! timers, a thread function's due run) runs in the child too; a timer
//! callback, thread function or handler that was running on another thread
//! of the parent is not running in the child, so `del_timer_sync` and
//! [`synchronize_irq`] do not wait for it.
//!
//! # What a handler may call
//!
//! Irq handlers, softirq actions, tasklet functions and timer callbacks all run
//! inside a signal handler (or in `ksoftirqd`), on a thread that was stopped at
//! an arbitrary instruction — possibly inside `malloc` or holding a std lock. They
//! must therefore be **async-signal-safe**: no allocation (`Box`, `Vec`, `String`,
//! `format!`, `println!`), no `std::sync` locks, no `std::thread::current()`, no
//! blocking. They may use atomics, ksync's irq-safe primitives (`SpinLock` with
//! `lock_irqsave` — never a sleeping lock), [`raise_irq`], [`raise_softirq`],
//! [`Tasklet::schedule`], [`Timer::mod_timer`] and [`Timer::del_timer`], and
//! `async-signal-safe(7)` system calls. Sleeping there is a bug, as in the kernel
//! (the context is atomic: [`in_atomic`](crate::ctx::in_atomic) is true).
//! The thread function of a [`request_threaded_irq`] line is the exception:
//! it runs on an ordinary thread in task context and may do anything. A
//! panic in a handler aborts the process (it cannot unwind through the signal
//! frame).
//!
//! # Programs that use signals themselves
//!
//! ksync installs a handler for [`irq_signal()`] only, at the first
//! [`request_irq`], and refuses ([`Error::Busy`](crate::Error::Busy)) if the
//! program already installed one for it — set `KSYNC_IRQ_SIGNAL` to a free
//! real-time signal then. Signals of that number that ksync did not send (wrong
//! `si_code`, sender or tag) are counted as spurious and otherwise ignored. Every
//! other signal stays the program's own: ksync's handler blocks them while it
//! runs (except the synchronous fault signals), and `sched`'s UNIX signals
//! (`Task::send_signal`) are a separate mechanism. A thread that blocks the irq
//! signal with `pthread_sigmask` holds its irqs in the kernel's queue until it
//! unblocks it (real masking, a system call each way).
//!
//! # Which protection does my data need?
//!
//! SPEC section 1's table, by the control paths that touch the data. "UP" is one
//! thread with its own irqs and bottom halves; "SMP" is several threads.
//! (`SpinLock` is `ksync::spinlock::SpinLock<T>`.)
//!
//! | touched by | UP (one thread) | SMP (several threads) |
//! |---|---|---|
//! | exceptions (task context) only | a sleeping lock: `Semaphore::down`, `Mutex::lock` | the same; nothing more is needed |
//! | interrupts | [`local_irq_save`]/[`local_irq_restore`] (the line's own handler never re-enters) | `SpinLock::lock_irqsave` in the handlers (lines nest) |
//! | deferrable functions (softirqs, tasklets, timers) | nothing: a softirq never preempts a softirq | nothing for one tasklet (never runs on two threads); `SpinLock::lock` between softirqs |
//! | exceptions + interrupts | [`local_irq_save`]/[`local_irq_restore`] | `SpinLock::lock_irqsave` (task side and handler) |
//! | exceptions + deferrable functions | [`local_bh_disable`]/[`local_bh_enable`] | `SpinLock::lock_bh` in task context, `SpinLock::lock` in the softirq |
//! | interrupts + deferrable functions | [`local_irq_save`] in the deferrable function | `SpinLock::lock_irqsave` in the deferrable function, `SpinLock::lock` in the handler |
//! | all three | [`local_irq_save`]/[`local_irq_restore`] | `SpinLock::lock_irqsave` everywhere |
//!
//! # Example
//!
//! ```
//! use ksync::irq;
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! static HITS: AtomicU32 = AtomicU32::new(0);
//! fn handler(_irq: u32) {
//!     assert!(ksync::sched::in_hardirq());
//!     HITS.fetch_add(1, Ordering::Relaxed);
//! }
//!
//! irq::request_irq(9, handler, "doc-example").unwrap();
//! let me = ksync::sched::current();
//!
//! let flags = irq::local_irq_save();
//! irq::raise_irq(9, &me).unwrap(); // delivered now, but held pending
//! assert_eq!(HITS.load(Ordering::Relaxed), 0);
//! irq::local_irq_restore(flags); // runs the handler
//! assert_eq!(HITS.load(Ordering::Relaxed), 1);
//!
//! irq::free_irq(9).unwrap();
//! ```

#[cfg(not(loom))]
mod fork;
mod hardirq;
mod local;
pub mod softirq;
mod sync;
mod tasklet;
mod threaded;
mod timer;

pub use crate::ctx::{
    IrqFlags, irqs_disabled, local_bh_disable, local_bh_enable, local_irq_disable,
    local_irq_enable, local_irq_restore, local_irq_save, lockdep_hardirq_threaded,
};
pub use crate::sched::{msleep, msleep_interruptible};
pub use hardirq::{
    IrqHandler, NR_IRQS, TIMER_IRQ, free_irq, irq_count, irq_enter, irq_name, irq_signal,
    raise_irq, raise_irq_tid, spurious_count, synchronize_irq,
};
pub use softirq::{
    MAX_SOFTIRQ_RESTART, NR_SOFTIRQS, Softirq, do_softirq, irq_exit, open_softirq, raise_softirq,
    raise_softirq_irqoff,
};
pub use tasklet::Tasklet;
pub use threaded::{IrqHardHandler, IrqReturn, IrqThreadFn};
pub use timer::{
    HZ, INITIAL_JIFFIES, Timer, hz, jiffies, jiffies_to_msecs, msecs_to_jiffies, set_hz,
    time_after, time_after_eq, time_before, time_before_eq,
};

/// Binds `handler` to line `irq` (`request_irq(irq, handler, flags, name, dev)`).
/// Installs the irq signal handler on first use and starts `ksoftirqd` and the
/// (idle) timer thread.
///
/// # Errors
/// - [`Error::InvalidArgument`](crate::Error::InvalidArgument): `irq >= NR_IRQS`, or `KSYNC_IRQ_SIGNAL` is not a
///   real-time signal;
/// - [`Error::Busy`](crate::Error::Busy): the line has a handler already (or is [`TIMER_IRQ`]), or
///   the program installed its own handler for [`irq_signal()`].
pub fn request_irq(irq: u32, handler: IrqHandler, name: &'static str) -> crate::Result<()> {
    if irq == TIMER_IRQ {
        return Err(crate::Error::Busy); // the timer's line: owned by ksync
    }
    hardirq::request(irq, handler, name)?;
    // Started here, in task context, because a handler (a signal handler) cannot
    // spawn them: softirqs it raises may overflow to ksoftirqd, timers it arms
    // need the ticker.
    softirq::start_ksoftirqd();
    timer::ensure_ticker();
    Ok(())
}

/// Binds a threaded handler to line `irq` (`request_threaded_irq(irq,
/// handler, thread_fn, IRQF_ONESHOT, name, dev)`): `handler` runs in hardirq
/// context, as a [`request_irq`] handler does, and returns
/// [`IrqReturn::WakeThread`] to have `thread_fn` run on the line's own thread
/// (`irq/<irq>-<name>`), in task context, where it may sleep (take a `Mutex`,
/// wait for a completion). Without `handler` every irq wakes the thread
/// (`irq_default_primary_handler`). Wakes that come while a run is due are
/// merged into it, as the kernel's are; [`synchronize_irq`] and [`free_irq`]
/// wait for the thread function too, and `free_irq` stops the thread.
///
/// The hard handler runs in a hardirq that PREEMPT_RT does not thread (the
/// kernel's `IRQF_ONESHOT`): lockdep lets it take raw spinlocks only, and
/// reports a `SpinLock` there ([`ReportKind::InvalidWaitContext`](crate::lockdep::ReportKind::InvalidWaitContext));
/// the thread function may take anything.
///
/// ```
/// use ksync::irq::{self, IrqReturn};
/// use ksync::completion::Completion;
/// use ksync::mutex::Mutex;
///
/// static DATA: Mutex<u32> = Mutex::new(0);
/// static DONE: Completion = Completion::new();
/// fn hard(_irq: u32) -> IrqReturn {
///     IrqReturn::WakeThread // acknowledge the device, defer the work
/// }
/// fn thread_fn(_irq: u32) -> IrqReturn {
///     *DATA.lock() += 1; // task context: a sleeping lock is fine
///     DONE.complete();
///     IrqReturn::Handled
/// }
///
/// irq::request_threaded_irq(10, Some(hard), thread_fn, "doc-threaded").unwrap();
/// irq::raise_irq(10, &ksync::sched::current()).unwrap();
/// DONE.wait(); // wait_for_completion
/// assert_eq!(*DATA.lock(), 1);
/// irq::free_irq(10).unwrap();
/// ```
///
/// # Errors
/// As [`request_irq`], and [`Error::NoMemory`](crate::Error::NoMemory) if the
/// line's thread cannot be started.
pub fn request_threaded_irq(
    irq: u32,
    handler: Option<IrqHardHandler>,
    thread_fn: IrqThreadFn,
    name: &'static str,
) -> crate::Result<()> {
    if irq == TIMER_IRQ {
        return Err(crate::Error::Busy); // the timer's line: owned by ksync
    }
    hardirq::request_threaded(irq, handler, thread_fn, name)?;
    softirq::start_ksoftirqd();
    timer::ensure_ticker();
    Ok(())
}
