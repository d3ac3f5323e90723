//! rcutorture's model for ksync's RCU (`rcu`) and SRCU (`srcu`).
//!
//! Objects come from a pool that lives for the whole run, so a reader that
//! reaches an object the updater already reclaimed reads poisoned memory instead
//! of freed memory, and reports it. Each object carries:
//! - `freed`: set (the poison) when the object is reclaimed, cleared when reused;
//! - `generation`: bumped at every reclamation, so a reader that holds an object across
//!   its reclamation and reuse sees the generation change;
//! - `pipe`: rcutorture's pipeline age: 0 while published, 1 once replaced,
//!   then +1 per grace period that ended after the replacement. A reader that
//!   finishes its section with an age above 1 held the object across a full grace
//!   period: RCU failed.
//!
//! Writers: writer 0 replaces slot A in a loop and ages its pipeline with
//! `synchronize_rcu` (every third with the expedited form); writer 1 replaces slot
//! B and reclaims with `call_rcu` (the callback poisons and recycles), with an
//! `rcu_barrier` when its pool runs dry; further writers are rcutorture's fake
//! writers (concurrent `synchronize_rcu`, `synchronize_rcu_expedited`,
//! `rcu_barrier` calls). Readers read both slots, sometimes nested, spin a random
//! while, and check the object again before leaving.

use super::{Config, Monitor, Report, Slot, TortureType};
use ksync::rcu::{
    SrcuStruct, call_rcu, rcu_barrier, rcu_read_lock, synchronize_rcu, synchronize_rcu_expedited,
};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const PIPE_LEN: u32 = 10;
const POOL: usize = 4096;

pub fn types() -> Vec<TortureType> {
    vec![
        TortureType {
            name: "rcu",
            about: "RCU: readers check pipeline age and poison of what they read; synchronize_rcu, call_rcu, rcu_barrier writers",
            writers: 4,
            readers: 8,
            hidden: false,
            run: run_rcu,
        },
        TortureType {
            name: "srcu",
            about: "SRCU: sleeping readers check pipeline age and poison; synchronize_srcu writer",
            writers: 2,
            readers: 8,
            hidden: false,
            run: run_srcu,
        },
    ]
}

struct Obj {
    freed: AtomicBool,
    generation: AtomicU64,
    pipe: AtomicU32,
}

/// The object pool: never freed during the run.
struct Pool {
    objs: Box<[Obj]>,
    free: Mutex<Vec<usize>>,
}

impl Pool {
    fn new(n: usize) -> Self {
        let objs: Box<[Obj]> = (0..n)
            .map(|_| Obj {
                freed: AtomicBool::new(true),
                generation: AtomicU64::new(0),
                pipe: AtomicU32::new(PIPE_LEN),
            })
            .collect();
        Pool {
            objs,
            free: Mutex::new((0..n).collect()),
        }
    }
    fn take(&self) -> Option<&Obj> {
        let i = self.free.lock().unwrap().pop()?;
        let o = &self.objs[i];
        o.pipe.store(0, Ordering::Relaxed);
        // Release: the object is initialised before it is published (the
        // publication's own Release store also orders this).
        o.freed.store(false, Ordering::Release);
        Some(o)
    }
    fn index(&self, o: &Obj) -> usize {
        (o as *const Obj as usize - self.objs.as_ptr() as usize) / std::mem::size_of::<Obj>()
    }
    /// Poisons `o` and returns it to the free list.
    fn reclaim(&self, o: &Obj) {
        o.freed.store(true, Ordering::Release);
        o.generation.fetch_add(1, Ordering::Release);
        let i = self.index(o);
        self.free.lock().unwrap().push(i);
    }
}

/// What one reader saw.
#[derive(Default)]
struct ReaderStats {
    reads: u64,
    failures: u64,
    pipe_hist: [u64; PIPE_LEN as usize + 1],
}

/// Checks an object at the start of a section; returns its generation.
fn check_enter(o: &Obj, st: &mut ReaderStats) -> u64 {
    if o.freed.load(Ordering::Acquire) {
        st.failures += 1;
    }
    o.generation.load(Ordering::Acquire)
}

/// Checks it again at the end: not reclaimed, not reused, pipeline age <= 1.
fn check_leave(o: &Obj, generation: u64, st: &mut ReaderStats) {
    let pipe = o.pipe.load(Ordering::Acquire).min(PIPE_LEN);
    st.pipe_hist[pipe as usize] += 1;
    if o.freed.load(Ordering::Acquire)
        || o.generation.load(Ordering::Acquire) != generation
        || pipe > 1
    {
        st.failures += 1;
    }
}

fn delay(rng: &mut fastrand::Rng) {
    // Mostly short sections, occasionally a long one (rcutorture's
    // rcu_read_delay): long sections overlap grace periods.
    let n = if rng.u32(0..1000) == 0 {
        20_000
    } else {
        rng.u32(0..64)
    };
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

struct Shared {
    pool_a: Pool,
    pool_b: Pool,
    slot_a: AtomicPtr<Obj>,
    slot_b: AtomicPtr<Obj>,
}

fn publish(slot: &AtomicPtr<Obj>, o: &Obj) -> Option<*mut Obj> {
    // AcqRel: Release publishes the object's reset (rcu_assign_pointer).
    let old = slot.swap(o as *const Obj as *mut Obj, Ordering::AcqRel);
    (!old.is_null()).then_some(old)
}

fn finish(mon: &Monitor, readers: Vec<ReaderStats>, writer_ops: Vec<u64>) -> Report {
    let mut hist = [0u64; PIPE_LEN as usize + 1];
    let mut reads = 0;
    let mut failures = 0;
    let mut rmin = u64::MAX;
    let mut rmax = 0;
    for r in &readers {
        reads += r.reads;
        failures += r.failures;
        rmin = rmin.min(r.reads);
        rmax = rmax.max(r.reads);
        for (h, x) in hist.iter_mut().zip(r.pipe_hist.iter()) {
            *h += x;
        }
    }
    let writes: u64 = writer_ops.iter().sum();
    failures += mon.failures.load(Ordering::Relaxed);
    // The writers have different roles (pipeline, call_rcu, fake writers), so
    // fairness is measured among the fake writers only, when there are several.
    let peers = if writer_ops.len() > 3 {
        &writer_ops[2..]
    } else {
        &writer_ops[..1]
    };
    Report {
        writes,
        reads,
        failures,
        writer_min_max: (
            peers.iter().copied().min().unwrap_or(0),
            peers.iter().copied().max().unwrap_or(0),
        ),
        reader_min_max: (if readers.is_empty() { 0 } else { rmin }, rmax),
        notes: vec![
            format!(
                "Reader Pipe: {}",
                hist.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            format!("Writer ops by writer: {writer_ops:?}"),
        ],
    }
}

fn run_rcu(cfg: &Config, mon: &Monitor) -> Report {
    let sh = Arc::new(Shared {
        pool_a: Pool::new(POOL),
        pool_b: Pool::new(POOL),
        slot_a: AtomicPtr::new(std::ptr::null_mut()),
        slot_b: AtomicPtr::new(std::ptr::null_mut()),
    });
    let a0 = sh.pool_a.take().unwrap();
    publish(&sh.slot_a, a0);
    let b0 = sh.pool_b.take().unwrap();
    publish(&sh.slot_b, b0);
    let (readers, writers) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..cfg.readers)
            .map(|i| {
                let sh = &sh;
                s.spawn(move || {
                    let me = mon.enter(super::Role::Reader);
                    let mut rng = fastrand::Rng::with_seed(i as u64 + 1);
                    let mut st = ReaderStats::default();
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        let g = rcu_read_lock();
                        mon.end_wait(&me);
                        // Acquire: rcu_dereference.
                        let pa = sh.slot_a.load(Ordering::Acquire);
                        // SAFETY: pool objects live for the whole run (never
                        // deallocated), so the reference is always to valid memory;
                        // whether RCU protected it is what the checks test.
                        let a = unsafe { &*pa };
                        let ga = check_enter(a, &mut st);
                        let nested = rng.u32(0..8) == 0;
                        let g2 = nested.then(rcu_read_lock);
                        let pb = sh.slot_b.load(Ordering::Acquire);
                        // SAFETY: as above.
                        let b = unsafe { &*pb };
                        let gb = check_enter(b, &mut st);
                        delay(&mut rng);
                        check_leave(b, gb, &mut st);
                        drop(g2);
                        check_leave(a, ga, &mut st);
                        drop(g);
                        st.reads += 1;
                        if st.reads % 256 == 0 {
                            mon.reads.fetch_add(256, Ordering::Relaxed);
                            if st.failures > 0 {
                                mon.failures.fetch_add(st.failures, Ordering::Relaxed);
                                st.failures = 0;
                            }
                        }
                    }
                    mon.failures.fetch_add(st.failures, Ordering::Relaxed);
                    st.failures = 0;
                    st
                })
            })
            .collect();
        let writers: Vec<_> = (0..cfg.writers.max(1))
            .map(|w| {
                let sh = &sh;
                s.spawn(move || {
                    let me = mon.enter(super::Role::Writer);
                    match w {
                        0 => writer_sync(sh, mon, &me),
                        1 => writer_call_rcu(sh, mon, &me),
                        _ => fake_writer(w as u64, mon, &me),
                    }
                })
            })
            .collect();
        let readers: Vec<ReaderStats> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        let writers: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        (readers, writers)
    });
    // Every callback has run before the pool goes away.
    rcu_barrier();
    finish(mon, readers, writers)
}

/// Writer 0: replace slot A, age the pipeline one step per grace period, reclaim
/// at the end of the pipeline.
fn writer_sync(sh: &Shared, mon: &Monitor, me: &Slot) -> u64 {
    let mut pipeline: Vec<&Obj> = Vec::new();
    let mut n = 0u64;
    while !mon.should_stop() {
        let Some(new) = sh.pool_a.take() else {
            mon.fail(); // cannot happen: the pipeline holds at most PIPE_LEN objects
            break;
        };
        if let Some(old) = publish(&sh.slot_a, new) {
            // SAFETY: pool object, alive for the run.
            let old = unsafe { &*old };
            old.pipe.store(1, Ordering::Release);
            pipeline.push(old);
        }
        mon.begin_wait(me);
        if n.is_multiple_of(3) {
            synchronize_rcu_expedited();
        } else {
            synchronize_rcu();
        }
        mon.end_wait(me);
        pipeline.retain(|o| {
            let age = o.pipe.fetch_add(1, Ordering::AcqRel) + 1;
            if age >= PIPE_LEN {
                sh.pool_a.reclaim(o);
                false
            } else {
                true
            }
        });
        n += 1;
        mon.writes.fetch_add(1, Ordering::Relaxed);
    }
    n
}

/// Writer 1: replace slot B, reclaim through call_rcu.
fn writer_call_rcu(sh: &Shared, mon: &Monitor, me: &Slot) -> u64 {
    let mut n = 0u64;
    while !mon.should_stop() {
        mon.begin_wait(me);
        mon.end_wait(me);
        let new = match sh.pool_b.take() {
            Some(o) => o,
            None => {
                rcu_barrier(); // let the callbacks recycle
                continue;
            }
        };
        if let Some(old) = publish(&sh.slot_b, new) {
            let old = old as usize;
            // SAFETY: pool object, alive for the run.
            unsafe { &*(old as *const Obj) }
                .pipe
                .store(1, Ordering::Release);
            let pool: *const Pool = &sh.pool_b;
            let pool = pool as usize;
            call_rcu(move || {
                // SAFETY: the pool outlives every callback (run_rcu calls
                // rcu_barrier before dropping it).
                let (pool, o) = unsafe { (&*(pool as *const Pool), &*(old as *const Obj)) };
                pool.reclaim(o);
            });
        }
        n += 1;
        mon.writes.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(1024) {
            rcu_barrier();
        }
    }
    n
}

/// rcutorture's fake writers: more grace-period and barrier traffic.
fn fake_writer(seed: u64, mon: &Monitor, me: &Slot) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut n = 0u64;
    while !mon.should_stop() {
        mon.begin_wait(me);
        match rng.u32(0..4) {
            0 => synchronize_rcu_expedited(),
            1 => rcu_barrier(),
            _ => synchronize_rcu(),
        }
        mon.end_wait(me);
        if rng.bool() {
            std::thread::yield_now();
        }
        n += 1;
    }
    n
}

fn run_srcu(cfg: &Config, mon: &Monitor) -> Report {
    let srcu = SrcuStruct::new();
    let pool = Pool::new(PIPE_LEN as usize * 2 + 4);
    let slot = AtomicPtr::new(std::ptr::null_mut());
    publish(&slot, pool.take().unwrap());
    let (readers, writers) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..cfg.readers)
            .map(|i| {
                let (srcu, slot) = (&srcu, &slot);
                s.spawn(move || {
                    let me = mon.enter(super::Role::Reader);
                    let mut rng = fastrand::Rng::with_seed(i as u64 + 100);
                    let mut st = ReaderStats::default();
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        let g = srcu.read_lock();
                        mon.end_wait(&me);
                        let p = slot.load(Ordering::Acquire);
                        // SAFETY: pool objects live for the whole run.
                        let o = unsafe { &*p };
                        let generation = check_enter(o, &mut st);
                        if rng.u32(0..64) == 0 {
                            // SRCU readers may sleep.
                            std::thread::sleep(std::time::Duration::from_micros(rng.u64(1..200)));
                        } else {
                            delay(&mut rng);
                        }
                        check_leave(o, generation, &mut st);
                        drop(g);
                        st.reads += 1;
                        if st.reads % 64 == 0 {
                            mon.reads.fetch_add(64, Ordering::Relaxed);
                        }
                    }
                    mon.failures.fetch_add(st.failures, Ordering::Relaxed);
                    st.failures = 0;
                    st
                })
            })
            .collect();
        let writers: Vec<_> = (0..cfg.writers.max(1))
            .map(|w| {
                let (srcu, slot, pool) = (&srcu, &slot, &pool);
                s.spawn(move || {
                    let me = mon.enter(super::Role::Writer);
                    let mut n = 0u64;
                    if w > 0 {
                        // Extra writers: concurrent synchronize_srcu calls.
                        while !mon.should_stop() {
                            mon.begin_wait(&me);
                            srcu.synchronize();
                            mon.end_wait(&me);
                            n += 1;
                        }
                        return n;
                    }
                    let mut pipeline: Vec<&Obj> = Vec::new();
                    while !mon.should_stop() {
                        let Some(new) = pool.take() else {
                            mon.fail();
                            break;
                        };
                        if let Some(old) = publish(slot, new) {
                            // SAFETY: pool object.
                            let old = unsafe { &*old };
                            old.pipe.store(1, Ordering::Release);
                            pipeline.push(old);
                        }
                        mon.begin_wait(&me);
                        srcu.synchronize();
                        mon.end_wait(&me);
                        pipeline.retain(|o| {
                            let age = o.pipe.fetch_add(1, Ordering::AcqRel) + 1;
                            if age >= PIPE_LEN {
                                pool.reclaim(o);
                                false
                            } else {
                                true
                            }
                        });
                        n += 1;
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    n
                })
            })
            .collect();
        let readers: Vec<ReaderStats> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        let writers: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        (readers, writers)
    });
    finish(mon, readers, writers)
}
