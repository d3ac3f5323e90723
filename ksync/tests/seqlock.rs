//! Stress tests for `ksync::seqlock`: readers racing writers never validate a
//! torn snapshot.

use ksync::seqlock::{Pod, SeqLatch, SeqLock, Zeroable};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// 64 bytes, every field derived from one stamp, so any mix of two writes shows.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Snap {
    f: [u64; 8],
}

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;
/// The inverse of `MUL` modulo 2^64.
const MUL_INV: u64 = 0xF1DE_83E1_9937_733D;

impl Snap {
    fn of(stamp: u64) -> Self {
        let mut f = [0; 8];
        for (i, x) in f.iter_mut().enumerate() {
            *x = stamp.wrapping_mul(MUL).rotate_left(i as u32 * 7) ^ i as u64;
        }
        Snap { f }
    }

    fn is_consistent(&self) -> bool {
        let stamp = self.f[0].wrapping_mul(MUL_INV);
        *self == Snap::of(stamp)
    }
}

#[test]
fn a_torn_snapshot_is_detected_by_the_check() {
    for s in [0u64, 1, 2, 12345, u64::MAX] {
        assert!(Snap::of(s).is_consistent());
    }
    let mut torn = Snap::of(1);
    torn.f[5] = Snap::of(2).f[5];
    assert!(!torn.is_consistent());
}

const READERS: usize = 8;
const WRITERS: usize = 2;

/// Runs 2 writers (each publishing distinct stamps) and 8 readers for `d`, and
/// on until every thread has done its work at least once, however loaded the
/// machine (30 s more at most: a hang guard); returns (reads, reads that saw a
/// torn snapshot).
fn run_for(
    d: Duration,
    reader: impl Fn() -> bool + Sync,
    writer: impl Fn(u64) + Sync,
) -> (u64, u64) {
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let torn = AtomicU64::new(0);
    // Threads that have written or read once.
    let started = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..WRITERS as u64 {
            let (stop, writer, started) = (&stop, &writer, &started);
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    writer(n * WRITERS as u64 + w);
                    if n == 1 {
                        started.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        for _ in 0..READERS {
            let (stop, reader, reads, torn, started) = (&stop, &reader, &reads, &torn, &started);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    if !reader() {
                        torn.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                    if n == 1 {
                        started.fetch_add(1, Ordering::Relaxed);
                    }
                }
                reads.fetch_add(n, Ordering::Relaxed);
            });
        }
        let t0 = Instant::now();
        let guard = d + Duration::from_secs(30);
        while t0.elapsed() < d
            || (started.load(Ordering::Relaxed) < READERS + WRITERS && t0.elapsed() < guard)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    // After the scope: a failure inside it would leave the threads running.
    assert_eq!(
        started.into_inner(),
        READERS + WRITERS,
        "a reader or writer never ran"
    );
    (reads.into_inner(), torn.into_inner())
}

#[test]
fn seqlock_8_readers_2_writers_never_validate_a_torn_64_byte_read() {
    let sl = SeqLock::new(Snap::of(0));
    let (reads, torn) = run_for(
        Duration::from_millis(1500),
        || sl.read().is_consistent(),
        |stamp| *sl.write() = Snap::of(stamp),
    );
    assert_eq!(torn, 0, "{torn} torn reads validated out of {reads}");
    assert!(reads > 0);
    assert!(sl.read().is_consistent());
    assert!(sl.updates() > 0);
}

#[test]
fn seqlock_explicit_sections_and_read_or_lock_never_validate_torn_reads() {
    let sl = SeqLock::new(Snap::of(0));
    let (reads, torn) = run_for(
        Duration::from_millis(500),
        || {
            // The explicit read_seqbegin/read_seqretry pair ...
            let a = loop {
                let s = sl.read_begin();
                let v = sl.read_unvalidated();
                if !sl.read_retry(s) {
                    break v;
                }
            };
            // ... and the reader that falls back to the lock.
            let b = sl.read_or_lock(|v| *v);
            a.is_consistent() && b.is_consistent()
        },
        |stamp| {
            let mut g = sl.write_irqsave();
            *g = Snap::of(stamp);
        },
    );
    assert_eq!(torn, 0, "{torn} torn reads validated out of {reads}");
}

#[test]
fn latch_8_readers_2_writers_never_return_a_torn_read() {
    let latch = SeqLatch::new(Snap::of(0));
    let (reads, torn) = run_for(
        Duration::from_millis(700),
        || latch.read().is_consistent(),
        |stamp| latch.write(Snap::of(stamp)),
    );
    assert_eq!(torn, 0, "{torn} torn reads out of {reads}");
    assert!(latch.updates() > 0);
}

/// A writer that never stops must not starve readers: after
/// `READ_LOCKLESS_TRIES` failed lockless tries in a row, `read_with` (and
/// `read`, next test) takes the writer lock for one copy. Counted, not timed: `read_with`
/// runs its closure once per copy it makes, so no read may make more than
/// `READ_LOCKLESS_TRIES` + 1 copies. With a 4 KiB value under a writer that
/// never pauses, lockless retries alone made more within a few thousand reads
/// here, or never finished one; the reads run on their own thread so that such a
/// hang fails the test instead of stalling it.
#[test]
fn reads_finish_against_a_writer_that_never_stops() {
    use ksync::seqlock::READ_LOCKLESS_TRIES;
    use std::sync::Arc;
    let sl = Arc::new(SeqLock::new([0u64; 512]));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (sl, stop, writes) = (sl.clone(), stop.clone(), writes.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut g = sl.write();
                g[0] += 1;
                g[511] = g[0];
                drop(g);
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while writes.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = {
        let sl = sl.clone();
        std::thread::spawn(move || {
            let max = READ_LOCKLESS_TRIES + 1;
            let mut most = 0;
            for read in 0..20_000 {
                let mut copies = 0;
                let (first, last) = sl.read_with(|v| {
                    copies += 1;
                    assert!(
                        copies <= max,
                        "read {read} made {copies} copies: more than {READ_LOCKLESS_TRIES} torn ones before the lock"
                    );
                    (v[0], v[511])
                });
                assert_eq!(first, last, "read {read}: a torn copy was returned");
                most = most.max(copies);
            }
            done_tx.send(most).unwrap();
        })
    };
    // A hang guard, not a speed check: a read that never ends never sends.
    let most = done_rx.recv_timeout(Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    let Ok(most) = most else {
        if reader.is_finished() {
            reader.join().unwrap(); // re-raises the reader's panic
        }
        panic!("a read did not finish against a writer that never stops")
    };
    writer.join().unwrap();
    reader.join().unwrap();
    println!("the most copies one read made: {most}");
}

/// The same for `read`, which makes its copies inside the library, so the test
/// counts finished reads instead: 100 reads of a 256 KiB value against a
/// writer that never pauses. Such a writer keeps the count odd for all but a
/// few nanoseconds of each update (its copy in and out of the guard), and a
/// copy takes tens of microseconds, so a lockless try succeeds only when the
/// writer happens to be preempted between two updates: the unbounded loop
/// (`read_unbounded`, which `read` was) finished none of the reads before the
/// hang guard here. The bounded `read` takes the writer lock after
/// `READ_LOCKLESS_TRIES` failed tries, which costs it one writer section.
#[test]
fn plain_reads_finish_against_a_writer_that_never_stops() {
    use std::sync::Arc;
    const WORDS: usize = 32 * 1024;
    const READS: u64 = 100;
    // The value is copied onto the stack: give the threads room.
    const STACK: usize = 16 << 20;
    let sl = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(|| Arc::new(SeqLock::new([0u64; WORDS])))
        .unwrap()
        .join()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (sl, stop, writes) = (sl.clone(), stop.clone(), writes.clone());
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut g = sl.write();
                    g[0] += 1;
                    g[WORDS - 1] = g[0];
                    drop(g);
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap()
    };
    while writes.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let done = Arc::new(AtomicU64::new(0));
    let reader = {
        let (sl, done) = (sl.clone(), done.clone());
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                for read in 0..READS {
                    let v = sl.read();
                    assert_eq!(v[0], v[WORDS - 1], "read {read}: a torn copy was returned");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap()
    };
    // A hang guard, not a speed check: wait for the reads or the guard.
    let t0 = Instant::now();
    while !reader.is_finished() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let finished = reader.is_finished();
    let reads = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // The writer has stopped: a reader still going finishes now.
    reader.join().unwrap();
    assert!(
        finished,
        "only {reads} of {READS} reads finished in 60 s against a writer that never stops"
    );
}
