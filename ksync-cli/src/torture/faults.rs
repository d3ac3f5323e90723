//! Fault injection for `ksync torture --faults LIST`: the kernel's torture
//! framework (`kernel/torture.c`) disturbs the system while its threads hammer a
//! primitive, and so do these sources, each a thread of its own beside the
//! torture threads for the whole run:
//!
//! | fault | kernel analogue | what it does here |
//! |---|---|---|
//! | `stutter` | `stutter` (`stutter_wait`) | every torture thread pauses at its next acquisition, all together, and resumes together: at one instant, spinning on the clock for the pause's last 2 ms, so they arrive at the lock at once |
//! | `shuffle` | `shuffle_interval` (`torture_shuffle_tasks`) | torture threads are moved between CPUs with `sched_setaffinity`, one CPU left idle in turn |
//! | `onoff` | `onoff_interval` (CPU hotplug) | every thread of the process is squeezed onto half the CPUs (one of two) and let out again |
//! | `signals` | — | a storm of `SIGUSR1` (ksync's task signals) at the torture threads; types that sleep use the interruptible or killable calls and retry on `-EINTR` |
//! | `irqs` | — | real irqs raised at the torture threads (holders and readers), now and then 1000 back to back at one thread; the handler takes the type's irq-safe lock the safe way and schedules a tasklet, which takes a bh lock from softirq context |
//! | `long-hold` | `long_hold` | now and then a writer holds the lock for milliseconds (busy, as locktorture's `mdelay`) |
//! | `nested` | `nested_locks` | writers now and then take a chain of locks of the type in a fixed order before the main one |
//!
//! Each source prints its own counters with the type's verdict.
//!
//! The torture threads take part through [`Monitor`]: they register
//! ([`Monitor::enter`]) so that the sources can find them, and they call
//! [`Monitor::begin_wait`], which is also where a stutter holds them.

use super::{Monitor, Shared, TortureLock};
use ksync::irq::{self, Tasklet};
use ksync::sched::Signal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// All torture threads pause together now and then.
    Stutter = 0,
    /// Threads are moved between CPUs.
    Shuffle = 1,
    /// The process's CPU set shrinks and grows back.
    Onoff = 2,
    /// Signals at sleepers.
    Signals = 3,
    /// Irqs at holders and readers, with storms.
    Irqs = 4,
    /// Writers hold for milliseconds now and then.
    LongHold = 5,
    /// Writers take a chain of locks.
    Nested = 6,
}

/// The faults by their `--faults` names.
pub const NAMES: [(&str, Fault); 7] = [
    ("stutter", Fault::Stutter),
    ("shuffle", Fault::Shuffle),
    ("onoff", Fault::Onoff),
    ("signals", Fault::Signals),
    ("irqs", Fault::Irqs),
    ("long-hold", Fault::LongHold),
    ("nested", Fault::Nested),
];

/// The faults a run injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSet(u8);

impl FaultSet {
    /// Parses `--faults` names (`all` for every fault).
    pub fn parse(names: &[String]) -> Result<FaultSet, String> {
        let mut set = FaultSet::default();
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if name == "all" {
                set.0 = (1 << NAMES.len()) - 1;
                continue;
            }
            match NAMES.iter().find(|(n, _)| *n == name) {
                Some((_, f)) => set.0 |= 1 << *f as u8,
                None => {
                    return Err(format!(
                        "unknown fault {name:?}; the faults are {}, all",
                        NAMES.map(|(n, _)| n).join(", ")
                    ));
                }
            }
        }
        Ok(set)
    }

    /// Whether `f` is injected.
    pub fn has(self, f: Fault) -> bool {
        self.0 & (1 << f as u8) != 0
    }

    /// The names of the faults injected, comma-separated.
    pub fn names(self) -> String {
        NAMES
            .iter()
            .filter(|(_, f)| self.has(*f))
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Interruptible or killable calls that ended with `-EINTR` and were retried,
/// counted by the lock adapters (which have no monitor at hand).
pub static EINTR: AtomicU64 = AtomicU64::new(0);

/// Starts the enabled sources in `s`; each returns its counters line when the
/// monitor says stop.
pub fn start<'s>(s: &'s Scope<'s, '_>, mon: &'s Monitor) -> Vec<ScopedJoinHandle<'s, String>> {
    let f = mon.faults;
    let mut v = Vec::new();
    if f.has(Fault::Stutter) {
        v.push(s.spawn(move || stutter(mon)));
    }
    if f.has(Fault::Shuffle) {
        v.push(s.spawn(move || shuffle(mon)));
    }
    if f.has(Fault::Onoff) {
        v.push(s.spawn(move || onoff(mon)));
    }
    if f.has(Fault::Signals) {
        v.push(s.spawn(move || signals(mon)));
    }
    if f.has(Fault::Irqs) {
        v.push(s.spawn(move || irqs(mon)));
    }
    v
}

/// Sleeps `d` in short steps; false if the run stopped meanwhile.
fn nap(mon: &Monitor, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if mon.should_stop() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(5)));
    }
}

// ---------------------------------------------------------------------------
// stutter

const STUTTER_RUN: Duration = Duration::from_millis(80);
const STUTTER_PAUSE: Duration = Duration::from_millis(20);
/// How long before the end of a pause the held threads stop sleeping and spin
/// on the clock (torture.c's `stutter_pause_test == 2` phase, and today's
/// absolute `stutter_till_abs_time`): a thread woken from a sleep resumes up to
/// a scheduler tick late, a spinning one within nanoseconds of the others.
pub const STUTTER_SPIN: Duration = Duration::from_millis(2);

/// torture.c's `torture_stutter`: threads run `STUTTER_RUN`, then all pause for
/// `STUTTER_PAUSE` at their next acquisition and resume together, at one
/// instant (see [`Monitor::stutter_wait`](super::Monitor)): the simultaneous
/// arrival at an idle lock that a lock with a racy fast path loses.
fn stutter(mon: &Monitor) -> String {
    let mut pauses = 0u64;
    while nap(mon, STUTTER_RUN) {
        let till = mon.now_ns() + STUTTER_PAUSE.as_nanos() as u64;
        mon.stutter_till.store(till, Ordering::Relaxed);
        pauses += 1;
        // Past the resume instant: the threads compare the clock with `till`
        // themselves, so clearing it late costs nothing.
        let ok = nap(mon, STUTTER_PAUSE + Duration::from_millis(1));
        mon.stutter_till.store(0, Ordering::Relaxed);
        if !ok {
            break;
        }
    }
    format!(
        "stutter: {pauses} pauses of {} ms, every {} ms, each ending for every thread at one instant",
        STUTTER_PAUSE.as_millis(),
        (STUTTER_RUN + STUTTER_PAUSE).as_millis()
    )
}

// ---------------------------------------------------------------------------
// shuffle and onoff

/// The CPUs this process may run on (the main thread's set when the run began).
fn process_cpus() -> Vec<usize> {
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    CPUS.get_or_init(|| {
        let pid = std::process::id() as i32;
        ksync::arch::thread_affinity(pid)
            .ok()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| (0..ksync::arch::online_cpus()).collect())
    })
    .clone()
}

/// torture.c's `torture_shuffle_tasks`: every few milliseconds one CPU is left
/// idle and every torture thread is confined to the others (on a machine with
/// one or two CPUs: to one CPU, chosen at random per thread now and then).
fn shuffle(mon: &Monitor) -> String {
    let cpus = process_cpus();
    let mut rng = fastrand::Rng::with_seed(0x5_4ff);
    let (mut moves, mut rounds) = (0u64, 0u64);
    while nap(mon, Duration::from_millis(rng.u64(2..20))) {
        let idle = rng.usize(..cpus.len());
        let rest: Vec<usize> = if cpus.len() > 1 {
            cpus.iter()
                .enumerate()
                .filter(|(i, _)| *i != idle)
                .map(|(_, c)| *c)
                .collect()
        } else {
            cpus.clone()
        };
        rounds += 1;
        for slot in mon.slots() {
            let set = if rng.bool() {
                vec![rest[rng.usize(..rest.len())]]
            } else {
                rest.clone()
            };
            if ksync::arch::set_thread_affinity(slot.task.tid(), &set).is_ok() {
                moves += 1;
            }
        }
    }
    for slot in mon.slots() {
        let _ = ksync::arch::set_thread_affinity(slot.task.tid(), &cpus);
    }
    format!(
        "shuffle: {moves} thread moves in {rounds} rounds over CPUs {cpus:?} (one left idle in turn)"
    )
}

/// Every thread of this process, from `/proc/self/task`.
fn process_threads() -> Vec<i32> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The user-space analogue of CPU hotplug (`onoff_interval`): every thread of
/// the process, library daemons included, is confined to the first half of the
/// CPUs (one CPU out of two), then let out again.
fn onoff(mon: &Monitor) -> String {
    let cpus = process_cpus();
    let online = &cpus[..cpus.len().div_ceil(2).min(cpus.len() - 1).max(1)];
    let (mut changes, mut offline_ms) = (0u64, 0u128);
    let set_all = |set: &[usize]| {
        for tid in process_threads() {
            let _ = ksync::arch::set_thread_affinity(tid, set);
        }
    };
    while nap(mon, Duration::from_millis(50)) {
        let t = Instant::now();
        set_all(online);
        changes += 1;
        let ok = nap(mon, Duration::from_millis(30));
        set_all(&cpus);
        changes += 1;
        offline_ms += t.elapsed().as_millis();
        if !ok {
            break;
        }
    }
    format!(
        "onoff: {changes} CPU-set changes ({} times {cpus:?} -> {online:?} and back), {offline_ms} ms squeezed",
        changes / 2
    )
}

// ---------------------------------------------------------------------------
// signals

/// A storm of `SIGUSR1` at the torture threads: each ends an interruptible or
/// killable sleep in progress (killable ones only for fatal signals, so those
/// see it as noise), or the next one.
fn signals(mon: &Monitor) -> String {
    let mut rng = fastrand::Rng::with_seed(0x516);
    let start = EINTR.load(Ordering::Relaxed);
    let mut sent = 0u64;
    while nap(mon, Duration::from_micros(rng.u64(50..300))) {
        let slots = mon.slots();
        if let Some(slot) = slots.get(rng.usize(..slots.len().max(1))) {
            slot.task.send_signal(Signal::SIGUSR1);
            sent += 1;
        }
    }
    format!(
        "signals: {sent} sent, {} calls ended with -EINTR and were retried",
        EINTR.load(Ordering::Relaxed) - start
    )
}

// ---------------------------------------------------------------------------
// irqs

/// The irq line the torture's irqs use.
const IRQ_LINE: u32 = 7;
/// Irqs raised back to back in one storm.
const STORM: u64 = 1000;

static HANDLER_RUNS: AtomicU64 = AtomicU64::new(0);
static IRQ_LOCKS: AtomicU64 = AtomicU64::new(0);
static IRQ_READS: AtomicU64 = AtomicU64::new(0);
static TASKLET_RUNS: AtomicU64 = AtomicU64::new(0);
static BH_LOCKS: AtomicU64 = AtomicU64::new(0);
static TASKLET: Tasklet = Tasklet::new(tasklet_fn, 0);

/// What the handlers may take: the type's lock and the state its critical
/// sections check. Set by [`IrqHookGuard::set`] while a lock type runs.
pub struct IrqHook<'a> {
    /// The lock under torture.
    pub lock: &'a dyn TortureLock,
    /// The state its critical sections check.
    pub shared: &'a Shared,
    /// The run's monitor, for failures.
    pub mon: &'a Monitor,
}

/// The current hook (a `*const IrqHook`, lifetime erased), or null.
static HOOK: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
/// Handlers using the hook now.
static HOOK_USERS: AtomicU32 = AtomicU32::new(0);

/// Clears the hook on drop (also on a panic) and waits until no handler uses it.
pub struct IrqHookGuard<'h, 'a>(Option<&'h IrqHook<'a>>);

impl<'h, 'a> IrqHookGuard<'h, 'a> {
    /// Lets the irq and tasklet handlers take `hook`'s lock until the guard
    /// drops; `None` sets nothing.
    pub fn set(hook: Option<&'h IrqHook<'a>>) -> Self {
        if let Some(h) = hook {
            // SeqCst: see `with_hook`.
            HOOK.store(h as *const IrqHook as *mut (), Ordering::SeqCst);
        }
        IrqHookGuard(hook)
    }
}

impl Drop for IrqHookGuard<'_, '_> {
    fn drop(&mut self) {
        if self.0.is_some() {
            // SeqCst store, then SeqCst loads of HOOK_USERS: against the
            // handler's SeqCst increment then load of HOOK (store-buffering
            // pair). Either the handler sees null, or we see it counted and wait.
            HOOK.store(std::ptr::null_mut(), Ordering::SeqCst);
            while HOOK_USERS.load(Ordering::SeqCst) != 0 {
                std::thread::yield_now();
            }
        }
    }
}

/// Runs `f` on the current hook, if any. Async-signal-safe (atomics only).
fn with_hook(f: impl FnOnce(&IrqHook)) {
    // SeqCst increment, then SeqCst load: pairs with the guard's store then
    // load in `IrqHookGuard::drop`.
    HOOK_USERS.fetch_add(1, Ordering::SeqCst);
    let p = HOOK.load(Ordering::SeqCst) as *const IrqHook;
    if !p.is_null() {
        // SAFETY: HOOK is non-null only while the `IrqHook` it points at is alive:
        // the guard that set it clears it and waits for HOOK_USERS to drain
        // before the hook goes out of scope, and we are counted in HOOK_USERS.
        f(unsafe { &*p });
    }
    // Release: our use of the hook happens before the guard sees 0.
    HOOK_USERS.fetch_sub(1, Ordering::Release);
}

/// The torture irq's handler: takes the type's lock the irq-safe way (where the
/// type has one), and schedules the tasklet, as a driver's handler does.
fn irq_handler(_irq: u32) {
    HANDLER_RUNS.fetch_add(1, Ordering::Relaxed);
    with_hook(|h| {
        if h.lock
            .write_from_irq(&mut || super::irq_cs(h.shared, h.mon))
        {
            IRQ_LOCKS.fetch_add(1, Ordering::Relaxed);
        } else if h
            .lock
            .read_from_irq(&mut || super::irq_read_cs(h.shared, h.mon))
        {
            IRQ_READS.fetch_add(1, Ordering::Relaxed);
        }
    });
    TASKLET.schedule();
}

/// The tasklet: takes the type's bh lock from softirq context (where it has one).
fn tasklet_fn(_data: usize) {
    TASKLET_RUNS.fetch_add(1, Ordering::Relaxed);
    with_hook(|h| {
        if h.lock
            .write_from_softirq(&mut || super::irq_cs(h.shared, h.mon))
        {
            BH_LOCKS.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Raises irqs at random torture threads every few hundred microseconds, and a
/// storm of [`STORM`] back to back at one thread every quarter second.
fn irqs(mon: &Monitor) -> String {
    static REQUESTED: OnceLock<Result<(), ksync::Error>> = OnceLock::new();
    if let Err(e) = REQUESTED.get_or_init(|| irq::request_irq(IRQ_LINE, irq_handler, "torture")) {
        mon.fail();
        return format!("irqs: request_irq({IRQ_LINE}) failed: {e}");
    }
    let counters = || {
        [
            HANDLER_RUNS.load(Ordering::Relaxed),
            IRQ_LOCKS.load(Ordering::Relaxed),
            IRQ_READS.load(Ordering::Relaxed),
            TASKLET_RUNS.load(Ordering::Relaxed),
            BH_LOCKS.load(Ordering::Relaxed),
        ]
    };
    let before = counters();
    let mut rng = fastrand::Rng::with_seed(0x1e9);
    let (mut raised, mut refused, mut storms) = (0u64, 0u64, 0u64);
    let mut next_storm = Instant::now() + Duration::from_millis(250);
    while nap(mon, Duration::from_micros(rng.u64(100..600))) {
        let slots = mon.slots();
        let Some(slot) = slots.get(rng.usize(..slots.len().max(1))) else {
            continue;
        };
        let n = if Instant::now() >= next_storm {
            next_storm += Duration::from_millis(250);
            storms += 1;
            STORM
        } else {
            1
        };
        for _ in 0..n {
            match irq::raise_irq(IRQ_LINE, &slot.task) {
                Ok(()) => raised += 1,
                Err(_) => refused += 1,
            }
        }
    }
    let after = counters();
    let d: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    format!(
        "irqs: {raised} raised ({storms} storms of {STORM} back to back at one thread), {refused} refused; \
         {} handler runs, {} irq-safe lock takes and {} read locks in the handler, {} tasklet runs, {} bh lock takes in the tasklet",
        d[0], d[1], d[2], d[3], d[4]
    )
}
