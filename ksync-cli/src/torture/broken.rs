//! A deliberately broken lock, hidden from the default run: it proves the harness
//! catches a lock that does not always exclude (`ksync torture --type
//! broken_lock --faults stutter` or `--faults irqs` must print FAILURE), and
//! that faults find such bugs sooner than a steady run does.
//!
//! It has two classic bugs:
//! - a fast path for an idle lock (no holder, no waiter) whose "test" and
//!   "set" are two operations (a load that sees the lock free, then a plain
//!   store): two threads that arrive at an idle lock together both enter.
//!   Once the lock is busy, arrivals queue as waiters and a release hands the
//!   lock straight to one of them, which is correct; so while every thread
//!   hammers it the lock is seldom idle, and a steady run hits the race only
//!   when the load changes (at start-up). The `stutter` fault changes it ten
//!   times a second: threads drain into the pause and come back to an idle
//!   lock together (every thread on a CPU at the same instant). On this
//!   project's loaded two-CPU machine, 21 trials each way
//!   (`ksync torture --type broken_lock --faults stutter --trials 21
//!   --duration 3`): median first failure 292 and 368 ms in two runs with the
//!   stutter (21 of 21 failed), over 3 s without (7 of 21 failed, at
//!   start-up). `shuffle` and `onoff` do not help here: squeezed onto
//!   fewer CPUs, threads arrive less often together, not more (0 of 7 runs
//!   failed with both);
//! - task context takes it with irqs enabled while the irq handler takes it
//!   too: an irq that arrives while its own thread holds the lock would spin
//!   forever in the kernel (the deadlock `spin_lock_irqsave` prevents); here the
//!   handler enters a busy lock anyway, and the harness's exclusion check fails.
//!   Only the `irqs` fault finds this one.

use super::{Config, Monitor, Report, TortureLock, TortureType, lock_torture};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Spin hints between the test and the set of the fast path: a few
/// microseconds, wide enough that two threads released at one instant both
/// pass the test, narrow enough that a steady run (where the lock is rarely
/// idle) seldom loses.
const WINDOW: u32 = 128;

/// A lock whose idle-lock fast path is not atomic, and which is not irq-safe.
struct RacyLock {
    /// Held (or being handed to a waiter).
    locked: AtomicBool,
    /// Threads in the slow path.
    waiters: AtomicU32,
    /// Set by a release that found waiters: the lock stays `locked` and goes
    /// to the first waiter that clears this.
    handoff: AtomicBool,
}

impl RacyLock {
    fn new() -> Self {
        RacyLock {
            locked: AtomicBool::new(false),
            waiters: AtomicU32::new(0),
            handoff: AtomicBool::new(false),
        }
    }
    fn acquire(&self) {
        // The fast path for an idle lock. THE BUG: the test and the set are
        // two operations, so two threads arriving together both pass the test.
        if self.waiters.load(Ordering::SeqCst) == 0 && !self.locked.load(Ordering::SeqCst) {
            for _ in 0..WINDOW {
                std::hint::spin_loop();
            }
            self.locked.store(true, Ordering::SeqCst);
            return;
        }
        // The slow path, correct among its own users: count as a waiter, then
        // take a hand-off or a free lock, each with one atomic operation.
        // SeqCst throughout (a test lock: only the fast path is to be wrong),
        // so a release either sees this waiter or leaves the lock free for
        // its compare-and-swap.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        while self
            .handoff
            .compare_exchange(true, false, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
            && self
                .locked
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
        {
            std::hint::spin_loop();
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
    fn release(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Hand over: the lock stays held, for the waiter that takes this.
            self.handoff.store(true, Ordering::SeqCst);
        } else {
            self.locked.store(false, Ordering::SeqCst);
        }
    }
}

impl TortureLock for RacyLock {
    fn write(&self, cs: &mut dyn FnMut()) {
        self.acquire();
        cs();
        self.release();
    }
    /// THE SECOND BUG: the handler does not wait for a busy lock (it would
    /// spin forever when the holder is the thread it interrupted, as in the
    /// kernel): it enters anyway, and the exclusion check catches it.
    fn write_from_irq(&self, cs: &mut dyn FnMut()) -> bool {
        if self.locked.load(Ordering::SeqCst) {
            cs();
            return true;
        }
        self.locked.store(true, Ordering::SeqCst);
        cs();
        self.release();
        true
    }
    fn sibling(&self, _depth: usize) -> Option<Box<dyn TortureLock>> {
        Some(Box::new(RacyLock::new()))
    }
}

fn run(cfg: &Config, mon: &Monitor) -> Report {
    lock_torture(&RacyLock::new(), cfg, mon)
}

/// A lock whose first holder keeps it for [`STUCK_HOLD`]: every other thread
/// waits that long, which the stall watchdog must report.
struct StuckLock {
    m: std::sync::Mutex<()>,
    first: AtomicBool,
}

/// How long `stuck_lock`'s first holder holds.
const STUCK_HOLD: std::time::Duration = std::time::Duration::from_secs(2);

impl TortureLock for StuckLock {
    fn write(&self, cs: &mut dyn FnMut()) {
        let _g = self.m.lock().unwrap();
        if !self.first.swap(true, Ordering::Relaxed) {
            std::thread::sleep(STUCK_HOLD);
        }
        cs();
    }
}

fn run_stuck(cfg: &Config, mon: &Monitor) -> Report {
    let lock = StuckLock {
        m: std::sync::Mutex::new(()),
        first: AtomicBool::new(false),
    };
    lock_torture(&lock, cfg, mon)
}

pub fn types() -> Vec<TortureType> {
    vec![
        TortureType {
            name: "broken_lock",
            about: "test-only: a racy, irq-unsafe lock; must FAIL (sooner with --faults stutter or irqs)",
            writers: 4,
            readers: 2,
            hidden: true,
            run,
        },
        TortureType {
            name: "stuck_lock",
            about: "test-only: its first holder keeps it 2 s; with --stall under 2 it must FAIL with STALL",
            writers: 2,
            readers: 0,
            hidden: true,
            run: run_stuck,
        },
    ]
}
