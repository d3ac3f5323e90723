//! Torture types for the sleeping area (registered in `super::all`): the
//! semaphore as a lock and as a counter (with signals and timeouts racing the
//! hand-offs), completions, exclusive wait-queue waiters, and the BKL held
//! across sleeps.

use super::{Config, Monitor, Report, TortureLock, TortureType, lock_torture};
use ksync::bkl;
use ksync::completion::Completion;
use ksync::sched::{self, Signal, Task, WaitQueue};
use ksync::semaphore::Semaphore;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

fn min_max(v: &[u64]) -> (u64, u64) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

// ---------------------------------------------------------------------------
// sem: a binary semaphore as a lock.

/// With the `signals` fault, taken with `down_interruptible` and retried on
/// `-EINTR`; the final count checks that no failed down took a unit.
struct SemLock(Semaphore, bool);

impl TortureLock for SemLock {
    fn write(&self, cs: &mut dyn FnMut()) {
        if self.1 {
            while self.0.down_interruptible().is_err() {
                sched::flush_signals();
                super::faults::EINTR.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.0.down();
        }
        cs();
        self.0.up();
    }
    fn sibling(&self, _depth: usize) -> Option<Box<dyn TortureLock>> {
        Some(Box::new(SemLock(Semaphore::new_unlocked(), self.1)))
    }
}

fn run_sem(cfg: &Config, mon: &Monitor) -> Report {
    let lock = SemLock(
        Semaphore::new_unlocked(),
        cfg.faults.has(super::faults::Fault::Signals),
    );
    let mut r = lock_torture(&lock, cfg, mon);
    if lock.0.count() != 1 {
        mon.fail();
        r.failures += 1;
        r.notes
            .push(format!("final count {} (expected 1)", lock.0.count()));
    }
    r
}

// ---------------------------------------------------------------------------
// sem_counting: at most N holders; downs that are interrupted by signals or
// time out race with hand-offs; the count must come back to N.

const UNITS: usize = 3;

fn run_sem_counting(cfg: &Config, mon: &Monitor) -> Report {
    let sem = Semaphore::new(UNITS);
    let holders = AtomicUsize::new(0);
    let cancelled = AtomicU64::new(0);
    let threads = cfg.writers.max(2);
    let (tx, rx) = mpsc::channel::<Task>();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|i| {
                let (sem, holders, cancelled, tx) = (&sem, &holders, &cancelled, tx.clone());
                s.spawn(move || {
                    tx.send(sched::current()).unwrap();
                    drop(tx);
                    let me = mon.enter(super::Role::Writer);
                    let mut rng = fastrand::Rng::with_seed(0x5e3a + i as u64);
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        let r = match rng.u8(0..4) {
                            0 => sem.down_timeout(Duration::from_micros(rng.u64(1..200))),
                            1 => {
                                let r = sem.down_interruptible();
                                sched::flush_signals();
                                r
                            }
                            2 => sem.down_trylock(),
                            // Timed so the final drain never waits on a lost unit.
                            _ => sem.down_timeout(Duration::from_millis(500)),
                        };
                        mon.end_wait(&me);
                        if r.is_err() {
                            if r == Err(ksync::Error::Interrupted) {
                                super::faults::EINTR.fetch_add(1, Ordering::Relaxed);
                            }
                            cancelled.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if holders.fetch_add(1, Ordering::Relaxed) >= UNITS {
                            mon.fail();
                        }
                        super::short_delay(&mut rng);
                        holders.fetch_sub(1, Ordering::Relaxed);
                        sem.up();
                        n += 1;
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    n
                })
            })
            .collect();
        drop(tx);
        // Interrupt the interruptible downs now and then.
        let tasks: Vec<Task> = rx.iter().take(threads).collect();
        let mut rng = fastrand::Rng::with_seed(7);
        while !mon.should_stop() {
            tasks[rng.usize(..tasks.len())].send_signal(Signal::SIGUSR1);
            std::thread::sleep(Duration::from_micros(300));
        }
        hs.into_iter()
            .map(|h| h.join().expect("sem_counting thread panicked"))
            .collect()
    });
    let mut r = Report {
        writes: counts.iter().sum(),
        writer_min_max: min_max(&counts),
        notes: vec![format!(
            "{} downs interrupted, timed out or refused",
            cancelled.load(Ordering::Relaxed)
        )],
        ..Report::default()
    };
    if sem.count() != UNITS {
        mon.fail();
        r.notes
            .push(format!("final count {} (expected {UNITS})", sem.count()));
    }
    r.failures = mon.failures.load(Ordering::Relaxed);
    r
}

// ---------------------------------------------------------------------------
// completion: producers complete(), consumers wait(); every completion is
// consumed exactly once, and waiters free per-round completions at wake-up.

fn run_completion(cfg: &Config, mon: &Monitor) -> Report {
    let c = Completion::new();
    let produced = AtomicU64::new(0);
    let consumed = AtomicU64::new(0);
    let pairs = (cfg.writers / 2).max(1);
    let counts: Vec<u64> = std::thread::scope(|s| {
        let mut hs = Vec::new();
        let (c, produced, consumed) = (&c, &produced, &consumed);
        for i in 0..pairs {
            hs.push(s.spawn(move || {
                let me = mon.enter(super::Role::Writer);
                let mut n = 0;
                while !mon.should_stop() {
                    // Keep the backlog small so consumers mostly find a sleeper's
                    // hand-off rather than a count.
                    if produced.load(Ordering::Relaxed) > consumed.load(Ordering::Relaxed) + 64 {
                        std::thread::yield_now();
                        continue;
                    }
                    mon.begin_wait(&me);
                    c.complete();
                    mon.end_wait(&me);
                    produced.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                    mon.writes.fetch_add(1, Ordering::Relaxed);
                    if n % 64 == i as u64 {
                        std::thread::yield_now();
                    }
                }
                n
            }));
            hs.push(s.spawn(move || {
                let me = mon.enter(super::Role::Reader);
                let interruptible = mon.faults.has(super::faults::Fault::Signals);
                let mut n = 0;
                while !mon.should_stop() {
                    mon.begin_wait(&me);
                    let got = if interruptible {
                        match c.wait_interruptible_timeout(Duration::from_millis(100)) {
                            Ok(left) => left.is_some(),
                            Err(_) => {
                                sched::flush_signals();
                                super::faults::EINTR.fetch_add(1, Ordering::Relaxed);
                                false
                            }
                        }
                    } else {
                        c.wait_timeout(Duration::from_millis(100)).is_some()
                    };
                    mon.end_wait(&me);
                    if got {
                        consumed.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                    mon.reads.fetch_add(1, Ordering::Relaxed);
                    if n % 16 != 0 {
                        continue;
                    }
                    // A one-shot completion freed by its waiter as it wakes.
                    let one = Box::new(Completion::new());
                    let addr = &*one as *const Completion as usize;
                    std::thread::scope(|s2| {
                        // SAFETY: complete() must not touch the completion after the
                        // waiter can see it done; the waiter frees it right then.
                        s2.spawn(move || unsafe { (*(addr as *const Completion)).complete() });
                        one.wait();
                        drop(one);
                    });
                }
                n
            }));
        }
        hs.into_iter()
            .map(|h| h.join().expect("completion thread panicked"))
            .collect()
    });
    let mut left = 0;
    while c.try_wait() {
        left += 1;
    }
    let (p, k) = (
        produced.load(Ordering::Relaxed),
        consumed.load(Ordering::Relaxed),
    );
    let mut r = Report {
        writes: p,
        reads: k,
        writer_min_max: min_max(&counts.iter().step_by(2).copied().collect::<Vec<_>>()),
        reader_min_max: min_max(
            &counts
                .iter()
                .skip(1)
                .step_by(2)
                .copied()
                .collect::<Vec<_>>(),
        ),
        ..Report::default()
    };
    if p != k + left {
        mon.fail();
        r.notes.push(format!(
            "completed {p}, consumed {k} + {left} left: completions lost or duplicated"
        ));
    }
    r.failures = mon.failures.load(Ordering::Relaxed);
    r
}

// ---------------------------------------------------------------------------
// waitqueue: tokens posted with wake_up() to exclusive waiters; a waiter that
// sleeps out a long timeout while tokens are waiting is a lost wake-up.

fn run_waitqueue(cfg: &Config, mon: &Monitor) -> Report {
    let wq = WaitQueue::new();
    let tokens = AtomicU64::new(0);
    let (posted, taken) = (AtomicU64::new(0), AtomicU64::new(0));
    let posters_left = AtomicUsize::new(0);
    let n = cfg.writers.max(2);
    let posters = n.div_ceil(2);
    posters_left.store(posters, Ordering::Relaxed);
    std::thread::scope(|s| {
        for i in 0..n {
            let (wq, tokens, posted, taken, posters_left) =
                (&wq, &tokens, &posted, &taken, &posters_left);
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(0x3a17 + i as u64);
                if i % 2 == 0 {
                    let me = mon.enter(super::Role::Writer);
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        mon.end_wait(&me);
                        tokens.fetch_add(1, Ordering::Release);
                        posted.fetch_add(1, Ordering::Relaxed);
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                        if rng.u8(..) < 16 {
                            wq.wake_up_all();
                        } else {
                            wq.wake_up();
                        }
                        if rng.u8(..) < 32 {
                            std::thread::yield_now();
                        }
                    }
                    // The last poster out releases the waiters (a store, then a
                    // wake-up: the waiters' condition sees it).
                    posters_left.fetch_sub(1, Ordering::Release);
                    wq.wake_up_all();
                    return;
                }
                let me = mon.enter(super::Role::Reader);
                let state = if mon.faults.has(super::faults::Fault::Signals) {
                    sched::TaskState::Interruptible
                } else {
                    sched::TaskState::Uninterruptible
                };
                loop {
                    let mut got = false;
                    let deadline = std::time::Instant::now() + Duration::from_secs(2);
                    mon.begin_wait(&me);
                    let r = wq.wait_event_state(true, state, Some(deadline), || {
                        got = tokens
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1))
                            .is_ok();
                        got || posters_left.load(Ordering::Acquire) == 0
                    });
                    mon.end_wait(&me);
                    if got {
                        taken.fetch_add(1, Ordering::Relaxed);
                        mon.reads.fetch_add(1, Ordering::Relaxed);
                    } else if matches!(r, Err(ksync::Error::Interrupted)) {
                        sched::flush_signals();
                        super::faults::EINTR.fetch_add(1, Ordering::Relaxed);
                    } else if r.is_ok() {
                        return; // the posters are gone
                    } else if tokens.load(Ordering::Acquire) > 0 {
                        // Slept out 2 s with tokens posted and woken for: lost.
                        mon.fail();
                    }
                }
            });
        }
    });
    let left = tokens.load(Ordering::Relaxed);
    let (p, t) = (
        posted.load(Ordering::Relaxed),
        taken.load(Ordering::Relaxed),
    );
    let mut r = Report {
        writes: p,
        reads: t,
        ..Report::default()
    };
    if p != t + left {
        mon.fail();
        r.notes
            .push(format!("posted {p}, taken {t} + {left} left: tokens lost"));
    }
    r.failures = mon.failures.load(Ordering::Relaxed);
    r
}

// ---------------------------------------------------------------------------
// bkl: the BKL as a lock, taken recursively, its holders sleeping in down_timeout
// now and then (which must release it, or the others would stall).

struct Bkl {
    nap: Semaphore,
}

impl TortureLock for Bkl {
    fn write(&self, cs: &mut dyn FnMut()) {
        let depth = 1 + (fastrand::u8(..) % 3) as u32;
        for _ in 0..depth {
            bkl::lock_kernel();
        }
        cs();
        if fastrand::u8(..) < 4 {
            // Sleep holding the BKL: released meanwhile, retaken at `depth`.
            let _ = self.nap.down_timeout(Duration::from_micros(20));
            assert_eq!(bkl::depth(), depth, "BKL depth not restored after a sleep");
        }
        for _ in 0..depth {
            bkl::unlock_kernel();
        }
    }
}

fn run_bkl(cfg: &Config, mon: &Monitor) -> Report {
    lock_torture(
        &Bkl {
            nap: Semaphore::new(0),
        },
        cfg,
        mon,
    )
}

pub fn types() -> Vec<TortureType> {
    vec![
        TortureType {
            name: "sem",
            about: "binary semaphore (down/up) as a lock",
            writers: 4,
            readers: 0,
            hidden: false,
            run: run_sem,
        },
        TortureType {
            name: "sem_counting",
            about: "counting semaphore: at most N holders; signals and timeouts race hand-offs",
            writers: 6,
            readers: 0,
            hidden: false,
            run: run_sem_counting,
        },
        TortureType {
            name: "completion",
            about: "complete()/wait() pairs conserve completions; waiters free them at wake-up",
            writers: 4,
            readers: 0,
            hidden: false,
            run: run_completion,
        },
        TortureType {
            name: "waitqueue",
            about: "tokens to exclusive wait-queue waiters: no wake-up lost",
            writers: 6,
            readers: 0,
            hidden: false,
            run: run_waitqueue,
        },
        TortureType {
            name: "bkl",
            about: "Big Kernel Lock, recursive, held across sleeps",
            writers: 4,
            readers: 0,
            hidden: false,
            run: run_bkl,
        },
    ]
}
