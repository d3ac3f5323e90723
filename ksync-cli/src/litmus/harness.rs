//! The litmus runner: many instances of one test, threads sweeping through
//! them together (the litmus7 approach).
//!
//! # How a run works
//!
//! A test's memory is `INSTANCES` independent copies of its variables (each
//! variable an array of ksync `atomic64_t`s, `SpinLock`s or `SrcuStruct`s,
//! one element per instance: see [`Mem`]). Its processes' threads are started
//! once and pinned one per CPU where the CPUs allow. Each round they meet at a
//! spin barrier, then each thread runs its part of the test on instance 0, 1,
//! 2 … in turn (interpreting its process body: [`exec`]), writing its
//! registers to its own result array. Threads released
//! together by the barrier and running the same code sweep at the same pace, so
//! instance `i` of every thread runs within nanoseconds of the others: the
//! races the test is about really happen, thousands of times per round. After
//! the round, thread 0 reads every instance's registers and final memory values,
//! counts the outcomes (leaving out the instances that deadlocked, see
//! [`exec::Completion`]), and resets the memory for the next round.
//!
//! With more threads than CPUs the lock-step groups are the whole round (a
//! group would cost a context switch), so the races are rarer; a test that
//! waits for a grace period per instance keeps its readers idle in the
//! lock-step wait while the updater waits, so it races at group starts only.
//!
//! In a test that may deadlock, a lock wait is bounded (the watchdog,
//! [`exec::Mem::lock_timeout`]): two processes that take two locks in opposite
//! orders deadlock for real here, and the waiter that gives up stops every
//! thread of the test. The round it stopped is dropped, the rounds before it
//! are counted, and [`Outcome::watchdog`] says so: the run goes on to the next
//! test. (A `synchronize_srcu()` waiting for an `srcu_down_read()` section
//! that a stopped process would have ended is not bounded: no file has both.)
//!
//! The barrier spins on a generation counter with `cpu_relax` (so the release
//! reaches all threads within a cache-line transfer) and yields only after a
//! long wait (so a test with more threads than CPUs still progresses).

use super::ast::Litmus;
use super::exec::{self, Completion, Frame, Mem};
use ksync::arch::CachePadded;
use ksync::atomic::Atomic64;
use ksync::barrier::{read_once, write_once};
use ksync::rcu::SrcuStruct;
use ksync::spinlock::SpinLock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a run of one test found.
pub struct Outcome {
    pub iterations: u64,
    /// Every outcome seen (the values of the test's observed locations), with
    /// its count, most frequent first.
    pub counts: Vec<(Vec<i64>, u64)>,
    /// Instances left out because a process would have waited forever for a
    /// lock another never released (herd has no such execution).
    pub deadlocked: u64,
    /// Instances left out because an `srcu_up_read()` ended no section
    /// ([`exec::Completion::Unmatched`]).
    pub unmatched: u64,
    /// The watchdog stopped the test: a lock wait lasted longer than
    /// [`LOCK_TIMEOUT`] (a deadlock observed). The counts are those of the
    /// rounds before.
    pub watchdog: bool,
    /// The first fault a process hit (a non-pointer dereferenced, a lock not
    /// held unlocked …): the run means nothing then.
    pub fault: Option<String>,
    pub elapsed: Duration,
    /// Why the test was not run at all (then nothing else here counts).
    pub not_run: Option<String>,
}

impl Outcome {
    /// The outcome of a test left unrun, for `why`.
    pub fn not_run(why: String) -> Self {
        Outcome {
            iterations: 0,
            counts: Vec::new(),
            deadlocked: 0,
            unmatched: 0,
            watchdog: false,
            fault: None,
            elapsed: Duration::ZERO,
            not_run: Some(why),
        }
    }
}

/// A sense-free spin barrier over a generation counter.
struct SpinBarrier {
    n: usize,
    spin_limit: u32,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(n: usize, spin_limit: u32) -> Self {
        SpinBarrier {
            n,
            spin_limit,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Waits for every thread, or until `abort` is raised.
    fn wait(&self, abort: &AtomicBool) {
        // Acquire on the generation load: pairs with the Release increment by
        // the last arriver, so every thread's writes before the barrier are
        // visible after it (thread 0 reads the others' registers this way).
        let generation = self.generation.load(Ordering::Acquire);
        // AcqRel: the last arriver must see every earlier arriver's writes
        // before it publishes them with its Release increment.
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            // Relaxed: the flag only ends the wait (see exec::Mem::abort).
            if abort.load(Ordering::Relaxed) {
                return;
            }
            if spins < self.spin_limit {
                ksync::arch::cpu_relax();
                spins += 1;
            } else {
                ksync::arch::yield_now();
            }
        }
    }
}

/// Per-thread progress counters that keep the threads in lock-step within a
/// round: a thread starts group `n` only once every thread has reached it, so a
/// thread that was preempted does not leave the others racing against nothing.
struct Progress {
    steps: Vec<CachePadded<AtomicUsize>>,
    spin_limit: u32,
}

impl Progress {
    fn new(n: usize, spin_limit: u32) -> Self {
        Progress {
            steps: (0..n)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            spin_limit,
        }
    }

    /// Thread `t` reached `step`; waits until every thread has, or until
    /// `abort` is raised.
    #[inline]
    fn arrive(&self, t: usize, step: usize, abort: &AtomicBool) {
        // Relaxed: this only paces the threads; the round's barrier orders
        // the data.
        self.steps[t].store(step, Ordering::Relaxed);
        for (o, other) in self.steps.iter().enumerate() {
            if o == t {
                continue;
            }
            let mut spins = 0u32;
            while other.load(Ordering::Relaxed) < step {
                // Relaxed: as in SpinBarrier::wait.
                if abort.load(Ordering::Relaxed) {
                    return;
                }
                if spins < self.spin_limit {
                    ksync::arch::cpu_relax();
                    spins += 1;
                } else {
                    ksync::arch::yield_now();
                }
            }
        }
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid cpu_set_t of the size passed, for the calling thread (0).
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } == 0;
    let cpus: Vec<usize> = if ok {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: CPU_ISSET reads the set we own, at an index below CPU_SETSIZE.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() { vec![0] } else { cpus }
}

/// Pins the calling thread to `cpu` (best effort: the test still runs if the
/// kernel refuses).
fn pin_to(cpu: usize) {
    // SAFETY: as in allowed_cpus; CPU_SET writes inside the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

/// Instances per round: enough that a round's sweep dwarfs the barrier and the
/// tally, few enough that the arrays stay in L2.
pub const INSTANCES: usize = 10_000;
/// Instances per lock-step group (see [`Progress`]) when every thread has a CPU
/// of its own. With more threads than CPUs, lock-step would cost a context
/// switch per group, so a group is then the whole round.
const GROUP: usize = 25;
/// The watchdog's bound on one lock wait: far beyond any critical section of a
/// test (a few loads and stores, or a grace period), even with the holder
/// preempted on a loaded machine; a wait this long is a deadlock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `test` for (at least) `iterations` instances.
pub fn run(test: &Litmus, iterations: u64) -> Outcome {
    run_with(test, iterations, LOCK_TIMEOUT)
}

/// [`run`], with the watchdog's bound on a lock wait.
pub fn run_with(test: &Litmus, iterations: u64, lock_timeout: Duration) -> Outcome {
    // Small runs (tests, --iterations below one round) use one shorter round.
    let k = (iterations as usize)
        .clamp(GROUP, INSTANCES)
        .next_multiple_of(GROUP);
    let nthreads = test.procs.len();
    let rounds = iterations.div_ceil(k as u64).max(1);
    let cells: Vec<Atomic64> = (0..test.cells * k).map(|_| Atomic64::new(0)).collect();
    let locks: Vec<SpinLock<()>> = (0..test.locks * k).map(|_| SpinLock::new(())).collect();
    let srcus: Vec<SrcuStruct> = (0..test.srcus * k).map(|_| SrcuStruct::new()).collect();
    let leaked: Vec<AtomicBool> = (0..test.locks * k)
        .map(|_| AtomicBool::new(false))
        .collect();
    let downs: Vec<AtomicUsize> = (0..test.srcus * k * exec::DOWN_WORDS)
        .map(|_| AtomicUsize::new(0))
        .collect();
    let abort = AtomicBool::new(false);
    let lock_timeout = test.may_deadlock().then_some(lock_timeout);
    // Per instance: LEFT_OUT_DEADLOCK or LEFT_OUT_UNMATCHED when a process
    // found it so (see exec::Completion), else 0.
    let deadlocked: Vec<AtomicU8> = (0..k).map(|_| AtomicU8::new(0)).collect();
    reset(test, k, &cells, &leaked, &deadlocked, &downs, &srcus);
    // Each thread's registers in an array of its own: no false sharing between
    // the threads' result writes.
    let regs: Vec<Vec<Atomic64>> = test
        .procs
        .iter()
        .map(|p| (0..p.regs.len() * k).map(|_| Atomic64::new(0)).collect())
        .collect();
    let cpus = allowed_cpus();
    // With more threads than CPUs a waiter must give its CPU to the thread it
    // waits for soon; otherwise spin long, to release everyone together.
    let spin_limit = if nthreads <= cpus.len() { 200_000 } else { 64 };
    let barrier = SpinBarrier::new(nthreads, spin_limit);
    let progress = Progress::new(nthreads, spin_limit);
    let group_len = if nthreads <= cpus.len() { GROUP } else { k };
    let fault: Mutex<Option<String>> = Mutex::new(None);
    let mut counts: HashMap<Vec<i64>, u64> = HashMap::new();
    let start = Instant::now();

    let mut dead = 0u64;
    let mut done_rounds = 0u64;
    let mut unmatched = 0u64;
    let mut counts_slot = Some((&mut counts, &mut dead, &mut unmatched, &mut done_rounds));
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (t, proc) in test.procs.iter().enumerate() {
            let (cells, locks, srcus, leaked, deadlocked, downs, abort) =
                (&cells, &locks, &srcus, &leaked, &deadlocked, &downs, &abort);
            let (regs, barrier, cpus, progress, fault) =
                (&regs, &barrier, &cpus, &progress, &fault);
            // Thread 0 counts the outcomes.
            let counts_out = counts_slot.take();
            handles.push(s.spawn(move || {
                pin_to(cpus[t % cpus.len()]);
                let mine = &regs[t];
                let nregs = proc.regs.len();
                let mut frame = Frame::new(proc, test.locks);
                let mut counts_out = counts_out;
                let mut step = 0;
                // Relaxed: the flag only stops the threads (exec::Mem::abort);
                // a stopped round's results are not read.
                let stopped = || abort.load(Ordering::Relaxed);
                'rounds: for _ in 0..rounds {
                    barrier.wait(abort);
                    for group in 0..k / group_len {
                        // Keep in step with the other threads: do not start a
                        // group before every thread has reached it.
                        step += 1;
                        progress.arrive(t, step, abort);
                        if stopped() {
                            break 'rounds;
                        }
                        for i in group * group_len..(group + 1) * group_len {
                            let mem = Mem {
                                cells,
                                locks,
                                srcus,
                                leaked,
                                downs,
                                abort,
                                lock_timeout,
                                spin_limit,
                                k,
                                i,
                                ncells: test.cells,
                            };
                            match exec::run(proc, &mem, &mut frame) {
                                Ok(Completion::Done) => {}
                                // Relaxed: read by thread 0 after the round's
                                // barrier, which orders it.
                                Ok(Completion::Deadlocked) => {
                                    deadlocked[i].store(LEFT_OUT_DEADLOCK, Ordering::Relaxed)
                                }
                                // Relaxed: as above.
                                Ok(Completion::Unmatched) => {
                                    deadlocked[i].store(LEFT_OUT_UNMATCHED, Ordering::Relaxed)
                                }
                                Ok(Completion::Aborted) => break 'rounds,
                                Err(e) => {
                                    let mut f = fault.lock().unwrap_or_else(|p| p.into_inner());
                                    f.get_or_insert_with(|| format!("P{t}: {e}"));
                                }
                            }
                            for (j, val) in frame.regs.iter().enumerate() {
                                write_once(&mine[nregs * i + j], *val);
                            }
                        }
                    }
                    barrier.wait(abort);
                    if stopped() {
                        break;
                    }
                    if let Some((counts, dead, unmatched, done)) = counts_out.as_mut() {
                        let (d, u) = tally(test, k, &cells[..], regs, deadlocked, counts);
                        **dead += d;
                        **unmatched += u;
                        **done += 1;
                        reset(test, k, cells, leaked, deadlocked, downs, srcus);
                    }
                }
            }));
        }
        for h in handles {
            h.join().expect("litmus thread panicked");
        }
    });

    let elapsed = start.elapsed();
    let mut list: Vec<(Vec<i64>, u64)> = counts.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Outcome {
        iterations: done_rounds * k as u64,
        counts: list,
        deadlocked: dead,
        unmatched,
        watchdog: abort.into_inner(),
        fault: fault.into_inner().unwrap_or_else(|p| p.into_inner()),
        elapsed,
        not_run: None,
    }
}

/// An instance left out: a process deadlocked.
const LEFT_OUT_DEADLOCK: u8 = 1;
/// An instance left out: an `srcu_up_read()` ended no section.
const LEFT_OUT_UNMATCHED: u8 = 2;

/// Counts the outcome of every instance of the round just finished, but
/// those left out, whose numbers it returns (deadlocked, unmatched). Runs on thread 0 between
/// two barriers, when no other thread touches the arrays.
fn tally(
    test: &Litmus,
    k: usize,
    cells: &[Atomic64],
    regs: &[Vec<Atomic64>],
    deadlocked: &[AtomicU8],
    counts: &mut HashMap<Vec<i64>, u64>,
) -> (u64, u64) {
    use super::ast::Loc;
    let mut values = vec![0i64; test.observed.len()];
    let (mut dead, mut unmatched) = (0, 0);
    for i in 0..k {
        match deadlocked[i].load(Ordering::Relaxed) {
            LEFT_OUT_DEADLOCK => {
                dead += 1;
                continue;
            }
            LEFT_OUT_UNMATCHED => {
                unmatched += 1;
                continue;
            }
            _ => {}
        }
        for (n, loc) in test.observed.iter().enumerate() {
            values[n] = match *loc {
                Loc::Reg(t, r) => read_once(&regs[t][test.procs[t].regs.len() * i + r]),
                Loc::Var(v) => read_once(&cells[v * k + i]),
            };
        }
        match counts.get_mut(values.as_slice()) {
            Some(n) => *n += 1,
            None => {
                counts.insert(values.clone(), 1);
            }
        }
    }
    (dead, unmatched)
}

/// Sets every cell of every instance to its initial value and clears the
/// leaked-lock and deadlock flags (every lock is free: each process releases
/// what it takes), and ends the `srcu_down_read()` sections no process ended
/// (so that the next round's grace periods do not wait for them forever).
fn reset(
    test: &Litmus,
    k: usize,
    cells: &[Atomic64],
    leaked: &[AtomicBool],
    deadlocked: &[AtomicU8],
    downs: &[AtomicUsize],
    srcus: &[SrcuStruct],
) {
    for (domain, words) in srcus.iter().zip(downs.chunks(exec::DOWN_WORDS)) {
        // Relaxed: between the round's barriers no process runs.
        for (idx, open) in words[..2].iter().enumerate() {
            for _ in 0..open.swap(0, Ordering::Relaxed) {
                // SAFETY: a section of this domain and index was begun by
                // srcu_down_read() and not ended: the count says so, and it
                // is now zero, so nothing ends it twice.
                unsafe { domain.up_read(idx) };
            }
        }
        words[2].store(0, Ordering::Relaxed);
    }
    // Relaxed: the round's barrier orders these before the next sweep.
    for f in leaked {
        f.store(false, Ordering::Relaxed);
    }
    for f in deadlocked {
        f.store(0, Ordering::Relaxed);
    }
    for v in test
        .vars
        .iter()
        .filter(|v| v.kind == super::ast::VarKind::Cell)
    {
        for c in &cells[v.slot * k..(v.slot + 1) * k] {
            write_once(c, v.init);
        }
    }
}
