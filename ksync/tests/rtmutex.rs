//! Priority inheritance shown, not assumed: real-time threads (SCHED_FIFO) on
//! one CPU — a low-priority holder, a medium-priority thread that spins, a
//! high-priority waiter. With [`RtMutex`] the waiter gets the lock at once (the
//! kernel lends its priority to the holder, through a chain of holders too);
//! with ksync's plain [`Mutex`] it waits for the spinner: the inversion.
//!
//! These need real-time scheduling (root, or `CAP_SYS_NICE`, in a cgroup with
//! real-time runtime): CI runs as root, and a refusal FAILS with a message
//! that says so, it does not skip. Every spin is bounded by a deadline and
//! every thread drops back to `SCHED_OTHER` before it ends, so a failure
//! cannot stall the machine for long. The threads are ordered by state (flags,
//! the waiter's `Task::state()`), never by sleeping; the only timing is the
//! inversion measured, which is the behaviour under test.
//!
//! # Why the margins are robust
//! All three threads are pinned to one CPU, where SCHED_FIFO runs the highest
//! runnable priority and nothing else.
//! - Without inheritance the holder (prio 10) cannot run while the spinner
//!   (prio 20) spins. The spinner starts its [`SPIN`] clock only after the
//!   waiter (prio 30) blocked — it cannot run before that, the waiter
//!   preempted it — so the waiter's wait is at least `SPIN` by construction,
//!   whatever the machine's speed. (Real-time throttling, if it cuts in,
//!   throttles the holder too: it only lengthens the wait.)
//! - With inheritance the holder runs at the waiter's priority the moment the
//!   waiter blocks, above the spinner: the wait is two system calls and two
//!   context switches, microseconds. The bound asserted is `SPIN / 4` (50 ms):
//!   a wait that long means the spinner ran in between, which is the failure
//!   under test; a slow or loaded machine (SCHED_OTHER load cannot preempt
//!   these threads) stays far below it.

use ksync::arch::sched::{Policy, policy, set_policy};
use ksync::lock::Guard;
use ksync::mutex::Mutex;
use ksync::rtmutex::{RawRtMutex, RtMutex};
use ksync::sched::{Task, TaskState, current};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the medium-priority thread spins once the waiter has blocked.
const SPIN: Duration = Duration::from_millis(200);

/// The bound on every spin and wait of these tests: it only turns a hang into
/// a failure.
const BOUND: Duration = Duration::from_secs(10);

/// The tests of this file use one CPU at real-time priority: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The CPU the real-time threads share, and the one the test thread moves to
/// so that it is never behind them.
fn cpus() -> (usize, usize) {
    let n = ksync::arch::online_cpus();
    assert!(
        n >= 2,
        "the priority-inheritance tests need 2 CPUs: one for the real-time threads, one for the test"
    );
    (n - 1, 0)
}

/// Runs the calling thread at SCHED_FIFO `prio` on `cpu` until dropped. The
/// policy is set before the affinity: a SCHED_OTHER thread moved onto a CPU
/// where a real-time thread spins would never run again to raise itself.
struct RealTime;

impl RealTime {
    fn enter(prio: u8, cpu: usize) -> RealTime {
        if let Err(e) = set_policy(Policy::Fifo(prio)) {
            panic!(
                "real-time scheduling refused (sched_setscheduler SCHED_FIFO {prio}: {e}): \
                 these tests need root or CAP_SYS_NICE, RLIMIT_RTPRIO, and a cgroup with \
                 real-time runtime; CI runs them as root"
            );
        }
        let rt = RealTime;
        ksync::arch::set_affinity(cpu).expect("pin to the shared CPU");
        assert_eq!(policy(), Policy::Fifo(prio));
        rt
    }
}

impl Drop for RealTime {
    fn drop(&mut self) {
        let _ = set_policy(Policy::Other);
    }
}

/// Spins until `cond`, at most until `end`; whether `cond` came true.
fn spin_until(end: Instant, cond: impl Fn() -> bool) -> bool {
    while !cond() {
        if Instant::now() >= end {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// Waits (yielding: the test thread is SCHED_OTHER on another CPU) until `cond`.
fn wait_for(what: &str, end: Instant, cond: impl Fn() -> bool) {
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// A sleeping lock under test: the same body runs over [`RtMutex`] and [`Mutex`].
trait SleepLock {
    type L: Sync;
    fn make() -> Self::L;
    fn hold(l: &Self::L) -> impl Sized + '_;
}

struct Pi;
impl SleepLock for Pi {
    type L = RtMutex<()>;
    #[track_caller]
    fn make() -> RtMutex<()> {
        RtMutex::new(())
    }
    fn hold(l: &RtMutex<()>) -> impl Sized + '_ {
        let g: Guard<'_, (), RawRtMutex> = l.lock();
        g
    }
}

struct NoPi;
impl SleepLock for NoPi {
    type L = Mutex<()>;
    #[track_caller]
    fn make() -> Mutex<()> {
        Mutex::new(())
    }
    fn hold(l: &Mutex<()>) -> impl Sized + '_ {
        l.lock()
    }
}

/// The flags that order the threads.
#[derive(Default)]
struct Flags {
    /// The low thread holds its lock.
    held: AtomicBool,
    /// The medium thread runs on the shared CPU.
    spinning: AtomicBool,
    /// The high thread is about to block: the low one may release, the medium
    /// one starts its clock when it next runs.
    release: AtomicBool,
    /// The high thread got the lock: the medium one may stop.
    done: AtomicBool,
}

/// The low-priority holder: holds `lock` until told to release.
fn low<T>(f: &Flags, end: Instant, cpu: usize, lock: impl FnOnce() -> T) {
    let _rt = RealTime::enter(10, cpu);
    let g = lock();
    f.held.store(true, Ordering::SeqCst);
    spin_until(end, || f.release.load(Ordering::SeqCst));
    drop(g);
}

/// The medium-priority spinner: runs on the shared CPU, and once the waiter
/// has blocked spins [`SPIN`] more (unless the waiter is already done).
fn medium(f: &Flags, end: Instant, cpu: usize) {
    let _rt = RealTime::enter(20, cpu);
    f.spinning.store(true, Ordering::SeqCst);
    spin_until(end, || f.release.load(Ordering::SeqCst));
    let start = Instant::now();
    spin_until(end, || {
        f.done.load(Ordering::SeqCst) || start.elapsed() >= SPIN
    });
}

/// The high-priority waiter: how long it waited for `lock`.
fn high<T>(f: &Flags, cpu: usize, lock: impl FnOnce() -> T) -> Duration {
    let _rt = RealTime::enter(30, cpu);
    f.release.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let g = lock();
    let waited = t0.elapsed();
    f.done.store(true, Ordering::SeqCst);
    drop(g);
    waited
}

/// One lock: low holds it, medium spins, high waits for it.
fn one_lock<L: SleepLock>() -> Duration {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (rt_cpu, test_cpu) = cpus();
    ksync::arch::set_affinity(test_cpu).expect("move the test thread off the shared CPU");
    let end = Instant::now() + BOUND;
    let lock = L::make();
    let f = Flags::default();
    std::thread::scope(|s| {
        s.spawn(|| low(&f, end, rt_cpu, || L::hold(&lock)));
        wait_for("the holder", end, || f.held.load(Ordering::SeqCst));
        s.spawn(|| medium(&f, end, rt_cpu));
        wait_for("the spinner", end, || f.spinning.load(Ordering::SeqCst));
        s.spawn(|| high(&f, rt_cpu, || L::hold(&lock)))
            .join()
            .unwrap()
    })
}

/// A chain of two locks: low holds B; mid (prio 15) holds A and blocks on B;
/// high blocks on A. With inheritance high's priority reaches low through mid.
fn chain<L: SleepLock>() -> Duration {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (rt_cpu, test_cpu) = cpus();
    ksync::arch::set_affinity(test_cpu).expect("move the test thread off the shared CPU");
    let end = Instant::now() + BOUND;
    let (a, b) = (L::make(), L::make());
    let f = Flags::default();
    std::thread::scope(|s| {
        s.spawn(|| low(&f, end, rt_cpu, || L::hold(&b)));
        wait_for("the holder of B", end, || f.held.load(Ordering::SeqCst));
        let (tx, rx) = mpsc::channel::<Task>();
        let (a, b) = (&a, &b);
        s.spawn(move || {
            let _rt = RealTime::enter(15, rt_cpu);
            let ga = L::hold(a);
            tx.send(current()).unwrap();
            let gb = L::hold(b); // blocks: low holds B
            drop(gb);
            drop(ga);
        });
        let mid = rx.recv().unwrap();
        wait_for("the holder of A to block on B", end, || {
            mid.state() == TaskState::Uninterruptible
        });
        s.spawn(|| medium(&f, end, rt_cpu));
        wait_for("the spinner", end, || f.spinning.load(Ordering::SeqCst));
        s.spawn(|| high(&f, rt_cpu, || L::hold(a))).join().unwrap()
    })
}

fn assert_inherited(waited: Duration, what: &str) {
    eprintln!("{what}: the high-priority waiter waited {waited:?}");
    assert!(
        waited < SPIN / 4,
        "{what}: the high-priority waiter waited {waited:?} (the spinner ran for {SPIN:?}): \
         no priority inheritance"
    );
}

fn assert_inverted(waited: Duration, what: &str) {
    eprintln!("{what}: the high-priority waiter waited {waited:?}");
    assert!(
        waited >= SPIN * 9 / 10,
        "{what}: the high-priority waiter waited only {waited:?}, though the holder could not \
         run for {SPIN:?}: the test does not show the inversion it is built on"
    );
}

#[test]
fn rt_mutex_lends_priority_to_the_holder() {
    assert_inherited(one_lock::<Pi>(), "RtMutex");
}

#[test]
fn mutex_without_inheritance_shows_the_inversion() {
    assert_inverted(one_lock::<NoPi>(), "Mutex");
}

#[test]
fn rt_mutex_lends_priority_along_a_chain_of_two_locks() {
    assert_inherited(chain::<Pi>(), "RtMutex chain");
}

#[test]
fn mutex_chain_without_inheritance_shows_the_inversion() {
    assert_inverted(chain::<NoPi>(), "Mutex chain");
}

/// The kernel walks the PI chain and reports an ABBA cycle of rt_mutexes as
/// `-EDEADLK` to the thread that would close it, instead of hanging both.
#[test]
fn abba_deadlock_is_reported_as_edeadlk() {
    let (a, b) = (RtMutex::new(()), RtMutex::new(()));
    let (tx, rx) = mpsc::channel::<Task>();
    std::thread::scope(|s| {
        let ga = a.lock();
        let t = s.spawn(|| {
            let _gb = b.lock();
            tx.send(current()).unwrap();
            a.lock_checked().map(|_| ()) // waits for us
        });
        let other = rx.recv().unwrap();
        let end = Instant::now() + BOUND;
        wait_for("the other thread to block on A", end, || {
            other.state() == TaskState::Uninterruptible && a.raw().has_waiters()
        });
        // Closing the cycle: the kernel refuses.
        assert_eq!(b.lock_checked().err(), Some(ksync::Error::Deadlock));
        drop(ga);
        assert_eq!(t.join().unwrap(), Ok(()));
    });
}

/// The guard type is the generic one: an RtMutex guard is a `Guard` over
/// `RawRtMutex`.
#[test]
fn the_guard_is_the_generic_guard() {
    let m = RtMutex::new(5);
    let g: Guard<'_, i32, RawRtMutex> = m.lock();
    assert_eq!(*g, 5);
}
