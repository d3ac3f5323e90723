//! Benchmark groups for the mutex area: `ksync::mutex::Mutex` against
//! `std::sync::Mutex`, `parking_lot::Mutex` and glibc's `pthread_mutex_t`;
//! `ksync::rwsem::RwSemaphore` against `parking_lot::RwLock`,
//! `std::sync::RwLock` and glibc's `pthread_rwlock_t`.
//!
//! Every operation takes the lock, bumps a counter inside it and releases it.
//! Contended scenarios run 2 and 8 threads on one lock (more threads than this
//! machine's CPUs, so sleeping and waking are measured too) and report fairness
//! (fewest/most operations of one thread). The mutex's "with work" scenario
//! spins 20 pauses inside each section and 20 after it.

use super::peers::{PthreadMutex, PthreadRwLock};
use super::{Config, Group, Interleaved, Row, ThreadedTurns, pauses};
use ksync::arch::CachePadded;
use std::hint::black_box;

pub fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "mutex",
            about: "ksync Mutex vs std, parking_lot and glibc pthread_mutex_t: uncontended, 2 and 8 threads (with fairness)",
            run: run_mutex,
        },
        Group {
            name: "rwsem",
            about: "ksync RwSemaphore vs parking_lot and std RwLock, glibc pthread_rwlock_t: uncontended read/write, read-mostly and mixed",
            run: run_rwsem,
        },
    ]
}

/// A lock under measurement: run `f` on the protected counter.
trait Locked: Sync {
    fn with(&self, f: impl FnOnce(&mut u64));
}

impl Locked for ksync::mutex::Mutex<u64> {
    #[inline]
    fn with(&self, f: impl FnOnce(&mut u64)) {
        f(&mut self.lock())
    }
}
impl Locked for std::sync::Mutex<u64> {
    #[inline]
    fn with(&self, f: impl FnOnce(&mut u64)) {
        f(&mut self.lock().unwrap())
    }
}
impl Locked for parking_lot::Mutex<u64> {
    #[inline]
    fn with(&self, f: impl FnOnce(&mut u64)) {
        f(&mut self.lock())
    }
}
impl Locked for PthreadMutex {
    #[inline]
    fn with(&self, f: impl FnOnce(&mut u64)) {
        PthreadMutex::with(self, f)
    }
}

/// Adds the uncontended lock+unlock of the lock `make` makes.
fn mutex_uncontended<L: Locked + 'static>(unc: &mut Interleaved<'_>, name: &str, make: fn() -> L) {
    let l = CachePadded::new(make());
    unc.add(name, move || {
        l.with(|v| *v += 1);
        black_box(&l);
    });
}

/// Adds the lock `l` to the contended scenarios `tight` (the lock taken in a
/// loop) and `work` (sections with work in them and work between them, as a
/// real user's: a lock that keeps the running threads' bursts to themselves
/// leaves the lock free while its owner works outside it).
fn mutex_contended<'a, L: Locked>(
    tight: &mut ThreadedTurns<'a>,
    work: &mut ThreadedTurns<'a>,
    name: &str,
    l: &'a [CachePadded<L>; 2],
) {
    tight.add(name, move |_| move || l[0].with(|v| *v = black_box(*v + 1)));
    work.add(name, move |_| {
        move || {
            l[1].with(|v| {
                *v = black_box(*v + 1);
                pauses(20);
            });
            pauses(20);
        }
    });
}

fn run_mutex(cfg: &Config, rows: &mut Vec<Row>) {
    let ksync: fn() -> ksync::mutex::Mutex<u64> = || ksync::mutex::Mutex::new(0);
    let pl: fn() -> parking_lot::Mutex<u64> = || parking_lot::Mutex::new(0);
    let std: fn() -> std::sync::Mutex<u64> = || std::sync::Mutex::new(0);
    let glibc: fn() -> PthreadMutex = || PthreadMutex::new(0);
    let mut unc = Interleaved::new("mutex", "uncontended");
    mutex_uncontended(&mut unc, "ksync::mutex::Mutex", ksync);
    mutex_uncontended(&mut unc, "parking_lot::Mutex", pl);
    mutex_uncontended(&mut unc, "std::sync::Mutex", std);
    mutex_uncontended(&mut unc, "glibc pthread_mutex_t", glibc);
    rows.extend(unc.run(cfg));
    let mut with_work = Vec::new();
    for threads in [2, 8] {
        // A lock each for each scenario, on its own cache lines.
        let k = [CachePadded::new(ksync()), CachePadded::new(ksync())];
        let p = [CachePadded::new(pl()), CachePadded::new(pl())];
        let s = [CachePadded::new(std()), CachePadded::new(std())];
        let g = [CachePadded::new(glibc()), CachePadded::new(glibc())];
        let mut tight = ThreadedTurns::new("mutex", "contended", threads);
        let mut work = ThreadedTurns::new("mutex", "contended, with work", threads);
        mutex_contended(&mut tight, &mut work, "ksync::mutex::Mutex", &k);
        mutex_contended(&mut tight, &mut work, "parking_lot::Mutex", &p);
        mutex_contended(&mut tight, &mut work, "std::sync::Mutex", &s);
        mutex_contended(&mut tight, &mut work, "glibc pthread_mutex_t", &g);
        rows.extend(tight.run(cfg));
        with_work.extend(work.run(cfg));
    }
    rows.extend(with_work);
}

/// A reader-writer lock under measurement.
trait RwLocked: Sync {
    fn read(&self) -> u64;
    fn write(&self);
}

impl RwLocked for ksync::rwsem::RwSemaphore<u64> {
    #[inline]
    fn read(&self) -> u64 {
        *ksync::rwsem::RwSemaphore::read(self)
    }
    #[inline]
    fn write(&self) {
        *ksync::rwsem::RwSemaphore::write(self) += 1;
    }
}
impl RwLocked for parking_lot::RwLock<u64> {
    #[inline]
    fn read(&self) -> u64 {
        *parking_lot::RwLock::read(self)
    }
    #[inline]
    fn write(&self) {
        *parking_lot::RwLock::write(self) += 1;
    }
}
impl RwLocked for std::sync::RwLock<u64> {
    #[inline]
    fn read(&self) -> u64 {
        *std::sync::RwLock::read(self).unwrap()
    }
    #[inline]
    fn write(&self) {
        *std::sync::RwLock::write(self).unwrap() += 1;
    }
}
impl RwLocked for PthreadRwLock {
    #[inline]
    fn read(&self) -> u64 {
        PthreadRwLock::read(self)
    }
    #[inline]
    fn write(&self) {
        PthreadRwLock::write(self);
    }
}

/// Adds the uncontended read and write of the lock `make` makes (a lock each).
fn rwsem_uncontended<L: RwLocked + 'static>(
    read: &mut Interleaved<'_>,
    write: &mut Interleaved<'_>,
    name: &str,
    make: fn() -> L,
) {
    let l = CachePadded::new(make());
    read.add(name, move || {
        black_box(l.read());
    });
    let l = CachePadded::new(make());
    write.add(name, move || l.write());
}

/// The contended rwsem scenarios: read-mostly (one write in 64 operations)
/// and mixed (one in 4), with 4 threads and, oversubscribed on a 2-CPU
/// machine, 8: (scenario, write every, threads).
const RWSEM_CONTENDED: [(&str, u32, usize); 4] = [
    ("read-mostly (1/64 w)", 64, 4),
    ("mixed (1/4 w)", 4, 4),
    ("read-mostly (1/64 w)", 64, 8),
    ("mixed (1/4 w)", 4, 8),
];

/// Adds the lock `l` to `t`, a scenario where one operation in `every` writes.
fn rwsem_contended<'a, L: RwLocked>(t: &mut ThreadedTurns<'a>, name: &str, every: u32, l: &'a L) {
    t.add(name, move |i| {
        let mut n = i as u32;
        move || {
            n = n.wrapping_add(1);
            if n.is_multiple_of(every) {
                l.write();
            } else {
                black_box(l.read());
            }
        }
    });
}

fn run_rwsem(cfg: &Config, rows: &mut Vec<Row>) {
    let ksync: fn() -> ksync::rwsem::RwSemaphore<u64> = || ksync::rwsem::RwSemaphore::new(0);
    let pl: fn() -> parking_lot::RwLock<u64> = || parking_lot::RwLock::new(0);
    let std: fn() -> std::sync::RwLock<u64> = || std::sync::RwLock::new(0);
    let glibc: fn() -> PthreadRwLock = || PthreadRwLock::new(0);
    let mut read = Interleaved::new("rwsem", "uncontended read");
    let mut write = Interleaved::new("rwsem", "uncontended write");
    rwsem_uncontended(&mut read, &mut write, "ksync::rwsem::RwSemaphore", ksync);
    rwsem_uncontended(&mut read, &mut write, "parking_lot::RwLock", pl);
    rwsem_uncontended(&mut read, &mut write, "std::sync::RwLock", std);
    rwsem_uncontended(&mut read, &mut write, "glibc pthread_rwlock_t", glibc);
    rows.extend(read.run(cfg));
    rows.extend(write.run(cfg));
    for (scenario, every, threads) in RWSEM_CONTENDED {
        let (k, p) = (CachePadded::new(ksync()), CachePadded::new(pl()));
        let (s, g) = (CachePadded::new(std()), CachePadded::new(glibc()));
        let mut t = ThreadedTurns::new("rwsem", scenario, threads);
        rwsem_contended(&mut t, "ksync::rwsem::RwSemaphore", every, &*k);
        rwsem_contended(&mut t, "parking_lot::RwLock", every, &*p);
        rwsem_contended(&mut t, "std::sync::RwLock", every, &*s);
        rwsem_contended(&mut t, "glibc pthread_rwlock_t", every, &*g);
        rows.extend(t.run(cfg));
    }
}
