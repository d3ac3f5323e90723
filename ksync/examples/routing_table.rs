//! An RCU routing table: lookups on many threads that take no lock and never
//! wait, while a writer changes routes under them.
//!
//! The routes live in an [`RcuHashMap`] keyed by /24 prefix, with a default
//! route in an [`RcuPtr`]. A reader looks an address up inside
//! `rcu_read_lock()`; the writer replaces and deletes routes (each old entry is
//! freed after a grace period, `kfree_rcu`), swaps the default route (the
//! `Retired` old one is dropped after a grace period too) and queues a
//! `call_rcu` callback per batch of changes. At exit `rcu_barrier()` waits for
//! every callback, and the program checks that every replaced route was freed
//! exactly once and that no reader ever saw a route for another prefix.
//!
//! Run: `cargo run --release -p ksync --example routing_table` (about half a second).

use ksync::rcu::{self, RcuHashMap, RcuPtr, rcu_read_lock};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const PREFIXES: u32 = 1024;
const READERS: usize = 4;
const RUN_FOR: Duration = Duration::from_millis(400);

static LIVE_ROUTES: AtomicU64 = AtomicU64::new(0);
static BATCHES_RETIRED: AtomicU64 = AtomicU64::new(0);

/// One route. Counting the live ones shows the grace periods freeing them.
struct Route {
    prefix: u32,
    next_hop: u32,
}

impl Route {
    fn new(prefix: u32, next_hop: u32) -> Box<Route> {
        LIVE_ROUTES.fetch_add(1, Relaxed);
        Box::new(Route { prefix, next_hop })
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        LIVE_ROUTES.fetch_sub(1, Relaxed);
    }
}

fn main() {
    let table: RcuHashMap<u32, Box<Route>> = RcuHashMap::with_buckets(PREFIXES as usize);
    for p in 0..PREFIXES {
        table.insert(p, Route::new(p, p % 8));
    }
    let default_route = RcuPtr::new(Some(Route::new(u32::MAX, 0)));
    let stop = AtomicBool::new(false);

    let (lookups, updates) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (table, default_route, stop) = (&table, &default_route, &stop);
                s.spawn(move || {
                    let mut rng = fastrand_lite(r as u64 + 1);
                    let mut n = 0u64;
                    while !stop.load(Relaxed) {
                        let addr = rng() as u32; // a destination address
                        let prefix = (addr >> 8) % (PREFIXES + PREFIXES / 8); // some miss
                        let g = rcu_read_lock(); // rcu_read_lock(): never waits
                        let hop = match table.get(&prefix, &g) {
                            Some(route) => {
                                assert_eq!(route.prefix, prefix, "a route for another prefix");
                                route.next_hop
                            }
                            None => default_route.read(&g).expect("a default route").next_hop,
                        };
                        std::hint::black_box(hop);
                        n += 1;
                    } // rcu_read_unlock()
                    n
                })
            })
            .collect();

        // The writer: replace, delete and re-add routes, swap the default.
        let start = Instant::now();
        let mut rng = fastrand_lite(99);
        let mut updates = 0u64;
        while start.elapsed() < RUN_FOR {
            for _ in 0..64 {
                let p = (rng() as u32) % PREFIXES;
                if rng().is_multiple_of(4) {
                    table.remove(&p); // hash_del_rcu: freed after a grace period
                    table.insert(p, Route::new(p, 7));
                } else {
                    table.insert(p, Route::new(p, (rng() % 8) as u32)); // replaced: kfree_rcu
                }
                updates += 1;
            }
            // rcu_replace_pointer: the old default is `Retired`, dropped after a GP.
            drop(default_route.swap(Some(Route::new(u32::MAX, (rng() % 8) as u32))));
            rcu::call_rcu(|| {
                BATCHES_RETIRED.fetch_add(1, Relaxed); // runs after a grace period
            });
            std::thread::sleep(Duration::from_micros(200));
        }
        stop.store(true, Relaxed);
        let lookups: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        (lookups, updates)
    });

    rcu::rcu_barrier(); // every queued callback (and deferred free) has run
    let live = LIVE_ROUTES.load(Relaxed);
    println!(
        "{lookups} lookups on {READERS} threads in {RUN_FOR:?} ({:.1} M/s) during {updates} route updates; \
         {} call_rcu batches retired; {live} routes live",
        lookups as f64 / RUN_FOR.as_secs_f64() / 1e6,
        BATCHES_RETIRED.load(Relaxed),
    );
    // Every replaced or deleted route was freed: what is live is the table plus
    // the default route.
    assert_eq!(live, u64::from(PREFIXES) + 1);
    drop(table);
    drop(default_route);
    rcu::rcu_barrier();
    assert_eq!(LIVE_ROUTES.load(Relaxed), 0);
}

/// A small xorshift generator, so the example needs no dependency.
fn fastrand_lite(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
