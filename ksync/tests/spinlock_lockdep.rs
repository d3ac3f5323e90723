//! Lockdep on the real spinlocks, rwlocks and the BKL (not on bare maps): each
//! lock type feeds the validator through its own acquire/release paths, so the
//! reports below come from `SpinLock::lock`, `RwLock::read`, `lock_kernel`, and
//! a real irq handler.
//!
//! The lockdep mode is process-wide and one test switches it to `panic`, so the
//! tests of this binary run one at a time (`SERIAL`). Every test uses lock
//! classes of its own (`with_class` keys or distinct statics): the dependency
//! graph is global.
#![cfg(feature = "lockdep")]

use ksync::bkl;
use ksync::irq;
use ksync::lockdep::{self, LockClassKey, Mode, Report, ReportKind};
use ksync::sched::{self, TaskState, current};
use ksync::spinlock::{ReaderPrefRwLock, RwLock, SpinLock};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serializes the tests and starts each in warn mode with no stale reports.
fn serial() -> MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    lockdep::set_mode(Mode::Warn);
    let _ = lockdep::take_reports();
    g
}

fn reports() -> Vec<Report> {
    lockdep::take_reports()
}

fn expect_one(kind: ReportKind, classes: &[&str]) -> Report {
    let rs = reports();
    assert_eq!(rs.len(), 1, "expected one {kind:?} report, got {rs:#?}");
    let r = rs.into_iter().next().unwrap();
    assert_eq!(r.kind, kind, "{r}");
    for c in classes {
        assert!(r.involves(c), "report does not name {c}: {r}");
    }
    r
}

fn expect_none() {
    let rs = reports();
    assert!(rs.is_empty(), "expected no report, got {rs:#?}");
}

#[test]
fn abba_with_two_spinlocks_is_reported_single_threaded() {
    let _s = serial();
    static KA: LockClassKey = LockClassKey::new("sl_abba_A");
    static KB: LockClassKey = LockClassKey::new("sl_abba_B");
    let a = SpinLock::with_class(0u32, "sl_abba_A", &KA);
    let b = SpinLock::with_class(0u32, "sl_abba_B", &KB);
    {
        let _ga = a.lock();
        let _gb = b.lock_irqsave();
    }
    expect_none();
    // The other order: no second thread, nothing hangs, yet it is a deadlock
    // waiting to happen.
    {
        let _gb = b.lock();
        let _ga = a.lock_bh();
    }
    let r = expect_one(ReportKind::CircularDependency, &["sl_abba_A", "sl_abba_B"]);
    assert!(r.text.contains("circular locking dependency"), "{r}");
    assert_eq!(lockdep::held_lock_count(), 0);
}

#[test]
fn trylocks_add_no_dependency() {
    let _s = serial();
    static KA: LockClassKey = LockClassKey::new("sl_try_A");
    static KB: LockClassKey = LockClassKey::new("sl_try_B");
    let a = SpinLock::with_class((), "sl_try_A", &KA);
    let b = SpinLock::with_class((), "sl_try_B", &KB);
    {
        let _ga = a.lock();
        let _gb = b.try_lock().expect("free");
    }
    {
        let _gb = b.lock();
        let _ga = a.try_lock_irqsave().expect("free");
    }
    expect_none();
    // A failed trylock records nothing: nothing to release.
    let g = a.lock();
    assert!(a.try_lock().is_none());
    assert_eq!(lockdep::held_lock_count(), 1);
    drop(g);
    assert_eq!(lockdep::held_lock_count(), 0);
    expect_none();
}

#[test]
fn spin_lock_recursion_is_reported_before_it_hangs() {
    let _s = serial();
    static K: LockClassKey = LockClassKey::new("sl_recursive");
    let l = SpinLock::with_class(7u32, "sl_recursive", &K);
    let g = l.lock();
    let pc = sched::preempt_count();
    lockdep::set_mode(Mode::Panic);
    // The second lock() would spin forever; lockdep's acquire runs first and,
    // in panic mode, unwinds out of it before the raw lock is touched.
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _never = l.lock();
    }));
    lockdep::set_mode(Mode::Warn);
    let msg = r.expect_err("recursive spin_lock must panic in panic mode");
    let msg = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("recursive locking"), "{msg}");
    expect_one(ReportKind::RecursiveLocking, &["sl_recursive"]);
    // The failed attempt left nothing behind: its preempt count was undone,
    // lockdep holds only the first acquisition, and the lock is still ours.
    assert_eq!(sched::preempt_count(), pc);
    assert_eq!(lockdep::held_lock_count(), 1);
    assert!(l.is_locked());
    assert_eq!(*g, 7);
    drop(g);
    assert!(!l.is_locked());
    assert_eq!(lockdep::held_lock_count(), 0);
    assert_eq!(sched::preempt_count(), pc - 1);
    expect_none();
}

#[test]
fn sleeping_while_holding_a_spinlock_names_it() {
    let _s = serial();
    static K: LockClassKey = LockClassKey::new("sl_sleep_held");
    let l = SpinLock::with_class((), "sl_sleep_held", &K);
    {
        let _g = l.lock();
        // Ok(()) may be spurious; either way it slept (or tried to).
        let _ = sched::sleep_timeout(TaskState::Uninterruptible, Duration::from_millis(1));
    }
    expect_one(ReportKind::SleepInAtomic, &["sl_sleep_held"]);
}

// ---------------------------------------------------------------------------
// A real irq handler (a signal delivered to this thread) takes the lock.

static K_IRQ_PLAIN: LockClassKey = LockClassKey::new("sl_irq_plain");
static IRQ_PLAIN: SpinLock<u64> = SpinLock::with_class(0, "sl_irq_plain", &K_IRQ_PLAIN);
static K_IRQ_SAVE: LockClassKey = LockClassKey::new("sl_irq_save");
static IRQ_SAVE: SpinLock<u64> = SpinLock::with_class(0, "sl_irq_save", &K_IRQ_SAVE);
static HANDLED: AtomicU64 = AtomicU64::new(0);

fn plain_handler(_irq: u32) {
    assert!(sched::in_hardirq());
    *IRQ_PLAIN.lock() += 1;
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn save_handler(_irq: u32) {
    assert!(sched::in_hardirq());
    *IRQ_SAVE.lock() += 1;
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// Raises `line` at this thread and waits until its handler has run.
fn irq_here(line: u32) {
    let before = HANDLED.load(Ordering::Relaxed);
    let me = current();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match irq::raise_irq(line, &me) {
            Ok(()) | Err(ksync::Error::WouldBlock) => {}
            Err(e) => panic!("raise_irq: {e:?}"),
        }
        let t = Instant::now() + Duration::from_millis(50);
        while Instant::now() < t {
            if HANDLED.load(Ordering::Relaxed) > before {
                return;
            }
            std::thread::yield_now();
        }
        assert!(Instant::now() < deadline, "irq {line} never handled");
    }
}

#[test]
fn spinlock_in_real_irq_and_plain_lock_is_inconsistent() {
    let _s = serial();
    irq::request_irq(7, plain_handler, "sl-lockdep-plain").unwrap();
    irq_here(7); // {IN-HARDIRQ-W}
    expect_none();
    // Irqs enabled while holding it: the irq above, arriving now, would spin
    // forever on this very thread.
    drop(IRQ_PLAIN.lock());
    let r = expect_one(ReportKind::InconsistentIrqUsage, &["sl_irq_plain"]);
    assert!(r.text.contains("{IN-HARDIRQ-W} -> {HARDIRQ-ON-W}"), "{r}");
    irq::free_irq(7).unwrap();
    assert!(*IRQ_PLAIN.lock_irqsave() >= 1);
    let _ = reports();
}

#[test]
fn spinlock_in_real_irq_and_lock_irqsave_is_fine() {
    let _s = serial();
    irq::request_irq(8, save_handler, "sl-lockdep-save").unwrap();
    // Process context first, with irqs off while held ...
    *IRQ_SAVE.lock_irqsave() += 1;
    *IRQ_SAVE.lock_irq() += 1;
    irq_here(8); // ... then in the irq ...
    *IRQ_SAVE.lock_irqsave() += 1; // ... and again after it.
    let t = IRQ_SAVE.try_lock_irqsave().expect("free");
    drop(t);
    expect_none();
    irq::free_irq(8).unwrap();
    assert!(*IRQ_SAVE.lock_irqsave() >= 4);
    expect_none();
}

// ---------------------------------------------------------------------------
// rwlock_t

#[test]
fn rwlock_read_recursion_follows_the_kernel_rules() {
    let _s = serial();
    // The classic reader-preferring rwlock_t: readers never wait behind a
    // writer while a read is held, so a nested read_lock is fine.
    let pref = ReaderPrefRwLock::new(1u32);
    {
        let r1 = pref.read();
        let r2 = pref.read();
        assert_eq!(*r1 + *r2, 2);
    }
    expect_none();
    // The queued (fair) rwlock_t queues a process-context reader behind a
    // waiting writer: a nested read_lock can deadlock, and is reported
    // (read_lock_is_recursive() is false outside interrupts, as in the kernel).
    let fair = RwLock::new(1u32);
    {
        let r1 = fair.read();
        let r2 = fair.read(); // no writer waits: it does not hang here
        assert_eq!(*r1 + *r2, 2);
    }
    let r = reports();
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0].kind, ReportKind::RecursiveLocking);
    // Write inside read is a real self-deadlock on both: reported before the
    // spin, in panic mode unwinding with the context restored.
    let g = pref.read();
    let pc = sched::preempt_count();
    lockdep::set_mode(Mode::Panic);
    let w = catch_unwind(AssertUnwindSafe(|| {
        let _never = pref.write_irqsave();
    }));
    lockdep::set_mode(Mode::Warn);
    assert!(w.is_err());
    assert_eq!(reports()[0].kind, ReportKind::RecursiveLocking);
    assert_eq!(sched::preempt_count(), pc);
    assert!(!irq::irqs_disabled());
    drop(g);
    assert_eq!(lockdep::held_lock_count(), 0);
    expect_none();
}

#[test]
fn rwlock_readers_in_irq_with_irqs_on_are_fine_writers_are_not() {
    let _s = serial();
    // Readers of rwlock_t may be taken in an irq and with irqs on (the
    // recursive-read rule: an irq reader does not wait for a waiting writer);
    // a writer with irqs on is what makes it inconsistent.
    static RW: RwLock<u32> = RwLock::new(0);
    sched::preempt_count_add(sched::HARDIRQ_OFFSET);
    drop(RW.read());
    sched::preempt_count_sub(sched::HARDIRQ_OFFSET);
    drop(RW.read());
    expect_none();
    drop(RW.write());
    let r = reports();
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0].kind, ReportKind::InconsistentIrqUsage);
}

// ---------------------------------------------------------------------------
// The BKL: recursive by design, may be held across a sleep, still ordered.

#[test]
fn bkl_recursion_and_sleep_are_not_reported() {
    let _s = serial();
    std::thread::spawn(|| {
        bkl::lock_kernel();
        bkl::lock_kernel();
        {
            let _g = bkl::BklGuard::new();
            assert_eq!(lockdep::held_lock_count(), 1, "only the outermost level");
        }
        // Sleeping holding it is legal: released, retaken at depth 2.
        let _ = sched::sleep_timeout(TaskState::Uninterruptible, Duration::from_millis(1));
        assert_eq!(bkl::depth(), 2);
        assert_eq!(lockdep::held_lock_count(), 1);
        bkl::unlock_kernel();
        assert_eq!(lockdep::held_lock_count(), 1);
        bkl::unlock_kernel();
        assert_eq!(lockdep::held_lock_count(), 0);
        let rs = lockdep::take_reports();
        assert!(rs.is_empty(), "{rs:#?}");
    })
    .join()
    .unwrap();
}

#[test]
fn bkl_against_a_spinlock_in_both_orders_is_reported() {
    let _s = serial();
    static K: LockClassKey = LockClassKey::new("sl_bkl_order");
    let l = SpinLock::with_class((), "sl_bkl_order", &K);
    std::thread::spawn(move || {
        bkl::lock_kernel();
        drop(l.lock());
        bkl::unlock_kernel();
        assert!(lockdep::take_reports().is_empty());
        {
            let _g = l.lock();
            bkl::lock_kernel(); // the other order: reported, before any hang
            bkl::unlock_kernel();
        }
        let rs = lockdep::take_reports();
        assert_eq!(rs.len(), 1, "{rs:#?}");
        assert_eq!(rs[0].kind, ReportKind::CircularDependency);
        assert!(rs[0].involves("kernel_lock") && rs[0].involves("sl_bkl_order"));
    })
    .join()
    .unwrap();
}
