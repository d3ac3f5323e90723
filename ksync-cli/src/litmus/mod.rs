//! `ksync litmus`: memory-model litmus tests run on this CPU.
//!
//! Each test is a classic pattern (SB, MP, LB, WRC, ISA2, IRIW, 2+2W, R, S and
//! the coherence tests; the lock-based MP, LB, ISA2 and Z6.0 tests on ksync's
//! own [`SpinLock`](ksync::spinlock::SpinLock); the `rcu_assign_pointer` /
//! `rcu_dereference` address-dependency test) run many times with its threads racing (see
//! [`harness`] for how). For each, the run prints every outcome with its count,
//! the Linux-kernel memory model's verdict for the interesting outcome — `Never`
//! (forbidden) or `Sometimes` (allowed) — and how often this CPU showed it. A
//! `Never` outcome that shows up is a failure: the command exits non-zero.
//!
//! On x86-64 (TSO) expect `SB+poonceonces`, `SB+rfionceonce-poonceonces` and
//! `R+poonceonces` to be seen — stores wait in the store buffer while later
//! loads go ahead — and no other
//! `Sometimes` outcome, since x86-64 keeps every other order; on arm64 and
//! POWER most `Sometimes` outcomes show up. Seeing `SB+poonceonces` is the
//! proof that the harness makes the threads race for real.
//!
//! The lock tests check what `spin_lock`/`spin_unlock` promise beyond mutual
//! exclusion: an acquisition is an acquire and a release a release
//! (`MP+polocks`, `MP+porevlocks`), an unlock followed by a lock orders the two
//! critical sections even for different locks
//! (`LB+unlocklockonceonce+poacquireonce`), and `smp_mb__after_spinlock()`
//! makes critical sections of one lock appear in order to a thread that does
//! not take it (`Z6.0+pooncelock+poonceLock+pombonce`, Never; without it,
//! `Z6.0+pooncelock+pooncelock+pombonce` is Sometimes — though not on x86-64,
//! where the acquisition's locked instruction is already a full barrier);
//! the `…silsil` pair asks the same of an observer that senses the lock with
//! `spin_is_locked()`.

mod harness;
mod tests;

use harness::{Test, Verdict};
use std::time::Instant;

/// Options of `ksync litmus`.
#[derive(clap::Args, Default)]
pub struct Args {
    /// Iterations per test (default: 100000 for two-thread tests, 50000 for
    /// three and four threads).
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Run only this test (a full name such as `SB+fencembonceonces`, or a
    /// shape prefix such as `SB` or `MP+`).
    #[arg(long)]
    pub test: Option<String>,
    /// Print results as JSON (an array of objects).
    #[arg(long)]
    pub json: bool,
    /// List the tests with their verdicts and exit.
    #[arg(long)]
    pub list: bool,
}

/// Default iterations of a test with `threads` threads: the budget that keeps a
/// default run of every test well under a minute on a 2-CPU machine.
fn default_iterations(threads: usize) -> u64 {
    match threads {
        2 => 100_000,
        _ => 50_000,
    }
}

/// One test's result, as printed with `--json`.
#[derive(serde::Serialize)]
struct JsonResult {
    test: &'static str,
    about: &'static str,
    threads: usize,
    iterations: u64,
    /// The interesting outcome (herd's `exists` clause).
    exists: String,
    /// How many times it was seen.
    observed: u64,
    /// The LKMM's verdict for it.
    model: Verdict,
    /// False when a `Never` outcome was seen.
    ok: bool,
    millis: u128,
    /// Every outcome seen, with its count.
    outcomes: Vec<(String, u64)>,
}

/// The tests `pattern` names: the one with that exact name, else every test of
/// that shape (`SB` or `SB+` selects all `SB+…`).
fn selected(all: Vec<Test>, pattern: Option<&str>) -> Vec<Test> {
    let Some(p) = pattern else { return all };
    if all.iter().any(|t| t.name == p) {
        return all.into_iter().filter(|t| t.name == p).collect();
    }
    let shape = p.strip_suffix('+').unwrap_or(p);
    all.into_iter()
        .filter(|t| t.name.split('+').next() == Some(shape))
        .collect()
}

/// Runs the tests; returns false if a forbidden outcome was observed (or no
/// test matched `--test`).
pub fn main(args: Args) -> bool {
    let all = tests::all();
    if args.list {
        for t in &all {
            println!("{:<52} {:<9} {}", t.name, format!("{:?}", t.model), t.about);
        }
        return true;
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
    let mut ok = true;
    let mut json = Vec::new();
    if !args.json {
        println!(
            "ksync litmus: {} tests on {} CPUs; a Never outcome seen is a failure",
            tests.len(),
            ksync::arch::online_cpus()
        );
    }
    for t in &tests {
        let iterations = args
            .iterations
            .unwrap_or_else(|| default_iterations(t.threads.len()));
        let out = harness::run(t, iterations);
        let test_ok = !(t.model == Verdict::Never && out.observed > 0);
        ok &= test_ok;
        if args.json {
            json.push(JsonResult {
                test: t.name,
                about: t.about,
                threads: t.threads.len(),
                iterations: out.iterations,
                exists: t.format_outcome(t.exists),
                observed: out.observed,
                model: t.model,
                ok: test_ok,
                millis: out.elapsed.as_millis(),
                outcomes: out
                    .counts
                    .iter()
                    .map(|(v, n)| (t.format_outcome(v), *n))
                    .collect(),
            });
        } else {
            let seen = if out.observed > 0 { "seen" } else { "not seen" };
            let verdict = if test_ok {
                "ok"
            } else {
                "FORBIDDEN OUTCOME SEEN"
            };
            println!(
                "\n{}  ({} threads, {} iterations, {} ms)\n  exists ({}): model {:?}, {} {}/{}  -> {}",
                t.name,
                t.threads.len(),
                out.iterations,
                out.elapsed.as_millis(),
                t.format_outcome(t.exists),
                t.model,
                seen,
                out.observed,
                out.iterations,
                verdict
            );
            for (values, n) in &out.counts {
                let mark = if values.as_slice() == t.exists {
                    " *"
                } else {
                    ""
                };
                println!("    {:>9}  {}{}", n, t.format_outcome(values), mark);
            }
        }
    }
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
                "FAILURE: a forbidden outcome was seen"
            },
            start.elapsed().as_secs_f64()
        );
    }
    ok
}
