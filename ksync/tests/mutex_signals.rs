//! Integration tests of the sleeping locks through the public API only: real
//! signals, many threads, and the three primitives together.

use ksync::Error;
use ksync::condvar::CondVar;
use ksync::mutex::Mutex;
use ksync::rwsem::RwSemaphore;
use ksync::sched::{Signal, TaskState, current, flush_signals};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `mutex_lock_interruptible` returns -EINTR on `send_signal`, for each of
/// several waiters in turn, while the owner keeps the mutex throughout.
#[test]
fn several_interruptible_waiters_each_get_eintr() {
    let m = Arc::new(Mutex::new(0u32));
    let g = m.lock();
    let mut ts = Vec::new();
    for _ in 0..3 {
        let m = m.clone();
        let (tx, rx) = mpsc::channel();
        let h = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = m.lock_interruptible().map(|_| ());
            flush_signals();
            r
        });
        ts.push((rx.recv().unwrap(), h));
    }
    for (task, h) in ts {
        while task.state() != TaskState::Interruptible {
            std::thread::yield_now();
        }
        task.send_signal(Signal::SIGTERM);
        // The signal alone ends the wait (we hold the mutex). The bound only
        // turns a lost signal, which would hang, into a failure.
        let end = Instant::now() + Duration::from_secs(30);
        while !h.is_finished() {
            assert!(Instant::now() < end, "the signal did not end the wait");
            std::thread::yield_now();
        }
        let r = h.join().unwrap();
        assert_eq!(r, Err(Error::Interrupted));
        assert!(m.is_locked());
    }
    drop(g);
    assert!(!m.is_locked());
    *m.lock() += 1;
}

/// A bounded-buffer producer/consumer over Mutex + CondVar, with an RwSemaphore
/// counting what was consumed: every item arrives exactly once.
#[test]
fn producer_consumer_with_condvar() {
    struct Q {
        items: Mutex<Vec<u64>>,
        not_empty: CondVar,
        not_full: CondVar,
    }
    let q = Arc::new(Q {
        items: Mutex::new(Vec::new()),
        not_empty: CondVar::new(),
        not_full: CondVar::new(),
    });
    let sum = Arc::new(RwSemaphore::new(0u64));
    let n_items = 4 * 2000u64;
    std::thread::scope(|s| {
        for p in 0..4u64 {
            let q = q.clone();
            s.spawn(move || {
                for i in 0..2000u64 {
                    let mut g = q.items.lock();
                    q.not_full.wait_while(&mut g, |v| v.len() >= 8);
                    g.push(p * 2000 + i);
                    drop(g);
                    q.not_empty.notify_one();
                }
            });
        }
        for _ in 0..4 {
            let (q, sum) = (q.clone(), sum.clone());
            s.spawn(move || {
                for _ in 0..2000 {
                    let mut g = q.items.lock();
                    q.not_empty.wait_while(&mut g, |v| v.is_empty());
                    let x = g.pop().unwrap();
                    drop(g);
                    q.not_full.notify_one();
                    *sum.write() += x;
                }
            });
        }
    });
    assert_eq!(*sum.read(), n_items * (n_items - 1) / 2);
}
