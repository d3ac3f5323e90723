//! Criterion micro-benchmarks of the irq area: `local_irq_save`+`restore`
//! against a `pthread_sigmask` block+setmask pair (the ratio is the point: the
//! lazy flag should be at least 100x cheaper), and `preempt_disable`+`enable`.
//!
//! `cargo bench -p ksync --bench irq -- --warm-up-time 1 --measurement-time 2`

#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use criterion::{Criterion, criterion_group, criterion_main};
use ksync::{irq, sched};
use std::hint::black_box;

fn irq_masking(c: &mut Criterion) {
    let mut g = c.benchmark_group("irq-mask");
    g.bench_function("ksync local_irq_save+restore", |b| {
        b.iter(|| {
            let f = irq::local_irq_save();
            black_box(&f);
            irq::local_irq_restore(f);
        })
    });
    g.bench_function("ksync local_irq_disable+enable", |b| {
        b.iter(|| {
            irq::local_irq_disable();
            black_box(());
            irq::local_irq_enable();
        })
    });
    // SAFETY: sigset operations on zeroed local sets; pthread_sigmask with valid
    // pointers, the old mask restored each iteration.
    let (all, mut old) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        (all, std::mem::zeroed::<libc::sigset_t>())
    };
    g.bench_function("pthread_sigmask block+setmask", |b| {
        b.iter(|| {
            // SAFETY: as above.
            unsafe {
                libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
                black_box(&old);
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            }
        })
    });
    g.finish();
}

fn preempt(c: &mut Criterion) {
    let mut g = c.benchmark_group("preempt");
    g.bench_function("ksync preempt_disable+enable", |b| {
        b.iter(|| {
            sched::preempt_disable();
            black_box(());
            sched::preempt_enable();
        })
    });
    g.bench_function("ksync local_bh_disable+enable", |b| {
        b.iter(|| {
            irq::local_bh_disable();
            black_box(());
            irq::local_bh_enable();
        })
    });
    g.finish();
}

criterion_group!(benches, irq_masking, preempt);
criterion_main!(benches);
