//! `ksync torture --type rcu_fwd` end to end: the flood reports the grace
//! periods RCU completed meanwhile.

use std::process::Command;

#[test]
fn rcu_fwd_reports_the_grace_periods_completed_during_the_flood() {
    let out = Command::new(env!("CARGO_BIN_EXE_ksync"))
        .args(["torture", "--type", "rcu_fwd", "--duration", "0.5"])
        .output()
        .expect("run ksync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit status {:?}\n{stdout}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("grace periods completed during the flood:"))
        .unwrap_or_else(|| panic!("no grace-period line:\n{stdout}"));
    let n: u64 = line
        .split("flood:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    // The synchronous writers alone wait for grace periods in a loop.
    assert!(n > 0, "{line}");
}
