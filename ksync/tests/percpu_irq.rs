//! `PercpuCounter` from irq handlers: an irq that interrupts a thread in the
//! middle of its own add (between the slot's load and store) must not lose
//! either update.

use ksync::irq;
use ksync::percpu::PercpuCounter;
use ksync::sched::{Task, current};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const IRQS: u64 = 20000;

static COUNTER: LazyLock<PercpuCounter> = LazyLock::new(|| PercpuCounter::with_batch(0, 1 << 20));
static HANDLED: AtomicU64 = AtomicU64::new(0);

fn add_handler(_irq: u32) {
    // Hardirq context: the add goes to the shared count, not this thread's slot.
    COUNTER.add(1000);
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn irq_handler_adds_are_not_lost_against_the_interrupted_threads_adds() {
    LazyLock::force(&COUNTER);
    irq::request_irq(11, add_handler, "percpu-counter").unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Task>();
    let stop2 = stop.clone();
    let worker = std::thread::spawn(move || {
        tx.send(current()).unwrap();
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            COUNTER.add(1);
            n += 1;
        }
        n
    });
    let task = rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut raised = 0;
    while raised < IRQS {
        assert!(Instant::now() < deadline, "raising irqs took too long");
        match irq::raise_irq(11, &task) {
            Ok(()) => raised += 1,
            Err(ksync::Error::WouldBlock) => std::thread::yield_now(),
            Err(e) => panic!("raise_irq: {e:?}"),
        }
    }
    while HANDLED.load(Ordering::Relaxed) < IRQS {
        assert!(Instant::now() < deadline, "irqs were not all handled");
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let n = worker.join().unwrap();
    irq::free_irq(11).unwrap();
    assert_eq!(COUNTER.sum(), n as i64 + 1000 * IRQS as i64);
}
