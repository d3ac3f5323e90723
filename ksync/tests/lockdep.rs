//! Lockdep: one test per report kind, each asserting the report's kind and the
//! classes it names. Every test uses lock classes of its own (distinct creation
//! sites and names) and reads only its own thread's reports, so tests can run in
//! parallel in one process.
//!
//! Irqs are simulated through the preempt count (`HARDIRQ_OFFSET`, `SOFTIRQ_OFFSET`)
//! and the irq-disabled flag, which is exactly what lockdep reads.
#![cfg(feature = "lockdep")]

use ksync::irq;
use ksync::lockdep::{
    self, AcquireKind, LockClassKey, LockdepMap, Report, ReportKind, take_reports,
    take_reports_involving,
};
use ksync::sched::{self, HARDIRQ_OFFSET, SOFTIRQ_OFFSET, TaskState};
use std::time::Duration;

/// A minimal lock of our own that feeds lockdep the way every ksync lock does:
/// `acquire` before waiting, `release` after unlocking.
struct TestLock {
    inner: std::sync::Mutex<()>,
    map: LockdepMap,
}

struct TestGuard<'a> {
    lock: &'a TestLock,
    _g: std::sync::MutexGuard<'a, ()>,
}

impl TestLock {
    #[track_caller]
    const fn new(name: &'static str) -> Self {
        TestLock {
            inner: std::sync::Mutex::new(()),
            map: LockdepMap::new_spinning(name),
        }
    }

    #[track_caller]
    const fn with_key(name: &'static str, key: &'static LockClassKey) -> Self {
        TestLock {
            inner: std::sync::Mutex::new(()),
            map: LockdepMap::with_key(name, key),
        }
    }

    fn lock(&self) -> TestGuard<'_> {
        self.lock_nested(0)
    }

    fn lock_nested(&self, subclass: u32) -> TestGuard<'_> {
        lockdep::acquire(&self.map, AcquireKind::Exclusive, false, subclass);
        TestGuard {
            lock: self,
            _g: self.inner.lock().unwrap(),
        }
    }

    fn try_lock(&self) -> Option<TestGuard<'_>> {
        let g = self.inner.try_lock().ok()?;
        lockdep::acquire(&self.map, AcquireKind::Exclusive, true, 0);
        Some(TestGuard { lock: self, _g: g })
    }
}

impl Drop for TestGuard<'_> {
    fn drop(&mut self) {
        lockdep::release(&self.lock.map);
    }
}

fn kinds(rs: &[Report]) -> Vec<ReportKind> {
    rs.iter().map(|r| r.kind).collect()
}

/// Asserts exactly one report, of `kind`, naming every class in `names`.
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

fn expect_none() {
    let rs = take_reports();
    assert!(rs.is_empty(), "unexpected reports: {rs:#?}");
}

#[test]
fn ab_ba_inversion_is_found_single_threaded() {
    let a = TestLock::new("abba_A");
    let b = TestLock::new("abba_B");
    {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    expect_none();
    {
        let _gb = b.lock();
        let _ga = a.lock(); // no other thread: this does not hang, but it is reported
    }
    let r = expect_one(ReportKind::CircularDependency, &["abba_A", "abba_B"]);
    assert!(
        r.text
            .contains("possible circular locking dependency detected")
    );
    assert!(r.text.contains(file!()), "creation sites are printed:\n{r}");
    // Reported once, not on every repetition.
    {
        let _gb = b.lock();
        let _ga = a.lock();
    }
    expect_none();
}

#[test]
fn three_lock_cycle() {
    let a = TestLock::new("cyc3_A");
    let b = TestLock::new("cyc3_B");
    let c = TestLock::new("cyc3_C");
    {
        let _g1 = a.lock();
        let _g2 = b.lock();
    }
    {
        let _g1 = b.lock();
        let _g2 = c.lock();
    }
    expect_none();
    {
        let _g1 = c.lock();
        let _g2 = a.lock();
    }
    let r = expect_one(
        ReportKind::CircularDependency,
        &["cyc3_A", "cyc3_B", "cyc3_C"],
    );
    assert!(r.text.contains("Chain exists of"), "{r}");
}

#[test]
fn consistent_order_is_not_reported() {
    let a = TestLock::new("order_A");
    let b = TestLock::new("order_B");
    let c = TestLock::new("order_C");
    for _ in 0..3 {
        let _g1 = a.lock();
        let _g2 = b.lock();
        let _g3 = c.lock();
    }
    {
        let _g1 = a.lock();
        let _g3 = c.lock();
    }
    expect_none();
}

#[test]
fn inversion_between_threads_is_found_without_a_hang() {
    let a = std::sync::Arc::new(TestLock::new("threads_A"));
    let b = std::sync::Arc::new(TestLock::new("threads_B"));
    let (a2, b2) = (a.clone(), b.clone());
    std::thread::spawn(move || {
        let _ga = a2.lock();
        let _gb = b2.lock();
    })
    .join()
    .unwrap();
    {
        let _gb = b.lock();
        let _ga = a.lock();
    }
    expect_one(ReportKind::CircularDependency, &["threads_A", "threads_B"]);
}

#[test]
fn recursive_locking_of_one_class() {
    // Two instances made at one site share a class.
    let locks: Vec<TestLock> = (0..2).map(|_| TestLock::new("recursive_X")).collect();
    let _g0 = locks[0].lock();
    let _g1 = locks[1].lock(); // would self-deadlock if it were the same instance
    let r = expect_one(ReportKind::RecursiveLocking, &["recursive_X"]);
    assert!(r.text.contains("possible recursive locking detected"));
    assert!(r.text.contains("_nested"), "the hint about subclasses: {r}");
}

#[test]
fn nested_same_class_with_subclass_is_fine() {
    let locks: Vec<TestLock> = (0..2).map(|_| TestLock::new("nested_X")).collect();
    for _ in 0..2 {
        let _g0 = locks[0].lock();
        let _g1 = locks[1].lock_nested(1);
    }
    expect_none();
}

#[test]
fn class_key_groups_locks_made_at_different_sites() {
    static KEY: LockClassKey = LockClassKey::new("keyed_class");
    let a = TestLock::with_key("keyed_class", &KEY);
    let b = TestLock::with_key("keyed_class", &KEY);
    let _ga = a.lock();
    let _gb = b.lock();
    expect_one(ReportKind::RecursiveLocking, &["keyed_class"]);
}

#[test]
fn trylock_adds_no_dependency_to_the_lock_it_takes() {
    let a = TestLock::new("try_A");
    let b = TestLock::new("try_B");
    {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    {
        let _gb = b.lock();
        let _ga = a.try_lock().unwrap(); // cannot deadlock: it does not wait
    }
    expect_none();
}

#[test]
fn recursive_read_rules() {
    let r = LockdepMap::new("rr_rwlock");
    // A recursive read of a class held for read is fine (read_lock twice).
    lockdep::acquire(&r, AcquireKind::RecursiveRead, false, 0);
    lockdep::acquire(&r, AcquireKind::RecursiveRead, false, 0);
    lockdep::release(&r);
    lockdep::release(&r);
    expect_none();

    // A non-recursive read twice (down_read twice) is reported: a writer queued
    // between them deadlocks it.
    let s = LockdepMap::new("rr_rwsem");
    lockdep::acquire(&s, AcquireKind::Read, false, 0);
    lockdep::acquire(&s, AcquireKind::Read, false, 0);
    lockdep::release(&s);
    lockdep::release(&s);
    expect_one(ReportKind::RecursiveLocking, &["rr_rwsem"]);

    // A write after a read of the same class is reported.
    let w = LockdepMap::new("rr_rw2");
    lockdep::acquire(&w, AcquireKind::RecursiveRead, false, 0);
    lockdep::acquire(&w, AcquireKind::Exclusive, false, 0);
    lockdep::release(&w);
    lockdep::release(&w);
    expect_one(ReportKind::RecursiveLocking, &["rr_rw2"]);
}

#[test]
fn recursive_read_cycles_follow_the_kernels_rules() {
    // R(rwlock_t read) -> X and X -> R(read) again: both are recursive reads of R,
    // which cannot deadlock (read_lock does not wait for a writer behind readers).
    let r = LockdepMap::new("rrc_R");
    let x = LockdepMap::new("rrc_X");
    lockdep::acquire(&r, AcquireKind::RecursiveRead, false, 0);
    lockdep::acquire(&x, AcquireKind::Exclusive, false, 0);
    lockdep::release(&x);
    lockdep::release(&r);
    lockdep::acquire(&x, AcquireKind::Exclusive, false, 0);
    lockdep::acquire(&r, AcquireKind::RecursiveRead, false, 0);
    lockdep::release(&r);
    lockdep::release(&x);
    expect_none();

    // But with a writer of R in the cycle it is a deadlock: R(write) -> X, X -> R(read).
    lockdep::acquire(&r, AcquireKind::Exclusive, false, 0);
    lockdep::acquire(&x, AcquireKind::Exclusive, false, 0);
    lockdep::release(&x);
    lockdep::release(&r);
    expect_one(ReportKind::CircularDependency, &["rrc_R", "rrc_X"]);

    // A non-recursive reader (rwsem) in the cycle deadlocks too.
    let s = LockdepMap::new("rrc_S");
    let y = LockdepMap::new("rrc_Y");
    lockdep::acquire(&s, AcquireKind::Read, false, 0);
    lockdep::acquire(&y, AcquireKind::Exclusive, false, 0);
    lockdep::release(&y);
    lockdep::release(&s);
    lockdep::acquire(&y, AcquireKind::Exclusive, false, 0);
    lockdep::acquire(&s, AcquireKind::Read, false, 0);
    lockdep::release(&s);
    lockdep::release(&y);
    expect_one(ReportKind::CircularDependency, &["rrc_S", "rrc_Y"]);
}

#[test]
fn irq_safety_inversion_hardirq() {
    let l = TestLock::new("irq_hard_L");
    // Taken in (simulated) hardirq context...
    sched::preempt_count_add(HARDIRQ_OFFSET);
    drop(l.lock());
    sched::preempt_count_sub(HARDIRQ_OFFSET);
    expect_none();
    // ... and with irqs disabled in process context: fine.
    irq::local_irq_disable();
    drop(l.lock());
    irq::local_irq_enable();
    expect_none();
    // ... and with irqs enabled: an irq arriving now would deadlock on it.
    drop(l.lock());
    let r = expect_one(ReportKind::InconsistentIrqUsage, &["irq_hard_L"]);
    assert!(r.text.contains("{IN-HARDIRQ-W} -> {HARDIRQ-ON-W}"), "{r}");
}

#[test]
fn irq_safety_inversion_softirq_other_order() {
    let l = TestLock::new("irq_soft_L");
    drop(l.lock()); // softirqs enabled
    expect_none();
    sched::preempt_count_add(SOFTIRQ_OFFSET);
    drop(l.lock()); // serving a softirq
    sched::preempt_count_sub(SOFTIRQ_OFFSET);
    let r = expect_one(ReportKind::InconsistentIrqUsage, &["irq_soft_L"]);
    assert!(r.text.contains("{SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W}"), "{r}");
    // bh disabled around it is what fixes it:
    let m = TestLock::new("irq_soft_M");
    irq::local_bh_disable();
    drop(m.lock());
    irq::local_bh_enable();
    sched::preempt_count_add(SOFTIRQ_OFFSET);
    drop(m.lock());
    sched::preempt_count_sub(SOFTIRQ_OFFSET);
    expect_none();
}

#[test]
fn irq_safe_to_irq_unsafe_dependency() {
    let safe = TestLock::new("irqdep_safe");
    let unsafe_ = TestLock::new("irqdep_unsafe");
    sched::preempt_count_add(HARDIRQ_OFFSET);
    drop(safe.lock());
    sched::preempt_count_sub(HARDIRQ_OFFSET);
    drop(unsafe_.lock()); // irqs on: irq-unsafe
    expect_none();
    irq::local_irq_disable();
    {
        let _g1 = safe.lock();
        let _g2 = unsafe_.lock();
    }
    irq::local_irq_enable();
    let r = expect_one(
        ReportKind::IrqSafeToUnsafe,
        &["irqdep_safe", "irqdep_unsafe"],
    );
    assert!(r.text.contains("HARDIRQ-safe -> HARDIRQ-unsafe"), "{r}");
}

#[test]
fn read_locks_in_irq_and_with_irqs_on_are_fine() {
    let r = LockdepMap::new("irq_read_R");
    sched::preempt_count_add(HARDIRQ_OFFSET);
    lockdep::acquire(&r, AcquireKind::RecursiveRead, false, 0);
    lockdep::release(&r);
    sched::preempt_count_sub(HARDIRQ_OFFSET);
    lockdep::acquire(&r, AcquireKind::RecursiveRead, false, 0);
    lockdep::release(&r);
    expect_none();
}

#[test]
fn bad_unlock_balance() {
    let l = TestLock::new("unbalanced_L");
    lockdep::release(&l.map);
    let r = expect_one(ReportKind::BadUnlockBalance, &["unbalanced_L"]);
    assert!(r.text.contains("no more locks to release"));
}

#[test]
fn unlock_by_non_owner_is_a_bad_unlock() {
    let l = std::sync::Arc::new(TestLock::new("nonowner_L"));
    lockdep::acquire(&l.map, AcquireKind::Exclusive, false, 0);
    let l2 = l.clone();
    let rs = std::thread::spawn(move || {
        lockdep::release(&l2.map);
        take_reports()
    })
    .join()
    .unwrap();
    assert_eq!(kinds(&rs), vec![ReportKind::BadUnlockBalance]);
    lockdep::release(&l.map);
    expect_none();
}

#[test]
fn out_of_order_release_keeps_the_stack_right() {
    let a = TestLock::new("ooo_A");
    let b = TestLock::new("ooo_B");
    let c = TestLock::new("ooo_C");
    let ga = a.lock();
    let gb = b.lock();
    drop(ga);
    assert_eq!(lockdep::held_lock_count(), 1);
    assert!(lockdep::lock_is_held(&b.map));
    assert!(!lockdep::lock_is_held(&a.map));
    let gc = c.lock();
    drop(gb);
    drop(gc);
    assert_eq!(lockdep::held_lock_count(), 0);
    expect_none();
}

#[test]
fn held_at_exit() {
    let l: &'static TestLock = Box::leak(Box::new(TestLock::new("leaked_at_exit")));
    std::thread::spawn(move || {
        std::mem::forget(l.lock());
    })
    .join()
    .unwrap();
    let rs = take_reports_involving("leaked_at_exit");
    assert_eq!(kinds(&rs), vec![ReportKind::HeldAtExit], "{rs:#?}");
}

#[test]
fn sleeping_in_atomic_context() {
    sched::preempt_disable();
    let r = sched::sleep_timeout(TaskState::Uninterruptible, Duration::from_millis(1));
    sched::preempt_enable();
    assert!(r.is_err());
    let rep = expect_one(ReportKind::SleepInAtomic, &[]);
    assert!(
        rep.text
            .contains("sleeping function called from invalid context")
    );
    assert!(rep.text.contains("preempt_count: 0x1"), "{rep}");
}

#[test]
fn sleeping_with_irqs_off_or_holding_a_spinning_lock() {
    irq::local_irq_disable();
    lockdep::might_sleep();
    irq::local_irq_enable();
    let r = expect_one(ReportKind::SleepInAtomic, &[]);
    assert!(r.text.contains("irqs_disabled(): 1"));

    let l = TestLock::new("spin_held_S"); // TestLock's map is a spinning one
    let g = l.lock();
    lockdep::might_sleep();
    drop(g);
    expect_one(ReportKind::SleepInAtomic, &["spin_held_S"]);

    lockdep::might_sleep(); // nothing held, preemptible: fine
    expect_none();
}

#[test]
fn sleeping_lock_taken_in_atomic_context() {
    let m = LockdepMap::new_sleeping("sleepy_mutex");
    sched::preempt_disable();
    lockdep::acquire(&m, AcquireKind::Exclusive, false, 0);
    lockdep::release(&m);
    // A trylock of it does not sleep: fine.
    lockdep::acquire(&m, AcquireKind::Exclusive, true, 0);
    lockdep::release(&m);
    sched::preempt_enable();
    expect_one(ReportKind::SleepInAtomic, &["sleepy_mutex"]);
}

static RCU_MAP: LockdepMap = LockdepMap::new("rcu_read_lock");

#[test]
fn rcu_read_section_is_atomic_and_forbids_synchronize_rcu() {
    lockdep::acquire(&RCU_MAP, AcquireKind::RecursiveRead, false, 0);
    assert!(lockdep::rcu_read_lock_held());
    lockdep::might_sleep();
    lockdep::assert_not_in_rcu_read_section("synchronize_rcu");
    lockdep::release(&RCU_MAP);
    assert!(!lockdep::rcu_read_lock_held());
    let rs = take_reports();
    assert_eq!(
        kinds(&rs),
        vec![ReportKind::SleepInAtomic, ReportKind::RcuSyncInReader],
        "{rs:#?}"
    );
    assert!(rs.iter().all(|r| r.involves("rcu_read_lock")));
    assert!(rs[1].text.contains("Illegal synchronize_rcu()"));
    lockdep::assert_not_in_rcu_read_section("synchronize_rcu");
    expect_none();
}

#[test]
fn rcu_read_section_adds_no_dependencies() {
    let a = TestLock::new("rcudep_A");
    lockdep::acquire(&RCU_MAP, AcquireKind::RecursiveRead, false, 0);
    drop(a.lock());
    lockdep::release(&RCU_MAP);
    let g = a.lock();
    lockdep::acquire(&RCU_MAP, AcquireKind::RecursiveRead, false, 0);
    lockdep::release(&RCU_MAP);
    drop(g);
    expect_none();
}

#[test]
fn assert_held() {
    let l = TestLock::new("assert_held_L");
    {
        let _g = l.lock();
        lockdep::lockdep_assert_held(&l.map);
    }
    expect_none();
    lockdep::lockdep_assert_held(&l.map);
    expect_one(ReportKind::NotHeld, &["assert_held_L"]);
}

#[test]
fn too_deep_turns_the_thread_off() {
    std::thread::spawn(|| {
        let maps: Vec<LockdepMap> = (0..lockdep::MAX_LOCK_DEPTH + 1)
            .map(|_| LockdepMap::new("deep"))
            .collect();
        for (i, m) in maps.iter().enumerate() {
            lockdep::acquire(m, AcquireKind::Exclusive, false, i as u32);
        }
        for m in maps.iter().rev() {
            lockdep::release(m);
        }
        let rs = take_reports();
        assert_eq!(kinds(&rs), vec![ReportKind::TooDeep], "{rs:#?}");
    })
    .join()
    .unwrap();
}

#[test]
fn many_threads_in_one_order_give_no_report() {
    static L: [TestLock; 4] = [
        TestLock::new("stress_0"),
        TestLock::new("stress_1"),
        TestLock::new("stress_2"),
        TestLock::new("stress_3"),
    ];
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut x = t.wrapping_mul(2_654_435_761) | 1;
                for _ in 0..2000 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // A random subset, always taken in index order.
                    let guards: Vec<_> = (0..4)
                        .filter(|i| x & (1 << i) != 0)
                        .map(|i| L[i].lock())
                        .collect();
                    assert_eq!(lockdep::held_lock_count(), guards.len());
                    drop(guards);
                }
                take_reports()
            })
        })
        .collect();
    for t in threads {
        let rs = t.join().unwrap();
        assert!(rs.is_empty(), "false positive: {rs:#?}");
    }
    assert_eq!(lockdep::held_lock_count(), 0);
}

/// Runs `f` in (simulated) hardirq context.
fn in_hardirq(f: impl FnOnce()) {
    sched::preempt_count_add(HARDIRQ_OFFSET);
    f();
    sched::preempt_count_sub(HARDIRQ_OFFSET);
}

fn take(m: &LockdepMap, kind: AcquireKind) {
    lockdep::acquire(m, kind, false, 0);
}

#[test]
fn read_usage_connects_irq_safe_to_irq_unsafe_through_a_new_dependency() {
    // The kernel's example (lockdep.c, above `exclusive_mask`): l1 read in an
    // irq, l2 read with irqs on, and l1 -> l2 taken for write with irqs off.
    // CPU0 holds l2 for read when the irq's read of l1 waits for CPU1, which
    // holds l1 for write and waits for CPU0's reader of l2.
    let l1 = LockdepMap::new("rdep_l1");
    let l2 = LockdepMap::new("rdep_l2");
    in_hardirq(|| {
        take(&l1, AcquireKind::RecursiveRead);
        lockdep::release(&l1);
    });
    take(&l2, AcquireKind::RecursiveRead);
    lockdep::release(&l2);
    expect_none();
    irq::local_irq_disable();
    take(&l1, AcquireKind::Exclusive);
    take(&l2, AcquireKind::Exclusive);
    lockdep::release(&l2);
    lockdep::release(&l1);
    irq::local_irq_enable();
    let r = expect_one(ReportKind::IrqSafeToUnsafe, &["rdep_l1", "rdep_l2"]);
    assert!(
        r.text
            .contains("HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"),
        "{r}"
    );
    assert!(
        r.text.contains("IN-HARDIRQ-R") && r.text.contains("HARDIRQ-ON-R"),
        "{r}"
    );
}

#[test]
fn read_usage_gained_after_the_dependency_is_an_irq_lock_inversion() {
    // The same three events in the other order: the dependency first, then
    // the usages; the last usage closes it.
    let l1 = LockdepMap::new("rinv_l1");
    let l2 = LockdepMap::new("rinv_l2");
    irq::local_irq_disable();
    take(&l1, AcquireKind::Exclusive);
    take(&l2, AcquireKind::Exclusive);
    lockdep::release(&l2);
    lockdep::release(&l1);
    irq::local_irq_enable();
    take(&l2, AcquireKind::RecursiveRead);
    lockdep::release(&l2);
    expect_none();
    in_hardirq(|| {
        take(&l1, AcquireKind::RecursiveRead);
        lockdep::release(&l1);
    });
    let r = expect_one(ReportKind::IrqLockInversion, &["rinv_l1", "rinv_l2"]);
    assert!(
        r.text
            .contains("possible irq lock inversion dependency detected")
            && r.text
                .contains("took another, HARDIRQ-READ-unsafe lock in the past"),
        "{r}"
    );
}

/// The kernel's `irq_read_recursion` (lib/locking-selftest.c): A written with
/// irqs off (taking B under it), read with irqs on, and taken in an irq
/// (with B under it): a recursive read there is fine, a write is not.
fn irq_read_recursion(irq_kind: AcquireKind) -> Vec<Report> {
    let a = LockdepMap::new("irr_A");
    let b = LockdepMap::new("irr_B");
    irq::local_irq_disable();
    take(&a, AcquireKind::Exclusive);
    take(&b, AcquireKind::Exclusive);
    lockdep::release(&b);
    lockdep::release(&a);
    irq::local_irq_enable();
    take(&a, AcquireKind::RecursiveRead);
    lockdep::release(&a);
    in_hardirq(|| {
        take(&a, irq_kind);
        take(&b, AcquireKind::Exclusive);
        lockdep::release(&b);
        lockdep::release(&a);
    });
    take_reports()
}

#[test]
fn irq_read_recursion_follows_the_kernels_verdicts() {
    let rs = irq_read_recursion(AcquireKind::RecursiveRead);
    assert!(rs.is_empty(), "rlock: {rs:#?}");
    let rs = irq_read_recursion(AcquireKind::Exclusive);
    assert_eq!(
        kinds(&rs),
        vec![ReportKind::InconsistentIrqUsage],
        "{rs:#?}"
    );
    assert!(
        rs[0].text.contains("{HARDIRQ-ON-R} -> {IN-HARDIRQ-W}"),
        "{}",
        rs[0]
    );
}

#[test]
fn locks_held_across_irq_enable_gain_the_irq_on_usage() {
    // The kernel's mark_held_locks: enabling irqs under a lock makes it taken
    // "with irqs enabled" from then on, whatever the state at its acquisition.
    let a = TestLock::new("mhl_irq_A");
    in_hardirq(|| drop(a.lock())); // {IN-HARDIRQ-W}
    irq::local_irq_disable();
    let g = a.lock(); // fine: irqs are off
    expect_none();
    irq::local_irq_enable(); // an irq arriving now would deadlock on A
    drop(g);
    let r = expect_one(ReportKind::InconsistentIrqUsage, &["mhl_irq_A"]);
    assert!(r.text.contains("{IN-HARDIRQ-W} -> {HARDIRQ-ON-W}"), "{r}");

    // The same through local_irq_restore, and a lock released before the
    // enable gains nothing.
    let b = TestLock::new("mhl_irq_B");
    in_hardirq(|| drop(b.lock()));
    let flags = irq::local_irq_save();
    drop(b.lock());
    irq::local_irq_restore(flags);
    expect_none();
    let flags = irq::local_irq_save();
    let g = b.lock();
    irq::local_irq_restore(flags);
    drop(g);
    expect_one(ReportKind::InconsistentIrqUsage, &["mhl_irq_B"]);
}

#[test]
fn locks_held_across_bh_enable_gain_the_softirq_on_usage() {
    let a = TestLock::new("mhl_bh_A");
    sched::preempt_count_add(SOFTIRQ_OFFSET);
    drop(a.lock()); // {IN-SOFTIRQ-W}
    sched::preempt_count_sub(SOFTIRQ_OFFSET);
    // bh enabled with irqs still off: nothing yet (the kernel marks softirq-on
    // only with hardirqs on) ...
    irq::local_irq_disable();
    irq::local_bh_disable();
    let g = a.lock();
    irq::local_bh_enable();
    expect_none();
    // ... and then when irqs come on, both.
    irq::local_irq_enable();
    drop(g);
    let r = expect_one(ReportKind::InconsistentIrqUsage, &["mhl_bh_A"]);
    assert!(r.text.contains("{IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W}"), "{r}");

    // Irqs on, bh off: local_bh_enable marks it.
    let b = TestLock::new("mhl_bh_B");
    sched::preempt_count_add(SOFTIRQ_OFFSET);
    drop(b.lock());
    sched::preempt_count_sub(SOFTIRQ_OFFSET);
    irq::local_bh_disable();
    let g = b.lock();
    expect_none();
    irq::local_bh_enable();
    drop(g);
    expect_one(ReportKind::InconsistentIrqUsage, &["mhl_bh_B"]);
}

#[test]
fn lock_map_pseudo_locks_take_part_in_lock_order() {
    // A work item's "lock" (held while the work runs) against a real lock:
    // flushing the work under L, while the work takes L, deadlocks.
    let work = LockdepMap::new("ann_work");
    let l = TestLock::new("ann_L");
    lockdep::lock_map_acquire(&work); // the work runs ...
    drop(l.lock()); // ... and takes L
    lockdep::lock_map_release(&work);
    expect_none();
    let _g = l.lock();
    lockdep::lock_map_acquire(&work); // flush_work under L
    lockdep::lock_map_release(&work);
    expect_one(ReportKind::CircularDependency, &["ann_work", "ann_L"]);
}

#[test]
fn lock_map_acquire_read_is_a_recursive_read() {
    let m = LockdepMap::new("ann_read");
    lockdep::lock_map_acquire_read(&m);
    lockdep::lock_map_acquire_read(&m);
    lockdep::lock_map_release(&m);
    lockdep::lock_map_release(&m);
    expect_none();
    lockdep::lock_map_acquire_read(&m);
    lockdep::lock_map_acquire(&m);
    lockdep::lock_map_release(&m);
    lockdep::lock_map_release(&m);
    expect_one(ReportKind::RecursiveLocking, &["ann_read"]);
}

#[test]
fn might_lock_records_the_dependency_without_taking_the_lock() {
    let a = TestLock::new("ml_A");
    let b = TestLock::new("ml_B");
    {
        let _ga = a.lock();
        lockdep::might_lock(&b.map); // a path that rarely takes B under A
        assert_eq!(lockdep::held_lock_count(), 1);
    }
    expect_none();
    let _gb = b.lock();
    drop(a.lock());
    expect_one(ReportKind::CircularDependency, &["ml_A", "ml_B"]);
}

#[test]
fn set_class_and_set_subclass_split_one_creation_site() {
    fn two() -> [TestLock; 2] {
        std::array::from_fn(|_| TestLock::new("split"))
    }
    // One line, one class: nesting them is recursive locking ...
    let [x, y] = two();
    {
        let _gx = x.lock();
        let _gy = y.lock();
    }
    expect_one(ReportKind::RecursiveLocking, &["split"]);
    // ... unless one gets a class of its own ...
    static PARENT: LockClassKey = LockClassKey::new("split_parent");
    let [mut x, y] = two();
    x.map.set_class("split_parent", &PARENT);
    assert_eq!(x.map.name(), "split_parent");
    {
        let _gx = x.lock();
        let _gy = y.lock();
    }
    expect_none();
    // ... or a subclass for its plain acquisitions.
    static CHILD: LockClassKey = LockClassKey::new("split_child");
    let [x, mut y] = [
        TestLock::with_key("split_child", &CHILD),
        TestLock::with_key("split_child", &CHILD),
    ];
    y.map.set_subclass(1);
    {
        let _gx = x.lock();
        let _gy = y.lock();
    }
    expect_none();
}

#[test]
fn novalidate_class_is_held_but_not_validated() {
    let mut a = TestLock::new("nv_A");
    let mut b = TestLock::new("nv_B");
    a.map.set_novalidate_class();
    b.map.set_novalidate_class();
    assert_eq!(a.map.name(), "nv_A");
    {
        let _ga = a.lock();
        assert!(lockdep::lock_is_held(&a.map));
        let _gb = b.lock(); // one class (no-validate), nested: fine
    }
    {
        let _gb = b.lock();
        let _ga = a.lock();
    }
    in_hardirq(|| drop(a.lock()));
    drop(a.lock()); // irqs on: no usage kept either
    expect_none();
}

#[test]
fn nest_lock_serializes_many_locks_of_one_class() {
    let outer = LockdepMap::new("nest_outer");
    let items: Vec<LockdepMap> = (0..lockdep::MAX_LOCK_DEPTH * 2)
        .map(|_| LockdepMap::new("nest_item"))
        .collect();
    // More locks of one class than the stack holds, under the nest lock.
    take(&outer, AcquireKind::Exclusive);
    for m in &items {
        lockdep::acquire_nest(m, AcquireKind::Exclusive, false, &outer);
    }
    assert_eq!(lockdep::held_lock_count(), 2);
    assert!(lockdep::lock_is_held(&items[0]) && lockdep::lock_is_held(&items[7]));
    for m in items.iter().rev() {
        lockdep::release(m);
    }
    assert_eq!(lockdep::held_lock_count(), 1);
    lockdep::release(&outer);
    expect_none();
    // Not consecutive (another class between) is fine too under the nest lock.
    let other = LockdepMap::new("nest_other");
    take(&outer, AcquireKind::Exclusive);
    lockdep::acquire_nest(&items[0], AcquireKind::Exclusive, false, &outer);
    take(&other, AcquireKind::Exclusive);
    lockdep::acquire_nest(&items[1], AcquireKind::Exclusive, false, &outer);
    for m in [&items[1], &other, &items[0], &outer] {
        lockdep::release(m);
    }
    expect_none();
    // The same without the nest lock held: reported, and then recursion.
    lockdep::acquire_nest(&items[0], AcquireKind::Exclusive, false, &outer);
    expect_one(ReportKind::NestLockNotHeld, &["nest_item", "nest_outer"]);
    take(&items[1], AcquireKind::Exclusive);
    lockdep::release(&items[1]);
    lockdep::release(&items[0]);
    expect_one(ReportKind::RecursiveLocking, &["nest_item"]);
}
