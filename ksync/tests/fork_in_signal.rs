//! A `fork` from a signal handler (the program's own, not a ksync irq) that
//! interrupted its thread inside one of the locks ksync's fork handlers
//! take: the handlers must not wait for the section the handler
//! interrupted. Alone in its test binary: it installs a `SIGUSR1` handler.

use core::pin::Pin;
use ksync::irq::{Timer, jiffies};
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};
use std::time::{Duration, Instant};

/// Forks done by the handler, each child reaped.
static FORKS: AtomicU32 = AtomicU32::new(0);
/// Children that did not leave with status 0.
static BAD: AtomicU32 = AtomicU32::new(0);

extern "C" fn fork_handler(_: libc::c_int) {
    // SAFETY: errno is saved and restored around the calls below, which are
    // async-signal-safe (`fork` with the handlers under test, `_exit`,
    // `waitpid`).
    unsafe {
        let errno = *libc::__errno_location();
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        if pid > 0 {
            let mut status = 0;
            if libc::waitpid(pid, &mut status, 0) != pid
                || !libc::WIFEXITED(status)
                || libc::WEXITSTATUS(status) != 0
            {
                BAD.fetch_add(1, Relaxed);
            }
        } else {
            BAD.fetch_add(1, Relaxed);
        }
        FORKS.fetch_add(1, Release);
        *libc::__errno_location() = errno;
    }
}

fn install_handler() {
    // SAFETY: a zeroed sigaction with a plain handler and an empty mask;
    // `fork_handler` is async-signal-safe (above).
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = fork_handler as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &sa, core::ptr::null_mut()),
            0
        );
    }
}

static TIMER: Timer = Timer::setup(|_| {});

/// The busy thread's step: inside the timer base's lock much of the time.
fn timer_traffic() {
    let t = Pin::static_ref(&TIMER);
    t.mod_timer(jiffies() + 1000);
    t.del_timer();
}

/// Signals the thread running `work` in a loop 200 times, each time waiting
/// until its handler's fork is done: a handler that waits for the lock its
/// thread holds never finishes (the bound turns that into a failure).
///
/// The signals start after `work` ran once: its first run allocates (thread
/// locals, the daemon threads), and glibc's `fork` takes the allocator's
/// locks, so a fork from a handler that interrupted an allocation waits for
/// ever whatever ksync does. Later runs do not allocate.
fn forks_from_handlers_interrupting(work: fn()) {
    // One test at a time: the counters and the handler are shared.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_handler();
    static STOP: AtomicBool = AtomicBool::new(false);
    static READY: AtomicBool = AtomicBool::new(false);
    STOP.store(false, Relaxed);
    READY.store(false, Relaxed);
    let busy = std::thread::spawn(move || {
        work();
        READY.store(true, Release);
        while !STOP.load(Relaxed) {
            work();
        }
    });
    while !READY.load(Acquire) {
        std::thread::yield_now();
    }
    let pthread = busy.as_pthread_t();
    for _ in 0..200 {
        let before = FORKS.load(Acquire);
        // SAFETY: `busy` runs until STOP, so the pthread is alive.
        assert_eq!(unsafe { libc::pthread_kill(pthread, libc::SIGUSR1) }, 0);
        let end = Instant::now() + Duration::from_secs(20);
        while FORKS.load(Acquire) == before {
            assert!(
                Instant::now() < end,
                "a fork from the signal handler waits for ever (for a lock its thread holds)"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    STOP.store(true, Relaxed);
    busy.join().unwrap();
    assert_eq!(BAD.load(Relaxed), 0, "children that failed");
}

/// The irq subsystem's handlers: the thread is often inside the timer
/// base's lock when the signal comes.
#[test]
fn a_fork_from_a_signal_handler_inside_the_timer_base_goes_on() {
    forks_from_handlers_interrupting(timer_traffic);
}

/// The validator's step: inside its state's or reports' lock much of the
/// time.
#[cfg(feature = "lockdep")]
fn validator_traffic() {
    ksync::lockdep::reset();
    let _ = ksync::lockdep::take_reports();
}

/// Lockdep's handlers: the thread is often inside the validator's locks
/// when the signal comes.
#[cfg(feature = "lockdep")]
#[test]
fn a_fork_from_a_signal_handler_inside_the_validator_goes_on() {
    forks_from_handlers_interrupting(validator_traffic);
}
