//! Torture types for the mutex area (registered in `super::all`): `mutex`,
//! `mutex_interruptible`, `rwsem` (with readers) and `condvar`.

use super::faults::{self, Fault};
use super::{Config, Monitor, Report, TortureLock, TortureType, lock_torture};
use ksync::condvar::CondVar;
use ksync::lockdep::LockClassKey;
use ksync::mutex::Mutex;
use ksync::rwsem::RwSemaphore;
use ksync::sched::{Signal, Task, current, flush_signals};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub fn types() -> Vec<TortureType> {
    vec![
        TortureType {
            name: "mutex",
            about: "ksync::mutex::Mutex (mutex_lock): adaptive spin, sleep, hand-off",
            writers: 4,
            readers: 0,
            hidden: false,
            run: run_mutex,
        },
        TortureType {
            name: "mutex_interruptible",
            about: "mutex_lock_interruptible under a stream of signals: EINTR leaves the mutex intact",
            writers: 4,
            readers: 0,
            hidden: false,
            run: run_mutex_interruptible,
        },
        TortureType {
            name: "rwsem",
            about: "ksync::rwsem::RwSemaphore (down_read/down_write, downgrade_write)",
            writers: 2,
            readers: 4,
            hidden: false,
            run: run_rwsem,
        },
        TortureType {
            name: "condvar",
            about: "ksync::condvar::CondVar: a token passed round a ring of waiters, no lost notify",
            writers: 4,
            readers: 0,
            hidden: false,
            run: run_condvar,
        },
    ]
}

/// The mutex; with the `signals` fault, taken with `lock_interruptible` (and
/// `lock_killable` every other time), retried on `-EINTR`: a failed lock must
/// leave the mutex as if it was never tried (the harness's exclusion check, and
/// the final "not locked" check).
struct MutexLock {
    m: Mutex<()>,
    interruptible: bool,
}

impl TortureLock for MutexLock {
    fn write(&self, cs: &mut dyn FnMut()) {
        if !self.interruptible {
            let _g = self.m.lock();
            cs();
            return;
        }
        loop {
            let r = if fastrand::bool() {
                self.m.lock_interruptible()
            } else {
                self.m.lock_killable()
            };
            match r {
                Ok(_g) => return cs(),
                Err(_) => {
                    flush_signals();
                    faults::EINTR.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    fn sibling(&self, depth: usize) -> Option<Box<dyn TortureLock>> {
        static NESTED_KEYS: [LockClassKey; super::NESTED] = [
            LockClassKey::new("torture_mutex_nested[0]"),
            LockClassKey::new("torture_mutex_nested[1]"),
        ];
        let key = NESTED_KEYS.get(depth)?;
        Some(Box::new(MutexLock {
            m: Mutex::with_class((), key.name(), key),
            interruptible: self.interruptible,
        }))
    }
}

fn run_mutex(cfg: &Config, mon: &Monitor) -> Report {
    let lock = MutexLock {
        m: Mutex::new(()),
        interruptible: cfg.faults.has(Fault::Signals),
    };
    let mut r = lock_torture(&lock, cfg, mon);
    if lock.m.is_locked() {
        mon.fail();
        r.failures += 1;
        r.notes.push("the mutex was left locked".into());
    }
    r
}

/// Writers lock with `lock_interruptible` and retry on `EINTR`; a side thread
/// signals them at random. A failed lock must not have taken the lock (the
/// harness's exclusion check) and must not leave it stuck (the run goes on).
struct InterruptibleLock {
    m: Mutex<()>,
    eintr: AtomicU64,
}

impl TortureLock for InterruptibleLock {
    fn write(&self, cs: &mut dyn FnMut()) {
        loop {
            match self.m.lock_interruptible() {
                Ok(_g) => {
                    cs();
                    return;
                }
                Err(_) => {
                    flush_signals();
                    self.eintr.fetch_add(1, Ordering::Relaxed);
                    faults::EINTR.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn run_mutex_interruptible(cfg: &Config, mon: &Monitor) -> Report {
    let lock = InterruptibleLock {
        m: Mutex::new(()),
        eintr: AtomicU64::new(0),
    };
    let tasks: std::sync::Mutex<Vec<Task>> = std::sync::Mutex::new(Vec::new());
    // Register each writer's task as it starts, through a wrapper lock.
    struct Registering<'a> {
        inner: &'a InterruptibleLock,
        tasks: &'a std::sync::Mutex<Vec<Task>>,
    }
    impl TortureLock for Registering<'_> {
        fn write(&self, cs: &mut dyn FnMut()) {
            thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
            if !DONE.with(|d| d.replace(true)) {
                self.tasks.lock().unwrap().push(current());
            }
            self.inner.write(cs)
        }
    }
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = fastrand::Rng::with_seed(0x51_6e_a1);
            while !mon.should_stop() {
                std::thread::sleep(Duration::from_micros(200));
                let ts = tasks.lock().unwrap();
                if !ts.is_empty() {
                    ts[rng.usize(..ts.len())].send_signal(Signal::SIGUSR1);
                }
            }
        });
        lock_torture(
            &Registering {
                inner: &lock,
                tasks: &tasks,
            },
            cfg,
            mon,
        )
    });
    let mut report = report;
    if lock.m.is_locked() {
        mon.fail();
        report.failures += 1;
        report.notes.push("the mutex was left locked".into());
    }
    report.notes.push(format!(
        "{} lock attempts ended with EINTR and were retried",
        lock.eintr.load(Ordering::Relaxed)
    ));
    report
}

/// The rwsem; with the `signals` fault, both sides are taken with the
/// interruptible calls and retried on `-EINTR`.
struct RwSemLock {
    sem: RwSemaphore<()>,
    interruptible: bool,
}

/// Retries `take` until it succeeds, counting and flushing each `-EINTR`.
fn retry<G>(mut take: impl FnMut() -> ksync::Result<G>) -> G {
    loop {
        match take() {
            Ok(g) => return g,
            Err(_) => {
                flush_signals();
                faults::EINTR.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl TortureLock for RwSemLock {
    fn write(&self, cs: &mut dyn FnMut()) {
        // Now and then downgrade in the middle: the write part runs the writer
        // check, then the read part must still exclude writers.
        let g = if self.interruptible {
            retry(|| self.sem.write_interruptible())
        } else {
            self.sem.write()
        };
        cs();
        if fastrand::u8(..) < 16 {
            let r = g.downgrade();
            drop(r);
        }
    }
    fn read(&self, cs: &mut dyn FnMut()) {
        let _g = if self.interruptible {
            retry(|| self.sem.read_interruptible())
        } else {
            self.sem.read()
        };
        cs();
    }
    fn sibling(&self, depth: usize) -> Option<Box<dyn TortureLock>> {
        static NESTED_KEYS: [LockClassKey; super::NESTED] = [
            LockClassKey::new("torture_rwsem_nested[0]"),
            LockClassKey::new("torture_rwsem_nested[1]"),
        ];
        let key = NESTED_KEYS.get(depth)?;
        Some(Box::new(RwSemLock {
            sem: RwSemaphore::with_class((), key.name(), key),
            interruptible: self.interruptible,
        }))
    }
}

fn run_rwsem(cfg: &Config, mon: &Monitor) -> Report {
    let lock = RwSemLock {
        sem: RwSemaphore::new(()),
        interruptible: cfg.faults.has(Fault::Signals),
    };
    let mut r = lock_torture(&lock, cfg, mon);
    if lock.sem.is_locked() {
        mon.fail();
        r.failures += 1;
        r.notes.push("the rwsem was left locked".into());
    }
    r
}

/// A token goes round a ring of `writers` threads: thread `i` waits (on one
/// condition variable, with `notify_all`) until the token is `i`, passes it to
/// `i + 1`. A lost notification stops the ring, which the run reports.
fn run_condvar(cfg: &Config, mon: &Monitor) -> Report {
    let n = cfg.writers.max(2);
    let state = Mutex::new((0usize, 0u64)); // (token holder, passes)
    let cv = CondVar::new();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (state, cv) = (&state, &cv);
                s.spawn(move || {
                    let me = mon.enter(super::Role::Writer);
                    let mut mine = 0u64;
                    mon.begin_wait(&me);
                    let mut g = state.lock();
                    loop {
                        while g.0 != i && !mon.should_stop() {
                            // Timed, so a stop is noticed; a lost notify still shows
                            // as a stalled ring (passes stop growing).
                            cv.wait_timeout(&mut g, Duration::from_millis(50));
                        }
                        if mon.should_stop() {
                            break;
                        }
                        mon.end_wait(&me);
                        g.0 = (i + 1) % n;
                        g.1 += 1;
                        mine += 1;
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                        cv.notify_all();
                        mon.begin_wait(&me);
                    }
                    drop(g);
                    cv.notify_all();
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: u64 = counts.iter().sum();
    let passes = state.lock().1;
    let mut notes = Vec::new();
    if passes != total {
        mon.fail();
        notes.push(format!("passes {passes} != per-thread sum {total}"));
    }
    if total == 0 {
        mon.fail();
        notes.push("the token never moved".into());
    }
    Report {
        writes: total,
        reads: 0,
        failures: mon.failures.load(Ordering::Relaxed),
        writer_min_max: (
            counts.iter().copied().min().unwrap_or(0),
            counts.iter().copied().max().unwrap_or(0),
        ),
        reader_min_max: (0, 0),
        notes,
    }
}
