//! `ksync litmus` end to end: the JSON it prints, and that the fenced tests
//! never show a forbidden outcome.

use std::process::Command;

fn litmus(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ksync"))
        .arg("litmus")
        .args(args)
        .output()
        .expect("running ksync litmus");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("utf-8 output"),
    )
}

#[test]
fn json_has_every_test_with_its_verdict() {
    let (ok, out) = litmus(&["--iterations", "2000", "--json"]);
    assert!(ok, "a forbidden outcome was seen:\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let tests = v.as_array().expect("an array");
    for shape in [
        "SB", "MP", "LB", "WRC", "ISA2", "IRIW", "2+2W", "R", "S", "CoRR",
    ] {
        assert!(
            tests.iter().any(|t| t["test"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{shape}+"))),
            "no {shape} test"
        );
    }
    for t in tests {
        let model = t["model"].as_str().unwrap();
        assert!(model == "Never" || model == "Sometimes");
        assert!(t["iterations"].as_u64().unwrap() >= 2000);
        let observed = t["observed"].as_u64().unwrap();
        if model == "Never" {
            assert_eq!(observed, 0, "{}", t["test"]);
        }
        // The outcome counts add up to the iterations.
        let total: u64 = t["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[1].as_u64().unwrap())
            .sum();
        assert_eq!(total, t["iterations"].as_u64().unwrap());
    }
    assert!(tests.iter().any(|t| t["test"] == "SB+fencembonceonces"));
    assert!(
        tests
            .iter()
            .any(|t| t["test"] == "MP+pooncerelease+poacquireonce")
    );
}

#[test]
fn selects_one_test_or_a_shape() {
    let (ok, out) = litmus(&[
        "--iterations",
        "1000",
        "--json",
        "--test",
        "SB+fencembonceonces",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["test"], "SB+fencembonceonces");
    assert_eq!(v[0]["model"], "Never");

    let (ok, out) = litmus(&["--iterations", "1000", "--json", "--test", "MP"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.as_array().unwrap().len() >= 3);

    let (ok, _) = litmus(&["--test", "NoSuchTest"]);
    assert!(!ok, "an unknown test name must fail");
}

/// The lock-based tests (run on ksync's `SpinLock`) and the address-dependency
/// test, with the kernel's names and verdicts.
const LOCK_AND_DEP_TESTS: [(&str, &str, &str); 10] = [
    ("MP+polocks", "Never", "1:r0=1 /\\ 1:r1=0"),
    ("MP+porevlocks", "Never", "0:r0=1 /\\ 0:r1=0"),
    (
        "LB+unlocklockonceonce+poacquireonce",
        "Never",
        "0:r0=1 /\\ 1:r0=1",
    ),
    (
        "MP+unlocklockonceonce+fencermbonceonce",
        "Never",
        "1:r0=1 /\\ 1:r1=0",
    ),
    (
        "MP+polockmbonce+poacquiresilsil",
        "Never",
        "1:r0=1 /\\ 1:r1=0 /\\ 1:r2=1",
    ),
    (
        "MP+polockonce+poacquiresilsil",
        "Sometimes",
        "1:r0=1 /\\ 1:r1=0 /\\ 1:r2=1",
    ),
    (
        "ISA2+pooncelock+pooncelock+pombonce",
        "Never",
        "1:r0=1 /\\ 2:r0=1 /\\ 2:r1=0",
    ),
    (
        "Z6.0+pooncelock+poonceLock+pombonce",
        "Never",
        "1:r0=1 /\\ z=2 /\\ 2:r0=0",
    ),
    (
        "Z6.0+pooncelock+pooncelock+pombonce",
        "Sometimes",
        "1:r0=1 /\\ z=2 /\\ 2:r0=0",
    ),
    ("MP+onceassign+derefonce", "Never", "1:r0=x /\\ 1:r1=0"),
];

#[test]
fn lock_and_dependency_tests_never_show_a_forbidden_outcome() {
    let (ok, out) = litmus(&["--iterations", "3000", "--json"]);
    assert!(ok, "a forbidden outcome was seen:\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let tests = v.as_array().expect("an array");
    for (name, model, exists) in LOCK_AND_DEP_TESTS {
        let t = tests
            .iter()
            .find(|t| t["test"] == name)
            .unwrap_or_else(|| panic!("{name} missing from the JSON"));
        assert_eq!(t["model"], model, "{name}");
        assert_eq!(t["exists"], exists, "{name}");
        assert!(t["iterations"].as_u64().unwrap() >= 3000, "{name}");
        if model == "Never" {
            assert_eq!(t["observed"], 0, "{name}: forbidden outcome seen");
            assert_eq!(t["ok"], true, "{name}");
        }
        // Every instance was counted, under some outcome.
        let total: u64 = t["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[1].as_u64().unwrap())
            .sum();
        assert_eq!(total, t["iterations"].as_u64().unwrap(), "{name}");
    }
}

#[test]
fn dependency_test_reports_pointers_by_name() {
    let (ok, out) = litmus(&[
        "--iterations",
        "2000",
        "--json",
        "--test",
        "MP+onceassign+derefonce",
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let outcomes = v[0]["outcomes"].as_array().unwrap();
    // The reader sees either the initial pointer (to z, which holds 0) or the
    // published one (to x, which then holds 1); z never holds 1.
    for o in outcomes {
        let s = o[0].as_str().unwrap();
        assert!(s.starts_with("1:r0=x") || s.starts_with("1:r0=z"), "{s}");
        assert_ne!(s, "1:r0=z /\\ 1:r1=1", "read 1 through the pointer to z");
    }
}
