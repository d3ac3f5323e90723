//! Criterion benchmarks for seqlocks and per-CPU data (single-threaded costs;
//! the contended comparisons are in `ksync bench --group seqlock,percpu_counter`).
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use ksync::percpu::{PerCpu, PercpuCounter};
use ksync::seqlock::{SeqLatch, SeqLock};
use std::sync::atomic::{AtomicU64, Ordering};

fn seqlock(c: &mut Criterion) {
    let mut g = c.benchmark_group("read 64 bytes, uncontended");
    let sl = SeqLock::new([7u64; 8]);
    g.bench_function("ksync::SeqLock::read", |b| b.iter(|| black_box(sl.read())));
    let latch = SeqLatch::new([7u64; 8]);
    g.bench_function("ksync::SeqLatch::read", |b| {
        b.iter(|| black_box(latch.read()))
    });
    let rw = parking_lot::RwLock::new([7u64; 8]);
    g.bench_function("parking_lot::RwLock::read", |b| {
        b.iter(|| black_box(*rw.read()))
    });
    g.finish();
    let mut g = c.benchmark_group("write 64 bytes, uncontended");
    g.bench_function("ksync::SeqLock::write", |b| {
        b.iter(|| *sl.write() = black_box([1u64; 8]))
    });
    g.bench_function("parking_lot::RwLock::write", |b| {
        b.iter(|| *rw.write() = black_box([1u64; 8]))
    });
    g.finish();
}

fn percpu(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter add, one thread");
    let pc = PercpuCounter::new(0);
    g.bench_function("ksync::PercpuCounter::add", |b| {
        b.iter(|| pc.add(black_box(1)))
    });
    let p: PerCpu<AtomicU64> = PerCpu::new();
    g.bench_function("ksync::PerCpu::this_cpu_add", |b| {
        b.iter(|| p.this_cpu_add(black_box(1)))
    });
    let a = AtomicU64::new(0);
    g.bench_function("AtomicU64::fetch_add", |b| {
        b.iter(|| a.fetch_add(black_box(1), Ordering::Relaxed))
    });
    g.finish();
    let mut g = c.benchmark_group("this cpu lookup");
    g.bench_function("ksync::PerCpu::this_cpu", |b| {
        b.iter(|| black_box(p.this_cpu() as *const AtomicU64))
    });
    g.bench_function("ksync::arch::cpu_id", |b| {
        b.iter(|| black_box(ksync::arch::cpu_id()))
    });
    g.bench_function("libc::sched_getcpu", |b| {
        // SAFETY: sched_getcpu has no preconditions.
        b.iter(|| black_box(unsafe { libc::sched_getcpu() }))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = seqlock, percpu
}
criterion_main!(benches);
