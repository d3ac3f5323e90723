//! `ksync torture`: the kernel's locktorture and rcutorture models.
//!
//! A torture type is a named test of one primitive ([`TortureType`]); the
//! registry ([`all`]) collects the types of every area. Lock types share one
//! harness, [`lock_torture`]: writers and readers take the lock for a set time
//! with random short holds, and inside the critical section check a shared state
//! that any mutual-exclusion failure breaks. The run prints periodic statistics
//! lines and a final `SUCCESS` or `FAILURE` per type, as locktorture does.
//!
//! Every type reports in one format: locktorture's `Writes:  Total: …  Max/Min:
//! …  Fail: …` line (and `Reads :` for types with a read side), each role's
//! share of the operations and longest wait for an acquisition, the type's own
//! lines, the fault sources' counters, and the verdict. A wait longer than
//! [`STALL`] (or `--stall`) is a stall (the kernel's stall warning) and fails the type: the
//! watchdog in [`run_one`] reports it while it happens. `--faults` adds the
//! fault sources of [`faults`] beside the torture threads.

use indicatif::{ProgressBar, ProgressStyle};
use ksync::sched::Task;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod broken;
mod faults;
mod fwd;
mod mutex;
mod percpu_rwsem;
mod rcu;
mod rtmutex;
mod seqpcpu;
mod sleeping;
mod spinlock;
mod trials;
mod ww;

/// Options of `ksync torture`.
#[derive(clap::Args, Default, Clone)]
pub struct Args {
    /// Torture only these types (comma-separated; `--list` shows them). Default: all.
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Writer threads per type (default: the type's own, usually 4).
    #[arg(long)]
    pub writers: Option<usize>,
    /// Reader threads per type, for types with a read side (default: the type's own).
    #[arg(long)]
    pub readers: Option<usize>,
    /// Seconds per type (default: spread the run over about 45 s in total, at most 5 s a type).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds between statistics lines (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub stat_interval: f64,
    /// Print the results as a JSON array instead of the verdict lines.
    #[arg(long)]
    pub json: bool,
    /// List the torture types and exit.
    #[arg(long)]
    pub list: bool,
    /// Inject faults while the types run (comma-separated): stutter, shuffle,
    /// onoff, signals, irqs, long-hold, nested, or all.
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<String>,
    /// Seconds one wait for an acquisition may last before it is a stall, a
    /// FAILURE (default 10, the kernel's stall warning).
    #[arg(long)]
    pub stall: Option<f64>,
    /// Run each type N times with `--faults` and N times without, each run
    /// ending at its first failure (or after `--duration`), and print the
    /// median time to the first failure each way.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
}

/// The settings one torture type runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Writer threads.
    pub writers: usize,
    /// Reader threads.
    pub readers: usize,
    /// How long to run.
    pub duration: Duration,
    /// The faults injected meanwhile.
    pub faults: faults::FaultSet,
    /// A wait longer than this is a stall.
    pub stall: Duration,
    /// End the run at its first failure (`--trials`).
    pub stop_at_first_failure: bool,
}

/// What one run of a torture type found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Write-side operations (lock acquisitions, updates).
    pub writes: u64,
    /// Read-side operations.
    pub reads: u64,
    /// Failures seen: a broken invariant, a torn read, a reclaimed object read.
    pub failures: u64,
    /// Fewest and most operations by one writer thread.
    pub writer_min_max: (u64, u64),
    /// Fewest and most operations by one reader thread.
    pub reader_min_max: (u64, u64),
    /// Free-form lines the type wants printed with its verdict.
    pub notes: Vec<String>,
}

/// A wait for one acquisition longer than this is a stall: a FAILURE.
pub const STALL: Duration = Duration::from_secs(10);

/// A torture thread's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Takes the write (exclusive) side.
    Writer,
    /// Takes the read (shared) side.
    Reader,
}

/// One registered torture thread: its task (for the fault sources), its
/// operations and its waits.
pub struct Slot {
    /// Writer or reader.
    pub role: Role,
    /// The thread's task.
    pub task: Task,
    /// Acquisitions (operations) so far.
    ops: AtomicU64,
    /// When the wait in progress began (ns since the run began, plus one); 0
    /// while the thread is not waiting.
    wait_since: AtomicU64,
    /// The longest wait so far, in ns.
    max_wait: AtomicU64,
    /// Set once the watchdog has reported this thread's current wait.
    stalled: AtomicBool,
}

/// Live counters a running type updates, for the periodic statistics lines, and
/// the registry of its threads.
pub struct Monitor {
    stop: AtomicBool,
    /// Write-side operations so far.
    pub writes: AtomicU64,
    /// Read-side operations so far.
    pub reads: AtomicU64,
    /// Failures so far.
    pub failures: AtomicU64,
    /// The faults injected.
    pub faults: faults::FaultSet,
    /// A wait longer than this is a stall.
    stall: Duration,
    /// While a stutter holds the threads: when they resume, all together (ns
    /// since the run began, as `now_ns`); 0 when no stutter is in progress.
    stutter_till: AtomicU64,
    /// Long holds so far (`long-hold`).
    pub long_holds: AtomicU64,
    /// Chains of nested locks taken so far (`nested`).
    pub nested: AtomicU64,
    /// Waits the watchdog reported as stalls.
    stalls: AtomicU64,
    /// When the first failure was recorded (ns since the start, plus one); 0: none.
    first_failure: AtomicU64,
    start: Instant,
    threads: Mutex<Vec<Arc<Slot>>>,
}

impl Monitor {
    /// A monitor for a run with `cfg`'s faults and stall limit.
    pub fn new(cfg: &Config) -> Self {
        Monitor {
            stop: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            faults: cfg.faults,
            stall: cfg.stall,
            stutter_till: AtomicU64::new(0),
            long_holds: AtomicU64::new(0),
            nested: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            first_failure: AtomicU64::new(0),
            start: Instant::now(),
            threads: Mutex::new(Vec::new()),
        }
    }
    /// Whether the run's time is up.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Records a failure.
    pub fn fail(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first_failure.store(self.now_ns(), Ordering::Relaxed);
        }
    }
    /// Registers the calling thread as a torture thread of `role`.
    pub fn enter(&self, role: Role) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            role,
            task: ksync::sched::current(),
            ops: AtomicU64::new(0),
            wait_since: AtomicU64::new(0),
            max_wait: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
        });
        self.threads.lock().unwrap().push(slot.clone());
        slot
    }
    /// The registered threads.
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.threads.lock().unwrap().clone()
    }
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64 + 1
    }
    /// The thread is about to try an acquisition: a stutter in progress holds it
    /// here first (torture.c's `stutter_wait`), then its wait begins.
    pub fn begin_wait(&self, me: &Slot) {
        let till = self.stutter_till.load(Ordering::Relaxed);
        if till != 0 {
            self.stutter_wait(till);
        }
        me.wait_since.store(self.now_ns(), Ordering::Relaxed);
    }
    /// Holds the thread until `till` (ns since the start), as torture.c's
    /// `stutter_wait` does: asleep for most of the pause, then spinning on the
    /// clock for its last [`faults::STUTTER_SPIN`], so that every thread on a
    /// CPU resumes at the same instant and they all arrive at the lock at once.
    #[cold]
    fn stutter_wait(&self, till: u64) {
        let spin = faults::STUTTER_SPIN.as_nanos() as u64;
        loop {
            let now = self.now_ns();
            if now >= till || self.should_stop() {
                return;
            }
            if till - now > spin {
                let nap = Duration::from_nanos(till - now - spin);
                std::thread::sleep(nap.min(Duration::from_millis(1)));
            } else {
                std::hint::spin_loop();
            }
        }
    }
    /// The acquisition begun with [`begin_wait`](Self::begin_wait) succeeded (or
    /// gave up): one operation, and its wait is recorded.
    pub fn end_wait(&self, me: &Slot) {
        let since = me.wait_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            me.max_wait
                .fetch_max(self.now_ns().saturating_sub(since), Ordering::Relaxed);
        }
        me.stalled.store(false, Ordering::Relaxed);
        me.ops.fetch_add(1, Ordering::Relaxed);
    }
    /// The watchdog: reports every wait in progress that passed the stall limit, once
    /// per wait. Returns the new reports.
    fn check_stalls(&self) -> Vec<String> {
        let now = self.now_ns();
        let mut v = Vec::new();
        for s in self.slots() {
            let since = s.wait_since.load(Ordering::Relaxed);
            if since != 0
                && now.saturating_sub(since) > self.stall.as_nanos() as u64
                && !s.stalled.swap(true, Ordering::Relaxed)
            {
                self.stalls.fetch_add(1, Ordering::Relaxed);
                self.fail();
                v.push(format!(
                    "STALL: {:?} thread {} has waited {:.1} s for one acquisition",
                    s.role,
                    s.task.tid(),
                    (now - since) as f64 / 1e9
                ));
            }
        }
        v
    }
}

/// One registered torture type.
pub struct TortureType {
    /// The name `--type` selects, e.g. `spin_lock`.
    pub name: &'static str,
    /// One line on what it tortures.
    pub about: &'static str,
    /// Default writer threads.
    pub writers: usize,
    /// Default reader threads (0: no read side).
    pub readers: usize,
    /// Hidden from the default run and `--list` (test-only types).
    pub hidden: bool,
    /// Runs the type until `mon.should_stop()`.
    pub run: fn(&Config, &Monitor) -> Report,
}

/// Every registered torture type, in run order.
pub fn all() -> Vec<TortureType> {
    let mut v = Vec::new();
    v.extend(spinlock::types());
    v.extend(mutex::types());
    v.extend(sleeping::types());
    v.extend(rtmutex::types());
    v.extend(percpu_rwsem::types());
    v.extend(seqpcpu::types());
    v.extend(ww::types());
    v.extend(rcu::types());
    v.extend(fwd::types());
    v.extend(broken::types());
    v
}

/// One torture thread in the result.
#[derive(Serialize, Debug)]
pub struct ThreadRow {
    /// "writer" or "reader".
    pub role: &'static str,
    /// Its acquisitions.
    pub ops: u64,
    /// Its share of all threads' acquisitions.
    pub share: f64,
    /// Its longest wait for one acquisition, in milliseconds.
    pub max_wait_ms: f64,
}

/// The result of one type, also the JSON row.
#[derive(Serialize, Debug)]
pub struct Outcome {
    /// Type name.
    #[serde(rename = "type")]
    pub name: String,
    /// "SUCCESS" or "FAILURE".
    pub verdict: &'static str,
    /// All operations, both sides.
    pub ops: u64,
    /// Write-side operations.
    pub writes: u64,
    /// Read-side operations.
    pub reads: u64,
    /// Failures seen (stalls included).
    pub failures: u64,
    /// Waits longer than the stall limit ([`STALL`] unless `--stall`).
    pub stalls: u64,
    /// The stall limit, in seconds.
    pub stall_s: f64,
    /// When the first failure was seen, in milliseconds from the start (absent
    /// without failures, or when only the type's final checks found one).
    pub first_failure_ms: Option<f64>,
    /// Seconds run.
    pub seconds: f64,
    /// Writer threads.
    pub writers: usize,
    /// Reader threads.
    pub readers: usize,
    /// Most and fewest operations by one writer thread.
    pub writer_max_min: (u64, u64),
    /// Most and fewest operations by one reader thread.
    pub reader_max_min: (u64, u64),
    /// min/max operations per writer thread (1.0 = perfectly fair).
    pub writer_fairness: f64,
    /// min/max operations per reader thread (1.0 when there are no readers).
    pub reader_fairness: f64,
    /// The writers' share of the acquisitions (0.0 to 1.0).
    pub writer_share: f64,
    /// The readers' share of the acquisitions (0.0 to 1.0).
    pub reader_share: f64,
    /// The longest wait for one acquisition, any thread, in milliseconds.
    pub max_wait_ms: f64,
    /// The longest wait of a writer, in milliseconds.
    pub writer_max_wait_ms: f64,
    /// The longest wait of a reader, in milliseconds.
    pub reader_max_wait_ms: f64,
    /// Every torture thread's operations, share and longest wait.
    pub threads: Vec<ThreadRow>,
    /// The faults injected, comma-separated ("" for none).
    pub fault_list: String,
    /// Each fault source's counters.
    pub faults: Vec<String>,
    /// Notes from the type.
    pub notes: Vec<String>,
}

impl Outcome {
    /// The lines printed for the type: locktorture's statistics lines, the
    /// shares and longest waits, the type's notes, the fault counters, the
    /// verdict.
    pub fn lines(&self) -> Vec<String> {
        let n = &self.name;
        let fail = self.failures;
        let role = |what: &str, total: u64, (max, min): (u64, u64)| {
            format!(
                "{n}-torture: {what}:  Total: {total}  Max/Min: {max}/{min} {}  Fail: {fail} {}",
                if self.fault_list.is_empty() && max / 2 > min {
                    "???"
                } else {
                    ""
                },
                if fail > 0 { "!!!" } else { "" }
            )
        };
        let mut v = vec![role("Writes", self.writes, self.writer_max_min)];
        if self.readers > 0 || self.reads > 0 {
            v.push(role("Reads ", self.reads, self.reader_max_min));
        }
        if let Some(t) = self.first_failure_ms {
            v.push(format!("{n}-torture: First failure after {t:.3} ms"));
        }
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let each = |r: &str| {
            let s: Vec<&ThreadRow> = self.threads.iter().filter(|t| t.role == r).collect();
            let lo = s.iter().map(|t| t.share).fold(f64::INFINITY, f64::min);
            let hi = s.iter().map(|t| t.share).fold(0.0, f64::max);
            if s.is_empty() {
                String::new()
            } else {
                format!(" ({} threads, {}-{} each)", s.len(), pct(lo), pct(hi))
            }
        };
        let mut share = format!(
            "{n}-torture: Shares: writers {}{}",
            pct(self.writer_share),
            each("writer")
        );
        let mut wait = format!(
            "{n}-torture: Longest wait: writers {:.3} ms",
            self.writer_max_wait_ms
        );
        if self.readers > 0 || self.threads.iter().any(|t| t.role == "reader") {
            share += &format!(", readers {}{}", pct(self.reader_share), each("reader"));
            wait += &format!(", readers {:.3} ms", self.reader_max_wait_ms);
        }
        wait += &format!(" (stall: over {} s; stalls: {})", self.stall_s, self.stalls);
        v.push(share);
        v.push(wait);
        v.extend(self.notes.iter().map(|l| format!("  {l}")));
        if !self.fault_list.is_empty() {
            v.push(format!("{n}-torture: Faults: {}", self.fault_list));
            v.extend(self.faults.iter().map(|l| format!("  {l}")));
        }
        v.push(format!(
            "{n}-torture: {} ops {} (writes {}, reads {}) failures {} in {:.2}s, writers {} readers {}, writer fairness {:.2}",
            self.verdict,
            self.ops,
            self.writes,
            self.reads,
            self.failures,
            self.seconds,
            self.writers,
            self.readers,
            self.writer_fairness
        ));
        v
    }
}

/// Runs one type with live statistics, the fault sources and the stall
/// watchdog; returns its outcome.
pub fn run_one(
    t: &TortureType,
    cfg: &Config,
    stat_interval: Option<Duration>,
    quiet: bool,
) -> Outcome {
    let mon = Monitor::new(cfg);
    let start = Instant::now();
    let (report, fault_lines) = std::thread::scope(|s| {
        let worker = s.spawn(|| (t.run)(cfg, &mon));
        let sources = faults::start(s, &mon);
        let deadline = start + cfg.duration;
        let mut next_stat = stat_interval.map(|i| start + i);
        let watchdog = |mon: &Monitor| {
            for l in mon.check_stalls() {
                eprintln!("{}-torture: {l}", t.name);
            }
        };
        let failed = || cfg.stop_at_first_failure && mon.failures.load(Ordering::Relaxed) > 0;
        while Instant::now() < deadline && !worker.is_finished() && !failed() {
            std::thread::sleep(
                Duration::from_millis(10).min(deadline.saturating_duration_since(Instant::now())),
            );
            watchdog(&mon);
            if let (Some(at), Some(i)) = (next_stat, stat_interval)
                && Instant::now() >= at
                && !quiet
            {
                eprintln!(
                    "{}-torture: Writes: Total: {} Reads: Total: {} Fail: {} ({:.1}s)",
                    t.name,
                    mon.writes.load(Ordering::Relaxed),
                    mon.reads.load(Ordering::Relaxed),
                    mon.failures.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
                next_stat = Some(at + i);
            }
        }
        mon.stop.store(true, Ordering::Relaxed);
        // The threads finish their operation in progress and stop. One that
        // does not within a stall's time is stuck for good: say so and end the
        // process rather than hang (the scope would join it forever).
        let grace = cfg.stall + Duration::from_secs(5);
        let give_up = Instant::now() + grace;
        while !worker.is_finished() {
            if Instant::now() >= give_up {
                let why = format!(
                    "the torture threads did not stop within {:.1} s of the end of the run (stuck in an acquisition)",
                    grace.as_secs_f64()
                );
                if quiet {
                    // --json: the output stays one JSON array.
                    let row = serde_json::json!([{
                        "type": t.name,
                        "verdict": "FAILURE",
                        "stalls": mon.stalls.load(Ordering::Relaxed),
                        "notes": [why],
                    }]);
                    println!("{row}");
                } else {
                    println!("{}-torture: FAILURE: {why}", t.name);
                    println!("ksync torture: FAILURE");
                }
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(10));
            watchdog(&mon);
        }
        let report = worker.join().unwrap_or_else(|_| Report {
            failures: 1,
            notes: vec!["the torture type panicked".into()],
            ..Report::default()
        });
        let mut lines: Vec<String> = sources
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| "a fault source panicked".into())
            })
            .collect();
        if cfg.faults.has(faults::Fault::LongHold) {
            lines.push(format!(
                "long-hold: {} holds of 1-5 ms",
                mon.long_holds.load(Ordering::Relaxed)
            ));
        }
        if cfg.faults.has(faults::Fault::Nested) {
            lines.push(format!(
                "nested: {} chains of {NESTED} locks taken before the main one",
                mon.nested.load(Ordering::Relaxed)
            ));
        }
        (report, lines)
    });
    let seconds = start.elapsed().as_secs_f64();
    let stalls = mon.stalls.load(Ordering::Relaxed);
    // Failures the monitor saw that the report did not count (the watchdog's).
    let failures = report.failures.max(mon.failures.load(Ordering::Relaxed));
    let slots = mon.slots();
    let total: u64 = slots.iter().map(|s| s.ops.load(Ordering::Relaxed)).sum();
    let frac = |x: u64| {
        if total == 0 {
            0.0
        } else {
            x as f64 / total as f64
        }
    };
    let ms = |ns: u64| ns as f64 / 1e6;
    let threads: Vec<ThreadRow> = slots
        .iter()
        .map(|s| ThreadRow {
            role: match s.role {
                Role::Writer => "writer",
                Role::Reader => "reader",
            },
            ops: s.ops.load(Ordering::Relaxed),
            share: frac(s.ops.load(Ordering::Relaxed)),
            max_wait_ms: ms(s.max_wait.load(Ordering::Relaxed)),
        })
        .collect();
    let role_sum = |r: &str| threads.iter().filter(|t| t.role == r).map(|t| t.ops).sum();
    let role_wait = |r: &str| {
        threads
            .iter()
            .filter(|t| t.role == r)
            .map(|t| t.max_wait_ms)
            .fold(0.0, f64::max)
    };
    let (wmin, wmax) = report.writer_min_max;
    let (rmin, rmax) = report.reader_min_max;
    Outcome {
        name: t.name.to_string(),
        verdict: if failures == 0 { "SUCCESS" } else { "FAILURE" },
        ops: report.writes + report.reads,
        writes: report.writes,
        reads: report.reads,
        failures,
        stalls,
        stall_s: cfg.stall.as_secs_f64(),
        first_failure_ms: match mon.first_failure.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(ms(ns)),
        },
        seconds,
        writers: cfg.writers,
        readers: cfg.readers,
        writer_max_min: (wmax, wmin),
        reader_max_min: (rmax, rmin),
        writer_fairness: if wmax == 0 {
            1.0
        } else {
            wmin as f64 / wmax as f64
        },
        reader_fairness: if rmax == 0 {
            1.0
        } else {
            rmin as f64 / rmax as f64
        },
        writer_share: frac(role_sum("writer")),
        reader_share: frac(role_sum("reader")),
        max_wait_ms: role_wait("writer").max(role_wait("reader")),
        writer_max_wait_ms: role_wait("writer"),
        reader_max_wait_ms: role_wait("reader"),
        threads,
        fault_list: cfg.faults.names(),
        faults: fault_lines,
        notes: report.notes,
    }
}

/// The settings `t` runs with under `args` (its own thread counts unless given).
fn type_config(
    t: &TortureType,
    args: &Args,
    duration: Duration,
    faults: faults::FaultSet,
    stall: Duration,
) -> Config {
    Config {
        writers: args
            .writers
            .unwrap_or(t.writers)
            .max(if t.writers > 0 { 1 } else { 0 }),
        readers: if t.readers == 0 {
            0
        } else {
            args.readers.unwrap_or(t.readers)
        },
        duration,
        faults,
        stall,
        stop_at_first_failure: false,
    }
}

/// `ksync torture`: returns whether every type succeeded.
pub fn main(args: Args) -> bool {
    let types = all();
    if args.list {
        for t in types.iter().filter(|t| !t.hidden) {
            println!("{:<24} {}", t.name, t.about);
        }
        return true;
    }
    let selected: Vec<&TortureType> = if args.types.is_empty() {
        types.iter().filter(|t| !t.hidden).collect()
    } else {
        let mut v = Vec::new();
        for name in &args.types {
            match types.iter().find(|t| t.name == name) {
                Some(t) => v.push(t),
                None => {
                    eprintln!(
                        "ksync torture: unknown type {name:?}; `ksync torture --list` shows the types"
                    );
                    return false;
                }
            }
        }
        v
    };
    if selected.is_empty() {
        eprintln!("ksync torture: no torture types are registered");
        return false;
    }
    let per_type = match args.duration {
        Some(d) if d.is_finite() && d > 0.0 => Duration::from_secs_f64(d),
        Some(d) => {
            eprintln!("ksync torture: --duration must be a positive number of seconds, not {d}");
            return false;
        }
        None => Duration::from_secs_f64((45.0 / selected.len() as f64).clamp(0.5, 5.0)),
    };
    let faults = match faults::FaultSet::parse(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ksync torture: {e}");
            return false;
        }
    };
    let stall = match args.stall {
        None => STALL,
        Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
        Some(s) => {
            eprintln!("ksync torture: --stall must be a positive number of seconds, not {s}");
            return false;
        }
    };
    if let Some(n) = args.trials {
        return trials::main(&selected, &args, n, per_type, faults, stall);
    }
    let stat = (args.stat_interval > 0.0 && !args.json)
        .then(|| Duration::from_secs_f64(args.stat_interval));
    let bar = if args.types.is_empty() && !args.json {
        let b = ProgressBar::new(selected.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .expect("valid template"),
        );
        Some(b)
    } else {
        None
    };
    let mut outcomes = Vec::new();
    for t in selected {
        let cfg = type_config(t, &args, per_type, faults, stall);
        if let Some(b) = &bar {
            b.set_message(t.name);
        }
        let o = if let Some(b) = &bar {
            b.suspend(|| run_one(t, &cfg, stat, args.json))
        } else {
            run_one(t, &cfg, stat, args.json)
        };
        if !args.json {
            for line in o.lines() {
                match &bar {
                    Some(b) if !b.is_hidden() => b.println(line),
                    _ => println!("{line}"),
                }
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
        outcomes.push(o);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let ok = outcomes.iter().all(|o| o.failures == 0);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcomes).expect("serialisable")
        );
    } else {
        println!(
            "ksync torture: {} ({} types, {} failed)",
            if ok { "SUCCESS" } else { "FAILURE" },
            outcomes.len(),
            outcomes.iter().filter(|o| o.failures > 0).count()
        );
    }
    ok
}

// ---------------------------------------------------------------------------
// The shared lock harness.

/// A lock under torture: run a closure with the lock held for writing, or for
/// reading where the lock has a read side.
pub trait TortureLock: Send + Sync {
    /// Runs `cs` with the lock held exclusively.
    fn write(&self, cs: &mut dyn FnMut());
    /// Runs `cs` with the lock held shared. Default: exclusively.
    fn read(&self, cs: &mut dyn FnMut()) {
        self.write(cs)
    }
    /// Runs `cs` with the lock held exclusively, taken the way an irq handler
    /// may take it (`spin_lock_irqsave`), from the `irqs` fault's handler;
    /// returns false (and runs nothing) for a lock an irq handler must not take.
    /// Must be async-signal-safe.
    fn write_from_irq(&self, cs: &mut dyn FnMut()) -> bool {
        let _ = cs;
        false
    }
    /// Runs `cs` with the lock held shared, taken the way an irq handler
    /// takes a read side (a plain `read_lock`, as the kernel's handlers take
    /// `tasklist_lock`), from the `irqs` fault's handler; returns false (and
    /// runs nothing) for a lock whose handlers do not read-lock it. Must be
    /// async-signal-safe.
    fn read_from_irq(&self, cs: &mut dyn FnMut()) -> bool {
        let _ = cs;
        false
    }
    /// As [`write_from_irq`](Self::write_from_irq) from softirq context (a
    /// tasklet): the way a bh lock's softirq side takes it (`spin_lock`).
    fn write_from_softirq(&self, cs: &mut dyn FnMut()) -> bool {
        let _ = cs;
        false
    }
    /// A new lock of the same kind, at position `depth` (below [`NESTED`]) of
    /// the `nested` fault's chain, in a lockdep class of its own per kind and
    /// position (a chain of one class would be recursive locking to lockdep,
    /// and one class for two kinds of lock, a spinning and a sleeping one,
    /// confuses it); `None` for a lock that cannot have siblings (the BKL).
    fn sibling(&self, depth: usize) -> Option<Box<dyn TortureLock>> {
        let _ = depth;
        None
    }
}

/// The state the critical sections check. Atomics only, so that a lock that fails
/// to exclude produces a counted failure rather than a data race.
#[derive(Default)]
pub struct Shared {
    writers_in: AtomicU64,
    readers_in: AtomicU64,
    /// Every slot holds the same value outside a write critical section.
    slots: [AtomicU64; 4],
}

/// The writer's critical section: checks exclusion, then rewrites every slot
/// with a gap in the middle (now and then a long hold, `hold`), so a reader or
/// writer that overlaps sees a mix.
pub fn writer_cs(sh: &Shared, mon: &Monitor, rng: &mut fastrand::Rng, hold: Option<Duration>) {
    if sh.writers_in.fetch_add(1, Ordering::Relaxed) != 0
        || sh.readers_in.load(Ordering::Relaxed) != 0
    {
        mon.fail();
    }
    let v = sh.slots[0].load(Ordering::Relaxed) + 1;
    for (i, s) in sh.slots.iter().enumerate() {
        s.store(v, Ordering::Relaxed);
        if i == 1 {
            match hold {
                Some(d) => long_delay(d),
                None => short_delay(rng),
            }
        }
    }
    for s in &sh.slots {
        if s.load(Ordering::Relaxed) != v {
            mon.fail();
        }
    }
    sh.writers_in.fetch_sub(1, Ordering::Relaxed);
}

/// The critical section of the `irqs` fault's handlers: the writer's checks,
/// without the delay and without allocating (it runs in a signal handler).
pub fn irq_cs(sh: &Shared, mon: &Monitor) {
    if sh.writers_in.fetch_add(1, Ordering::Relaxed) != 0
        || sh.readers_in.load(Ordering::Relaxed) != 0
    {
        mon.fail();
    }
    let v = sh.slots[0].load(Ordering::Relaxed);
    if sh.slots.iter().any(|s| s.load(Ordering::Relaxed) != v) {
        mon.fail();
    }
    sh.writers_in.fetch_sub(1, Ordering::Relaxed);
}

/// The critical section of the `irqs` fault's handlers on a read side: the
/// reader's checks, without the delay (it runs in a signal handler).
pub fn irq_read_cs(sh: &Shared, mon: &Monitor) {
    sh.readers_in.fetch_add(1, Ordering::Relaxed);
    if sh.writers_in.load(Ordering::Relaxed) != 0 {
        mon.fail();
    }
    let v = sh.slots[0].load(Ordering::Relaxed);
    if sh.slots.iter().any(|s| s.load(Ordering::Relaxed) != v) {
        mon.fail();
    }
    sh.readers_in.fetch_sub(1, Ordering::Relaxed);
}

/// The reader's critical section: no writer may be inside, and all slots agree.
pub fn reader_cs(sh: &Shared, mon: &Monitor, rng: &mut fastrand::Rng) {
    sh.readers_in.fetch_add(1, Ordering::Relaxed);
    if sh.writers_in.load(Ordering::Relaxed) != 0 {
        mon.fail();
    }
    let v = sh.slots[0].load(Ordering::Relaxed);
    short_delay(rng);
    if sh.slots.iter().any(|s| s.load(Ordering::Relaxed) != v) {
        mon.fail();
    }
    sh.readers_in.fetch_sub(1, Ordering::Relaxed);
}

/// A random short hold: usually a few spins, now and then a longer one (as
/// locktorture's `torture_spin_lock_write_delay`), rarely a yield.
pub fn short_delay(rng: &mut fastrand::Rng) {
    let r = rng.u32(0..1024);
    let spins = if r == 0 {
        std::thread::yield_now();
        0
    } else if r < 16 {
        200
    } else {
        r % 8
    };
    for _ in 0..spins {
        std::hint::spin_loop();
    }
}

/// A long hold, busy (locktorture's `long_hold` is an `mdelay`, which does not
/// sleep: a spinlock holder may not).
fn long_delay(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// The `long-hold` fault: a writer holds for 1-5 ms at most once in
/// [`LONG_HOLD_EVERY`].
const LONG_HOLD_EVERY: Duration = Duration::from_millis(100);

/// The `nested` fault: locks in a writer's chain before the main lock (each
/// kind gives them lockdep classes of their own, one per position, as
/// locktorture gives its nested locks their own keys; always taken in order).
pub const NESTED: usize = 2;

fn min_max(v: &[u64]) -> (u64, u64) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

/// Takes `chain` in order, then `main`, and runs `cs` inside all of them
/// (locktorture's `nested_locks`); `ins[i]` checks that chain lock `i` excludes.
fn chain_write(
    chain: &[Box<dyn TortureLock>],
    ins: &[AtomicU64],
    mon: &Monitor,
    main: &dyn TortureLock,
    cs: &mut dyn FnMut(),
) {
    match chain.split_first() {
        None => main.write(cs),
        Some((first, rest)) => first.write(&mut || {
            if ins[0].fetch_add(1, Ordering::Relaxed) != 0 {
                mon.fail();
            }
            chain_write(rest, &ins[1..], mon, main, cs);
            ins[0].fetch_sub(1, Ordering::Relaxed);
        }),
    }
}

/// Runs `cfg.writers` writers and `cfg.readers` readers against `lock` until the
/// monitor says stop. Each writer and reader takes the lock in a loop, with a short
/// random pause outside the lock. The faults that act through the lock
/// (`long-hold`, `nested`, the `irqs` handlers' lock takes) are applied here.
pub fn lock_torture(lock: &dyn TortureLock, cfg: &Config, mon: &Monitor) -> Report {
    let shared = Shared::default();
    let chain: Vec<Box<dyn TortureLock>> = if cfg.faults.has(faults::Fault::Nested) {
        (0..NESTED).map_while(|d| lock.sibling(d)).collect()
    } else {
        Vec::new()
    };
    let chain_in: [AtomicU64; NESTED] = Default::default();
    let long_hold = cfg.faults.has(faults::Fault::LongHold);
    let hook = faults::IrqHook {
        lock,
        shared: &shared,
        mon,
    };
    let _hook = faults::IrqHookGuard::set(cfg.faults.has(faults::Fault::Irqs).then_some(&hook));
    let (w, r) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..cfg.writers)
            .map(|i| {
                let (shared, chain, chain_in) = (&shared, &chain, &chain_in);
                s.spawn(move || {
                    let me = mon.enter(Role::Writer);
                    let mut rng = fastrand::Rng::with_seed(0x5eed + i as u64);
                    let mut last_long = Instant::now();
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        let hold =
                            (long_hold && last_long.elapsed() >= LONG_HOLD_EVERY && rng.u8(..) < 8)
                                .then(|| {
                                    last_long = Instant::now();
                                    mon.long_holds.fetch_add(1, Ordering::Relaxed);
                                    Duration::from_micros(rng.u64(1000..5000))
                                });
                        mon.begin_wait(&me);
                        let mut cs = || {
                            mon.end_wait(&me);
                            writer_cs(shared, mon, &mut rng, hold);
                        };
                        if !chain.is_empty() && n.is_multiple_of(4) {
                            chain_write(chain, chain_in, mon, lock, &mut cs);
                            mon.nested.fetch_add(1, Ordering::Relaxed);
                        } else {
                            lock.write(&mut cs);
                        }
                        n += 1;
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                        if rng.u8(..) < 8 {
                            short_delay(&mut rng);
                        }
                    }
                    n
                })
            })
            .collect();
        let readers: Vec<_> = (0..cfg.readers)
            .map(|i| {
                let shared = &shared;
                s.spawn(move || {
                    let me = mon.enter(Role::Reader);
                    let mut rng = fastrand::Rng::with_seed(0xbeef + i as u64);
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        lock.read(&mut || {
                            mon.end_wait(&me);
                            reader_cs(shared, mon, &mut rng)
                        });
                        n += 1;
                        mon.reads.fetch_add(1, Ordering::Relaxed);
                        if rng.u8(..) < 8 {
                            short_delay(&mut rng);
                        }
                    }
                    n
                })
            })
            .collect();
        let w: Vec<u64> = writers
            .into_iter()
            .map(|h| h.join().expect("writer panicked"))
            .collect();
        let r: Vec<u64> = readers
            .into_iter()
            .map(|h| h.join().expect("reader panicked"))
            .collect();
        (w, r)
    });
    Report {
        writes: w.iter().sum(),
        reads: r.iter().sum(),
        failures: mon.failures.load(Ordering::Relaxed),
        writer_min_max: min_max(&w),
        reader_min_max: min_max(&r),
        notes: Vec::new(),
    }
}
