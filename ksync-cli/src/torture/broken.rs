//! A deliberately broken lock, hidden from the default run: it proves the harness
//! catches a lock that does not always exclude (`ksync torture --type
//! broken_lock` must print FAILURE), and that faults find such bugs sooner.
//!
//! It has two classic bugs:
//! - test-and-test-and-set with the "set" split from the "test" (a load that
//!   sees the lock free, then a plain store): two threads that both load
//!   between each other's load and store both enter. The window is a few dozen
//!   cycles wide (and 1 time in 64 a yield, as a preemption), so a steady run
//!   hits it only now and then;
//! - task context takes it with irqs enabled while the irq handler takes it
//!   too: an irq that arrives while its own thread holds the lock would spin
//!   forever in the kernel (the deadlock `spin_lock_irqsave` prevents); here the
//!   handler enters a busy lock anyway, and the harness's exclusion check fails.
//!   Only the `irqs` fault finds this one.

use super::{Config, Monitor, Report, TortureLock, TortureType, lock_torture};
use std::sync::atomic::{AtomicBool, Ordering};

/// Spin hints between the test and the set.
const WINDOW: u32 = 16;

/// A lock whose acquisition is not atomic, and not irq-safe.
struct RacyLock {
    locked: AtomicBool,
}

impl RacyLock {
    fn new() -> Self {
        RacyLock {
            locked: AtomicBool::new(false),
        }
    }
    fn acquire(&self) {
        loop {
            while self.locked.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            // THE BUG: the test and the set are two operations.
            if !self.locked.load(Ordering::Acquire) {
                for _ in 0..WINDOW {
                    std::hint::spin_loop();
                }
                if fastrand::u8(..) < 4 {
                    std::thread::yield_now();
                }
                self.locked.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
    fn release(&self) {
        self.locked.store(false, Ordering::Release);
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
        if self.locked.load(Ordering::Acquire) {
            cs();
            return true;
        }
        self.locked.store(true, Ordering::Relaxed);
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
            about: "test-only: a racy, irq-unsafe lock; must FAIL (sooner with --faults irqs)",
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
