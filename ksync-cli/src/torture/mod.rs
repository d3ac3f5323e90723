//! `ksync torture`: the kernel's locktorture and rcutorture models.
//!
//! A torture type is a named test of one primitive ([`TortureType`]); the
//! registry ([`all`]) collects the types of every area. Lock types share one
//! harness, [`lock_torture`]: writers and readers take the lock for a set time
//! with random short holds, and inside the critical section check a shared state
//! that any mutual-exclusion failure breaks. The run prints periodic statistics
//! lines and a final `SUCCESS` or `FAILURE` per type, as locktorture does.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod broken;
mod mutex;
mod rcu;
mod seqpcpu;
mod sleeping;
mod spinlock;

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

/// Live counters a running type updates, for the periodic statistics lines.
#[derive(Default)]
pub struct Monitor {
    stop: AtomicBool,
    /// Write-side operations so far.
    pub writes: AtomicU64,
    /// Read-side operations so far.
    pub reads: AtomicU64,
    /// Failures so far.
    pub failures: AtomicU64,
}

impl Monitor {
    /// Whether the run's time is up.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Records a failure.
    pub fn fail(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
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
    v.extend(seqpcpu::types());
    v.extend(rcu::types());
    v.extend(broken::types());
    v
}

/// The result line of one type, also the JSON row.
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
    /// Failures seen.
    pub failures: u64,
    /// Seconds run.
    pub seconds: f64,
    /// Writer threads.
    pub writers: usize,
    /// Reader threads.
    pub readers: usize,
    /// min/max operations per writer thread (1.0 = perfectly fair).
    pub writer_fairness: f64,
    /// min/max operations per reader thread (1.0 when there are no readers).
    pub reader_fairness: f64,
    /// Notes from the type.
    pub notes: Vec<String>,
}

/// Runs one type with live statistics; returns its outcome.
pub fn run_one(
    t: &TortureType,
    cfg: &Config,
    stat_interval: Option<Duration>,
    quiet: bool,
) -> Outcome {
    let mon = Arc::new(Monitor::default());
    let start = Instant::now();
    let report = std::thread::scope(|s| {
        let worker = s.spawn(|| (t.run)(cfg, &mon));
        let deadline = start + cfg.duration;
        let mut next_stat = stat_interval.map(|i| start + i);
        while Instant::now() < deadline && !worker.is_finished() {
            std::thread::sleep(
                Duration::from_millis(10).min(deadline.saturating_duration_since(Instant::now())),
            );
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
        worker.join().unwrap_or_else(|_| Report {
            failures: 1,
            notes: vec!["the torture type panicked".into()],
            ..Report::default()
        })
    });
    let seconds = start.elapsed().as_secs_f64();
    let (wmin, wmax) = report.writer_min_max;
    let (rmin, rmax) = report.reader_min_max;
    Outcome {
        name: t.name.to_string(),
        verdict: if report.failures == 0 {
            "SUCCESS"
        } else {
            "FAILURE"
        },
        ops: report.writes + report.reads,
        writes: report.writes,
        reads: report.reads,
        failures: report.failures,
        seconds,
        writers: cfg.writers,
        readers: cfg.readers,
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
        notes: report.notes,
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
        let cfg = Config {
            writers: args
                .writers
                .unwrap_or(t.writers)
                .max(if t.writers > 0 { 1 } else { 0 }),
            readers: if t.readers == 0 {
                0
            } else {
                args.readers.unwrap_or(t.readers)
            },
            duration: per_type,
        };
        if let Some(b) = &bar {
            b.set_message(t.name);
        }
        let o = if let Some(b) = &bar {
            b.suspend(|| run_one(t, &cfg, stat, args.json))
        } else {
            run_one(t, &cfg, stat, args.json)
        };
        if !args.json {
            let line = format!(
                "{}-torture: {} ops {} (writes {}, reads {}) failures {} in {:.2}s, writers {} readers {}, writer fairness {:.2}",
                o.name,
                o.verdict,
                o.ops,
                o.writes,
                o.reads,
                o.failures,
                o.seconds,
                o.writers,
                o.readers,
                o.writer_fairness
            );
            match &bar {
                Some(b) => b.println(line),
                None => println!("{line}"),
            }
            for n in &o.notes {
                println!("  {n}");
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
/// with a gap in the middle, so a reader or writer that overlaps sees a mix.
pub fn writer_cs(sh: &Shared, mon: &Monitor, rng: &mut fastrand::Rng) {
    if sh.writers_in.fetch_add(1, Ordering::Relaxed) != 0
        || sh.readers_in.load(Ordering::Relaxed) != 0
    {
        mon.fail();
    }
    let v = sh.slots[0].load(Ordering::Relaxed) + 1;
    for (i, s) in sh.slots.iter().enumerate() {
        s.store(v, Ordering::Relaxed);
        if i == 1 {
            short_delay(rng);
        }
    }
    for s in &sh.slots {
        if s.load(Ordering::Relaxed) != v {
            mon.fail();
        }
    }
    sh.writers_in.fetch_sub(1, Ordering::Relaxed);
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

fn min_max(v: &[u64]) -> (u64, u64) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

/// Runs `cfg.writers` writers and `cfg.readers` readers against `lock` until the
/// monitor says stop. Each writer and reader takes the lock in a loop, with a short
/// random pause outside the lock.
pub fn lock_torture(lock: &dyn TortureLock, cfg: &Config, mon: &Monitor) -> Report {
    let shared = Shared::default();
    let (w, r) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..cfg.writers)
            .map(|i| {
                let shared = &shared;
                s.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(0x5eed + i as u64);
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        lock.write(&mut || writer_cs(shared, mon, &mut rng));
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
                    let mut rng = fastrand::Rng::with_seed(0xbeef + i as u64);
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        lock.read(&mut || reader_cs(shared, mon, &mut rng));
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
