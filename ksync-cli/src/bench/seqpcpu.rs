//! Benchmark groups for the seqpcpu area (registered in `super::all`).
//!
//! - `seqlock`: reading a 64-byte value while a writer updates it, ksync's
//!   `SeqLock` and `SeqLatch` against `parking_lot::RwLock` and `std::sync::RwLock`.
//!   (The `seqlock` crate is not measured: it reads the data with volatile loads,
//!   a data race, and is not a dependency.)
//! - `percpu_counter`: `PercpuCounter::add` against one shared
//!   `AtomicU64::fetch_add`, and the cpu-id + locked-add design
//!   (`PerCpu<AtomicU64>::this_cpu_add`) for reference.
//! - `this_cpu`: looking up this CPU (`cpu_id`, `PerCpu::this_cpu`) against
//!   glibc's `sched_getcpu`.

use super::{Config, Group, Interleaved, Row, ThreadedTurns, threaded};
use ksync::arch::CachePadded;
use ksync::percpu::{PerCpu, PercpuCounter};
use ksync::seqlock::{SeqLatch, SeqLock};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "seqlock",
            about: "read a 64-byte value with a writer active: SeqLock vs RwLock",
            run: seqlock,
        },
        Group {
            name: "percpu_counter",
            about: "PercpuCounter::add vs a shared AtomicU64::fetch_add",
            run: percpu_counter,
        },
        Group {
            name: "this_cpu",
            about: "this-CPU lookup: rseq cpu_id vs sched_getcpu",
            run: this_cpu,
        },
    ]
}

type Val = [u64; 8];

/// Runs `write` in a background thread about every few microseconds (a busy
/// but not saturating writer) while `measure` runs.
fn with_writer(write: impl Fn(u64) + Sync, measure: impl FnOnce() -> Row) -> Row {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                write(n);
                for _ in 0..2000 {
                    std::hint::spin_loop();
                }
            }
        });
        let row = measure();
        stop.store(true, Ordering::Relaxed);
        row
    })
}

fn seqlock(cfg: &Config, rows: &mut Vec<Row>) {
    const S: &str = "read 64B, writer active";
    for threads in [1, 2] {
        let sl = CachePadded::new(SeqLock::new([0u64; 8]));
        rows.push(with_writer(
            |n| *sl.write() = [n; 8],
            || {
                threaded(cfg, "seqlock", S, "ksync::SeqLock", threads, |_| {
                    || {
                        black_box(sl.read());
                    }
                })
            },
        ));
        let latch = CachePadded::new(SeqLatch::new([0u64; 8]));
        rows.push(with_writer(
            |n| latch.write([n; 8]),
            || {
                threaded(cfg, "seqlock", S, "ksync::SeqLatch", threads, |_| {
                    || {
                        black_box(latch.read());
                    }
                })
            },
        ));
        let pl = CachePadded::new(parking_lot::RwLock::new([0u64; 8]));
        rows.push(with_writer(
            |n| *pl.write() = [n; 8],
            || {
                threaded(cfg, "seqlock", S, "parking_lot::RwLock", threads, |_| {
                    || {
                        let v: Val = *pl.read();
                        black_box(v);
                    }
                })
            },
        ));
        let st = CachePadded::new(std::sync::RwLock::new([0u64; 8]));
        rows.push(with_writer(
            |n| *st.write().unwrap() = [n; 8],
            || {
                threaded(cfg, "seqlock", S, "std::sync::RwLock", threads, |_| {
                    || {
                        let v: Val = *st.read().unwrap();
                        black_box(v);
                    }
                })
            },
        ));
    }
}

fn percpu_counter(cfg: &Config, rows: &mut Vec<Row>) {
    for threads in [2, 8] {
        let c = PercpuCounter::new(0);
        let p: PerCpu<AtomicU64> = PerCpu::new();
        let a = CachePadded::new(AtomicU64::new(0));
        let (c, p, a) = (&c, &p, &a);
        let mut t = ThreadedTurns::new("percpu_counter", "add", threads);
        t.add("ksync::PercpuCounter", move |_| move || c.add(black_box(1)));
        t.add("ksync::PerCpu::this_cpu_add", move |_| {
            move || p.this_cpu_add(black_box(1))
        });
        t.add("AtomicU64::fetch_add (shared)", move |_| {
            move || {
                a.fetch_add(black_box(1), Ordering::Relaxed);
            }
        });
        rows.extend(t.run(cfg));
        black_box(c.sum());
    }
}

fn this_cpu(cfg: &Config, rows: &mut Vec<Row>) {
    let p: PerCpu<AtomicU64> = PerCpu::new();
    let mut unc = Interleaved::new("this_cpu", "lookup");
    unc.add("ksync::arch::cpu_id", || {
        black_box(ksync::arch::cpu_id());
    });
    unc.add("ksync::PerCpu::this_cpu", || {
        black_box(p.this_cpu());
    });
    unc.add("libc::sched_getcpu", || {
        // SAFETY: sched_getcpu has no preconditions.
        black_box(unsafe { libc::sched_getcpu() });
    });
    rows.extend(unc.run(cfg));
}
