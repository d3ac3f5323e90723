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

use ksync::lockdep::{self, AcquireKind, LockdepMap};
use ksync::mutex::Mutex;
use ksync::spinlock::SpinLock;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A test-and-set lock with and without the hooks, to compare in one binary.
struct BitLock {
    locked: AtomicBool,
    map: LockdepMap,
}

impl BitLock {
    #[inline]
    fn lock_bare(&self) {
        // Acquire: pairs with the Release store in `unlock_bare`.
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    #[inline]
    fn unlock_bare(&self) {
        // Release: pairs with the Acquire CAS in `lock_bare`.
        self.locked.store(false, Ordering::Release);
    }

    #[inline]
    fn lock(&self) {
        lockdep::acquire(&self.map, AcquireKind::Exclusive, false, 0);
        self.lock_bare();
    }

    #[inline]
    fn unlock(&self) {
        self.unlock_bare();
        lockdep::release(&self.map);
    }
}

static BIT: BitLock = BitLock {
    locked: AtomicBool::new(false),
    map: LockdepMap::new_spinning("cost_bitlock"),
};
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
