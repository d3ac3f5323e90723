//! The `rt_mutex` torture type (registered in `super::all`): [`RtMutex`] and
//! [`RtCondVar`] on PI futexes, at mixed real-time priorities.
//!
//! Three groups of threads run at once:
//! - writers, at `SCHED_FIFO` priorities 1-3 and `SCHED_OTHER` mixed (all
//!   `SCHED_OTHER` where real-time scheduling is refused; the output says so),
//!   take random pairs of [`LOCKS`] rt_mutexes in a fixed order (a chain of up
//!   to four with the `nested` fault) with `lock`, `lock_timeout`, or
//!   `lock_interruptible` under the `signals` fault, now and then holding
//!   them for milliseconds (asleep: an rt_mutex holder may sleep). Inside,
//!   each lock's invariant is checked: one holder (a counter that must go
//!   `0 → 1`), the PI word names the holder's tid, and the lock's two words
//!   are equal (the holder bumps them one at a time);
//! - an ABBA pair (not in the lockdep build, where lockdep rightly reports
//!   the deliberate cycle before the kernel sees it): each takes its first
//!   lock, both meet, each asks for the other's with `lock_checked`; the
//!   kernel's chain walk must answer `Err(Deadlock)` to at least one of them
//!   each round, which backs out so the other goes on;
//! - an [`RtCondVar`] producer and consumer over a one-item queue: every item
//!   produced is consumed, and a consumer's timed wait that times out with
//!   an item queued and notified long before counts as a lost wake-up.
//!
//! No real-time thread spins unboundedly (the machine may have two CPUs, and
//! other programs on it): a writer that has been awake for [`AWAKE`] sleeps
//! for 200-400 µs, so each takes at most about a quarter of a CPU; holds are
//! short spins or sleeps, and waits block in the kernel. The kernel's
//! real-time throttling bounds the rest.

use super::faults::{self, Fault};
use super::{Config, Monitor, Report, Role, TortureType};
use ksync::Error;
use ksync::arch::sched::{Policy, set_policy};
use ksync::lockdep::LockClassKey;
use ksync::rtmutex::{RtCondVar, RtMutex};
use ksync::sched::flush_signals;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn types() -> Vec<TortureType> {
    vec![TortureType {
        name: "rt_mutex",
        about: "RtMutex/RtCondVar on PI futexes: SCHED_FIFO mix, lock pairs, timeouts, ABBA -EDEADLK, no lost wake-up",
        writers: 4,
        readers: 0,
        hidden: false,
        run: run_rt_mutex,
    }]
}

/// The rt_mutexes the writers take pairs of.
const LOCKS: usize = 8;
/// A lockdep class per lock: the writers nest them (always in index order).
static KEYS: [LockClassKey; LOCKS] = [const { LockClassKey::new("rt_mutex_torture") }; LOCKS];
/// A writer sleeps after this long awake (see the module docs).
const AWAKE: Duration = Duration::from_micros(100);
/// The producer sleeps for a moment every this many items.
const NAP_EVERY: u64 = 16;
/// The condition-variable queue's capacity: one item, so that each item
/// needs a real wake-up of the consumer and then of the producer; a lost
/// notify stops both until the consumer's timed wait reports it (a deeper
/// queue would hide it behind the next item's notify).
const QUEUE: u64 = 1;
/// A consumer's timed wait: one that ends with an item queued (and notified)
/// over half of it ago lost a wake-up.
const LOST_AFTER: Duration = Duration::from_secs(2);

/// One rt_mutex under torture with the state its holders check.
struct Checked {
    m: RtMutex<()>,
    /// Holders inside: goes `0 → 1` on entry, or exclusion failed.
    inside: AtomicU32,
    /// Both equal outside a critical section; the holder bumps them in turn.
    words: [AtomicU64; 2],
}

impl Checked {
    fn new(i: usize) -> Self {
        Checked {
            m: RtMutex::with_class((), "rt_mutex_torture", &KEYS[i]),
            inside: AtomicU32::new(0),
            words: Default::default(),
        }
    }

    /// The holder's entry checks; returns the value the words agree on.
    fn enter(&self, mon: &Monitor, tid: i32) -> u64 {
        if self.inside.fetch_add(1, Ordering::Relaxed) != 0 || self.m.raw().owner() != Some(tid) {
            mon.fail();
        }
        let v = self.words[0].load(Ordering::Relaxed);
        if self.words[1].load(Ordering::Relaxed) != v {
            mon.fail();
        }
        v
    }

    /// Bumps the first word (the second is bumped by `leave`).
    fn bump(&self, v: u64) {
        self.words[0].store(v + 1, Ordering::Relaxed);
    }

    fn leave(&self, mon: &Monitor, v: u64) {
        self.words[1].store(v + 1, Ordering::Relaxed);
        if self.inside.fetch_sub(1, Ordering::Relaxed) != 1 {
            mon.fail();
        }
    }
}

/// How a writer takes its locks this time.
#[derive(Clone, Copy)]
enum How {
    Lock,
    Timeout(Duration),
    Interruptible,
}

/// The condition variables' bounded queue (a count of items).
struct Queue {
    produced: u64,
    consumed: u64,
    /// When the last item was queued (and its notify sent).
    last_push: Option<Instant>,
}

/// What the run counts besides operations.
#[derive(Default)]
struct Counts {
    timeouts: AtomicU64,
    long_holds: AtomicU64,
    fifo: AtomicU64,
    refused: AtomicU64,
    refused_why: std::sync::Mutex<Option<Error>>,
    abba_rounds: AtomicU64,
    abba_deadlocks: AtomicU64,
    produced: AtomicU64,
    consumed: AtomicU64,
    lost: AtomicU64,
}

fn min_max(v: &[u64]) -> (u64, u64) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

fn run_rt_mutex(cfg: &Config, mon: &Monitor) -> Report {
    let locks: Vec<Checked> = (0..LOCKS).map(Checked::new).collect();
    let counts = Counts::default();
    let signals = cfg.faults.has(Fault::Signals);
    let long_hold = cfg.faults.has(Fault::LongHold);
    let chain = if cfg.faults.has(Fault::Nested) { 4 } else { 2 };
    let abba = !cfg!(feature = "lockdep");
    let pair = Abba {
        locks: (RtMutex::new(()), RtMutex::new(())),
        meet: Barrier::new(2),
        go: AtomicBool::new(true),
        deadlocks: AtomicU64::new(0),
    };
    let (queue, items, space) = (
        RtMutex::new(Queue {
            produced: 0,
            consumed: 0,
            last_push: None,
        }),
        RtCondVar::new(),
        RtCondVar::new(),
    );
    let done = AtomicBool::new(false);
    let (w, extra) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..cfg.writers)
            .map(|i| {
                let (locks, counts) = (&locks, &counts);
                s.spawn(move || {
                    // Priorities 1, 2, 3 and SCHED_OTHER in turn.
                    if i % 4 != 3 {
                        match set_policy(Policy::Fifo(1 + (i % 4) as u8)) {
                            Ok(()) => drop(counts.fifo.fetch_add(1, Ordering::Relaxed)),
                            Err(e) => {
                                counts.refused.fetch_add(1, Ordering::Relaxed);
                                *counts.refused_why.lock().unwrap() = Some(e);
                            }
                        }
                    }
                    writer(i, locks, counts, mon, signals, long_hold, chain)
                })
            })
            .collect();
        let abba_threads: Vec<_> = if abba {
            (0..2)
                .map(|side| {
                    let (pair, counts) = (&pair, &counts);
                    s.spawn(move || abba_side(side, pair, counts, mon))
                })
                .collect()
        } else {
            Vec::new()
        };
        let (m, items, space, done, counts) = (&queue, &items, &space, &done, &counts);
        let producer = s.spawn(move || {
            let me = mon.enter(Role::Writer);
            let mut n = 0u64;
            while !mon.should_stop() {
                mon.begin_wait(&me);
                let mut g = m.lock();
                while g.produced - g.consumed >= QUEUE {
                    if mon.should_stop() {
                        break;
                    }
                    if signals {
                        if space.wait_interruptible(&mut g).is_err() {
                            flush_signals();
                            faults::EINTR.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        let _ = space.wait_timeout(&mut g, Duration::from_millis(100));
                    }
                }
                mon.end_wait(&me);
                if g.produced - g.consumed >= QUEUE {
                    break; // stopping
                }
                g.produced += 1;
                g.last_push = Some(Instant::now());
                n += 1;
                // Under the mutex, so `last_push` is when the notify went out.
                items.notify_one();
                drop(g);
                counts.produced.fetch_add(1, Ordering::Relaxed);
                mon.writes.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(NAP_EVERY) {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
            // Under the mutex, so the consumer's check of `done` (under the
            // mutex too) comes before or after it, never between its check
            // and its wait.
            let g = m.lock();
            done.store(true, Ordering::Relaxed);
            items.notify_all();
            drop(g);
            n
        });
        let consumer = s.spawn(move || {
            let me = mon.enter(Role::Reader);
            let mut n = 0u64;
            loop {
                mon.begin_wait(&me);
                let mut g = m.lock();
                while g.produced == g.consumed && !done.load(Ordering::Relaxed) {
                    let r = wait_for_item(items, &mut g, signals);
                    if r == Err(Error::TimedOut)
                        && g.produced != g.consumed
                        && g.last_push.is_some_and(|t| t.elapsed() >= LOST_AFTER / 2)
                    {
                        // Items were queued and notified (under the mutex)
                        // long before the timeout, yet only the timeout woke
                        // us: a lost wake-up.
                        counts.lost.fetch_add(1, Ordering::Relaxed);
                        mon.fail();
                    }
                }
                mon.end_wait(&me);
                if g.produced == g.consumed {
                    break; // done, and drained
                }
                g.consumed += 1;
                n += 1;
                drop(g);
                space.notify_one();
                counts.consumed.fetch_add(1, Ordering::Relaxed);
                mon.reads.fetch_add(1, Ordering::Relaxed);
            }
            n
        });
        let w: Vec<u64> = writers
            .into_iter()
            .map(|h| h.join().expect("rt_mutex writer panicked"))
            .collect();
        for h in abba_threads {
            h.join().expect("rt_mutex ABBA thread panicked");
        }
        let p = producer.join().expect("rt_mutex producer panicked");
        let c = consumer.join().expect("rt_mutex consumer panicked");
        (w, (p, c))
    });
    let mut notes = Vec::new();
    let fifo = counts.fifo.load(Ordering::Relaxed);
    match *counts.refused_why.lock().unwrap() {
        Some(e) => notes.push(format!(
            "SCHED_FIFO refused ({e}): {} writers fell back to SCHED_OTHER, {fifo} real-time",
            counts.refused.load(Ordering::Relaxed)
        )),
        None => notes.push(format!(
            "{fifo} writers at SCHED_FIFO 1-3, {} at SCHED_OTHER (shares differ by priority, by design)",
            cfg.writers as u64 - fifo
        )),
    }
    notes.push(format!(
        "{} lock_timeout calls timed out, {} long holds (asleep, 1-5 ms)",
        counts.timeouts.load(Ordering::Relaxed),
        counts.long_holds.load(Ordering::Relaxed)
    ));
    if chain > 2 {
        notes.push(format!(
            "nested: writers take ordered sets of 2-{chain} rt_mutexes (the nested line counts sets of 3 or more)"
        ));
    }
    if abba {
        notes.push(format!(
            "ABBA: {} rounds, {} Err(Deadlock) from lock_checked",
            counts.abba_rounds.load(Ordering::Relaxed),
            counts.abba_deadlocks.load(Ordering::Relaxed)
        ));
    } else {
        notes.push("ABBA mode skipped: lockdep reports the deliberate cycle first".into());
    }
    let (produced, consumed) = extra;
    notes.push(format!(
        "RtCondVar: {produced} produced, {consumed} consumed, {} lost wake-ups",
        counts.lost.load(Ordering::Relaxed)
    ));
    if produced != consumed {
        mon.fail();
        notes.push(format!("LOST ITEMS: {}", produced - consumed));
    }
    for (i, l) in locks.iter().enumerate() {
        if l.m.is_locked()
            || l.words[0].load(Ordering::Relaxed) != l.words[1].load(Ordering::Relaxed)
        {
            mon.fail();
            notes.push(format!("lock {i} left locked or its words differ"));
        }
    }
    if w.contains(&0) {
        mon.fail();
        notes.push("a writer made no progress".into());
    }
    Report {
        writes: w.iter().sum::<u64>() + produced + counts.abba_rounds.load(Ordering::Relaxed),
        reads: consumed,
        failures: mon.failures.load(Ordering::Relaxed),
        writer_min_max: min_max(&w),
        reader_min_max: (consumed, consumed),
        notes,
    }
}

/// The consumer's wait for an item: timed (so a lost wake-up shows), or
/// interruptible under the `signals` fault (retried by the caller's loop).
fn wait_for_item(
    items: &RtCondVar,
    g: &mut ksync::rtmutex::RtMutexGuard<'_, Queue>,
    signals: bool,
) -> Result<(), Error> {
    if signals && fastrand::bool() {
        let r = items.wait_interruptible(g);
        if r.is_err() {
            flush_signals();
            faults::EINTR.fetch_add(1, Ordering::Relaxed);
        }
        return r;
    }
    items.wait_timeout(g, LOST_AFTER)
}

/// One writer: random sorted sets of `chain` locks (2, or up to 4 with the
/// `nested` fault), taken in index order.
fn writer(
    i: usize,
    locks: &[Checked],
    counts: &Counts,
    mon: &Monitor,
    signals: bool,
    long_hold: bool,
    chain: usize,
) -> u64 {
    let me = mon.enter(Role::Writer);
    let tid = ksync::arch::gettid();
    let mut rng = fastrand::Rng::with_seed(0x47_7e + i as u64);
    let mut n = 0u64;
    let mut last_long = Instant::now();
    let mut awake = Instant::now();
    while !mon.should_stop() {
        let k = rng.usize(2..=chain);
        let mut set: Vec<usize> = Vec::with_capacity(k);
        while set.len() < k {
            let x = rng.usize(..LOCKS);
            if !set.contains(&x) {
                set.push(x);
            }
        }
        set.sort_unstable();
        let how = match rng.u8(..8) {
            0 => How::Timeout(Duration::from_micros(rng.u64(50..2000))),
            1 | 2 if signals => How::Interruptible,
            _ => How::Lock,
        };
        mon.begin_wait(&me);
        let mut guards = Vec::with_capacity(k);
        let mut timed_out = false;
        for &x in &set {
            let m = &locks[x].m;
            let g = match how {
                How::Lock => m.lock(),
                How::Timeout(d) => match m.lock_timeout(d) {
                    Ok(g) => g,
                    Err(Error::TimedOut) => {
                        counts.timeouts.fetch_add(1, Ordering::Relaxed);
                        timed_out = true;
                        break;
                    }
                    Err(e) => panic!("rt_mutex lock_timeout: unexpected {e}"),
                },
                How::Interruptible => loop {
                    match m.lock_interruptible() {
                        Ok(g) => break g,
                        Err(Error::Interrupted) => {
                            flush_signals();
                            faults::EINTR.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("rt_mutex lock_interruptible: unexpected {e}"),
                    }
                },
            };
            guards.push((x, g));
        }
        mon.end_wait(&me);
        // A timed-out set drops what it got, untouched.
        if !timed_out {
            let vs: Vec<u64> = guards
                .iter()
                .map(|(x, _)| locks[*x].enter(mon, tid))
                .collect();
            for ((x, _), v) in guards.iter().zip(&vs) {
                locks[*x].bump(*v);
            }
            let long = (long_hold || rng.u16(..512) == 0)
                && last_long.elapsed() >= Duration::from_millis(100);
            if long {
                last_long = Instant::now();
                counts.long_holds.fetch_add(1, Ordering::Relaxed);
                mon.long_holds.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(rng.u64(1000..5000)));
            } else {
                super::short_delay(&mut rng);
            }
            for ((x, _), v) in guards.iter().zip(&vs) {
                locks[*x].leave(mon, *v);
            }
            if k > 2 {
                // A chain of `k - 1` locks before the last one.
                mon.nested.fetch_add(1, Ordering::Relaxed);
            }
            n += 1;
            mon.writes.fetch_add(1, Ordering::Relaxed);
        }
        // Unlock in reverse order, as the kernel's nesting does.
        while let Some(g) = guards.pop() {
            drop(g);
        }
        if awake.elapsed() >= AWAKE || timed_out {
            std::thread::sleep(Duration::from_micros(rng.u64(200..400)));
            awake = Instant::now();
        }
    }
    n
}

/// The ABBA pair's locks and meeting points.
struct Abba {
    locks: (RtMutex<()>, RtMutex<()>),
    /// Where both sides meet: before a round, with their first locks, after it.
    meet: Barrier,
    /// Whether another round runs (side 0 decides, see `abba_side`).
    go: AtomicBool,
    /// `Err(Deadlock)` answers in the round in progress.
    deadlocks: AtomicU64,
}

/// One side of the ABBA pair: side 0 takes `pair.0` then `pair.1`, side 1 the
/// reverse; both hold their first lock before either asks for its second, so
/// each round is a real deadlock that the kernel must report.
fn abba_side(side: usize, pair: &Abba, counts: &Counts, mon: &Monitor) {
    let me = mon.enter(Role::Writer);
    let Abba {
        locks,
        meet,
        go,
        deadlocks,
    } = pair;
    let (first, second) = if side == 0 {
        (&locks.0, &locks.1)
    } else {
        (&locks.1, &locks.0)
    };
    loop {
        if side == 0 {
            // Read by side 1 after the barrier; not written again before the
            // round's closing barrier, which side 1 reaches after reading it.
            go.store(!mon.should_stop(), Ordering::Relaxed);
        }
        meet.wait();
        if !go.load(Ordering::Relaxed) {
            return;
        }
        let g1 = first.lock();
        meet.wait(); // both hold their first lock
        mon.begin_wait(&me);
        match second.lock_checked() {
            Ok(g2) => {
                mon.end_wait(&me);
                drop(g2);
                drop(g1);
            }
            Err(Error::Deadlock) => {
                mon.end_wait(&me);
                deadlocks.fetch_add(1, Ordering::Relaxed);
                counts.abba_deadlocks.fetch_add(1, Ordering::Relaxed);
                drop(g1); // back off: the other side gets it
            }
            Err(e) => panic!("rt_mutex lock_checked: unexpected {e}"),
        }
        meet.wait(); // the round is over on both sides
        if side == 0 {
            // Both sides counted their deadlocks before the barrier.
            if deadlocks.swap(0, Ordering::Relaxed) == 0 {
                mon.fail(); // both got the second lock: no exclusion
            }
            counts.abba_rounds.fetch_add(1, Ordering::Relaxed);
        }
        mon.writes.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(50));
    }
}
