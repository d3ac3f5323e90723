//! Real signals (pthread_kill) interrupt sleeps in ksync primitives once
//! intercepted with `sched::intercept_signals`. A separate test binary: it
//! changes process-wide signal dispositions.

use ksync::Error;
use ksync::completion::Completion;
use ksync::sched::{self, Signal, Task, TaskState, WaitQueue};
use ksync::semaphore::Semaphore;
use std::sync::{Arc, mpsc};

fn spawn_task<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> (Task, std::thread::JoinHandle<R>) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        tx.send(sched::current()).unwrap();
        f()
    });
    (rx.recv().unwrap(), h)
}

fn kill_when_asleep(t: &Task, sig: libc::c_int) {
    while t.state() == TaskState::Running {
        std::thread::yield_now();
    }
    // SAFETY: the thread is alive (it is asleep, we join it afterwards).
    assert_eq!(unsafe { libc::pthread_kill(t.pthread(), sig) }, 0);
}

#[test]
fn pthread_kill_interrupts_ksync_sleeps() {
    sched::intercept_signals(&[Signal::SIGUSR1, Signal::SIGINT, Signal::SIGTERM]).unwrap();
    assert_eq!(
        sched::intercept_signals(&[Signal::SIGKILL]),
        Err(Error::InvalidArgument)
    );

    // A semaphore down.
    let sem = Arc::new(Semaphore::new(0));
    let s2 = sem.clone();
    let (t, h) = spawn_task(move || (s2.down_interruptible(), sched::flush_signals()));
    kill_when_asleep(&t, libc::SIGUSR1);
    let (r, pending) = h.join().unwrap();
    assert_eq!(r, Err(Error::Interrupted));
    assert!(pending.contains(Signal::SIGUSR1));
    assert_eq!(sem.count(), 0);

    // A wait queue.
    let wq = Arc::new(WaitQueue::new());
    let w2 = wq.clone();
    let (t, h) = spawn_task(move || {
        (
            w2.wait_event_interruptible(|| false),
            sched::flush_signals(),
        )
    });
    kill_when_asleep(&t, libc::SIGINT);
    let (r, pending) = h.join().unwrap();
    assert_eq!(r, Err(Error::Interrupted));
    assert!(pending.contains(Signal::SIGINT));
    assert!(!wq.has_sleeper());

    // A completion; an uninterruptible wait is not ended by the signal.
    let c = Arc::new(Completion::new());
    let c2 = c.clone();
    let (t, h) = spawn_task(move || {
        let r = c2.wait_interruptible();
        let p = sched::flush_signals();
        c2.wait(); // the signal above is flushed; this one needs a complete()
        (r, p)
    });
    kill_when_asleep(&t, libc::SIGTERM);
    while !c.try_wait() && !h.is_finished() && t.state() != TaskState::Uninterruptible {
        std::thread::yield_now();
    }
    // SAFETY: the thread is alive until joined.
    unsafe { libc::pthread_kill(t.pthread(), libc::SIGUSR1) };
    c.complete();
    let (r, pending) = h.join().unwrap();
    assert_eq!(r, Err(Error::Interrupted));
    assert!(pending.contains(Signal::SIGTERM));

    sched::release_signals(&[Signal::SIGUSR1, Signal::SIGINT, Signal::SIGTERM]).unwrap();
}
