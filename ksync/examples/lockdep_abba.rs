//! Lockdep catching an AB-BA deadlock that has not happened yet.
//!
//! Two subsystems share two locks. The network path takes `rtnl_lock` then the
//! device's `dev->lock`; a driver's reset path, written by someone else, takes
//! `dev->lock` then `rtnl_lock`. Run at the same time they can deadlock, each
//! holding the lock the other waits for — but only if they interleave badly,
//! which a test may never hit. Lockdep records the order of every pair of lock
//! classes it sees, and reports the reversed order the first time it is seen,
//! here with the two threads run one after the other, so nothing ever hangs.
//!
//! Needs the `lockdep` feature:
//! `cargo run --release -p ksync --features lockdep --example lockdep_abba`.

use ksync::lockdep::{self, LockClassKey, ReportKind};
use ksync::mutex::Mutex;

static RTNL_KEY: LockClassKey = LockClassKey::new("rtnl_lock");
static DEV_KEY: LockClassKey = LockClassKey::new("dev->lock");

static RTNL: Mutex<u32> = Mutex::with_class(0, "rtnl_lock", &RTNL_KEY);
static DEV: Mutex<u32> = Mutex::with_class(0, "dev->lock", &DEV_KEY);

/// The network subsystem: configuration changes under rtnl, then the device.
fn netdev_change_mtu() {
    let mut rtnl = RTNL.lock();
    let mut dev = DEV.lock(); // rtnl_lock -> dev->lock
    *rtnl += 1;
    *dev = 1500;
}

/// The driver's reset path: the device first, then rtnl to re-register.
fn driver_reset() {
    let mut dev = DEV.lock();
    let mut rtnl = RTNL.lock(); // dev->lock -> rtnl_lock: the reverse order
    *dev = 0;
    *rtnl += 1;
}

fn main() {
    if lockdep::mode() == lockdep::Mode::Off {
        eprintln!(
            "lockdep is off: build with `--features lockdep` (and KSYNC_LOCKDEP unset or `warn`)"
        );
        std::process::exit(1);
    }
    // One after the other: the orders are taken, never at once, so nothing hangs.
    std::thread::spawn(netdev_change_mtu).join().unwrap();
    std::thread::spawn(driver_reset).join().unwrap();

    let reports = lockdep::take_reports_involving("rtnl_lock");
    let cycle = reports
        .iter()
        .find(|r| r.kind == ReportKind::CircularDependency)
        .expect("lockdep reports the AB-BA order");
    assert!(cycle.involves("dev->lock"));
    println!(
        "lockdep found the AB-BA order between {:?} before any thread hung (report printed above)",
        cycle.classes
    );
}
