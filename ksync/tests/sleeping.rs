//! Integration and stress tests for the sleeping primitives: semaphores,
//! completions, wait queues and the BKL, with signals and timeouts.

use ksync::Error;
use ksync::bkl;
use ksync::completion::Completion;
use ksync::sched::{self, Signal, Task, TaskState, WaitQueue};
use ksync::semaphore::Semaphore;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Spawns `f` on a thread and returns its task once the thread is running.
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

fn wait_asleep(t: &Task) {
    while t.state() == TaskState::Running {
        std::thread::yield_now();
    }
}

#[test]
fn down_interruptible_returns_eintr_on_signal_and_count_is_unchanged() {
    let sem = Arc::new(Semaphore::new(0));
    let s2 = sem.clone();
    let (task, h) = spawn_task(move || {
        let r = s2.down_interruptible();
        let pending = sched::flush_signals();
        (r, Instant::now(), pending)
    });
    wait_asleep(&task);
    let sent = Instant::now();
    task.send_signal(Signal::SIGUSR1);
    let (r, woke, pending) = h.join().unwrap();
    assert_eq!(r, Err(Error::Interrupted));
    assert_eq!(r.unwrap_err().errno(), -libc::EINTR);
    assert!(pending.contains(Signal::SIGUSR1));
    eprintln!(
        "down_interruptible returned {:?} after the signal",
        woke - sent
    );
    assert_eq!(sem.count(), 0);
    sem.up();
    assert_eq!(sem.count(), 1);
}

#[test]
fn down_killable_ignores_ordinary_signals_but_not_sigkill() {
    let sem = Arc::new(Semaphore::new(0));
    let s2 = sem.clone();
    let (task, h) = spawn_task(move || {
        let r = s2.down_killable();
        sched::flush_signals();
        r
    });
    wait_asleep(&task);
    task.send_signal(Signal::SIGTERM);
    // A chance for a wrong wake-up to end the wait; nothing below depends on
    // its length: only SIGKILL can end the wait (the count stays 0).
    std::thread::sleep(Duration::from_millis(5));
    assert!(!h.is_finished(), "SIGTERM ended a killable wait");
    wait_asleep(&task);
    task.send_signal(Signal::SIGKILL);
    assert_eq!(h.join().unwrap(), Err(Error::Killed));
    assert_eq!(sem.count(), 0);
}

#[test]
fn down_timeout_fails_after_the_deadline_and_not_before() {
    let sem = Semaphore::new(0);
    for ms in [1u64, 10, 30] {
        let t = Duration::from_millis(ms);
        let start = Instant::now();
        let r = sem.down_timeout(t);
        let el = start.elapsed();
        assert_eq!(r, Err(Error::TimedOut));
        assert_eq!(r.unwrap_err().errno(), -libc::ETIME);
        assert!(el >= t, "timed out after {el:?}, before {t:?}");
    }
    assert_eq!(sem.count(), 0);
    // With a unit available it succeeds at once.
    sem.up();
    assert_eq!(sem.down_timeout(Duration::ZERO), Ok(()));
}

#[test]
fn ten_thousand_up_down_pairs_on_eight_threads_keep_the_count() {
    for initial in [1usize, 3] {
        let sem = Arc::new(Semaphore::new(initial));
        let inside = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (sem, inside) = (sem.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 / 8 {
                        sem.down();
                        let n = inside.fetch_add(1, Ordering::Relaxed);
                        assert!(
                            n < initial,
                            "{} holders of a {initial}-unit semaphore",
                            n + 1
                        );
                        inside.fetch_sub(1, Ordering::Relaxed);
                        sem.up();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(sem.count(), initial);
    }
}

#[test]
fn cancelled_downs_racing_with_ups_lose_and_duplicate_nothing() {
    // 16 threads: some take units with short timeouts, some interruptibly while a
    // signaller keeps interrupting them, some uninterruptibly; every unit taken is
    // given back. Hand-offs race with timeouts and signals throughout.
    const INITIAL: usize = 2;
    let sem = Arc::new(Semaphore::new(INITIAL));
    let inside = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Units taken so far, by all threads.
    let taken = Arc::new(AtomicUsize::new(0));
    let (ttx, trx) = mpsc::channel::<Task>();
    let mut hs = Vec::new();
    for i in 0..16 {
        let (sem, inside, stop, ttx, taken) = (
            sem.clone(),
            inside.clone(),
            stop.clone(),
            ttx.clone(),
            taken.clone(),
        );
        hs.push(std::thread::spawn(move || {
            ttx.send(sched::current()).unwrap();
            let (mut got, mut failed) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let r = match i % 3 {
                    0 => sem.down_timeout(Duration::from_micros(50)),
                    1 => {
                        let r = sem.down_interruptible();
                        sched::flush_signals();
                        r
                    }
                    _ => {
                        sem.down();
                        Ok(())
                    }
                };
                match r {
                    Ok(()) => {
                        // SeqCst (with `stop`'s store and load): a thread that
                        // finds more than INITIAL inside shares the section
                        // with one let in by the extra units added after
                        // `stop`, so it sees `stop` — only then may it.
                        let n = inside.fetch_add(1, Ordering::SeqCst);
                        assert!(n < INITIAL || stop.load(Ordering::SeqCst));
                        std::hint::spin_loop();
                        inside.fetch_sub(1, Ordering::Relaxed);
                        sem.up();
                        got += 1;
                        taken.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        assert!(matches!(e, Error::TimedOut | Error::Interrupted), "{e:?}");
                        failed += 1;
                    }
                }
            }
            (got, failed)
        }));
    }
    drop(ttx);
    let tasks: Vec<Task> = trx.iter().take(16).collect();
    let start = Instant::now();
    // 700 ms, and on until a unit was taken, however loaded the machine (30 s
    // at most: a hang guard, which the `total` check below then reports).
    while start.elapsed() < Duration::from_millis(700)
        || (taken.load(Ordering::Relaxed) == 0 && start.elapsed() < Duration::from_secs(30))
    {
        for (i, t) in tasks.iter().enumerate() {
            if i % 3 == 1 {
                t.send_signal(Signal::SIGUSR2);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    stop.store(true, Ordering::SeqCst);
    // Free any uninterruptible sleepers left: add units, then take them back
    // (several may then be inside at once: see the check above).
    for _ in 0..16 {
        sem.up();
    }
    let mut total = 0;
    for h in hs {
        total += h.join().unwrap().0;
    }
    assert!(total > 0, "no unit was taken in 30 s");
    for _ in 0..16 {
        assert!(sem.try_down());
    }
    assert_eq!(sem.count(), INITIAL);
}

#[test]
fn bkl_holder_sleeping_in_down_lets_others_take_the_bkl() {
    let sem = Arc::new(Semaphore::new(0));
    let s2 = sem.clone();
    let (task, h) = spawn_task(move || {
        bkl::lock_kernel();
        bkl::lock_kernel();
        s2.down(); // sleeps holding the BKL at depth 2
        let back = (bkl::kernel_locked(), bkl::depth());
        bkl::unlock_kernel();
        bkl::unlock_kernel();
        back
    });
    wait_asleep(&task);
    // The sleeper released the BKL: we can take it (it would deadlock otherwise).
    bkl::lock_kernel();
    assert!(bkl::kernel_locked());
    sem.up(); // the sleeper wakes, but must wait for the BKL
    std::thread::sleep(Duration::from_millis(5));
    assert!(!h.is_finished());
    bkl::unlock_kernel();
    assert_eq!(h.join().unwrap(), (true, 2));
    assert!(!bkl::kernel_locked());
}

#[test]
fn completion_stress_sixteen_threads() {
    // 8 producers complete(), 8 consumers wait(): every completion is consumed once.
    let c = Arc::new(Completion::new());
    const PER: usize = 1000;
    let hs: Vec<_> = (0..16)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || {
                for _ in 0..PER {
                    if i % 2 == 0 {
                        c.complete();
                    } else {
                        c.wait();
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(!c.try_wait());
}

#[test]
fn completion_freed_by_the_waiter_at_wake_up() {
    // SPEC §12: each round, a waiter owns the completion (Box) and frees it as soon
    // as wait() returns; the completer runs on another thread.
    struct SendPtr(*const Completion);
    // SAFETY: the pointer is only dereferenced while the box is alive — the
    // property under test.
    unsafe impl Send for SendPtr {}
    for _ in 0..3000 {
        let b = Box::new(Completion::new());
        let p = SendPtr(&*b);
        let t = std::thread::spawn(move || {
            let p = p;
            // SAFETY: complete() must not touch the completion after handing it to
            // the waiter, who frees it right after.
            unsafe { (*p.0).complete() };
        });
        b.wait();
        drop(b);
        t.join().unwrap();
    }
}

#[test]
fn wait_queue_stress_sixteen_threads_mixed_wakeups() {
    // Counter-based: producers bump a counter and wake (alternating wake_up and
    // wake_up_all); consumers wait for the counter to pass their target.
    let wq = Arc::new(WaitQueue::new());
    let n = Arc::new(AtomicUsize::new(0));
    const ROUNDS: usize = 500;
    let hs: Vec<_> = (0..16)
        .map(|i| {
            let (wq, n) = (wq.clone(), n.clone());
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    if i < 4 {
                        n.fetch_add(1, Ordering::Release);
                        if r % 2 == 0 {
                            wq.wake_up_all();
                        } else {
                            wq.wake_up();
                        }
                    } else {
                        let target = r * 4 / 2;
                        wq.wait_event(|| n.load(Ordering::Acquire) >= target);
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(n.load(Ordering::Relaxed), 4 * ROUNDS);
    assert!(!wq.has_sleeper());
}
