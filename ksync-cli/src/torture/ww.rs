//! Torture type `ww_mutex` (registered in `super::all`): threads run
//! transactions over [`LOCKS`] wound/wait mutexes, each taking a random subset
//! of [`SUBSET`] in a random order and backing off on `-EDEADLK`, in the
//! stress modes of the kernel's `kernel/locking/test-ww_mutex.c`, one chosen at
//! random per transaction:
//!
//! | mode | kernel | the order the locks are taken in |
//! |---|---|---|
//! | `inorder` | `stress_inorder_work` | the subset in the thread's own fixed order of all locks; after a back-off, the contended lock with `lock_slow`, then the rest in that order |
//! | `reorder` | `stress_reorder_work` | the subset shuffled; after a back-off the contended lock moves to the front of the list |
//! | `random` | — | the subset shuffled again after every back-off |
//! | `one` | `stress_one_work` | a single lock, without a context (`ww_mutex_lock(lock, NULL)`) |
//!
//! Inside a transaction every lock's owner counter checks exclusion (it must be
//! 0 on entry); the data words count the acquisitions and must add up at the
//! end. Half the runs' transactions use a wound-wait class and half a wait-die
//! class (by thread). A thread that completes no transaction fails the type,
//! and so does one transaction longer than the stall limit (the harness's
//! watchdog: the whole transaction, back-offs included, is one wait). With the
//! `signals` fault the interruptible forms are used and `-EINTR` backs off.

use super::faults::{self, Fault};
use super::{Config, Monitor, Report, Role, TortureType};
use ksync::Error;
use ksync::lockdep::LockClassKey;
use ksync::mutex::Mutex;
use ksync::sched::flush_signals;
use ksync::ww_mutex::{WwAcquireCtx, WwClass, WwMutex, WwMutexGuard};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Mutexes in the pool.
const LOCKS: usize = 16;
/// Mutexes per transaction.
const SUBSET: usize = 4;

static WOUND_WAIT: WwClass = WwClass::new("torture_ww_acquire", "torture_ww_mutex");
static WAIT_DIE: WwClass = WwClass::new_wait_die("torture_wd_acquire", "torture_wd_mutex");

pub fn types() -> Vec<TortureType> {
    vec![TortureType {
        name: "ww_mutex",
        about: "ksync::ww_mutex (wound-wait and wait-die): random subsets of 4 of 16 locks in random order, back-off on -EDEADLK",
        writers: 8,
        readers: 0,
        hidden: false,
        run: run_ww,
    }]
}

/// One mutex of the pool: its data counts acquisitions; `inside` is its
/// exclusion check (0 when nobody is in its critical section).
struct Slot {
    m: WwMutex<u64>,
    inside: AtomicU32,
}

/// The stress modes (module docs).
#[derive(Clone, Copy)]
enum Mode {
    InOrder,
    Reorder,
    Random,
    One,
}

const MODE_NAMES: [&str; 4] = ["inorder", "reorder", "random", "one"];

/// One pool per class.
struct Pool {
    class: &'static WwClass,
    slots: Vec<Slot>,
}

/// What the back-off loop saw.
#[derive(Default)]
struct Counts {
    backoffs: u64,
    eintr: u64,
}

/// Takes `list` (indices into `pool`) in one transaction of `ctx` with the
/// back-off loop of `mode`; returns the guards, in `list`'s final order.
fn take_all<'a>(
    pool: &'a Pool,
    ctx: &'a WwAcquireCtx,
    list: &mut Vec<usize>,
    mode: Mode,
    interruptible: bool,
    rng: &mut fastrand::Rng,
    counts: &mut Counts,
) -> Vec<WwMutexGuard<'a, u64>> {
    let mut contended: Option<usize> = None;
    loop {
        let mut held = Vec::with_capacity(list.len());
        let mut failed = None;
        let mut interrupted = false;
        if let Some(i) = contended {
            let r = if interruptible {
                pool.slots[i].m.lock_slow_interruptible(ctx)
            } else {
                Ok(pool.slots[i].m.lock_slow(ctx))
            };
            match r {
                Ok(g) => held.push(g),
                Err(_) => {
                    flush_signals();
                    counts.eintr += 1;
                    faults::EINTR.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        for &i in list.iter() {
            if Some(i) == contended {
                continue;
            }
            let m = &pool.slots[i].m;
            let r = if interruptible {
                m.lock_interruptible(ctx)
            } else {
                m.lock(ctx)
            };
            match r {
                Ok(g) => held.push(g),
                Err(Error::Deadlock) => {
                    failed = Some(i);
                    break;
                }
                Err(Error::Interrupted | Error::Killed) => {
                    flush_signals();
                    counts.eintr += 1;
                    faults::EINTR.fetch_add(1, Ordering::Relaxed);
                    failed = contended.or(Some(i));
                    interrupted = true;
                    break;
                }
                Err(e) => panic!("ww_mutex_lock: unexpected {e}"),
            }
        }
        let Some(i) = failed else {
            return held;
        };
        counts.backoffs += 1;
        drop(held); // back off: unlock everything the transaction holds
        // Only an -EDEADLK names a lock for `lock_slow` (`contending_lock`);
        // after a signal the transaction starts over with plain locks.
        contended = (!interrupted).then_some(i);
        match mode {
            Mode::InOrder | Mode::One => {}
            Mode::Reorder => {
                // `list_move(&ll->link, &locks)`: the contended lock goes first.
                list.retain(|&x| x != i);
                list.insert(0, i);
            }
            Mode::Random => rng.shuffle(list),
        }
    }
}

fn run_ww(cfg: &Config, mon: &Monitor) -> Report {
    let pools = [&WOUND_WAIT, &WAIT_DIE].map(|class| Pool {
        class,
        slots: (0..LOCKS)
            .map(|_| Slot {
                m: WwMutex::new(class, 0),
                inside: AtomicU32::new(0),
            })
            .collect(),
    });
    let interruptible = cfg.faults.has(Fault::Signals);
    let long_hold = cfg.faults.has(Fault::LongHold);
    let nested = cfg.faults.has(Fault::Nested);
    // The `nested` fault: a chain of plain mutexes, always in order, taken
    // before a transaction (never while it holds a ww_mutex, so the back-off
    // can always make progress).
    // Each link has a class of its own (as locktorture's nested locks do):
    // made at one line they would share one, and lockdep would call the
    // chain recursion.
    static CHAIN_KEYS: [LockClassKey; super::NESTED] = [
        LockClassKey::new("torture_ww_chain[0]"),
        LockClassKey::new("torture_ww_chain[1]"),
    ];
    let chain: Vec<Mutex<()>> = CHAIN_KEYS
        .iter()
        .map(|k| Mutex::with_class((), k.name(), k))
        .collect();
    let modes: [AtomicU64; 4] = Default::default();
    let acquisitions = AtomicU64::new(0);
    let (per_thread, backoffs, eintr) = std::thread::scope(|s| {
        let hs: Vec<_> = (0..cfg.writers)
            .map(|t| {
                let (pools, modes, acquisitions, chain) = (&pools, &modes, &acquisitions, &chain);
                s.spawn(move || {
                    let me = mon.enter(Role::Writer);
                    let mut rng = fastrand::Rng::with_seed(0x77_0000 + t as u64);
                    let pool = &pools[t % 2];
                    // stress_inorder_work's order: fixed for this thread.
                    let mut my_order: Vec<usize> = (0..LOCKS).collect();
                    rng.shuffle(&mut my_order);
                    let mut counts = Counts::default();
                    let mut last_long = Instant::now();
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        let mode = match rng.u8(..8) {
                            0..=1 => Mode::InOrder,
                            2..=3 => Mode::Reorder,
                            4..=6 => Mode::Random,
                            _ => Mode::One,
                        };
                        modes[mode as usize].fetch_add(1, Ordering::Relaxed);
                        let hold = (long_hold
                            && last_long.elapsed() >= Duration::from_millis(100)
                            && rng.u8(..) < 8)
                            .then(|| {
                                last_long = Instant::now();
                                mon.long_holds.fetch_add(1, Ordering::Relaxed);
                                Duration::from_micros(rng.u64(1000..5000))
                            });
                        mon.begin_wait(&me);
                        let _chain: Vec<_> = if nested && n.is_multiple_of(4) {
                            mon.nested.fetch_add(1, Ordering::Relaxed);
                            chain.iter().map(|c| c.lock()).collect()
                        } else {
                            Vec::new()
                        };
                        let mut subset: Vec<usize> = rng.choose_multiple(0..LOCKS, SUBSET);
                        let ctx =
                            (!matches!(mode, Mode::One)).then(|| WwAcquireCtx::new(pool.class));
                        let mut guards: Vec<(usize, WwMutexGuard<'_, u64>)> = match &ctx {
                            None => vec![(subset[0], pool.slots[subset[0]].m.lock_noctx())],
                            Some(ctx) => {
                                if matches!(mode, Mode::InOrder) {
                                    subset.sort_by_key(|i| my_order.iter().position(|x| x == i));
                                } else {
                                    rng.shuffle(&mut subset);
                                }
                                let g = take_all(
                                    pool,
                                    ctx,
                                    &mut subset,
                                    mode,
                                    interruptible,
                                    &mut rng,
                                    &mut counts,
                                );
                                ctx.done();
                                subset.iter().copied().zip(g).collect()
                            }
                        };
                        mon.end_wait(&me);
                        critical_section(pool, &mut guards, mon, hold);
                        acquisitions.fetch_add(guards.len() as u64, Ordering::Relaxed);
                        drop(guards);
                        drop(ctx);
                        n += 1;
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    (n, counts)
                })
            })
            .collect();
        let mut per = Vec::new();
        let (mut b, mut e) = (0, 0);
        for h in hs {
            let (n, c) = h.join().expect("ww_mutex torture thread panicked");
            per.push(n);
            b += c.backoffs;
            e += c.eintr;
        }
        (per, b, e)
    });
    let writes: u64 = per_thread.iter().sum();
    let mut notes = vec![format!(
        "{LOCKS} locks, {SUBSET} per transaction; back-offs (-EDEADLK): {backoffs} ({:.3} per transaction), -EINTR: {eintr}; modes: {}",
        backoffs as f64 / writes.max(1) as f64,
        MODE_NAMES
            .iter()
            .zip(&modes)
            .map(|(n, c)| format!("{n} {}", c.load(Ordering::Relaxed)))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    let counted: u64 = pools
        .iter()
        .flat_map(|p| p.slots.iter())
        .map(|s| *s.m.lock_noctx())
        .sum();
    if counted != acquisitions.load(Ordering::Relaxed) {
        mon.fail();
        notes.push(format!(
            "the locks count {counted} acquisitions, the threads {}: a lost update",
            acquisitions.load(Ordering::Relaxed)
        ));
    }
    if pools
        .iter()
        .flat_map(|p| p.slots.iter())
        .any(|s| s.m.is_locked())
    {
        mon.fail();
        notes.push("a ww_mutex was left locked".into());
    }
    if let Some(t) = per_thread.iter().position(|&n| n == 0) {
        mon.fail();
        notes.push(format!("thread {t} completed no transaction (no progress)"));
    }
    let min = per_thread.iter().copied().min().unwrap_or(0);
    let max = per_thread.iter().copied().max().unwrap_or(0);
    Report {
        writes,
        reads: 0,
        failures: mon.failures.load(Ordering::Relaxed),
        writer_min_max: (min, max),
        reader_min_max: (0, 0),
        notes,
    }
}

/// Inside every lock of the transaction: the exclusion check and the count,
/// and (the `long-hold` fault) a hold of milliseconds.
fn critical_section(
    pool: &Pool,
    guards: &mut [(usize, WwMutexGuard<'_, u64>)],
    mon: &Monitor,
    hold: Option<Duration>,
) {
    for (i, g) in guards.iter_mut() {
        if pool.slots[*i].inside.fetch_add(1, Ordering::Relaxed) != 0 {
            mon.fail();
        }
        **g += 1;
    }
    if let Some(d) = hold {
        let end = Instant::now() + d;
        while Instant::now() < end {
            std::hint::spin_loop();
        }
    }
    for (i, _) in guards.iter() {
        if pool.slots[*i].inside.fetch_sub(1, Ordering::Relaxed) != 1 {
            mon.fail();
        }
    }
}
