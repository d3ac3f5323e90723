//! Timers and jiffies: callbacks in softirq context on the timer thread,
//! `del_timer` and `del_timer_sync` (which waits for a running callback),
//! re-arming, and dropping an armed timer.

use core::pin::{Pin, pin};
use ksync::arch::gettid;
use ksync::irq::{self, Timer, jiffies, msecs_to_jiffies, time_after, time_after_eq};
use ksync::sched::{in_hardirq, in_serving_softirq};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

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
    let start = jiffies();
    let expires = start.wrapping_add(msecs_to_jiffies(40));
    assert!(!timer.as_ref().mod_timer(expires), "was not armed before");
    assert!(timer.pending());
    assert!(
        wait_until(10, || FIRED_AT.load(Acquire) != 0),
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
    let timer = pin!(Timer::setup(never));
    let t = timer.as_ref();
    assert!(!t.mod_timer(jiffies() + msecs_to_jiffies(60)));
    assert!(
        t.mod_timer(jiffies() + msecs_to_jiffies(80)),
        "re-arm of a pending timer"
    );
    assert!(t.del_timer());
    assert!(!t.del_timer());
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(NEVER.load(Relaxed), 0, "a deleted timer fired");
}

#[test]
fn dropping_an_armed_timer_disarms_it() {
    {
        let timer = pin!(Timer::setup(never_dropped));
        timer.as_ref().mod_timer(jiffies() + msecs_to_jiffies(30));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(DROPPED_FIRED.load(Relaxed), 0);
}
static DROPPED_FIRED: AtomicU32 = AtomicU32::new(0);
fn never_dropped(_: &Timer) {
    DROPPED_FIRED.fetch_add(1, Relaxed);
}

// ---------------------------------------------------------------------------

static SLOW_STARTED: AtomicBool = AtomicBool::new(false);
static SLOW_FINISHED: AtomicBool = AtomicBool::new(false);

fn slow_callback(_: &Timer) {
    SLOW_STARTED.store(true, Release);
    let end = now_ns() + 200_000_000;
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
        wait_until(10, || SLOW_STARTED.load(Acquire)),
        "callback never started"
    );
    assert!(
        !SLOW_FINISHED.load(Acquire),
        "callback too fast for the test"
    );
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
        wait_until(10, || PERIODIC_RUNS.load(Relaxed) >= 5),
        "periodic timer stalled"
    );
    t.del_timer_sync();
    let n = PERIODIC_RUNS.load(Relaxed);
    assert!(!t.pending(), "still armed after del_timer_sync");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(PERIODIC_RUNS.load(Relaxed), n, "ran after del_timer_sync");
}

#[test]
fn jiffies_advance_while_timers_tick() {
    static KEEPALIVE: Timer = Timer::setup(never_keepalive);
    let t = Pin::static_ref(&KEEPALIVE);
    t.mod_timer(jiffies().wrapping_add(msecs_to_jiffies(5_000)));
    let a = jiffies();
    std::thread::sleep(Duration::from_millis(100));
    let b = jiffies();
    t.del_timer_sync();
    assert!(time_after(b, a), "jiffies stood still: {a} -> {b}");
    assert_eq!(irq::jiffies_to_msecs(irq::msecs_to_jiffies(100)), 100);
}
fn never_keepalive(_: &Timer) {}
