//! Criterion micro-benchmarks for the sleeping primitives' fast paths
//! (`cargo bench -p ksync --bench sleeping`); side-by-side runs against peers
//! are in `ksync bench --group semaphore,wakeup`.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use ksync::completion::Completion;
use ksync::sched::WaitQueue;
use ksync::semaphore::Semaphore;

fn fast_paths(c: &mut Criterion) {
    let sem = Semaphore::new(1);
    c.bench_function("semaphore down+up uncontended", |b| {
        b.iter(|| {
            sem.down();
            sem.up();
        })
    });
    let wq = WaitQueue::new();
    c.bench_function("waitqueue wake_up, no waiters", |b| {
        b.iter(|| black_box(wq.wake_up()))
    });
    let comp = Completion::new();
    c.bench_function("completion complete+try_wait", |b| {
        b.iter(|| {
            comp.complete();
            black_box(comp.try_wait())
        })
    });
}

criterion_group!(benches, fast_paths);
criterion_main!(benches);
