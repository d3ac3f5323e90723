//! `ksync litmus`: memory-model litmus tests, in the kernel's C litmus format,
//! run on this CPU with ksync's own primitives.
//!
//! The Linux-kernel memory model's tests are files (`tools/memory-model/
//! litmus-tests/*.litmus` in the kernel, hundreds more in `paulmckrcu/litmus`)
//! that herd7 checks against the model and klitmus7 runs on hardware as a
//! kernel module. `ksync litmus FILE|DIR…` is a user-space klitmus: it parses
//! those files ([`parse`]: the subset the kernel's tests use), runs each
//! process as a thread on ksync's `READ_ONCE`/`WRITE_ONCE`, barriers,
//! acquire/release, atomics, `SpinLock`, RCU and SRCU ([`exec`]), many instances
//! racing at once ([`harness`]), and prints every outcome with its count beside
//! the file's `Result:` line:
//!
//! - `Never`: no execution the model allows satisfies the condition. Seeing
//!   one is a failure (a bug in ksync, the compiler or the CPU): the command
//!   exits non-zero. `Always` likewise fails on an outcome that does not
//!   satisfy it.
//! - `Sometimes`: allowed; whether this CPU shows it is reported, not judged.
//! - `DEADLOCK`: no execution completes (within the filter, if the file has
//!   one); an instance that completes and passes the filter here is a
//!   failure, a deadlock seen (a process waiting for a lock it or another
//!   holds for good, or the watchdog) or no instance passing the filter is
//!   the agreement.
//! - `Flag NAME`: herd flags a misuse (`srcu-bad-nesting` …) rather than
//!   judging; a run that faults on the misuse reproduces the flag, one that
//!   does not is "not comparable". `Never DATARACE` and the like are judged
//!   by their verdict, with herd's data-race flag noted (plain accesses run as
//!   `READ_ONCE`/`WRITE_ONCE`).
//!
//! Two processes that deadlock for real (two locks taken in opposite orders)
//! do not hang the run: a lock wait is bounded ([`harness::LOCK_TIMEOUT`]),
//! after which the test stops and reports "deadlock observed" with the rounds
//! it finished, and the run goes on to the next file. `smp_memb()` tests need
//! `membarrier(PRIVATE_EXPEDITED)`; without it they are reported "not
//! comparable" and not run.
//!
//! Without a path it runs the built-in tests ([`builtin`], the repository's
//! `ksync-cli/litmus/` files): the classic shapes (SB, MP, LB, WRC, ISA2,
//! IRIW, 2+2W, R, S, coherence) plain and with the barrier that forbids their
//! outcome, the lock tests on ksync's `SpinLock`, and the RCU tests
//! (`rcu_assign_pointer`/`rcu_dereference`, the grace-period guarantee with
//! `synchronize_rcu()` and `rcu_read_lock()`, and once with SRCU).
//!
//! On x86-64 (TSO) expect only the store-buffering kind of `Sometimes`
//! outcome (`SB+poonceonces`, `SB+rfionceonce-poonceonces`, `R+poonceonces`):
//! stores wait in the store buffer while later loads go ahead, and x86-64
//! keeps every other order; on arm64 and POWER most `Sometimes` outcomes show
//! up. Seeing `SB+poonceonces` is the proof that the harness makes the threads
//! race for real.

mod ast;
mod builtin;
mod exec;
mod harness;
mod parse;

use ast::{Litmus, Quantifier, Verdict};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `ksync litmus`.
#[derive(clap::Args, Default)]
pub struct Args {
    /// `.litmus` files, or directories searched for them (recursively);
    /// none: the built-in tests.
    pub paths: Vec<PathBuf>,
    /// Iterations per test (default: 100000 for two-process tests, 50000 for
    /// more). Tests that wait for a grace period or a system call per
    /// instance (synchronize_rcu(), synchronize_srcu(), smp_memb()) run a
    /// tenth of it, at least 1000.
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Run only this test (a full name such as `SB+fencembonceonces`, or a
    /// shape prefix such as `SB` or `MP+`).
    #[arg(long)]
    pub test: Option<String>,
    /// Print results as JSON (an array of objects).
    #[arg(long)]
    pub json: bool,
    /// Parse the tests, list them with their verdicts and conditions, and exit.
    #[arg(long)]
    pub list: bool,
}

/// Default iterations of `test`: the budget that keeps a default run of every
/// built-in test well under a minute on a 2-CPU machine.
fn default_iterations(test: &Litmus) -> u64 {
    let n = match test.procs.len() {
        2 => 100_000,
        _ => 50_000,
    };
    if test.uses_synchronize_rcu() || test.uses_memb() {
        n / 10
    } else {
        n
    }
}

/// Iterations of `test` when the user asked for `asked`: a test that waits for
/// a grace period or makes a system call per instance gets a tenth (at least
/// 1000), so that
/// `--iterations` keeps one meaning of cost across tests.
fn iterations(test: &Litmus, asked: Option<u64>) -> u64 {
    match asked {
        None => default_iterations(test),
        Some(n) if test.uses_synchronize_rcu() || test.uses_memb() => (n / 10).max(1000).min(n),
        Some(n) => n,
    }
}

/// One test's result, as printed with `--json`.
#[derive(serde::Serialize)]
struct JsonResult {
    test: String,
    source: String,
    threads: usize,
    iterations: u64,
    /// The final condition, as written.
    condition: String,
    /// Its quantifier. The `Result:` line judges the proposition under it
    /// whatever it is (herd's "Observation"), so this is for the reader.
    quantifier: Quantifier,
    /// The `Result:` line (null when the file has none).
    model: Option<Verdict>,
    /// How many instances satisfied the condition's proposition.
    observed: u64,
    /// How many instances the filter kept (all when there is no filter).
    kept: u64,
    /// Instances left out because they would deadlock (a process waiting for
    /// a lock another never releases: herd has no such execution).
    deadlocked: u64,
    /// Instances left out because an `srcu_up_read()` ended no section.
    unmatched: u64,
    /// False when a `Never` outcome was seen (or an `Always` one missed, or a
    /// process faulted, or a `DEADLOCK` test completed an instance).
    ok: bool,
    /// The verdict in words (`ok`, `not comparable: …`, `deadlock observed …`).
    verdict: String,
    /// The watchdog stopped the test: a lock wait ran past its bound.
    watchdog: bool,
    /// herd's flag on the `Result:` line (`data-race`, a `Flag` name).
    flag: Option<String>,
    /// A process's fault, if one happened.
    fault: Option<String>,
    millis: u128,
    /// Every outcome seen, with its count.
    outcomes: Vec<(String, u64)>,
}

/// A test's source text and its name for messages.
struct Source {
    name: String,
    text: String,
}

/// Every `.litmus` file under `path` (itself if a file), sorted.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "litmus") {
                collect(&e, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn sources(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    if paths.is_empty() {
        return Ok(builtin::FILES
            .iter()
            .map(|(name, text)| Source {
                name: format!("builtin:{name}"),
                text: text.to_string(),
            })
            .collect());
    }
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    files
        .into_iter()
        .map(|f| {
            std::fs::read_to_string(&f)
                .map(|text| Source {
                    name: f.display().to_string(),
                    text,
                })
                .map_err(|e| format!("{}: {e}", f.display()))
        })
        .collect()
}

/// The tests `pattern` names: the one with that exact name, else every test of
/// that shape (`SB` or `SB+` selects all `SB+…`).
fn selected(all: Vec<Litmus>, pattern: Option<&str>) -> Vec<Litmus> {
    let Some(p) = pattern else { return all };
    if all.iter().any(|t| t.name == p) {
        return all.into_iter().filter(|t| t.name == p).collect();
    }
    let shape = p.strip_suffix('+').unwrap_or(p);
    all.into_iter()
        .filter(|t| t.name.split('+').next() == Some(shape))
        .collect()
}

/// The verdict of a run: how many kept instances satisfied the proposition,
/// how many were kept, whether that agrees with the `Result:` line, and why.
struct Judged {
    observed: u64,
    kept: u64,
    ok: bool,
    verdict: String,
}

fn judge(t: &Litmus, out: &harness::Outcome) -> Judged {
    let mut observed = 0;
    let mut kept = 0;
    for (values, n) in &out.counts {
        if t.filter.as_ref().is_some_and(|f| !f.eval(values)) {
            continue;
        }
        kept += n;
        if t.prop.eval(values) {
            observed += n;
        }
    }
    let flag = t.flag.as_deref().unwrap_or("?");
    let deadlock_seen = out.watchdog || out.deadlocked > 0;
    let (ok, verdict) = match (t.expected, &out.fault) {
        (Some(Verdict::Flag), Some(f)) => (
            true,
            format!("flag reproduced: herd flags {flag}, ksync faulted: {f}"),
        ),
        (Some(Verdict::Flag), None) => (
            true,
            format!("not comparable: herd flags {flag}; the run hit no misuse"),
        ),
        (_, Some(f)) => (false, format!("FAULT: {f}")),
        (Some(Verdict::Deadlock), None) if kept > 0 => (
            false,
            format!("{kept} INSTANCES COMPLETED, WHERE THE MODEL SAYS EVERY EXECUTION DEADLOCKS"),
        ),
        (Some(Verdict::Deadlock), None) if deadlock_seen => {
            (true, "ok: deadlock observed, as the model says".into())
        }
        // herd's DEADLOCK with a filter (the kernel's RM-broken): no
        // execution completes within it.
        (Some(Verdict::Deadlock), None) => (
            true,
            "ok: no instance completed within the filter, as the model says".into(),
        ),
        (Some(Verdict::Never), None) if observed > 0 => (false, "FORBIDDEN OUTCOME SEEN".into()),
        (Some(Verdict::Always), None) if observed < kept => {
            (false, "AN OUTCOME THE MODEL FORBIDS WAS SEEN".into())
        }
        (_, None) if out.watchdog => (
            true,
            format!(
                "not comparable: deadlock observed (a lock wait passed the {} s watchdog); \
                 judged on the {} instances before it",
                harness::LOCK_TIMEOUT.as_secs(),
                out.iterations
            ),
        ),
        (None, None) => (true, "no Result: line to judge by".into()),
        (Some(_), None) => (true, "ok".into()),
    };
    let verdict = if t.flag.is_some() && t.expected != Some(Verdict::Flag) {
        format!("{verdict} (herd also flags a {flag}: plain accesses ran as READ_ONCE/WRITE_ONCE)")
    } else {
        verdict
    };
    Judged {
        observed,
        kept,
        ok,
        verdict,
    }
}

/// The result of a test that was not run: `smp_memb()` without membarrier.
fn not_run(t: &Litmus) -> Option<String> {
    (t.uses_memb() && !ksync::arch::membarrier::is_expedited()).then(|| {
        "not comparable: smp_memb() orders only through membarrier(PRIVATE_EXPEDITED), \
         which this system does not offer (not run)"
            .to_string()
    })
}

/// Runs the tests; returns false if a forbidden outcome was observed, a file
/// did not parse, a process faulted, or no test matched `--test`.
pub fn main(args: Args) -> bool {
    let sources = match sources(&args.paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ksync litmus: {e}");
            return false;
        }
    };
    let mut ok = true;
    let mut all = Vec::new();
    for s in &sources {
        match parse::parse(&s.text, &s.name) {
            Ok(t) => all.push(t),
            Err(e) => {
                eprintln!("ksync litmus: {}: {e}", s.name);
                ok = false;
            }
        }
    }
    if args.list {
        for t in &all {
            let model = t.expected.map_or("-".to_string(), |v| format!("{v:?}"));
            println!("{:<52} {:<9} {}", t.name, model, t.condition);
        }
        return ok;
    }
    let tests = selected(all, args.test.as_deref());
    if tests.is_empty() {
        eprintln!(
            "ksync litmus: no test matches {:?} (see --list)",
            args.test.unwrap_or_default()
        );
        return false;
    }
    let start = Instant::now();
    let mut json = Vec::new();
    if !args.json {
        println!(
            "ksync litmus: {} tests on {} CPUs; a Never outcome seen is a failure",
            tests.len(),
            ksync::arch::online_cpus()
        );
        if cfg!(target_arch = "x86_64") {
            println!(
                "x86-64 is TSO: of the Sometimes outcomes expect only the store-buffering kind (SB, R …)"
            );
        }
    }
    // Progress on a terminal (stderr), a test at a time; hidden otherwise.
    let bar = indicatif::ProgressBar::new(tests.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .expect("valid template"),
    );
    for t in &tests {
        bar.set_message(t.name.clone());
        let out = match not_run(t) {
            Some(why) => harness::Outcome::not_run(why),
            None => harness::run(t, iterations(t, args.iterations)),
        };
        bar.inc(1);
        let mut j = judge(t, &out);
        if let Some(why) = &out.not_run {
            j.verdict = why.clone();
            j.ok = true;
        }
        ok &= j.ok;
        if args.json {
            json.push(JsonResult {
                test: t.name.clone(),
                source: t.source.clone(),
                threads: t.procs.len(),
                iterations: out.iterations,
                condition: t.condition.clone(),
                quantifier: t.quantifier,
                model: t.expected,
                observed: j.observed,
                kept: j.kept,
                deadlocked: out.deadlocked,
                unmatched: out.unmatched,
                ok: j.ok,
                verdict: j.verdict.clone(),
                watchdog: out.watchdog,
                flag: t.flag.clone(),
                fault: out.fault.clone(),
                millis: out.elapsed.as_millis(),
                outcomes: out
                    .counts
                    .iter()
                    .map(|(v, n)| (t.format_outcome(v), *n))
                    .collect(),
            });
            continue;
        }
        let seen = if j.observed > 0 { "seen" } else { "not seen" };
        let verdict = &j.verdict;
        let model = t.expected.map_or("-".into(), |v| format!("{v:?}"));
        let mut text = String::new();
        let _ = writeln!(
            text,
            "\n{}  ({} threads, {} iterations, {} ms)\n  {}: Result {model}, {seen} {}/{}  -> {verdict}",
            t.name,
            t.procs.len(),
            out.iterations,
            out.elapsed.as_millis(),
            t.condition,
            j.observed,
            j.kept,
        );
        if out.unmatched > 0 {
            let _ = writeln!(
                text,
                "    {:>9}  (an srcu_up_read() ended no section: left out)",
                out.unmatched
            );
        }
        if out.deadlocked > 0 {
            let _ = writeln!(
                text,
                "    {:>9}  (deadlocked: a lock never released was waited for; left out)",
                out.deadlocked
            );
        }
        for (values, n) in &out.counts {
            let filtered = t.filter.as_ref().is_some_and(|f| !f.eval(values));
            let mark = if filtered {
                " (filtered out)"
            } else if t.prop.eval(values) {
                " *"
            } else {
                ""
            };
            let _ = writeln!(text, "    {:>9}  {}{}", n, t.format_outcome(values), mark);
        }
        bar.suspend(|| print!("{text}"));
    }
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("serializing litmus results")
        );
    } else {
        println!(
            "\n{} in {:.1} s",
            if ok {
                "SUCCESS: no forbidden outcome seen"
            } else {
                "FAILURE: a forbidden outcome was seen, a test faulted or a file did not parse"
            },
            start.elapsed().as_secs_f64()
        );
    }
    ok
}
