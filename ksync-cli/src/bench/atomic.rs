//! Benchmark groups for the atomic area: `ksync::atomic` against the std types
//! people use instead (registered in `super::all`).

use super::{Config, Group, Interleaved, Row, ThreadedTurns};
use ksync::arch::CachePadded;
use ksync::atomic::{Atomic, Bitmap, Refcount};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

pub fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "atomic",
            about: "atomic_t and refcount_t against std::sync::atomic and Arc",
            run: run_atomic,
        },
        Group {
            name: "bitmap",
            about: "find_next_bit over 1 Mbit against a word-at-a-time loop",
            run: run_bitmap,
        },
    ]
}

fn run_atomic(cfg: &Config, rows: &mut Vec<Row>) {
    const G: &str = "atomic";
    let k = CachePadded::new(Atomic::new(0));
    let s = CachePadded::new(AtomicI32::new(0));
    let mut add = Interleaved::new(G, "add_return");
    add.add("ksync::Atomic", || {
        black_box(k.add_return(1));
    });
    add.add("std::AtomicI32 SeqCst", || {
        black_box(s.fetch_add(1, Ordering::SeqCst) + 1);
    });
    rows.extend(add.run(cfg));
    let mut inz = Interleaved::new(G, "inc_not_zero");
    inz.add("ksync::Atomic", || {
        black_box(k.inc_not_zero());
    });
    inz.add("std fetch_update", || {
        black_box(
            s.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |v| {
                (v != 0).then(|| v.wrapping_add(1))
            })
            .is_ok(),
        );
    });
    rows.extend(inz.run(cfg));
    for threads in [2, 4] {
        let sc = format!("inc, {threads} threads");
        let (k, s) = (&k, &s);
        let mut t = ThreadedTurns::new(G, &sc, threads);
        t.add("ksync::Atomic", move |_| move || k.inc());
        t.add("std::AtomicI32", move |_| {
            move || {
                s.fetch_add(1, Ordering::Relaxed);
            }
        });
        rows.extend(t.run(cfg));
    }
    // Reference get + put: the pair every lookup pays.
    let r = CachePadded::new(Refcount::new(1));
    let arc = Arc::new(0u64);
    let mut refs = Interleaved::new(G, "ref get+put");
    refs.add("ksync::Refcount", || {
        r.inc();
        black_box(r.dec_and_test());
    });
    refs.add("std::Arc clone+drop", || {
        drop(black_box(arc.clone()));
    });
    rows.extend(refs.run(cfg));
}

fn run_bitmap(cfg: &Config, rows: &mut Vec<Row>) {
    const G: &str = "bitmap";
    const MBIT: usize = 1 << 20;
    let map = Bitmap::new(MBIT);
    map.set_bit(MBIT - 1);
    let words: Vec<AtomicUsize> = (0..MBIT / 64).map(|_| AtomicUsize::new(0)).collect();
    words[MBIT / 64 - 1].store(1 << 63, Ordering::Relaxed);
    let mut find = Interleaved::new(G, "find_next_bit 1 Mbit");
    find.add("ksync::Bitmap", || {
        black_box(map.find_next_bit(black_box(1)));
    });
    find.add("word-at-a-time loop", || {
        black_box(naive_find_next_bit(black_box(&words), 1));
    });
    rows.extend(find.run(cfg));
}

/// lib/find_bit.c's plain loop: one word, one test.
fn naive_find_next_bit(words: &[AtomicUsize], offset: usize) -> Option<usize> {
    let mut i = offset / 64;
    let mut w = words[i].load(Ordering::Relaxed) & (!0usize << (offset % 64));
    loop {
        if w != 0 {
            return Some(i * 64 + w.trailing_zeros() as usize);
        }
        i += 1;
        if i == words.len() {
            return None;
        }
        w = words[i].load(Ordering::Relaxed);
    }
}
