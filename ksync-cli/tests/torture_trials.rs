//! `ksync torture --trials N`: runs each way, each ending at its first
//! failure, and the medians.

use std::process::Command;

fn ksync(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ksync"))
        .args(args)
        .output()
        .expect("run ksync")
}

#[test]
fn trials_run_each_way_and_stop_at_the_first_failure() {
    // irqs: the handler barges into the held lock, so every faulted run fails
    // within milliseconds and ends there instead of running its second.
    let out = ksync(&[
        "torture",
        "--type",
        "broken_lock",
        "--faults",
        "irqs",
        "--trials",
        "3",
        "--duration",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let row = &rows[0];
    assert_eq!(row["type"], "broken_lock");
    assert_eq!(row["trials"], 3);
    let with = &row["with_faults"];
    assert_eq!(with["faults"], "irqs");
    assert_eq!(row["without_faults"]["faults"], "");
    let times = with["first_failure_ms"].as_array().unwrap();
    assert_eq!(times.len(), 3);
    assert_eq!(
        row["without_faults"]["first_failure_ms"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(with["failed"], 3, "{row}");
    for t in times {
        // Failed within the second the run was given.
        assert!(t.as_f64().unwrap() < 1000.0, "{row}");
    }
    assert!(with["median_ms"].as_f64().is_some(), "{row}");
}

#[test]
fn trials_need_faults_to_compare_with() {
    let out = ksync(&["torture", "--type", "broken_lock", "--trials", "3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--faults"));
}
