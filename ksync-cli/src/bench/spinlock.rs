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

#[cfg(ksync_ck)]
use super::peers::ck;
use super::peers::{PthreadMutex, PthreadRwLock};
use super::{Config, Group, Interleaved, Row, ThreadedTurns};
use ksync::arch::CachePadded;
use ksync::spinlock::raw::{Mcs, Queued, RawSpin, Tas, Ticket, Ttas};
use ksync::spinlock::{ReaderPrefRwLock, RwLock, SpinLock};
use std::sync::Arc;

/// Adds one mutex-like subject to the scenario chosen by `threads` (1 =
/// uncontended, to `unc`; else to `turns`: either way the scenario's
/// implementations are measured in turns).
macro_rules! mutex_row {
    ($unc:expr, $turns:expr, $threads:expr, $name:expr, $new:expr, |$l:ident| $body:expr) => {{
        if $threads == 1 {
            let subject = CachePadded::new($new);
            $unc.add($name, move || {
                let $l = &*subject;
                $body;
            });
        } else {
            let subject = Arc::new(CachePadded::new($new));
            $turns.add($name, move |_| {
                let subject = Arc::clone(&subject);
                move || {
                    let $l = &**subject;
                    $body;
                }
            });
        }
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
        let mut unc = Interleaved::new(G, "uncontended");
        // Oversubscribed, the FIFO locks (ticket, MCS) hand the lock to
        // waiters that are not running: an acquisition can take a tick, and
        // a turn ends only when every thread has finished its batch (with 64
        // the group took four times as long as with 8, whose rows read the
        // same).
        let mut turns = ThreadedTurns::new(G, scenario(threads), threads).batch(8);
        mutex_row!(
            unc,
            turns,
            threads,
            "ksync::SpinLock",
            SpinLock::new(0u64),
            |l| { *l.lock() += 1 }
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "ksync::RawSpinLock",
            ksync::spinlock::RawSpinLock::new(0u64),
            |l| { *l.lock() += 1 }
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "spin::Mutex",
            spin::Mutex::new(0u64),
            |l| { *l.lock() += 1 }
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "parking_lot::Mutex",
            parking_lot::Mutex::new(0u64),
            |l| { *l.lock() += 1 }
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "std::sync::Mutex",
            std::sync::Mutex::new(0u64),
            |l| { *l.lock().unwrap() += 1 }
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "glibc pthread_mutex_t",
            PthreadMutex::new(0),
            |l| l.with(|v| *v += 1)
        );
        #[cfg(ksync_ck)]
        for kind in ck::Kind::ALL {
            ck_row(&mut unc, &mut turns, threads, kind);
        }
        mutex_row!(
            unc,
            turns,
            threads,
            "ksync raw queued",
            RawSubject::<Queued>::new(),
            |l| l.op()
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "ksync raw mcs",
            RawSubject::<Mcs>::new(),
            |l| l.op()
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "ksync raw ticket",
            RawSubject::<Ticket>::new(),
            |l| l.op()
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "ksync raw ttas",
            RawSubject::<Ttas>::new(),
            |l| l.op()
        );
        mutex_row!(
            unc,
            turns,
            threads,
            "ksync raw tas",
            RawSubject::<Tas>::new(),
            |l| l.op()
        );
        if threads == 1 {
            rows.extend(unc.run(cfg));
        } else {
            rows.extend(turns.run(cfg));
        }
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

/// One Concurrency Kit spinlock, `threads` threads on one subject, added to
/// `turns` (uncontended: to `unc`).
#[cfg(ksync_ck)]
fn ck_row(
    unc: &mut Interleaved<'_>,
    turns: &mut ThreadedTurns<'_>,
    threads: usize,
    kind: ck::Kind,
) {
    if threads == 1 {
        let subject = ck::Subject::new(kind);
        unc.add_units(kind.name(), CK_PER_CALL, move |n| {
            for _ in 0..n {
                subject.run(CK_PER_CALL);
            }
        });
        return;
    }
    let subject = Arc::new(ck::Subject::new(kind));
    turns.add(kind.name(), move |_| {
        let s = Arc::clone(&subject);
        move || s.run(1)
    });
}

/// Read-mostly mix for the threaded rwlock rows: one write in 16 operations.
const WRITE_EVERY: u32 = 16;

/// One rwlock: its uncontended read and write added to `read` and `write`
/// (measured in turns with the others', a lock each), its read-mostly mix to
/// `turns` (2 threads, then 8: measured in turns too).
macro_rules! rw_rows {
    ($unc_read:expr, $unc_write:expr, $turns:expr, $name:expr, $new:expr, |$l:ident| read: $read:expr, write: $write:expr) => {{
        let subject = CachePadded::new($new);
        $unc_read.add($name, move || {
            let $l = &*subject;
            core::hint::black_box($read);
        });
        let subject = CachePadded::new($new);
        $unc_write.add($name, move || {
            let $l = &*subject;
            $write
        });
        let subject = Arc::new(CachePadded::new($new));
        for turns in $turns.iter_mut() {
            let subject = Arc::clone(&subject);
            turns.add($name, move |_| {
                let subject = Arc::clone(&subject);
                let mut i = 0u32;
                move || {
                    let $l = &**subject;
                    i = i.wrapping_add(1);
                    if i % WRITE_EVERY == 0 {
                        $write
                    } else {
                        core::hint::black_box($read);
                    }
                }
            });
        }
    }};
}

fn rwlock(cfg: &Config, rows: &mut Vec<Row>) {
    let mut read = Interleaved::new("rwlock", "uncontended-read");
    let mut write = Interleaved::new("rwlock", "uncontended-write");
    let mut t = [
        ThreadedTurns::new("rwlock", "read-mostly-2", 2),
        ThreadedTurns::new("rwlock", "read-mostly-oversub", 8),
    ];
    rw_rows!(read, write, t, "ksync::RwLock (qrwlock)", RwLock::new(0u64), |l| read: *l.read(), write: *l.write() += 1);
    rw_rows!(read, write, t, "ksync::ReaderPrefRwLock", ReaderPrefRwLock::new(0u64), |l| read: *l.read(), write: *l.write() += 1);
    rw_rows!(read, write, t, "parking_lot::RwLock", parking_lot::RwLock::new(0u64), |l| read: *l.read(), write: *l.write() += 1);
    rw_rows!(read, write, t, "std::sync::RwLock", std::sync::RwLock::new(0u64), |l| read: *l.read().unwrap(), write: *l.write().unwrap() += 1);
    rw_rows!(read, write, t, "spin::RwLock", spin::RwLock::new(0u64), |l| read: *l.read(), write: *l.write() += 1);
    rw_rows!(read, write, t, "glibc pthread_rwlock_t", PthreadRwLock::new(0), |l| read: l.read(), write: l.write());
    rows.extend(read.run(cfg));
    rows.extend(write.run(cfg));
    for turns in t {
        rows.extend(turns.run(cfg));
    }
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
