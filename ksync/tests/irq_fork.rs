//! The irq subsystem across a fork without exec: `ksoftirqd`, the `ktimer`
//! tick and a threaded line's thread run again in the child, work that a
//! thread of the parent was doing when it forked does not keep the child
//! waiting, and a fork while another thread is inside the timer base leaves
//! the child's timers working. Alone in its test binary, so that the only
//! threads at each fork are the ones these tests made.
//!
//! A hang in a child becomes `SIGALRM`'s death (a failure, not a stuck test);
//! each check in a child leaves with its own exit code, so a failure says
//! which one.

use core::pin::Pin;
use ksync::irq::{self, IrqReturn, Tasklet, Timer, jiffies};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::*};
use std::time::{Duration, Instant};

/// The tests fork; one at a time, so that neither forks inside the other's
/// scenario.
static SERIAL: Mutex<()> = Mutex::new(());

/// The threaded line of the first test.
const LINE: u32 = 5;

static THREAD_RUNS: AtomicU32 = AtomicU32::new(0);
static THREAD_TID: AtomicI32 = AtomicI32::new(0);
/// While set, the thread function waits (in the parent: until the test lets
/// it go after the fork; in the child the waiting thread does not exist).
static THREAD_BLOCK: AtomicBool = AtomicBool::new(false);
static THREAD_BLOCKED: AtomicBool = AtomicBool::new(false);

fn thread_fn(_irq: u32) -> IrqReturn {
    THREAD_TID.store(ksync::arch::gettid(), Relaxed);
    if THREAD_BLOCK.load(Acquire) {
        THREAD_BLOCKED.store(true, Release);
        while THREAD_BLOCK.load(Acquire) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    THREAD_RUNS.fetch_add(1, Release);
    IrqReturn::Handled
}

static TICK_TIMER: Timer = Timer::setup(tick_fn);
static TICKS: AtomicU32 = AtomicU32::new(0);

fn tick_fn(_: &Timer) {
    TICKS.fetch_add(1, Release);
}

/// A callback that waits while [`STUCK_BLOCK`] is set: in the parent it is
/// running on `ktimer` at the fork.
static STUCK_TIMER: Timer = Timer::setup(stuck_fn);
static STUCK_BLOCK: AtomicBool = AtomicBool::new(false);
static STUCK_RUNNING: AtomicBool = AtomicBool::new(false);

fn stuck_fn(_: &Timer) {
    STUCK_RUNNING.store(true, Release);
    while STUCK_BLOCK.load(Acquire) {
        std::thread::sleep(Duration::from_micros(200));
    }
}

static TASKLET: Tasklet = Tasklet::new(tasklet_fn, 0);
static TASKLET_RUNS: AtomicU32 = AtomicU32::new(0);

fn tasklet_fn(_: usize) {
    TASKLET_RUNS.fetch_add(1, Release);
}

/// Waits for `cond`; the bound only guards a hang.
fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    cond()
}

fn pinned(t: &'static Timer) -> Pin<&'static Timer> {
    Pin::static_ref(t)
}

/// Forks; the child runs `check` under a 30 s alarm and leaves with its
/// code (0: passed). Returns the child's exit code (or 128 + its signal).
fn fork_and_check(check: fn() -> i32) -> i32 {
    // SAFETY: the child runs `check` (the irq API, which the fork handlers
    // prepared for this) and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: a hang becomes SIGALRM's death.
        unsafe { libc::alarm(30) };
        let code = check();
        // SAFETY: leaves without the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is ours.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// What the child of the first test checks. Exit codes: 0 passed; 2 the
/// line's thread function did not run in the child; 3 it ran on the forking
/// thread; 4 the timer did not fire; 5 the tasklet did not run.
/// `synchronize_irq` and `del_timer_sync` waiting for the parent's threads
/// would hang (the alarm: 142).
fn child_checks() -> i32 {
    let me = ksync::arch::gettid();
    // The thread function that was waiting in the parent is not running here.
    irq::synchronize_irq(LINE);
    // Its timer callback neither.
    pinned(&STUCK_TIMER).del_timer_sync();
    // The line's new thread serves a new irq.
    THREAD_BLOCK.store(false, Release);
    let runs = THREAD_RUNS.load(Acquire);
    irq::raise_irq(LINE, &ksync::sched::current()).unwrap();
    if !wait_until(|| THREAD_RUNS.load(Acquire) > runs) {
        return 2;
    }
    if THREAD_TID.load(Relaxed) == me {
        return 3;
    }
    // The tick runs: a timer fires.
    let ticks = TICKS.load(Acquire);
    pinned(&TICK_TIMER).mod_timer(jiffies() + 1);
    if !wait_until(|| TICKS.load(Acquire) > ticks) {
        return 4;
    }
    // `ksoftirqd` runs what task context hands it.
    let runs = TASKLET_RUNS.load(Acquire);
    TASKLET.schedule();
    if !wait_until(|| TASKLET_RUNS.load(Acquire) > runs) {
        return 5;
    }
    0
}

/// In the parent the three daemons run, and at the fork the line's thread
/// function and a timer callback are running (each waits, on its daemon
/// thread). In the child, neither keeps `synchronize_irq` or
/// `del_timer_sync` waiting, and a new irq, a new timer and a tasklet all run
/// on new daemon threads. The parent's go on once let go.
#[test]
fn irq_daemons_run_again_in_a_forked_child() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    irq::request_threaded_irq(LINE, None, thread_fn, "fork-test").unwrap();
    let me = ksync::sched::current();
    // Every daemon is up and working in the parent.
    irq::raise_irq(LINE, &me).unwrap();
    assert!(wait_until(|| THREAD_RUNS.load(Acquire) >= 1));
    pinned(&TICK_TIMER).mod_timer(jiffies() + 1);
    assert!(wait_until(|| TICKS.load(Acquire) >= 1));
    TASKLET.schedule();
    assert!(wait_until(|| TASKLET_RUNS.load(Acquire) >= 1));
    // A thread function and a timer callback running at the fork.
    THREAD_BLOCK.store(true, Release);
    irq::raise_irq(LINE, &me).unwrap();
    assert!(wait_until(|| THREAD_BLOCKED.load(Acquire)));
    STUCK_BLOCK.store(true, Release);
    pinned(&STUCK_TIMER).mod_timer(jiffies() + 1);
    assert!(wait_until(|| STUCK_RUNNING.load(Acquire)));

    let code = fork_and_check(child_checks);

    // The parent's daemons finish their work and go on.
    THREAD_BLOCK.store(false, Release);
    STUCK_BLOCK.store(false, Release);
    pinned(&STUCK_TIMER).del_timer_sync();
    irq::synchronize_irq(LINE);
    let runs = THREAD_RUNS.load(Acquire);
    irq::raise_irq(LINE, &me).unwrap();
    assert!(wait_until(|| THREAD_RUNS.load(Acquire) > runs));
    irq::free_irq(LINE).unwrap();
    assert_eq!(code, 0, "the child failed check {code} (see child_checks)");
}

static BUSY_TIMER: Timer = Timer::setup(tick_fn);
static CHILD_TIMER: Timer = Timer::setup(child_timer_fn);
static CHILD_FIRED: AtomicBool = AtomicBool::new(false);

fn child_timer_fn(_: &Timer) {
    CHILD_FIRED.store(true, Release);
}

/// In the child: a timer armed there fires, and the busy timer can be
/// disarmed. Exit code 6 if the timer did not fire.
fn child_timer_works() -> i32 {
    pinned(&BUSY_TIMER).del_timer_sync();
    pinned(&CHILD_TIMER).mod_timer(jiffies() + 1);
    if wait_until(|| CHILD_FIRED.load(Acquire)) {
        0
    } else {
        6
    }
}

/// Another thread arms and disarms a timer without pause (it is inside the
/// timer base's lock much of the time) while this one forks again and again:
/// every child can arm, fire and disarm timers (a child made while that
/// lock was held would wait for ever).
#[test]
fn a_fork_amid_timer_traffic_leaves_the_childs_timers_working() {
    forks_amid(
        || {
            pinned(&BUSY_TIMER).mod_timer(jiffies() + 1000);
            pinned(&BUSY_TIMER).del_timer();
        },
        20,
        child_timer_works,
    );
}

/// Runs `busy` in a loop on another thread while this one forks `forks`
/// times, each child running `check`; fails at the first child that does
/// not pass.
fn forks_amid(busy: fn(), forks: u32, check: fn() -> i32) {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static STOP: AtomicBool = AtomicBool::new(false);
    STOP.store(false, Relaxed);
    let thread = std::thread::spawn(move || {
        while !STOP.load(Relaxed) {
            busy();
        }
    });
    let mut failed = None;
    for i in 0..forks {
        let code = fork_and_check(check);
        if code != 0 {
            failed = Some((i, code));
            break;
        }
    }
    STOP.store(true, Relaxed);
    thread.join().unwrap();
    assert_eq!(failed, None, "(fork number, child's exit code)");
}

fn noop_handler(_irq: u32) {}

/// In the child: a line can be bound and freed, and the line the busy
/// thread was binding and freeing is either bound or free, never stuck
/// half-freed. Exit code 7 if binding fails, 8 if freeing fails, 9 if the
/// busy line is stuck.
fn child_binds_lines() -> i32 {
    if irq::request_irq(9, noop_handler, "fork-child").is_err() {
        return 7;
    }
    if irq::free_irq(9).is_err() {
        return 8;
    }
    match irq::free_irq(8) {
        Ok(()) | Err(ksync::Error::NotFound) => {}
        Err(_) => return 9,
    }
    match irq::request_irq(8, noop_handler, "fork-child") {
        Ok(()) => 0,
        Err(_) => 9,
    }
}

/// Another thread binds and frees a line without pause while this one
/// forks again and again: every child can bind and free lines, the busy
/// one included (a child made while the binding lock was held, or in the
/// middle of a `free_irq`, could not).
#[test]
fn a_fork_amid_request_and_free_irq_leaves_the_child_able_to_bind() {
    forks_amid(
        || {
            irq::request_irq(8, noop_handler, "fork-busy").unwrap();
            irq::free_irq(8).unwrap();
        },
        50,
        child_binds_lines,
    );
}

/// Queued on another thread's own list at the fork (that thread holds bhs
/// off, so it stays there).
static LOST_QUEUED: Tasklet = Tasklet::new(lost_fn, 0);
/// Running on another thread at the fork (its function waits while
/// [`LOST_BLOCK`] is set).
static LOST_RUNNING: Tasklet = Tasklet::new(lost_fn, 1);
static LOST_RUNS: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
static LOST_BLOCK: AtomicBool = AtomicBool::new(false);
static LOST_IN_FN: AtomicBool = AtomicBool::new(false);

fn lost_fn(which: usize) {
    if which == 1 {
        LOST_IN_FN.store(true, Release);
        while LOST_BLOCK.load(Acquire) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    LOST_RUNS[which].fetch_add(1, Release);
}

/// Exit codes: 0 passed; 11 the tasklet queued on a lost list still counts
/// as scheduled; 12 the one running on a lost thread still counts as
/// running; 13 and 14 scheduling them again did not run them. A `kill` that
/// waits for the lost thread hangs (the alarm: 142).
fn child_tasklets_are_idle() -> i32 {
    if LOST_QUEUED.is_scheduled() {
        return 11;
    }
    if LOST_RUNNING.is_running() {
        return 12;
    }
    LOST_RUNNING.unlock_wait();
    LOST_BLOCK.store(false, Release);
    for (i, t) in [&LOST_QUEUED, &LOST_RUNNING].into_iter().enumerate() {
        let runs = LOST_RUNS[i].load(Acquire);
        t.schedule();
        if !wait_until(|| LOST_RUNS[i].load(Acquire) > runs) {
            return 13 + i as i32;
        }
        t.kill();
    }
    0
}

/// A tasklet that another thread had queued on its own list, and one that
/// another thread was running, are idle in the child (the thread and its
/// list are gone): they can be scheduled, run, and be killed. In the parent
/// both go on once let go.
#[test]
fn tasklets_of_threads_the_child_lacks_are_idle_there() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let release = AtomicBool::new(false);
    let queued = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            ksync::ctx::local_bh_disable();
            LOST_QUEUED.schedule();
            queued.store(true, Release);
            while !release.load(Acquire) {
                std::thread::sleep(Duration::from_micros(200));
            }
            // Runs it here, on this thread.
            ksync::ctx::local_bh_enable();
        });
        LOST_BLOCK.store(true, Release);
        s.spawn(|| {
            ksync::ctx::local_bh_disable();
            LOST_RUNNING.schedule();
            // Runs it here; it waits while LOST_BLOCK is set.
            ksync::ctx::local_bh_enable();
        });
        assert!(wait_until(
            || queued.load(Acquire) && LOST_IN_FN.load(Acquire)
        ));
        assert!(LOST_QUEUED.is_scheduled() && LOST_RUNNING.is_running());

        let code = fork_and_check(child_tasklets_are_idle);

        release.store(true, Release);
        LOST_BLOCK.store(false, Release);
        assert!(wait_until(
            || LOST_RUNS[0].load(Acquire) >= 1 && LOST_RUNS[1].load(Acquire) >= 1
        ));
        assert_eq!(
            code, 0,
            "the child failed check {code} (see child_tasklets_are_idle)"
        );
    });
    LOST_QUEUED.kill();
    LOST_RUNNING.kill();
}

/// Queued on the forking thread's own list at the fork.
static KEPT: Tasklet = Tasklet::new(kept_fn, 0);
static KEPT_RUNS: AtomicU32 = AtomicU32::new(0);
/// Forks from its own function, on the forking thread.
static FORKER: Tasklet = Tasklet::new(forker_fn, 0);
static FORKER_CODE: AtomicI32 = AtomicI32::new(-1);

fn kept_fn(_: usize) {
    KEPT_RUNS.fetch_add(1, Release);
}

/// Exit codes: 21 the tasklet on this thread's list no longer counts as
/// scheduled; 22 enabling bhs did not run it.
fn child_keeps_own_list() -> i32 {
    if !KEPT.is_scheduled() {
        return 21;
    }
    let runs = KEPT_RUNS.load(Acquire);
    ksync::ctx::local_bh_enable();
    if KEPT_RUNS.load(Acquire) != runs + 1 {
        return 22;
    }
    0
}

/// Exit code 23: the tasklet whose function forked no longer counts as
/// running in the child, where that function still runs.
fn child_keeps_own_run() -> i32 {
    if !FORKER.is_running() {
        return 23;
    }
    0
}

fn forker_fn(_: usize) {
    FORKER_CODE.store(fork_and_check(child_keeps_own_run), Release);
}

/// What the forking thread had queued, or was running, stays so in the
/// child: a tasklet on its own list runs there when bhs are enabled, and one
/// whose function forked still counts as running.
#[test]
fn the_forking_threads_own_tasklets_stay_in_the_child() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    ksync::ctx::local_bh_disable();
    KEPT.schedule();
    let code = fork_and_check(child_keeps_own_list);
    ksync::ctx::local_bh_enable();
    assert_eq!(
        code, 0,
        "the child failed check {code} (see child_keeps_own_list)"
    );
    assert_eq!(KEPT_RUNS.load(Acquire), 1);

    ksync::ctx::local_bh_disable();
    FORKER.schedule();
    // Runs it here, and it forks.
    ksync::ctx::local_bh_enable();
    let code = FORKER_CODE.load(Acquire);
    assert_eq!(
        code, 0,
        "the child failed check {code} (see child_keeps_own_run)"
    );
}
