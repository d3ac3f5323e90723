//! Per-CPU statistics against one shared atomic: the kernel's reason for
//! `DEFINE_PER_CPU` and `percpu_counter`.
//!
//! Every thread counts events three ways: a shared `AtomicU64` (every CPU
//! fights for one cache line), a `PerCpu<AtomicU64>` with `this_cpu_inc` (each
//! CPU its own padded slot; the total is a sum over CPUs, read rarely), and a
//! `PercpuCounter` (per-CPU deltas folded into a shared count every `batch`
//! events, so `read()` is cheap and approximate and `sum()` exact). The program
//! prints the time per increment of each and checks that all three agree.
//! The numbers depend on the machine: with one CPU there is no line to fight
//! for and the shared atomic is as fast as the rest.
//!
//! Run: `cargo run --release -p ksync --example percpu_stats` (about a second).

use ksync::percpu::{PerCpu, PercpuCounter, nr_cpu_ids};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const PER_THREAD: u64 = 2_000_000;

static SHARED: AtomicU64 = AtomicU64::new(0);
static PER_CPU: PerCpu<AtomicU64> = PerCpu::new(); // DEFINE_PER_CPU(u64, events)

/// Runs `inc` `PER_THREAD` times on each of `threads` threads; the wall time
/// per increment, in nanoseconds (of one thread's view).
fn time_it(threads: usize, inc: &(dyn Fn() + Sync)) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..PER_THREAD {
                    inc();
                }
            });
        }
    });
    let took: Duration = start.elapsed();
    took.as_nanos() as f64 / PER_THREAD as f64
}

fn main() {
    let threads = nr_cpu_ids().clamp(2, 8);
    let counter = PercpuCounter::new(0); // percpu_counter_init
    let expected = threads as u64 * PER_THREAD;

    let shared = time_it(threads, &|| {
        SHARED.fetch_add(1, Relaxed);
    });
    let percpu = time_it(threads, &|| PER_CPU.this_cpu_inc());
    let pcc = time_it(threads, &|| counter.inc());

    println!(
        "{threads} threads x {PER_THREAD} increments, {} CPUs",
        nr_cpu_ids()
    );
    println!(
        "  shared AtomicU64        {shared:6.2} ns/inc   total {}",
        SHARED.load(Relaxed)
    );
    println!(
        "  PerCpu this_cpu_inc     {percpu:6.2} ns/inc   total {} (sum over CPUs)",
        PER_CPU.sum()
    );
    println!(
        "  PercpuCounter inc       {pcc:6.2} ns/inc   read() {} (approximate), sum() {} (exact)",
        counter.read(),
        counter.sum()
    );
    for (cpu, slot) in PER_CPU.iter().filter(|(_, v)| v.load(Relaxed) > 0) {
        println!("    cpu {cpu}: {}", slot.load(Relaxed));
    }
    assert_eq!(SHARED.load(Relaxed), expected);
    assert_eq!(PER_CPU.sum(), expected);
    assert_eq!(counter.sum(), expected as i64);
}
