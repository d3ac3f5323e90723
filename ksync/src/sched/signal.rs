//! UNIX signals as the kernel's `signal_pending` machinery sees them.
//!
//! A signal sent to a task with [`Task::send_signal`](super::Task::send_signal) is
//! recorded as pending and wakes the task from an interruptible sleep (a killable
//! one too, for SIGKILL); the sleeping primitive then returns
//! [`Error::Interrupted`](crate::Error::Interrupted) (`-EINTR`) and leaves its state
//! as if the call never happened. Pending signals stay pending until
//! [`flush_signals`] (the kernel would deliver them on the return to user space).

use super::signal_types::{Signal, SignalSet};
use super::task::with_current;
#[cfg(not(loom))]
use crate::arch::signal::{self, ErrnoGuard, SavedAction};
use core::sync::atomic::Ordering;

/// Whether a signal is pending for the current task (`signal_pending(current)`).
#[inline]
pub fn signal_pending() -> bool {
    with_current(|t| t.pending.load(Ordering::SeqCst) != 0)
}

/// Whether SIGKILL is pending for the current task (`fatal_signal_pending(current)`).
#[inline]
pub fn fatal_signal_pending() -> bool {
    with_current(|t| t.pending.load(Ordering::SeqCst) & (1 << Signal::SIGKILL.number()) != 0)
}

/// Discards every pending signal of the current task (`flush_signals(current)`),
/// returning the set that was pending.
pub fn flush_signals() -> SignalSet {
    with_current(|t| SignalSet::from_bits(t.pending.swap(0, Ordering::SeqCst)))
}

/// Sends `sig` to the current task (`send_sig(sig, current, 0)`).
pub fn raise(sig: Signal) {
    super::current().send_signal(sig);
}

// ---------------------------------------------------------------------------
// Real signals.

/// The dispositions that [`intercept_signals`] replaced, to put back with
/// [`release_signals`]. Touched only outside signal handlers.
#[cfg(not(loom))]
static SAVED: std::sync::Mutex<[Option<SavedAction>; 32]> = std::sync::Mutex::new([None; 32]);

/// The handler [`intercept_signals`] installs: marks the signal pending on the
/// task of the thread it runs on and wakes that task from an interruptible (or,
/// for a fatal signal, killable) sleep, exactly as [`Task::send_signal`] does.
///
/// Async-signal-safe: it reads a const-initialised thread-local, does atomic
/// operations and at most one `futex` system call, and saves and restores
/// `errno` around them. No allocation, no lock.
#[cfg(not(loom))]
extern "C" fn on_signal(signo: i32) {
    // Restore errno on return: the interrupted code must not see our futex
    // call's result.
    let _errno = ErrnoGuard::save();
    if let Some(task) = super::task::current_from_handler()
        && let Some(sig) = u32::try_from(signo).ok().and_then(Signal::from_number)
    {
        task.signal(sig);
    }
}

/// Makes the real signals `sigs`, delivered to a thread (`pthread_kill`, `tgkill`,
/// or `kill` to the process, which the kernel delivers to some thread), act as
/// ksync signals: the signal becomes pending on that thread's task
/// ([`signal_pending`]) and ends an interruptible sleep in any ksync primitive
/// with [`Error::Interrupted`](crate::Error::Interrupted), just like
/// [`Task::send_signal`](super::Task::send_signal).
///
/// It installs a `sigaction` handler (without `SA_RESTART`, so a thread parked in
/// `futex_wait` returns with `EINTR` and the sleep path sees the pending bit;
/// the handler also wakes the task, for a signal that lands between the sleep's
/// signal check and its system call). Only the signals named are touched; their
/// previous dispositions are saved, and [`release_signals`] puts them back. While
/// intercepted, a signal no longer runs the program's own handler or default
/// action (SIGINT no longer terminates): the program sees it through
/// [`signal_pending`] / [`flush_signals`] instead. A signal that arrives on a
/// thread that never used ksync (no task yet) is dropped. Real-time signals
/// (ksync's irqs) and numbers beyond SIGSYS are not [`Signal`]s; SIGKILL and
/// SIGSTOP cannot be caught.
///
/// ```
/// use ksync::sched::{self, Signal};
/// sched::intercept_signals(&[Signal::SIGUSR2]).unwrap();
/// let me = sched::current();
/// ksync::arch::signal::tgkill(me.tid(), Signal::SIGUSR2.number() as i32).unwrap();
/// assert!(sched::signal_pending());
/// assert!(sched::flush_signals().contains(Signal::SIGUSR2));
/// sched::release_signals(&[Signal::SIGUSR2]).unwrap();
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for SIGKILL or
/// SIGSTOP (nothing is installed then); the error of `sigaction` otherwise.
#[cfg(not(loom))]
pub fn intercept_signals(sigs: &[Signal]) -> crate::Result<()> {
    if sigs
        .iter()
        .any(|s| matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
    {
        return Err(crate::Error::InvalidArgument);
    }
    // Make sure this thread's task exists, so a signal sent to it right away is seen.
    with_current(|_| ());
    let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
    for &sig in sigs {
        // No SA_RESTART: futex_wait must return EINTR.
        let old = signal::install_handler(sig.number() as i32, on_signal)?;
        let slot = &mut saved[sig.number() as usize];
        if slot.is_none() {
            *slot = Some(old);
        }
    }
    Ok(())
}

/// Puts back the dispositions that [`intercept_signals`] replaced for `sigs`
/// (signals not intercepted are left alone). Pending ksync signals stay pending.
///
/// # Errors
/// The error of `sigaction`.
#[cfg(not(loom))]
pub fn release_signals(sigs: &[Signal]) -> crate::Result<()> {
    let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
    for &sig in sigs {
        if let Some(old) = saved[sig.number() as usize].take() {
            signal::restore_action(sig.number() as i32, &old)?;
        }
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pending_and_flush() {
        std::thread::spawn(|| {
            assert!(!signal_pending());
            raise(Signal::SIGUSR1);
            assert!(signal_pending() && !fatal_signal_pending());
            raise(Signal::SIGKILL);
            assert!(fatal_signal_pending());
            let was = flush_signals();
            assert!(was.contains(Signal::SIGUSR1) && was.contains(Signal::SIGKILL));
            assert!(!signal_pending());
        })
        .join()
        .unwrap();
    }
}
