//! `ksync bench`: each ksync primitive against the user-space peers people use
//! instead, side by side in one run, reported as ratios.
//!
//! A group ([`Group`]) measures one family of primitives in a few scenarios
//! (uncontended, 2 threads, 8 threads on this machine …) and pushes one [`Row`]
//! per implementation. The table prints, for each scenario, every row's
//! throughput and its ratio to the best peer (an implementation whose name does
//! not start with `ksync`). `--json` prints the rows; `--chart FILE` draws them.
//! The wake-up rows add a column, `cpu ns/op each`: the CPU time that the
//! pinging thread and its partner each spend per round trip. Threaded rows
//! measured in turns add `line rt ns`: the shortest and longest time a cache
//! line took to go between two threads and back, measured before and after
//! the scenario. On a 2-vCPU VM about 65 ns means the two vCPUs ran as
//! hyperthreads of one core, 300–380 ns two cores, and thousands a busy
//! machine: a contended row's figures follow.
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
use std::sync::atomic::{AtomicBool, Ordering};
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
mod turns;

pub use turns::{Interleaved, ThreadedTurns};

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
    /// For threaded scenarios measured in turns: the lowest and the highest
    /// time a cache line took to go between two threads and back (ns),
    /// measured before and after the scenario (over all rounds, once merged).
    /// On a VM it shows where the host ran the vCPUs: two hyperthreads of one
    /// core (some 65 ns on a 2-vCPU EPYC VM) or two cores (300–380 ns), and a
    /// contended lock's throughput follows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_round_trip_ns: Option<[f64; 2]>,
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
                line_round_trip_ns: None,
            };
        }
        if el < cfg.duration / 100 {
            batch *= 2;
        }
    }
}

/// `n` spin-loop hints: work that takes a little time and touches no memory
/// (the work inside and between the sections of the "with work" rows).
pub fn pauses(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// The fairness of a threaded row: the fewest operations one thread ran over
/// the most (0 when none ran any).
pub fn fairness(counts: &[u64]) -> f64 {
    let min = counts.iter().min().copied().unwrap_or(0);
    let max = counts.iter().max().copied().unwrap_or(0);
    if max == 0 {
        0.0
    } else {
        min as f64 / max as f64
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
    Row {
        group: group.into(),
        scenario: scenario.into(),
        impl_name: impl_name.into(),
        threads,
        ops_per_sec: total as f64 / secs,
        ns_per_op: secs * 1e9 * threads as f64 / total.max(1) as f64,
        fairness: Some(fairness(&counts)),
        cpu_ns_per_side: None,
        line_round_trip_ns: None,
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
    // The line round-trip column only where some row has it (threaded rows
    // measured in turns).
    let rtt_column = rows.iter().any(|r| r.line_round_trip_ns.is_some());
    let rtt_cell = |r: Option<&Row>| match r {
        _ if !rtt_column => String::new(),
        None => format!(" {:>14}", "line rt ns"),
        Some(r) => format!(
            " {:>14}",
            r.line_round_trip_ns
                .map_or("-".into(), |[lo, hi]| format!("{lo:.0}-{hi:.0}"))
        ),
    };
    println!(
        "{:<12} {:<22} {:>3}  {:<34} {:>14} {:>10} {:>9} {:>8}{}{}",
        "group",
        "scenario",
        "thr",
        "impl",
        "ops/s",
        "ns/op",
        "fairness",
        "vs best",
        cpu_cell(None),
        rtt_cell(None)
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
                "{:<12} {:<22} {:>3}  {:<34} {:>14.0} {:>10.2} {:>9} {:>8}{}{}",
                r.group,
                r.scenario,
                r.threads,
                r.impl_name,
                r.ops_per_sec,
                r.ns_per_op,
                fair,
                ratio,
                cpu_cell(Some(r)),
                rtt_cell(Some(r))
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
            // The line round trips: the lowest and highest any round saw.
            let rtt: Vec<[f64; 2]> = same.iter().filter_map(|r| r.line_round_trip_ns).collect();
            Row {
                ops_per_sec: median(same.iter().map(|r| r.ops_per_sec).collect()),
                ns_per_op: median(same.iter().map(|r| r.ns_per_op).collect()),
                fairness: (!fair.is_empty()).then(|| median(fair)),
                cpu_ns_per_side: (!cpu.is_empty()).then(|| {
                    (0..sides)
                        .map(|i| median(cpu.iter().map(|v| v[i]).collect()))
                        .collect()
                }),
                line_round_trip_ns: (!rtt.is_empty()).then(|| {
                    [
                        rtt.iter().map(|v| v[0]).fold(f64::INFINITY, f64::min),
                        rtt.iter().map(|v| v[1]).fold(0.0, f64::max),
                    ]
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
            line_round_trip_ns: None,
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

    #[test]
    fn fairness_is_the_fewest_operations_over_the_most() {
        assert_eq!(fairness(&[50, 100, 80]), 0.5);
        assert_eq!(fairness(&[7, 7]), 1.0);
        assert_eq!(fairness(&[0, 0]), 0.0);
        assert_eq!(fairness(&[]), 0.0);
    }

    /// The line round trips merge to the lowest and the highest any round
    /// saw (whether the host moved the vCPUs during the measurement), not a
    /// median; rows without them stay without them.
    #[test]
    fn medians_merge_line_round_trips_to_their_range() {
        let with_rtt = |ops, rtt: [f64; 2]| Row {
            line_round_trip_ns: Some(rtt),
            ..row("a", ops, None)
        };
        let m = medians(vec![
            vec![with_rtt(1.0, [35.0, 40.0]), row("b", 1.0, None)],
            vec![with_rtt(2.0, [33.0, 180.0]), row("b", 2.0, None)],
            vec![with_rtt(3.0, [36.0, 36.0]), row("b", 3.0, None)],
        ]);
        assert_eq!(m[0].line_round_trip_ns, Some([33.0, 180.0]));
        assert_eq!(m[1].line_round_trip_ns, None);
    }
}
