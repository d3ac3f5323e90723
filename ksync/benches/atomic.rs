//! `Atomic` against the std atomics it wraps (same group, side by side: the
//! ratio should be 1), and `Bitmap::find_next_bit` over 1 Mbit against a
//! word-at-a-time loop.
//!
//! `cargo bench -p ksync --bench atomic -- --warm-up-time 1 --measurement-time 2`

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ksync::atomic::{Atomic, Atomic64, Bitmap};
use std::hint::black_box;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicUsize, Ordering};

fn atomic_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("atomic");
    let k = Atomic::new(0);
    let s = AtomicI32::new(0);
    let k64 = Atomic64::new(0);
    let s64 = AtomicI64::new(0);

    g.bench_function(BenchmarkId::new("inc", "ksync"), |b| {
        b.iter(|| black_box(&k).inc())
    });
    g.bench_function(BenchmarkId::new("inc", "std"), |b| {
        b.iter(|| black_box(&s).fetch_add(1, Ordering::Relaxed))
    });
    g.bench_function(BenchmarkId::new("add_return", "ksync"), |b| {
        b.iter(|| black_box(&k).add_return(1))
    });
    g.bench_function(BenchmarkId::new("add_return", "std"), |b| {
        b.iter(|| black_box(&s).fetch_add(1, Ordering::SeqCst) + 1)
    });
    g.bench_function(BenchmarkId::new("read", "ksync"), |b| {
        b.iter(|| black_box(&k).read())
    });
    g.bench_function(BenchmarkId::new("read", "std"), |b| {
        b.iter(|| black_box(&s).load(Ordering::Relaxed))
    });
    g.bench_function(BenchmarkId::new("cmpxchg", "ksync"), |b| {
        b.iter(|| {
            let v = k.read();
            black_box(&k).cmpxchg(v, v + 1)
        })
    });
    g.bench_function(BenchmarkId::new("cmpxchg", "std"), |b| {
        b.iter(|| {
            let v = s.load(Ordering::Relaxed);
            match black_box(&s).compare_exchange(v, v + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(x) | Err(x) => x,
            }
        })
    });
    g.bench_function(BenchmarkId::new("inc_not_zero", "ksync"), |b| {
        b.iter(|| black_box(&k).inc_not_zero())
    });
    g.bench_function(BenchmarkId::new("inc_not_zero", "std"), |b| {
        b.iter(|| {
            black_box(&s)
                .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |v| {
                    (v != 0).then(|| v.wrapping_add(1))
                })
                .is_ok()
        })
    });
    g.bench_function(BenchmarkId::new("xchg64", "ksync"), |b| {
        b.iter(|| black_box(&k64).xchg(black_box(5)))
    });
    g.bench_function(BenchmarkId::new("xchg64", "std"), |b| {
        b.iter(|| black_box(&s64).swap(black_box(5), Ordering::SeqCst))
    });
    g.finish();
}

const MBIT: usize = 1 << 20;

/// The baseline: a plain word-at-a-time scan, as lib/find_bit.c's
/// `_find_next_bit` does it.
fn naive_find_next_bit(words: &[AtomicUsize], nbits: usize, offset: usize) -> Option<usize> {
    if offset >= nbits {
        return None;
    }
    let mut i = offset / 64;
    let mut w = words[i].load(Ordering::Relaxed) & (!0usize << (offset % 64));
    loop {
        if w != 0 {
            let bit = i * 64 + w.trailing_zeros() as usize;
            return (bit < nbits).then_some(bit);
        }
        i += 1;
        if i == words.len() {
            return None;
        }
        w = words[i].load(Ordering::Relaxed);
    }
}

fn find_bit(c: &mut Criterion) {
    let mut g = c.benchmark_group("find_next_bit_1Mbit");
    let map = Bitmap::new(MBIT);
    map.set_bit(MBIT - 1);
    let words: Vec<AtomicUsize> = (0..MBIT / 64).map(|_| AtomicUsize::new(0)).collect();
    words[MBIT / 64 - 1].store(1 << 63, Ordering::Relaxed);

    g.bench_function("ksync::Bitmap", |b| {
        b.iter(|| black_box(&map).find_next_bit(black_box(1)))
    });
    g.bench_function("word-at-a-time", |b| {
        b.iter(|| naive_find_next_bit(black_box(&words), MBIT, black_box(1)))
    });
    g.finish();
}

criterion_group!(benches, atomic_ops, find_bit);
criterion_main!(benches);
