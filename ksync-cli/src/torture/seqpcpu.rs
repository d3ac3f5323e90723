//! Torture types for the seqpcpu area (registered in `super::all`): seqlocks,
//! the latch and the per-CPU counter.
//!
//! - `seqlock`, `seqlatch`: writers publish 64-byte snapshots whose every field is
//!   derived from one stamp (writer id and that writer's sequence number);
//!   readers check that each snapshot they get is one a writer actually wrote —
//!   consistent across all fields, from an existing writer, not from the future.
//! - `percpu_counter`: writers add positive amounts (some from short-lived
//!   threads that exit right away, exercising the exit fold); readers check that
//!   the exact sum never goes backwards and the approximate read never exceeds
//!   it; at the end the exact sum equals the total of all additions.

use super::{Config, Monitor, Report, TortureType};
use ksync::percpu::PercpuCounter;
use ksync::seqlock::{Pod, SeqLatch, SeqLock, Zeroable};
use std::sync::atomic::{AtomicU64, Ordering};

pub fn types() -> Vec<TortureType> {
    vec![
        TortureType {
            name: "seqlock",
            about: "SeqLock<64-byte struct>: every validated read is a snapshot a writer wrote",
            writers: 2,
            readers: 8,
            hidden: false,
            run: |cfg, mon| {
                snapshot_torture(cfg, mon, &SeqLockSubject(SeqLock::new(Snap::of(0, 0))))
            },
        },
        TortureType {
            name: "seqlatch",
            about: "SeqLatch<64-byte struct>: readers never wait and never see a torn copy",
            writers: 2,
            readers: 8,
            hidden: false,
            run: |cfg, mon| {
                snapshot_torture(cfg, mon, &LatchSubject(SeqLatch::new(Snap::of(0, 0))))
            },
        },
        TortureType {
            name: "percpu_counter",
            about: "PercpuCounter: the exact sum equals the sum of all additions, threads come and go",
            writers: 4,
            readers: 2,
            hidden: false,
            run: percpu_counter_torture,
        },
    ]
}

/// A 64-byte snapshot: a stamp (writer id in the low byte, sequence number above)
/// and seven fields derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "ksync::seqlock::bytemuck")]
#[repr(C)]
struct Snap {
    stamp: u64,
    derived: [u64; 7],
}

impl Snap {
    fn of(writer: u64, seq: u64) -> Self {
        let stamp = seq << 8 | writer;
        let mut derived = [0; 7];
        for (i, d) in derived.iter_mut().enumerate() {
            *d = stamp
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(9 * i as u32 + 1)
                ^ (i as u64) << 56;
        }
        Snap { stamp, derived }
    }
    fn writer(&self) -> u64 {
        self.stamp & 0xff
    }
    fn seq(&self) -> u64 {
        self.stamp >> 8
    }
}

trait Subject: Sync {
    fn read(&self) -> Snap;
    fn write(&self, s: Snap);
}

struct SeqLockSubject(SeqLock<Snap>);
impl Subject for SeqLockSubject {
    fn read(&self) -> Snap {
        self.0.read()
    }
    fn write(&self, s: Snap) {
        *self.0.write() = s;
    }
}

struct LatchSubject(SeqLatch<Snap>);
impl Subject for LatchSubject {
    fn read(&self) -> Snap {
        self.0.read()
    }
    fn write(&self, s: Snap) {
        self.0.write(s);
    }
}

fn min_max(v: &[u64]) -> (u64, u64) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

fn snapshot_torture(cfg: &Config, mon: &Monitor, subject: &dyn Subject) -> Report {
    let writers = cfg.writers.clamp(1, 255);
    // progress[w]: the highest sequence number writer w has begun to publish.
    let progress: Vec<AtomicU64> = (0..=writers).map(|_| AtomicU64::new(0)).collect();
    let mut notes = Vec::new();
    let (w, r) = std::thread::scope(|s| {
        let ws: Vec<_> = (1..=writers)
            .map(|w| {
                let progress = &progress;
                s.spawn(move || {
                    let me = mon.enter(super::Role::Writer);
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        n += 1;
                        // Announce before publishing (Release pairs with the
                        // reader's Acquire load after its read).
                        progress[w].store(n, Ordering::Release);
                        mon.begin_wait(&me);
                        subject.write(Snap::of(w as u64, n));
                        mon.end_wait(&me);
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    n
                })
            })
            .collect();
        let rs: Vec<_> = (0..cfg.readers)
            .map(|_| {
                let progress = &progress;
                s.spawn(move || {
                    let me = mon.enter(super::Role::Reader);
                    let mut n = 0u64;
                    let mut bad = None;
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        let snap = subject.read();
                        mon.end_wait(&me);
                        let w = snap.writer() as usize;
                        let ok = snap == Snap::of(snap.writer(), snap.seq())
                            && w <= writers
                            && (w == 0) == (snap.seq() == 0)
                            && snap.seq() <= progress[w].load(Ordering::Acquire);
                        if !ok {
                            mon.fail();
                            bad.get_or_insert(snap);
                        }
                        n += 1;
                        mon.reads.fetch_add(1, Ordering::Relaxed);
                    }
                    (n, bad)
                })
            })
            .collect();
        let w: Vec<u64> = ws.into_iter().map(|h| h.join().unwrap()).collect();
        let r: Vec<(u64, Option<Snap>)> = rs.into_iter().map(|h| h.join().unwrap()).collect();
        (w, r)
    });
    if let Some(bad) = r.iter().find_map(|(_, b)| *b) {
        notes.push(format!("first bad snapshot: {bad:x?}"));
    }
    let reads: Vec<u64> = r.iter().map(|(n, _)| *n).collect();
    Report {
        writes: w.iter().sum(),
        reads: reads.iter().sum(),
        failures: mon.failures.load(Ordering::Relaxed),
        writer_min_max: min_max(&w),
        reader_min_max: min_max(&reads),
        notes,
    }
}

fn percpu_counter_torture(cfg: &Config, mon: &Monitor) -> Report {
    let c = PercpuCounter::new(0);
    let (w, r) = std::thread::scope(|s| {
        let ws: Vec<_> = (0..cfg.writers)
            .map(|i| {
                let c = &c;
                s.spawn(move || {
                    let me = mon.enter(super::Role::Writer);
                    let mut rng = fastrand::Rng::with_seed(0xc0 + i as u64);
                    let mut added = 0i64;
                    let mut ops = 0u64;
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        mon.end_wait(&me);
                        if rng.u32(..16) == 0 {
                            // A short-lived thread: its delta must be folded at exit.
                            let n = rng.i64(1..200);
                            std::thread::scope(|s2| {
                                s2.spawn(|| {
                                    for _ in 0..n {
                                        c.inc();
                                    }
                                });
                            });
                            added += n;
                            ops += n as u64;
                        } else {
                            for _ in 0..256 {
                                let v = rng.i64(1..100);
                                c.add(v);
                                added += v;
                            }
                            ops += 256;
                        }
                        mon.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    (ops, added)
                })
            })
            .collect();
        let rs: Vec<_> = (0..cfg.readers)
            .map(|_| {
                let c = &c;
                s.spawn(move || {
                    let me = mon.enter(super::Role::Reader);
                    let mut last = 0i64;
                    let mut n = 0u64;
                    while !mon.should_stop() {
                        mon.begin_wait(&me);
                        let approx = c.read();
                        let exact = c.sum();
                        mon.end_wait(&me);
                        // All additions are positive: the exact sum never goes
                        // backwards, and the shared count never runs ahead of it.
                        if exact < last || approx > exact {
                            mon.fail();
                        }
                        if c.compare(last) == std::cmp::Ordering::Less {
                            mon.fail();
                        }
                        last = exact;
                        n += 1;
                        mon.reads.fetch_add(1, Ordering::Relaxed);
                    }
                    n
                })
            })
            .collect();
        let w: Vec<(u64, i64)> = ws.into_iter().map(|h| h.join().unwrap()).collect();
        let r: Vec<u64> = rs.into_iter().map(|h| h.join().unwrap()).collect();
        (w, r)
    });
    let total: i64 = w.iter().map(|(_, a)| a).sum();
    let sum = c.sum();
    let mut notes = vec![format!("exact sum {sum}, additions {total}")];
    if sum != total {
        mon.fail();
        notes.push(format!("LOST: {} ", total - sum));
    }
    let ops: Vec<u64> = w.iter().map(|(o, _)| *o).collect();
    Report {
        writes: ops.iter().sum(),
        reads: r.iter().sum(),
        failures: mon.failures.load(Ordering::Relaxed),
        writer_min_max: min_max(&ops),
        reader_min_max: min_max(&r),
        notes,
    }
}
