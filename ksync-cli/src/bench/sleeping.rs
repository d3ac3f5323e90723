//! Benchmark groups for the sleeping area (registered in `super::all`):
//! `semaphore` (ksync vs glibc `sem_t`, uncontended and contended) and `wakeup`
//! (completion and wait-queue ping-pong latency vs std `Mutex` + `Condvar`,
//! with the CPU time each side spends per round trip).

use super::{Config, Group, Interleaved, Row, ThreadedTurns, pauses, single, thread_cpu};
use ksync::arch::CachePadded;
use ksync::completion::Completion;
use ksync::sched::WaitQueue;
use ksync::semaphore::Semaphore;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};

/// glibc's `sem_t`, shareable between threads.
#[repr(align(128))]
struct GlibcSem(UnsafeCell<libc::sem_t>);

// SAFETY: sem_t is designed for concurrent use through sem_wait/sem_post.
unsafe impl Sync for GlibcSem {}

impl GlibcSem {
    fn new(count: u32) -> Box<GlibcSem> {
        // SAFETY: a zeroed sem_t is valid storage for sem_init to initialise.
        let s = Box::new(GlibcSem(UnsafeCell::new(unsafe { core::mem::zeroed() })));
        // SAFETY: the storage is valid and not yet shared; pshared = 0.
        let r = unsafe { libc::sem_init(s.0.get(), 0, count) };
        assert_eq!(r, 0, "sem_init failed");
        s
    }
    #[inline]
    fn wait(&self) {
        // SAFETY: initialised in `new`, destroyed only in Drop.
        while unsafe { libc::sem_wait(self.0.get()) } != 0 {}
    }
    #[inline]
    fn post(&self) {
        // SAFETY: as above.
        unsafe { libc::sem_post(self.0.get()) };
    }
}

impl Drop for GlibcSem {
    fn drop(&mut self) {
        // SAFETY: initialised, and no thread uses it any more.
        unsafe { libc::sem_destroy(self.0.get()) };
    }
}

fn semaphore(cfg: &Config, rows: &mut Vec<Row>) {
    let g = "semaphore";
    // Each subject on its own cache lines, on the heap.
    let sem = Box::new(CachePadded::new(Semaphore::new(1)));
    let gs = GlibcSem::new(1);
    let mut unc = Interleaved::new(g, "down+up uncontended");
    unc.add("ksync Semaphore", || {
        sem.down();
        sem.up();
    });
    unc.add("glibc sem_t", || {
        gs.wait();
        gs.post();
    });
    rows.extend(unc.run(cfg));
    for threads in [2, 8] {
        let sem = CachePadded::new(Semaphore::new(1));
        let gs = GlibcSem::new(1);
        let (sem, gs) = (&*sem, &*gs);
        let mut t = ThreadedTurns::new(g, "binary, contended", threads);
        t.add("ksync Semaphore", move |_| {
            move || {
                sem.down();
                pauses(20);
                sem.up();
                pauses(20);
            }
        });
        t.add("glibc sem_t", move |_| {
            move || {
                gs.wait();
                pauses(20);
                gs.post();
                pauses(20);
            }
        });
        rows.extend(t.run(cfg));
    }
}

/// Measures round trips between this thread and a partner: `ping` sends one
/// turn to the partner and waits for it to come back; the partner runs
/// `serve` (wait for a turn, send it back) until told to stop. `release`
/// unblocks a partner that waits after the stop.
///
/// Besides the wall time per round trip, the row carries each side's CPU time
/// per round trip (`[this thread, the partner]`, from
/// `CLOCK_THREAD_CPUTIME_ID` over each thread's whole run, warm-up included,
/// divided by every round trip): a waiter that polls before it sleeps (ksync's)
/// spends CPU where one that sleeps at once (std's) does not, and a latency
/// bought that way shows here.
fn ping_pong(
    cfg: &Config,
    scenario: &str,
    name: &str,
    mut ping: impl FnMut(),
    serve: impl Fn() + Sync,
    release: impl Fn(),
    stop: &AtomicBool,
) -> Row {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let cpu0 = thread_cpu();
            while !stop.load(Ordering::Acquire) {
                serve();
            }
            thread_cpu() - cpu0
        });
        let mut round_trips = 0u64;
        let cpu0 = thread_cpu();
        let mut row = single(cfg, "wakeup", scenario, name, || {
            ping();
            round_trips += 1;
        });
        let cpu = thread_cpu() - cpu0;
        stop.store(true, Ordering::Release);
        release();
        let partner_cpu = h.join().expect("partner panicked");
        row.threads = 2;
        let per_trip = |d: std::time::Duration| d.as_secs_f64() * 1e9 / round_trips.max(1) as f64;
        row.cpu_ns_per_side = Some(vec![per_trip(cpu), per_trip(partner_cpu)]);
        row
    })
}

fn wakeup(cfg: &Config, rows: &mut Vec<Row>) {
    let sc = "ping-pong round trip";
    // Completions: one each way.
    {
        let (a, b) = (Completion::new(), Completion::new());
        let stop = AtomicBool::new(false);
        rows.push(ping_pong(
            cfg,
            sc,
            "ksync Completion",
            || {
                a.complete();
                b.wait();
            },
            || {
                a.wait();
                b.complete();
            },
            || a.complete(),
            &stop,
        ));
    }
    // Wait queue: a turn word, one queue.
    {
        let turn = AtomicU32::new(0);
        let wq = WaitQueue::new();
        let stop = AtomicBool::new(false);
        rows.push(ping_pong(
            cfg,
            sc,
            "ksync WaitQueue",
            || {
                turn.store(1, Ordering::Release);
                wq.wake_up();
                wq.wait_event(|| turn.load(Ordering::Acquire) == 0);
            },
            || {
                wq.wait_event(|| turn.load(Ordering::Acquire) == 1 || stop.load(Ordering::Acquire));
                turn.store(0, Ordering::Release);
                wq.wake_up();
            },
            || {
                turn.store(1, Ordering::Release);
                wq.wake_up_all();
            },
            &stop,
        ));
    }
    // std Mutex + Condvar with the same turn protocol.
    {
        let m = Mutex::new(0u32);
        let cv = Condvar::new();
        let stop = AtomicBool::new(false);
        rows.push(ping_pong(
            cfg,
            sc,
            "std Mutex+Condvar",
            || {
                let mut t = m.lock().unwrap();
                *t = 1;
                cv.notify_all();
                while *t != 0 {
                    t = cv.wait(t).unwrap();
                }
            },
            || {
                let mut t = m.lock().unwrap();
                while *t != 1 && !stop.load(Ordering::Acquire) {
                    t = cv.wait(t).unwrap();
                }
                *t = 0;
                cv.notify_all();
            },
            || {
                *m.lock().unwrap() = 1;
                cv.notify_all();
            },
            &stop,
        ));
    }
}

pub fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "semaphore",
            about: "Semaphore down+up: uncontended and contended, vs glibc sem_t",
            run: semaphore,
        },
        Group {
            name: "wakeup",
            about: "Completion and WaitQueue wake-up latency (ping-pong) vs std Mutex+Condvar, with each side's CPU time",
            run: wakeup,
        },
    ]
}
