//! Measuring a scenario's implementations in turns, so that a host whose
//! speed or CPU placement drifts over seconds treats them alike:
//! [`Interleaved`] for single-thread scenarios, [`ThreadedTurns`] for
//! threaded ones.

use super::{Config, Row, fairness, median};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// How many turns each implementation of an [`Interleaved`] scenario gets.
const TURNS: u32 = 40;

/// The implementations of one single-thread scenario, measured in turns.
///
/// [`single`](super::single) measures one implementation for the whole
/// time, then the next: on a shared host a CPU's speed drifts over seconds
/// (another tenant on its sibling thread), and two rows measured a second
/// apart differed by up to 30 % with the same code. Here every
/// implementation runs [`TURNS`] short turns of `cfg.duration / TURNS`,
/// round-robin (the order rotating each round), and reports the median of
/// its turns' rates, so each sees the same drift and the ratios between
/// them compare what they run.
///
/// ```ignore
/// let mut unc = Interleaved::new("mutex", "uncontended");
/// unc.add("ksync::mutex::Mutex", || *m.lock() += 1);
/// unc.add("parking_lot::Mutex", || *p.lock() += 1);
/// rows.extend(unc.run(cfg));
/// ```
pub struct Interleaved<'a> {
    group: String,
    scenario: String,
    subjects: Vec<Subject<'a>>,
}

/// One implementation of an [`Interleaved`] scenario.
struct Subject<'a> {
    name: String,
    /// Operations per call of `run`'s unit (a C peer's loop runs several).
    per_unit: u64,
    /// Runs `n` units back to back.
    run: Box<dyn FnMut(u64) + 'a>,
}

impl<'a> Interleaved<'a> {
    /// An empty scenario of `group`.
    pub fn new(group: &str, scenario: &str) -> Self {
        Interleaved {
            group: group.into(),
            scenario: scenario.into(),
            subjects: Vec::new(),
        }
    }

    /// Adds an implementation whose operation is `op`.
    pub fn add(&mut self, name: &str, mut op: impl FnMut() + 'a) {
        self.add_units(name, 1, move |n| {
            for _ in 0..n {
                op();
            }
        });
    }

    /// Adds an implementation that runs `n` units of `per_unit` operations
    /// each when called with `n` (a C peer that loops inside C, so that one
    /// call across the FFI does not swamp a nanosecond operation).
    pub fn add_units(&mut self, name: &str, per_unit: u64, run: impl FnMut(u64) + 'a) {
        self.subjects.push(Subject {
            name: name.into(),
            per_unit,
            run: Box::new(run),
        });
    }

    /// Measures every implementation in turns; one row each, in the order
    /// they were added.
    pub fn run(mut self, cfg: &Config) -> Vec<Row> {
        let turn = cfg.duration / TURNS;
        // Warm up, and size each one's batch to about a turn.
        let batches: Vec<u64> = self
            .subjects
            .iter_mut()
            .map(|s| {
                (s.run)(10_000);
                let mut batch = 1_000u64;
                loop {
                    let t = Instant::now();
                    (s.run)(batch);
                    let el = t.elapsed();
                    if el >= turn / 2 || batch >= 1 << 40 {
                        break batch;
                    }
                    batch *= 2;
                }
            })
            .collect();
        let n = self.subjects.len();
        let mut secs_per_unit: Vec<Vec<f64>> = vec![Vec::new(); n];
        for round in 0..TURNS as usize {
            for k in 0..n {
                let i = (round + k) % n;
                let t = Instant::now();
                (self.subjects[i].run)(batches[i]);
                secs_per_unit[i].push(t.elapsed().as_secs_f64() / batches[i] as f64);
            }
        }
        self.subjects
            .iter()
            .zip(secs_per_unit)
            .map(|(s, times)| {
                let secs = median(times) / s.per_unit as f64;
                Row {
                    group: self.group.clone(),
                    scenario: self.scenario.clone(),
                    impl_name: s.name.clone(),
                    threads: 1,
                    ops_per_sec: 1.0 / secs,
                    ns_per_op: secs * 1e9,
                    fairness: None,
                    cpu_ns_per_side: None,
                    line_round_trip_ns: None,
                }
            })
            .collect()
    }
}

/// How many counted turns each implementation of a [`ThreadedTurns`] scenario
/// gets (after one warm-up turn). Each turn starts a sleeping lock's queue
/// afresh, and fairness counts over all the turns: few, long turns keep it
/// close to what one run of the whole duration would count, while 4
/// implementations' turns of 50 ms still alternate far faster than the
/// host's placements change.
const THREADED_TURNS: u32 = 4;

/// The implementations of one threaded scenario, measured in turns.
///
/// [`threaded`](super::threaded) runs one implementation for the whole
/// time, then the next. On a 2-vCPU VM the host moves the two vCPUs between
/// a pair of hyperthreads of one core (a cache line crosses between them in
/// about 65 ns there and back) and two cores (about 300–380 ns), every few
/// seconds; a contended lock's throughput follows (a binary semaphore moved
/// between 1.3 and 1.7 Mops/s with the same code), so two rows measured a
/// second apart compared the placements as much as the locks. Here every
/// implementation keeps its own `threads` threads, parked between turns,
/// and runs [`THREADED_TURNS`] turns of `cfg.duration / THREADED_TURNS`,
/// round-robin (the order rotating each round). Its throughput is the
/// median of its turns' rates; its fairness counts each thread's operations
/// over all its turns (close to what one run of the whole duration counts,
/// not the same: see [`THREADED_TURNS`]).
///
/// ```ignore
/// let m = CachePadded::new(ksync::mutex::Mutex::new(0u64));
/// let p = CachePadded::new(parking_lot::Mutex::new(0u64));
/// let mut t = ThreadedTurns::new("mutex", "contended", 8);
/// t.add("ksync::mutex::Mutex", |_| || *m.lock() += 1);
/// t.add("parking_lot::Mutex", |_| || *p.lock() += 1);
/// rows.extend(t.run(cfg));
/// ```
pub struct ThreadedTurns<'a> {
    group: String,
    scenario: String,
    threads: usize,
    /// Operations a thread runs between two looks at whether its turn is over.
    batch: u32,
    subjects: Vec<ThreadedSubject<'a>>,
}

/// A thread's batch runner: runs its operation `n` times.
type Batch<'a> = Box<dyn FnMut(u32) + 'a>;

/// One implementation of a [`ThreadedTurns`] scenario.
struct ThreadedSubject<'a> {
    name: String,
    /// Makes thread `i`'s batch runner, on that thread.
    make: Box<dyn Fn(usize) -> Batch<'a> + Sync + 'a>,
}

/// How many times [`line_round_trip`] hands its cache line from one thread
/// to the other: 2 000 round trips, well under a millisecond on a quiet
/// machine (on a busy one each can take a scheduler slice, and the figure
/// says so).
const BOUNCES: u64 = 4_000;

/// The time a cache line takes to go from one thread to another and back
/// (ns), from [`BOUNCES`] hand-offs between two fresh threads pinned to the
/// first two CPUs this thread may use (so that the scheduler cannot put both
/// on one CPU for part of the run), timed from the moment both are running.
/// On a VM it tells where the host ran those two vCPUs (see
/// [`ThreadedTurns`]); on a busy machine it is long. `None` with fewer than
/// two CPUs allowed. A waiting side yields its CPU now and then, so that the
/// figure still comes if the pinning fails.
pub fn line_round_trip() -> Option<f64> {
    let cpus = ksync::arch::thread_affinity(0).ok()?;
    let (&a, &b) = (cpus.first()?, cpus.get(1)?);
    let line = ksync::arch::CachePadded::new(AtomicU64::new(u64::MAX));
    // Waits until the line holds `want`, polling.
    let wait_for = |want: u64| {
        let mut polls = 0u32;
        while line.load(Ordering::Acquire) != want {
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(1024) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    };
    // Hands the line on at each of its turns from `first` on (every other
    // value).
    let pass = |first: u64| {
        let mut next = first;
        while next < BOUNCES {
            wait_for(next);
            line.store(next + 1, Ordering::Release);
            next += 2;
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // Best effort: unpinned, the figure is only noisier.
            let _ = ksync::arch::set_affinity(b);
            line.store(0, Ordering::Release);
            pass(1);
        });
        s.spawn(|| {
            let _ = ksync::arch::set_affinity(a);
            wait_for(0);
            let t0 = Instant::now();
            pass(0);
            wait_for(BOUNCES);
            Some(t0.elapsed().as_nanos() as f64 / (BOUNCES / 2) as f64)
        })
        .join()
        .expect("the round-trip thread panicked")
    })
}

/// The handshake between the conductor of a [`ThreadedTurns`] run and one
/// implementation's threads.
struct Crew {
    /// Bumped to start a turn (or to leave, once `done` is set); each thread
    /// parks until it sees a new value, and the conductor unparks them one by
    /// one, in an order that rotates from turn to turn: the threads of a
    /// barrier wake in the order they arrived, so the threads still running
    /// when a turn ended would run first in every turn after it, and
    /// fairness, counted over all the turns, would measure that instead of
    /// the lock.
    turn: AtomicU64,
    /// How many of the threads are awake for the turn: the conductor lets
    /// them run (`started`) only once all are, so that no thread starts its
    /// turn a scheduler slice late (the threads it wakes first can preempt
    /// the conductor before it has woken the rest).
    ready: AtomicUsize,
    /// The last turn the conductor let run …
    started: AtomicU64,
    /// … and the last it ended. A thread runs its operations while its turn
    /// is started and not ended (one that wakes after the end runs none).
    ended: AtomicU64,
    /// The conductor and the threads meet here once each thread has seen
    /// its turn end.
    end: Barrier,
    done: AtomicBool,
}

impl Crew {
    /// Starts the crew's next turn (or, with `done` set, its leaving), waking
    /// `threads` from `first` on; returns the turn.
    fn start(&self, threads: &[std::thread::Thread], first: usize) -> u64 {
        let turn = self.turn.fetch_add(1, Ordering::Release) + 1;
        for j in 0..threads.len() {
            threads[(first + j) % threads.len()].unpark();
        }
        turn
    }

    /// Parks until the conductor starts a turn after `seen`; returns it.
    fn await_turn(&self, seen: u64) -> u64 {
        loop {
            let now = self.turn.load(Ordering::Acquire);
            if now != seen {
                return now;
            }
            std::thread::park();
        }
    }

    /// Says this thread is awake for `turn`, then waits (yielding its CPU to
    /// the others still waking) until the conductor lets it run.
    fn await_go(&self, turn: u64) {
        self.ready.fetch_add(1, Ordering::Release);
        while self.started.load(Ordering::Acquire) < turn {
            std::thread::yield_now();
        }
    }

    /// Whether `turn` is still running.
    fn running(&self, turn: u64) -> bool {
        self.ended.load(Ordering::Relaxed) < turn
    }

    /// The conductor's side: waits (yielding) until all `threads` are
    /// awake for `turn`, then lets them run.
    fn go(&self, turn: u64, threads: usize) {
        while self.ready.load(Ordering::Acquire) < threads {
            std::thread::yield_now();
        }
        self.ready.store(0, Ordering::Relaxed);
        self.started.store(turn, Ordering::Release);
    }
}

impl<'a> ThreadedTurns<'a> {
    /// An empty scenario of `group`, run by `threads` threads per implementation.
    pub fn new(group: &str, scenario: &str, threads: usize) -> Self {
        ThreadedTurns {
            group: group.into(),
            scenario: scenario.into(),
            threads,
            batch: 64,
            subjects: Vec::new(),
        }
    }

    /// Has each thread look whether its turn is over after every `batch`
    /// operations (64 unless set): fewer where an operation can take a
    /// scheduler tick (a FIFO spinlock with more threads than CPUs hands the
    /// lock to a waiter that is not running), since a turn ends only when
    /// every thread has finished its batch. A batch is one call through a
    /// `dyn` closure, so 1 costs a few ns an operation.
    pub fn batch(mut self, batch: u32) -> Self {
        assert!(batch > 0, "a batch runs at least one operation");
        self.batch = batch;
        self
    }

    /// Adds an implementation: thread `i` runs the operation `make(i)` makes
    /// (called on that thread).
    pub fn add<F: FnMut() + 'a>(&mut self, name: &str, make: impl Fn(usize) -> F + Sync + 'a) {
        self.subjects.push(ThreadedSubject {
            name: name.into(),
            make: Box::new(move |i| {
                let mut op = make(i);
                Box::new(move |n| {
                    for _ in 0..n {
                        op();
                    }
                })
            }),
        });
    }

    /// Measures every implementation in turns; one row each, in the order
    /// they were added.
    pub fn run(self, cfg: &Config) -> Vec<Row> {
        let rtt_before = line_round_trip();
        let turn = cfg.duration / THREADED_TURNS;
        let n = self.subjects.len();
        let (threads, per_look) = (self.threads, self.batch);
        let crews: Vec<Crew> = (0..n)
            .map(|_| Crew {
                turn: AtomicU64::new(0),
                ready: AtomicUsize::new(0),
                end: Barrier::new(threads + 1),
                started: AtomicU64::new(0),
                ended: AtomicU64::new(0),
                done: AtomicBool::new(false),
            })
            .collect();
        // Each thread's operations over the counted turns.
        let counts: Vec<Vec<AtomicU64>> = (0..n)
            .map(|_| (0..threads).map(|_| AtomicU64::new(0)).collect())
            .collect();
        let counting = AtomicBool::new(false);
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); n];
        std::thread::scope(|s| {
            // Each crew's threads, to unpark.
            let handles: Vec<Vec<std::thread::Thread>> = self
                .subjects
                .iter()
                .zip(&crews)
                .zip(&counts)
                .map(|((subject, crew), counts)| {
                    let counting = &counting;
                    counts
                        .iter()
                        .enumerate()
                        .map(|(i, mine)| {
                            s.spawn(move || {
                                let mut batch = (subject.make)(i);
                                let mut seen = 0;
                                loop {
                                    seen = crew.await_turn(seen);
                                    if crew.done.load(Ordering::Relaxed) {
                                        return;
                                    }
                                    crew.await_go(seen);
                                    let mut ops = 0u64;
                                    while crew.running(seen) {
                                        batch(per_look);
                                        ops += u64::from(per_look);
                                    }
                                    if counting.load(Ordering::Relaxed) {
                                        mine.fetch_add(ops, Ordering::Relaxed);
                                    }
                                    crew.end.wait();
                                }
                            })
                            .thread()
                            .clone()
                        })
                        .collect()
                })
                .collect();
            // Turn `t` of crew `k`: its operations per second.
            let one_turn = |k: usize, t: usize| {
                let crew = &crews[k];
                let before: u64 = counts[k].iter().map(|c| c.load(Ordering::Relaxed)).sum();
                let this = crew.start(&handles[k], t);
                crew.go(this, threads);
                let t0 = Instant::now();
                std::thread::sleep(turn);
                crew.ended.store(this, Ordering::Relaxed);
                crew.end.wait();
                let secs = t0.elapsed().as_secs_f64();
                let after: u64 = counts[k].iter().map(|c| c.load(Ordering::Relaxed)).sum();
                (after - before) as f64 / secs
            };
            // Warm up each (not counted), then the counted turns.
            for k in 0..n {
                one_turn(k, 0);
            }
            counting.store(true, Ordering::Relaxed);
            for round in 0..THREADED_TURNS as usize {
                for j in 0..n {
                    let k = (round + j) % n;
                    rates[k].push(one_turn(k, round + 1));
                }
            }
            for (crew, threads) in crews.iter().zip(&handles) {
                crew.done.store(true, Ordering::Relaxed);
                crew.start(threads, 0);
            }
        });
        let rtt = match (rtt_before, line_round_trip()) {
            (Some(x), Some(y)) => Some([x.min(y), x.max(y)]),
            _ => None,
        };
        self.subjects
            .iter()
            .zip(rates)
            .zip(&counts)
            .map(|((s, rates), counts)| {
                let counts: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                let rate = median(rates);
                Row {
                    group: self.group.clone(),
                    scenario: self.scenario.clone(),
                    impl_name: s.name.clone(),
                    threads,
                    ops_per_sec: rate,
                    ns_per_op: 1e9 * threads as f64 / rate.max(f64::MIN_POSITIVE),
                    fairness: Some(fairness(&counts)),
                    cpu_ns_per_side: None,
                    line_round_trip_ns: rtt,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn interleaved_runs_every_subject_in_turns_and_reports_per_operation() {
        use std::cell::Cell;
        let cfg = Config {
            duration: Duration::from_millis(40),
        };
        // How many units each subject ran, and the order of their turns.
        let (a_units, b_units) = (Cell::new(0u64), Cell::new(0u64));
        let order = std::cell::RefCell::new(Vec::new());
        let mut unc = Interleaved::new("g", "s");
        unc.add_units("a", 1, |n| {
            a_units.set(a_units.get() + n);
            order.borrow_mut().push('a');
            for _ in 0..n {
                std::hint::black_box(0u64);
            }
        });
        unc.add_units("b", 4, |n| {
            b_units.set(b_units.get() + n);
            order.borrow_mut().push('b');
            for _ in 0..4 * n {
                std::hint::black_box(0u64);
            }
        });
        let rows = unc.run(&cfg);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].impl_name.as_str(), rows[1].impl_name.as_str()),
            ("a", "b")
        );
        for r in &rows {
            assert_eq!(
                (r.group.as_str(), r.scenario.as_str(), r.threads),
                ("g", "s", 1)
            );
            assert!(r.ops_per_sec > 0.0 && r.ops_per_sec.is_finite());
            // ns/op and ops/s describe the same median.
            assert!((r.ns_per_op * r.ops_per_sec / 1e9 - 1.0).abs() < 1e-9);
        }
        // After warm-up and sizing, the measured turns alternate: every round
        // runs each subject once, the first of the pair rotating.
        let order = order.into_inner();
        let turns: Vec<char> = order[order.len() - 2 * TURNS as usize..].to_vec();
        for pair in turns.chunks(2) {
            assert!(pair == ['a', 'b'] || pair == ['b', 'a'], "{pair:?}");
        }
        assert!(turns.starts_with(&['a', 'b', 'b', 'a']));
        assert!(a_units.get() >= u64::from(TURNS) && b_units.get() >= u64::from(TURNS));
    }

    /// Each implementation's threads are its own (made once each, on the
    /// thread that runs them) and only one implementation runs at a time;
    /// the rows report the median turn's rate for all the threads together.
    #[test]
    fn threaded_turns_run_each_crew_alone_on_its_own_threads() {
        use std::collections::HashSet;
        use std::sync::Mutex;
        let cfg = Config {
            duration: Duration::from_millis(40),
        };
        // (subject, thread index, OS thread) of every `make` call.
        let made = Mutex::new(Vec::new());
        // How many threads of each subject are inside an operation now, and
        // whether one ever saw the other subject's inside at the same time.
        let inside = [AtomicUsize::new(0), AtomicUsize::new(0)];
        let overlap = AtomicBool::new(false);
        let ops = [AtomicU64::new(0), AtomicU64::new(0)];
        let mut t = ThreadedTurns::new("g", "s", 3);
        for (k, name) in ["a", "b"].into_iter().enumerate() {
            let (made, inside, overlap, ops) = (&made, &inside, &overlap, &ops);
            t.add(name, move |i| {
                made.lock()
                    .unwrap()
                    .push((k, i, std::thread::current().id()));
                move || {
                    inside[k].fetch_add(1, Ordering::SeqCst);
                    if inside[1 - k].load(Ordering::SeqCst) != 0 {
                        overlap.store(true, Ordering::Relaxed);
                    }
                    std::hint::black_box(0u64);
                    inside[k].fetch_sub(1, Ordering::SeqCst);
                    ops[k].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let rows = t.run(&cfg);
        assert!(!overlap.load(Ordering::Relaxed), "two crews ran at once");
        let made = made.into_inner().unwrap();
        assert_eq!(made.len(), 6);
        let threads: HashSet<_> = made.iter().map(|m| m.2).collect();
        assert_eq!(threads.len(), 6, "a thread ran two operations");
        for k in 0..2 {
            let mut idx: Vec<usize> = made.iter().filter(|m| m.0 == k).map(|m| m.1).collect();
            idx.sort();
            assert_eq!(idx, [0, 1, 2]);
        }
        assert_eq!(rows.len(), 2);
        for (r, name) in rows.iter().zip(["a", "b"]) {
            assert_eq!(
                (
                    r.group.as_str(),
                    r.scenario.as_str(),
                    r.impl_name.as_str(),
                    r.threads
                ),
                ("g", "s", name, 3)
            );
            assert!(r.ops_per_sec > 0.0 && r.ops_per_sec.is_finite());
            // ns/op is per thread: the threads together run 1e9 / ns × 3.
            assert!((r.ns_per_op * r.ops_per_sec / 3e9 - 1.0).abs() < 1e-9);
            let f = r.fairness.expect("threaded rows have a fairness");
            assert!((0.0..=1.0).contains(&f));
            // With two CPUs or more, the line round trips around the scenario.
            if ksync::arch::thread_affinity(0).is_ok_and(|c| c.len() >= 2) {
                let [lo, hi] = r
                    .line_round_trip_ns
                    .expect("rows measured in turns carry the line round trips");
                assert!(lo > 0.0 && lo <= hi && hi.is_finite(), "{lo} {hi}");
            }
        }
        // Every turn ran whole batches of 64.
        for n in &ops {
            assert_eq!(n.load(Ordering::Relaxed) % 64, 0);
        }
    }
}
