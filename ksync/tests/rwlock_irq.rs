//! A reader in an irq handler against a writer on the thread it interrupted.
//!
//! The two-word rwlocks' writer claims its word and then checks for readers;
//! an irq can arrive between the two. A handler on that thread that finds the
//! claim must enter (the writer it interrupted cannot go on until the handler
//! returns) and must never enter once the writer holds the lock. Here irqs are
//! raised at a thread that takes the write lock over and over with irqs on;
//! the handler reads whenever the lock is not write-held as seen from its own
//! thread (`is_write_locked`), and checks that the pair the writer updates in
//! two steps is never torn. A handler that waited for its own thread's claim
//! would hang the test.

use ksync::irq;
use ksync::spinlock::raw::{QueuedRw, RawRwSpin, ReaderPref};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::mpsc;

static QUEUED: QueuedRw = QueuedRw::INIT;
static PREF: ReaderPref = ReaderPref::INIT;
/// The pair each lock protects: the writer bumps `.0`, then `.1`.
static PAIRS: [(AtomicU64, AtomicU64); 2] = [
    (AtomicU64::new(0), AtomicU64::new(0)),
    (AtomicU64::new(0), AtomicU64::new(0)),
];
static READS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static TORN: AtomicU64 = AtomicU64::new(0);

fn read_pair<R: RawRwSpin>(l: &R, i: usize) {
    if l.is_write_locked() {
        // This thread holds it (the kernel would deadlock here, as here).
        return;
    }
    l.read();
    let (a, b) = (PAIRS[i].0.load(Relaxed), PAIRS[i].1.load(Relaxed));
    // SAFETY: taken just above, on this thread.
    unsafe { l.read_unlock() };
    if a != b {
        TORN.fetch_add(1, Relaxed);
    }
    READS[i].fetch_add(1, Relaxed);
}

fn handler(_irq: u32) {
    read_pair(&QUEUED, 0);
    read_pair(&PREF, 1);
}

fn write_pair<R: RawRwSpin>(l: &R, i: usize) {
    l.write();
    PAIRS[i].0.fetch_add(1, Relaxed);
    std::hint::spin_loop();
    PAIRS[i].1.fetch_add(1, Relaxed);
    // SAFETY: taken just above, on this thread.
    unsafe { l.write_unlock() };
}

#[test]
fn irq_readers_enter_past_their_own_threads_claim_and_never_past_a_holder() {
    const IRQS: u64 = 20_000;
    irq::request_irq(9, handler, "rw-claim").unwrap();
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let writer = s.spawn(move || {
            tx.send(ksync::sched::current()).unwrap();
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                write_pair(&QUEUED, 0);
                write_pair(&PREF, 1);
                n += 1;
            }
            n
        });
        let task = rx.recv().unwrap();
        // One at a time: irqs queued together all run back to back at one
        // point of the writer's loop (each handler's return delivers the
        // next), and the test wants them spread over it. A handler that
        // never returns (the failure this test is for) hangs it.
        for i in 1..=IRQS {
            irq::raise_irq(9, &task).unwrap();
            while irq::irq_count(9) < i {
                std::hint::spin_loop();
            }
        }
        stop.store(true, Relaxed);
        assert!(writer.join().unwrap() > 0);
    });
    irq::free_irq(9).unwrap();
    assert_eq!(TORN.load(Relaxed), 0, "a handler read a pair mid-update");
    assert!(READS[0].load(Relaxed) > 0 && READS[1].load(Relaxed) > 0);
    for (i, p) in PAIRS.iter().enumerate() {
        assert_eq!(p.0.load(Relaxed), p.1.load(Relaxed), "pair {i}");
    }
    assert!(!QUEUED.is_locked() && !PREF.is_locked());
}
