//! Threaded irq handlers (`request_threaded_irq`): each threaded line has its
//! own thread, the analogue of the kernel's `irq/N-name` kernel thread, which
//! runs the line's thread function in task context whenever the hard handler
//! returns [`IrqReturn::WakeThread`](super::IrqReturn::WakeThread).
//!
//! # Implementation details
//!
//! Per line, in the shared descriptor table ([`IrqThread`]): the thread
//! function, a futex word with two bits, and the number of wake-ups not yet
//! served (`threads_active`, for `synchronize_irq`).
//!
//! | `word` bit | set by | cleared by |
//! |---|---|---|
//! | `RUN` (`IRQTF_RUNTHREAD`) | the hard handler's wake, in a signal handler | the thread, before it runs the function |
//! | `STOP` | `free_irq`, after the line is unbound and idle | never (the thread exits) |
//!
//! Wake-ups that come while `RUN` is still set are merged into the pending run,
//! as the kernel's are: the function runs at least once after every wake. The
//! thread's idle wait is a plain futex wait on `word`: a daemon thread's wait,
//! outside `sched::sleep` as DESIGN.md allows for daemon threads (it is never
//! a task's sleep in a primitive).

use core::cell::Cell;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;

use super::softirq::{futex_wait, futex_wake};
use crate::error::{Error, Result};

/// What a threaded line's handlers return (`irqreturn_t`).
#[doc(alias = "irqreturn_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqReturn {
    /// The irq was not from this device (`IRQ_NONE`).
    #[doc(alias = "IRQ_NONE")]
    None,
    /// The irq was handled (`IRQ_HANDLED`).
    #[doc(alias = "IRQ_HANDLED")]
    Handled,
    /// The hard handler asks for the thread function to run
    /// (`IRQ_WAKE_THREAD`).
    #[doc(alias = "IRQ_WAKE_THREAD")]
    WakeThread,
}

/// The hard handler of a threaded line (`irq_handler_t handler` of
/// `request_threaded_irq`): runs in hardirq context as an
/// [`IrqHandler`](super::IrqHandler) does, and returns
/// [`IrqReturn::WakeThread`] to have the thread function run.
pub type IrqHardHandler = fn(u32) -> IrqReturn;

/// The thread function of a threaded line (`irq_handler_t thread_fn`): runs
/// in task context, on the line's own thread, and may sleep.
pub type IrqThreadFn = fn(u32) -> IrqReturn;

/// `word`: the thread function is due to run.
const RUN: u32 = 1;
/// `word`: the thread is to exit once no run is due.
const STOP: u32 = 2;

/// The thread side of one irq line.
pub(super) struct IrqThread {
    /// The thread function as a `fn(u32) -> IrqReturn` cast to `usize`; 0 for
    /// a line without a thread (bound with `request_irq`, or free). Written
    /// under the irq names lock before the handler is published.
    pub(super) thread_fn: AtomicUsize,
    /// `RUN` and `STOP` (see the module docs); the thread's futex word.
    word: AtomicU32,
    /// Wake-ups counted but not yet served (`desc->threads_active`).
    active: AtomicU32,
    /// The line's thread while it is bound, for `free_irq` to join.
    handle: Mutex<Slot>,
}

/// A threaded line's thread and the name it was started under.
pub(super) struct Slot {
    thread: Option<JoinHandle<()>>,
    /// For a forked child's new thread (no fork handlers under loom).
    #[cfg(not(loom))]
    name: &'static str,
}

/// A line's [`Slot`], locked.
#[cfg(not(loom))]
pub(super) type SlotGuard = std::sync::MutexGuard<'static, Slot>;

impl IrqThread {
    pub(super) const fn new() -> Self {
        IrqThread {
            thread_fn: AtomicUsize::new(0),
            word: AtomicU32::new(0),
            active: AtomicU32::new(0),
            handle: Mutex::new(Slot {
                thread: None,
                #[cfg(not(loom))]
                name: "",
            }),
        }
    }

    /// Wakes the line's thread (`__irq_wake_thread`), from the hard handler.
    /// Async-signal-safe: atomics and one futex wake.
    pub(super) fn wake(&self) {
        // Counted before `RUN` is set, so the thread never serves a run that
        // is not counted yet (the count would go below zero).
        self.active.fetch_add(1, Ordering::Relaxed);
        // Release pairs with the thread's Acquire `fetch_and`: what the hard
        // handler wrote before the wake is visible to the thread function.
        if self.word.fetch_or(RUN, Ordering::Release) & RUN != 0 {
            // A run is already due and will serve this wake too.
            self.active.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        futex_wake(&self.word);
    }

    /// Whether no wake-up of the thread waits or runs (`threads_active == 0`).
    pub(super) fn idle(&self) -> bool {
        // Acquire pairs with the thread's Release decrement after the
        // function ran: what it did happens before `synchronize_irq` returns.
        self.active.load(Ordering::Acquire) == 0
    }
}

/// `u32::MAX`, or the line whose thread this is.
const NO_LINE: u32 = u32::MAX;

thread_local! {
    static LINE: Cell<u32> = const { Cell::new(NO_LINE) };
}

/// Whether the calling thread is line `irq`'s irq thread.
pub(super) fn is_thread_of(irq: u32) -> bool {
    LINE.with(|l| l.get()) == irq
}

/// Starts line `irq`'s thread, named `irq/<irq>-<name>`, which serves `t`.
///
/// # Errors
/// [`Error::NoMemory`] if the OS refuses a thread.
pub(super) fn start(irq: u32, t: &'static IrqThread, name: &'static str) -> Result<()> {
    // `word` is 0 here (as made, or as `stop` left it), and must not be reset:
    // the line is bound already, and a wake that came first left `RUN` set.
    let h = std::thread::Builder::new()
        .name(format!("irq/{irq}-{name}"))
        .spawn(move || thread_main(irq, t))
        .map_err(|_| Error::NoMemory)?;
    // Marked: a fork from a signal handler here must not wait for it.
    *crate::arch::lock_marked(&t.handle) = Slot {
        thread: Some(h),
        #[cfg(not(loom))]
        name,
    };
    Ok(())
}

/// Locks `t`'s slot, for a `fork` (see [`super::fork`]): no other thread is
/// then inside `start` or `stop` when the child is made.
#[cfg(not(loom))]
pub(super) fn lock_slot(t: &'static IrqThread) -> SlotGuard {
    t.handle.lock().unwrap_or_else(|e| e.into_inner())
}

/// In the child of a `fork`, alone and with `slot` (line `irq`'s) locked:
/// the parent's thread for the line is not in the child (unless the forking
/// thread is it, and then nothing changes). `bound` says whether the line is
/// still bound; if not, a `free_irq` by a thread the child lacks was under
/// way, and its thread half is finished here. Returns the name to start a
/// new thread under, for a bound threaded line: its run that was due stays
/// due, and the runs the parent's thread was serving are dropped with it
/// (they would keep `synchronize_irq` waiting for ever).
#[cfg(not(loom))]
pub(super) fn reset_in_child(
    irq: u32,
    t: &IrqThread,
    slot: &mut Slot,
    bound: bool,
) -> Option<&'static str> {
    if is_thread_of(irq) {
        return None;
    }
    // The handle names a thread of the parent: joining or detaching it here
    // would touch a thread descriptor the child does not have.
    if let Some(h) = slot.thread.take() {
        core::mem::forget(h);
    }
    if !bound {
        t.word.store(0, Ordering::Relaxed);
        t.active.store(0, Ordering::Relaxed);
        t.thread_fn.store(0, Ordering::Relaxed);
        return None;
    }
    if t.thread_fn.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let due = t.word.load(Ordering::Relaxed) & RUN != 0;
    t.active.store(u32::from(due), Ordering::Relaxed);
    Some(slot.name)
}

/// Stops the thread that serves `t` and waits for it to exit. The line is
/// unbound and idle (`synchronize_irq` returned).
pub(super) fn stop(t: &IrqThread) {
    // Marked: a fork from a signal handler here must not wait for it.
    let h = crate::arch::lock_marked(&t.handle).thread.take();
    // Relaxed: the thread only needs to see the bit, and nothing is
    // published with it.
    t.word.fetch_or(STOP, Ordering::Relaxed);
    futex_wake(&t.word);
    if let Some(h) = h {
        // A panic in the thread function was printed there already.
        let _ = h.join();
    }
    // Ready for the line's next binding: no run due, no stop. (The line is
    // still taken, so no wake comes meanwhile.)
    t.word.store(0, Ordering::Relaxed);
    t.thread_fn.store(0, Ordering::Relaxed);
}

/// The irq thread (`irq_thread`): runs the thread function once per due run,
/// in task context, until stopped.
fn thread_main(irq: u32, t: &'static IrqThread) {
    LINE.with(|l| l.set(irq));
    loop {
        let w = t.word.load(Ordering::Relaxed);
        if w & RUN != 0 {
            // Acquire pairs with the Release `fetch_or` of `wake`.
            t.word.fetch_and(!RUN, Ordering::Acquire);
            let f = t.thread_fn.load(Ordering::Relaxed);
            if f != 0 {
                // SAFETY: nonzero values of `thread_fn` are `IrqThreadFn`s
                // stored by `request_threaded`; fn pointers and usize have
                // the same size on Linux targets.
                let f = unsafe { core::mem::transmute::<usize, IrqThreadFn>(f) };
                // A panic in the function is printed by the panic hook; the
                // run still counts as served, so `synchronize_irq` and
                // `free_irq` do not wait for it for ever, and later wakes run.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(irq)));
            }
            // Release pairs with the Acquire load in `idle`.
            t.active.fetch_sub(1, Ordering::Release);
            continue;
        }
        if w & STOP != 0 {
            return;
        }
        // Returns at once if `word` changed since the load: no wake is lost.
        futex_wait(&t.word, w);
    }
}
