//! The irq subsystem across `fork()`: its daemon threads come back in the
//! child.
//!
//! A child of `fork` has only the thread that forked. Without this module
//! the irq subsystem's own threads (`ksoftirqd`, the `ktimer` tick, each
//! threaded line's `irq/N-name` thread) would be absent in the child while
//! its state said they ran, so softirqs handed over, timers and thread
//! functions would never run there; and a lock or a count another thread
//! held at the fork would keep the child waiting for ever.
//!
//! `pthread_atfork` handlers, registered before `main`, take care of it:
//!
//! - **prepare**: take the subsystem's locks, in the order its code nests
//!   them: `ktimer`'s start lock, `ksoftirqd`'s start lock, the irq signal's
//!   installation lock, the lock that orders bindings (`request_irq`,
//!   `free_irq`), every line's thread slot, then (irqs off) the timer base
//!   and the `ksoftirqd` queue. No other thread is then inside any of
//!   them when the child is made.
//!   A fork from a signal handler that interrupted the forking thread
//!   inside one of them takes none (see
//!   [`ForkLockMark`](crate::arch::ForkLockMark)).
//! - **parent**: let go of them.
//! - **child**: still holding them, forget the threads the child lacks (a
//!   timer callback or a handler that ran on one no longer counts as
//!   running; an unbinding one had begun is finished); let go; then start
//!   again each daemon that ran in the parent. Work queued for a daemon
//!   (softirqs and tasklets handed to `ksoftirqd`, armed timers, a thread
//!   function's due run) stays queued for the new one.
//!
//! Starting threads in a child before any `exec` goes beyond what POSIX
//! promises of a forked multithreaded process; glibc supports it (it resets
//! its allocator and thread list before the child handlers run). A program
//! that forks only to `exec` pays for the threads until the `exec`; one that
//! never used ksync irqs starts nothing.
//!
//! A `free_irq` that another thread had begun (its line unbound, its wait
//! for the handlers under way) is finished in the child.
//!
//! Tasklets: those handed to `ksoftirqd`, or on the forking thread's lists,
//! stay queued and run. One that was running on another thread, or queued
//! on another thread's own list (gone with it), is idle in the child: the
//! child starts a new fork generation, and the bits another generation set
//! mean nothing (the tasklet module's "State word"). Scheduling it again
//! runs it, and `Tasklet::kill` of it returns; a run it was due on the lost
//! list does not happen unless it is scheduled again.

use core::cell::RefCell;
use std::sync::MutexGuard;

use super::{hardirq, softirq, tasklet, timer};
use crate::ctx::IrqFlags;

crate::arch::at_fork!(prepare, parent, child);

/// What the forking thread holds across the `fork`, in the order taken.
struct Hold {
    timer_start: MutexGuard<'static, ()>,
    softirqd_start: MutexGuard<'static, ()>,
    lines: hardirq::ForkHold,
    base: IrqFlags,
    queue: IrqFlags,
}

thread_local! {
    static HOLD: RefCell<Option<Hold>> = const { RefCell::new(None) };
}

extern "C" fn prepare() {
    // A fork from a signal handler that interrupted this thread inside one
    // of these locks takes none of them (it would wait for itself).
    if crate::arch::holds_fork_lock() {
        return;
    }
    // A thread whose thread-locals are being destroyed takes nothing.
    let _ = HOLD.try_with(|h| {
        let timer_start = timer::START.lock().unwrap_or_else(|e| e.into_inner());
        let softirqd_start = softirq::START.lock().unwrap_or_else(|e| e.into_inner());
        let lines = hardirq::fork_lock();
        let base = timer::fork_lock();
        let queue = softirq::fork_lock();
        *h.borrow_mut() = Some(Hold {
            timer_start,
            softirqd_start,
            lines,
            base,
            queue,
        });
    });
}

/// Lets go of `hold`, in the reverse order of [`prepare`].
fn release(hold: Hold) {
    let Hold {
        timer_start,
        softirqd_start,
        lines,
        base,
        queue,
    } = hold;
    softirq::fork_unlock(queue);
    timer::fork_unlock(base);
    drop(lines);
    drop(softirqd_start);
    drop(timer_start);
}

extern "C" fn parent() {
    let _ = HOLD.try_with(|h| {
        if let Some(hold) = h.borrow_mut().take() {
            release(hold);
        }
    });
}

extern "C" fn child() {
    let _ = HOLD.try_with(|h| {
        let Some(mut hold) = h.borrow_mut().take() else {
            return;
        };
        // Alone, with irqs off and every lock held: nothing changes under us.
        let ksoftirqd = softirq::forget_ksoftirqd_in_child();
        // Under the `ksoftirqd` lock (it guards the handed-over tasklets).
        tasklet::restamp_in_child();
        let ktimer = timer::forget_threads_in_child();
        let lines = hardirq::reset_in_child(&mut hold.lines);
        release(hold);
        // `ensure_ticker` starts `ksoftirqd` too; it is first so that a timer
        // softirq raised by the first tick finds it.
        if ksoftirqd {
            softirq::start_ksoftirqd();
        }
        if ktimer {
            timer::ensure_ticker();
        }
        hardirq::restart_threads_in_child(lines);
    });
}
