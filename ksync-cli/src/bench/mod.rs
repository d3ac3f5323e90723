//! `ksync bench`: each ksync primitive against the user-space peers people use
//! instead, side by side in one run, reported as ratios.
//!
//! A group ([`Group`]) measures one family of primitives in a few scenarios
//! (uncontended, 2 threads, 8 threads on this machine …) and pushes one [`Row`]
//! per implementation. The table prints, for each scenario, every row's
//! throughput and its ratio to the best peer (an implementation whose name does
//! not start with `ksync`). `--json` prints the rows; `--chart FILE` draws them.
//! The wake-up rows add a column, `cpu ns/op each`: the CPU time that the
//! pinging thread and its partner each spend per round trip.
//!
//! Scenarios measure their implementations in turns: short turns
//! round-robin, the median turn reported, so that a CPU whose speed drifts
//! over seconds (a shared host) slows every implementation of the scenario
//! alike. Single-thread scenarios do so with [`Interleaved`]; threaded ones
//! with [`ThreadedTurns`], where each implementation keeps its own threads,
//! parked between its turns (a 2-vCPU VM's two vCPUs move between the two
//! hyperthreads of one core and two cores every few seconds, and a contended
//! lock's throughput follows). Some still run one implementation after
//! another: the RCU read rows (a macro shared with their CPU-time twins, and
//! liburcu's loop in C), `irq-raise` (its irq line is registered around
//! ksync's rows only), the wake-up round trips (two threads; the mean over
//! the whole run is the honest figure there), and the threaded rows that
//! run beside a writer or updater thread of their own (`seqlock`, the RCU
//! and `later` groups' threaded rows).
//!
//! The peers include C libraries (glibc's pthread locks, liburcu, Concurrency
//! Kit: see [`peers`]); where this build lacked liburcu-dev or libck-dev, a
//! line under the table (on stderr with `--json`) names the rows it skipped
//! and the package that adds them.

use serde::Serialize;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod atomic;
mod chart;
mod irq;
mod later;
mod mutex;
mod peers;
mod rcu;
mod seqpcpu;
mod sleeping;
mod spinlock;

/// Options of `ksync bench`.
#[derive(clap::Args, Default, Clone)]
pub struct Args {
    /// Run only these groups (comma-separated; `--list` shows them).
    #[arg(long = "group", value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Milliseconds each measurement runs.
    #[arg(long, default_value_t = 300)]
    pub millis: u64,
    /// Run the selected groups this many times and report each row's median
    /// (throughput, ns/op and fairness each), so that one noisy moment on a
    /// shared machine does not decide a ratio.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Print the rows as a JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG bar chart of the ratios to this file.
    #[arg(long)]
    pub chart: Option<std::path::PathBuf>,
    /// List the groups and exit.
    #[arg(long)]
    pub list: bool,
}

/// Settings every group runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long one measurement runs.
    pub duration: Duration,
}

/// One measured implementation in one scenario.
#[derive(Serialize, Clone, Debug)]
pub struct Row {
    /// The group, e.g. `spinlock`.
    pub group: String,
    /// The scenario, e.g. `uncontended`, `contended`.
    pub scenario: String,
    /// The implementation, e.g. `ksync::SpinLock`, `parking_lot::Mutex`.
    #[serde(rename = "impl")]
    pub impl_name: String,
    /// Threads running the operation.
    pub threads: usize,
    /// Operations per second, all threads together.
    pub ops_per_sec: f64,
    /// Nanoseconds per operation per thread (wall time × threads / ops).
    pub ns_per_op: f64,
    /// Fewest / most operations of one thread, for contended scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<f64>,
    /// CPU nanoseconds each side spends per operation, for rows whose threads
    /// trade turns (the wake-up ping-pong: `[the pinging thread, its
    /// partner]`): what a latency costs, since a waiter that polls before it
    /// sleeps buys its latency with CPU time that one that sleeps at once
    /// gives away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ns_per_side: Option<Vec<f64>>,
}

/// One registered benchmark group.
pub struct Group {
    /// The name `--group` selects.
    pub name: &'static str,
    /// One line on what it compares.
    pub about: &'static str,
    /// Measures every implementation in every scenario, pushing rows.
    pub run: fn(&Config, &mut Vec<Row>),
}

/// Every registered group, in run order.
pub fn all() -> Vec<Group> {
    let mut v = Vec::new();
    v.extend(atomic::groups());
    v.extend(irq::groups());
    v.extend(spinlock::groups());
    v.extend(mutex::groups());
    v.extend(sleeping::groups());
    v.extend(seqpcpu::groups());
    v.extend(rcu::groups());
    v.extend(later::groups());
    v
}

/// This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): excludes the time the
/// thread waits for a CPU or sleeps, so single-thread costs stay meaningful on
/// a loaded machine and a waiter's polling shows beside its latency.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid pointer to a timespec we own;
    // clock_gettime writes only through it.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A row measured with each `op` running `per_op` iterations of the real
/// operation (a C peer's loop, which runs inside C so that one FFI call does
/// not swamp a nanosecond operation), restated per iteration.
#[cfg(any(ksync_urcu, ksync_ck))]
pub fn per_iteration(mut row: Row, per_op: u64) -> Row {
    row.ops_per_sec *= per_op as f64;
    row.ns_per_op /= per_op as f64;
    row
}

/// Whether an implementation is ksync's own (not a peer).
pub fn is_ours(impl_name: &str) -> bool {
    impl_name.starts_with("ksync")
}

/// Measures `op` run back to back on this thread for `cfg.duration`; returns a
/// row. `op` is called in batches so the clock is read rarely.
pub fn single(
    cfg: &Config,
    group: &str,
    scenario: &str,
    impl_name: &str,
    mut op: impl FnMut(),
) -> Row {
    // Warm up.
    for _ in 0..10_000 {
        op();
    }
    let mut batch = 1_000u64;
    let mut ops = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..batch {
            op();
        }
        ops += batch;
        let el = start.elapsed();
        if el >= cfg.duration {
            let secs = el.as_secs_f64();
            return Row {
                group: group.into(),
                scenario: scenario.into(),
                impl_name: impl_name.into(),
                threads: 1,
                ops_per_sec: ops as f64 / secs,
                ns_per_op: secs * 1e9 / ops as f64,
                fairness: None,
                cpu_ns_per_side: None,
            };
        }
        if el < cfg.duration / 100 {
            batch *= 2;
        }
    }
}

/// How many turns each implementation of an [`Interleaved`] scenario gets.
const TURNS: u32 = 40;

/// The implementations of one single-thread scenario, measured in turns.
///
/// [`single`] measures one implementation for the whole time, then the next:
/// on a shared host a CPU's speed drifts over seconds (another tenant on its
/// sibling thread), and two rows measured a second apart differed by up to
/// 30 % with the same code. Here every implementation runs [`TURNS`] short
/// turns of `cfg.duration / TURNS`, round-robin (the order rotating each
/// round), and reports the median of its turns' rates, so each sees the same
/// drift and the ratios between them compare what they run.
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
/// [`threaded`] runs one implementation for the whole time, then the next. On
/// a 2-vCPU VM the host moves the two vCPUs between a pair of hyperthreads of
/// one core (a cache line crosses between them in about 35 ns round trip) and
/// two cores (about 170–250 ns), every few seconds; a contended lock's
/// throughput follows (a binary semaphore moved between 1.3 and 1.7 Mops/s
/// with the same code), so two rows measured a second apart compared the
/// placements as much as the locks. Here every implementation keeps its own
/// `threads` threads, parked between turns, and runs [`THREADED_TURNS`] turns
/// of `cfg.duration / THREADED_TURNS`, round-robin (the order rotating each
/// round). Its throughput is the median of its turns' rates; its fairness
/// counts each thread's operations over all its turns (close to what one
/// run of the whole duration counts, not the same: see [`THREADED_TURNS`]).
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
        self.subjects
            .iter()
            .zip(rates)
            .zip(&counts)
            .map(|((s, rates), counts)| {
                let counts: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                let (min, max) = (
                    counts.iter().min().copied().unwrap_or(0),
                    counts.iter().max().copied().unwrap_or(0),
                );
                let rate = median(rates);
                Row {
                    group: self.group.clone(),
                    scenario: self.scenario.clone(),
                    impl_name: s.name.clone(),
                    threads,
                    ops_per_sec: rate,
                    ns_per_op: 1e9 * threads as f64 / rate.max(f64::MIN_POSITIVE),
                    fairness: Some(if max == 0 {
                        0.0
                    } else {
                        min as f64 / max as f64
                    }),
                    cpu_ns_per_side: None,
                }
            })
            .collect()
    }
}

/// Runs `threads` threads, each calling its own `op` (made by `make(thread_index)`)
/// in a loop until the time is up; all start together. Returns a row with the
/// fairness (min/max operations per thread).
pub fn threaded<F>(
    cfg: &Config,
    group: &str,
    scenario: &str,
    impl_name: &str,
    threads: usize,
    make: impl Fn(usize) -> F + Sync,
) -> Row
where
    F: FnMut(),
{
    let stop = AtomicBool::new(false);
    let start_line = Barrier::new(threads + 1);
    let (counts, secs) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (stop, start_line, make) = (&stop, &start_line, &make);
                s.spawn(move || {
                    let mut op = make(i);
                    start_line.wait();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            op();
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect();
        start_line.wait();
        let t0 = Instant::now();
        std::thread::sleep(cfg.duration);
        stop.store(true, Ordering::Relaxed);
        let counts: Vec<u64> = handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect();
        (counts, t0.elapsed().as_secs_f64())
    });
    let total: u64 = counts.iter().sum();
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    Row {
        group: group.into(),
        scenario: scenario.into(),
        impl_name: impl_name.into(),
        threads,
        ops_per_sec: total as f64 / secs,
        ns_per_op: secs * 1e9 * threads as f64 / total.max(1) as f64,
        fairness: Some(if max == 0 {
            0.0
        } else {
            min as f64 / max as f64
        }),
        cpu_ns_per_side: None,
    }
}

/// Prints the rows grouped by (group, scenario, threads), each with its ratio to
/// the best peer in that scenario.
pub fn print_table(rows: &[Row]) {
    let mut keys: Vec<(String, String, usize)> = Vec::new();
    for r in rows {
        let k = (r.group.clone(), r.scenario.clone(), r.threads);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    // The CPU-time column only where some row has it (the wake-up rows).
    let cpu_column = rows.iter().any(|r| r.cpu_ns_per_side.is_some());
    let cpu_cell = |r: Option<&Row>| match r {
        _ if !cpu_column => String::new(),
        None => format!(" {:>16}", "cpu ns/op each"),
        Some(r) => format!(
            " {:>16}",
            r.cpu_ns_per_side.as_ref().map_or("-".into(), |v| v
                .iter()
                .map(|ns| format!("{ns:.0}"))
                .collect::<Vec<_>>()
                .join(" / "))
        ),
    };
    println!(
        "{:<12} {:<22} {:>3}  {:<34} {:>14} {:>10} {:>9} {:>8}{}",
        "group",
        "scenario",
        "thr",
        "impl",
        "ops/s",
        "ns/op",
        "fairness",
        "vs best",
        cpu_cell(None)
    );
    for (g, s, t) in keys {
        let set: Vec<&Row> = rows
            .iter()
            .filter(|r| r.group == g && r.scenario == s && r.threads == t)
            .collect();
        let best_peer = set
            .iter()
            .filter(|r| !is_ours(&r.impl_name))
            .map(|r| r.ops_per_sec)
            .fold(0.0, f64::max);
        for r in set {
            let ratio = if best_peer > 0.0 {
                format!("{:.2}x", r.ops_per_sec / best_peer)
            } else {
                "-".into()
            };
            let fair = r.fairness.map_or("-".into(), |f| format!("{f:.2}"));
            println!(
                "{:<12} {:<22} {:>3}  {:<34} {:>14.0} {:>10.2} {:>9} {:>8}{}",
                r.group,
                r.scenario,
                r.threads,
                r.impl_name,
                r.ops_per_sec,
                r.ns_per_op,
                fair,
                ratio,
                cpu_cell(Some(r))
            );
        }
    }
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Merges the rows of several rounds into one row per measurement: the median
/// of its throughput, of its ns/op and of its fairness over the rounds. A
/// measurement is a (group, scenario, impl, threads) key and its occurrence
/// number within a round; rows keep the first round's order.
fn medians(rounds: Vec<Vec<Row>>) -> Vec<Row> {
    /// (group, scenario, impl, threads), and the occurrence within a round.
    type Key = ((String, String, String, usize), usize);
    // Each round's rows with their keys.
    let indexed: Vec<Vec<(Key, &Row)>> = rounds
        .iter()
        .map(|rows| {
            let mut seen = Vec::new();
            rows.iter()
                .map(|r| {
                    let k = (
                        r.group.clone(),
                        r.scenario.clone(),
                        r.impl_name.clone(),
                        r.threads,
                    );
                    let nth = seen.iter().filter(|s| **s == k).count();
                    seen.push(k.clone());
                    ((k, nth), r)
                })
                .collect()
        })
        .collect();
    let Some(first) = indexed.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|(k, r0)| {
            let same: Vec<&Row> = indexed
                .iter()
                .filter_map(|round| round.iter().find(|(k2, _)| k2 == k).map(|(_, r)| *r))
                .collect();
            let fair: Vec<f64> = same.iter().filter_map(|r| r.fairness).collect();
            // Each side's CPU time, its median over the rounds that have it.
            let cpu: Vec<&Vec<f64>> = same
                .iter()
                .filter_map(|r| r.cpu_ns_per_side.as_ref())
                .collect();
            let sides = cpu.iter().map(|v| v.len()).min().unwrap_or(0);
            Row {
                ops_per_sec: median(same.iter().map(|r| r.ops_per_sec).collect()),
                ns_per_op: median(same.iter().map(|r| r.ns_per_op).collect()),
                fairness: (!fair.is_empty()).then(|| median(fair)),
                cpu_ns_per_side: (!cpu.is_empty()).then(|| {
                    (0..sides)
                        .map(|i| median(cpu.iter().map(|v| v[i]).collect()))
                        .collect()
                }),
                ..(*r0).clone()
            }
        })
        .collect()
}

/// `ksync bench`: returns false on bad arguments.
pub fn main(args: Args) -> bool {
    let groups = all();
    if args.list {
        for g in &groups {
            println!("{:<14} {}", g.name, g.about);
        }
        return true;
    }
    for name in &args.groups {
        if !groups.iter().any(|g| g.name == name) {
            eprintln!("ksync bench: unknown group {name:?}; `ksync bench --list` shows the groups");
            return false;
        }
    }
    if args.millis == 0 {
        eprintln!("ksync bench: --millis must be positive");
        return false;
    }
    if args.rounds == 0 {
        eprintln!("ksync bench: --rounds must be positive");
        return false;
    }
    let cfg = Config {
        duration: Duration::from_millis(args.millis),
    };
    let mut rounds = Vec::new();
    let chosen = groups
        .iter()
        .filter(|g| args.groups.is_empty() || args.groups.iter().any(|n| n == g.name))
        .count();
    // Progress on a terminal: a bar over every group of every round, redrawn
    // only between groups (no ticker thread disturbs a measurement). Not on a
    // terminal, a line per group as before.
    let bar = indicatif::ProgressBar::new(chosen as u64 * u64::from(args.rounds));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .expect("valid template"),
    );
    for round in 1..=args.rounds {
        let mut rows = Vec::new();
        for g in groups
            .iter()
            .filter(|g| args.groups.is_empty() || args.groups.iter().any(|n| n == g.name))
        {
            let what = if args.rounds > 1 {
                format!(
                    "{} — {} (round {round} of {})",
                    g.name, g.about, args.rounds
                )
            } else {
                format!("{} — {}", g.name, g.about)
            };
            if !bar.is_hidden() {
                bar.set_message(what);
            } else if !args.json {
                eprintln!("ksync bench: {what}");
            }
            (g.run)(&cfg, &mut rows);
            bar.inc(1);
        }
        rounds.push(rows);
    }
    bar.finish_and_clear();
    let rows = medians(rounds);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("serialisable")
        );
    } else {
        print_table(&rows);
    }
    let ran: Vec<&str> = groups
        .iter()
        .filter(|g| args.groups.is_empty() || args.groups.iter().any(|n| n == g.name))
        .map(|g| g.name)
        .collect();
    peers::print_skipped(&ran, args.json);
    if let Some(path) = &args.chart
        && let Err(e) = std::fs::write(path, chart::svg(&rows))
    {
        eprintln!("ksync bench: cannot write {}: {e}", path.display());
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
        // Every turn ran whole batches of 64.
        for n in &ops {
            assert_eq!(n.load(Ordering::Relaxed) % 64, 0);
        }
    }

    fn row(impl_name: &str, ops: f64, fairness: Option<f64>) -> Row {
        Row {
            group: "g".into(),
            scenario: "s".into(),
            impl_name: impl_name.into(),
            threads: 2,
            ops_per_sec: ops,
            ns_per_op: 1e9 / ops,
            fairness,
            cpu_ns_per_side: None,
        }
    }

    /// Each measurement's median over the rounds, throughput, ns/op and
    /// fairness each; rows in the first round's order; an even count takes
    /// the mean of the middle two.
    #[test]
    fn medians_merge_rounds_per_measurement() {
        let rounds = vec![
            vec![row("a", 1.0, Some(0.5)), row("b", 10.0, None)],
            vec![row("b", 30.0, None), row("a", 3.0, Some(0.9))],
            vec![row("a", 2.0, Some(0.7)), row("b", 20.0, None)],
        ];
        let m = medians(rounds);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].impl_name.as_str(), m[0].ops_per_sec), ("a", 2.0));
        assert_eq!(m[0].fairness, Some(0.7));
        assert_eq!(m[0].ns_per_op, 1e9 / 2.0);
        assert_eq!((m[1].impl_name.as_str(), m[1].ops_per_sec), ("b", 20.0));
        assert_eq!(m[1].fairness, None);
        let even = medians(vec![vec![row("a", 1.0, None)], vec![row("a", 4.0, None)]]);
        assert_eq!(even[0].ops_per_sec, 2.5);
    }

    /// The CPU time of each side is merged side by side, each its own
    /// median; rows without it stay without it.
    #[test]
    fn medians_merge_cpu_time_per_side() {
        let with_cpu = |ops, cpu: [f64; 2]| Row {
            cpu_ns_per_side: Some(cpu.to_vec()),
            ..row("a", ops, None)
        };
        let m = medians(vec![
            vec![with_cpu(1.0, [100.0, 9.0]), row("b", 1.0, None)],
            vec![with_cpu(2.0, [300.0, 7.0]), row("b", 2.0, None)],
            vec![with_cpu(3.0, [200.0, 8.0]), row("b", 3.0, None)],
        ]);
        assert_eq!(m[0].cpu_ns_per_side, Some(vec![200.0, 8.0]));
        assert_eq!(m[1].cpu_ns_per_side, None);
    }
}
