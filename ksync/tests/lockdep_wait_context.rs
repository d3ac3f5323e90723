//! Lockdep's wait-context check on ksync's real locks: which lock may be
//! taken inside which (`RawSpinLock` = `raw_spinlock_t`, `SpinLock` =
//! `spinlock_t`, `Mutex`, RCU readers), trylocks, out-of-order releases, and
//! the irq-context boundary. The kernel's whole matrix runs in
//! `locking_selftest.rs`; these are the cases it does not spell out.
//!
//! Every test uses locks of its own creation sites (classes) and reads only
//! its own thread's reports, so the tests run in parallel.
#![cfg(feature = "lockdep")]

use ksync::irq;
use ksync::lockdep::{self, Mode, ReportKind};
use ksync::mutex::Mutex;
use ksync::rcu;
use ksync::sched::{self, HARDIRQ_OFFSET};
use ksync::spinlock::{RawSpinLock, SpinLock};

fn warn_mode() {
    if lockdep::mode() != Mode::Warn {
        lockdep::set_mode(Mode::Warn);
    }
}

fn kinds() -> Vec<ReportKind> {
    lockdep::take_reports().iter().map(|r| r.kind).collect()
}

#[test]
fn raw_inside_spin_is_fine_spin_inside_raw_is_not() {
    warn_mode();
    let (raw_inner, raw_outer) = (RawSpinLock::new(()), RawSpinLock::new(()));
    let spin = SpinLock::new(());
    {
        let _s = spin.lock();
        let _r = raw_inner.lock();
    }
    assert_eq!(kinds(), []);
    {
        let _r = raw_outer.lock();
        let _s = spin.lock();
    }
    assert_eq!(kinds(), [ReportKind::InvalidWaitContext]);
    // Once per class and context: not again.
    {
        let _r = raw_outer.lock();
        let _s = spin.lock();
    }
    assert_eq!(kinds(), []);
}

#[test]
fn a_trylock_is_not_checked_but_constrains_what_follows() {
    warn_mode();
    let raw = RawSpinLock::new(());
    let spin = SpinLock::new(());
    let other = SpinLock::new(());
    {
        let _r = raw.lock();
        let _s = spin.try_lock().unwrap(); // never waits: not checked
    }
    assert_eq!(kinds(), []);
    {
        let _r = raw.try_lock().unwrap(); // held, trylocked or not
        let _o = other.lock();
    }
    assert_eq!(kinds(), [ReportKind::InvalidWaitContext]);
}

#[test]
fn an_out_of_order_release_leaves_the_strictest_lock_still_held() {
    warn_mode();
    let s1 = SpinLock::new(());
    let raw = RawSpinLock::new(());
    let s2 = SpinLock::new(());
    let g1 = s1.lock();
    let gr = raw.lock();
    drop(g1); // out of order: the raw lock is still held
    {
        let _g2 = s2.lock();
    }
    assert_eq!(kinds(), [ReportKind::InvalidWaitContext]);
    drop(gr);
    let s3 = SpinLock::new(());
    let g1 = s1.lock();
    let gr = raw.lock();
    drop(gr); // the raw lock is gone, the spinlock stays
    {
        let _g3 = s3.lock();
    }
    drop(g1);
    assert_eq!(kinds(), []);
}

#[test]
fn locks_held_in_task_context_do_not_constrain_an_irq() {
    warn_mode();
    std::thread::spawn(|| {
        let raw = RawSpinLock::new(());
        let spin = SpinLock::new(());
        let _r = raw.lock_irqsave();
        // An irq that arrives now (emulated: a threaded handler, as a
        // request_irq one) starts its own irq context: the task's raw lock
        // does not constrain it (the kernel's scan stops at the context).
        sched::preempt_count_add(HARDIRQ_OFFSET);
        drop(spin.lock());
        sched::preempt_count_sub(HARDIRQ_OFFSET);
        assert_eq!(kinds(), []);
        // The same irq not threaded: only raw spinlocks.
        irq::irq_enter();
        drop(spin.lock());
        irq::irq_exit();
        assert_eq!(kinds(), [ReportKind::InvalidWaitContext]);
    })
    .join()
    .unwrap();
}

#[test]
fn rcu_readers_nest_anywhere_and_take_no_sleeping_lock() {
    warn_mode();
    let raw = RawSpinLock::new(());
    let spin = SpinLock::new(());
    let m = Mutex::new(());
    {
        let _r = raw.lock();
        let _g = rcu::rcu_read_lock(); // outer FREE: anywhere
    }
    {
        let _g = rcu::rcu_read_lock();
        let _s = spin.lock(); // inner CONFIG: spinlock_t is fine
    }
    assert_eq!(kinds(), []);
    {
        let _g = rcu::rcu_read_lock();
        let _m = m.lock();
    }
    assert_eq!(
        kinds(),
        [ReportKind::SleepInAtomic, ReportKind::InvalidWaitContext]
    );
}
