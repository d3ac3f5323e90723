//! The `percpu_rwsem` torture type (registered in `super::all`):
//! [`PercpuRwSemaphore`], whose readers write only their own thread's record.
//!
//! - Writers (1-2) update a multi-word value one word at a time, with a delay
//!   between words (with the `long-hold` fault now and then milliseconds,
//!   asleep: a percpu_rwsem writer may sleep); some use `try_write`.
//! - Readers nest read holds up to [`MAX_DEPTH`] deep (some with
//!   `try_read`): at every level the value's words must all be equal (never
//!   torn) and equal to what the outer level saw (no writer gets in while
//!   any read hold lives). An inner hold taken while a writer drains the
//!   readers must pass it, or the thread deadlocks against that writer.
//! - A churn thread starts short-lived reader threads one after another, so
//!   per-thread reader records are given back at thread exit and reused.
//!
//! At the end the value equals the number of writes, no read hold is left
//! recorded, and every writer made progress.

use super::faults::Fault;
use super::{Config, Monitor, Report, Role, TortureType};
use ksync::percpu_rwsem::PercpuRwSemaphore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn types() -> Vec<TortureType> {
    vec![TortureType {
        name: "percpu_rwsem",
        about: "PercpuRwSemaphore: nested readers never see a torn multi-word write, threads come and go",
        writers: 2,
        readers: 4,
        hidden: false,
        run: run_percpu_rwsem,
    }]
}

/// The deepest nesting of read holds a reader takes.
const MAX_DEPTH: u32 = 4;
/// Words of the value the writers update one at a time.
const WORDS: usize = 8;

/// The semaphore and the value it protects (atomics, so a lock that fails
/// to exclude shows up as a counted torn read, not as a data race).
struct Subject {
    sem: PercpuRwSemaphore<()>,
    words: [AtomicU64; WORDS],
}

impl Subject {
    /// The value's words, checked to agree; `None` if they do not.
    fn check(&self, rng: &mut fastrand::Rng) -> Option<u64> {
        let v = self.words[0].load(Ordering::Relaxed);
        super::short_delay(rng);
        self.words
            .iter()
            .all(|w| w.load(Ordering::Relaxed) == v)
            .then_some(v)
    }

    /// One reader operation: `depth` nested read holds, each checking that
    /// the value is whole and the same as the outer hold saw.
    fn read_nested(&self, mon: &Monitor, rng: &mut fastrand::Rng, depth: u32, outer: Option<u64>) {
        let _g = if rng.u8(..8) == 0 {
            match self.sem.try_read() {
                Some(g) => g,
                // A writer is in: only an inner try may not fail (it passes a
                // draining writer), an outer one may.
                None if outer.is_some() => {
                    mon.fail();
                    return;
                }
                None => self.sem.read(),
            }
        } else {
            self.sem.read()
        };
        match self.check(rng) {
            Some(v) if outer.is_none_or(|o| o == v) => {
                if depth > 1 {
                    self.read_nested(mon, rng, depth - 1, Some(v));
                }
                if self.check(rng) != Some(v) {
                    mon.fail();
                }
            }
            _ => mon.fail(),
        }
    }
}

fn min_max(v: &[u64]) -> (u64, u64) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

fn run_percpu_rwsem(cfg: &Config, mon: &Monitor) -> Report {
    let subject = Subject {
        sem: PercpuRwSemaphore::new(()),
        words: Default::default(),
    };
    let long_hold = cfg.faults.has(Fault::LongHold);
    let tries = AtomicU64::new(0);
    let spawned = AtomicU64::new(0);
    let (w, r) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..cfg.writers.clamp(1, 2))
            .map(|i| {
                let (subject, tries) = (&subject, &tries);
                s.spawn(move || {
                    let me = mon.enter(Role::Writer);
                    let mut rng = fastrand::Rng::with_seed(0x9c9 + i as u64);
                    let mut last_long = Instant::now();
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        let g = if rng.u8(..8) == 0 {
                            match subject.sem.try_write() {
                                Some(g) => g,
                                None => {
                                    tries.fetch_add(1, Ordering::Relaxed);
                                    mon.end_wait(&me);
                                    std::thread::sleep(Duration::from_micros(50));
                                    continue;
                                }
                            }
                        } else {
                            subject.sem.write()
                        };
                        mon.end_wait(&me);
                        let v = subject.words[0].load(Ordering::Relaxed);
                        let long = long_hold && last_long.elapsed() >= Duration::from_millis(100);
                        for (k, word) in subject.words.iter().enumerate() {
                            if word.load(Ordering::Relaxed) != v {
                                mon.fail();
                            }
                            word.store(v + 1, Ordering::Relaxed);
                            if k == WORDS / 2 && long {
                                last_long = Instant::now();
                                mon.long_holds.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_micros(rng.u64(1000..5000)));
                            } else {
                                super::short_delay(&mut rng);
                            }
                        }
                        drop(g);
                        n += 1;
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                        // Writers are the rare side: give the readers room.
                        std::thread::sleep(Duration::from_micros(rng.u64(20..200)));
                    }
                    n
                })
            })
            .collect();
        let readers: Vec<_> = (0..cfg.readers)
            .map(|i| {
                let subject = &subject;
                s.spawn(move || {
                    let me = mon.enter(Role::Reader);
                    let mut rng = fastrand::Rng::with_seed(0x7ead + i as u64);
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        mon.end_wait(&me);
                        let depth = rng.u32(1..=MAX_DEPTH);
                        subject.read_nested(mon, &mut rng, depth, None);
                        n += 1;
                        mon.reads.fetch_add(1, Ordering::Relaxed);
                    }
                    n
                })
            })
            .collect();
        // The churn thread: short-lived readers, each reusing a record.
        let churn = {
            let (subject, spawned) = (&subject, &spawned);
            s.spawn(move || {
                let me = mon.enter(Role::Reader);
                let mut rng = fastrand::Rng::with_seed(0xc4c4);
                let mut n = 0u64;
                while !mon.should_stop() {
                    mon.begin_wait(&me);
                    mon.end_wait(&me);
                    let ops = rng.u64(1..50);
                    let seed = rng.u64(..);
                    std::thread::scope(|s2| {
                        s2.spawn(|| {
                            let mut rng = fastrand::Rng::with_seed(seed);
                            for _ in 0..ops {
                                let depth = rng.u32(1..=MAX_DEPTH);
                                subject.read_nested(mon, &mut rng, depth, None);
                            }
                        });
                    });
                    spawned.fetch_add(1, Ordering::Relaxed);
                    n += ops;
                    mon.reads.fetch_add(ops, Ordering::Relaxed);
                }
                n
            })
        };
        let w: Vec<u64> = writers
            .into_iter()
            .map(|h| h.join().expect("percpu_rwsem writer panicked"))
            .collect();
        let mut r: Vec<u64> = readers
            .into_iter()
            .map(|h| h.join().expect("percpu_rwsem reader panicked"))
            .collect();
        r.push(churn.join().expect("percpu_rwsem churn thread panicked"));
        (w, r)
    });
    let writes: u64 = w.iter().sum();
    let mut notes = vec![format!(
        "{} short-lived reader threads; {} try_write refusals; value {} after {writes} writes",
        spawned.load(Ordering::Relaxed),
        tries.load(Ordering::Relaxed),
        subject.words[0].load(Ordering::Relaxed),
    )];
    if cfg.faults.has(Fault::Nested) {
        notes.push(format!(
            "nested: readers always nest up to {MAX_DEPTH} read holds; writers take no chain"
        ));
    }
    if subject
        .words
        .iter()
        .any(|x| x.load(Ordering::Relaxed) != writes)
    {
        mon.fail();
        notes.push("the value does not match the writes".into());
    }
    let left = subject.sem.raw().readers();
    if left != 0 || subject.sem.is_write_locked() {
        mon.fail();
        notes.push(format!(
            "left behind: {left} read holds, writer {}",
            subject.sem.is_write_locked()
        ));
    }
    if w.contains(&0) {
        mon.fail();
        notes.push("a writer made no progress".into());
    }
    Report {
        writes,
        reads: r.iter().sum(),
        failures: mon.failures.load(Ordering::Relaxed),
        writer_min_max: min_max(&w),
        reader_min_max: min_max(&r),
        notes,
    }
}
