//! Benchmark groups for the kernel's later locks (SPEC §19): `RtMutex`
//! against `parking_lot::Mutex` and a glibc `PTHREAD_PRIO_INHERIT` mutex, and
//! `PercpuRwSemaphore`'s read side against `rcu_read_lock` and
//! `parking_lot::RwLock::read`, with the writer's latency beside; and
//! `WwMutex` (with an acquire context) beside `Mutex`.
//!
//! The targets: `RtMutex` uncontended lock+unlock ≤ 1.1×
//! `parking_lot::Mutex` and ≤ 1.0× the glibc PI mutex; `PercpuRwSemaphore`
//! read lock+unlock ≤ 1.5× `rcu_read_lock`+unlock and ≥ 10× faster than
//! `parking_lot::RwLock::read` on 2 threads, 2 reader threads ≥ 1.8× one.

use super::{Config, Group, Interleaved, Row, threaded};
use ksync::arch::CachePadded;
use ksync::percpu_rwsem::PercpuRwSemaphore;
use ksync::rcu::{rcu_read_lock, rcu_register_thread};
use ksync::rtmutex::RtMutex;
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "rt_mutex",
            about: "ksync RtMutex (PI futex) vs parking_lot::Mutex and glibc PTHREAD_PRIO_INHERIT: uncontended lock+unlock",
            run: run_rt_mutex,
        },
        Group {
            name: "percpu_rwsem",
            about: "ksync PercpuRwSemaphore read vs rcu_read_lock and parking_lot::RwLock::read, 1 and 2 readers; writer latency with idle readers",
            run: run_percpu_rwsem,
        },
        Group {
            name: "ww_mutex",
            about: "ksync WwMutex with an acquire context vs ksync Mutex: uncontended lock+unlock",
            run: run_ww_mutex,
        },
    ]
}

/// `ww_mutex_lock(m, ctx)` + unlock with one context open for the whole run
/// (the lock path's context checks and count, and a CAS each way), beside
/// `mutex_lock` + unlock.
fn run_ww_mutex(cfg: &Config, rows: &mut Vec<Row>) {
    use ksync::ww_mutex::{WwAcquireCtx, WwClass, WwMutex};
    static CLASS: WwClass = WwClass::new("bench_ww_acquire", "bench_ww_mutex");
    const G: &str = "ww_mutex";
    let sc = "uncontended lock+unlock";
    let ww = CachePadded::new(WwMutex::new(&CLASS, 0u64));
    let ctx = WwAcquireCtx::new(&CLASS);
    let mx = CachePadded::new(ksync::mutex::Mutex::new(0u64));
    let mut unc = Interleaved::new(G, sc);
    unc.add("ksync::ww_mutex::WwMutex (ctx)", || {
        *ww.lock(&ctx).expect("uncontended") += 1;
        black_box(&ww);
    });
    unc.add("ksync::mutex::Mutex", || {
        *mx.lock() += 1;
        black_box(&mx);
    });
    rows.extend(unc.run(cfg));
}

/// A glibc mutex with the priority-inheritance protocol
/// (`pthread_mutexattr_setprotocol(PTHREAD_PRIO_INHERIT)`): what real-time
/// Rust programs reach for today. Boxed: a pthread mutex must not move once
/// initialised.
struct PthreadPiMutex(Box<UnsafeCell<libc::pthread_mutex_t>>);

// SAFETY: a pthread mutex is made to be shared between threads; every access
// to it goes through the pthread calls, which synchronise.
unsafe impl Sync for PthreadPiMutex {}
// SAFETY: it owns its heap cell and is destroyed on drop by whichever thread
// holds it last, while unlocked.
unsafe impl Send for PthreadPiMutex {}

impl PthreadPiMutex {
    fn new() -> Self {
        // SAFETY: zeroed storage is valid to pass to pthread_mutexattr_init and
        // pthread_mutex_init, which initialise it; the attribute object is
        // initialised before use and destroyed after the mutex is made.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
            assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
            assert_eq!(
                libc::pthread_mutexattr_setprotocol(&mut attr, libc::PTHREAD_PRIO_INHERIT),
                0
            );
            let m = Box::new(UnsafeCell::new(core::mem::zeroed()));
            assert_eq!(libc::pthread_mutex_init(m.get(), &attr), 0);
            libc::pthread_mutexattr_destroy(&mut attr);
            PthreadPiMutex(m)
        }
    }

    #[inline]
    fn with(&self, f: impl FnOnce()) {
        // SAFETY: the mutex was initialised in `new` and never moves (boxed);
        // this thread locks it and unlocks it right after `f`.
        unsafe {
            libc::pthread_mutex_lock(self.0.get());
            f();
            libc::pthread_mutex_unlock(self.0.get());
        }
    }
}

impl Drop for PthreadPiMutex {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, unlocked (every `with` unlocks), and
        // no other reference exists (`&mut self`).
        unsafe {
            libc::pthread_mutex_destroy(self.0.get());
        }
    }
}

fn run_rt_mutex(cfg: &Config, rows: &mut Vec<Row>) {
    const G: &str = "rt_mutex";
    let sc = "uncontended lock+unlock";
    let rt = CachePadded::new(RtMutex::new(0u64));
    let mx = CachePadded::new(ksync::mutex::Mutex::new(0u64));
    let pl = CachePadded::new(parking_lot::Mutex::new(0u64));
    let pi = CachePadded::new(PthreadPiMutex::new());
    let mut n = 0u64;
    let mut unc = Interleaved::new(G, sc);
    unc.add("ksync::rtmutex::RtMutex", || {
        *rt.lock() += 1;
        black_box(&rt);
    });
    unc.add("ksync::mutex::Mutex (no PI)", || {
        *mx.lock() += 1;
        black_box(&mx);
    });
    unc.add("parking_lot::Mutex (no PI)", || {
        *pl.lock() += 1;
        black_box(&pl);
    });
    unc.add("glibc PTHREAD_PRIO_INHERIT", || {
        pi.with(|| n += 1);
        black_box(&pi);
    });
    rows.extend(unc.run(cfg));
    black_box(n);
}

fn run_percpu_rwsem(cfg: &Config, rows: &mut Vec<Row>) {
    const G: &str = "percpu_rwsem";
    let sc = "read lock+unlock";
    let sem = CachePadded::new(PercpuRwSemaphore::new(7u64));
    let pl = CachePadded::new(parking_lot::RwLock::new(7u64));
    rcu_register_thread();
    let mut unc = Interleaved::new(G, sc);
    unc.add("ksync PercpuRwSemaphore::read", || {
        black_box(*sem.read());
    });
    unc.add("ksync rcu_read_lock", || {
        drop(black_box(rcu_read_lock()));
    });
    unc.add("parking_lot::RwLock::read", || {
        black_box(*pl.read());
    });
    rows.extend(unc.run(cfg));
    let sc2 = "read lock+unlock, 2 reader threads";
    rows.push(threaded(
        cfg,
        G,
        sc2,
        "ksync PercpuRwSemaphore::read",
        2,
        |_| {
            let sem = &sem;
            move || {
                black_box(*sem.read());
            }
        },
    ));
    rows.push(threaded(cfg, G, sc2, "ksync rcu_read_lock", 2, |_| {
        rcu_register_thread();
        || drop(black_box(rcu_read_lock()))
    }));
    rows.push(threaded(
        cfg,
        G,
        sc2,
        "parking_lot::RwLock::read",
        2,
        |_| {
            let pl = &pl;
            move || {
                black_box(*pl.read());
            }
        },
    ));
    writer_latency(cfg, rows, &sem, &pl);
}

/// The median time of one write lock+unlock while 2 reader threads exist and
/// sit idle (they read once, then park): the writer's price, a membarrier and
/// a scan of the readers' per-thread counters, against the peer's.
fn writer_latency(
    cfg: &Config,
    rows: &mut Vec<Row>,
    sem: &PercpuRwSemaphore<u64>,
    pl: &parking_lot::RwLock<u64>,
) {
    let sc = "write lock+unlock, 2 idle readers";
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let idle: Vec<_> = (0..2)
            .map(|_| {
                let stop = &stop;
                s.spawn(move || {
                    black_box(*sem.read());
                    black_box(*pl.read());
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(Duration::from_millis(10));
                    }
                })
            })
            .collect();
        rows.push(median_row(
            sc,
            "ksync PercpuRwSemaphore::write",
            sample(cfg, || *sem.write() += 1),
        ));
        rows.push(median_row(
            sc,
            "parking_lot::RwLock::write",
            sample(cfg, || *pl.write() += 1),
        ));
        stop.store(true, Ordering::Relaxed);
        for t in idle {
            t.thread().unpark();
        }
    });
}

fn sample(cfg: &Config, mut op: impl FnMut()) -> Vec<f64> {
    let mut v = Vec::new();
    let end = Instant::now() + cfg.duration;
    while Instant::now() < end || v.len() < 11 {
        let t = Instant::now();
        op();
        v.push(t.elapsed().as_nanos() as f64);
    }
    v
}

fn median_row(scenario: &str, impl_name: &str, mut samples: Vec<f64>) -> Row {
    samples.sort_by(|a, b| a.total_cmp(b));
    let med = samples[samples.len() / 2];
    Row {
        group: "percpu_rwsem".into(),
        scenario: scenario.into(),
        impl_name: impl_name.into(),
        threads: 1,
        ops_per_sec: 1e9 / med,
        ns_per_op: med,
        fairness: None,
        cpu_ns_per_side: None,
        line_round_trip_ns: None,
    }
}
