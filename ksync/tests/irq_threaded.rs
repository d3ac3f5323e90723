//! Threaded irq handlers (`request_threaded_irq`): the hard handler in hardirq
//! context, the thread function on the line's own thread in task context
//! (where it may sleep), `synchronize_irq` and `free_irq` waiting for both;
//! and lockdep's wait context of each half.
//!
//! Each test uses its own irq lines (tests run in parallel in one process).

use ksync::completion::Completion;
use ksync::irq::{self, IrqReturn};
use ksync::mutex::Mutex;
use ksync::sched;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::*};

static HARD_RUNS: AtomicU32 = AtomicU32::new(0);
static HARD_IN_HARDIRQ: AtomicBool = AtomicBool::new(false);
static THREAD_TID: AtomicI32 = AtomicI32::new(0);
static THREAD_IN_TASK: AtomicBool = AtomicBool::new(false);
static THREAD_NAME_OK: AtomicBool = AtomicBool::new(false);
static COUNTER: Mutex<u32> = Mutex::new(0);
static THREAD_RAN: Completion = Completion::new();

fn hard(_irq: u32) -> IrqReturn {
    HARD_IN_HARDIRQ.store(sched::in_hardirq(), Relaxed);
    HARD_RUNS.fetch_add(1, Relaxed);
    IrqReturn::WakeThread
}

fn thread_fn(irq: u32) -> IrqReturn {
    THREAD_TID.store(ksync::arch::gettid(), Relaxed);
    THREAD_IN_TASK.store(sched::in_task() && !sched::in_atomic(), Relaxed);
    let name = std::thread::current().name().map(str::to_owned);
    THREAD_NAME_OK.store(
        name.as_deref() == Some(&*format!("irq/{irq}-threaded")),
        Relaxed,
    );
    // Task context: a sleeping lock, and a real sleep, are fine here.
    let mut g = COUNTER.lock();
    ksync::sched::msleep(1);
    *g += 1;
    drop(g);
    THREAD_RAN.complete();
    IrqReturn::Handled
}

#[test]
fn thread_fn_runs_in_task_context_on_its_own_thread_and_may_sleep() {
    irq::request_threaded_irq(3, Some(hard), thread_fn, "threaded").unwrap();
    assert_eq!(irq::irq_name(3), Some("threaded"));
    let me = sched::current();
    irq::raise_irq(3, &me).unwrap(); // runs the hard handler here, now
    assert_eq!(HARD_RUNS.load(Relaxed), 1);
    assert!(HARD_IN_HARDIRQ.load(Relaxed));
    THREAD_RAN.wait();
    assert!(
        THREAD_IN_TASK.load(Relaxed),
        "thread fn not in task context"
    );
    assert!(
        THREAD_NAME_OK.load(Relaxed),
        "thread not named irq/3-threaded"
    );
    assert_ne!(THREAD_TID.load(Relaxed), ksync::arch::gettid());
    assert_eq!(*COUNTER.lock(), 1);
    irq::free_irq(3).unwrap();
    // Unbound: the line can be requested again, and raising it fails.
    assert_eq!(irq::raise_irq(3, &me), Err(ksync::Error::NotFound));
    irq::request_threaded_irq(3, None, thread_fn, "threaded").unwrap();
    irq::free_irq(3).unwrap();
}

static SLOW_STARTED: AtomicBool = AtomicBool::new(false);
static SLOW_GO: AtomicBool = AtomicBool::new(false);
static SLOW_DONE: AtomicU32 = AtomicU32::new(0);

fn slow_thread_fn(_irq: u32) -> IrqReturn {
    SLOW_STARTED.store(true, Release);
    while !SLOW_GO.load(Acquire) {
        std::thread::yield_now();
    }
    SLOW_DONE.fetch_add(1, Release);
    IrqReturn::Handled
}

#[test]
fn synchronize_irq_waits_for_the_thread_fn() {
    // No hard handler: every irq wakes the thread (irq_default_primary_handler).
    irq::request_threaded_irq(4, None, slow_thread_fn, "slow").unwrap();
    irq::raise_irq(4, &sched::current()).unwrap();
    while !SLOW_STARTED.load(Acquire) {
        std::thread::yield_now();
    }
    std::thread::scope(|s| {
        let sync = s.spawn(|| {
            irq::synchronize_irq(4);
            // The thread function finished before synchronize_irq returned.
            SLOW_DONE.load(Acquire)
        });
        // The thread function is still running: synchronize_irq cannot have
        // returned yet (it reads SLOW_DONE only after it returns).
        assert_eq!(SLOW_DONE.load(Acquire), 0);
        SLOW_GO.store(true, Release);
        assert_eq!(sync.join().unwrap(), 1);
    });
    irq::free_irq(4).unwrap();
}

#[cfg(feature = "lockdep")]
mod wait_context {
    use super::*;
    use ksync::lockdep::{self, LockClassKey, Mode, ReportKind};
    use ksync::spinlock::{RawSpinLock, SpinLock};

    static KS: LockClassKey = LockClassKey::new("thr_spin");
    static KR: LockClassKey = LockClassKey::new("thr_raw");
    static SPIN: SpinLock<u32> = SpinLock::with_class(0, "thr_spin", &KS);
    static RAW: RawSpinLock<u32> = RawSpinLock::with_class(0, "thr_raw", &KR);
    static DONE: Completion = Completion::new();

    fn hard_takes_spinlock(_irq: u32) -> IrqReturn {
        let mut r = RAW.lock(); // a raw spinlock: fine in any hardirq
        *r += 1;
        *SPIN.lock() += 1; // spinlock_t in a hardirq PREEMPT_RT does not thread
        IrqReturn::WakeThread
    }

    fn thread_takes_spinlock(_irq: u32) -> IrqReturn {
        // Task context: fine (irqs off, as the lock is also taken in hardirq).
        *SPIN.lock_irqsave() += 1;
        DONE.complete();
        IrqReturn::Handled
    }

    fn plain_takes_spinlock(_irq: u32) {
        *SPIN.lock() += 1; // request_irq: a handler PREEMPT_RT threads
    }

    #[test]
    fn spinlock_in_the_hard_handler_is_an_invalid_wait_context() {
        if lockdep::mode() != Mode::Warn {
            lockdep::set_mode(Mode::Warn);
        }
        std::thread::spawn(|| {
            irq::request_irq(5, plain_takes_spinlock, "plain").unwrap();
            irq::raise_irq(5, &sched::current()).unwrap();
            let rs = lockdep::take_reports();
            assert!(rs.is_empty(), "request_irq handler: {rs:#?}");
            irq::free_irq(5).unwrap();

            irq::request_threaded_irq(6, Some(hard_takes_spinlock), thread_takes_spinlock, "wctx")
                .unwrap();
            irq::raise_irq(6, &sched::current()).unwrap();
            DONE.wait();
            let rs = lockdep::take_reports();
            let kinds: Vec<ReportKind> = rs.iter().map(|r| r.kind).collect();
            assert_eq!(kinds, vec![ReportKind::InvalidWaitContext], "{rs:#?}");
            assert!(rs[0].involves("thr_spin"), "{:?}", rs[0].classes);
            // The held raw spinlock is named too: it is as strict as the irq.
            assert!(rs[0].involves("thr_raw"), "{:?}", rs[0].classes);
            assert!(rs[0].text.contains("Invalid wait context"), "{}", rs[0]);
            // The thread function's SpinLock, in task context: no report on
            // any thread.
            let rest = lockdep::take_reports_involving("thr_spin");
            assert!(rest.is_empty(), "{rest:#?}");
            irq::free_irq(6).unwrap();
            assert_eq!(*SPIN.lock(), 3);
            assert_eq!(*RAW.lock(), 1);
        })
        .join()
        .unwrap();
    }
}

static PANICS: AtomicU32 = AtomicU32::new(0);

fn panicking_thread_fn(_irq: u32) -> IrqReturn {
    PANICS.fetch_add(1, Release);
    panic!("a thread function that panics");
}

#[test]
fn a_panicking_thread_fn_is_served_and_the_line_can_be_freed() {
    irq::request_threaded_irq(7, None, panicking_thread_fn, "panicky").unwrap();
    for n in 1..=2 {
        irq::raise_irq(7, &sched::current()).unwrap();
        irq::synchronize_irq(7); // returns: the run counts as served
        assert_eq!(PANICS.load(Acquire), n);
    }
    irq::free_irq(7).unwrap();
}
