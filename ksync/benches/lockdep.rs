//! The cost of the lockdep hooks: acquire + release of a one-bit spinlock, bare
//! and with the hooks, with the chain already validated (cached); and ksync's
//! real `SpinLock` and `Mutex` lock+unlock (run once with and once without the
//! feature: with it off their cost must be unchanged).
//!
//! `cargo bench -p ksync --bench lockdep --features lockdep` measures the hooks;
//! without the feature the hooked rows equal the bare ones (the hooks are empty
//! `#[inline(always)]` functions over a zero-sized map).

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]
mod common;
use common::BitLock;
use ksync::lockdep;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ksync::mutex::Mutex;
use ksync::spinlock::SpinLock;

static A: BitLock = BitLock::new("bench_A");
static B: BitLock = BitLock::new("bench_B");
static C: BitLock = BitLock::new("bench_C");

fn hooks(c: &mut Criterion) {
    let mut g = c.benchmark_group("lockdep");
    g.bench_function("bare lock+unlock", |b| {
        b.iter(|| {
            black_box(&A).lock_bare();
            black_box(&A).unlock_bare();
        })
    });
    g.bench_function("hooked lock+unlock", |b| {
        b.iter(|| {
            black_box(&A).lock();
            black_box(&A).unlock();
        })
    });
    g.bench_function("hooked lock+unlock, 2 held", |b| {
        A.lock();
        B.lock();
        b.iter(|| {
            black_box(&C).lock();
            black_box(&C).unlock();
        });
        B.unlock();
        A.unlock();
    });
    g.bench_function("might_sleep", |b| b.iter(lockdep::might_sleep));
    g.finish();
}

static SPIN: SpinLock<u64> = SpinLock::new(0);
static SPIN_OUTER: SpinLock<u64> = SpinLock::new(0);
static MUTEX: Mutex<u64> = Mutex::new(0);
static MUTEX_OUTER: Mutex<u64> = Mutex::new(0);

/// The real locks, uncontended: the feature-off build of these rows is the
/// baseline the feature-on build is compared with.
fn real_locks(c: &mut Criterion) {
    let feature = if cfg!(feature = "lockdep") {
        "lockdep on"
    } else {
        "lockdep off"
    };
    let mut g = c.benchmark_group(format!("real locks, {feature}"));
    g.bench_function("SpinLock lock+unlock", |b| {
        b.iter(|| *black_box(&SPIN).lock() += 1)
    });
    g.bench_function("SpinLock lock+unlock, 1 held", |b| {
        let _outer = SPIN_OUTER.lock();
        b.iter(|| *black_box(&SPIN).lock() += 1)
    });
    g.bench_function("Mutex lock+unlock", |b| {
        b.iter(|| *black_box(&MUTEX).lock() += 1)
    });
    g.bench_function("Mutex lock+unlock, 1 held", |b| {
        let _outer = MUTEX_OUTER.lock();
        b.iter(|| *black_box(&MUTEX).lock() += 1)
    });
    g.finish();
}

criterion_group!(benches, hooks, real_locks);
criterion_main!(benches);
