//! Futex wait and wake on a 32-bit word (`FUTEX_WAIT_PRIVATE`/`FUTEX_WAKE_PRIVATE`).
//!
//! [`wait`] sleeps only if the word still holds the expected value, checked
//! atomically with respect to [`wake`]: a waker that changes the word and then
//! calls `wake` can never be missed. Under `--cfg loom` both are modelled (see
//! `crate::loom::futex`) so model tests can find lost wake-ups.

use crate::loom::sync::atomic::AtomicU32;
use std::time::Instant;

/// Why [`wait`] returned. Every reason may also be spurious: callers re-check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken by [`wake`], or the word did not hold the expected value.
    Woken,
    /// A signal handler ran on this thread (`EINTR`).
    Interrupted,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, until [`wake`]d, a signal handler runs, or
/// `deadline` passes.
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    #[cfg(loom)]
    {
        let _ = deadline;
        crate::loom::futex::wait(word, expected);
        WaitResult::Woken
    }
    #[cfg(not(loom))]
    {
        use rustix::io::Errno;
        use rustix::thread::futex;
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return WaitResult::TimedOut;
                }
                Some(futex::Timespec {
                    tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                    tv_nsec: left.subsec_nanos() as _,
                })
            }
        };
        match futex::wait(word, futex::Flags::PRIVATE, expected, timeout.as_ref()) {
            Ok(()) | Err(Errno::AGAIN) => WaitResult::Woken,
            Err(Errno::INTR) => WaitResult::Interrupted,
            Err(Errno::TIMEDOUT) => WaitResult::TimedOut,
            Err(e) => panic!("futex wait failed: {e}"),
        }
    }
}

/// Wakes up to `n` threads sleeping in [`wait`] on `word`; returns how many woke.
#[inline]
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    #[cfg(loom)]
    {
        crate::loom::futex::wake(word, n)
    }
    #[cfg(not(loom))]
    {
        rustix::thread::futex::wake(
            word,
            rustix::thread::futex::Flags::PRIVATE,
            n.min(i32::MAX as u32),
        )
        .unwrap_or(0)
    }
}

/// Wakes one waiter.
#[inline]
pub fn wake_one(word: &AtomicU32) -> bool {
    wake(word, 1) > 0
}

/// Wakes every waiter.
#[inline]
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[test]
    fn wait_returns_at_once_when_the_value_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), WaitResult::Woken);
    }

    #[test]
    fn wait_times_out_no_earlier_than_the_deadline() {
        let w = AtomicU32::new(0);
        let start = Instant::now();
        let d = start + Duration::from_millis(20);
        let mut r = wait(&w, 0, Some(d));
        while r == WaitResult::Woken && Instant::now() < d {
            r = wait(&w, 0, Some(d));
        }
        assert!(Instant::now() >= d);
        assert_ne!(r, WaitResult::Interrupted);
    }

    #[test]
    fn wake_releases_a_sleeper() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, None);
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::Release);
        wake_all(&w);
        t.join().unwrap();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::sync::atomic::Ordering;

    /// A waker that publishes and then wakes is never missed by a waiter that
    /// checks and then sleeps (the futex model the other loom tests rely on).
    #[test]
    fn loom_futex_wake_after_store_is_not_lost() {
        loom::model(|| {
            let w = Arc::new(AtomicU32::new(0));
            let w2 = w.clone();
            let t = loom::thread::spawn(move || {
                w2.store(1, Ordering::Release);
                wake_all(&w2);
            });
            while w.load(Ordering::Acquire) == 0 {
                wait(&w, 0, None);
            }
            t.join().unwrap();
        });
    }

    /// The same waiter with a waker that forgets to wake deadlocks, and loom says so:
    /// proof that the model detects lost wake-ups.
    #[test]
    #[should_panic]
    fn loom_futex_missing_wake_is_detected() {
        loom::model(|| {
            let w = Arc::new(AtomicU32::new(0));
            let w2 = w.clone();
            let t = loom::thread::spawn(move || {
                w2.store(1, Ordering::Release);
            });
            while w.load(Ordering::Acquire) == 0 {
                wait(&w, 0, None);
            }
            t.join().unwrap();
        });
    }
}
