//! Criterion micro-benchmarks: uncontended lock+unlock of ksync's spinlocks and
//! raw algorithms beside `spin::Mutex`, `parking_lot::Mutex` and
//! `std::sync::Mutex`; read and write lock+unlock of the rwlocks. (Contended
//! and oversubscribed scenarios are in `ksync bench --group spinlock`.)
//!
//! `cargo bench -p ksync --bench spinlock -- --warm-up-time 1 --measurement-time 2`

#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use criterion::{Criterion, criterion_group, criterion_main};
use ksync::arch::CachePadded;
use ksync::spinlock::raw::{Mcs, Tas, Ticket, Ttas};
use ksync::spinlock::{Lock, ReaderPrefRwLock, RwLock, SpinLock};
use std::hint::black_box;

fn mutexes(c: &mut Criterion) {
    let mut g = c.benchmark_group("spinlock-uncontended");
    let l = CachePadded::new(SpinLock::new(0u64));
    g.bench_function("ksync::SpinLock", |b| b.iter(|| *l.lock() += 1));
    let l = CachePadded::new(SpinLock::new(0u64));
    g.bench_function("ksync::SpinLock irqsave", |b| {
        b.iter(|| *l.lock_irqsave() += 1)
    });
    let l = CachePadded::new(Lock::<u64, Ticket>::new(0));
    g.bench_function("ksync ticket", |b| b.iter(|| *l.lock() += 1));
    let l = CachePadded::new(Lock::<u64, Mcs>::new(0));
    g.bench_function("ksync mcs", |b| b.iter(|| *l.lock() += 1));
    let l = CachePadded::new(Lock::<u64, Tas>::new(0));
    g.bench_function("ksync tas", |b| b.iter(|| *l.lock() += 1));
    let l = CachePadded::new(Lock::<u64, Ttas>::new(0));
    g.bench_function("ksync ttas", |b| b.iter(|| *l.lock() += 1));
    let l = CachePadded::new(spin::Mutex::new(0u64));
    g.bench_function("spin::Mutex", |b| b.iter(|| *l.lock() += 1));
    let l = CachePadded::new(parking_lot::Mutex::new(0u64));
    g.bench_function("parking_lot::Mutex", |b| b.iter(|| *l.lock() += 1));
    let l = CachePadded::new(std::sync::Mutex::new(0u64));
    g.bench_function("std::sync::Mutex", |b| b.iter(|| *l.lock().unwrap() += 1));
    g.finish();
}

fn rwlocks(c: &mut Criterion) {
    let mut g = c.benchmark_group("rwlock-uncontended");
    let l = CachePadded::new(RwLock::new(0u64));
    g.bench_function("ksync::RwLock read", |b| b.iter(|| black_box(*l.read())));
    g.bench_function("ksync::RwLock write", |b| b.iter(|| *l.write() += 1));
    let l = CachePadded::new(ReaderPrefRwLock::new(0u64));
    g.bench_function("ksync::ReaderPrefRwLock read", |b| {
        b.iter(|| black_box(*l.read()))
    });
    g.bench_function("ksync::ReaderPrefRwLock write", |b| {
        b.iter(|| *l.write() += 1)
    });
    let l = CachePadded::new(parking_lot::RwLock::new(0u64));
    g.bench_function("parking_lot::RwLock read", |b| {
        b.iter(|| black_box(*l.read()))
    });
    g.bench_function("parking_lot::RwLock write", |b| b.iter(|| *l.write() += 1));
    let l = CachePadded::new(std::sync::RwLock::new(0u64));
    g.bench_function("std::sync::RwLock read", |b| {
        b.iter(|| black_box(*l.read().unwrap()))
    });
    g.bench_function("std::sync::RwLock write", |b| {
        b.iter(|| *l.write().unwrap() += 1)
    });
    g.finish();
}

criterion_group!(benches, mutexes, rwlocks);
criterion_main!(benches);
