//! Seqlock readers in irq handlers: a latch reader that interrupts the latch
//! writer on its own thread gets a consistent copy without waiting; a seqlock
//! writer that uses `write_irqsave` is never interrupted by its reader (which
//! would spin forever on the odd count).

use ksync::irq;
use ksync::sched::{Task, current};
use ksync::seqlock::{SeqLatch, SeqLock};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const IRQS: u64 = 1000;

struct Case {
    handled: AtomicU64,
    torn: AtomicU64,
}

impl Case {
    const fn new() -> Self {
        Case {
            handled: AtomicU64::new(0),
            torn: AtomicU64::new(0),
        }
    }
    fn check(&self, v: [u64; 8]) {
        if v.iter().any(|&x| x != v[0]) {
            self.torn.fetch_add(1, Ordering::Relaxed);
        }
        self.handled.fetch_add(1, Ordering::Relaxed);
    }
}

static LATCH: SeqLatch<[u64; 8]> = SeqLatch::new([0; 8]);
static LATCH_CASE: Case = Case::new();
static SEQ: SeqLock<[u64; 8]> = SeqLock::new([0; 8]);
static SEQ_CASE: Case = Case::new();

fn latch_handler(_irq: u32) {
    LATCH_CASE.check(LATCH.read());
}

fn seq_handler(_irq: u32) {
    SEQ_CASE.check(SEQ.read());
}

/// Runs `write(n)` in a loop on a worker while this thread raises `IRQS` irqs
/// of `line` at it.
fn run(case: &'static Case, line: u32, write: fn(u64)) {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Task>();
    let stop2 = stop.clone();
    let worker = std::thread::spawn(move || {
        tx.send(current()).unwrap();
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            n += 1;
            write(n);
        }
    });
    let task = rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut raised = 0;
    while raised < IRQS {
        assert!(Instant::now() < deadline, "raising irqs took too long");
        match irq::raise_irq(line, &task) {
            Ok(()) => raised += 1,
            Err(ksync::Error::WouldBlock) => std::thread::yield_now(),
            Err(e) => panic!("raise_irq: {e:?}"),
        }
    }
    while case.handled.load(Ordering::Relaxed) < IRQS {
        assert!(
            Instant::now() < deadline,
            "irqs were not all handled (a reader spinning in its handler?)"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
}

#[test]
fn latch_reader_in_an_irq_that_interrupts_the_writer_sees_a_consistent_copy() {
    irq::request_irq(12, latch_handler, "seqlatch").unwrap();
    run(&LATCH_CASE, 12, |n| LATCH.write([n; 8]));
    irq::free_irq(12).unwrap();
    assert_eq!(LATCH_CASE.torn.load(Ordering::Relaxed), 0);
}

#[test]
fn seqlock_writer_with_irqsave_never_deadlocks_against_an_irq_reader() {
    irq::request_irq(13, seq_handler, "seqlock-irqsave").unwrap();
    run(&SEQ_CASE, 13, |n| {
        let mut g = SEQ.write_irqsave();
        *g = [n; 8];
    });
    irq::free_irq(13).unwrap();
    assert_eq!(SEQ_CASE.torn.load(Ordering::Relaxed), 0);
}
