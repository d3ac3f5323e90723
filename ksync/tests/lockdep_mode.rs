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
}
