//! Benchmark group `rcu`: RCU read sides against crossbeam-epoch, seize,
//! arc-swap, parking_lot's RwLock and liburcu's memb flavour; grace-period
//! latency (ksync and liburcu); call_rcu throughput (ksync, liburcu,
//! crossbeam-epoch's defer, seize's retire). liburcu's rows need the build to
//! have found `liburcu-dev` (see `peers`).

use super::{Config, Group, Row, single, thread_cpu, threaded};
#[cfg(ksync_urcu)]
use super::{peers::urcu, per_iteration};
use ksync::rcu::{
    RcuPtr, SrcuStruct, call_rcu, rcu_barrier, rcu_read_lock, rcu_register_thread, synchronize_rcu,
    synchronize_rcu_expedited,
};
use seize::Guard as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn groups() -> Vec<Group> {
    vec![Group {
        name: "rcu",
        about: "rcu_read_lock vs crossbeam_epoch::pin, seize, ArcSwap::load, parking_lot::RwLock::read, liburcu memb; synchronize_rcu latency; call_rcu throughput",
        run,
    }]
}

const G: &str = "rcu";

/// Like `bench::single`, but ns/op from this thread's CPU time.
fn single_cpu(cfg: &Config, scenario: &str, impl_name: &str, mut op: impl FnMut()) -> Row {
    for _ in 0..10_000 {
        op();
    }
    let wall = Instant::now();
    let cpu0 = thread_cpu();
    let mut ops = 0u64;
    while wall.elapsed() < cfg.duration {
        for _ in 0..10_000 {
            op();
        }
        ops += 10_000;
    }
    let cpu = (thread_cpu() - cpu0).as_secs_f64();
    Row {
        group: G.into(),
        scenario: scenario.into(),
        impl_name: impl_name.into(),
        threads: 1,
        ops_per_sec: ops as f64 / cpu,
        ns_per_op: cpu * 1e9 / ops as f64,
        fairness: None,
        cpu_ns_per_side: None,
        line_round_trip_ns: None,
    }
}

/// The bare read-side rows, measured by `$measure(cfg, scenario, impl, op)`.
/// A macro, not a function taking `&mut dyn FnMut`, so each `op` is inlined
/// into the measuring loop as it would be in a user's code. Each op enters and
/// leaves an empty section (`drop(guard)`), as liburcu's own read-side loop
/// does: every one of these guards does atomic work on entry and on drop, which
/// the compiler may not remove, so no `black_box` is needed (it would force the
/// guard through the stack and add a store and a reload to every row).
macro_rules! bare_reads {
    ($cfg:expr, $rows:expr, $sc:expr, $measure:expr) => {{
        let (cfg, sc) = ($cfg, $sc);
        $rows.push($measure(cfg, sc, "ksync rcu_read_lock", || {
            drop(rcu_read_lock());
        }));
        $rows.push($measure(cfg, sc, "crossbeam_epoch::pin", || {
            drop(crossbeam_epoch::pin());
        }));
        let arc = arc_swap::ArcSwap::from_pointee(1u64);
        $rows.push($measure(cfg, sc, "arc_swap::ArcSwap::load", || {
            drop(arc.load());
        }));
        let rw = parking_lot::RwLock::new(1u64);
        $rows.push($measure(cfg, sc, "parking_lot::RwLock::read", || {
            drop(rw.read());
        }));
        let collector = seize::Collector::new();
        $rows.push($measure(cfg, sc, "seize Collector::enter", || {
            drop(collector.enter());
        }));
        // liburcu's inline read side runs in a C loop (an FFI call per
        // section would cost more than the section).
        #[cfg(ksync_urcu)]
        {
            let reader = urcu::Reader::register();
            let row = $measure(cfg, sc, "liburcu memb read lock+unlock", || {
                reader.read_loop(URCU_READS_PER_CALL)
            });
            $rows.push(per_iteration(row, URCU_READS_PER_CALL));
        }
    }};
}

/// Empty liburcu read-side sections per call into C.
#[cfg(ksync_urcu)]
const URCU_READS_PER_CALL: u64 = 256;

fn run(cfg: &Config, rows: &mut Vec<Row>) {
    // 1. Bare read-side enter+exit on one thread, no writer: in wall time, and
    //    in this thread's CPU time (robust to a loaded machine).
    bare_reads!(cfg, rows, "read lock+unlock", |c, sc, name, op| single(
        c, G, sc, name, op
    ));
    bare_reads!(cfg, rows, "read lock+unlock, cpu time", single_cpu);

    // 2. Readers dereferencing a pointer that one writer replaces every 50 µs:
    //    in wall time, and in the readers' CPU time (scaling robust to a loaded
    //    machine: contention shows, waiting for a CPU does not).
    for threads in [1usize, 2, 8] {
        read_with_writer(cfg, rows, threads, false);
    }
    for threads in [1usize, 2, 8] {
        read_with_writer(cfg, rows, threads, true);
    }

    // 2b. The yardstick for the scaling rows above: how a loop that shares
    //     nothing scales from 1 to 2 threads on this machine (below 2x where
    //     the CPUs are hyperthread siblings or share the host with others).
    for threads in [1usize, 2] {
        rows.push(threaded(
            cfg,
            G,
            "no shared data",
            "independent add loop",
            threads,
            |_| {
                let mut x = 0u64;
                move || x = black_box(x).wrapping_add(1)
            },
        ));
    }

    // 3. synchronize_rcu latency with 2 registered idle readers (median).
    sync_latency(cfg, rows);

    // 4. call_rcu + rcu_barrier throughput.
    callbacks(cfg, rows);
}

/// Like `bench::threaded`, but in the threads' CPU time: ns/op is CPU-ns per
/// operation; ops/s is what `threads` threads reach with one CPU each
/// (`threads × ops / CPU-seconds`), so the N-thread row over the 1-thread row is
/// the scaling the algorithm allows. Cache-line contention between the threads
/// shows as more CPU-ns per op (while they run at the same time); time spent
/// waiting for a CPU on a loaded machine does not.
fn threaded_cpu<F: FnMut()>(
    cfg: &Config,
    scenario: &str,
    impl_name: &str,
    threads: usize,
    make: impl Fn(usize) -> F + Sync,
) -> Row {
    let stop = AtomicBool::new(false);
    let start_line = std::sync::Barrier::new(threads + 1);
    let per_thread: Vec<(u64, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (stop, start_line, make) = (&stop, &start_line, &make);
                s.spawn(move || {
                    let mut op = make(i);
                    start_line.wait();
                    let cpu0 = thread_cpu();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            op();
                        }
                        n += 64;
                    }
                    (n, (thread_cpu() - cpu0).as_secs_f64())
                })
            })
            .collect();
        start_line.wait();
        std::thread::sleep(cfg.duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    });
    let ops: u64 = per_thread.iter().map(|t| t.0).sum();
    let cpu: f64 = per_thread.iter().map(|t| t.1).sum::<f64>().max(1e-9);
    let (min, max) = per_thread
        .iter()
        .map(|t| t.0 as f64 / t.1.max(1e-9))
        .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    Row {
        group: G.into(),
        scenario: scenario.into(),
        impl_name: impl_name.into(),
        threads,
        ops_per_sec: threads as f64 * ops as f64 / cpu,
        ns_per_op: cpu * 1e9 / ops.max(1) as f64,
        fairness: Some(if max > 0.0 { min / max } else { 0.0 }),
        cpu_ns_per_side: None,
        line_round_trip_ns: None,
    }
}

/// `threaded` (wall time) or [`threaded_cpu`] (CPU time).
fn measure<F: FnMut()>(
    cpu: bool,
    cfg: &Config,
    scenario: &str,
    impl_name: &str,
    threads: usize,
    make: impl Fn(usize) -> F + Sync,
) -> Row {
    if cpu {
        threaded_cpu(cfg, scenario, impl_name, threads, make)
    } else {
        threaded(cfg, G, scenario, impl_name, threads, make)
    }
}

/// Runs `update` every 50 µs on a writer thread while `body` runs.
fn with_writer<R>(update: impl Fn() + Send + Sync, body: impl FnOnce() -> R) -> R {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                update();
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        let r = body();
        stop.store(true, Ordering::Relaxed);
        r
    })
}

fn read_with_writer(cfg: &Config, rows: &mut Vec<Row>, threads: usize, cpu: bool) {
    let sc = if cpu {
        "read + 1 writer, cpu time"
    } else {
        "read + 1 writer"
    };
    let p = RcuPtr::new(Some(Box::new(1u64)));
    let n = AtomicU64::new(0);
    rows.push(with_writer(
        || p.store(Some(Box::new(n.fetch_add(1, Ordering::Relaxed)))),
        || {
            measure(cpu, cfg, sc, "ksync RcuPtr::read", threads, |_| {
                let p = &p;
                move || {
                    let g = rcu_read_lock();
                    black_box(p.read(&g).copied());
                }
            })
        },
    ));
    rcu_barrier();

    let a = crossbeam_epoch::Atomic::new(1u64);
    rows.push(with_writer(
        || {
            let g = crossbeam_epoch::pin();
            let old = a.swap(
                crossbeam_epoch::Owned::new(n.fetch_add(1, Ordering::Relaxed)),
                Ordering::AcqRel,
                &g,
            );
            // SAFETY: `old` is unlinked; defer its destruction past every pinned reader.
            unsafe { g.defer_destroy(old) };
        },
        || {
            measure(cpu, cfg, sc, "crossbeam_epoch pin+load", threads, |_| {
                let a = &a;
                move || {
                    let g = crossbeam_epoch::pin();
                    let s = a.load(Ordering::Acquire, &g);
                    // SAFETY: never null; protected by the pin.
                    black_box(unsafe { s.deref() });
                }
            })
        },
    ));
    // SAFETY: no reader is left; the last value is ours to free.
    drop(unsafe { a.into_owned() });

    let s = arc_swap::ArcSwap::from_pointee(1u64);
    rows.push(with_writer(
        || s.store(Arc::new(n.fetch_add(1, Ordering::Relaxed))),
        || {
            measure(cpu, cfg, sc, "arc_swap::ArcSwap::load", threads, |_| {
                let s = &s;
                move || {
                    black_box(**s.load());
                }
            })
        },
    ));

    let collector = seize::Collector::new();
    let ptr = AtomicPtr::new(Box::into_raw(Box::new(1u64)));
    rows.push(with_writer(
        || {
            let new = Box::into_raw(Box::new(n.fetch_add(1, Ordering::Relaxed)));
            // AcqRel: Release publishes the new value to the readers' Acquire
            // load in `protect`; Acquire pairs with the previous writer's
            // Release so that the old value is complete when it is retired.
            let old = ptr.swap(new, Ordering::AcqRel);
            // SAFETY: `old` came from Box::into_raw and is unlinked, so no
            // reader that enters from now on can load it; seize frees it once
            // every guard that might have loaded it is gone.
            unsafe { collector.retire(old, seize::reclaim::boxed) };
        },
        || {
            measure(cpu, cfg, sc, "seize enter+protect", threads, |_| {
                let (collector, ptr) = (&collector, &ptr);
                move || {
                    let g = collector.enter();
                    let p = g.protect(ptr, Ordering::Acquire);
                    // SAFETY: never null, and protected by `g`: a retired value
                    // is not freed while a guard that may have loaded it lives.
                    black_box(unsafe { *p });
                }
            })
        },
    ));
    // SAFETY: the writer and every reader have finished; the last value is
    // linked nowhere else and came from Box::into_raw.
    drop(unsafe { Box::from_raw(ptr.load(Ordering::Relaxed)) });
    drop(collector);

    let rw = parking_lot::RwLock::new(1u64);
    rows.push(with_writer(
        || *rw.write() = n.fetch_add(1, Ordering::Relaxed),
        || {
            measure(cpu, cfg, sc, "parking_lot::RwLock::read", threads, |_| {
                let rw = &rw;
                move || {
                    black_box(*rw.read());
                }
            })
        },
    ));
}

fn median_row(scenario: &str, impl_name: &str, mut samples: Vec<f64>) -> Row {
    samples.sort_by(|a, b| a.total_cmp(b));
    let med = samples[samples.len() / 2];
    Row {
        group: G.into(),
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

fn sync_latency(cfg: &Config, rows: &mut Vec<Row>) {
    let sc = "sync, 2 idle readers";
    let stop = Arc::new(AtomicBool::new(false));
    let idle: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                rcu_register_thread();
                drop(rcu_read_lock());
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(10));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(5));
    rows.push(median_row(
        sc,
        "ksync synchronize_rcu",
        sample(cfg, synchronize_rcu),
    ));
    rows.push(median_row(
        sc,
        "ksync synchronize_rcu_expedited",
        sample(cfg, synchronize_rcu_expedited),
    ));
    let srcu = SrcuStruct::new();
    drop(srcu.read_lock());
    rows.push(median_row(
        sc,
        "ksync synchronize_srcu",
        sample(cfg, || srcu.synchronize()),
    ));
    // The nearest peer operation: crossbeam-epoch has no blocking grace period;
    // pin().flush() advances its epoch and runs what it can.
    rows.push(median_row(
        sc,
        "crossbeam_epoch pin+flush",
        sample(cfg, || crossbeam_epoch::pin().flush()),
    ));
    stop.store(true, Ordering::Relaxed);
    for t in idle {
        t.thread().unpark();
        t.join().unwrap();
    }
    #[cfg(ksync_urcu)]
    urcu_sync_latency(cfg, rows, sc);
}

/// liburcu's synchronize_rcu with 2 registered idle readers, as ksync's above
/// (the measuring thread registered too, as ksync's is by its earlier reads).
#[cfg(ksync_urcu)]
fn urcu_sync_latency(cfg: &Config, rows: &mut Vec<Row>, sc: &str) {
    let stop = AtomicBool::new(false);
    let ready = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        let idle: Vec<_> = (0..2)
            .map(|_| {
                let (stop, ready) = (&stop, &ready);
                s.spawn(move || {
                    let reader = urcu::Reader::register();
                    reader.read_loop(1);
                    ready.wait();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(Duration::from_millis(10));
                    }
                })
            })
            .collect();
        ready.wait();
        let reader = urcu::Reader::register();
        reader.read_loop(1);
        rows.push(median_row(
            sc,
            "liburcu memb synchronize_rcu",
            sample(cfg, urcu::synchronize_rcu),
        ));
        stop.store(true, Ordering::Relaxed);
        for t in idle {
            t.thread().unpark();
        }
    });
}

/// A throughput row of `n` operations in `secs` on one thread.
fn rate_row(scenario: &str, impl_name: &str, n: u64, secs: f64) -> Row {
    Row {
        group: G.into(),
        scenario: scenario.into(),
        impl_name: impl_name.into(),
        threads: 1,
        ops_per_sec: n as f64 / secs,
        ns_per_op: secs * 1e9 / n as f64,
        fairness: None,
        cpu_ns_per_side: None,
        line_round_trip_ns: None,
    }
}

fn callbacks(cfg: &Config, rows: &mut Vec<Row>) {
    let sc = "call_rcu + rcu_barrier";
    const BATCH: u64 = 100_000;
    static COUNT: AtomicU64 = AtomicU64::new(0);
    // Warm up the worker.
    call_rcu(|| {});
    rcu_barrier();
    let start = COUNT.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < cfg.duration {
        for _ in 0..BATCH {
            call_rcu(|| {
                COUNT.fetch_add(1, Ordering::Relaxed);
            });
        }
        rcu_barrier();
        n += BATCH;
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(COUNT.load(Ordering::Relaxed) - start, n);
    rows.push(rate_row(sc, "ksync call_rcu", n, secs));
    // Peer: crossbeam-epoch's deferred functions, flushed at the end of each batch.
    static CB_COUNT: AtomicU64 = AtomicU64::new(0);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < cfg.duration {
        for _ in 0..BATCH {
            crossbeam_epoch::pin().defer(|| {
                CB_COUNT.fetch_add(1, Ordering::Relaxed);
            });
        }
        crossbeam_epoch::pin().flush();
        n += BATCH;
    }
    let secs = t0.elapsed().as_secs_f64();
    rows.push(rate_row(sc, "crossbeam_epoch Guard::defer", n, secs));

    // Peer: liburcu's call_rcu + rcu_barrier, driven from C (its rcu_heads
    // one allocation per batch, as ksync's capture-less closures allocate
    // nothing per call).
    #[cfg(ksync_urcu)]
    {
        let reader = urcu::Reader::register();
        // Warm up liburcu's call_rcu worker.
        assert_eq!(reader.call_rcu_batch(1), 1);
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < cfg.duration {
            assert_eq!(
                reader.call_rcu_batch(BATCH),
                BATCH,
                "liburcu lost a callback"
            );
            n += BATCH;
        }
        let secs = t0.elapsed().as_secs_f64();
        rows.push(rate_row(sc, "liburcu memb call_rcu", n, secs));
    }

    // Peer: seize's retire, with a reclaimer that counts (on slots of one
    // allocation, for the same reason), then reclaim_all as the barrier.
    static SEIZE_COUNT: AtomicU64 = AtomicU64::new(0);
    /// Counts one reclaimed slot; frees nothing (the slots are a Vec's).
    ///
    /// # Safety
    /// None needed: it does not touch `_slot`; `unsafe` only because seize's
    /// reclaimers are `unsafe fn`.
    unsafe fn count_slot(_slot: *mut u64, _collector: &seize::Collector) {
        SEIZE_COUNT.fetch_add(1, Ordering::Relaxed);
    }
    let collector = seize::Collector::new();
    let mut slots = vec![0u64; BATCH as usize];
    let start = SEIZE_COUNT.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < cfg.duration {
        for slot in slots.iter_mut() {
            // SAFETY: the slot is linked into no shared structure, so no
            // thread can reach it through the collector; the reclaimer only
            // counts, and the Vec outlives every reclaim (reclaim_all below).
            unsafe { collector.retire(slot as *mut u64, count_slot) };
        }
        // SAFETY: no thread holds a guard of this collector (it is this
        // function's own, and it entered none), which reclaim_all requires.
        unsafe { collector.reclaim_all() };
        n += BATCH;
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(
        SEIZE_COUNT.load(Ordering::Relaxed) - start,
        n,
        "seize lost a retirement"
    );
    rows.push(rate_row(sc, "seize retire + reclaim_all", n, secs));
    drop(slots);
}
