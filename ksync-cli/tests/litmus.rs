//! `ksync litmus` end to end: the JSON it prints, that the built-in tests never
//! show a forbidden outcome, that files and directories run, and that a
//! forbidden outcome, a fault or a bad file makes it fail.

use std::path::PathBuf;
use std::process::Command;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn litmus(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ksync"))
        .arg("litmus")
        .args(args)
        .output()
        .expect("running ksync litmus");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 output"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 output"),
    }
}

fn json(run: &Run) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    v.as_array().expect("an array").clone()
}

/// A scratch directory of its own for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ksync-litmus-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The repository's own files, as the built-in run uses them.
fn repo_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("litmus");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "litmus"))
        .collect();
    v.sort();
    v
}

#[test]
fn json_has_every_builtin_test_with_its_verdict() {
    let run = litmus(&["--iterations", "2000", "--json"]);
    assert!(run.ok, "a forbidden outcome was seen:\n{}", run.stdout);
    let tests = json(&run);
    // One result per file of the repository: the built-in run is those files.
    assert_eq!(tests.len(), repo_files().len());
    for shape in [
        "SB", "MP", "LB", "WRC", "ISA2", "IRIW", "2+2W", "R", "S", "CoRR", "RCU",
    ] {
        assert!(
            tests.iter().any(|t| t["test"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{shape}+"))),
            "no {shape} test"
        );
    }
    for t in &tests {
        let name = &t["test"];
        let model = t["model"]
            .as_str()
            .expect("every built-in test has a Result: line");
        assert!(
            ["Never", "Sometimes", "Deadlock"].contains(&model),
            "{name}"
        );
        // Only the watchdog stops a test early (LOCK+ABBA's deadlock).
        if t["watchdog"] == false {
            assert!(t["iterations"].as_u64().unwrap() >= 1000, "{name}");
        }
        assert!(t["fault"].is_null(), "{name}: {}", t["fault"]);
        if model != "Sometimes" {
            assert_eq!(t["observed"], 0, "{name}");
            assert_eq!(t["ok"], true, "{name}: {}", t["verdict"]);
        }
        // The outcome counts and the instances left out add up to the
        // iterations.
        let total: u64 = t["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[1].as_u64().unwrap())
            .sum();
        let left_out = t["deadlocked"].as_u64().unwrap() + t["unmatched"].as_u64().unwrap();
        assert_eq!(
            total + left_out,
            t["iterations"].as_u64().unwrap(),
            "{name}"
        );
        if name != "SRCU+SB+downread-handoff+sync" {
            assert_eq!(
                t["kept"], total,
                "{name}: the one built-in test that filters"
            );
        }
    }
}

/// The verdicts and conditions of the tests the old built-in table had, which
/// the files must keep.
const KEPT_VERDICTS: [(&str, &str, &str); 12] = [
    ("SB+poonceonces", "Sometimes", "exists (0:r0=0 /\\ 1:r0=0)"),
    ("SB+fencembonceonces", "Never", "exists (0:r0=0 /\\ 1:r0=0)"),
    ("MP+polocks", "Never", "exists (1:r0=1 /\\ 1:r1=0)"),
    ("MP+porevlocks", "Never", "exists (0:r0=1 /\\ 0:r1=0)"),
    (
        "MP+polockonce+poacquiresilsil",
        "Sometimes",
        "exists (1:r0=1 /\\ 1:r1=0 /\\ 1:r2=1)",
    ),
    (
        "Z6.0+pooncelock+poonceLock+pombonce",
        "Never",
        "exists (1:r0=1 /\\ z=2 /\\ 2:r0=0)",
    ),
    (
        "Z6.0+pooncelock+pooncelock+pombonce",
        "Sometimes",
        "exists (1:r0=1 /\\ z=2 /\\ 2:r0=0)",
    ),
    (
        "MP+onceassign+derefonce",
        "Never",
        "exists (1:r0=x /\\ 1:r1=0)",
    ),
    ("2+2W+poonceonces", "Sometimes", "exists (x=1 /\\ y=1)"),
    ("R+fencembonceonces", "Never", "exists (y=2 /\\ 1:r0=0)"),
    ("RCU+MP+sync+read", "Never", "exists (1:r0=1 /\\ 1:r1=0)"),
    ("RCU+deferred-free", "Never", "exists (1:r0=y /\\ 1:r1=0)"),
];

#[test]
fn list_shows_names_verdicts_and_conditions() {
    let run = litmus(&["--list"]);
    assert!(run.ok, "{}", run.stderr);
    for (name, model, cond) in KEPT_VERDICTS {
        let line = run
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert!(line.contains(model), "{line}");
        assert!(line.ends_with(cond), "{line}");
    }
}

#[test]
fn selects_one_test_or_a_shape() {
    let run = litmus(&[
        "--iterations",
        "1000",
        "--json",
        "--test",
        "SB+fencembonceonces",
    ]);
    assert!(run.ok);
    let v = json(&run);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["test"], "SB+fencembonceonces");
    assert_eq!(v[0]["model"], "Never");
    assert_eq!(v[0]["quantifier"], "Exists");

    let run = litmus(&["--iterations", "1000", "--json", "--test", "MP"]);
    assert!(run.ok);
    assert!(json(&run).len() >= 3);

    assert!(
        !litmus(&["--test", "NoSuchTest"]).ok,
        "an unknown test name must fail"
    );
}

#[test]
fn pointers_are_shown_by_name() {
    let run = litmus(&[
        "--iterations",
        "2000",
        "--json",
        "--test",
        "MP+onceassign+derefonce",
    ]);
    assert!(run.ok, "{}", run.stdout);
    let v = json(&run);
    // The reader sees either the initial pointer (to z, which holds 0) or the
    // published one (to x, which then holds 1); z never holds 1.
    for o in v[0]["outcomes"].as_array().unwrap() {
        let s = o[0].as_str().unwrap();
        assert!(s == "1:r0=z; 1:r1=0" || s.starts_with("1:r0=x; "), "{s}");
    }
}

#[test]
fn runs_files_and_directories() {
    let dir = scratch("dir");
    let files = repo_files();
    let chosen: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            let n = f.file_name().unwrap().to_str().unwrap();
            n.starts_with("SB+") || n.starts_with("CoRR+")
        })
        .collect();
    for f in &chosen {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let run = litmus(&["--iterations", "1000", "--json", dir.to_str().unwrap()]);
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let v = json(&run);
    assert_eq!(v.len(), chosen.len(), "the SB files and the CoRR one");
    assert!(chosen.len() >= 4);
    assert!(
        v.iter()
            .all(|t| t["source"].as_str().unwrap().ends_with(".litmus"))
    );

    let one = dir.join("CoRR+poonceonce+Once.litmus");
    let run = litmus(&["--iterations", "1000", "--json", one.to_str().unwrap()]);
    assert!(run.ok);
    assert_eq!(json(&run)[0]["test"], "CoRR+poonceonce+Once");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A test whose `Never` outcome happens every time: the command must fail.
#[test]
fn a_never_outcome_seen_fails() {
    let dir = scratch("never");
    let f = dir.join("bad.litmus");
    std::fs::write(
        &f,
        "C Always-written\n(* Result: Never *)\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n}\nexists (x=1)\n",
    )
    .unwrap();
    let run = litmus(&["--iterations", "1000", f.to_str().unwrap()]);
    assert!(!run.ok);
    assert!(
        run.stdout.contains("FORBIDDEN OUTCOME SEEN"),
        "{}",
        run.stdout
    );
    // The same file claiming Always is right, and claiming it of x=0 is not.
    std::fs::write(
        &f,
        "C Always-written\n(* Result: Always *)\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n}\nexists (x=1)\n",
    )
    .unwrap();
    assert!(litmus(&["--iterations", "1000", f.to_str().unwrap()]).ok);
    std::fs::write(
        &f,
        "C Always-written\n(* Result: Always *)\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n}\nexists (x=0)\n",
    )
    .unwrap();
    assert!(!litmus(&["--iterations", "1000", f.to_str().unwrap()]).ok);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A lock its holder never releases cannot be taken after it: the instances
/// where the other process would wait forever are left out, as herd leaves
/// out executions that cannot complete, and the rest never see the store.
#[test]
fn a_lock_never_released_deadlocks_the_instance() {
    let dir = scratch("leak");
    let f = dir.join("leak.litmus");
    std::fs::write(
        &f,
        "C Leak\n(* Result: Never *)\n{}\n\
         P0(int *x, spinlock_t *s)\n{\n\tspin_lock(s);\n\tWRITE_ONCE(*x, 1);\n}\n\
         P1(int *x, spinlock_t *s)\n{\n\tint r1;\n\n\tspin_lock(s);\n\tr1 = READ_ONCE(*x);\n\tspin_unlock(s);\n}\n\
         exists (1:r1=1)\n",
    )
    .unwrap();
    let run = litmus(&["--iterations", "5000", "--json", f.to_str().unwrap()]);
    assert!(run.ok, "{}", run.stdout);
    let t = &json(&run)[0];
    assert_eq!(t["observed"], 0);
    let total: u64 = t["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o[1].as_u64().unwrap())
        .sum();
    assert_eq!(
        total + t["deadlocked"].as_u64().unwrap(),
        t["iterations"].as_u64().unwrap()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_fault_or_a_bad_file_fails_with_its_line() {
    let dir = scratch("fault");
    let f = dir.join("fault.litmus");
    // r0 holds 5, not a pointer.
    std::fs::write(
        &f,
        "C Deref-number\n{ x=5; }\nP0(int *x)\n{\n\tint r0;\n\tint r1;\n\n\tr0 = READ_ONCE(*x);\n\tr1 = READ_ONCE(*r0);\n}\nexists (0:r1=0)\n",
    )
    .unwrap();
    let run = litmus(&["--iterations", "100", f.to_str().unwrap()]);
    assert!(!run.ok);
    assert!(
        run.stdout.contains("FAULT: P0: dereference of 5"),
        "{}",
        run.stdout
    );

    let g = dir.join("bad.litmus");
    std::fs::write(
        &g,
        "C Bad\n{}\nP0(int *x)\n{\n\tfrobnicate(x);\n}\nexists (x=0)\n",
    )
    .unwrap();
    let run = litmus(&["--iterations", "100", g.to_str().unwrap()]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("bad.litmus: line 5: unknown macro or function `frobnicate`"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Two processes that take two locks in opposite orders deadlock for real:
/// the watchdog bounds the wait, the test reports it, and the run goes on.
#[test]
fn the_watchdog_ends_a_real_deadlock() {
    let start = std::time::Instant::now();
    let run = litmus(&["--iterations", "1000000", "--json", "--test", "LOCK+ABBA"]);
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let t = &json(&run)[0];
    assert_eq!(
        t["watchdog"], true,
        "no deadlock in a million ABBA instances"
    );
    assert!(
        t["verdict"].as_str().unwrap().contains("deadlock observed"),
        "{}",
        t["verdict"]
    );
    // Stopped at the first deadlock, long before a million instances.
    assert!(t["iterations"].as_u64().unwrap() < 1_000_000);
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
}

/// herd's other results: `DEADLOCK` is agreed with when no instance
/// completes and contradicted when one does; `Flag NAME` is reproduced when
/// the run faults on the misuse.
#[test]
fn deadlock_and_flag_results() {
    let run = litmus(&[
        "--iterations",
        "1000",
        "--json",
        "--test",
        "LOCK+self-deadlock",
    ]);
    assert!(run.ok, "{}", run.stdout);
    let t = &json(&run)[0];
    assert_eq!(t["model"], "Deadlock");
    assert_eq!(t["kept"], 0);
    assert_eq!(t["deadlocked"], t["iterations"]);

    let dir = scratch("herd-results");
    let f = dir.join("completes.litmus");
    std::fs::write(
        &f,
        "C Completes\n(* Result: DEADLOCK *)\n{}\nP0(int *x, spinlock_t *l)\n{\n\tspin_lock(l);\n\tspin_unlock(l);\n}\n",
    )
    .unwrap();
    let run = litmus(&["--iterations", "1000", f.to_str().unwrap()]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stdout.contains("MODEL SAYS EVERY EXECUTION DEADLOCKS"),
        "{}",
        run.stdout
    );

    let g = dir.join("flag.litmus");
    std::fs::write(
        &g,
        "C Unlock-twice\n(* Result: Flag srcu-bad-nesting *)\n{}\n\
         P0(int *x, struct srcu_struct *s)\n{\n\tint r0;\n\tint r1;\n\n\
         \tr0 = srcu_read_lock(s);\n\tr1 = READ_ONCE(*x);\n\
         \tsrcu_read_unlock(s, r0);\n\tsrcu_read_unlock(s, r0);\n}\n\
         exists (0:r1=0)\n",
    )
    .unwrap();
    let run = litmus(&["--iterations", "1000", "--json", g.to_str().unwrap()]);
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let t = &json(&run)[0];
    assert_eq!(t["model"], "Flag");
    assert_eq!(t["flag"], "srcu-bad-nesting");
    assert!(
        t["verdict"]
            .as_str()
            .unwrap()
            .starts_with("flag reproduced"),
        "{}",
        t["verdict"]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// smp_memb() orders only through membarrier: where it is unavailable (here
/// forced off) the test is reported not comparable, not run and not failed.
#[test]
fn memb_without_membarrier_is_not_comparable() {
    let out = Command::new(env!("CARGO_BIN_EXE_ksync"))
        .args(["litmus", "--json", "--test", "SB+membonceonce+poonceonce"])
        .env("KSYNC_NO_MEMBARRIER", "1")
        .output()
        .expect("running ksync litmus");
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 output"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 output"),
    };
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let t = &json(&run)[0];
    assert_eq!(t["iterations"], 0);
    assert!(
        t["verdict"].as_str().unwrap().starts_with("not comparable"),
        "{}",
        t["verdict"]
    );
}
