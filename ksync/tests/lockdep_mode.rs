//! The run-time switch (`KSYNC_LOCKDEP`, `lockdep::set_mode`). One test in its own
//! binary, because the mode is process-wide.
#![cfg(feature = "lockdep")]

use ksync::lockdep::{self, AcquireKind, LockdepMap, Mode, ReportKind};

#[test]
fn off_warn_and_panic_modes() {
    // The default (KSYNC_LOCKDEP unset, or "warn") prints and collects.
    if std::env::var_os("KSYNC_LOCKDEP").is_none() {
        assert_eq!(lockdep::mode(), Mode::Warn);
    }

    // Off: nothing is validated, not even an unbalanced release.
    lockdep::set_mode(Mode::Off);
    let m = LockdepMap::new("mode_off");
    lockdep::release(&m);
    assert!(lockdep::take_reports().is_empty());
    assert!(
        lockdep::lock_is_held(&m),
        "with lockdep off, assertions pass"
    );

    // Warn: reported and collected, execution goes on.
    lockdep::set_mode(Mode::Warn);
    let w = LockdepMap::new("mode_warn");
    lockdep::release(&w);
    let rs = lockdep::take_reports();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].kind, ReportKind::BadUnlockBalance);

    // Panic: reported, collected, then a panic (before the lock would hang).
    lockdep::set_mode(Mode::Panic);
    let p = LockdepMap::new("mode_panic");
    let r = std::panic::catch_unwind(|| {
        lockdep::acquire(&p, AcquireKind::Exclusive, false, 0);
        lockdep::acquire(&p, AcquireKind::Exclusive, false, 0);
    });
    lockdep::set_mode(Mode::Warn);
    let msg = r.expect_err("panic mode panics");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("recursive locking"), "{msg}");
    assert!(lockdep::take_reports_involving("mode_panic")[0].kind == ReportKind::RecursiveLocking);
    // The first acquisition is still on the stack; the second, which panicked
    // out of the acquire path, is not (the lock was never taken).
    lockdep::release(&p);
    assert_eq!(lockdep::held_lock_count(), 0);
    assert!(lockdep::take_reports().is_empty());
    // The report ran with irqs held back; the panic gave them back on its way out.
    assert!(
        !ksync::irq::irqs_disabled(),
        "irqs left disabled by a caught report"
    );

    // A real recursive spin_lock in panic mode: stopped before it spins for ever,
    // and what the refused lock() had raised (the preempt count) is its own
    // business, but lockdep's stack and irqs are as before.
    let l = ksync::spinlock::SpinLock::new(0);
    let g = l.lock_irq();
    lockdep::set_mode(Mode::Panic);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(l.lock())));
    lockdep::set_mode(Mode::Warn);
    assert!(r.is_err(), "a recursive spin_lock in panic mode panics");
    assert!(
        ksync::irq::irqs_disabled(),
        "lock_irq's disable is still in force"
    );
    assert_eq!(lockdep::held_lock_count(), 1);
    drop(g);
    assert!(!ksync::irq::irqs_disabled());
    assert_eq!(lockdep::held_lock_count(), 0);
    let _ = lockdep::take_reports();
}
