//! Criterion micro-benchmarks: RCU read-side enter+exit against the peers.
//!
//! `cargo bench -p ksync --bench rcu -- --warm-up-time 1 --measurement-time 2`

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};

fn read_side(c: &mut Criterion) {
    let mut g = c.benchmark_group("rcu read lock+unlock");
    g.bench_function("ksync rcu_read_lock", |b| {
        b.iter(|| {
            let guard = ksync::rcu::rcu_read_lock();
            black_box(&guard);
        })
    });
    g.bench_function("ksync rcu_read_lock nested x2", |b| {
        b.iter(|| {
            let a = ksync::rcu::rcu_read_lock();
            let b2 = ksync::rcu::rcu_read_lock();
            black_box((&a, &b2));
        })
    });
    g.bench_function("crossbeam_epoch::pin", |b| {
        b.iter(|| {
            let guard = crossbeam_epoch::pin();
            black_box(&guard);
        })
    });
    let arc = arc_swap::ArcSwap::from_pointee(1u64);
    g.bench_function("arc_swap::ArcSwap::load", |b| {
        b.iter(|| {
            let guard = arc.load();
            black_box(&guard);
        })
    });
    let rw = parking_lot::RwLock::new(1u64);
    g.bench_function("parking_lot::RwLock::read", |b| {
        b.iter(|| {
            let guard = rw.read();
            black_box(&guard);
        })
    });
    g.finish();
}

fn grace_period(c: &mut Criterion) {
    c.bench_function("synchronize_rcu (no other reader)", |b| {
        b.iter(ksync::rcu::synchronize_rcu)
    });
}

criterion_group!(benches, read_side, grace_period);
criterion_main!(benches);
