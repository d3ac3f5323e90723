//! `ksync torture` end to end: the binary's verdict and exit status.

use std::process::Command;

fn ksync(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ksync"))
        .args(args)
        .output()
        .expect("run ksync")
}

#[test]
fn spinlock_types_succeed_and_exit_zero() {
    let out = ksync(&[
        "torture",
        "--type",
        "spin_lock,spin_lock_irqsave,raw_spin_lock,mcs,qrw_lock,rw_lock",
        "--duration",
        "0.3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit status {:?}\n{stdout}",
        out.status
    );
    assert!(stdout.contains("spin_lock-torture: SUCCESS"), "{stdout}");
    assert!(stdout.contains("ksync torture: SUCCESS"), "{stdout}");
    assert!(!stdout.contains("FAILURE"), "{stdout}");
}

#[test]
fn broken_lock_fails_with_nonzero_exit() {
    // With irqs, whose handler barges into the held lock: found at once (a
    // steady run without faults finds the racy fast path only now and then).
    let out = ksync(&[
        "torture",
        "--type",
        "broken_lock",
        "--duration",
        "0.3",
        "--faults",
        "irqs",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a non-excluding lock must fail\n{stdout}"
    );
    assert!(stdout.contains("FAILURE"), "{stdout}");
}

#[test]
fn json_rows_carry_the_verdict() {
    let out = ksync(&[
        "torture",
        "--type",
        "ticket,broken_lock",
        "--duration",
        "0.3",
        "--faults",
        "irqs",
        "--json",
    ]);
    assert!(!out.status.success(), "broken_lock makes the run fail");
    let rows: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is a JSON array");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    let by = |name: &str| {
        rows.iter()
            .find(|r| r["type"] == name)
            .unwrap_or_else(|| panic!("no row for {name}"))
    };
    assert_eq!(by("ticket")["verdict"], "SUCCESS");
    assert_eq!(by("ticket")["failures"], 0);
    assert!(by("ticket")["ops"].as_u64().unwrap() > 0);
    assert_eq!(by("broken_lock")["verdict"], "FAILURE");
    assert!(by("broken_lock")["failures"].as_u64().unwrap() > 0);
    assert!(by("broken_lock")["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn every_fault_source_runs_and_prints_its_counters() {
    let out = ksync(&[
        "torture",
        "--type",
        "spin_lock_irqsave,spin_lock_bh,mutex,rwsem,sem",
        "--duration",
        "0.5",
        "--stat-interval",
        "0",
        "--faults",
        "all",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit status {:?}\n{stdout}",
        out.status
    );
    for source in [
        "stutter: ",
        "shuffle: ",
        "onoff: ",
        "signals: ",
        "irqs: ",
        "long-hold: ",
        "nested: ",
    ] {
        assert_eq!(
            stdout.matches(source).count(),
            5,
            "one {source:?} line per type\n{stdout}"
        );
    }
    // The handlers took the irq-safe lock, and the tasklet the bh lock.
    let count_before = |line_start: &str, what: &str| -> u64 {
        let line = stdout
            .lines()
            .skip_while(|l| !l.starts_with(line_start))
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} after {line_start:?}\n{stdout}"));
        let at = line.find(what).unwrap();
        line[..at]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(count_before("spin_lock_irqsave-torture: Writes", " irq-safe lock takes") > 0);
    assert!(count_before("spin_lock_bh-torture: Writes", " bh lock takes") > 0);
    assert!(stdout.contains("ksync torture: SUCCESS"), "{stdout}");
}

/// The rwlock types whose irq handlers read-lock them: the handlers did (in
/// the middle of task-context readers and of writers' claims on the same
/// threads), and nothing overlapped a writer.
#[test]
fn irq_handlers_read_lock_the_irq_rwlocks() {
    let out = ksync(&[
        "torture",
        "--type",
        "rw_lock_irq,qrw_lock_irq",
        "--duration",
        "0.5",
        "--stat-interval",
        "0",
        "--faults",
        "irqs",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for t in ["rw_lock_irq", "qrw_lock_irq"] {
        let line = stdout
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{t}-torture: Writes")))
            .find(|l| l.contains(" read locks in the handler"))
            .unwrap_or_else(|| panic!("no irqs line for {t}\n{stdout}"));
        let reads: u64 = line
            .split(" read locks in the handler")
            .next()
            .and_then(|s| s.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {line:?}"));
        assert!(reads > 0, "{t}: no read lock in the handler\n{stdout}");
        assert!(
            stdout.contains(&format!("{t}-torture: SUCCESS")),
            "{stdout}"
        );
    }
}

#[test]
fn one_output_format_for_every_type() {
    let out = ksync(&[
        "torture",
        "--type",
        "rwsem,completion,seqlock,rcu",
        "--duration",
        "0.3",
        "--stat-interval",
        "0",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for t in ["rwsem", "completion", "seqlock", "rcu"] {
        for line in [
            "-torture: Writes:  Total: ",
            "-torture: Reads :  Total: ",
            "-torture: Shares: writers ",
            "-torture: Longest wait: writers ",
            "-torture: SUCCESS",
        ] {
            assert!(
                stdout.contains(&format!("{t}{line}")),
                "no {t}{line:?}\n{stdout}"
            );
        }
    }
}

#[test]
fn json_rows_carry_waits_and_shares() {
    let out = ksync(&["torture", "--type", "rwsem", "--duration", "0.3", "--json"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let row = &rows[0];
    let f = |k: &str| {
        row[k]
            .as_f64()
            .unwrap_or_else(|| panic!("no number {k}: {row}"))
    };
    assert!(f("max_wait_ms") >= 0.0);
    assert!(f("max_wait_ms") >= f("reader_max_wait_ms"));
    assert!(f("max_wait_ms") >= f("writer_max_wait_ms"));
    assert!(
        (f("writer_share") + f("reader_share") - 1.0).abs() < 1e-9,
        "{row}"
    );
    let threads = row["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 6, "2 writers and 4 readers: {row}");
    assert_eq!(threads.iter().filter(|t| t["role"] == "reader").count(), 4);
    assert_eq!(row["stalls"], 0);
}

#[test]
fn a_wait_past_the_stall_limit_fails_the_type() {
    let out = ksync(&[
        "torture",
        "--type",
        "stuck_lock",
        "--duration",
        "0.3",
        "--stall",
        "0.5",
        "--json",
    ]);
    assert!(!out.status.success(), "a stall must fail the run");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["verdict"], "FAILURE");
    assert!(rows[0]["stalls"].as_u64().unwrap() >= 1, "{}", rows[0]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("STALL: "));
}

#[test]
fn broken_lock_fails_under_faults_too() {
    let out = ksync(&[
        "torture",
        "--type",
        "broken_lock",
        "--duration",
        "0.3",
        "--faults",
        "irqs,shuffle",
        "--json",
    ]);
    assert!(!out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["verdict"], "FAILURE");
    assert!(rows[0]["first_failure_ms"].as_f64().is_some());
}

#[test]
fn unknown_faults_are_refused() {
    let out = ksync(&["torture", "--faults", "stutter,gremlins"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown fault \"gremlins\""), "{stderr}");
}

#[test]
fn ww_mutex_type_succeeds_and_counts_back_offs() {
    let out = ksync(&[
        "torture",
        "--type",
        "ww_mutex",
        "--duration",
        "0.5",
        "--stat-interval",
        "0",
        "--faults",
        "signals,long-hold",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "ww_mutex-torture: Writes:  Total: ",
        "back-offs (-EDEADLK): ",
        "modes: inorder ",
        "ww_mutex-torture: SUCCESS",
    ] {
        assert!(stdout.contains(line), "no {line:?}\n{stdout}");
    }
}

#[test]
fn rt_mutex_and_percpu_rwsem_pass_under_every_fault() {
    let out = ksync(&[
        "torture",
        "--type",
        "rt_mutex,percpu_rwsem",
        "--duration",
        "0.5",
        "--stat-interval",
        "0",
        "--faults",
        "all",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for t in ["rt_mutex", "percpu_rwsem"] {
        for line in ["-torture: Writes:  Total: ", "-torture: SUCCESS"] {
            assert!(
                stdout.contains(&format!("{t}{line}")),
                "no {t}{line:?}\n{stdout}"
            );
        }
    }
    // The ABBA pair ran and the kernel answered -EDEADLK (or, in the lockdep
    // build, the mode says why it did not run).
    let abba = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("ABBA: "))
        .map(|l| l.split(' ').next().unwrap().parse::<u64>().unwrap());
    assert!(
        abba.is_some_and(|rounds| rounds > 0) || stdout.contains("ABBA mode skipped"),
        "{stdout}"
    );
    assert!(stdout.contains(", 0 lost wake-ups"), "{stdout}");
    assert!(stdout.contains("short-lived reader threads"), "{stdout}");
}
