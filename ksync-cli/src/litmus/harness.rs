//! The litmus runner: many instances of one test, threads sweeping through
//! them together (the litmus7 approach).
//!
//! # How a run works
//!
//! A test's memory is `INSTANCES` independent copies of its variables (`x`,
//! `y`, `z`, each array on its own cache lines, plus two spinlocks and a
//! pointer per instance: see [`Vars`]). Its threads are started once
//! and pinned one per CPU where the CPUs allow. Each round they meet at a spin
//! barrier, then each thread runs its part of the test on instance 0, 1, 2 …
//! in turn, writing its registers to its own result array. Threads released
//! together by the barrier and running the same code sweep at the same pace, so
//! instance `i` of every thread runs within nanoseconds of the others: the
//! races the test is about really happen, thousands of times per round. After
//! the round, thread 0 reads every instance's registers and final memory values,
//! counts the outcomes, and resets the memory for the next round.
//!
//! The barrier spins on a generation counter with `cpu_relax` (so the release
//! reaches all threads within a cache-line transfer) and yields only after a
//! long wait (so a test with more threads than CPUs still progresses).

use ksync::arch::CachePadded;
use ksync::barrier::{read_once, write_once};
use ksync::spinlock::SpinLock;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The Linux-kernel memory model's verdict for a test's `exists` clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    /// The LKMM forbids the outcome: seeing it is a bug (in ksync's barriers,
    /// in the compiler or in the CPU).
    Never,
    /// The LKMM allows the outcome; whether this CPU shows it is informative.
    Sometimes,
}

/// One location the outcome is made of: a thread's register, or a variable's
/// final value.
#[derive(Clone, Copy, Debug)]
pub enum Loc {
    /// Register `1` of thread `0`: written `0:r1` as in herd.
    Reg(usize, usize),
    /// A shared variable's final value (0 = `x`, 1 = `y`, 2 = `z`).
    Var(usize),
    /// A register holding a pointer read from [`Vars::p`], recorded as 1 when
    /// it points to `x` and 0 when it points to `z` (its initial value), and
    /// shown as herd does: `1:r0=x`.
    PtrReg(usize, usize),
}

impl Loc {
    pub fn name(self) -> String {
        match self {
            Loc::Reg(t, r) | Loc::PtrReg(t, r) => format!("{t}:r{r}"),
            Loc::Var(v) => ["x", "y", "z"][v].to_string(),
        }
    }

    /// `name=value`, as in a herd `exists` clause.
    pub fn show(self, value: u32) -> String {
        match self {
            Loc::PtrReg(..) => {
                format!("{}={}", self.name(), if value == 1 { "x" } else { "z" })
            }
            _ => format!("{}={value}", self.name()),
        }
    }
}

/// One instance's shared variables, as a thread body sees them.
///
/// Besides the integers `x`, `y` and `z` (0 at the start of every instance),
/// an instance has two of ksync's own spinlocks for the lock-based tests (herd's
/// `mylock`, or `s` and `t`; unlocked at the start, and every body that takes
/// one releases it) and a pointer `p` for the address-dependency tests.
pub struct Vars<'a> {
    pub x: &'a AtomicU32,
    pub y: &'a AtomicU32,
    pub z: &'a AtomicU32,
    /// `mylock` (or `s`).
    pub s: &'a SpinLock<()>,
    /// `t`, the second lock of `LB+unlocklockonceonce+poacquireonce`.
    pub t: &'a SpinLock<()>,
    /// A pointer to this instance's `x` or `z`, pointing to `z` at the start
    /// of every instance. Invariant (kept by the harness, relied on by the
    /// bodies' dereferences): it never holds anything else, and both targets
    /// outlive every thread of the run.
    pub p: &'a AtomicPtr<AtomicU32>,
}

/// The pointer value that designates `v` in [`Vars::p`].
#[inline(always)]
pub fn ptr_of(v: &AtomicU32) -> *mut AtomicU32 {
    v as *const AtomicU32 as *mut AtomicU32
}

/// A thread of a test: runs on one instance, writes its registers.
pub type Body = fn(&Vars<'_>, &mut [u32; REGS]);

/// Registers per thread.
pub const REGS: usize = 3;
/// Values per location in an outcome key (values are 0..=3).
const RADIX: usize = 4;

/// A litmus test.
pub struct Test {
    /// The name, as in the kernel's tools/memory-model/litmus-tests.
    pub name: &'static str,
    /// What it asks.
    pub about: &'static str,
    /// One body per thread (2 to 4).
    pub threads: &'static [Body],
    /// The locations an outcome is made of.
    pub observe: &'static [Loc],
    /// The interesting outcome (the `exists` clause): one value per location.
    pub exists: &'static [u32],
    /// The LKMM's verdict for it.
    pub model: Verdict,
}

impl Test {
    /// `0:r0=1 /\ 1:r0=0` for the given values.
    pub fn format_outcome(&self, values: &[u32]) -> String {
        self.observe
            .iter()
            .zip(values)
            .map(|(l, &v)| l.show(v))
            .collect::<Vec<_>>()
            .join(" /\\ ")
    }

    fn key(values: &[u32]) -> usize {
        values.iter().fold(0, |k, &v| k * RADIX + v as usize)
    }

    fn unkey(&self, mut key: usize) -> Vec<u32> {
        let mut v = vec![0; self.observe.len()];
        for slot in v.iter_mut().rev() {
            *slot = (key % RADIX) as u32;
            key /= RADIX;
        }
        v
    }
}

/// What a run of one test found.
pub struct Outcome {
    pub iterations: u64,
    /// Every outcome seen, as (values, count), most frequent first.
    pub counts: Vec<(Vec<u32>, u64)>,
    /// How many times the `exists` outcome was seen.
    pub observed: u64,
    pub elapsed: Duration,
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

    fn wait(&self) {
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

    /// Thread `t` reached `step`; waits until every thread has.
    #[inline]
    fn arrive(&self, t: usize, step: usize) {
        // Relaxed: this only paces the threads; the round's barrier orders
        // the data.
        self.steps[t].store(step, Ordering::Relaxed);
        for (o, other) in self.steps.iter().enumerate() {
            if o == t {
                continue;
            }
            let mut spins = 0u32;
            while other.load(Ordering::Relaxed) < step {
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

/// Runs `test` for (at least) `iterations` instances.
pub fn run(test: &Test, iterations: u64) -> Outcome {
    // Small runs (tests, --iterations below one round) use one shorter round.
    let k = (iterations as usize)
        .clamp(GROUP, INSTANCES)
        .next_multiple_of(GROUP);
    let nthreads = test.threads.len();
    let rounds = iterations.div_ceil(k as u64).max(1);
    let vars: Vec<AtomicU32> = (0..3 * k).map(|_| AtomicU32::new(0)).collect();
    // Two creation sites: `s` and `t` are two lockdep classes, as two
    // `DEFINE_SPINLOCK`s are.
    let locks_s: Vec<SpinLock<()>> = (0..k).map(|_| SpinLock::new(())).collect();
    let locks_t: Vec<SpinLock<()>> = (0..k).map(|_| SpinLock::new(())).collect();
    // Every `p` starts pointing to its instance's `z`.
    let ptrs: Vec<AtomicPtr<AtomicU32>> = (0..k)
        .map(|i| AtomicPtr::new(ptr_of(&vars[2 * k + i])))
        .collect();
    // Each thread's registers in an array of its own: no false sharing between
    // the threads' result writes.
    let regs: Vec<Vec<AtomicU32>> = (0..nthreads)
        .map(|_| (0..REGS * k).map(|_| AtomicU32::new(0)).collect())
        .collect();
    let cpus = allowed_cpus();
    // With more threads than CPUs a waiter must give its CPU to the thread it
    // waits for soon; otherwise spin long, to release everyone together.
    let spin_limit = if nthreads <= cpus.len() { 200_000 } else { 64 };
    let barrier = SpinBarrier::new(nthreads, spin_limit);
    let progress = Progress::new(nthreads, spin_limit);
    let group_len = if nthreads <= cpus.len() { GROUP } else { k };
    let mut counts = vec![0u64; RADIX.pow(test.observe.len() as u32)];
    let start = Instant::now();

    let mut counts_slot = Some(&mut counts);
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (t, body) in test.threads.iter().enumerate() {
            let (vars, regs, barrier, cpus, progress) = (&vars, &regs, &barrier, &cpus, &progress);
            let (locks_s, locks_t, ptrs) = (&locks_s, &locks_t, &ptrs);
            // Thread 0 counts the outcomes.
            let counts_out = counts_slot.take();
            handles.push(s.spawn(move || {
                pin_to(cpus[t % cpus.len()]);
                let mine = &regs[t];
                let mut r = [0u32; REGS];
                let mut counts_out = counts_out;
                let mut step = 0;
                for _ in 0..rounds {
                    barrier.wait();
                    for group in 0..k / group_len {
                        // Keep in step with the other threads: do not start a
                        // group before every thread has reached it.
                        step += 1;
                        progress.arrive(t, step);
                        for i in group * group_len..(group + 1) * group_len {
                            let v = Vars {
                                x: &vars[i],
                                y: &vars[k + i],
                                z: &vars[2 * k + i],
                                s: &locks_s[i],
                                t: &locks_t[i],
                                p: &ptrs[i],
                            };
                            r = [0; REGS];
                            body(&v, &mut r);
                            for (j, val) in r.iter().enumerate() {
                                write_once(&mine[REGS * i + j], *val);
                            }
                        }
                    }
                    barrier.wait();
                    if let Some(counts) = counts_out.as_deref_mut() {
                        tally(test, k, vars, ptrs, regs, counts);
                    }
                }
                let _ = r;
            }));
        }
        for h in handles {
            h.join().expect("litmus thread panicked");
        }
    });

    let elapsed = start.elapsed();
    let exists_key = Test::key(test.exists);
    let observed = counts[exists_key];
    let mut list: Vec<(Vec<u32>, u64)> = counts
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(key, &n)| (test.unkey(key), n))
        .collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Outcome {
        iterations: rounds * k as u64,
        counts: list,
        observed,
        elapsed,
    }
}

/// Counts the outcome of every instance of the round just finished and resets
/// the variables for the next one (integers to 0, pointers to their `z`). Runs
/// on thread 0 between two barriers, when no other thread touches the arrays.
fn tally(
    test: &Test,
    k: usize,
    vars: &[AtomicU32],
    ptrs: &[AtomicPtr<AtomicU32>],
    regs: &[Vec<AtomicU32>],
    counts: &mut [u64],
) {
    let mut values = [0u32; 8];
    for i in 0..k {
        for (n, loc) in test.observe.iter().enumerate() {
            values[n] = match *loc {
                Loc::Reg(t, r) | Loc::PtrReg(t, r) => read_once(&regs[t][REGS * i + r]),
                Loc::Var(v) => read_once(&vars[v * k + i]),
            }
            .min(RADIX as u32 - 1);
        }
        counts[Test::key(&values[..test.observe.len()])] += 1;
    }
    for v in vars {
        write_once(v, 0);
    }
    for (i, p) in ptrs.iter().enumerate() {
        write_once(p, ptr_of(&vars[2 * k + i]));
    }
}
