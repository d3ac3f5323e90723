//! A clock in the kernel's style: a timer updates the time under a seqlock's
//! write side each tick, and readers on other threads read it without ever
//! waiting for the writer (the kernel's `jiffies_64` / timekeeping pattern).
//!
//! The timer callback runs in softirq context and re-arms itself for the next
//! jiffy. Each reader takes a snapshot with `read_seqbegin`/`read_seqretry`:
//! when a tick lands in the middle of its copy, it retries instead of blocking,
//! and a snapshot it keeps is never torn (each snapshot carries a check word
//! computed from the other fields). Time never goes backwards for a reader.
//!
//! Run: `cargo run --release -p ksync --example clock` (about half a second).

use core::pin::Pin;
use ksync::irq::{self, Timer};
use ksync::seqlock::{Pod, SeqLock, Zeroable};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const RUN_FOR: Duration = Duration::from_millis(400);

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct WallClock {
    ticks: u64,
    nanos: u64,
    /// `ticks ^ nanos`: a torn copy would not match.
    check: u64,
}

static CLOCK: SeqLock<WallClock> = SeqLock::new(WallClock {
    ticks: 0,
    nanos: 0,
    check: 0,
});
static TICK: Timer = Timer::setup(tick);
static STOP: AtomicBool = AtomicBool::new(false);

/// Softirq context, once a jiffy: publish the time, re-arm.
fn tick(_t: &Timer) {
    let nanos_per_tick = 1_000_000_000 / u64::from(irq::hz());
    {
        let mut c = CLOCK.write(); // write_seqlock: the only writer
        c.ticks += 1;
        c.nanos += nanos_per_tick;
        c.check = c.ticks ^ c.nanos;
    } // write_sequnlock
    if !STOP.load(Ordering::Relaxed) {
        Pin::static_ref(&TICK).mod_timer(irq::jiffies() + 1);
    }
}

fn main() {
    Pin::static_ref(&TICK).mod_timer(irq::jiffies() + 1);
    let start = Instant::now();
    let results: Vec<(u64, u64, u64)> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(move || {
                    let (mut reads, mut retries, mut last) = (0u64, 0u64, 0u64);
                    while start.elapsed() < RUN_FOR {
                        let snap = loop {
                            let seq = CLOCK.read_begin(); // read_seqbegin
                            let c = CLOCK.read_unvalidated();
                            if !CLOCK.read_retry(seq) {
                                break c; // read_seqretry: no write overlapped
                            }
                            retries += 1;
                        };
                        assert_eq!(snap.check, snap.ticks ^ snap.nanos, "torn snapshot");
                        assert!(snap.ticks >= last, "time went backwards");
                        last = snap.ticks;
                        reads += 1;
                    }
                    (reads, retries, last)
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    STOP.store(true, Ordering::Relaxed);
    Pin::static_ref(&TICK).del_timer_sync(); // no callback runs after this

    let now = CLOCK.read();
    for (i, (reads, retries, last)) in results.iter().enumerate() {
        println!("reader {i}: {reads} reads, {retries} retried, last saw tick {last}");
    }
    println!(
        "{} ticks at HZ={} in {:?} ({} ms of clock time)",
        now.ticks,
        irq::hz(),
        start.elapsed(),
        now.nanos / 1_000_000
    );
    assert!(now.ticks > 0, "the timer ticked");
}
