//! Hard interrupts as real signals: delivery to a chosen thread in hardirq
//! context, lazy masking with `local_irq_*`, nesting, counting, `free_irq`.
//!
//! Each test uses its own irq lines (tests run in parallel in one process).
//! Handlers are async-signal-safe: they only touch atomics.

use ksync::Error;
use ksync::arch::gettid;
use ksync::irq::{self, local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save};
use ksync::sched::{self, HARDIRQ_MASK, HARDIRQ_OFFSET, in_hardirq};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Polls `cond` until it holds or `secs` pass; a bug fails instead of hanging.
fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    cond()
}

// ---------------------------------------------------------------------------

static BUSY_HITS: AtomicU32 = AtomicU32::new(0);
static BUSY_TID: AtomicI32 = AtomicI32::new(0);
static BUSY_HARDIRQ: AtomicBool = AtomicBool::new(false);

fn busy_handler(_irq: u32) {
    BUSY_TID.store(gettid(), Relaxed);
    BUSY_HARDIRQ.store(
        in_hardirq() && sched::in_interrupt() && sched::in_atomic(),
        Relaxed,
    );
    BUSY_HITS.fetch_add(1, Release);
}

#[test]
fn irq_interrupts_a_busy_thread_in_hardirq_context() {
    irq::request_irq(1, busy_handler, "busy").unwrap();
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let spinning = AtomicBool::new(false);
    let spinning = &spinning;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let t = s.spawn(move || {
            tx.send(sched::current()).unwrap();
            let mut spins = 0u64;
            // A tight loop with no system calls: only a signal can run code here.
            while !stop.load(Relaxed) {
                spins = spins.wrapping_add(1);
                if spins == 1 {
                    spinning.store(true, Relaxed);
                }
                std::hint::spin_loop();
            }
            (gettid(), in_hardirq(), spins)
        });
        let task = rx.recv().unwrap();
        // Raised at the loop, not at the thread on its way there: the handler
        // then interrupts the loop however late the thread runs.
        if !wait_until(30, || spinning.load(Relaxed)) {
            stop.store(true, Relaxed); // or the scope would wait for it for ever
            panic!("the thread never ran");
        }
        irq::raise_irq(1, &task).unwrap();
        let ran = wait_until(10, || BUSY_HITS.load(Acquire) == 1);
        stop.store(true, Relaxed);
        let (tid, hardirq_after, spins) = t.join().unwrap();
        assert!(ran, "the handler never ran");
        assert_eq!(
            BUSY_TID.load(Relaxed),
            tid,
            "the handler ran on another thread"
        );
        assert!(
            BUSY_HARDIRQ.load(Relaxed),
            "in_hardirq() was false in the handler"
        );
        assert!(!hardirq_after, "hardirq count leaked into task context");
        assert!(spins > 0);
    });
    assert_eq!(irq::irq_count(1), 1);
    irq::free_irq(1).unwrap();
}

// ---------------------------------------------------------------------------

static DIS_HITS: AtomicU32 = AtomicU32::new(0);
fn dis_handler(_irq: u32) {
    DIS_HITS.fetch_add(1, Relaxed);
}

#[test]
fn irq_raised_while_disabled_runs_exactly_once_at_enable() {
    irq::request_irq(2, dis_handler, "disabled").unwrap();
    std::thread::spawn(|| {
        let me = sched::current();
        local_irq_disable();
        irq::raise_irq(2, &me).unwrap(); // the signal arrives now: held pending
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(DIS_HITS.load(Relaxed), 0, "handler ran with irqs disabled");
        assert!(irq::irqs_disabled());
        local_irq_enable();
        assert_eq!(DIS_HITS.load(Relaxed), 1, "handler did not run at enable");
        std::thread::sleep(Duration::from_millis(20));
        local_irq_disable();
        local_irq_enable();
        assert_eq!(DIS_HITS.load(Relaxed), 1, "handler ran twice");
    })
    .join()
    .unwrap();
    irq::free_irq(2).unwrap();
}

static NEST_HITS: AtomicU32 = AtomicU32::new(0);
fn nest_handler(_irq: u32) {
    NEST_HITS.fetch_add(1, Relaxed);
}

#[test]
fn save_restore_nests_and_only_the_outer_restore_runs_irqs() {
    irq::request_irq(3, nest_handler, "nest").unwrap();
    std::thread::spawn(|| {
        let me = sched::current();
        let outer = local_irq_save();
        let inner = local_irq_save();
        irq::raise_irq(3, &me).unwrap();
        irq::raise_irq(3, &me).unwrap();
        local_irq_restore(inner);
        assert!(irq::irqs_disabled());
        assert_eq!(NEST_HITS.load(Relaxed), 0, "inner restore ran irqs");
        local_irq_restore(outer);
        assert_eq!(
            NEST_HITS.load(Relaxed),
            2,
            "each raise runs once at the outer restore"
        );
    })
    .join()
    .unwrap();
    irq::free_irq(3).unwrap();
}

// ---------------------------------------------------------------------------

static STORM_RUNS: AtomicU64 = AtomicU64::new(0);
static STORM_IN_CRIT: AtomicBool = AtomicBool::new(false);
static STORM_VIOLATIONS: AtomicU64 = AtomicU64::new(0);
static STORM_TID: AtomicI32 = AtomicI32::new(0);

fn storm_handler(_irq: u32) {
    // Lazy masking: never inside the target's irq-disabled section.
    if STORM_IN_CRIT.load(Relaxed) || irq::irqs_disabled() || gettid() != STORM_TID.load(Relaxed) {
        STORM_VIOLATIONS.fetch_add(1, Relaxed);
    }
    STORM_RUNS.fetch_add(1, Relaxed);
}

#[test]
fn ten_thousand_irqs_at_a_toggling_thread_none_lost_none_duplicated() {
    const N: u64 = 10_000;
    irq::request_irq(4, storm_handler, "storm").unwrap();
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let toggles = std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let t = s.spawn(move || {
            STORM_TID.store(gettid(), Relaxed);
            tx.send(sched::current()).unwrap();
            let mut toggles = 0u64;
            let mut i = 0u64;
            while !stop.load(Relaxed) {
                i += 1;
                // Alternate the three ways of masking, with work inside.
                match i % 3 {
                    0 => {
                        let f = local_irq_save();
                        STORM_IN_CRIT.store(true, Relaxed);
                        for _ in 0..(i % 200) {
                            std::hint::spin_loop();
                        }
                        STORM_IN_CRIT.store(false, Relaxed);
                        local_irq_restore(f);
                    }
                    1 => {
                        local_irq_disable();
                        STORM_IN_CRIT.store(true, Relaxed);
                        let outer = local_irq_save();
                        std::hint::spin_loop();
                        local_irq_restore(outer);
                        STORM_IN_CRIT.store(false, Relaxed);
                        local_irq_enable();
                    }
                    _ => {
                        for _ in 0..50 {
                            std::hint::spin_loop();
                        }
                    }
                }
                toggles += 1;
            }
            toggles
        });
        let task = rx.recv().unwrap();
        let mut raised = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while raised < N && Instant::now() < deadline {
            match irq::raise_irq(4, &task) {
                Ok(()) => raised += 1,
                // The signal queue is full: the target is behind. Nothing was raised.
                Err(Error::WouldBlock) => std::thread::yield_now(),
                Err(e) => panic!("raise_irq: {e:?}"),
            }
        }
        let all = wait_until(30, || STORM_RUNS.load(Relaxed) == N);
        std::thread::sleep(Duration::from_millis(50)); // any duplicate would show now
        stop.store(true, Relaxed);
        let toggles = t.join().unwrap();
        assert_eq!(raised, N, "could not raise all irqs in time");
        assert!(
            all,
            "lost irqs: {} of {N} handled",
            STORM_RUNS.load(Relaxed)
        );
        toggles
    });
    assert_eq!(STORM_RUNS.load(Relaxed), N, "handler runs != raises");
    assert_eq!(irq::irq_count(4), N);
    assert_eq!(
        STORM_VIOLATIONS.load(Relaxed),
        0,
        "a handler ran inside an irq-disabled section"
    );
    assert!(toggles > 0);
    irq::free_irq(4).unwrap();
}

// ---------------------------------------------------------------------------

static OUTER_RUNS: AtomicU32 = AtomicU32::new(0);
static INNER_RUNS: AtomicU32 = AtomicU32::new(0);
static INNER_DEPTH: AtomicU32 = AtomicU32::new(0);
static INNER_SEEN_INSIDE_OUTER: AtomicBool = AtomicBool::new(false);

fn outer_handler(_irq: u32) {
    OUTER_RUNS.fetch_add(1, Relaxed);
    // Raise another line at ourselves: it nests inside this handler.
    let _ = irq::raise_irq_tid(6, gettid());
    let end = ksync_now() + 2_000_000_000;
    while INNER_RUNS.load(Relaxed) == 0 && ksync_now() < end {
        std::hint::spin_loop();
    }
    INNER_SEEN_INSIDE_OUTER.store(INNER_RUNS.load(Relaxed) == 1, Relaxed);
}

fn inner_handler(_irq: u32) {
    INNER_DEPTH.store(
        (sched::preempt_count() & HARDIRQ_MASK) / HARDIRQ_OFFSET,
        Relaxed,
    );
    INNER_RUNS.fetch_add(1, Relaxed);
}

/// A monotonic clock readable from a signal handler (`clock_gettime`).
fn ksync_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn irqs_of_other_lines_nest_in_a_handler() {
    irq::request_irq(5, outer_handler, "outer").unwrap();
    irq::request_irq(6, inner_handler, "inner").unwrap();
    std::thread::spawn(|| irq::raise_irq(5, &sched::current()).unwrap())
        .join()
        .unwrap();
    assert_eq!(OUTER_RUNS.load(Relaxed), 1);
    assert_eq!(INNER_RUNS.load(Relaxed), 1);
    assert!(
        INNER_SEEN_INSIDE_OUTER.load(Relaxed),
        "line 6 did not nest in line 5's handler"
    );
    assert_eq!(
        INNER_DEPTH.load(Relaxed),
        2,
        "nested handler should see hardirq depth 2"
    );
    irq::free_irq(5).unwrap();
    irq::free_irq(6).unwrap();
}

static SELF_RUNS: AtomicU32 = AtomicU32::new(0);
static SELF_ACTIVE: AtomicU32 = AtomicU32::new(0);
static SELF_REENTERED: AtomicBool = AtomicBool::new(false);

fn self_handler(irq_line: u32) {
    if SELF_ACTIVE.fetch_add(1, Relaxed) != 0 {
        SELF_REENTERED.store(true, Relaxed);
    }
    if SELF_RUNS.fetch_add(1, Relaxed) == 0 {
        // Raise our own line at ourselves: held until we return, then run.
        let _ = irq::raise_irq_tid(irq_line, gettid());
        let end = ksync_now() + 20_000_000;
        while ksync_now() < end {
            std::hint::spin_loop();
        }
    }
    SELF_ACTIVE.fetch_sub(1, Relaxed);
}

#[test]
fn a_line_is_never_reentered_on_its_thread() {
    irq::request_irq(7, self_handler, "self").unwrap();
    std::thread::spawn(|| {
        irq::raise_irq(7, &sched::current()).unwrap();
        // Both runs happened before raise_irq returned to task context.
        assert_eq!(SELF_RUNS.load(Relaxed), 2);
    })
    .join()
    .unwrap();
    assert!(!SELF_REENTERED.load(Relaxed), "handler re-entered itself");
    irq::free_irq(7).unwrap();
}

// ---------------------------------------------------------------------------

static SLOW_STARTED: AtomicBool = AtomicBool::new(false);
static SLOW_DONE: AtomicBool = AtomicBool::new(false);
fn slow_handler(_irq: u32) {
    SLOW_STARTED.store(true, Relaxed);
    let end = ksync_now() + 150_000_000;
    while ksync_now() < end {
        std::hint::spin_loop();
    }
    SLOW_DONE.store(true, Relaxed);
}

#[test]
fn free_irq_waits_for_a_running_handler_and_the_line_is_free_after() {
    irq::request_irq(8, slow_handler, "slow").unwrap();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(sched::current()).unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while !SLOW_DONE.load(Relaxed) && Instant::now() < end {
            std::hint::spin_loop();
        }
    });
    let task = rx.recv().unwrap();
    irq::raise_irq(8, &task).unwrap();
    assert!(wait_until(10, || SLOW_STARTED.load(Relaxed)));
    irq::free_irq(8).unwrap();
    assert!(
        SLOW_DONE.load(Relaxed),
        "free_irq returned while the handler ran"
    );
    t.join().unwrap();
    assert_eq!(irq::raise_irq(8, &task), Err(Error::NotFound));
    assert_eq!(irq::free_irq(8), Err(Error::NotFound));
}

fn nop(_irq: u32) {}

#[test]
fn request_irq_refuses_bad_and_busy_lines() {
    assert_eq!(
        irq::request_irq(irq::NR_IRQS as u32, nop, "x"),
        Err(Error::InvalidArgument)
    );
    assert_eq!(irq::request_irq(irq::TIMER_IRQ, nop, "x"), Err(Error::Busy));
    irq::request_irq(15, nop, "fifteen").unwrap();
    assert_eq!(irq::irq_name(15), Some("fifteen"));
    assert_eq!(irq::request_irq(15, nop, "again"), Err(Error::Busy));
    irq::free_irq(15).unwrap();
    assert_eq!(irq::irq_name(15), None);
    let sig = irq::irq_signal();
    assert!((libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig));
}

#[test]
fn synchronize_irq_of_a_bad_line_names_the_line_and_the_error() {
    let err = std::panic::catch_unwind(|| irq::synchronize_irq(999)).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(msg.contains("synchronize_irq(999)"), "{msg}");
    assert!(
        msg.contains(&Error::InvalidArgument.to_string()),
        "the message gives raise_irq's error: {msg}"
    );
}

// ---------------------------------------------------------------------------

static ORDER_LOG: AtomicU64 = AtomicU64::new(0);
fn order_handler(irq_line: u32) {
    // Appends the line's last digit: 11 -> 1, 12 -> 2, 13 -> 3.
    ORDER_LOG.store(
        ORDER_LOG.load(Relaxed) * 10 + (irq_line - 10) as u64,
        Relaxed,
    );
}

#[test]
fn pending_irqs_replay_oldest_line_first_once_per_raise() {
    for line in [11, 12, 13] {
        irq::request_irq(line, order_handler, "order").unwrap();
    }
    std::thread::spawn(|| {
        let me = sched::current();
        local_irq_disable();
        for line in [12, 11, 12, 13] {
            irq::raise_irq(line, &me).unwrap();
        }
        assert_eq!(ORDER_LOG.load(Relaxed), 0);
        local_irq_enable();
    })
    .join()
    .unwrap();
    // Line 12 became pending first: its two raises run back to back, then 11, 13.
    assert_eq!(ORDER_LOG.load(Relaxed), 2213);
    for line in [11, 12, 13] {
        irq::free_irq(line).unwrap();
    }
}

static WRITTEN: AtomicU64 = AtomicU64::new(0);
static SEEN: AtomicU64 = AtomicU64::new(0);
fn seen_handler(_irq: u32) {
    SEEN.store(WRITTEN.load(Relaxed), Relaxed);
}

#[test]
fn a_handler_sees_what_the_raiser_wrote_before_raising() {
    irq::request_irq(9, seen_handler, "seen").unwrap();
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let t = s.spawn(move || {
            tx.send(sched::current()).unwrap();
            while !stop.load(Relaxed) {
                std::hint::spin_loop();
            }
        });
        let task = rx.recv().unwrap();
        for i in 1..=200u64 {
            WRITTEN.store(i, Relaxed);
            irq::raise_irq(9, &task).unwrap();
            assert!(
                wait_until(10, || SEEN.load(Relaxed) >= i),
                "irq {i} not handled"
            );
            assert_eq!(SEEN.load(Relaxed), i);
        }
        stop.store(true, Relaxed);
        t.join().unwrap();
    });
    irq::free_irq(9).unwrap();
}
