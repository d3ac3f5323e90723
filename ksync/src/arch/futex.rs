//! Futex wait and wake on a 32-bit word (`FUTEX_WAIT_PRIVATE`/`FUTEX_WAKE_PRIVATE`),
//! and the priority-inheriting futex operations ([`pi`]) that
//! [`RtMutex`](crate::rtmutex::RtMutex) is built on.
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

/// Priority-inheriting futexes (`FUTEX_LOCK_PI`, `FUTEX_UNLOCK_PI`,
/// `FUTEX_TRYLOCK_PI`, `FUTEX_WAIT_REQUEUE_PI`, `FUTEX_CMP_REQUEUE_PI`), all
/// `FUTEX_PRIVATE_FLAG`.
///
/// The word's protocol is the kernel's (futex(2)): `0` free, else the owner's
/// tid in the low 30 bits, [`WAITERS`](pi::WAITERS) set while the kernel has
/// queued waiters (the unlock must then go through [`unlock`](pi::unlock)),
/// [`OWNER_DIED`](pi::OWNER_DIED) when the owner exited holding it. The kernel
/// owns the word while it has waiters: it hands the lock to the top waiter on
/// unlock and lends the top waiter's priority to the owner, transitively along
/// a chain of owners that wait on other PI futexes.
#[cfg(not(loom))]
pub mod pi {
    use core::sync::atomic::AtomicU32;
    use rustix::io::Errno;
    use rustix::thread::futex::{self, Flags, Timespec};
    use std::time::{Duration, Instant};

    /// `FUTEX_WAITERS`: the kernel has waiters queued on the word.
    pub const WAITERS: u32 = 0x8000_0000;
    /// `FUTEX_OWNER_DIED`: the owner exited while holding the lock.
    pub const OWNER_DIED: u32 = 0x4000_0000;
    /// `FUTEX_TID_MASK`: the owner's thread id.
    pub const TID_MASK: u32 = 0x3fff_ffff;

    /// Why a PI lock or wait did not take the lock.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum PiError {
        /// The deadline of this call passed (`ETIMEDOUT`).
        TimedOut,
        /// The kernel found a deadlock: the caller owns the lock, or the chain of
        /// owners it would wait on leads back to it (`EDEADLK`).
        Deadlock,
        /// The word changed before the wait ([`wait_requeue`]: `EAGAIN`), or
        /// the wait ended without the lock (a signal after the requeue).
        Again,
    }

    fn ns_timespec(ns: u128) -> Timespec {
        Timespec {
            tv_sec: (ns / 1_000_000_000).min(i64::MAX as u128) as i64,
            tv_nsec: (ns % 1_000_000_000) as _,
        }
    }

    /// `deadline` as an absolute `CLOCK_MONOTONIC` time (what `FUTEX_LOCK_PI2`
    /// and `FUTEX_WAIT_REQUEUE_PI` take), or `None` if it has passed.
    fn monotonic_abs(deadline: Instant) -> Option<Timespec> {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        Some(ns_timespec(
            crate::arch::time::now_ns() as u128 + left.as_nanos(),
        ))
    }

    /// `deadline` as an absolute `CLOCK_REALTIME` time (what `FUTEX_LOCK_PI`
    /// takes), or `None` if it has passed.
    fn realtime_abs(deadline: Instant) -> Option<Timespec> {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Some(ns_timespec(now.as_nanos() + left.as_nanos()))
    }

    fn unexpected(op: &str, e: Errno) -> ! {
        // ESRCH/EOWNERDEAD-style states need the robust list, which ksync does
        // not register; EINVAL means the word does not follow the protocol.
        panic!(
            "ksync: futex {op} failed: {e} (the PI word does not follow the futex(2) protocol, or its owner exited holding it)"
        )
    }

    /// Takes the PI lock `word` in the kernel (`FUTEX_LOCK_PI`), blocking until
    /// it is ours or `deadline` passes. Call after the user-space CAS `0 → tid`
    /// failed. The kernel restarts the call itself after a signal handler runs
    /// (it never returns `EINTR`): a caller that must notice signals passes a
    /// short deadline and re-checks between calls.
    ///
    /// # Errors
    /// [`PiError::TimedOut`], [`PiError::Deadlock`].
    pub fn lock(word: &AtomicU32, deadline: Option<Instant>) -> Result<(), PiError> {
        let r = match deadline {
            None => futex::lock_pi(word, Flags::PRIVATE, None),
            Some(d) => {
                let Some(ts) = monotonic_abs(d) else {
                    return Err(PiError::TimedOut);
                };
                // FUTEX_LOCK_PI2 (Linux 5.14) takes CLOCK_MONOTONIC, as our
                // deadlines are; FUTEX_LOCK_PI only CLOCK_REALTIME.
                match futex::lock_pi2(word, Flags::PRIVATE, Some(&ts)) {
                    Err(Errno::NOSYS) => {
                        let Some(ts) = realtime_abs(d) else {
                            return Err(PiError::TimedOut);
                        };
                        futex::lock_pi(word, Flags::PRIVATE, Some(&ts))
                    }
                    r => r,
                }
            }
        };
        match r {
            Ok(()) => Ok(()),
            Err(Errno::TIMEDOUT) => Err(PiError::TimedOut),
            Err(Errno::DEADLK) => Err(PiError::Deadlock),
            Err(e) => unexpected("LOCK_PI", e),
        }
    }

    /// Tries once to take the PI lock `word` in the kernel (`FUTEX_TRYLOCK_PI`):
    /// the kernel also takes over a lock whose owner died.
    pub fn trylock(word: &AtomicU32) -> bool {
        match futex::trylock_pi(word, Flags::PRIVATE) {
            Ok(got) => got,
            Err(Errno::AGAIN | Errno::BUSY | Errno::DEADLK) => false,
            Err(e) => unexpected("TRYLOCK_PI", e),
        }
    }

    /// Releases the PI lock `word`, which the caller owns, through the kernel
    /// (`FUTEX_UNLOCK_PI`): it hands the lock to the top waiter, if any, and
    /// drops the priority the caller was lent. Call when the user-space CAS
    /// `tid → 0` failed because [`WAITERS`] is set.
    pub fn unlock(word: &AtomicU32) {
        if let Err(e) = futex::unlock_pi(word, Flags::PRIVATE) {
            unexpected("UNLOCK_PI", e)
        }
    }

    /// Sleeps on the condition word `cond` while it holds `expected`, to be
    /// requeued by [`cmp_requeue`] onto the PI lock `lock` and woken as its
    /// owner (`FUTEX_WAIT_REQUEUE_PI`): the inheritance holds from the moment
    /// of the requeue. The caller must not hold `lock` (it released it after
    /// reading `expected`). `Ok(())`: the caller owns `lock`.
    ///
    /// # Errors
    /// [`PiError::Again`] (the word changed, or a signal ended the wait after
    /// the requeue) and [`PiError::TimedOut`]: the caller does not own `lock`
    /// and must take it itself; [`PiError::Deadlock`].
    pub fn wait_requeue(
        cond: &AtomicU32,
        expected: u32,
        lock: &AtomicU32,
        deadline: Option<Instant>,
    ) -> Result<(), PiError> {
        let ts = match deadline {
            None => None,
            Some(d) => match monotonic_abs(d) {
                Some(ts) => Some(ts),
                None => return Err(PiError::TimedOut),
            },
        };
        match futex::wait_requeue_pi(cond, Flags::PRIVATE, expected, ts.as_ref(), lock) {
            Ok(()) => Ok(()),
            Err(Errno::AGAIN | Errno::INTR) => Err(PiError::Again),
            Err(Errno::TIMEDOUT) => Err(PiError::TimedOut),
            Err(Errno::DEADLK) => Err(PiError::Deadlock),
            Err(e) => unexpected("WAIT_REQUEUE_PI", e),
        }
    }

    /// Wakes one waiter of [`wait_requeue`] on `cond` (taking `lock` for it if
    /// free) and moves up to `nr_requeue` more onto the PI lock `lock`, if
    /// `cond` still holds `expected` (`FUTEX_CMP_REQUEUE_PI`). Returns how many
    /// were woken or moved. `lock` is a raw pointer, never made a reference
    /// here: a condition variable remembers its mutex's word from an earlier
    /// wait and may notify after that mutex is gone.
    ///
    /// # Errors
    /// [`PiError::Again`]: `cond` no longer holds `expected`.
    ///
    /// # Safety
    /// If a waiter of [`wait_requeue`] waits on `cond`, `lock` is the live
    /// word that waiter named. With no waiter the kernel only hashes the
    /// address of a private futex and never reads it.
    pub unsafe fn cmp_requeue(
        cond: &AtomicU32,
        lock: *const AtomicU32,
        nr_requeue: u32,
        expected: u32,
    ) -> Result<usize, PiError> {
        // SAFETY: `cond` is a live word (a reference); `lock` is live whenever
        // the kernel will touch it (the caller's contract); the timeout slot
        // carries `nr_requeue` as FUTEX_CMP_REQUEUE_PI defines, nr_wake is 1.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                cond.as_ptr(),
                libc::FUTEX_CMP_REQUEUE_PI | libc::FUTEX_PRIVATE_FLAG,
                1 as libc::c_int,
                nr_requeue.min(i32::MAX as u32) as libc::c_long,
                lock,
                expected,
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        match Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        {
            Errno::AGAIN => Err(PiError::Again),
            Errno::DEADLK => Err(PiError::Deadlock),
            e => unexpected("CMP_REQUEUE_PI", e),
        }
    }
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
