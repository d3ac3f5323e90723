//! `lockdep::assert_held` and its `_write`/`_read` forms on every ksync lock
//! that lockdep tracks: one test body per lock kind (exclusive, or
//! reader-writer), run over each type.
//!
//! Each lock has a class of its own (a distinct creation site), and each test
//! reads only its own thread's reports, so the tests run in parallel.
#![cfg(feature = "lockdep")]

use ksync::lockdep::{self, LockdepTracked, Mode, ReportKind};
use ksync::mutex::Mutex;
use ksync::percpu_rwsem::PercpuRwSemaphore;
use ksync::rtmutex::RtMutex;
use ksync::rwsem::RwSemaphore;
use ksync::seqlock::SeqLock;
use ksync::spinlock::{RawSpinLock, RwLock, SpinLock};

fn warn_mode() {
    if lockdep::mode() != Mode::Warn {
        lockdep::set_mode(Mode::Warn);
    }
}

/// Asserts that exactly `n` reports came, each "lockdep_assert_held failed".
#[track_caller]
fn expect_not_held(n: usize, what: &str) {
    let rs = lockdep::take_reports();
    assert_eq!(rs.len(), n, "{what}: {rs:#?}");
    for r in &rs {
        assert_eq!(r.kind, ReportKind::NotHeld, "{what}: {r}");
    }
}

/// An exclusive lock: held → no report; not held → one per assertion kind
/// (any, write); held exclusively, so `assert_held_read` reports.
fn exclusive<L: LockdepTracked>(what: &str, lock: &L, take: impl Fn(&L) -> Box<dyn Hold + '_>) {
    assert!(!lockdep::is_held(lock), "{what}: held before taking it");
    lockdep::assert_held(lock);
    lockdep::assert_held_write(lock);
    expect_not_held(2, what);
    {
        let _g = take(lock);
        assert!(lockdep::is_held(lock), "{what}");
        lockdep::assert_held(lock);
        lockdep::assert_held_write(lock);
        expect_not_held(0, what);
        lockdep::assert_held_read(lock); // held, but not shared
        expect_not_held(1, what);
    }
    assert!(
        !lockdep::is_held(lock),
        "{what}: still held after the guard"
    );
}

/// A reader-writer lock: as [`exclusive`] for the write side, and the read
/// side held shared (`assert_held_read` fine, `assert_held_write` reports).
fn reader_writer<L: LockdepTracked>(
    what: &str,
    lock: &L,
    read: impl Fn(&L) -> Box<dyn Hold + '_>,
    write: impl Fn(&L) -> Box<dyn Hold + '_>,
) {
    exclusive(what, lock, write);
    lockdep::assert_held_read(lock);
    expect_not_held(1, what);
    let _r = read(lock);
    lockdep::assert_held(lock);
    lockdep::assert_held_read(lock);
    expect_not_held(0, what);
    lockdep::assert_held_write(lock);
    expect_not_held(1, what);
}

/// Anything: a guard boxed to be dropped later (the lock kinds' guards differ).
trait Hold {}
impl<T> Hold for T {}

fn held<'a, G: 'a>(g: G) -> Box<dyn Hold + 'a> {
    Box::new(g)
}

#[test]
fn assert_held_on_every_exclusive_lock() {
    warn_mode();
    exclusive("SpinLock", &SpinLock::new(0), |l| held(l.lock()));
    exclusive("SpinLock irqsave", &SpinLock::new(0), |l| {
        held(l.lock_irqsave())
    });
    exclusive("RawSpinLock", &RawSpinLock::new(0), |l| held(l.lock()));
    exclusive("Mutex", &Mutex::new(0), |l| held(l.lock()));
    exclusive("RtMutex", &RtMutex::new(0), |l| held(l.lock()));
    exclusive("SeqLock", &SeqLock::new(0u64), |l| held(l.write()));
    // A bare map: a pseudo-lock (lock_map_acquire).
    let map = lockdep::LockdepMap::new("assert_pseudo");
    exclusive("LockdepMap", &map, |m| {
        lockdep::lock_map_acquire(m);
        struct Rel<'a>(&'a lockdep::LockdepMap);
        impl Drop for Rel<'_> {
            fn drop(&mut self) {
                lockdep::lock_map_release(self.0);
            }
        }
        Box::new(Rel(m))
    });
}

#[test]
fn assert_held_read_and_write_on_every_reader_writer_lock() {
    warn_mode();
    reader_writer(
        "RwLock",
        &RwLock::new(0),
        |l| held(l.read()),
        |l| held(l.write()),
    );
    reader_writer(
        "RwSemaphore",
        &RwSemaphore::new(0),
        |l| held(l.read()),
        |l| held(l.write()),
    );
    reader_writer(
        "PercpuRwSemaphore",
        &PercpuRwSemaphore::new(0),
        |l| held(l.read()),
        |l| held(l.write()),
    );
}

#[test]
fn a_lock_held_by_another_thread_is_not_held_here() {
    warn_mode();
    let m = Mutex::new(0);
    std::thread::scope(|s| {
        let g = m.lock();
        s.spawn(|| {
            lockdep::assert_held(&m);
            expect_not_held(1, "Mutex held by the other thread");
        })
        .join()
        .unwrap();
        drop(g);
    });
}
