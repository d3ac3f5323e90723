//! rcutorture's forward-progress test (`fwd_progress`) for ksync's RCU: grace
//! periods must keep up with a flood of updates, and memory must stay bounded.
//!
//! - Flooders (writers 0 and 1) replace a published object in a loop and hand
//!   the old one to `call_rcu`, which poisons and frees it: a callback flood for
//!   the whole run, the memory it pins bounded only by how fast grace periods
//!   end. Writer 1 mixes in an `rcu_barrier` every [`BARRIER_EVERY`].
//! - Writer 2 floods `synchronize_rcu_expedited`, writer 3 `synchronize_rcu`;
//!   further writers alternate them.
//! - Readers enter RCU read-side sections and now and then give up their CPU
//!   inside one (a preempted reader, which every grace period must wait for);
//!   every other reader uses SRCU instead and sleeps inside some of its
//!   sections, against a writer of its own (`synchronize_srcu`, then free).
//! - A sampler reads the resident set size (`VmRSS`) every 50 ms. Above
//!   [`RSS_LIMIT`] the run fails (and the flood stops, to spare the machine).
//!
//! The verdict lines report the callbacks queued and invoked, the grace periods
//! completed during the flood (RCU's own count, which every waiter shares) and
//! those the synchronous writers waited for, the barriers, and the peak and
//! final resident memory.

use super::{Config, Monitor, Report, Role, TortureType};
use ksync::rcu::{
    SrcuStruct, call_rcu, completed_grace_periods, rcu_barrier, rcu_read_lock, synchronize_rcu,
    synchronize_rcu_expedited,
};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Resident memory above this fails the run (the bound for a 60 s flood).
const RSS_LIMIT: u64 = 512 << 20;
/// How often the barrier writer calls `rcu_barrier`.
const BARRIER_EVERY: Duration = Duration::from_millis(100);

const ALIVE: u64 = 0xA11C_E000_0000_0001;
const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;

pub fn types() -> Vec<TortureType> {
    vec![TortureType {
        name: "rcu_fwd",
        about: "RCU forward progress: call_rcu flood with rcu_barrier, expedited and normal grace-period floods, preempted and sleeping (SRCU) readers; memory bounded",
        writers: 4,
        readers: 4,
        hidden: false,
        run,
    }]
}

/// What the flood allocates: a cache line with a liveness word.
struct Obj {
    magic: AtomicU64,
    _payload: [u64; 7],
}

fn new_obj() -> *mut Obj {
    Box::into_raw(Box::new(Obj {
        magic: AtomicU64::new(ALIVE),
        _payload: [0; 7],
    }))
}

/// Poisons and frees an object that was published and then replaced.
///
/// # Safety
/// `p` came from [`new_obj`], is no longer published, and no reader that could
/// have seen it is still in its read-side section (a grace period has passed).
unsafe fn free_obj(p: *mut Obj) {
    // SAFETY: per the contract, `p` is a live allocation that nobody else uses.
    unsafe {
        (*p).magic.store(POISON, Ordering::Relaxed);
        drop(Box::from_raw(p));
    }
}

/// Checks an object a reader reached in its section.
///
/// # Safety
/// `p` was loaded from a slot inside the read-side section still held, so the
/// grace-period guarantee keeps it allocated (that guarantee is what is tested:
/// if RCU broke it, this read is of freed memory, and the poison usually shows).
unsafe fn check(p: *const Obj, mon: &Monitor) {
    // SAFETY: per the contract.
    if unsafe { (*p).magic.load(Ordering::Relaxed) } != ALIVE {
        mon.fail();
    }
}

/// The resident set size in bytes, from `/proc/self/status`.
fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb << 10)
}

/// Callbacks of the flood invoked so far (callbacks are `'static`).
static INVOKED: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    gps: AtomicU64,
    expedited: AtomicU64,
    barriers: AtomicU64,
    srcu_gps: AtomicU64,
    peak_rss: AtomicU64,
}

fn run(cfg: &Config, mon: &Monitor) -> Report {
    let rcu_slot = AtomicPtr::new(new_obj());
    let srcu_slot = AtomicPtr::new(new_obj());
    let srcu = SrcuStruct::new();
    let counts = Counts::default();
    let invoked_before = INVOKED.load(Ordering::Relaxed);
    let over = AtomicBool::new(false);
    let start_rss = rss().unwrap_or(0);
    let gps_before = completed_grace_periods();
    let flood_start = Instant::now();
    let (w, r) = std::thread::scope(|s| {
        let (rcu_slot, srcu_slot, srcu, counts, over) =
            (&rcu_slot, &srcu_slot, &srcu, &counts, &over);
        s.spawn(move || {
            while !mon.should_stop() {
                if let Some(now) = rss() {
                    counts.peak_rss.fetch_max(now, Ordering::Relaxed);
                    if now > RSS_LIMIT && !over.swap(true, Ordering::Relaxed) {
                        mon.fail();
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let writers: Vec<_> = (0..cfg.writers.max(1))
            .map(|i| {
                s.spawn(move || {
                    let me = mon.enter(Role::Writer);
                    let mut n = 0u64;
                    let mut last_barrier = Instant::now();
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        match i {
                            0 | 1 => {
                                if over.load(Ordering::Relaxed) {
                                    // Over the limit: stop adding, let it drain.
                                    rcu_barrier();
                                } else {
                                    let old = rcu_slot.swap(new_obj(), Ordering::AcqRel) as usize;
                                    call_rcu(move || {
                                        // SAFETY: replaced before call_rcu, and a grace
                                        // period has passed: no reader still sees it.
                                        unsafe { free_obj(old as *mut Obj) };
                                        INVOKED.fetch_add(1, Ordering::Relaxed);
                                    });
                                    counts.queued.fetch_add(1, Ordering::Relaxed);
                                }
                                if i == 1 && last_barrier.elapsed() >= BARRIER_EVERY {
                                    rcu_barrier();
                                    counts.barriers.fetch_add(1, Ordering::Relaxed);
                                    last_barrier = Instant::now();
                                }
                            }
                            _ if i % 2 == 0 => {
                                synchronize_rcu_expedited();
                                counts.expedited.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                synchronize_rcu();
                                counts.gps.fetch_add(1, Ordering::Relaxed);
                                // The SRCU side: replace, wait, free.
                                let old = srcu_slot.swap(new_obj(), Ordering::AcqRel);
                                srcu.synchronize();
                                counts.srcu_gps.fetch_add(1, Ordering::Relaxed);
                                // SAFETY: replaced, then an SRCU grace period passed.
                                unsafe { free_obj(old) };
                            }
                        }
                        mon.end_wait(&me);
                        n += 1;
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    n
                })
            })
            .collect();
        let readers: Vec<_> = (0..cfg.readers)
            .map(|i| {
                s.spawn(move || {
                    let me = mon.enter(Role::Reader);
                    let mut rng = fastrand::Rng::with_seed(0xf3d + i as u64);
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        if i % 2 == 0 {
                            let g = rcu_read_lock();
                            mon.end_wait(&me);
                            let p = rcu_slot.load(Ordering::Acquire);
                            if rng.u8(..) < 8 {
                                // Preempted inside the section.
                                std::thread::yield_now();
                            }
                            // SAFETY: loaded inside the section `g` still holds.
                            unsafe { check(p, mon) };
                            drop(g);
                        } else {
                            let g = srcu.read_lock();
                            mon.end_wait(&me);
                            let p = srcu_slot.load(Ordering::Acquire);
                            if rng.u8(..) < 4 {
                                // SRCU readers may sleep.
                                std::thread::sleep(Duration::from_micros(rng.u64(10..200)));
                            }
                            // SAFETY: loaded inside the SRCU section `g` still holds.
                            unsafe { check(p, mon) };
                            drop(g);
                        }
                        n += 1;
                        mon.reads.fetch_add(1, Ordering::Relaxed);
                    }
                    n
                })
            })
            .collect();
        let w: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        let r: Vec<u64> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        (w, r)
    });
    let flood_gps = completed_grace_periods() - gps_before;
    let flood_s = flood_start.elapsed().as_secs_f64();
    rcu_barrier();
    // SAFETY: every thread has stopped; the slots' last objects were never
    // handed to a callback.
    unsafe {
        free_obj(rcu_slot.load(Ordering::Relaxed));
        free_obj(srcu_slot.load(Ordering::Relaxed));
    }
    let queued = counts.queued.load(Ordering::Relaxed);
    let done = INVOKED.load(Ordering::Relaxed) - invoked_before;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let peak = counts.peak_rss.load(Ordering::Relaxed);
    let mut notes = vec![
        format!(
            "call_rcu: {queued} callbacks queued, {done} invoked; {} rcu_barrier calls",
            counts.barriers.load(Ordering::Relaxed)
        ),
        format!(
            "grace periods completed during the flood: {flood_gps} ({:.0}/s)",
            flood_gps as f64 / flood_s.max(1e-9)
        ),
        format!(
            "grace periods waited for: {} synchronize_rcu, {} synchronize_rcu_expedited, {} synchronize_srcu",
            counts.gps.load(Ordering::Relaxed),
            counts.expedited.load(Ordering::Relaxed),
            counts.srcu_gps.load(Ordering::Relaxed)
        ),
        format!(
            "resident memory: {:.1} MiB at the start, peak {:.1} MiB, {:.1} MiB at the end (limit {} MiB)",
            mib(start_rss),
            mib(peak),
            mib(rss().unwrap_or(0)),
            RSS_LIMIT >> 20
        ),
    ];
    let mut failures = mon.failures.load(Ordering::Relaxed);
    if done != queued {
        failures += 1;
        mon.fail();
        notes.push(format!(
            "after rcu_barrier {} callbacks were still not invoked",
            queued - done
        ));
    }
    if over.load(Ordering::Relaxed) {
        notes.push("resident memory passed the limit: grace periods did not keep up".into());
    }
    let mm = |v: &[u64]| {
        (
            v.iter().copied().min().unwrap_or(0),
            v.iter().copied().max().unwrap_or(0),
        )
    };
    Report {
        writes: w.iter().sum(),
        reads: r.iter().sum(),
        failures,
        writer_min_max: mm(&w[..w.len().min(2)]),
        reader_min_max: mm(&r),
        notes,
    }
}
