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
