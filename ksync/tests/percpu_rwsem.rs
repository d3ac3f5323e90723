//! `PercpuRwSemaphore` through the public API: many readers and writers at
//! once, nesting past a waiting writer, and a writer that sleeps while readers
//! hold.

use ksync::percpu_rwsem::PercpuRwSemaphore;
use ksync::sched::{Task, TaskState, current};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Waits until `cond`; the bound only turns a hang into a failure.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// Readers never see a half-done write; every writer gets in while readers
/// keep reading (writers are preferred), and readers nest on the way.
#[test]
fn readers_and_writers_under_load() {
    const WRITES: u64 = 200;
    let s = PercpuRwSemaphore::new([0u64; 4]);
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let g = s.read();
                    assert!(g.iter().all(|&v| v == g[0]), "torn write seen: {:?}", *g);
                    let inner = s.read(); // nests, even past a waiting writer
                    assert_eq!(inner[3], g[3]);
                    drop(inner);
                    drop(g);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let writers: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    for _ in 0..WRITES / 2 {
                        let mut g = s.write();
                        for v in g.iter_mut() {
                            *v += 1;
                            std::hint::black_box(&*v);
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(*s.read(), [WRITES; 4]);
    assert_eq!(s.raw().readers(), 0);
    assert!(reads.load(Ordering::Relaxed) > 0);
}

/// Readers on different threads share the lock; a writer arriving sleeps
/// (through `sched::sleep`: its task state says so) until the last reader
/// leaves, and readers arriving after it wait for it.
#[test]
fn a_writer_sleeps_until_the_last_reader_leaves() {
    let s = &PercpuRwSemaphore::new(0u32);
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (task_tx, task_rx) = mpsc::channel::<Task>();
    let (wtx, wrx) = mpsc::channel::<Task>();
    std::thread::scope(|sc| {
        let r1 = s.read();
        let other = sc.spawn(move || {
            let r2 = s.read();
            ready_tx.send(()).unwrap();
            // Hold until the writer sleeps, then leave.
            let writer = task_rx.recv().unwrap();
            wait_until("the writer to sleep", || {
                writer.state() == TaskState::Uninterruptible
            });
            drop(r2);
        });
        ready_rx.recv().unwrap();
        let w = sc.spawn(move || {
            wtx.send(current()).unwrap();
            *s.write() = 1;
        });
        let writer = wrx.recv().unwrap();
        task_tx.send(writer.clone()).unwrap();
        other.join().unwrap();
        wait_until("the writer to sleep", || {
            writer.state() == TaskState::Uninterruptible
        });
        // One reader (ours) still holds: the writer still waits.
        assert!(!w.is_finished() && s.is_write_locked());
        // A newcomer on another thread waits for the writer.
        let late = sc.spawn(|| *s.read());
        drop(r1);
        w.join().unwrap();
        assert_eq!(late.join().unwrap(), 1);
    });
}
