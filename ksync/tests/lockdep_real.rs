//! Lockdep on ksync's real locks: each report kind raised through the hooks of
//! `SpinLock`, `Mutex`, `Semaphore`, RCU and a real irq (a signal delivered to the
//! thread), asserting the report's kind and the classes it names.
//!
//! Every test uses lock classes of its own (keyed names, or distinct creation
//! sites) and reads only its own thread's reports, so tests run in parallel in
//! one process. Tests that need a fresh thread (irq state, thread exit) spawn one.
#![cfg(feature = "lockdep")]

use ksync::irq;
use ksync::lockdep::{self, LockClassKey, Mode, Report, ReportKind, take_reports};
use ksync::mutex::Mutex;
use ksync::rcu;
use ksync::sched;
use ksync::semaphore::Semaphore;
use ksync::spinlock::SpinLock;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

fn kinds(rs: &[Report]) -> Vec<ReportKind> {
    rs.iter().map(|r| r.kind).collect()
}

/// Asserts exactly one report on this thread, of `kind`, naming every class in `names`.
fn expect_one(kind: ReportKind, names: &[&str]) -> Report {
    let rs = take_reports();
    assert_eq!(kinds(&rs), vec![kind], "reports: {rs:#?}");
    let r = rs.into_iter().next().unwrap();
    for n in names {
        assert!(
            r.involves(n),
            "{kind:?} report does not name {n}: {:?}",
            r.classes
        );
    }
    r
}

/// Asserts the two reports of a sleeping lock taken in atomic context, as the
/// kernel prints them: `might_sleep`'s "sleeping function called from invalid
/// context", then lockdep's "Invalid wait context" (a sleeping lock where only
/// spinning ones may be taken); both name every class in `names`. Returns the
/// first.
fn expect_sleep_in_atomic(names: &[&str]) -> Report {
    let rs = take_reports();
    assert_eq!(
        kinds(&rs),
        vec![ReportKind::SleepInAtomic, ReportKind::InvalidWaitContext],
        "reports: {rs:#?}"
    );
    for r in &rs {
        for n in names {
            assert!(
                r.involves(n),
                "{:?} report does not name {n}: {:?}",
                r.kind,
                r.classes
            );
        }
    }
    rs.into_iter().next().unwrap()
}

fn expect_none() {
    let rs = take_reports();
    assert!(rs.is_empty(), "unexpected reports: {rs:#?}");
}

/// These tests assert reports; `KSYNC_LOCKDEP=off` in the environment turns them
/// off, and `panic` would abort the test at the first report.
fn warn_mode() {
    if lockdep::mode() != Mode::Warn {
        lockdep::set_mode(Mode::Warn);
    }
}

#[test]
fn mutex_ab_ba_is_found_single_threaded() {
    warn_mode();
    static KA: LockClassKey = LockClassKey::new("real_mutex_A");
    static KB: LockClassKey = LockClassKey::new("real_mutex_B");
    let a = Mutex::with_class(0, "real_mutex_A", &KA);
    let b = Mutex::with_class(0, "real_mutex_B", &KB);
    {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    expect_none();
    {
        let _gb = b.lock();
        let _ga = a.lock(); // one thread: no hang, but the order is reported
    }
    let r = expect_one(
        ReportKind::CircularDependency,
        &["real_mutex_A", "real_mutex_B"],
    );
    assert!(
        r.text.contains("possible circular locking dependency"),
        "{r}"
    );
    // Reported once: the inverted chain is now known.
    {
        let _gb = b.lock();
        let _ga = a.lock();
    }
    expect_none();
}

#[test]
fn run_time_mutex_class_is_its_creation_site() {
    warn_mode();
    let (line_a, a) = (line!(), Mutex::new(0));
    let (line_b, b) = (line!(), Mutex::new(0));
    {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    {
        let _gb = b.lock();
        let _ga = a.lock();
    }
    let r = expect_one(ReportKind::CircularDependency, &["mutex"]);
    for line in [line_a, line_b] {
        let site = format!("{}:{line}", file!());
        assert!(r.text.contains(&site), "report does not name {site}:\n{r}");
    }
}

#[test]
fn spinlock_mutex_spinlock_three_lock_cycle() {
    warn_mode();
    static KA: LockClassKey = LockClassKey::new("cyc_spin_A");
    static KM: LockClassKey = LockClassKey::new("cyc_mutex_M");
    static KC: LockClassKey = LockClassKey::new("cyc_spin_C");
    let a = SpinLock::with_class(0, "cyc_spin_A", &KA);
    let m = Mutex::with_class(0, "cyc_mutex_M", &KM);
    let c = SpinLock::with_class(0, "cyc_spin_C", &KC);
    {
        // A → M is itself a sleep-in-atomic (a mutex under a spinlock): reported
        // as such (and as an invalid wait context), and the edge still recorded.
        let _ga = a.lock();
        let _gm = m.lock();
    }
    let r = expect_sleep_in_atomic(&["cyc_mutex_M", "cyc_spin_A"]);
    assert!(r.text.contains("cyc_spin_A"), "held locks not shown:\n{r}");
    {
        let _gm = m.lock();
        let _gc = c.lock(); // M → C
    }
    expect_none();
    {
        let _gc = c.lock();
        let _ga = a.lock(); // C → A closes A → M → C → A
    }
    let r = expect_one(
        ReportKind::CircularDependency,
        &["cyc_spin_A", "cyc_mutex_M", "cyc_spin_C"],
    );
    assert_eq!(r.classes.len(), 3, "{r}");
}

#[test]
fn mutex_lock_nested_with_a_subclass_is_not_recursive() {
    warn_mode();
    static K: LockClassKey = LockClassKey::new("nested_node");
    let parent = Mutex::with_class(1, "nested_node", &K);
    let child = Mutex::with_class(2, "nested_node", &K);
    {
        let gp = parent.lock();
        let gc = child.lock_nested(1); // SINGLE_DEPTH_NESTING
        assert_eq!(*gp + *gc, 3);
    }
    expect_none();
    // The same without the subclass: two locks of one class, nested.
    {
        let _gp = parent.lock();
        let _gc = child.lock();
    }
    expect_one(ReportKind::RecursiveLocking, &["nested_node"]);
}

#[test]
fn recursive_mutex_lock_is_reported_before_it_hangs() {
    warn_mode();
    static K: LockClassKey = LockClassKey::new("recursive_mutex");
    let m = Mutex::with_class((), "recursive_mutex", &K);
    let g = m.lock();
    // A trylock of a held lock just fails: never a report.
    assert!(m.try_lock().is_none());
    expect_none();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _g2 = m.lock(); // reported by lockdep, then refused by the mutex
    }));
    assert!(r.is_err(), "a recursive mutex_lock must not succeed");
    expect_one(ReportKind::RecursiveLocking, &["recursive_mutex"]);
    // The refused acquire was undone: one lock held, and the unlock balances.
    assert_eq!(lockdep::held_lock_count(), 1);
    drop(g);
    assert_eq!(lockdep::held_lock_count(), 0);
    expect_none();
}

static IRQ_LOCK_KEY: LockClassKey = LockClassKey::new("irq_used_lock");
static IRQ_LOCK: SpinLock<u32> = SpinLock::with_class(0, "irq_used_lock", &IRQ_LOCK_KEY);
static IRQ_HITS: AtomicU32 = AtomicU32::new(0);

fn irq_handler(_irq: u32) {
    assert!(sched::in_hardirq());
    *IRQ_LOCK.lock() += 1;
    IRQ_HITS.fetch_add(1, Relaxed);
}

#[test]
fn irq_safety_inversion_with_a_real_irq() {
    warn_mode();
    irq::request_irq(1, irq_handler, "lockdep_real").unwrap();
    std::thread::spawn(|| {
        let me = sched::current();
        // The irq (a signal to this thread) runs its handler now, in hardirq
        // context: IRQ_LOCK becomes {IN-HARDIRQ-W}.
        irq::raise_irq(1, &me).unwrap();
        assert_eq!(IRQ_HITS.load(Relaxed), 1, "the handler did not run");
        expect_none();
        // Correct: taken with irqs disabled in process context.
        *IRQ_LOCK.lock_irqsave() += 1;
        expect_none();
        // Wrong: plain spin_lock with irqs enabled — the irq could arrive while
        // it is held, on this CPU, and spin on it for ever: {HARDIRQ-ON-W}.
        *IRQ_LOCK.lock() += 1;
        let r = expect_one(ReportKind::InconsistentIrqUsage, &["irq_used_lock"]);
        assert!(r.text.contains("HARDIRQ"), "{r}");
        assert_eq!(*IRQ_LOCK.lock_irqsave(), 3);
    })
    .join()
    .unwrap();
    irq::free_irq(1).unwrap();
}

#[test]
fn irq_safe_to_unsafe_dependency_with_a_real_irq() {
    warn_mode();
    static KS: LockClassKey = LockClassKey::new("inv_irq_safe");
    static KU: LockClassKey = LockClassKey::new("inv_irq_unsafe");
    static SAFE: SpinLock<u32> = SpinLock::with_class(0, "inv_irq_safe", &KS);
    static UNSAFE: SpinLock<u32> = SpinLock::with_class(0, "inv_irq_unsafe", &KU);
    fn handler(_irq: u32) {
        *SAFE.lock() += 1;
    }
    irq::request_irq(2, handler, "lockdep_real_inv").unwrap();
    std::thread::spawn(|| {
        irq::raise_irq(2, &sched::current()).unwrap(); // SAFE: {IN-HARDIRQ-W}
        assert_eq!(*SAFE.lock_irqsave(), 1, "the handler did not run");
        *UNSAFE.lock() += 1; // UNSAFE: {HARDIRQ-ON-W}
        expect_none();
        {
            let _gs = SAFE.lock_irqsave();
            let _gu = UNSAFE.lock(); // SAFE → UNSAFE: the irq can wait on UNSAFE
        }
        expect_one(
            ReportKind::IrqSafeToUnsafe,
            &["inv_irq_safe", "inv_irq_unsafe"],
        );
    })
    .join()
    .unwrap();
    irq::free_irq(2).unwrap();
}

#[test]
fn mutex_under_a_spinlock_sleeps_in_atomic() {
    warn_mode();
    static KS: LockClassKey = LockClassKey::new("atomic_spin");
    static KM: LockClassKey = LockClassKey::new("atomic_mutex");
    let s = SpinLock::with_class(0, "atomic_spin", &KS);
    let m = Mutex::with_class(0, "atomic_mutex", &KM);
    {
        let _gs = s.lock();
        let _gm = m.lock(); // uncontended, still a sleep point: reported
    }
    let r = expect_sleep_in_atomic(&["atomic_mutex", "atomic_spin"]);
    assert!(r.text.contains("atomic_spin"), "held locks not shown:\n{r}");
    assert!(
        r.text
            .contains("sleeping function called from invalid context"),
        "{r}"
    );
    // A trylock never sleeps: fine under a spinlock.
    {
        let _gs = s.lock();
        assert!(m.try_lock().is_some());
    }
    expect_none();
}

#[test]
fn semaphore_down_under_preempt_disable_sleeps_in_atomic() {
    warn_mode();
    let sem = Semaphore::new(1);
    sched::preempt_disable();
    sem.down(); // a unit is free: no wait, but down() may sleep
    sched::preempt_enable();
    let r = expect_one(ReportKind::SleepInAtomic, &[]);
    assert!(r.text.contains("preempt_count"), "{r}");
    sem.up();
    // Not in atomic context: nothing; and the semaphore is not tracked as held.
    sem.down();
    assert_eq!(lockdep::held_lock_count(), 0);
    sem.up();
    expect_none();
}

#[test]
fn mutex_held_at_thread_exit() {
    warn_mode();
    static K: LockClassKey = LockClassKey::new("exit_mutex");
    static M: Mutex<u32> = Mutex::with_class(0, "exit_mutex", &K);
    let tid = std::thread::spawn(|| {
        std::mem::forget(M.lock());
        sched::current().tid()
    })
    .join()
    .unwrap();
    let rs: Vec<Report> = lockdep::take_reports_involving("exit_mutex")
        .into_iter()
        .filter(|r| r.tid == tid)
        .collect();
    assert_eq!(kinds(&rs), vec![ReportKind::HeldAtExit], "{rs:#?}");
}

#[test]
fn condvar_wait_keeps_the_held_lock_stack_consistent() {
    warn_mode();
    use ksync::condvar::CondVar;
    use std::sync::Arc;
    static KO: LockClassKey = LockClassKey::new("cv_outer");
    static KM: LockClassKey = LockClassKey::new("cv_mutex");
    let outer = Mutex::with_class((), "cv_outer", &KO);
    let pair = Arc::new((Mutex::with_class(false, "cv_mutex", &KM), CondVar::new()));
    let p2 = pair.clone();
    let t = std::thread::spawn(move || {
        *p2.0.lock() = true;
        p2.1.notify_all();
    });
    let _go = outer.lock();
    let mut g = pair.0.lock();
    assert_eq!(lockdep::held_lock_count(), 2);
    pair.1.wait_while(&mut g, |ready| !*ready);
    assert_eq!(lockdep::held_lock_count(), 2);
    drop(g);
    assert_eq!(lockdep::held_lock_count(), 1);
    t.join().unwrap();
    expect_none();
}

#[test]
fn interrupted_mutex_lock_is_undone() {
    warn_mode();
    use std::sync::Arc;
    static K: LockClassKey = LockClassKey::new("intr_mutex");
    let m = Arc::new(Mutex::with_class(0, "intr_mutex", &K));
    let g = m.lock();
    let m2 = m.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(sched::current()).unwrap();
        let r = m2.lock_interruptible();
        assert_eq!(r.err(), Some(ksync::Error::Interrupted));
        // The failed acquire was undone: nothing held, nothing reported.
        assert_eq!(lockdep::held_lock_count(), 0);
        assert!(take_reports().is_empty());
        sched::flush_signals();
    });
    let task = rx.recv().unwrap();
    while task.state() != sched::TaskState::Interruptible {
        std::thread::yield_now();
    }
    task.send_signal(sched::Signal::SIGTERM);
    t.join().unwrap();
    drop(g);
    expect_none();
}

#[test]
fn rcu_read_section_is_a_lockdep_pseudo_lock() {
    warn_mode();
    assert!(!lockdep::rcu_read_lock_held());
    {
        let _r = rcu::rcu_read_lock();
        assert!(lockdep::rcu_read_lock_held());
        // What synchronize_rcu checks first: waiting for a grace period here
        // would wait for this very section.
        lockdep::assert_not_in_rcu_read_section("synchronize_rcu");
        let r = expect_one(ReportKind::RcuSyncInReader, &["rcu_read_lock"]);
        assert!(r.text.contains("synchronize_rcu"), "{r}");
        // And synchronize_rcu itself refuses (panics) rather than hang.
        let p = catch_unwind(|| rcu::synchronize_rcu());
        assert!(p.is_err());
        let _ = take_reports(); // whatever synchronize_rcu reported on its way
    }
    assert!(!lockdep::rcu_read_lock_held());
    rcu::synchronize_rcu(); // outside: fine
    expect_none();
}

#[test]
fn mutex_unlock_of_an_unheld_mutex_is_a_bad_unlock() {
    warn_mode();
    static K: LockClassKey = LockClassKey::new("bad_unlock_mutex");
    let m = Mutex::with_class(0, "bad_unlock_mutex", &K);
    // SAFETY: deliberately wrong — the mutex is not held; RawMutex::unlock checks
    // the owner and refuses with a panic, leaving the mutex untouched.
    let p = catch_unwind(AssertUnwindSafe(|| unsafe { m.raw().unlock() }));
    assert!(p.is_err());
    expect_one(ReportKind::BadUnlockBalance, &["bad_unlock_mutex"]);
    assert!(!m.is_locked());
    drop(m.lock());
    expect_none();
}

#[test]
fn contended_mutex_under_a_spinlock_is_one_report() {
    warn_mode();
    use std::sync::{Arc, Barrier};
    static KS: LockClassKey = LockClassKey::new("contended_spin");
    static KM: LockClassKey = LockClassKey::new("contended_mutex");
    let s = SpinLock::with_class((), "contended_spin", &KS);
    let m = Arc::new(Mutex::with_class(0, "contended_mutex", &KM));
    let bar = Arc::new(Barrier::new(2));
    let (m2, bar2) = (m.clone(), bar.clone());
    let holder = std::thread::spawn(move || {
        let g = m2.lock();
        bar2.wait();
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(g);
    });
    bar.wait();
    {
        let _gs = s.lock();
        // Reported at the acquire; the sleep that follows (the mutex is held by
        // the other thread) is the same bug in the same context: not again.
        *m.lock() += 1;
    }
    holder.join().unwrap();
    expect_sleep_in_atomic(&["contended_mutex", "contended_spin"]);
}

#[test]
fn completion_wait_in_atomic_context_is_reported_even_when_done() {
    warn_mode();
    let done = ksync::completion::Completion::new();
    done.complete();
    sched::preempt_disable();
    assert!(done.try_wait()); // never sleeps: not a sleep point
    sched::preempt_enable();
    expect_none();
    done.complete();
    sched::preempt_disable();
    done.wait(); // done already, so no wait — but wait_for_completion may sleep
    sched::preempt_enable();
    expect_one(ReportKind::SleepInAtomic, &[]);
}

#[test]
fn rwsem_read_recursion_and_write_under_a_spinlock() {
    warn_mode();
    use ksync::rwsem::RwSemaphore;
    static K: LockClassKey = LockClassKey::new("real_rwsem");
    static KS: LockClassKey = LockClassKey::new("rwsem_spin");
    let sem = RwSemaphore::with_class(0, "real_rwsem", &K);
    {
        // down_read twice: a writer queued in between would block the second
        // read behind the first — reported (AcquireKind::Read is not recursive).
        let _r1 = sem.read();
        let _r2 = sem.read();
    }
    expect_one(ReportKind::RecursiveLocking, &["real_rwsem"]);
    let s = SpinLock::with_class((), "rwsem_spin", &KS);
    {
        let _gs = s.lock();
        *sem.write() += 1; // uncontended, still a sleep point
    }
    let r = expect_sleep_in_atomic(&["real_rwsem", "rwsem_spin"]);
    assert!(r.text.contains("rwsem_spin"), "{r}");
    // Nested with a subclass: two semaphores of one class, no report.
    let other = RwSemaphore::with_class(0, "real_rwsem", &K);
    {
        let _a = sem.write();
        let _b = other.write_nested(1);
    }
    expect_none();
}

#[test]
fn rcu_nested_past_max_lock_depth_leaves_no_stale_state() {
    // Issue 16, item 9: the overflow turned the validator off for the thread
    // but kept the 48 RCU sections on its count, so the first sleep after the
    // last guard was dropped reported "RCU nest depth: 48".
    std::thread::spawn(|| {
        warn_mode();
        let guards: Vec<_> = (0..lockdep::MAX_LOCK_DEPTH + 12)
            .map(|_| rcu::rcu_read_lock())
            .collect();
        let r = expect_one(ReportKind::TooDeep, &["rcu_read_lock"]);
        assert!(r.text.contains("MAX_LOCK_DEPTH too low"), "{r}");
        drop(guards);
        assert_eq!(lockdep::held_lock_count(), 0);
        // Sleeping now is fine: no lock and no RCU section is held.
        lockdep::might_sleep();
        let m = Mutex::new(());
        drop(m.lock());
        sched::msleep(1);
        expect_none();
    })
    .join()
    .unwrap();
}

#[test]
fn irq_flags_restored_out_of_order_are_reported() {
    // Issue 16, item 8: beyond the kernel's lockdep (its scoped locks cannot
    // be released out of order; Rust guards can).
    std::thread::spawn(|| {
        warn_mode();
        static KA: LockClassKey = LockClassKey::new("ooo_irq_a");
        static KB: LockClassKey = LockClassKey::new("ooo_irq_b");
        static A: SpinLock<u32> = SpinLock::with_class(0, "ooo_irq_a", &KA);
        static B: SpinLock<u32> = SpinLock::with_class(0, "ooo_irq_b", &KB);
        // In order: fine.
        {
            let _ga = A.lock_irq();
            let _gb = B.lock_irqsave();
        }
        assert!(!irq::irqs_disabled());
        expect_none();
        // Out of order: irqs come on with B held, then B's restore turns
        // them off again, with no lock held.
        let ga = A.lock_irq();
        let gb = B.lock_irqsave();
        drop(ga);
        drop(gb);
        assert!(irq::irqs_disabled(), "the hazard itself");
        irq::local_irq_enable();
        let r = expect_one(ReportKind::IrqRestoreOutOfOrder, &[]);
        assert!(r.text.contains("called with irqs enabled"), "{r}");
    })
    .join()
    .unwrap();
}

#[test]
fn a_held_lock_dropped_or_reinitialised_is_reported_at_once() {
    // Issue 16, item 4: a leaked guard (mem::forget) and then the lock freed
    // or overwritten: reported when it happens, not only at thread exit.
    std::thread::spawn(|| {
        warn_mode();
        static K: LockClassKey = LockClassKey::new("freed_mutex");
        // Boxed, so that the drop happens where it was locked (a lock moved
        // while held is not seen: lockdep knows it by its address).
        let m = Box::new(Mutex::with_class(0u32, "freed_mutex", &K));
        std::mem::forget(m.lock());
        assert_eq!(lockdep::held_lock_count(), 1);
        drop(m);
        let r = expect_one(ReportKind::HeldLockFreed, &["freed_mutex"]);
        assert!(r.text.contains("with a lock still held there"), "{r}");
        assert_eq!(
            lockdep::held_lock_count(),
            0,
            "the freed lock left the stack"
        );

        static K2: LockClassKey = LockClassKey::new("reinit_mutex");
        let mut m = Mutex::with_class(0u32, "reinit_mutex", &K2);
        std::mem::forget(m.lock());
        m = Mutex::with_class(1u32, "reinit_mutex", &K2); // mutex_init on a held lock
        expect_one(ReportKind::HeldLockFreed, &["reinit_mutex"]);
        assert_eq!(*m.lock(), 1);
        // A lock dropped after its guard: nothing.
        let n = Mutex::with_class(0u32, "reinit_mutex", &K2);
        drop(n.lock());
        drop(n);
        expect_none();
    })
    .join()
    .unwrap();
}

/// Two per-CPU variables' local locks are two classes, as the kernel's
/// per-variable static keys make them: nesting one inside the other is no
/// recursion, and the reverse order is an AB-BA.
#[test]
fn two_percpu_local_locks_are_two_classes() {
    use ksync::percpu::{LocalLock, PerCpu};
    warn_mode();
    static A: PerCpu<LocalLock<u64>> = PerCpu::new();
    static B: PerCpu<LocalLock<u64>> = PerCpu::new();
    {
        let _a = A.get_cpu_var();
        let _b = B.get_cpu_var();
    }
    expect_none();
    {
        let _b = B.get_cpu_var();
        let _a = A.get_cpu_var();
    }
    expect_one(ReportKind::CircularDependency, &["local_lock_t"]);
}

/// The slots of one per-CPU variable share its class (`PerCpu::default` and
/// `new` alike): two of them nested is recursion, as two CPUs' instances of
/// one kernel `local_lock_t` variable are one class.
#[test]
fn one_percpu_variables_slots_share_a_class() {
    use ksync::percpu::{LocalLock, PerCpu, nr_cpu_ids};
    warn_mode();
    let v: PerCpu<LocalLock<u64>> = PerCpu::default();
    if nr_cpu_ids() < 2 {
        return;
    }
    let _cpu0 = v.get(0).lock();
    let _cpu1 = v.get(1).lock();
    expect_one(ReportKind::RecursiveLocking, &["local_lock_t"]);
}
