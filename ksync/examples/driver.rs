//! A network driver's three contexts, as the kernel arranges them.
//!
//! - A "device" thread raises irqs at this thread (each a real signal). The irq
//!   handler puts the packet into a ring under `spin_lock_irqsave` and schedules
//!   a tasklet — it does as little as it can in hardirq context.
//! - The tasklet (softirq context, run when the irq exits) drains the ring and
//!   updates the statistics under a seqlock's write side.
//! - Process context (`main`) reads the statistics with the seqlock's lockless
//!   read side while packets arrive, and waits on a completion that the tasklet
//!   completes when the last packet is in: the clean end.
//!
//! Run: `cargo run --release -p ksync --example driver` (about a second).

use ksync::completion::Completion;
use ksync::irq::{self, Tasklet};
use ksync::seqlock::{Pod, SeqLock, Zeroable};
use ksync::spinlock::SpinLock;
use ksync::{Error, sched};
use std::time::Duration;

const LINE: u32 = 5;
const PACKETS: u64 = 20_000;
const RING: usize = 256;

/// The receive ring: written by the irq handler, drained by the tasklet. A fixed
/// array, because the handler (a signal handler) must not allocate.
struct Ring {
    slots: [u32; RING],
    head: usize,
    len: usize,
    dropped: u64,
}

#[derive(Clone, Copy, Default, Pod, Zeroable)]
#[repr(C)]
struct Stats {
    packets: u64,
    bytes: u64,
    dropped: u64,
}

static RX_RING: SpinLock<Ring> = SpinLock::new(Ring {
    slots: [0; RING],
    head: 0,
    len: 0,
    dropped: 0,
});
static STATS: SeqLock<Stats> = SeqLock::new(Stats {
    packets: 0,
    bytes: 0,
    dropped: 0,
});
static RX_TASKLET: Tasklet = Tasklet::new(rx_action, 0);
static LAST_PACKET_IN: Completion = Completion::new();

/// Hardirq context: the packet's length stands for the packet.
fn nic_irq(_line: u32) {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let len = 64 + SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1400;
    {
        let mut ring = RX_RING.lock_irqsave();
        if ring.len == RING {
            ring.dropped += 1; // a full ring drops, as a NIC does
        } else {
            let tail = (ring.head + ring.len) % RING;
            ring.slots[tail] = len;
            ring.len += 1;
        }
    }
    RX_TASKLET.schedule(); // the bottom half
}

/// Softirq context: drain the ring, publish the statistics.
fn rx_action(_data: usize) {
    let (mut packets, mut bytes) = (0, 0);
    let dropped = {
        let mut ring = RX_RING.lock_irqsave(); // irqs off: the handler takes it too
        while ring.len > 0 {
            let head = ring.head;
            bytes += u64::from(ring.slots[head]);
            packets += 1;
            ring.head = (head + 1) % RING;
            ring.len -= 1;
        }
        core::mem::take(&mut ring.dropped)
    };
    // The only writer: a tasklet never runs on two threads at once.
    let mut s = STATS.write();
    s.packets += packets;
    s.bytes += bytes;
    s.dropped += dropped;
    let accounted = s.packets + s.dropped;
    drop(s); // publish before completing
    if accounted == PACKETS {
        LAST_PACKET_IN.complete();
    }
}

fn main() -> ksync::Result<()> {
    irq::request_irq(LINE, nic_irq, "eth0")?;
    let cpu = sched::current().tid();
    let device = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < PACKETS {
            // A burst of 64 packets, then wait for the driver to take them in (a
            // device with a 64-entry FIFO): the seqlock read side on another thread.
            for _ in 0..64.min(PACKETS - sent) {
                // A full signal queue (RLIMIT_SIGPENDING) pushes back: retry.
                while let Err(Error::WouldBlock) = irq::raise_irq_tid(LINE, cpu) {
                    std::thread::yield_now();
                }
                sent += 1;
            }
            while {
                let s = STATS.read();
                s.packets + s.dropped < sent
            } {
                std::thread::yield_now();
            }
        }
    });

    let mut samples = 0;
    while LAST_PACKET_IN
        .wait_timeout(Duration::from_millis(20))
        .is_none()
    {
        let s = STATS.read(); // lockless: retried if the tasklet wrote meanwhile
        assert!(s.bytes >= 64 * s.packets);
        samples += 1;
        println!(
            "rx {:>6} packets {:>9} bytes {:>4} dropped",
            s.packets, s.bytes, s.dropped
        );
    }
    device.join().expect("device thread");
    irq::free_irq(LINE)?;
    RX_TASKLET.kill();

    let s = STATS.read();
    println!(
        "done: {} packets, {} bytes, {} dropped ({} samples read while running)",
        s.packets, s.bytes, s.dropped, samples
    );
    assert_eq!(s.packets + s.dropped, PACKETS, "every irq accounted for");
    Ok(())
}
