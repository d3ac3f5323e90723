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
    let out = ksync(&["torture", "--type", "broken_lock", "--duration", "0.3"]);
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
