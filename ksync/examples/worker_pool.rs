//! A worker pool bounded by a semaphore, that Ctrl-C shuts down cleanly.
//!
//! Four workers take jobs from a queue (a counting semaphore counts the queued
//! jobs, `down_interruptible` waits for one); at most two run a job at a time (a
//! second semaphore: the pool's slots, as a driver bounds its outstanding
//! requests). Every wait is interruptible. SIGINT is intercepted with
//! `sched::intercept_signals`: it lands on one thread, whose sleep ends with
//! `Err(Interrupted)` (`-EINTR`); that thread sends the signal on to every
//! other task, so each sleeper wakes with `-EINTR`, leaves its loop, and
//! the program joins them and exits with the count of jobs done.
//!
//! Press Ctrl-C to stop it; after 600 ms it sends SIGINT to itself, as Ctrl-C
//! would, so the example also ends on its own in CI.
//!
//! Run: `cargo run --release -p ksync --example worker_pool`.

use ksync::mutex::Mutex;
use ksync::sched::{self, Signal, Task};
use ksync::semaphore::Semaphore;
use ksync::{Error, irq};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
const AUTO_CTRL_C: Duration = Duration::from_millis(600);

static QUEUED: Semaphore = Semaphore::new(0); // jobs in the queue
static SLOTS: Semaphore = Semaphore::new(2); // jobs running at once
static QUEUE: Mutex<VecDeque<u64>> = Mutex::new(VecDeque::new());
static TASKS: Mutex<Vec<Task>> = Mutex::new(Vec::new());
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static DONE: AtomicU64 = AtomicU64::new(0);

/// Called by whichever thread saw the signal: pass it on to every task.
fn shut_down() {
    if !SHUTDOWN.swap(true, Ordering::AcqRel) {
        for t in TASKS.lock().iter() {
            t.send_signal(Signal::SIGINT); // ends its interruptible sleep: -EINTR
        }
    }
}

fn worker(id: usize) -> u64 {
    let mut mine = 0;
    loop {
        // Wait for a job, then for a slot: both sleeps end on a signal.
        let got = QUEUED.down_interruptible().and_then(|()| {
            SLOTS.down_interruptible().inspect_err(|_| QUEUED.up()) // give the job back
        });
        if let Err(e) = got {
            assert_eq!(e, Error::Interrupted);
            assert_eq!(e.errno(), -libc::EINTR);
            shut_down();
            println!("worker {id}: interrupted (-EINTR) after {mine} jobs");
            return mine;
        }
        let job = QUEUE.lock().pop_front().expect("one job per QUEUED unit");
        let left = irq::msleep_interruptible(1 + job % 3); // the work: a sleep
        SLOTS.up();
        if left == 0 {
            mine += 1;
            DONE.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() -> ksync::Result<()> {
    sched::intercept_signals(&[Signal::SIGINT])?; // SIGINT now means -EINTR
    TASKS.lock().push(sched::current());
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            std::thread::spawn(move || {
                TASKS.lock().push(sched::current());
                worker(id)
            })
        })
        .collect();
    while TASKS.lock().len() < WORKERS + 1 {
        std::thread::yield_now(); // every task registered before a signal can come
    }

    // The producer: a job every millisecond until Ctrl-C.
    let start = Instant::now();
    let mut next = 0u64;
    loop {
        if start.elapsed() > AUTO_CTRL_C && !SHUTDOWN.load(Ordering::Acquire) {
            // SAFETY: kill(2) with this process's id and a valid signal number.
            unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
        }
        QUEUE.lock().push_back(next);
        QUEUED.up();
        next += 1;
        let interrupted = irq::msleep_interruptible(1) > 0 || sched::signal_pending();
        if interrupted || SHUTDOWN.load(Ordering::Acquire) {
            shut_down();
            break;
        }
    }
    let per_worker: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    sched::flush_signals();
    sched::release_signals(&[Signal::SIGINT])?;
    println!(
        "shut down cleanly after {:?}: {} jobs queued, {} done ({per_worker:?} per worker), \
         {} left in the queue (a job whose sleep the signal cut short is not counted)",
        start.elapsed(),
        next,
        DONE.load(Ordering::Relaxed),
        QUEUE.lock().len()
    );
    assert_eq!(per_worker.iter().sum::<u64>(), DONE.load(Ordering::Relaxed));
    Ok(())
}
