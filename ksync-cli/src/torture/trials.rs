//! `ksync torture --trials N`: how soon a type fails, with and without faults.
//!
//! Each selected type runs `N` times with the `--faults` given and `N` times
//! without, alternating (so a change in the machine's load meanwhile falls on
//! both sides alike), each run ending at its first failure or after
//! `--duration`. The result is the median time to the first failure each way:
//! the measure of the claim that faults find a broken lock sooner
//! (`broken_lock`). A run that did not fail counts as "later than the
//! duration", which is how it enters the median.

use super::{Args, TortureType, faults::FaultSet, run_one, type_config};
use serde::Serialize;
use std::time::Duration;

/// One side of the comparison, also the JSON row's halves.
#[derive(Serialize, Debug)]
struct Side {
    /// The faults injected ("" for none).
    faults: String,
    /// Each run's time to its first failure in ms; `null`: none within the duration.
    first_failure_ms: Vec<Option<f64>>,
    /// The runs that failed.
    failed: usize,
    /// The median time to the first failure in ms; `null` when most runs did
    /// not fail within the duration.
    median_ms: Option<f64>,
}

impl Side {
    fn new(faults: FaultSet) -> Self {
        Side {
            faults: faults.names(),
            first_failure_ms: Vec::new(),
            failed: 0,
            median_ms: None,
        }
    }

    fn finish(&mut self) {
        self.failed = self.first_failure_ms.iter().flatten().count();
        let mut v: Vec<f64> = self
            .first_failure_ms
            .iter()
            .map(|t| t.unwrap_or(f64::INFINITY))
            .collect();
        v.sort_by(f64::total_cmp);
        self.median_ms = median(&v).filter(|m| m.is_finite());
    }

    fn describe(&self, duration: Duration) -> String {
        let median = match self.median_ms {
            Some(m) => format!("{m:.1} ms"),
            None => format!("over {:.1} s", duration.as_secs_f64()),
        };
        format!(
            "median {median} ({} of {} runs failed)",
            self.failed,
            self.first_failure_ms.len()
        )
    }
}

/// The median of sorted `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> Option<f64> {
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[derive(Serialize, Debug)]
struct Row {
    #[serde(rename = "type")]
    name: String,
    trials: usize,
    duration_s: f64,
    with_faults: Side,
    without_faults: Side,
}

/// Runs the trials; returns false only when they could not run (no faults to
/// compare with, or no trials).
pub fn main(
    selected: &[&TortureType],
    args: &Args,
    n: usize,
    duration: Duration,
    faults: FaultSet,
    stall: Duration,
) -> bool {
    if n == 0 {
        eprintln!("ksync torture: --trials needs at least one trial");
        return false;
    }
    if faults == FaultSet::default() {
        eprintln!(
            "ksync torture: --trials compares runs with --faults and without: name the faults"
        );
        return false;
    }
    let mut rows = Vec::new();
    for t in selected {
        let (mut with, mut without) = (Side::new(faults), Side::new(FaultSet::default()));
        for i in 0..n {
            // Alternate which side goes first.
            let order = if i % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for faulted in order {
                let mut cfg = type_config(t, args, duration, FaultSet::default(), stall);
                if faulted {
                    cfg.faults = faults;
                }
                cfg.stop_at_first_failure = true;
                let o = run_one(t, &cfg, None, true);
                let side = if faulted { &mut with } else { &mut without };
                side.first_failure_ms.push(o.first_failure_ms);
            }
            if !args.json {
                eprint!("\r{}-torture: trial {}/{n}", t.name, i + 1);
            }
        }
        with.finish();
        without.finish();
        if !args.json {
            eprintln!();
            println!(
                "{}-torture: first failure, {n} trials each way of at most {:.1} s: with --faults {}: {}; without: {}",
                t.name,
                duration.as_secs_f64(),
                with.faults,
                with.describe(duration),
                without.describe(duration)
            );
        }
        rows.push(Row {
            name: t.name.to_string(),
            trials: n,
            duration_s: duration.as_secs_f64(),
            with_faults: with,
            without_faults: without,
        });
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("serialisable")
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts_and_of_runs_that_did_not_fail() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, 2.0, 9.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), Some(3.0));
        // Most runs did not fail: the median is past the duration.
        assert_eq!(
            median(&[1.0, f64::INFINITY, f64::INFINITY]),
            Some(f64::INFINITY)
        );
    }
}
