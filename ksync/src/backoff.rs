//! [`Backoff`]: randomized, bounded exponential backoff for retry loops.

use core::cell::Cell;
use core::time::Duration;

/// Randomized exponential backoff for retry and busy-wait loops (SPEC §17:
/// livelock). Every retry loop in ksync uses it.
///
/// [`spin`](Backoff::spin) is for CAS retry loops: it spins `2^step` times
/// (up to `2^SPIN_LIMIT`) with random jitter so two threads that collided do
/// not collide again in lock-step. [`snooze`](Backoff::snooze) is for waiting on
/// another thread: it spins the same way first, then yields the CPU.
/// [`is_completed`](Backoff::is_completed) says when the caller should stop
/// spinning and sleep instead.
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use ksync::Backoff;
///
/// fn increment(a: &AtomicU32) {
///     let mut backoff = Backoff::new();
///     let mut cur = a.load(Ordering::Relaxed);
///     loop {
///         match a.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
///             Ok(_) => return,
///             Err(now) => cur = now,
///         }
///         backoff.spin();
///     }
/// }
/// let a = AtomicU32::new(0);
/// increment(&a);
/// assert_eq!(a.load(Ordering::Relaxed), 1);
/// ```
#[derive(Debug)]
pub struct Backoff {
    step: Cell<u32>,
    seed: Cell<u32>,
}

const SPIN_LIMIT: u32 = 6;
const YIELD_LIMIT: u32 = 10;

impl Backoff {
    /// A fresh backoff at step 0.
    #[inline]
    pub fn new() -> Self {
        // Seed the jitter from this frame's address: distinct per thread and cheap.
        // Under loom the model must be deterministic (loom replays executions and
        // a stack address changes between them), so the seed is fixed there.
        #[cfg(not(loom))]
        let seed = {
            let local = 0u8;
            (&local as *const u8 as usize as u32) | 1
        };
        #[cfg(loom)]
        let seed = 0x9e37_79b9;
        Backoff {
            step: Cell::new(0),
            seed: Cell::new(seed),
        }
    }

    /// Starts over from step 0.
    #[inline]
    pub fn reset(&self) {
        self.step.set(0);
    }

    #[inline]
    fn jitter(&self, bound: u32) -> u32 {
        // xorshift32
        let mut x = self.seed.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed.set(x);
        x % bound.max(1)
    }

    /// Backs off in a lock-free retry loop: spins between `2^(step-1)` and `2^step`
    /// times (randomized), the step growing up to a fixed limit.
    #[inline]
    pub fn spin(&self) {
        let step = self.step.get().min(SPIN_LIMIT);
        let full = 1u32 << step;
        let n = full / 2 + self.jitter(full / 2 + 1);
        for _ in 0..n {
            crate::arch::cpu_relax();
        }
        if self.step.get() <= SPIN_LIMIT {
            self.step.set(self.step.get() + 1);
        }
    }

    /// Backs off while waiting for another thread: spins at first, then yields
    /// the CPU to let the thread being waited for run.
    #[inline]
    pub fn snooze(&self) {
        if self.step.get() <= SPIN_LIMIT {
            self.spin();
        } else {
            crate::arch::yield_now();
            if self.step.get() <= YIELD_LIMIT {
                self.step.set(self.step.get() + 1);
            }
        }
    }

    /// Whether backing off has gone on long enough that the caller should block
    /// (park on a futex) instead.
    #[inline]
    pub fn is_completed(&self) -> bool {
        self.step.get() > YIELD_LIMIT
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// The monotonic clock in nanoseconds (`CLOCK_MONOTONIC`, a vDSO call: no
/// system call). Under loom, 0 (patience is always exhausted there).
#[inline]
pub(crate) fn now_ns() -> u64 {
    #[cfg(not(loom))]
    {
        crate::arch::time::now_ns()
    }
    #[cfg(loom)]
    0
}

/// The first interval at which a waiter that lets a running owner keep its
/// lock polls the lock word (the queued spinlock's head, a spinning mutex
/// contender); it doubles up to [`POLL_MAX`]. Each poll costs a running owner
/// a cache miss, and each poll that finds the lock free moves it (and its
/// line) to another CPU: rare polls let the owner run bursts of thousands of
/// acquisitions with its line hot.
#[cfg(not(loom))]
pub(crate) const POLL_FIRST: Duration = Duration::from_micros(1);
/// The longest poll interval; at this interval the poller also yields its CPU
/// between polls, so on an oversubscribed machine the owner gets it.
#[cfg(not(loom))]
pub(crate) const POLL_MAX: Duration = Duration::from_micros(8);
/// Under loom polls do not wait (as patience is always exhausted).
#[cfg(loom)]
pub(crate) const POLL_FIRST: Duration = Duration::ZERO;
#[cfg(loom)]
pub(crate) const POLL_MAX: Duration = Duration::ZERO;

/// How long a waiter has waited: time-based (a spin round's length varies
/// tenfold between CPUs, `pause` alone from 10 to 140 cycles). Under loom
/// patience is always exhausted and relaxing is free, so the models reach the
/// paths that follow within their small preemption bound.
pub(crate) struct Patience {
    #[cfg(not(loom))]
    start: u64,
}

impl Patience {
    /// Starts counting now.
    #[inline]
    pub(crate) fn start() -> Self {
        Self::since(now_ns())
    }

    /// Counts from `start_ns` (a [`now_ns`] reading, possibly another
    /// thread's: the queued spinlock's head counts from when its predecessor
    /// took the lock).
    #[inline]
    pub(crate) fn since(start_ns: u64) -> Self {
        #[cfg(loom)]
        let _ = start_ns;
        Patience {
            #[cfg(not(loom))]
            start: start_ns,
        }
    }

    /// Spins (`cpu_relax`) for about `d` (loom: returns at once). Reads the clock
    /// every few pauses, so the wait is in time, not in pauses.
    #[inline]
    pub(crate) fn relax_for(&self, d: Duration) {
        #[cfg(not(loom))]
        {
            let end = now_ns() + d.as_nanos() as u64;
            loop {
                for _ in 0..4 {
                    crate::arch::cpu_relax();
                }
                if now_ns() >= end {
                    break;
                }
            }
        }
        #[cfg(loom)]
        let _ = d;
    }

    /// Nanoseconds since the start (loom: 0).
    #[inline]
    pub(crate) fn elapsed_ns(&self) -> u64 {
        #[cfg(not(loom))]
        return now_ns().saturating_sub(self.start);
        #[cfg(loom)]
        0
    }

    /// When patience started counting ([`now_ns`]; loom: 0).
    #[inline]
    pub(crate) fn start_ns(&self) -> u64 {
        #[cfg(not(loom))]
        return self.start;
        #[cfg(loom)]
        0
    }

    /// Nanoseconds from the start to `now` (a [`now_ns`] reading the caller
    /// has taken; loom: 0).
    #[inline]
    pub(crate) fn elapsed_at(&self, now: u64) -> u64 {
        #[cfg(not(loom))]
        return now.saturating_sub(self.start);
        #[cfg(loom)]
        {
            let _ = now;
            0
        }
    }

    /// Whether `limit` has passed since the start (loom: always).
    #[inline]
    pub(crate) fn expired(&self, limit: Duration) -> bool {
        #[cfg(not(loom))]
        return now_ns().saturating_sub(self.start) >= limit.as_nanos() as u64;
        #[cfg(loom)]
        {
            let _ = limit;
            true
        }
    }
}

/// The wait/retry helper of every spin loop inside ksync (the spinlocks, the
/// sleeping locks' optimistic spins, the internal [`RawLock`](crate::rawlock::RawLock)):
/// [`Backoff`] normally; under loom a single yield per round and a budget of
/// one round, so the models stay small and deterministic (`Backoff` seeds its
/// jitter from a stack address) while still taking the slow (sleep) paths.
pub(crate) struct Spin {
    #[cfg(not(loom))]
    b: crate::Backoff,
    #[cfg(loom)]
    n: core::cell::Cell<u32>,
}

impl Spin {
    #[inline]
    pub(crate) fn new() -> Self {
        Spin {
            #[cfg(not(loom))]
            b: crate::Backoff::new(),
            #[cfg(loom)]
            n: core::cell::Cell::new(0),
        }
    }

    /// Backs off after a failed CAS (randomized exponential spinning).
    #[inline]
    pub(crate) fn spin(&self) {
        #[cfg(not(loom))]
        self.b.spin();
        #[cfg(loom)]
        self.snooze();
    }

    /// Waits for another thread: spins, then yields the CPU.
    #[inline]
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        self.b.snooze();
        #[cfg(loom)]
        {
            self.n.set(self.n.get() + 1);
            loom::thread::yield_now();
        }
    }

    /// Whether the spin budget is spent and the caller should sleep instead.
    #[inline]
    pub(crate) fn is_completed(&self) -> bool {
        #[cfg(not(loom))]
        return self.b.is_completed();
        #[cfg(loom)]
        return self.n.get() >= 1;
    }

    /// Starts a new budget.
    #[inline]
    pub(crate) fn reset(&self) {
        #[cfg(not(loom))]
        self.b.reset();
        #[cfg(loom)]
        self.n.set(0);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn completes_after_spinning_and_yielding() {
        let b = Backoff::new();
        let mut n = 0;
        while !b.is_completed() {
            b.snooze();
            n += 1;
            assert!(n < 100);
        }
        assert_eq!(n as u32, YIELD_LIMIT + 1);
        b.reset();
        assert!(!b.is_completed());
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let b = Backoff::new();
        for bound in 1..100 {
            assert!(b.jitter(bound) < bound);
        }
    }
}
