//! The lockdep hooks' cost on ksync's real locks, as a best-of-N timing loop
//! (robust on a loaded machine, where criterion's means are not): run it once
//! with and once without the feature and compare the rows.
//!
//! ```text
//! cargo bench -p ksync --bench lockdep_cost                     # feature off
//! cargo bench -p ksync --bench lockdep_cost --features lockdep  # feature on
//! ```
//!
//! With the feature off, "hooked" must equal "bare" (the hooks compile to
//! nothing over a zero-sized map) — that is the "unchanged when off" check, in
//! one binary; with it on, the difference is the hooks' cost, chain cached.

mod common;
use common::BitLock;
use ksync::lockdep::LockdepMap;

use ksync::mutex::Mutex;
use ksync::spinlock::SpinLock;
use std::hint::black_box;
use std::time::Instant;

static BIT: BitLock = BitLock::new("cost_bitlock");
static SPIN: SpinLock<u64> = SpinLock::new(0);
static MUTEX: Mutex<u64> = Mutex::new(0);

const ITERS: u32 = 200_000;
const ROUNDS: usize = 60;

fn per_op(f: &dyn Fn()) -> f64 {
    let t = Instant::now();
    for _ in 0..ITERS {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(ITERS)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let rows: [(&str, &dyn Fn()); 4] = [
        ("test-and-set, bare", &|| {
            black_box(&BIT).lock_bare();
            black_box(&BIT).unlock_bare();
        }),
        ("test-and-set, hooked", &|| {
            black_box(&BIT).lock();
            black_box(&BIT).unlock();
        }),
        ("SpinLock lock+unlock", &|| *black_box(&SPIN).lock() += 1),
        ("Mutex lock+unlock", &|| *black_box(&MUTEX).lock() += 1),
    ];
    let mut best = [f64::MAX; 4];
    // Interleaved rounds: load on the machine hits every row alike.
    for _ in 0..ROUNDS {
        for (b, (_, f)) in best.iter_mut().zip(rows.iter()) {
            *b = b.min(per_op(*f));
        }
    }
    println!(
        "lockdep feature {} (LockdepMap: {} bytes), best of {ROUNDS} x {ITERS}:",
        if cfg!(feature = "lockdep") {
            "on"
        } else {
            "off"
        },
        std::mem::size_of::<LockdepMap>()
    );
    for (b, (name, _)) in best.iter().zip(rows.iter()) {
        println!("  {name:<22} {b:6.2} ns");
    }
    println!("  hooked / bare          {:6.3}x", best[1] / best[0]);
}
