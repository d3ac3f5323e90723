//! The parser on the repository's own files, on the format's corners, and on
//! bad input: every error names the construct and its line.

use super::super::ast::*;
use super::super::builtin::FILES;
use super::parse;

fn parsed(name: &str) -> Litmus {
    let (_, text) = FILES
        .iter()
        .find(|(f, _)| f.strip_suffix(".litmus") == Some(name))
        .unwrap_or_else(|| panic!("no built-in {name}"));
    parse(text, name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The error `text` gives.
fn error(text: &str) -> super::Error {
    match parse(text, "test") {
        Ok(t) => panic!("parsed: {t:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_builtin_file_parses_with_its_name_and_verdict() {
    assert!(FILES.len() >= 39);
    for (file, text) in FILES {
        let t = parse(text, file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(format!("{}.litmus", t.name), *file);
        assert!(
            matches!(
                t.expected,
                Some(Verdict::Never | Verdict::Sometimes | Verdict::Deadlock)
            ),
            "{file}"
        );
        assert_eq!(t.quantifier, Quantifier::Exists, "{file}");
        assert!((1..=4).contains(&t.procs.len()), "{file}");
        if t.expected == Some(Verdict::Deadlock) {
            // LOCK+self-deadlock: no condition, nothing to show.
            assert_eq!((t.shown, t.condition.as_str()), (0, "(none)"), "{file}");
            continue;
        }
        assert!(t.shown > 0, "{file}");
        // One built-in test filters (SRCU+SB+downread-handoff+sync): its
        // filter's location is observed but not shown.
        assert_eq!(
            t.observed.len() - t.shown,
            usize::from(t.filter.is_some()),
            "{file}"
        );
    }
}

#[test]
fn sb_reads_as_two_processes_of_a_store_and_a_load() {
    let t = parsed("SB+fencembonceonces");
    assert_eq!(t.expected, Some(Verdict::Never));
    assert_eq!((t.cells, t.locks), (2, 0));
    assert_eq!(t.procs[0].regs, ["r0"]);
    let body = &t.procs[0].body;
    assert!(matches!(
        body[0],
        Stmt::Store(Access::Once, Place::Static(0), Expr::Int(1))
    ));
    assert!(matches!(body[1], Stmt::Fence(Fence::Mb)));
    assert!(matches!(
        body[2],
        Stmt::Assign(0, Expr::Load(Access::Once, Place::Static(1)))
    ));
    assert_eq!(t.condition, "exists (0:r0=0 /\\ 1:r0=0)");
    assert_eq!(t.observed, [Loc::Reg(0, 0), Loc::Reg(1, 0)]);
    assert!(t.prop.eval(&[0, 0]));
    assert!(!t.prop.eval(&[0, 1]));
}

#[test]
fn acquire_release_locks_and_rcu_map_to_their_statements() {
    let t = parsed("MP+pooncerelease+poacquireonce");
    assert!(matches!(
        t.procs[0].body[1],
        Stmt::Store(Access::AcqRel, Place::Static(1), _)
    ));
    assert!(matches!(
        t.procs[1].body[0],
        Stmt::Assign(0, Expr::Load(Access::AcqRel, Place::Static(1)))
    ));
    let t = parsed("LB+unlocklockonceonce+poacquireonce");
    assert_eq!(t.locks, 2);
    assert!(matches!(t.procs[0].body[0], Stmt::Lock(0)));
    assert!(matches!(t.procs[0].body[3], Stmt::Lock(1)));
    let t = parsed("MP+polockmbonce+poacquiresilsil");
    assert!(matches!(
        t.procs[0].body[1],
        Stmt::Fence(Fence::AfterSpinlock)
    ));
    assert!(matches!(
        t.procs[1].body[1],
        Stmt::Assign(1, Expr::IsLocked(0))
    ));
    let t = parsed("RCU+MP+sync+read");
    assert!(t.uses_synchronize_rcu());
    assert!(matches!(t.procs[1].body[0], Stmt::RcuReadLock));
    assert!(matches!(t.procs[1].body[3], Stmt::RcuReadUnlock));
    let t = parsed("SRCU+SB+sync+read");
    assert_eq!(t.srcus, 1);
    assert!(t.uses_synchronize_rcu());
    assert!(matches!(
        t.procs[0].body[0],
        Stmt::Assign(1, Expr::SrcuLock(0))
    ));
    assert!(matches!(
        t.procs[0].body[3],
        Stmt::SrcuUnlock(0, Expr::Reg(1))
    ));
    assert!(matches!(t.procs[1].body[1], Stmt::SynchronizeSrcu(0)));
}

#[test]
fn pointers_in_the_init_block_and_through_registers() {
    let t = parsed("RCU+deferred-free");
    let var = |n: &str| t.vars.iter().find(|v| v.name == n).unwrap().clone();
    assert_eq!(var("y").init, 1);
    assert_eq!(var("p").init, ADDR_BASE + var("y").slot as i64);
    // r1 = READ_ONCE(*r0): the place is computed from the register.
    assert!(matches!(
        &t.procs[1].body[2],
        Stmt::Assign(1, Expr::Load(Access::Once, Place::Dynamic(e))) if matches!(**e, Expr::Reg(0))
    ));
    assert_eq!(t.value_name(ADDR_BASE + var("y").slot as i64), "y");
    assert_eq!(t.value_name(7), "7");
}

#[test]
fn control_dependency_is_an_if() {
    let t = parsed("LB+fencembonceonce+ctrlonceonce");
    match &t.procs[0].body[1] {
        Stmt::If(Expr::Reg(0), then, els) => {
            assert!(matches!(
                then[..],
                [Stmt::Store(Access::Once, Place::Static(1), _)]
            ));
            assert!(els.is_empty());
        }
        s => panic!("{s:?}"),
    }
}

#[test]
fn the_format_corners() {
    let t = parse(
        "C corners\n\
         (* Result: Always\n   (* nested *) comment *)\n\
         { int *p=&x; 0:r3=y; atomic_t v = ATOMIC_INIT(2); spinlock_t l; }\n\
         P0(int *x, int *y, atomic_t *v, spinlock_t *l, int *p) // a comment\n\
         {\n\
         \tint r0, r1 = 2;\n\
         \tr0 = xchg_acquire(x, r1 + 1); /* a C comment */\n\
         \tif (spin_trylock(l)) { *y = r0 & 0xf; spin_unlock(l); } else r1 = cmpxchg(y, 0, 1);\n\
         \tr2 = atomic_fetch_add_release(3, v) + atomic_inc_return(v);\n\
         \tatomic_dec(v);\n\
         \tr4 = (*p) - (int)r3;\n\
         \tsmp_mb__before_atomic();\n\
         }\n\
         locations [x; y;]\n\
         filter (~0:r0=9)\n\
         forall (x=3 \\/ ~(0:r2 = 6) /\\ 0:r4=1) (* trailing comment *)\n",
        "corners",
    )
    .unwrap();
    assert_eq!(t.expected, Some(Verdict::Always));
    assert_eq!(t.quantifier, Quantifier::Forall);
    assert_eq!((t.cells, t.locks), (4, 1));
    assert_eq!(t.procs[0].regs, ["r3", "r0", "r1", "r2", "r4"]);
    let slot = |n: &str| t.vars.iter().find(|v| v.name == n).unwrap().slot;
    // Declared in order of mention: the init block's left sides, then the
    // variables its right sides name.
    assert_eq!([slot("p"), slot("v"), slot("x"), slot("y")], [0, 1, 2, 3]);
    assert_eq!(t.procs[0].reg_init[0], ADDR_BASE + slot("y") as i64);
    // x and y from `locations`, then the condition's, then the filter's.
    assert_eq!(t.shown, 4);
    assert_eq!(t.observed.len(), 5);
    assert!(t.filter.is_some());
    assert!(matches!(
        t.procs[0].body[1],
        Stmt::Assign(
            1,
            Expr::Rmw(RmwOp::Xchg, RmwOrder::Acquire, Place::Static(2), _)
        )
    ));
    match &t.procs[0].body[4] {
        Stmt::Eval(Expr::Rmw(RmwOp::Add, RmwOrder::Relaxed, Place::Static(1), args)) => {
            assert!(matches!(args[..], [Expr::Int(-1)]));
        }
        s => panic!("{s:?}"),
    }
    // `(*p)` in a body is C, not a comment.
    assert!(matches!(
        &t.procs[0].body[5],
        Stmt::Assign(4, Expr::Bin(BinOp::Sub, a, _)) if matches!(**a, Expr::Load(Access::Plain, Place::Static(0)))
    ));
}

#[test]
fn an_unknown_macro_is_named_with_its_line() {
    let e = error("C t\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n\tsmp_frob();\n}\nexists (x=1)\n");
    assert_eq!(e.line, 6);
    assert!(
        e.msg.contains("unknown macro or function `smp_frob`"),
        "{e}"
    );
    let e =
        error("C t\n{}\nP0(int *x)\n{\n\tint r0;\n\n\tr0 = READ_TWICE(*x);\n}\nexists (0:r0=1)\n");
    assert_eq!(e.line, 7);
    assert!(e.msg.contains("`READ_TWICE`"), "{e}");
}

#[test]
fn constructs_outside_the_subset_are_named() {
    let e = error("C t\n{}\nP0(int *x)\n{\n\twhile (1) {}\n}\nexists (x=1)\n");
    assert_eq!(e.line, 5);
    assert!(
        e.msg.contains("`while`") && e.msg.contains("outside"),
        "{e}"
    );
    let e = error(
        "C t\n{}\nP0(int *x, struct srcu_struct *s)\n{\n\tint r0 = srcu_read_lock_nmisafe(s);\n}\nexists (x=1)\n",
    );
    assert_eq!(e.line, 5);
    assert!(e.msg.contains("`srcu_read_lock_nmisafe`"), "{e}");
    let e = error("C t\n{}\nP0(spinlock_t *l)\n{\n\tspin_unlock_wait(l);\n}\nexists (0:r0=0)\n");
    assert_eq!(e.line, 5);
    assert!(e.msg.contains("`spin_unlock_wait`"), "{e}");
    let e = error(
        "C t\n{}\nP0(int *x)\n{\n\tint r0 = smp_cond_load_acquire(x, VAL);\n}\nexists (x=1)\n",
    );
    assert_eq!(e.line, 5);
    assert!(e.msg.contains("outside the supported subset"), "{e}");
    let e = error("C t\n{ int x[2]; }\nP0(int *x)\n{\n}\nexists (x=1)\n");
    assert_eq!(e.line, 2);
    assert!(e.msg.contains("arrays"), "{e}");
    let e = error("X86 t\n{}\nP0(int *x)\n{\n}\nexists (x=1)\n");
    assert_eq!(e.line, 1);
    assert!(e.msg.contains("C litmus"), "{e}");
}

#[test]
fn an_undeclared_register_is_named_with_its_line() {
    // Read in a body before anything gave it a value.
    let e = error("C t\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, r7);\n}\nexists (x=1)\n");
    assert_eq!(e.line, 5);
    assert!(e.msg.contains("undeclared register `r7`"), "{e}");
    // Named in the condition, absent from its process.
    let e = error(
        "C t\n{}\nP0(int *x)\n{\n\tint r0;\n\n\tr0 = READ_ONCE(*x);\n}\n\nexists (0:r0=0 /\\\n 0:r1=1)\n",
    );
    assert_eq!(e.line, 11);
    assert!(e.msg.contains("undeclared register `0:r1`"), "{e}");
    let e = error("C t\n{}\nP0(int *x)\n{\n}\nexists (2:r0=0)\n");
    assert!(e.msg.contains("no process P2"), "{e}");
}

#[test]
fn unbalanced_braces_name_the_open_brace() {
    // P0 never closes: the error points at its `{`.
    let e =
        error("C t\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n\nP1(int *x)\n{\n}\nexists (x=1)\n");
    assert!(e.msg.contains("unbalanced braces"), "{e}");
    assert!(e.msg.contains("line 4"), "{e}");
    let e = error("C t\n{}\nP0(int *x)\n{\n\tif (1) {\n\t\tWRITE_ONCE(*x, 1);\n}\n");
    assert!(e.msg.contains("unbalanced braces"), "{e}");
    assert_eq!(e.line, 4);
    let e = error("C t\n{}\nP0(int *x)\n{\n}\n}\nexists (x=1)\n");
    assert_eq!(e.line, 6);
    assert!(e.msg.contains("unbalanced braces"), "{e}");
}

#[test]
fn a_missing_condition_is_an_error() {
    let e = error("C t\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n}\n\n");
    assert!(e.msg.contains("missing condition"), "{e}");
    assert_eq!(e.line, 8);
    let e = error("C t\n{}\nP0(int *x)\n{\n}\nlocations [x]\n");
    assert!(e.msg.contains("missing condition"), "{e}");
    let e = error("C t\n{}\nP0(int *x)\n{\n}\nexists (x=1) junk\n");
    assert!(e.msg.contains("after the condition"), "{e}");
    assert_eq!(e.line, 6);
}

#[test]
fn an_unterminated_comment_names_its_start() {
    let e = error("C t\n(* Result: Never\n{}\nP0(int *x)\n{\n}\nexists (x=1)\n");
    assert_eq!(e.line, 2);
    assert!(e.msg.contains("unterminated comment"), "{e}");
}

#[test]
fn a_condition_may_compare_two_locations_and_casts_are_dropped() {
    let t = parse(
        "C t\n{}\nP0(int **p, int *x)\n{\n\tint r1 = READ_ONCE(*x);\n\tsmp_store_release(p, (void *)0);\n}\n\
         P1(int *x)\n{\n\tint r1 = READ_ONCE(*x);\n}\nexists (~x=1 \\/ 0:r1=1:r1)\n",
        "t",
    )
    .unwrap();
    assert_eq!(t.observed, [Loc::Var(1), Loc::Reg(0, 0), Loc::Reg(1, 0)]);
    assert!(matches!(
        t.procs[0].body[1],
        Stmt::Store(Access::AcqRel, Place::Static(0), Expr::Int(0))
    ));
    // x=1 with equal registers satisfies it, x=1 with different ones not.
    assert!(t.prop.eval(&[1, 5, 5]));
    assert!(!t.prop.eval(&[1, 5, 6]));
    assert!(t.prop.eval(&[0, 5, 6]));
}

/// What herd accepts around the C: a description and diy's `Key=value`
/// lines after the header, the `Result:` line's DEADLOCK, Flag and DATARACE,
/// `int 0:r1;` in the initial state, `not` and a `;` ending the condition,
/// a register only `locations` names, smp_memb() and SRCU's down/up forms.
#[test]
fn herds_extras() {
    let t = parse(
        "C extras\n\
         \"a description\"\n\
         Cycle=Rfe PodRR Fre PodWW\n\
         Relax=\n\
         (* Result: Never DATARACE\n   (* nested *) *)\n\
         { int 1:r2; }\n\
         P0(volatile int* x, struct srcu_struct *s)\n\
         {\n\
         \tint r0;\n\
         \tr0 = srcu_down_read(s);\n\
         \tsmp_memb();\n\
         \tsrcu_up_read(s, r0);\n\
         }\n\
         P1(int *x)\n\
         {\n\
         \tint r2;\n\
         \tr2 = READ_ONCE(*x);\n\
         }\n\
         locations [0:r9]\n\
         exists not(1:r2=1);\n",
        "extras",
    )
    .unwrap();
    assert_eq!(t.expected, Some(Verdict::Never));
    assert_eq!(t.flag.as_deref(), Some("data-race"));
    assert!(t.uses_memb());
    assert!(matches!(
        t.procs[0].body[0],
        Stmt::Assign(0, Expr::SrcuDown(0))
    ));
    assert!(matches!(t.procs[0].body[1], Stmt::Fence(Fence::Memb)));
    assert!(matches!(t.procs[0].body[2], Stmt::SrcuUp(0, Expr::Reg(0))));
    // r9, named only by `locations`, is a register of P0 that stays 0.
    assert_eq!(t.procs[0].regs, ["r0", "r9"]);
    assert_eq!(t.observed[0], Loc::Reg(0, 1));
    assert!(matches!(t.prop, Prop::Not(_)));

    let t = parse(
        "C dl\n(* Result: DEADLOCK *)\n{}\nP0(spinlock_t *l)\n{\n\tspin_lock(l);\n}\n",
        "dl",
    )
    .unwrap();
    assert_eq!(t.expected, Some(Verdict::Deadlock));
    assert_eq!(t.condition, "(none)");
    let t = parse(
        "C fl\n(* Result: Flag srcu-bad-nesting *)\n{}\nP0(int *x)\n{\n}\nexists (x=0)\n",
        "fl",
    )
    .unwrap();
    assert_eq!(t.expected, Some(Verdict::Flag));
    assert_eq!(t.flag.as_deref(), Some("srcu-bad-nesting"));
    // Only a DEADLOCK file may leave the condition out; a verdict herd does
    // not give is named with its line.
    let e = error("C t\n(* Result: Never *)\n{}\nP0(int *x)\n{\n}\n");
    assert!(e.msg.contains("missing condition"), "{e}");
    let e = error("C t\n(*\n * Result: Perhaps\n *)\n{}\nP0(int *x)\n{\n}\nexists (x=0)\n");
    assert_eq!(e.line, 3);
    assert!(e.msg.contains("unknown verdict `Perhaps`"), "{e}");
    let e = error("C t\n(* Result: Flag *)\n{}\nP0(int *x)\n{\n}\nexists (x=0)\n");
    assert!(e.msg.contains("names no flag"), "{e}");
    // `(void)f(…);` throws the value away.
    let t = parse(
        "C v\n{}\nP0(atomic_t *v)\n{\n\t(void)atomic_add_unless(v, 1, 0);\n}\nexists (v=1)\n",
        "v",
    )
    .unwrap();
    assert!(matches!(
        t.procs[0].body[..],
        [Stmt::Eval(Expr::Rmw(RmwOp::AddUnless, ..))]
    ));
}

/// Only a test in which some process takes two locks, or a lock and a grace
/// period, gets the watchdog's bounded lock waits.
#[test]
fn which_tests_may_deadlock() {
    assert!(parsed("LOCK+ABBA").may_deadlock());
    for name in [
        "MP+polocks",
        "Z6.0+pooncelock+pooncelock+pombonce",
        "LOCK+self-deadlock",
    ] {
        assert!(!parsed(name).may_deadlock(), "{name}");
    }
    let t = parse(
        "C t\n{}\nP0(int *x, spinlock_t *l)\n{\n\tspin_lock(l);\n\tsynchronize_rcu();\n\tspin_unlock(l);\n}\nexists (x=0)\n",
        "t",
    )
    .unwrap();
    assert!(t.may_deadlock());
    // A trylock counts: it takes the lock when it succeeds.
    let t = parse(
        "C t\n{}\nP0(int *x, spinlock_t *a, spinlock_t *b)\n{\n\tif (spin_trylock(a)) {\n\t\tspin_lock(b);\n\t\tspin_unlock(b);\n\t\tspin_unlock(a);\n\t}\n}\nexists (x=0)\n",
        "t",
    )
    .unwrap();
    assert!(t.may_deadlock());
}
