//! The one sleep path. Every ksync primitive that blocks calls [`sleep`] and
//! nothing else, so the might-sleep check, the Big Kernel Lock's release and
//! retake, signal checks and deadlines are done in one place.
//!
//! # Implementation details
//!
//! A task parks on its own futex word (`TaskInner::wake`):
//!
//! | value    | meaning                                   | next                       |
//! |----------|-------------------------------------------|----------------------------|
//! | `IDLE`   | running, no wake-up pending               | sleeper CASes to `PARKED`  |
//! | `TOKEN`  | a wake-up arrived, not yet consumed       | sleeper swaps to `IDLE`, returns |
//! | `PARKED` | the task is in (or entering) `futex_wait` | waker swaps to `TOKEN` and calls `futex_wake` |
//!
//! A waker always swaps in `TOKEN` and calls `futex_wake` only if it replaced
//! `PARKED`, so waking a running task costs one atomic swap. `futex_wait(PARKED)`
//! checks the word atomically, so a token that arrives between the sleeper's CAS
//! and its system call makes the call return at once: no wake-up is lost.
//!
//! Signals are checked after `PARKED` is published; a sender sets its pending bit
//! before it swaps the word (both `SeqCst`), so either the sleeper sees the bit or
//! the sender sees `PARKED` and wakes it.

use super::signal_types::Signal;
use super::task::{TaskInner, TaskState, wake_word, with_current};
use crate::arch::futex;
use crate::error::{Error, Result};
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Blocks the current task until it is woken ([`Task::wake_up`](super::Task::wake_up)),
/// a signal ends the sleep (per `state`), or `deadline` passes
/// (`set_current_state(state); schedule_timeout(...)`).
///
/// Returns `Ok(())` when woken — which may be spurious: callers re-check their
/// condition in a loop, as with the kernel's `schedule()`. A wake-up that arrived
/// since the last `sleep` returned makes this call return at once.
///
/// # Errors
/// - [`Error::Interrupted`]: `state` is [`TaskState::Interruptible`] and a signal is pending;
/// - [`Error::Killed`]: `state` is `Interruptible` or [`TaskState::Killable`] and SIGKILL is pending;
/// - [`Error::TimedOut`]: `deadline` passed.
///
/// # Panics
/// With the `lockdep` feature, sleeping in atomic context is reported ("sleeping
/// function called from invalid context") before the task blocks.
#[doc(alias = "schedule")]
#[doc(alias = "schedule_timeout")]
#[doc(alias = "set_current_state")]
pub fn sleep(state: TaskState, deadline: Option<Instant>) -> Result<()> {
    around_sleep(|task| sleep_on(task, state, deadline))
}

/// Blocks the current task uninterruptibly while `*word == expected`, until a
/// futex wake on `word` (which may be spurious: callers re-check).
///
/// The same path as [`sleep`] — the might-sleep check, the BKL dropped and
/// retaken, the task's state shown as `Uninterruptible` — for the one kind of
/// wait whose wakers do not know the sleeping task: RCU's and SRCU's updater,
/// which readers wake through the grace period's shared futex word from
/// `rcu_read_unlock` (liburcu's protocol, kept so that the read side stays a
/// load and a branch). Everything else sleeps on its own task word through
/// [`sleep`].
pub(crate) fn sleep_on_word(word: &AtomicU32, expected: u32) {
    around_sleep(|task| {
        // SeqCst as in `sleep_on`: observers (`Task::state`) see the task asleep.
        task.state
            .store(TaskState::Uninterruptible as u8, Ordering::SeqCst);
        let _ = futex::wait(word, expected, None);
        task.state.store(TaskState::Running as u8, Ordering::SeqCst);
    })
}

/// Runs `block`, a wait that the kernel itself queues and wakes — the
/// priority-inheriting futex operations of [`RtMutex`](crate::rtmutex::RtMutex),
/// whose waiters must sit in the kernel's PI chain and not on a task word —
/// inside the same frame as [`sleep`]: the might-sleep check, the BKL dropped
/// and retaken, and the task's state shown as `state` meanwhile. Signals and
/// deadlines are the caller's (it bounds `block` and re-checks).
#[cfg(not(loom))]
pub(crate) fn sleep_in_kernel<R>(state: TaskState, block: impl FnOnce() -> R) -> R {
    around_sleep(|task| {
        // SeqCst as in `sleep_on`: observers (`Task::state`) see the task asleep.
        task.state.store(state as u8, Ordering::SeqCst);
        let r = block();
        task.state.store(TaskState::Running as u8, Ordering::SeqCst);
        r
    })
}

/// What every sleep does around the block itself: the might-sleep check, then
/// the BKL released for the sleep and retaken at the same depth after it (SPEC
/// §15: the BKL is the only lock held across a sleep, and only by dropping it).
#[inline]
fn around_sleep<R>(block: impl FnOnce(&TaskInner) -> R) -> R {
    crate::lockdep::might_sleep();
    with_current(|task| {
        let bkl_depth = crate::bkl::release_for_sleep();
        let r = block(task);
        crate::bkl::reacquire_after_sleep(bkl_depth);
        r
    })
}

/// How long a waiter polls its condition before it queues and sleeps
/// ([`poll_before_sleep`]): a futex wake-up costs 15–25 µs in a VM (the waker's
/// system call, then the sleeper's way back onto a CPU), so a condition that
/// comes true within this is caught without either.
#[cfg(not(loom))]
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(20);

/// Polls `cond` for up to [`POLL_BEFORE_SLEEP`] (never past `deadline`), at
/// intervals that double from 0.1 to 2 µs, yielding the CPU at the longest so
/// an oversubscribed machine runs the thread being waited for. Returns whether
/// `cond` came true. Used by the completion and wait-queue waits before they
/// queue (the adaptive spin the kernel's mutex does on its owner; a wait queue
/// has no owner to watch, so the spin is bounded in time). Under loom it does
/// nothing, so the models see only the sleeping path.
pub(crate) fn poll_before_sleep(deadline: Option<Instant>, mut cond: impl FnMut() -> bool) -> bool {
    #[cfg(loom)]
    {
        let _ = (deadline, &mut cond);
        false
    }
    #[cfg(not(loom))]
    {
        let patience = crate::backoff::Patience::start();
        let mut interval = Duration::from_nanos(100);
        let max = Duration::from_micros(2);
        loop {
            if cond() {
                return true;
            }
            if patience.expired(POLL_BEFORE_SLEEP) || deadline.is_some_and(|d| Instant::now() >= d)
            {
                return false;
            }
            patience.relax_for(interval);
            if interval >= max {
                crate::arch::yield_now();
            }
            interval = (interval * 2).min(max);
        }
    }
}

/// [`sleep`] for at most `timeout`.
pub fn sleep_timeout(state: TaskState, timeout: Duration) -> Result<()> {
    sleep(state, Instant::now().checked_add(timeout))
}

fn check_signals(task: &TaskInner, state: TaskState) -> Result<()> {
    let pending = task.pending.load(Ordering::SeqCst);
    if pending == 0 {
        return Ok(());
    }
    let fatal = pending & (1 << Signal::SIGKILL.number()) != 0;
    match state {
        TaskState::Interruptible if fatal => Err(Error::Killed),
        TaskState::Interruptible => Err(Error::Interrupted),
        TaskState::Killable if fatal => Err(Error::Killed),
        _ => Ok(()),
    }
}

fn sleep_on(task: &TaskInner, state: TaskState, deadline: Option<Instant>) -> Result<()> {
    use wake_word::{IDLE, PARKED, TOKEN};
    // SeqCst: pairs with `send_signal`, which sets its pending bit and then reads the
    // state (store→load on both sides): either it sees this state and wakes us, or
    // the signal check below sees its bit.
    task.state.store(state as u8, Ordering::SeqCst);
    // SeqCst fence: pairs with the one in `TaskInner::signal` (store-buffering:
    // our state store, then our pending load; its pending store, then its state
    // load). SeqCst accesses alone order this in Rust's model too, but loom models
    // SeqCst accesses as AcqRel and only fences as SeqCst, and found a missed
    // signal without it.
    crate::loom::sync::atomic::fence(Ordering::SeqCst);
    let r = loop {
        // A signal that ends this sleep wins over a wake-up token; the token stays
        // for the next sleep (a spurious wake-up, which callers tolerate).
        if let Err(e) = check_signals(task, state) {
            break Err(e);
        }
        // Consume a wake-up that is already here (Acquire pairs with the waker's
        // swap). An RMW, not a plain store: a second waker whose swap lands between
        // the load and here must either be read by this swap (and synchronize with
        // us) or come after it (and stay for the next sleep). A store would
        // overwrite its token while we might not yet see what it published (its
        // wait-queue mark, say): a lost wake-up, found by the completion loom model.
        if task.wake.load(Ordering::Relaxed) == TOKEN {
            task.wake.swap(IDLE, Ordering::Acquire);
            break Ok(());
        }
        // Publish PARKED before checking signals (see the module docs).
        if task
            .wake
            .compare_exchange(IDLE, PARKED, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            continue; // a TOKEN arrived meanwhile
        }
        if let Err(e) = check_signals(task, state) {
            // If a token arrived too, the CAS fails and the token stays for the next
            // sleep: wake-ups are never lost.
            let _ = task
                .wake
                .compare_exchange(PARKED, IDLE, Ordering::SeqCst, Ordering::Relaxed);
            break Err(e);
        }
        let fr = futex::wait(&task.wake, PARKED, deadline);
        if task
            .wake
            .compare_exchange(PARKED, IDLE, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            // The word is TOKEN: consumed on the next loop turn.
            continue;
        }
        if fr == futex::WaitResult::TimedOut || deadline.is_some_and(|d| Instant::now() >= d) {
            break Err(Error::TimedOut);
        }
        // Woken by a signal handler or spuriously: the loop re-checks signals.
    };
    task.state.store(TaskState::Running as u8, Ordering::SeqCst);
    r
}

/// Sleeps at least `ms` milliseconds, uninterruptibly (`msleep`), through
/// [`sleep`]. Not from atomic context.
pub fn msleep(ms: u64) {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        // Ok(()) is a wake-up token or spurious: sleep on until the deadline.
        if sleep(TaskState::Uninterruptible, Some(deadline)).is_err() || Instant::now() >= deadline
        {
            return;
        }
    }
}

/// Sleeps `ms` milliseconds unless a signal comes first
/// (`msleep_interruptible`); returns the milliseconds left (0 when it slept
/// them all).
pub fn msleep_interruptible(ms: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        match sleep(TaskState::Interruptible, Some(deadline)) {
            Err(Error::Interrupted | Error::Killed) => {
                let left = deadline.saturating_duration_since(Instant::now());
                return left.as_nanos().div_ceil(1_000_000) as u64;
            }
            Err(_) => return 0,
            Ok(()) if Instant::now() >= deadline => return 0,
            Ok(()) => {}
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sched::{Signal, current};
    use std::sync::mpsc;

    #[test]
    fn msleep_sleeps_at_least() {
        let t = Instant::now();
        msleep(15);
        assert!(t.elapsed() >= Duration::from_millis(15));
    }

    #[test]
    fn wake_before_sleep_is_not_lost() {
        std::thread::spawn(|| {
            current().wake_up();
            assert_eq!(sleep(TaskState::Uninterruptible, None), Ok(()));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn wake_up_from_another_thread() {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            sleep(TaskState::Uninterruptible, None)
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        task.wake_up();
        assert_eq!(t.join().unwrap(), Ok(()));
    }

    #[test]
    fn deadline_passes() {
        let start = Instant::now();
        let r = std::thread::spawn(|| {
            sleep_timeout(TaskState::Uninterruptible, Duration::from_millis(15))
        })
        .join()
        .unwrap();
        assert_eq!(r, Err(Error::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(15));
    }

    #[test]
    fn signal_interrupts_interruptible_sleep_only() {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = sleep(TaskState::Interruptible, None);
            // A pending signal does not end an uninterruptible sleep: only the
            // deadline does (Ok returns are spurious wake-ups).
            let d = Instant::now() + Duration::from_millis(5);
            let u = loop {
                match sleep(TaskState::Uninterruptible, Some(d)) {
                    Ok(()) => continue,
                    e => break e,
                }
            };
            (r, u)
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Interruptible {
            std::thread::yield_now();
        }
        task.send_signal(Signal::SIGUSR1);
        let (r, u) = t.join().unwrap();
        assert_eq!(r, Err(Error::Interrupted));
        assert_eq!(u, Err(Error::TimedOut));
    }

    #[test]
    fn sigkill_ends_killable_sleep() {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            sleep(TaskState::Killable, None)
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Killable {
            std::thread::yield_now();
        }
        task.send_signal(Signal::SIGUSR2); // not fatal: the sleep goes on
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(task.state(), TaskState::Killable);
        task.send_signal(Signal::SIGKILL);
        assert_eq!(t.join().unwrap(), Err(Error::Killed));
    }
}
