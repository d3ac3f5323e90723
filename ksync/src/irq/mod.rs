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
//!   interrupt and belongs to ksync.
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
//!   [`in_hardirq()`](crate::sched::in_hardirq) is true inside. A line's handler
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
//!   See [`softirq`] for why they run inside the handler rather than being
//!   deferred out of it.
//! - **Tasklets** ([`Tasklet`]) are queued on the scheduling thread's list and run
//!   from `TASKLET_SOFTIRQ`/`HI_SOFTIRQ`; **timers** ([`Timer`]) run from
//!   `TIMER_SOFTIRQ` on the ticker thread, whose timer irq advances [`jiffies()`]
//!   at [`hz()`] (250 by default) while any timer is armed.
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
//! (the context is atomic: [`in_atomic`](crate::sched::in_atomic) is true). A
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

mod hardirq;
mod local;
pub mod softirq;
mod sync;
mod tasklet;
mod timer;

use core::sync::atomic::{Ordering, compiler_fence};

use crate::sched::{SOFTIRQ_DISABLE_OFFSET, preempt_count_add, preempt_count_sub};
use local::LOCAL;

pub use hardirq::{
    IrqHandler, NR_IRQS, TIMER_IRQ, free_irq, irq_count, irq_enter, irq_name, irq_signal,
    raise_irq, raise_irq_tid, request_irq, spurious_count, synchronize_irq,
};
pub use softirq::{
    MAX_SOFTIRQ_RESTART, NR_SOFTIRQS, Softirq, do_softirq, irq_exit, open_softirq, raise_softirq,
    raise_softirq_irqoff,
};
pub use tasklet::Tasklet;
pub use timer::{
    HZ, INITIAL_JIFFIES, Timer, hz, jiffies, jiffies_to_msecs, msecs_to_jiffies, msleep,
    msleep_interruptible, set_hz, time_after, time_after_eq, time_before, time_before_eq,
};

/// The saved irq state returned by [`local_irq_save`] (`unsigned long flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the flags must be passed to local_irq_restore"]
pub struct IrqFlags {
    disabled: bool,
}

impl IrqFlags {
    /// Whether irqs were disabled when the flags were saved (`irqs_disabled_flags`).
    #[doc(alias = "irqs_disabled_flags")]
    pub fn irqs_disabled(self) -> bool {
        self.disabled
    }
}

/// Whether hardirqs are disabled on this thread (`irqs_disabled()`).
#[inline(always)]
pub fn irqs_disabled() -> bool {
    LOCAL.with(|l| l.disabled.load(Ordering::Relaxed))
}

/// Disables hardirqs on this thread (`local_irq_disable()`): sets the thread's
/// flag, no system call. An irq that arrives now is held pending until
/// [`local_irq_enable`]. Not nestable: use [`local_irq_save`] where irqs may
/// already be off.
#[inline(always)]
pub fn local_irq_disable() {
    // Relaxed: only this thread and its own signal handlers read the flag, and a
    // signal handler sees every store its thread made before the interruption.
    // The compiler fence keeps the critical section's accesses below the store.
    LOCAL.with(|l| l.disabled.store(true, Ordering::Relaxed));
    compiler_fence(Ordering::SeqCst);
}

/// Enables hardirqs on this thread (`local_irq_enable()`), then runs the handlers
/// of irqs that arrived while they were disabled (and softirqs left pending),
/// oldest first.
#[inline(always)]
pub fn local_irq_enable() {
    compiler_fence(Ordering::SeqCst);
    LOCAL.with(|l| {
        l.disabled.store(false, Ordering::Relaxed);
        // Keep the check below the store: an irq arriving between the two runs at
        // once (the flag is clear) and drains what was pending itself; one that
        // arrived before the store is seen here.
        compiler_fence(Ordering::SeqCst);
        if l.has_work() {
            hardirq::replay_pending();
        }
    });
}

/// Disables hardirqs and returns the previous state (`local_irq_save(flags)`).
/// Nests: each save is undone by its own [`local_irq_restore`].
#[inline(always)]
pub fn local_irq_save() -> IrqFlags {
    // A load and a store, not a swap: only this thread and its signal handlers
    // touch the flag, and a handler always leaves it as it found it, so an irq
    // arriving between the two cannot make the saved value stale.
    let disabled = LOCAL.with(|l| {
        let was = l.disabled.load(Ordering::Relaxed);
        l.disabled.store(true, Ordering::Relaxed);
        was
    });
    compiler_fence(Ordering::SeqCst);
    IrqFlags { disabled }
}

/// Restores the irq state saved by [`local_irq_save`] (`local_irq_restore(flags)`):
/// re-enables irqs (running pending ones) only if they were enabled at the save.
#[inline(always)]
pub fn local_irq_restore(flags: IrqFlags) {
    if flags.disabled {
        compiler_fence(Ordering::SeqCst);
        LOCAL.with(|l| l.disabled.store(true, Ordering::Relaxed));
    } else {
        local_irq_enable();
    }
}

/// Disables bottom halves (softirqs, tasklets, timers) on this thread
/// (`local_bh_disable()`): raises the preempt count by `SOFTIRQ_DISABLE_OFFSET`.
/// Nestable.
#[inline(always)]
pub fn local_bh_disable() {
    preempt_count_add(SOFTIRQ_DISABLE_OFFSET);
}

/// Re-enables bottom halves (`local_bh_enable()`). When the count drops to zero
/// outside interrupt context and irqs are enabled, softirqs raised meanwhile run
/// now, on this thread.
///
/// # Panics
/// If bottom halves were not disabled.
#[inline(always)]
pub fn local_bh_enable() {
    preempt_count_sub(SOFTIRQ_DISABLE_OFFSET);
    if LOCAL.with(|l| l.softirq_pending.load(Ordering::Relaxed)) != 0 {
        softirq::bh_enable_slow();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn save_restore_nests() {
        std::thread::spawn(|| {
            assert!(!irqs_disabled());
            let outer = local_irq_save();
            assert!(irqs_disabled() && !outer.irqs_disabled());
            let inner = local_irq_save();
            assert!(inner.irqs_disabled());
            local_irq_restore(inner);
            assert!(irqs_disabled(), "inner restore must keep irqs off");
            local_irq_restore(outer);
            assert!(!irqs_disabled());
            assert!(crate::sched::preemptible());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn bh_disable_is_counted() {
        std::thread::spawn(|| {
            local_bh_disable();
            local_bh_disable();
            assert!(crate::sched::in_softirq() && !crate::sched::in_serving_softirq());
            local_bh_enable();
            assert!(crate::sched::in_softirq());
            local_bh_enable();
            assert!(!crate::sched::in_softirq());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn unbalanced_bh_enable_panics() {
        let r = std::thread::spawn(local_bh_enable).join();
        assert!(r.is_err());
    }
}
