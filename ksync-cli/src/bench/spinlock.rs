//! Benchmark groups: spinlocks against `spin::Mutex`, `parking_lot::Mutex`,
//! `std::sync::Mutex`, glibc's `pthread_mutex_t` and Concurrency Kit's fas,
//! ticket and MCS spinlocks (where built: see `peers`), with rows for the raw
//! algorithms themselves (tas, ttas, ticket, MCS, queued) so the cost of
//! cache-line bouncing is visible side by side; rwlocks against
//! `parking_lot::RwLock`, `std::sync::RwLock`, `spin::RwLock` and glibc's
//! `pthread_rwlock_t`.
//!
//! Every subject sits on a cache line of its own (`CachePadded`), and the
//! critical section is one increment of the protected counter (the "short
//! critical section" of the issue). Contended rows report fairness
//! (min/max operations per thread).

use super::peers::{PthreadMutex, PthreadRwLock};
use super::{Config, Group, Row, single, threaded};
#[cfg(ksync_ck)]
use super::{peers::ck, per_iteration};
use ksync::arch::CachePadded;
use ksync::spinlock::raw::{Mcs, Queued, RawSpin, Tas, Ticket, Ttas};
use ksync::spinlock::{ReaderPrefRwLock, RwLock, SpinLock};

/// Runs one mutex-like subject in the three scenarios' shape chosen by
/// `threads` (1 = uncontended via `single`, else `threaded`).
macro_rules! mutex_row {
    ($cfg:expr, $rows:expr, $group:expr, $threads:expr, $name:expr, $new:expr, |$l:ident| $body:expr) => {{
        let subject = CachePadded::new($new);
        let row = if $threads == 1 {
            let $l = &*subject;
            single($cfg, $group, "uncontended", $name, || $body)
        } else {
            threaded($cfg, $group, scenario($threads), $name, $threads, |_| {
                let $l = &*subject;
                move || $body
            })
        };
        $rows.push(row);
    }};
}

/// The scenario of a contended row with `threads` threads.
fn scenario(threads: usize) -> &'static str {
    if threads == 2 {
        "contended-2"
    } else {
        "oversubscribed"
    }
}

/// A raw lock measured bare: lock, increment, unlock.
struct RawSubject<B: RawSpin> {
    raw: B,
    count: core::cell::UnsafeCell<u64>,
}

// SAFETY: `count` is only touched with `raw` held.
unsafe impl<B: RawSpin> Sync for RawSubject<B> {}

impl<B: RawSpin> RawSubject<B> {
    fn new() -> Self {
        RawSubject {
            raw: B::INIT,
            count: core::cell::UnsafeCell::new(0),
        }
    }
    #[inline]
    fn op(&self) {
        self.raw.lock();
        // SAFETY: the raw lock is held.
        unsafe { *self.count.get() += 1 };
        // SAFETY: locked on this thread just above.
        unsafe { self.raw.unlock() };
    }
}

fn spinlock(cfg: &Config, rows: &mut Vec<Row>) {
    const G: &str = "spinlock";
    for threads in [1usize, 2, 8] {
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "ksync::SpinLock",
            SpinLock::new(0u64),
            |l| { *l.lock() += 1 }
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "ksync::RawSpinLock",
            ksync::spinlock::RawSpinLock::new(0u64),
            |l| { *l.lock() += 1 }
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "spin::Mutex",
            spin::Mutex::new(0u64),
            |l| { *l.lock() += 1 }
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "parking_lot::Mutex",
            parking_lot::Mutex::new(0u64),
            |l| { *l.lock() += 1 }
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "std::sync::Mutex",
            std::sync::Mutex::new(0u64),
            |l| { *l.lock().unwrap() += 1 }
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "glibc pthread_mutex_t",
            PthreadMutex::new(0),
            |l| l.with(|v| *v += 1)
        );
        #[cfg(ksync_ck)]
        for kind in ck::Kind::ALL {
            ck_row(cfg, rows, threads, kind);
        }
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "ksync raw queued",
            RawSubject::<Queued>::new(),
            |l| l.op()
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "ksync raw mcs",
            RawSubject::<Mcs>::new(),
            |l| l.op()
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "ksync raw ticket",
            RawSubject::<Ticket>::new(),
            |l| l.op()
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "ksync raw ttas",
            RawSubject::<Ttas>::new(),
            |l| l.op()
        );
        mutex_row!(
            cfg,
            rows,
            G,
            threads,
            "ksync raw tas",
            RawSubject::<Tas>::new(),
            |l| l.op()
        );
    }
}

/// Iterations of Concurrency Kit's lock, increment, unlock per call into C
/// when uncontended: enough that the call (a few ns) is lost in the
/// measurement. Contended, one per call: an acquisition then costs far more
/// than the call, and a longer C loop would keep a thread from seeing the
/// bench's stop flag (oversubscribed, a FIFO lock's hand-off to a preempted
/// waiter can take a scheduler tick).
#[cfg(ksync_ck)]
const CK_PER_CALL: u64 = 64;

/// One row of a Concurrency Kit spinlock, `threads` threads on one subject.
#[cfg(ksync_ck)]
fn ck_row(cfg: &Config, rows: &mut Vec<Row>, threads: usize, kind: ck::Kind) {
    let subject = ck::Subject::new(kind);
    rows.push(if threads == 1 {
        let row = single(cfg, "spinlock", "uncontended", kind.name(), || {
            subject.run(CK_PER_CALL)
        });
        per_iteration(row, CK_PER_CALL)
    } else {
        threaded(
            cfg,
            "spinlock",
            scenario(threads),
            kind.name(),
            threads,
            |_| {
                let s = &subject;
                move || s.run(1)
            },
        )
    });
}

/// Read-mostly mix for the threaded rwlock rows: one write in 16 operations.
const WRITE_EVERY: u32 = 16;

macro_rules! rw_rows {
    ($cfg:expr, $rows:expr, $name:expr, $new:expr, |$l:ident| read: $read:expr, write: $write:expr) => {{
        let subject = CachePadded::new($new);
        let $l = &*subject;
        $rows.push(single($cfg, "rwlock", "uncontended-read", $name, || {
            core::hint::black_box($read);
        }));
        $rows.push(single($cfg, "rwlock", "uncontended-write", $name, || {
            $write
        }));
        for threads in [2usize, 8] {
            let scenario = if threads == 2 {
                "read-mostly-2"
            } else {
                "read-mostly-oversub"
            };
            $rows.push(threaded($cfg, "rwlock", scenario, $name, threads, |_| {
                let $l = &*subject;
                let mut i = 0u32;
                move || {
                    i = i.wrapping_add(1);
                    if i % WRITE_EVERY == 0 {
                        $write
                    } else {
                        core::hint::black_box($read);
                    }
                }
            }));
        }
    }};
}

fn rwlock(cfg: &Config, rows: &mut Vec<Row>) {
    rw_rows!(cfg, rows, "ksync::RwLock (qrwlock)", RwLock::new(0u64), |l| read: *l.read(), write: *l.write() += 1);
    rw_rows!(cfg, rows, "ksync::ReaderPrefRwLock", ReaderPrefRwLock::new(0u64), |l| read: *l.read(), write: *l.write() += 1);
    rw_rows!(cfg, rows, "parking_lot::RwLock", parking_lot::RwLock::new(0u64), |l| read: *l.read(), write: *l.write() += 1);
    rw_rows!(cfg, rows, "std::sync::RwLock", std::sync::RwLock::new(0u64), |l| read: *l.read().unwrap(), write: *l.write().unwrap() += 1);
    rw_rows!(cfg, rows, "spin::RwLock", spin::RwLock::new(0u64), |l| read: *l.read(), write: *l.write() += 1);
    rw_rows!(cfg, rows, "glibc pthread_rwlock_t", PthreadRwLock::new(0), |l| read: l.read(), write: l.write());
}

pub fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "spinlock",
            about: "SpinLock and the raw algorithms vs spin, parking_lot, std Mutex, glibc pthread_mutex_t, CK fas/ticket/MCS (1, 2, 8 threads)",
            run: spinlock,
        },
        Group {
            name: "rwlock",
            about: "RwLock (qrwlock) and the reader-preferring rwlock vs parking_lot, std, spin RwLock, glibc pthread_rwlock_t",
            run: rwlock,
        },
    ]
}
