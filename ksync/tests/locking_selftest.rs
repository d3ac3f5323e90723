//! The kernel's lockdep self-test matrix (`lib/locking-selftest.c`), held to
//! ksync's lockdep: every case ksync can express, each permutation, run on the
//! lock types as ksync's locks feed the validator, after a `lockdep::reset()`,
//! and compared with the kernel's verdict: FAILURE is a report of the kernel's
//! kind, SUCCESS is no report at all. Where the kernel fails a case on a
//! `DEBUG_LOCKS_WARN` of a misused API (the ww_mutex ones), ksync panics with
//! a message saying what was misused, before touching the lock: FAILURE there
//! is that panic, and no report.
//!
//! The cases are this project's own code, written from the kernel's
//! descriptions of each family (the events and the expected verdicts); the
//! names are the kernel's, so a failure here can be looked up there.
//!
//! # How the kernel's lock types map to ksync
//!
//! | kernel | here: what lockdep sees (as ksync's lock of that kind feeds it) |
//! |---|---|
//! | `raw_spin_lock` (spin) | an exclusive acquisition of a spinning map (`SpinLock`, `RawSpinLock`) |
//! | `write_lock` (wlock) | an exclusive acquisition of an rwlock map (`RwLock::write`) |
//! | `read_lock` (rlock) | a recursive read (`RwLock::read` in irq context; everywhere in the main families, which the kernel runs with `force_read_lock_recursive = 1`); in the queued-rwlock family a plain read in process context, as `RwLock::read` is |
//! | `mutex_lock` | an exclusive acquisition of a sleeping map (`Mutex`) |
//! | `down_write` / `down_read` (wsem / rsem) | exclusive / plain read of a sleeping map (`RwSemaphore`) |
//! | `HARDIRQ_ENTER`, `SOFTIRQ_ENTER` | irqs off (and bh off) and the preempt count's hardirq / softirq-serving field raised, as ksync's irq entry does |
//! | `IRQ_DISABLE`/`IRQ_ENABLE` | `local_irq_disable`/`enable` (hardirq cases), `local_bh_disable`/`enable` (softirq cases) |
//!
//! Locks A–D have classes of their own; X1/X2, Y1/Y2, Z1/Z2 are two instances
//! each of three classes (one key each), as the kernel's `init_shared_classes`.
//! Each case runs on fresh maps after `lockdep::reset()`, so the classes start
//! with no dependencies and no usage. Everything runs in one test on one
//! thread: the reset forgets the whole graph, so nothing may run beside it.
//!
//! # Count
//!
//! 387 cases expressed, every one with the kernel's verdict (the test asserts
//! the count). The families and their sizes are listed in [`families`]; the
//! rtmutex column of the deadlock families, double unlock and initialize held
//! (9 cases, `RtMutex`: a sleeping lock to lockdep, as the kernel's), the
//! 36 `wait_context_tests` and the wound/wait family (31 of the kernel's 36,
//! in [`ww_tests`]) are among them, and the `local_lock` family runs on a real
//! `LocalLock` (`local_lock_t` to lockdep).
//!
//! The wait-context cases run as the kernel runs them, with
//! `PROVE_RAW_LOCK_NESTING` (ksync's lockdep always checks so): a FAILURE
//! there must include "Invalid wait context"; a sleeping lock in atomic
//! context also gets `might_sleep`'s report, as in the kernel, where it does
//! not count for the verdict. `RCU_BH` and `RCU_SCHED` are maps with the
//! kernel's wait types (`rcu_bh_lock_map`, `rcu_sched_lock_map`) entered with
//! bottom halves or preemption off: ksync has no `rcu_read_lock_bh` or
//! `rcu_read_lock_sched` of its own.
//!
//! ("initialize held" is expressed as the kernel's `INIT` on a held lock: the
//! map re-initialised in place, which drops the old one; in safe Rust a held
//! lock cannot be re-initialised at all, its guard borrows it, so this only
//! happens behind a `mem::forget`-ed guard.)
//!
//! # Not expressible (yet), with the reason
//!
//! - 5 of the 36 `ww_tests`, which cannot be written in safe Rust
//!   (`context_unlock_twice`, `context_fini_early`, `object_unlock_twice`,
//!   `object_lock_unbalanced`, `object_lock_stale_context`: the context is
//!   dropped once, guards borrow it, and its count and the lock's context are
//!   not the caller's to write). `fail_acquire` is expressed without its
//!   copied context (`t2 = t`), which Rust has no way to make, and
//!   `edeadlk_acquire_more_edeadlk` fails as `edeadlk_acquire_more` does, at
//!   the wrong lock's check, before the second `-EDEADLK` the kernel warns
//!   about could come;
//! - `fs_reclaim_tests` (3 cases): ksync has no memory-reclaim context;
#![cfg(feature = "lockdep")]

use ksync::irq;
use ksync::lockdep::{
    self, AcquireKind, LockClassKey, LockdepMap, Mode, Report, ReportKind, WaitType,
};
use ksync::percpu::LocalLock;
use ksync::sched::{self, SOFTIRQ_OFFSET};

use AcquireKind::{Exclusive, Read, RecursiveRead};

/// The five kinds of lock objects, each with its own classes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Obj {
    Spin,
    Rw,
    Mutex,
    Rwsem,
    RtMutex,
}

/// The lock types of the kernel's matrix (its columns).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    Spin,
    WLock,
    RLock,
    Mutex,
    WSem,
    RSem,
    RtMutex,
}

impl Ty {
    /// The six, and the rtmutex column of the families that have one
    /// (`DO_TESTCASE_6R` and `DO_TESTCASE_6` under `CONFIG_RT_MUTEXES`).
    const SEVEN: [Ty; 7] = [
        Ty::Spin,
        Ty::WLock,
        Ty::RLock,
        Ty::Mutex,
        Ty::WSem,
        Ty::RSem,
        Ty::RtMutex,
    ];
    const IRQ3: [Ty; 3] = [Ty::Spin, Ty::WLock, Ty::RLock];

    /// The object and acquisition of `LOCK(x)` for this type.
    fn how(self) -> (Obj, AcquireKind) {
        match self {
            Ty::Spin => (Obj::Spin, Exclusive),
            Ty::WLock => (Obj::Rw, Exclusive),
            Ty::RLock => (Obj::Rw, RecursiveRead),
            Ty::Mutex => (Obj::Mutex, Exclusive),
            Ty::WSem => (Obj::Rwsem, Exclusive),
            Ty::RSem => (Obj::Rwsem, Read),
            Ty::RtMutex => (Obj::RtMutex, Exclusive),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Spin => "spin",
            Ty::WLock => "wlock",
            Ty::RLock => "rlock",
            Ty::Mutex => "mutex",
            Ty::WSem => "wsem",
            Ty::RSem => "rsem",
            Ty::RtMutex => "rtmutex",
        }
    }
}

/// The class letters: A–D, then the shared classes X, Y, Z.
const LETTERS: [&str; 7] = ["A", "B", "C", "D", "X", "Y", "Z"];

macro_rules! keys {
    ($($obj:literal),*) => {
        [$([
            LockClassKey::new(concat!($obj, "_A")),
            LockClassKey::new(concat!($obj, "_B")),
            LockClassKey::new(concat!($obj, "_C")),
            LockClassKey::new(concat!($obj, "_D")),
            LockClassKey::new(concat!($obj, "_X")),
            LockClassKey::new(concat!($obj, "_Y")),
            LockClassKey::new(concat!($obj, "_Z")),
        ]),*]
    };
}

/// One key per object kind and letter: the classes, kept across resets.
static KEYS: [[LockClassKey; 7]; 5] = keys!("lock", "rwlock", "mutex", "rwsem", "rtmutex");

/// The maps of one case: per object kind, A–D and X1, X2, Y1, Y2, Z1, Z2.
struct Locks {
    maps: Vec<Vec<(&'static str, LockdepMap)>>,
}

impl Locks {
    fn new() -> Locks {
        let objs = [Obj::Spin, Obj::Rw, Obj::Mutex, Obj::Rwsem, Obj::RtMutex];
        let maps = objs
            .iter()
            .enumerate()
            .map(|(o, &obj)| {
                let names = ["A", "B", "C", "D", "X1", "X2", "Y1", "Y2", "Z1", "Z2"];
                names
                    .iter()
                    .map(|&n| {
                        let letter = &n[..1];
                        let k = &KEYS[o][LETTERS.iter().position(|&l| l == letter).unwrap()];
                        let map = LockdepMap::with_key(k.name(), k);
                        let map = match obj {
                            Obj::Spin | Obj::Rw => map.spinning(),
                            Obj::Mutex | Obj::Rwsem | Obj::RtMutex => map.sleeping(),
                        };
                        (n, map)
                    })
                    .collect()
            })
            .collect();
        Locks { maps }
    }

    fn map(&self, obj: Obj, n: &str) -> &LockdepMap {
        let o = obj as usize;
        &self.maps[o].iter().find(|(m, _)| *m == n).unwrap().1
    }

    fn take(&self, obj: Obj, n: &str, kind: AcquireKind) {
        lockdep::acquire(self.map(obj, n), kind, false, 0);
    }

    fn drop_(&self, obj: Obj, n: &str) {
        lockdep::release(self.map(obj, n));
    }

    /// `LOCK(n)` for lock type `ty`.
    fn lock(&self, ty: Ty, n: &str) {
        let (obj, kind) = ty.how();
        self.take(obj, n, kind);
    }

    /// `UNLOCK(n)` for lock type `ty`.
    fn unlock(&self, ty: Ty, n: &str) {
        self.drop_(ty.how().0, n);
    }

    fn lock_unlock_2(&self, ty: Ty, x: &str, y: &str) {
        self.lock(ty, x);
        self.lock(ty, y);
        self.unlock(ty, y);
        self.unlock(ty, x);
    }

    // The kernel's shortcuts for one object kind each.
    fn l(&self, n: &str) {
        self.take(Obj::Spin, n, Exclusive);
    }
    fn u(&self, n: &str) {
        self.drop_(Obj::Spin, n);
    }
    fn wl(&self, n: &str) {
        self.take(Obj::Rw, n, Exclusive);
    }
    fn rl(&self, n: &str) {
        self.take(Obj::Rw, n, RecursiveRead);
    }
    /// `read_lock` with `force_read_lock_recursive = 0` on the queued rwlock:
    /// recursive in interrupt context only, as ksync's `RwLock::read`.
    fn rl_queued(&self, n: &str) {
        let kind = if sched::in_interrupt() {
            RecursiveRead
        } else {
            Read
        };
        self.take(Obj::Rw, n, kind);
    }
    fn rwu(&self, n: &str) {
        self.drop_(Obj::Rw, n);
    }
    fn ml(&self, n: &str) {
        self.take(Obj::Mutex, n, Exclusive);
    }
    fn mu(&self, n: &str) {
        self.drop_(Obj::Mutex, n);
    }
    fn wsl(&self, n: &str) {
        self.take(Obj::Rwsem, n, Exclusive);
    }
    fn rsl(&self, n: &str) {
        self.take(Obj::Rwsem, n, Read);
    }
    fn su(&self, n: &str) {
        self.drop_(Obj::Rwsem, n);
    }
}

/// Hardirq or softirq flavour of the irq cases.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Irq {
    Hard,
    Soft,
}

impl Irq {
    const BOTH: [Irq; 2] = [Irq::Hard, Irq::Soft];

    fn name(self) -> &'static str {
        match self {
            Irq::Hard => "hard",
            Irq::Soft => "soft",
        }
    }

    /// `IRQ_ENTER`: `HARDIRQ_ENTER` or `SOFTIRQ_ENTER`.
    fn enter(self) {
        match self {
            Irq::Hard => hardirq_enter(),
            Irq::Soft => {
                irq::local_bh_disable();
                irq::local_irq_disable();
                sched::preempt_count_add(SOFTIRQ_OFFSET);
            }
        }
    }

    fn exit(self) {
        match self {
            Irq::Hard => hardirq_exit(),
            Irq::Soft => {
                sched::preempt_count_sub(SOFTIRQ_OFFSET);
                irq::local_irq_enable();
                irq::local_bh_enable();
            }
        }
    }

    /// `IRQ_DISABLE`: `local_irq_disable` or `local_bh_disable`.
    fn disable(self) {
        match self {
            Irq::Hard => irq::local_irq_disable(),
            Irq::Soft => irq::local_bh_disable(),
        }
    }

    fn enable(self) {
        match self {
            Irq::Hard => irq::local_irq_enable(),
            Irq::Soft => irq::local_bh_enable(),
        }
    }
}

/// `HARDIRQ_ENTER`: irqs off, the hardirq count raised, and the handler
/// marked as one PREEMPT_RT would thread (`lockdep_hardirq_threaded`), as the
/// kernel's self-test does.
fn hardirq_enter() {
    irq::local_irq_disable();
    irq::irq_enter();
    irq::lockdep_hardirq_threaded();
}

/// `HARDIRQ_EXIT`: the hardirq count dropped (`irq_exit`: no softirq is
/// pending here), irqs on.
fn hardirq_exit() {
    irq::irq_exit();
    irq::local_irq_enable();
}

/// The report kinds of the irq rules: which one the kernel prints depends on
/// the order of the events (a usage gained last, or a dependency added last).
const IRQ_KINDS: &[ReportKind] = &[
    ReportKind::InconsistentIrqUsage,
    ReportKind::IrqSafeToUnsafe,
    ReportKind::IrqLockInversion,
];
const CYCLE: &[ReportKind] = &[ReportKind::CircularDependency];
const RECURSION: &[ReportKind] = &[ReportKind::RecursiveLocking];
const UNBALANCED: &[ReportKind] = &[ReportKind::BadUnlockBalance];
const FREED: &[ReportKind] = &[ReportKind::HeldLockFreed];
/// A lock taken where its waiters cannot wait; a sleeping lock's acquisition
/// there is also `might_sleep`'s report, which the kernel prints beside it
/// (it is no lockdep report, so the verdict is the first kind's).
const WAIT_CTX: &[ReportKind] = &[ReportKind::InvalidWaitContext, ReportKind::SleepInAtomic];

/// One case: its name, the kernel's verdict (`fail`: FAILURE, with a report
/// of one of `kinds`, and one of `kinds[0]` where `first_needed`; or, where
/// `panics`, a panic whose message contains it and no report: ksync's form of
/// the kernel's `DEBUG_LOCKS_WARN` on a misused API), and its events.
struct Case {
    name: String,
    fail: bool,
    kinds: &'static [ReportKind],
    first_needed: bool,
    panics: Option<&'static str>,
    run: Box<dyn Fn(&Locks)>,
}

fn case(
    name: String,
    fail: bool,
    kinds: &'static [ReportKind],
    run: impl Fn(&Locks) + 'static,
) -> Case {
    Case {
        name,
        fail,
        kinds,
        first_needed: false,
        panics: None,
        run: Box::new(run),
    }
}

/// A case whose FAILURE is a panic with `message` (see [`Case`]).
fn case_panics(name: String, message: &'static str, run: impl Fn(&Locks) + 'static) -> Case {
    Case {
        panics: Some(message),
        ..case(name, true, &[], run)
    }
}

type Event = fn(&Locks, Ty, Irq);

/// The permutations of `events` (the kernel's `GENERATE_PERMUTATIONS_*`), named
/// by the order ("12", "21", "123" …).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    match n {
        2 => vec![vec![0, 1], vec![1, 0]],
        3 => vec![
            vec![0, 1, 2],
            vec![0, 2, 1],
            vec![1, 0, 2],
            vec![1, 2, 0],
            vec![2, 0, 1],
            vec![2, 1, 0],
        ],
        _ => unreachable!(),
    }
}

/// Adds the cases of an irq family: every permutation of `events`, for each
/// irq flavour in `irqs` and lock type in `tys`, expecting FAILURE except for
/// the types in `ok`.
fn irq_family(
    out: &mut Vec<Case>,
    family: &str,
    events: &'static [Event],
    irqs: &[Irq],
    tys: &[Ty],
    ok: &[Ty],
) {
    for p in permutations(events.len()) {
        let order: String = p.iter().map(|i| char::from(b'1' + *i as u8)).collect();
        for &irq in irqs {
            for &ty in tys {
                let p = p.clone();
                out.push(case(
                    format!("{family}_{}_{}_{order}", irq.name(), ty.name()),
                    !ok.contains(&ty),
                    IRQ_KINDS,
                    move |l| p.iter().for_each(|&i| events[i](l, ty, irq)),
                ));
            }
        }
    }
}

/// The kernel's self-test, family by family, as (family, cases).
fn families() -> Vec<Case> {
    let mut out = Vec::new();

    // DO_TESTCASE_6R: the deadlock patterns; recursive reads must not trigger.
    type Pattern = fn(&Locks, Ty);
    let patterns: [(&str, &[ReportKind], Pattern); 7] = [
        ("AA", RECURSION, |l, t| {
            l.lock(t, "X1");
            l.lock(t, "X2"); // fails
        }),
        ("ABBA", CYCLE, |l, t| {
            l.lock_unlock_2(t, "A", "B");
            l.lock_unlock_2(t, "B", "A");
        }),
        ("ABBCCA", CYCLE, |l, t| {
            l.lock_unlock_2(t, "A", "B");
            l.lock_unlock_2(t, "B", "C");
            l.lock_unlock_2(t, "C", "A");
        }),
        ("ABCABC", CYCLE, |l, t| {
            l.lock_unlock_2(t, "A", "B");
            l.lock_unlock_2(t, "C", "A");
            l.lock_unlock_2(t, "B", "C");
        }),
        ("ABBCCDDA", CYCLE, |l, t| {
            l.lock_unlock_2(t, "A", "B");
            l.lock_unlock_2(t, "B", "C");
            l.lock_unlock_2(t, "C", "D");
            l.lock_unlock_2(t, "D", "A");
        }),
        ("ABCDBDDA", CYCLE, |l, t| {
            l.lock_unlock_2(t, "A", "B");
            l.lock_unlock_2(t, "C", "D");
            l.lock_unlock_2(t, "B", "D");
            l.lock_unlock_2(t, "D", "A");
        }),
        ("ABCDBCDA", CYCLE, |l, t| {
            l.lock_unlock_2(t, "A", "B");
            l.lock_unlock_2(t, "C", "D");
            l.lock_unlock_2(t, "B", "C");
            l.lock_unlock_2(t, "D", "A");
        }),
    ];
    for (name, kinds, f) in patterns {
        for ty in Ty::SEVEN {
            out.push(case(
                format!("{name}_{}", ty.name()),
                ty != Ty::RLock,
                kinds,
                move |l| f(l, ty),
            ));
        }
    }

    // DO_TESTCASE_6: double unlock.
    for ty in Ty::SEVEN {
        out.push(case(
            format!("double_unlock_{}", ty.name()),
            true,
            UNBALANCED,
            move |l| {
                l.lock(ty, "A");
                l.unlock(ty, "A");
                l.unlock(ty, "A"); // fails
            },
        ));
    }

    // DO_TESTCASE_6: initialize held. Re-initialising the lock drops its old
    // map where it lies, which lockdep reports ("held lock freed").
    for ty in Ty::SEVEN {
        out.push(case(
            format!("init_held_{}", ty.name()),
            true,
            FREED,
            move |_| {
                let (obj, kind) = ty.how();
                let key = &KEYS[obj as usize][0];
                let new = || match obj {
                    Obj::Spin | Obj::Rw => LockdepMap::with_key(key.name(), key).spinning(),
                    Obj::Mutex | Obj::Rwsem | Obj::RtMutex => {
                        LockdepMap::with_key(key.name(), key).sleeping()
                    }
                };
                let mut a = new();
                lockdep::acquire(&a, kind, false, 0); // LOCK(A)
                a = new(); // INIT(A): fails
                drop(a);
            },
        ));
    }

    // Read-lock recursion and read/write mixes.
    type Mix = (&'static str, bool, &'static [ReportKind], fn(&Locks));
    let mixes: [Mix; 15] = [
        ("rlock_AA1", false, RECURSION, |l| {
            l.rl("X1");
            l.rl("X1");
        }),
        ("rsem_AA1", true, RECURSION, |l| {
            l.rsl("X1");
            l.rsl("X1");
        }),
        ("rlock_AA1B", false, RECURSION, |l| {
            l.rl("X1");
            l.rl("X2");
        }),
        ("rsem_AA1B", true, RECURSION, |l| {
            l.rsl("X1");
            l.rsl("X2");
        }),
        ("rlock_AA2", true, RECURSION, |l| {
            l.rl("X1");
            l.wl("X2");
        }),
        ("rsem_AA2", true, RECURSION, |l| {
            l.rsl("X1");
            l.wsl("X2");
        }),
        ("rlock_AA3", true, RECURSION, |l| {
            l.wl("X1");
            l.rl("X2");
        }),
        ("rsem_AA3", true, RECURSION, |l| {
            l.wsl("X1");
            l.rsl("X2");
        }),
        ("rlock_ABBA1", true, CYCLE, |l| {
            l.rl("X1");
            l.l("Y1");
            l.u("Y1");
            l.rwu("X1");
            l.l("Y1");
            l.wl("X1");
            l.rwu("X1");
            l.u("Y1");
        }),
        ("rwsem_ABBA1", true, CYCLE, |l| {
            l.rsl("X1");
            l.ml("Y1");
            l.mu("Y1");
            l.su("X1");
            l.ml("Y1");
            l.wsl("X1");
            l.su("X1");
            l.mu("Y1");
        }),
        ("rlock_ABBA2", false, CYCLE, |l| {
            l.rl("X1");
            l.l("Y1");
            l.u("Y1");
            l.rwu("X1");
            l.l("Y1");
            l.rl("X1");
            l.rwu("X1");
            l.u("Y1");
        }),
        ("rwsem_ABBA2", true, CYCLE, |l| {
            l.rsl("X1");
            l.ml("Y1");
            l.mu("Y1");
            l.su("X1");
            l.ml("Y1");
            l.rsl("X1");
            l.su("X1");
            l.mu("Y1");
        }),
        ("rlock_ABBA3", true, CYCLE, |l| {
            l.wl("X1");
            l.l("Y1");
            l.u("Y1");
            l.rwu("X1");
            l.l("Y1");
            l.wl("X1");
            l.rwu("X1");
            l.u("Y1");
        }),
        ("rwsem_ABBA3", true, CYCLE, |l| {
            l.wsl("X1");
            l.ml("Y1");
            l.mu("Y1");
            l.su("X1");
            l.ml("Y1");
            l.wsl("X1");
            l.su("X1");
            l.mu("Y1");
        }),
        // The chain cache must tell a read from a write: B -> A read is
        // cached, B -> A write is a different chain and a deadlock.
        ("rlock_chaincache_ABBA1", true, CYCLE, |l| {
            l.rl("X1");
            l.l("Y1");
            l.u("Y1");
            l.rwu("X1");
            l.l("Y1");
            l.rl("X1");
            l.rwu("X1");
            l.u("Y1");
            l.l("Y1");
            l.wl("X1");
            l.rwu("X1");
            l.u("Y1");
        }),
    ];
    for (name, fail, kinds, f) in mixes {
        out.push(case(name.to_owned(), fail, kinds, f));
    }

    // DO_TESTCASE_6x1RR(B): three-lock cycles of reads and writes (each event
    // takes its first lock for write or read, then its second).
    type Hold = (
        fn(&Locks, &str),
        &'static str,
        fn(&Locks, &str),
        &'static str,
    );
    let w = |l: &Locks, n: &str| l.wl(n);
    let r = |l: &Locks, n: &str| l.rl(n);
    let rw_cycles: [(&str, bool, [Hold; 3]); 4] = [
        (
            "W1R2_W2R3_W3R1",
            true,
            [(w, "X1", r, "Y1"), (w, "Y1", r, "Z1"), (w, "Z1", r, "X1")],
        ),
        (
            "W1W2_R2R3_W3R1",
            true,
            [(w, "X1", w, "Y1"), (r, "Y1", r, "Z1"), (w, "Z1", r, "X1")],
        ),
        (
            "W1W2_R2R3_R3W1",
            false,
            [(w, "X1", w, "Y1"), (r, "Y1", r, "Z1"), (r, "Z1", w, "X1")],
        ),
        (
            "W1R2_R2R3_W3W1",
            false,
            [(w, "X1", r, "Y1"), (r, "Y1", r, "Z1"), (w, "Z1", w, "X1")],
        ),
    ];
    for (name, fail, events) in rw_cycles {
        for p in permutations(3) {
            let order: String = p.iter().map(|i| char::from(b'1' + *i as u8)).collect();
            out.push(case(format!("{name}_{order}"), fail, CYCLE, move |l| {
                for &i in &p {
                    let (first, a, second, b) = events[i];
                    first(l, a);
                    second(l, b);
                    l.rwu(b);
                    l.rwu(a);
                }
            }));
        }
    }

    // irqsafe1: "irqs-on + irq-safe-A".
    static IRQSAFE1: [Event; 2] = [
        |l, t, i| {
            i.enter();
            l.lock(t, "A");
            l.unlock(t, "A");
            i.exit();
        },
        |l, t, _| {
            l.lock(t, "A");
            l.unlock(t, "A");
        },
    ];
    irq_family(
        &mut out,
        "irqsafe1",
        &IRQSAFE1,
        &Irq::BOTH,
        &Ty::IRQ3,
        &[Ty::RLock],
    );

    // irqsafe2A: "sirq-safe-A => hirqs-on": hardirqs enabled under a
    // softirq-safe lock (softirqs being enabled) makes it softirq-unsafe.
    static IRQSAFE2A: [Event; 2] = [
        |l, t, _| {
            Irq::Soft.enter();
            l.lock(t, "A");
            l.unlock(t, "A");
            Irq::Soft.exit();
        },
        |l, t, _| {
            irq::local_irq_disable();
            l.lock(t, "A");
            irq::local_irq_enable();
            l.unlock(t, "A");
        },
    ];
    irq_family(
        &mut out,
        "irqsafe2A",
        &IRQSAFE2A,
        &[Irq::Hard],
        &Ty::IRQ3,
        &[Ty::RLock],
    );

    // irqsafe2B: "safe-A + irqs-on": irqs enabled with an irq-safe lock held.
    static IRQSAFE2B: [Event; 2] = [
        |l, t, i| {
            i.enter();
            l.lock(t, "A");
            l.unlock(t, "A");
            i.exit();
        },
        |l, t, i| {
            i.disable();
            l.lock(t, "A");
            i.enable();
            l.unlock(t, "A");
        },
    ];
    irq_family(
        &mut out,
        "irqsafe2B",
        &IRQSAFE2B,
        &Irq::BOTH,
        &Ty::IRQ3,
        &[Ty::RLock],
    );

    // irqsafe3: "safe-A + unsafe-B #1".
    static IRQSAFE3: [Event; 3] = [
        |l, t, _| l.lock_unlock_2(t, "A", "B"),
        |l, t, _| {
            l.lock(t, "B");
            l.unlock(t, "B");
        },
        |l, t, i| {
            i.enter();
            l.lock(t, "A");
            l.unlock(t, "A");
            i.exit();
        },
    ];
    irq_family(
        &mut out,
        "irqsafe3",
        &IRQSAFE3,
        &Irq::BOTH,
        &Ty::IRQ3,
        &[Ty::RLock],
    );

    // irqsafe4: "safe-A + unsafe-B #2": A -> B taken with irqs off.
    static IRQSAFE4: [Event; 3] = [
        |l, t, i| {
            i.disable();
            l.lock_unlock_2(t, "A", "B");
            i.enable();
        },
        |l, t, _| {
            l.lock(t, "B");
            l.unlock(t, "B");
        },
        |l, t, i| {
            i.enter();
            l.lock(t, "A");
            l.unlock(t, "A");
            i.exit();
        },
    ];
    irq_family(
        &mut out,
        "irqsafe4",
        &IRQSAFE4,
        &Irq::BOTH,
        &Ty::IRQ3,
        &[Ty::RLock],
    );

    // irq_inversion: rwlock A written with irqs off (taking B) and read in
    // an irq; B of the column's type taken with irqs on.
    static IRQ_INVERSION: [Event; 3] = [
        |l, t, i| {
            i.disable();
            l.wl("A");
            l.lock(t, "B");
            l.unlock(t, "B");
            l.rwu("A");
            i.enable();
        },
        |l, t, _| {
            l.lock(t, "B");
            l.unlock(t, "B");
        },
        |l, _, i| {
            i.enter();
            l.rl("A");
            l.rwu("A");
            i.exit();
        },
    ];
    irq_family(
        &mut out,
        "irq_inversion",
        &IRQ_INVERSION,
        &Irq::BOTH,
        &Ty::IRQ3,
        &[Ty::RLock],
    );

    // irq_read_recursion #1-#3 (DO_TESTCASE_6x2x2RW): the column is the
    // rwlock A's acquisition (LOCK = write_lock or read_lock).
    let rw2 = [Ty::WLock, Ty::RLock];
    static IRQ_READ_RECURSION: [Event; 3] = [
        |l, _, i| {
            i.disable();
            l.wl("A");
            l.rwu("A");
            i.enable();
        },
        |l, _, _| {
            l.rl("A");
            l.rwu("A");
        },
        |l, t, i| {
            i.enter();
            l.lock(t, "A");
            l.l("B");
            l.u("B");
            l.unlock(t, "A");
            i.exit();
        },
    ];
    irq_family(
        &mut out,
        "irq_read_recursion",
        &IRQ_READ_RECURSION,
        &Irq::BOTH,
        &rw2,
        &[Ty::RLock],
    );
    static IRQ_READ_RECURSION2: [Event; 3] = [
        |l, t, i| {
            i.disable();
            l.l("B");
            l.lock(t, "A");
            l.unlock(t, "A");
            l.u("B");
            i.enable();
        },
        |l, _, _| {
            l.rl("A");
            l.rwu("A");
        },
        |l, _, i| {
            i.enter();
            l.l("B");
            l.u("B");
            i.exit();
        },
    ];
    irq_family(
        &mut out,
        "irq_read_recursion2",
        &IRQ_READ_RECURSION2,
        &Irq::BOTH,
        &rw2,
        &[Ty::RLock],
    );
    static IRQ_READ_RECURSION3: [Event; 3] = [
        |l, t, i| {
            i.disable();
            l.wl("B");
            l.lock(t, "A");
            l.unlock(t, "A");
            l.rwu("B");
            i.enable();
        },
        |l, _, _| {
            l.rl("A");
            l.rwu("A");
        },
        |l, _, i| {
            i.enter();
            l.rl("B");
            l.rwu("B");
            i.exit();
        },
    ];
    irq_family(
        &mut out,
        "irq_read_recursion3",
        &IRQ_READ_RECURSION3,
        &Irq::BOTH,
        &rw2,
        &[Ty::RLock],
    );

    // queued_read_lock_tests: read_lock recursive only in interrupt context.
    out.push(case(
        "queued_read_lock_hardirq_RE_Er".into(),
        true,
        CYCLE,
        |l| {
            hardirq_enter();
            l.rl_queued("A");
            l.l("B");
            l.u("B");
            l.rwu("A");
            hardirq_exit();
            irq::local_irq_disable();
            l.l("B");
            l.rl_queued("A");
            l.rwu("A");
            l.u("B");
            irq::local_irq_enable();
        },
    ));
    out.push(case(
        "queued_read_lock_hardirq_ER_rE".into(),
        false,
        CYCLE,
        |l| {
            hardirq_enter();
            l.l("B");
            l.rl_queued("A");
            l.rwu("A");
            l.u("B");
            hardirq_exit();
            irq::local_irq_disable();
            l.rl_queued("A");
            l.l("B");
            l.u("B");
            l.rwu("A");
            irq::local_irq_enable();
        },
    ));
    out.push(case(
        "queued_read_lock_hardirq_inversion".into(),
        true,
        IRQ_KINDS,
        |l| {
            hardirq_enter();
            l.l("B");
            l.u("B");
            hardirq_exit();
            irq::local_irq_disable();
            l.l("B");
            l.rl_queued("A");
            l.rwu("A");
            l.u("B");
            irq::local_irq_enable();
            l.rl_queued("A");
            l.rwu("A");
        },
    ));

    // local_lock_tests, on a real LocalLock (local_lock_t to lockdep: the
    // irq-dependency searches pass over it, as the kernel's do).
    out.push(case("local_lock_2".into(), false, IRQ_KINDS, |l| {
        let local = LocalLock::new(());
        drop(local.lock()); // IRQ-ON
        hardirq_enter();
        l.l("A"); // IN-IRQ
        l.u("A");
        hardirq_exit();
        irq::local_irq_disable();
        l.l("A");
        drop(local.lock()); // IN-IRQ A -> IRQ-ON local: a cycle only through local
        l.u("A");
        irq::local_irq_enable();
    }));
    out.push(case("local_lock_3A".into(), false, IRQ_KINDS, |l| {
        let local = LocalLock::new(());
        let g = local.lock(); // IRQ-ON
        l.l("B"); // IRQ-ON
        l.u("B");
        drop(g);
        hardirq_enter();
        l.l("A"); // IN-IRQ
        l.u("A");
        hardirq_exit();
        irq::local_irq_disable();
        l.l("A");
        drop(local.lock()); // A -> local -> B: irq-unsafe B only through local
        l.u("A");
        irq::local_irq_enable();
    }));
    out.push(case("local_lock_3B".into(), true, IRQ_KINDS, |l| {
        let local = LocalLock::new(());
        let g = local.lock(); // IRQ-ON
        l.l("B"); // IRQ-ON
        l.u("B");
        drop(g);
        hardirq_enter();
        l.l("A"); // IN-IRQ
        l.u("A");
        hardirq_exit();
        irq::local_irq_disable();
        l.l("A");
        drop(local.lock()); // through local: not counted
        l.u("A");
        irq::local_irq_enable();
        irq::local_irq_disable();
        l.l("A");
        l.l("B"); // IN-IRQ A -> IRQ-ON B directly: counted
        l.u("B");
        l.u("A");
        irq::local_irq_enable();
    }));

    // hardirq_unsafe_softirq_safe: one chain hardirq-safe -> hardirq-unsafe,
    // another softirq-unsafe -> softirq-safe (no deadlock); the first counts.
    out.push(case(
        "hardirq_deadlock_softirq_not_deadlock".into(),
        true,
        IRQ_KINDS,
        |l| {
            l.ml("A"); // hardirq- and softirq-unsafe
            irq::local_irq_disable();
            l.l("C");
            l.u("C");
            irq::local_irq_enable();
            l.mu("A");
            hardirq_enter();
            l.l("A"); // hardirq-safe
            l.u("A");
            hardirq_exit();
            irq::local_irq_disable();
            l.l("A");
            l.l("B");
            l.u("B");
            l.u("A");
            l.l("B");
            l.l("C");
            l.u("C");
            l.u("B");
            irq::local_irq_enable();
            Irq::Soft.enter();
            l.l("D"); // softirq-safe
            l.u("D");
            Irq::Soft.exit();
            irq::local_bh_disable();
            l.l("D"); // hardirq-unsafe
            l.u("D");
            irq::local_bh_enable();
            irq::local_irq_disable();
            l.l("C");
            l.l("D");
            l.u("D");
            l.u("C");
            irq::local_irq_enable();
        },
    ));

    wait_context_family(&mut out);

    // lockdep_set_subclass() keeps the lock's name.
    out.push(case(
        "lockdep_set_subclass_name".into(),
        false,
        RECURSION,
        |_| {
            static K: LockClassKey = LockClassKey::new("rwsem_X");
            let mut m = LockdepMap::with_key("rwsem_X", &K).sleeping();
            let before = m.name();
            m.set_subclass(1);
            assert_eq!(m.name(), before);
        },
    ));

    out.extend(ww_tests());
    out
}

/// The contexts of the kernel's `wait_context_tests`, the outer half of each
/// case (`guard(outer)`), and the locks taken inside them (the inner half).
#[derive(Clone, Copy, Debug)]
enum WaitCtx {
    /// `HARDIRQ`: an irq handler PREEMPT_RT would thread.
    Hardirq,
    /// `NOTTHREADED_HARDIRQ`: one it would not.
    NotThreadedHardirq,
    Softirq,
    /// `rcu_read_lock`.
    Rcu,
    /// `rcu_read_lock_bh`: bottom halves off, and its own map.
    RcuBh,
    /// `rcu_read_lock_sched`: preemption off, and its own map.
    RcuSched,
    RawSpinlock,
    Spinlock,
    Mutex,
}

impl WaitCtx {
    const OUTER: [WaitCtx; 9] = [
        WaitCtx::Hardirq,
        WaitCtx::NotThreadedHardirq,
        WaitCtx::Softirq,
        WaitCtx::Rcu,
        WaitCtx::RcuBh,
        WaitCtx::RcuSched,
        WaitCtx::RawSpinlock,
        WaitCtx::Spinlock,
        WaitCtx::Mutex,
    ];
    const INNER: [WaitCtx; 4] = [
        WaitCtx::Rcu,
        WaitCtx::RawSpinlock,
        WaitCtx::Spinlock,
        WaitCtx::Mutex,
    ];

    fn name(self) -> &'static str {
        match self {
            WaitCtx::Hardirq => "HARDIRQ",
            WaitCtx::NotThreadedHardirq => "NOTTHREADED_HARDIRQ",
            WaitCtx::Softirq => "SOFTIRQ",
            WaitCtx::Rcu => "RCU",
            WaitCtx::RcuBh => "RCU_BH",
            WaitCtx::RcuSched => "RCU_SCHED",
            WaitCtx::RawSpinlock => "raw_spinlock",
            WaitCtx::Spinlock => "spinlock",
            WaitCtx::Mutex => "mutex",
        }
    }

    /// The kernel's verdict for `inner` in this context (its table "wait
    /// contexts (considering PREEMPT_RT)"): whether `inner` is allowed.
    fn allows(self, inner: WaitCtx) -> bool {
        match (self, inner) {
            (_, WaitCtx::Rcu | WaitCtx::RawSpinlock) => true,
            (WaitCtx::Mutex, _) => true,
            (_, WaitCtx::Mutex) => false,
            // spinlock_t: not where nothing may be preempted.
            (WaitCtx::NotThreadedHardirq | WaitCtx::RcuSched | WaitCtx::RawSpinlock, _) => false,
            _ => true,
        }
    }

    /// Enters the context, with the lock named `n` of the wait maps `w`.
    fn enter(self, w: &WaitMaps, n: usize) {
        match self {
            WaitCtx::Hardirq => hardirq_enter(),
            WaitCtx::NotThreadedHardirq => {
                irq::local_irq_disable();
                irq::irq_enter();
            }
            WaitCtx::Softirq => Irq::Soft.enter(),
            WaitCtx::Rcu => lockdep::acquire(&w.rcu, RecursiveRead, false, 0),
            WaitCtx::RcuBh => {
                irq::local_bh_disable();
                lockdep::acquire(&w.rcu_bh, RecursiveRead, false, 0);
            }
            WaitCtx::RcuSched => {
                sched::preempt_disable();
                lockdep::acquire(&w.rcu_sched, RecursiveRead, false, 0);
            }
            WaitCtx::RawSpinlock => {
                sched::preempt_disable();
                lockdep::acquire(&w.raw[n], Exclusive, false, 0);
            }
            WaitCtx::Spinlock => {
                sched::preempt_disable();
                lockdep::acquire(&w.spin[n], Exclusive, false, 0);
            }
            WaitCtx::Mutex => lockdep::acquire(&w.mutex[n], Exclusive, false, 0),
        }
    }

    /// Leaves the context entered with [`enter`](Self::enter).
    fn exit(self, w: &WaitMaps, n: usize) {
        match self {
            WaitCtx::Hardirq | WaitCtx::NotThreadedHardirq => hardirq_exit(),
            WaitCtx::Softirq => Irq::Soft.exit(),
            WaitCtx::Rcu => lockdep::release(&w.rcu),
            WaitCtx::RcuBh => {
                lockdep::release(&w.rcu_bh);
                irq::local_bh_enable();
            }
            WaitCtx::RcuSched => {
                lockdep::release(&w.rcu_sched);
                sched::preempt_enable();
            }
            WaitCtx::RawSpinlock => {
                lockdep::release(&w.raw[n]);
                sched::preempt_enable();
            }
            WaitCtx::Spinlock => {
                lockdep::release(&w.spin[n]);
                sched::preempt_enable();
            }
            WaitCtx::Mutex => lockdep::release(&w.mutex[n]),
        }
    }
}

/// The maps of the wait-context cases, with the wait types of the kernel's:
/// the three RCU flavours' maps (`rcu_lock_map`, `rcu_bh_lock_map`,
/// `rcu_sched_lock_map`), and locks A (outer) and B (inner) of each type.
struct WaitMaps {
    rcu: LockdepMap,
    rcu_bh: LockdepMap,
    rcu_sched: LockdepMap,
    raw: [LockdepMap; 2],
    spin: [LockdepMap; 2],
    mutex: [LockdepMap; 2],
}

impl WaitMaps {
    fn new() -> WaitMaps {
        use WaitType::{Config, Free, Spin};
        static KEYS: [LockClassKey; 6] = [
            LockClassKey::new("raw_lock_A"),
            LockClassKey::new("raw_lock_B"),
            LockClassKey::new("lock_A"),
            LockClassKey::new("lock_B"),
            LockClassKey::new("mutex_A"),
            LockClassKey::new("mutex_B"),
        ];
        let map = |i: usize| LockdepMap::with_key(KEYS[i].name(), &KEYS[i]);
        WaitMaps {
            rcu: LockdepMap::new("rcu_read_lock").with_waits(Config, Free),
            rcu_bh: LockdepMap::new("rcu_read_lock_bh").with_waits(Config, Free),
            rcu_sched: LockdepMap::new("rcu_read_lock_sched").with_waits(Spin, Free),
            raw: [map(0).raw_spinning(), map(1).raw_spinning()],
            spin: [map(2).spinning(), map(3).spinning()],
            mutex: [map(4).sleeping(), map(5).sleeping()],
        }
    }
}

/// `wait_context_tests` (run by the kernel with `PROVE_RAW_LOCK_NESTING`, as
/// ksync's lockdep always checks): each inner lock in each outer context,
/// `<inner>_in_<outer>`; 36 cases.
fn wait_context_family(out: &mut Vec<Case>) {
    for outer in WaitCtx::OUTER {
        for inner in WaitCtx::INNER {
            let mut c = case(
                format!("{}_in_{}", inner.name(), outer.name()),
                !outer.allows(inner),
                WAIT_CTX,
                move |_| {
                    let w = WaitMaps::new();
                    outer.enter(&w, 0);
                    inner.enter(&w, 1);
                    inner.exit(&w, 1);
                    outer.exit(&w, 0);
                },
            );
            c.first_needed = true;
            out.push(c);
        }
    }
}

/// Runs `c` on fresh maps after a reset; the reports it raised, and its
/// panic's message if it panicked.
fn dotest(c: &Case) -> (Vec<Report>, Option<String>) {
    lockdep::reset();
    let pc = sched::preempt_count();
    let locks = Locks::new();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (c.run)(&locks)))
        .err()
        .map(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
    assert_eq!(
        sched::preempt_count(),
        pc,
        "{}: preempt count not restored",
        c.name
    );
    assert!(!irq::irqs_disabled(), "{}: irqs left disabled", c.name);
    let rs = lockdep::take_reports();
    lockdep::reset();
    (rs, panicked)
}

#[test]
fn the_kernels_locking_selftest() {
    std::thread::spawn(|| {
        lockdep::set_mode(Mode::Warn);
        let cases = families();
        let mut wrong = Vec::new();
        for c in &cases {
            let (rs, panicked) = dotest(c);
            let ok = if let Some(m) = c.panics {
                rs.is_empty() && panicked.as_deref().is_some_and(|p| p.contains(m))
            } else if panicked.is_some() {
                false
            } else if c.fail {
                !rs.is_empty()
                    && rs.iter().all(|r| c.kinds.contains(&r.kind))
                    && (!c.first_needed || rs.iter().any(|r| r.kind == c.kinds[0]))
            } else {
                rs.is_empty()
            };
            if !ok {
                let got: Vec<ReportKind> = rs.iter().map(|r| r.kind).collect();
                wrong.push(format!(
                    "{}: expected {}, got {got:?}, panic {panicked:?}",
                    c.name,
                    if c.fail { "FAILURE" } else { "SUCCESS" }
                ));
            }
        }
        eprintln!(
            "locking selftest: {} of {} cases as the kernel",
            cases.len() - wrong.len(),
            cases.len()
        );
        assert!(
            wrong.is_empty(),
            "{} cases differ:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert_eq!(cases.len(), 387, "the count in the module docs");
    })
    .join()
    .unwrap();
}

/// The kernel's `ww_tests`: the wound/wait family, on ksync's real
/// [`WwMutex`](ksync::ww_mutex::WwMutex)es of one wait-die class (the
/// kernel's selftest uses `DEFINE_WD_CLASS(ww_lockdep)`), its contexts and a
/// spinlock A, so that what lockdep sees is what the ww_mutex feeds it.
/// "block" is a lock without a context (`WWL1`: `ww_mutex_lock(o, NULL)`),
/// "try" a trylock without one, "context" a lock in the context `t`.
/// 31 of the kernel's 36 cases (the API misuses among them a panic, as the
/// module docs say); the module docs list the 5 others.
fn ww_tests() -> Vec<Case> {
    use ksync::Error;
    use ksync::spinlock::SpinLock;
    use ksync::ww_mutex::{WwAcquireCtx, WwClass, WwMutex};
    use std::sync::mpsc::channel;

    static WW: WwClass = WwClass::new_wait_die("ww_lockdep_acquire", "ww_lockdep_mutex");
    static SPIN_X: LockClassKey = LockClassKey::new("lock_X");
    static SPIN_Y: LockClassKey = LockClassKey::new("lock_Y");
    const NONE: &[ReportKind] = &[];
    let w = |name: &str| format!("ww_test_{name}");
    let mut out = Vec::new();

    // ww api failures
    out.push(case(w("fail_acquire"), false, NONE, |_| {
        let o = WwMutex::new(&WW, ());
        let t = WwAcquireCtx::new(&WW);
        let g = o.lock(&t).unwrap();
        assert_eq!(o.lock(&t).unwrap_err(), Error::AlreadyHeld);
        assert_eq!(o.try_lock(None).unwrap_err(), Error::WouldBlock);
        drop(g);
        drop(o.try_lock(None).expect("free"));
    }));
    out.push(case(w("normal"), false, NONE, |_| {
        // The plain mutex API on a ww_mutex (no context).
        let o = WwMutex::new(&WW, ());
        drop(o.lock_noctx());
        drop(o.try_lock(None).unwrap());
        let g = o.lock_noctx();
        assert!(o.try_lock(None).is_err());
        drop(g);
        assert!(!o.is_locked());
    }));

    // The API misuses the kernel catches with a DEBUG_LOCKS_WARN: a panic.
    out.push(case_panics(
        w("diff_class"),
        "locked with a context of class",
        |_| {
            static OTHER: WwClass = WwClass::new_wait_die("ww_other_acquire", "ww_other_mutex");
            let o = WwMutex::new(&WW, ());
            let t = WwAcquireCtx::new(&OTHER);
            drop(o.lock(&t));
        },
    ));
    out.push(case_panics(
        w("context_done_twice"),
        "ww_acquire_done called twice",
        |_| {
            let t = WwAcquireCtx::new(&WW);
            t.done();
            t.done();
        },
    ));
    out.push(case_panics(
        w("context_lock_after_done"),
        "after ww_acquire_done",
        |_| {
            let o = WwMutex::new(&WW, ());
            let t = WwAcquireCtx::new(&WW);
            t.done();
            drop(o.lock(&t));
        },
    ));

    // ww contexts mixing
    out.push(case(w("two_contexts"), true, RECURSION, |_| {
        let t = WwAcquireCtx::new(&WW);
        let t2 = WwAcquireCtx::new(&WW);
        drop((t2, t));
    }));

    // EDEADLK handling: o2 is held by an older context (on a thread of its
    // own: a context is its thread's); `slow` backs off with lock_slow.
    for slow in [false, true] {
        let name = if slow {
            "edeadlk_normal_slow"
        } else {
            "edeadlk_normal"
        };
        out.push(case(w(name), false, NONE, move |_| {
            let o = WwMutex::new(&WW, ());
            let o2 = WwMutex::new(&WW, ());
            let (held_tx, held_rx) = channel();
            let (go_tx, go_rx) = channel::<()>();
            let o2 = &o2;
            std::thread::scope(|s| {
                let older = WwAcquireCtx::new(&WW).stamp();
                s.spawn(move || {
                    let t2 = WwAcquireCtx::new(&WW);
                    let g = o2.lock(&t2).unwrap();
                    held_tx.send(t2.stamp()).unwrap();
                    go_rx.recv().unwrap();
                    drop(g);
                });
                let t2_stamp = held_rx.recv().unwrap();
                let t = WwAcquireCtx::new(&WW);
                assert!(older < t2_stamp && t2_stamp < t.stamp());
                let g = o.lock(&t).unwrap();
                assert_eq!(o2.lock(&t).unwrap_err(), Error::Deadlock);
                drop(g);
                go_tx.send(()).unwrap();
                let g2 = if slow {
                    o2.lock_slow(&t)
                } else {
                    o2.lock(&t).unwrap()
                };
                drop(g2);
            });
        }));
    }

    // The context's contending lock (`ww_mutex_lock_slow`'s and
    // `ww_mutex_lock_acquired`'s DEBUG_LOCKS_WARNs): a panic, before the
    // attempt. `lock_slow` with nothing to back off from:
    out.push(case_panics(
        w("unneeded_slow"),
        "no -EDEADLK to back off from",
        |_| {
            let o = WwMutex::new(&WW, ());
            let t = WwAcquireCtx::new(&WW);
            drop(o.lock_slow(&t));
        },
    ));
    // And after `t`, holding o, got -EDEADLK from o2 (held, with o3 where
    // `o3_held`, by an older context): what it does next.
    #[derive(Clone, Copy)]
    enum Next {
        /// o2 let go, o still held, o2 taken (`edeadlk_no_unlock`).
        NoUnlock,
        /// o3 taken, o still held (`edeadlk_acquire_more`).
        More,
        /// o dropped, o3 taken instead of o2 (`edeadlk_acquire_wrong`).
        Wrong,
    }
    let edeadlk_cases = [
        ("edeadlk_no_unlock", Next::NoUnlock, false, "still held"),
        ("edeadlk_no_unlock_slow", Next::NoUnlock, true, "back off"),
        (
            "edeadlk_acquire_more",
            Next::More,
            false,
            "after another ww_mutex returned -EDEADLK",
        ),
        ("edeadlk_acquire_more_slow", Next::More, true, "back off"),
        (
            "edeadlk_acquire_wrong",
            Next::Wrong,
            false,
            "after another ww_mutex returned -EDEADLK",
        ),
        (
            "edeadlk_acquire_wrong_slow",
            Next::Wrong,
            true,
            "after another ww_mutex returned -EDEADLK",
        ),
    ];
    let edeadlk_more = [
        (
            "edeadlk_acquire_more_edeadlk",
            false,
            "after another ww_mutex returned -EDEADLK",
        ),
        ("edeadlk_acquire_more_edeadlk_slow", true, "back off"),
    ];
    let all = edeadlk_cases
        .into_iter()
        .map(|(n, next, slow, m)| (n, next, slow, m, false))
        .chain(
            edeadlk_more
                .into_iter()
                .map(|(n, slow, m)| (n, Next::More, slow, m, true)),
        );
    for (name, next, slow, message, o3_held) in all {
        out.push(case_panics(w(name), message, move |_| {
            let o = WwMutex::new(&WW, ());
            let o2 = WwMutex::new(&WW, ());
            let o3 = WwMutex::new(&WW, ());
            let (held_tx, held_rx) = channel();
            let (go_tx, go_rx) = channel::<()>();
            let (o2, o3) = (&o2, &o3);
            std::thread::scope(move |s| {
                // The older context, on a thread of its own (a context is its
                // thread's). It lets go when told, or when `go_tx` is dropped
                // by the panic unwinding this closure, before the scope joins.
                s.spawn(move || {
                    let t2 = WwAcquireCtx::new(&WW);
                    let g2 = o2.lock(&t2).unwrap();
                    let g3 = o3_held.then(|| o3.lock(&t2).unwrap());
                    held_tx.send(t2.stamp()).unwrap();
                    let _ = go_rx.recv();
                    drop((g3, g2));
                });
                let t2_stamp = held_rx.recv().unwrap();
                let t = WwAcquireCtx::new(&WW);
                assert!(t2_stamp < t.stamp());
                let g = o.lock(&t).unwrap();
                assert_eq!(o2.lock(&t).unwrap_err(), Error::Deadlock);
                let take = |m: &WwMutex<()>| {
                    if slow {
                        drop(m.lock_slow(&t));
                    } else {
                        drop(m.lock(&t));
                    }
                };
                match next {
                    Next::NoUnlock => {
                        go_tx.send(()).unwrap();
                        take(o2);
                    }
                    Next::More => take(o3),
                    Next::Wrong => {
                        drop(g);
                        take(o3);
                        return;
                    }
                }
                drop(g);
            });
        }));
    }

    // spinlock nest unlocked: spin_lock_nest_lock(&A, &o.base) with o not
    // held. A guard proves its lock held, so ksync's `lock_nest_lock` cannot
    // say this; lockdep's own `acquire_nest` can.
    out.push(case(
        w("spin_nest_unlocked"),
        true,
        &[ReportKind::NestLockNotHeld],
        |_| {
            let a = LockdepMap::new("lock_A").spinning();
            let o = LockdepMap::with_key("ww_lockdep_mutex", &WW_MUTEX_KEY).sleeping();
            lockdep::acquire_nest(&a, Exclusive, false, &o);
            lockdep::release(&a);
        },
    ));
    // spinlock nest test: X1 serializes Y1 and Y2, with A between them.
    out.push(case(w("spin_nest_lock"), false, NONE, |_| {
        let x1 = SpinLock::with_class((), "lock_X", &SPIN_X);
        let y1 = SpinLock::with_class((), "lock_Y", &SPIN_Y);
        let y2 = SpinLock::with_class((), "lock_Y", &SPIN_Y);
        let a = SpinLock::new(());
        let gx = x1.lock();
        let gy1 = y1.lock_nest_lock(&gx);
        let ga = a.lock();
        let gy2 = y2.lock_nest_lock(&gx);
        drop(ga);
        drop(gy2);
        drop(gy1);
        drop(gx);
    }));

    // The block / try / context matrix: the first of two mutexes of the
    // class taken one way, the second another.
    #[derive(Clone, Copy)]
    enum How {
        Block,
        Try,
        Context,
    }
    let matrix = [
        (How::Context, How::Block, true),
        (How::Context, How::Try, false),
        (How::Context, How::Context, false),
        (How::Try, How::Block, true),
        (How::Try, How::Try, false),
        (How::Try, How::Context, true),
        (How::Block, How::Block, true),
        (How::Block, How::Try, false),
        (How::Block, How::Context, true),
    ];
    let word = |h: How| match h {
        How::Block => "block",
        How::Try => "try",
        How::Context => "context",
    };
    for (first, second, fail) in matrix {
        let name = format!("{}_{}", word(first), word(second));
        out.push(case(w(&name), fail, RECURSION, move |_| {
            let o = WwMutex::new(&WW, ());
            let o2 = WwMutex::new(&WW, ());
            // WWAI comes first when the first lock is taken in the context,
            // else between the two (as the kernel's cases).
            let early = matches!(first, How::Context).then(|| WwAcquireCtx::new(&WW));
            let g1 = match first {
                How::Block => o.lock_noctx(),
                How::Try => o.try_lock(None).unwrap(),
                How::Context => o.lock(early.as_ref().unwrap()).unwrap(),
            };
            let late =
                (matches!(second, How::Context) && early.is_none()).then(|| WwAcquireCtx::new(&WW));
            let t = early.as_ref().or(late.as_ref());
            let g2 = match second {
                How::Block => o2.lock_noctx(),
                How::Try => o2.try_lock(None).unwrap(),
                How::Context => o2.lock(t.unwrap()).unwrap(),
            };
            drop(g2);
            drop(g1);
        }));
    }

    // spinlock: A taken before and after a ww_mutex: block and context
    // close an A -> o -> A cycle (and sleep under a spinlock); trylocks add
    // no dependencies.
    for (how, fail) in [(How::Block, true), (How::Try, false), (How::Context, true)] {
        let name = format!("spin_{}", word(how));
        out.push(case(
            w(&name),
            fail,
            // Sleeping under the spinlock is also an invalid wait context,
            // which the kernel prints beside might_sleep's report.
            &[
                ReportKind::CircularDependency,
                ReportKind::SleepInAtomic,
                ReportKind::InvalidWaitContext,
            ],
            move |_| {
                let o = WwMutex::new(&WW, ());
                let a = SpinLock::new(());
                drop(a.lock());
                let t = matches!(how, How::Context).then(|| WwAcquireCtx::new(&WW));
                let take = || match how {
                    How::Block => o.lock_noctx(),
                    How::Try => o.try_lock(None).unwrap(),
                    How::Context => o.lock(t.as_ref().unwrap()).unwrap(),
                };
                let g = take();
                drop(a.lock());
                drop(g);
                let ga = a.lock();
                let g = take();
                drop(g);
                drop(ga);
            },
        ));
    }
    out
}

/// The class key of the ww mutexes of [`ww_tests`], for the case that names
/// a mutex's map without a mutex.
static WW_MUTEX_KEY: LockClassKey = LockClassKey::new("ww_lockdep_mutex");
