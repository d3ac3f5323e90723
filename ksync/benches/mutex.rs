//! Criterion micro-benchmarks: uncontended lock+unlock of ksync's `Mutex` and
//! `RwSemaphore` against `std` and `parking_lot` (the contended comparisons are
//! in `ksync bench --group mutex,rwsem`).
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};

fn mutex(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    let k = ksync::mutex::Mutex::new(0u64);
    g.bench_function("ksync::mutex::Mutex", |b| {
        b.iter(|| *black_box(&k).lock() += 1)
    });
    let p = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot::Mutex", |b| {
        b.iter(|| *black_box(&p).lock() += 1)
    });
    let s = std::sync::Mutex::new(0u64);
    g.bench_function("std::sync::Mutex", |b| {
        b.iter(|| *black_box(&s).lock().unwrap() += 1)
    });
    g.finish();
}

fn rwsem(c: &mut Criterion) {
    let mut g = c.benchmark_group("rwsem_uncontended_read");
    let k = ksync::rwsem::RwSemaphore::new(0u64);
    g.bench_function("ksync::rwsem::RwSemaphore", |b| {
        b.iter(|| *black_box(&k).read())
    });
    let p = parking_lot::RwLock::new(0u64);
    g.bench_function("parking_lot::RwLock", |b| b.iter(|| *black_box(&p).read()));
    let s = std::sync::RwLock::new(0u64);
    g.bench_function("std::sync::RwLock", |b| {
        b.iter(|| *black_box(&s).read().unwrap())
    });
    g.finish();
}

criterion_group!(benches, mutex, rwsem);
criterion_main!(benches);
