//! `ksync lockstat` and `ksync lockdep-demo --stat` end to end: the table
//! comes out on stdout, in `/proc/lock_stat`'s shape, and the exit status is
//! the run's verdict. Without the `lockdep` feature both refuse (exit 1).

use std::process::Command;

fn ksync(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ksync"))
        .args(args)
        .output()
        .expect("run ksync")
}

/// The header and column line of the table, then the class rows.
#[cfg(feature = "lockdep")]
fn assert_table(stdout: &str) {
    let at = stdout
        .find("lock_stat version 0.4\n")
        .unwrap_or_else(|| panic!("no table in\n{stdout}"));
    let head = stdout[at..].lines().nth(2).expect("a column line");
    assert!(
        head.trim_start()
            .starts_with("class name    con-bounces    contentions"),
        "{head}"
    );
}

#[cfg(feature = "lockdep")]
#[test]
fn lockstat_runs_the_torture_then_prints_the_table() {
    let out = ksync(&[
        "lockstat",
        "--type",
        "mutex",
        "--duration",
        "0.3",
        "--stat-interval",
        "0",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}\n{stdout}", out.status);
    assert!(stdout.contains("mutex-torture: SUCCESS"), "{stdout}");
    assert_table(&stdout);
    // The torture's mutex is counted: a row named after its class.
    assert!(stdout.contains("mutex@"), "{stdout}");
}

#[cfg(feature = "lockdep")]
#[test]
fn lockdep_demo_stat_counts_its_certain_contention() {
    let out = ksync(&["lockdep-demo", "--stat"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert_table(&stdout);
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("demo_stat_handoff@"))
        .unwrap_or_else(|| panic!("no row for the hand-off mutex in\n{stdout}"));
    // class, con-bounces, contentions, ...: exactly one contention.
    assert_eq!(row.split_whitespace().nth(2), Some("1"), "{row}");
}

#[cfg(not(feature = "lockdep"))]
#[test]
fn without_lockdep_both_refuse() {
    for args in [
        &["lockstat", "--type", "mutex"][..],
        &["lockdep-demo", "--stat"],
    ] {
        let out = ksync(args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("built without lockdep"), "{stderr}");
    }
}
