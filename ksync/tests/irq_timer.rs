//! Timers and jiffies: callbacks in softirq context on the timer thread,
//! `del_timer` and `del_timer_sync` (which waits for a running callback),
//! re-arming, and dropping an armed timer.
//!
//! No test depends on how fast the machine is: each waits for a state (a
//! callback ran, jiffies moved), with a generous bound that only guards a
//! hang. Where a test must act before a timer can fire, it first holds the
//! timer softirq ([`hold_timers`]) instead of racing the expiry.

use core::pin::{Pin, pin};
use ksync::arch::gettid;
use ksync::irq::{self, Timer, jiffies, msecs_to_jiffies, time_after, time_after_eq};
use ksync::sched::{in_hardirq, in_serving_softirq};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The hang guard of every wait below, in seconds.
const HANG: u64 = 30;

fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    cond()
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------
// Holding the timer softirq, and waiting for it to pass a jiffy.

/// Serializes the tests that use [`hold_timers`] and [`wait_timers_past`]
/// (their statics are shared).
static TIMERS: Mutex<()> = Mutex::new(());
static HOLD: Timer = Timer::setup(hold);
static HOLDING: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);

/// Runs on `ktimer`, in the timer softirq, until [`Held`] is dropped. One
/// thread runs timer callbacks at a time, so no other timer fires meanwhile.
fn hold(_: &Timer) {
    // Release pairs with the Acquire load in `hold_timers`; Acquire with the
    // Release store in `Held::drop`.
    HOLDING.store(true, Release);
    while !RELEASE.load(Acquire) {
        std::thread::yield_now();
    }
}

/// The timer softirq, held in [`hold`] until this is dropped.
struct Held {
    _lock: MutexGuard<'static, ()>,
}

/// Holds the timer softirq: returns once [`hold`] runs, after which no timer
/// callback runs until the result is dropped. Callers must not hold the
/// result while waiting for a callback.
fn hold_timers(lock: MutexGuard<'static, ()>) -> Held {
    HOLDING.store(false, Relaxed);
    RELEASE.store(false, Relaxed);
    Pin::static_ref(&HOLD).mod_timer(jiffies().wrapping_add(1));
    assert!(
        wait_until(HANG, || HOLDING.load(Acquire)),
        "the timer softirq never ran"
    );
    Held { _lock: lock }
}

impl Drop for Held {
    fn drop(&mut self) {
        RELEASE.store(true, Release);
        Pin::static_ref(&HOLD).del_timer_sync();
    }
}

static MARKS: AtomicU32 = AtomicU32::new(0);
fn mark(_: &Timer) {
    // Release pairs with the Acquire load in `wait_timers_past`.
    MARKS.fetch_add(1, Release);
}

/// Returns once the timer softirq has run every timer due at `expires` that
/// was armed before this call: a marker due at `expires` fired, and then a
/// second marker, armed after the first fired. A pass runs the timers due at
/// its start (the marker and any earlier one), one pass runs at a time, and a
/// timer armed during a pass waits for the next: so when the second marker
/// fires, the pass that ran the first is over. Call it holding [`TIMERS`].
fn wait_timers_past(expires: u64) {
    let before = MARKS.load(Relaxed);
    let first = pin!(Timer::setup(mark));
    first.as_ref().mod_timer(expires);
    assert!(
        wait_until(HANG, || MARKS.load(Acquire) == before + 1),
        "a timer due at {expires} never fired"
    );
    let second = pin!(Timer::setup(mark));
    second.as_ref().mod_timer(jiffies());
    assert!(
        wait_until(HANG, || MARKS.load(Acquire) == before + 2),
        "the timer softirq stopped"
    );
}

fn timers_lock() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the others can still run.
    TIMERS.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------

static FIRED_AT: AtomicU64 = AtomicU64::new(0);
static FIRED_TID: AtomicI32 = AtomicI32::new(0);
static FIRED_CONTEXT_OK: AtomicBool = AtomicBool::new(false);

fn record(t: &Timer) {
    FIRED_CONTEXT_OK.store(
        in_serving_softirq() && !in_hardirq() && t.data() == 42,
        Relaxed,
    );
    FIRED_TID.store(gettid(), Relaxed);
    FIRED_AT.store(jiffies(), Release);
}

#[test]
fn a_timer_fires_once_after_its_expiry_in_softirq_context() {
    let timer = pin!(Timer::with_data(record, 42));
    let expires;
    {
        // Held, so that it cannot fire before we look at `pending`.
        let _held = hold_timers(timers_lock());
        expires = jiffies().wrapping_add(msecs_to_jiffies(40));
        assert!(!timer.as_ref().mod_timer(expires), "was not armed before");
        assert!(timer.pending());
    }
    assert!(
        wait_until(HANG, || FIRED_AT.load(Acquire) != 0),
        "timer never fired"
    );
    assert!(
        time_after_eq(FIRED_AT.load(Relaxed), expires),
        "fired before its expiry"
    );
    assert!(
        FIRED_CONTEXT_OK.load(Relaxed),
        "callback not in softirq context"
    );
    assert_ne!(
        FIRED_TID.load(Relaxed),
        gettid(),
        "callbacks run on the timer thread"
    );
    assert!(!timer.pending());
}

static NEVER: AtomicU32 = AtomicU32::new(0);
fn never(_: &Timer) {
    NEVER.fetch_add(1, Relaxed);
}

#[test]
fn del_timer_disarms_and_mod_timer_reports_pending() {
    let lock = timers_lock();
    let timer = pin!(Timer::setup(never));
    let t = timer.as_ref();
    let expires = jiffies().wrapping_add(2);
    {
        // Held: it cannot fire between the arming and the deletion.
        let _held = hold_timers(lock);
        assert!(!t.mod_timer(jiffies().wrapping_add(1)));
        assert!(t.mod_timer(expires), "re-arm of a pending timer");
        assert!(t.del_timer());
        assert!(!t.del_timer());
    }
    let _lock = timers_lock();
    wait_timers_past(expires);
    assert_eq!(NEVER.load(Relaxed), 0, "a deleted timer fired");
}

#[test]
fn dropping_an_armed_timer_disarms_it() {
    let expires = jiffies().wrapping_add(1);
    {
        // Held: it cannot fire between the arming and the drop.
        let _held = hold_timers(timers_lock());
        let timer = pin!(Timer::setup(never_dropped));
        assert!(!timer.as_ref().mod_timer(expires));
    }
    let _lock = timers_lock();
    wait_timers_past(expires);
    assert_eq!(DROPPED_FIRED.load(Relaxed), 0, "a dropped timer fired");
}
static DROPPED_FIRED: AtomicU32 = AtomicU32::new(0);
fn never_dropped(_: &Timer) {
    DROPPED_FIRED.fetch_add(1, Relaxed);
}

// ---------------------------------------------------------------------------

static SLOW_STARTED: AtomicBool = AtomicBool::new(false);
static SLOW_DELETING: AtomicBool = AtomicBool::new(false);
static SLOW_FINISHED: AtomicBool = AtomicBool::new(false);

/// Runs until the test is about to call `del_timer_sync`, and then a while
/// more: the while gives a `del_timer_sync` that does not wait the time to
/// return early; the test does not depend on its length.
fn slow_callback(_: &Timer) {
    SLOW_STARTED.store(true, Release);
    while !SLOW_DELETING.load(Acquire) {
        std::hint::spin_loop();
    }
    let end = now_ns() + 50_000_000;
    while now_ns() < end {
        std::hint::spin_loop();
    }
    SLOW_FINISHED.store(true, Release);
}

#[test]
fn del_timer_sync_returns_only_after_a_running_callback_finished() {
    static SLOW: Timer = Timer::setup(slow_callback);
    let t = Pin::static_ref(&SLOW);
    t.mod_timer(jiffies().wrapping_add(1));
    assert!(
        wait_until(HANG, || SLOW_STARTED.load(Acquire)),
        "callback never started"
    );
    // The callback runs until it sees this, so it is running when we call.
    SLOW_DELETING.store(true, Release);
    let was_pending = t.del_timer_sync();
    assert!(
        SLOW_FINISHED.load(Acquire),
        "del_timer_sync returned while the callback ran"
    );
    assert!(!was_pending);
}

static PERIODIC_RUNS: AtomicU32 = AtomicU32::new(0);
static PERIODIC: Timer = Timer::setup(periodic);
fn periodic(t: &Timer) {
    let _ = t;
    PERIODIC_RUNS.fetch_add(1, Relaxed);
    // Re-arm ourselves for the next tick, forever, until del_timer_sync.
    Pin::static_ref(&PERIODIC).mod_timer(jiffies().wrapping_add(1));
}

#[test]
fn a_self_rearming_timer_stops_at_del_timer_sync() {
    let t = Pin::static_ref(&PERIODIC);
    t.mod_timer(jiffies().wrapping_add(1));
    assert!(
        wait_until(HANG, || PERIODIC_RUNS.load(Relaxed) >= 5),
        "periodic timer stalled"
    );
    t.del_timer_sync();
    let n = PERIODIC_RUNS.load(Relaxed);
    assert!(!t.pending(), "still armed after del_timer_sync");
    // Past the expiry it would have re-armed itself for.
    let _lock = timers_lock();
    wait_timers_past(jiffies().wrapping_add(1));
    assert_eq!(PERIODIC_RUNS.load(Relaxed), n, "ran after del_timer_sync");
}

#[test]
fn jiffies_advance_while_timers_tick() {
    static KEEPALIVE: Timer = Timer::setup(never_keepalive);
    let t = Pin::static_ref(&KEEPALIVE);
    // Armed far ahead, only to keep `ktimer` ticking; the 2 minutes are no
    // bound on the wait below.
    t.mod_timer(jiffies().wrapping_add(msecs_to_jiffies(120_000)));
    let a = jiffies();
    // The tick thread may be starved on a busy machine: wait for the state.
    let moved = wait_until(HANG, || time_after(jiffies(), a));
    t.del_timer_sync();
    assert!(moved, "jiffies stood still at {a} for {HANG} s");
    assert_eq!(irq::jiffies_to_msecs(irq::msecs_to_jiffies(100)), 100);
}
fn never_keepalive(_: &Timer) {}

#[test]
fn msleep_interruptible_returns_early_on_a_signal() {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(ksync::sched::current()).unwrap();
        irq::msleep_interruptible(5_000)
    });
    let task = rx.recv().unwrap();
    assert!(wait_until(HANG, || task.state()
        == ksync::sched::TaskState::Interruptible));
    task.send_signal(ksync::sched::Signal::SIGUSR1);
    let left = t.join().unwrap();
    assert!(
        left > 0 && left <= 5_000,
        "the signal did not end the sleep early: {left} ms left"
    );
}

#[test]
fn set_hz_is_refused_once_jiffies_run() {
    assert_eq!(irq::set_hz(0), Err(ksync::Error::InvalidArgument));
    let _ = jiffies();
    assert_eq!(irq::set_hz(100), Err(ksync::Error::Busy));
    assert_eq!(irq::hz(), irq::HZ);
}
