//! The queued, fair rwlock (the kernel's `qrwlock`, kernel/locking/qrwlock.c):
//! the lock behind [`RwLock`](super::RwLock).
//!
//! | `cnts` bits | name             | meaning                                        |
//! |-------------|------------------|------------------------------------------------|
//! | 0–7         | `WLOCKED` (0xff) | a writer holds the lock                        |
//! | 8           | `WAITING`        | a writer waits (at the head of the queue) for the readers to drain |
//! | 10–31       | reader count     | in units of `READER` (1 << 10)                 |
//!
//! | `sleeper` | meaning |
//! |-----------|---------|
//! | 1         | the queue head (the `wait_lock` holder) sleeps, or is about to, on `cnts`: the release that ends its wait must wake it |
//!
//! Transitions: readers CAS `c → c + READER` from a `c` with neither
//! `WLOCKED` nor `WAITING`; a writer CASes 0 → `WLOCKED`. Contended lockers
//! queue on `wait_lock` (a [`Queued`] spinlock, so waiters are FIFO and sleep
//! when the holder is preempted): the queue head is the only waiter that
//! polls `cnts`. A waiting writer first waits for a writer holding the lock to
//! leave, then CASes `WAITING` in (from a `c` without `WLOCKED`), which turns
//! new readers away into the queue, and CASes `WAITING` → `WLOCKED` once the
//! readers drain. So a writer waits only for readers that came before it: no
//! starvation.
//!
//! **Invariant: while a writer holds the lock, `cnts` is exactly `WLOCKED`
//! and nobody but that writer writes it** — readers and the queue head CAS
//! only from values without `WLOCKED`, writers only from 0 or `WAITING` — so
//! `write_unlock` is a release store of 0. The kernel gets the same by
//! storing the locked *byte* while readers add to the other bytes with
//! `atomic_add`; Rust forbids racing mixed-size atomics, so here the readers
//! pay instead: their fast path is a load and a CAS (one RMW, as the
//! `fetch_add` it replaces) that may have to retry when readers race.
//!
//! The queue head's waits (a reader for the writer to leave, a writer for a
//! writer to leave or the readers to drain) spin a bounded time and then sleep
//! on `cnts`: the head sets `sleeper`, issues [`heavy_barrier`], re-reads
//! `cnts`, and sleeps only while it still holds the value it saw. The unlock
//! that ends the wait (`write_unlock`, or the last `read_unlock` before a
//! waiting writer) issues [`light_barrier`] after its store or RMW and wakes
//! the head if `sleeper` is set — the asymmetric fence pair of the queued
//! spinlock: either the unlock sees `sleeper` or the head's re-read sees the
//! unlock. Only the `wait_lock` holder sleeps, so there is at most one
//! sleeper; readers in interrupt context never sleep (they spin and yield).
//!
//! The kernel's irq rule is kept: a reader in interrupt context (hardirq or
//! softirq) does not queue behind a waiting writer — it waits only for a writer
//! that *holds* the lock, and enters past `WAITING` — so `read_lock` in an irq
//! handler cannot deadlock against a writer queued on the same thread it
//! interrupted.

use super::qspinlock::Queued;
use super::raw::{RawRwSpin, RawSpin, Spin};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

const WLOCKED: u32 = 0xff;
const WAITING: u32 = 0x100;
const WMASK: u32 = WLOCKED | WAITING;
const READER: u32 = 0x400;

/// The queued fair rwlock (`struct qrwlock`, plus the queue head's `sleeper`
/// word): 24 bytes.
#[derive(Debug)]
#[repr(C)]
pub struct QueuedRw {
    cnts: AtomicU32,
    /// 1 while the queue head sleeps (or is about to) on `cnts`; written only
    /// by the `wait_lock` holder.
    sleeper: AtomicU32,
    wait_lock: Queued,
}

// SAFETY: a writer holds WLOCKED only after a CAS from 0 or from WAITING (no
// readers); readers enter only by a CAS from a value without WLOCKED. Entering
// RMWs are Acquire, exits Release (the writer's a Release store).
unsafe impl RawRwSpin for QueuedRw {
    #[cfg(not(loom))]
    const INIT: Self = QueuedRw {
        cnts: AtomicU32::new(0),
        sleeper: AtomicU32::new(0),
        wait_lock: Queued::INIT,
    };
    #[cfg(loom)]
    fn new() -> Self {
        QueuedRw {
            cnts: AtomicU32::new(0),
            sleeper: AtomicU32::new(0),
            wait_lock: Queued::new(),
        }
    }
    const NAME: &'static str = "queued-rw";

    #[inline]
    fn read(&self) {
        if !self.try_read_once() {
            self.read_slow();
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
        let spin = Spin::new();
        let mut c = self.cnts.load(Ordering::Relaxed);
        while c & WMASK == 0 {
            // Acquire: as in `try_read_once`.
            match self.cnts.compare_exchange_weak(
                c,
                c + READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
            spin.spin();
        }
        false
    }

    #[inline]
    unsafe fn read_unlock(&self) {
        // Release: pairs with the writer's Acquire CAS once readers drain.
        let c = self.cnts.fetch_sub(READER, Ordering::Release);
        if c - READER == WAITING {
            // The last reader out, and a writer waits: wake it if it sleeps.
            self.wake_head();
        }
    }

    #[inline]
    fn write(&self) {
        if !self.try_write() {
            self.write_slow();
        }
    }

    #[inline]
    fn try_write(&self) -> bool {
        // Acquire: pairs with the Release of the last reader/writer out.
        self.cnts.load(Ordering::Relaxed) == 0
            && self
                .cnts
                .compare_exchange(0, WLOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    #[inline]
    unsafe fn write_unlock(&self) {
        // Nobody but us writes `cnts` while WLOCKED is set (module docs).
        // Release: pairs with the Acquire CAS of the next reader or writer.
        self.cnts.store(0, Ordering::Release);
        // The queue head may sleep until we leave.
        self.wake_head();
    }

    fn is_locked(&self) -> bool {
        let c = self.cnts.load(Ordering::Relaxed);
        c & WLOCKED != 0 || c >= READER
    }

    fn is_write_locked(&self) -> bool {
        self.cnts.load(Ordering::Relaxed) & WLOCKED != 0
    }
}

impl QueuedRw {
    /// The reader fast path: one CAS from a value without `WLOCKED` or
    /// `WAITING`.
    #[inline]
    fn try_read_once(&self) -> bool {
        let c = self.cnts.load(Ordering::Relaxed);
        // Acquire: pairs with the writer's Release store in `write_unlock`.
        c & WMASK == 0
            && self
                .cnts
                .compare_exchange_weak(c, c + READER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// After a release that may end the queue head's wait: wakes it if it
    /// sleeps.
    #[inline]
    fn wake_head(&self) {
        // Orders our release (store or RMW on `cnts`) before the `sleeper`
        // load, with the head's `heavy_barrier` between its `sleeper` store and
        // its re-read of `cnts` (see `head_wait`): one of the two sees the other.
        light_barrier();
        if self.sleeper.load(Ordering::Relaxed) != 0 {
            self.wake_head_slow();
        }
    }

    #[cold]
    fn wake_head_slow(&self) {
        crate::arch::futex::wake_one(&self.cnts);
    }

    /// Takes a read hold past `WAITING` once no writer holds the lock,
    /// spinning and yielding: for readers in interrupt context, which must not
    /// sleep or queue (the irq rule above).
    fn read_in_interrupt(&self) {
        let spin = Spin::new();
        loop {
            let c = self.cnts.load(Ordering::Relaxed);
            // Acquire: pairs with the writer's Release store in `write_unlock`.
            if c & WLOCKED == 0
                && self
                    .cnts
                    .compare_exchange_weak(c, c + READER, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            if spin.is_completed() {
                crate::arch::yield_now();
            } else {
                spin.snooze();
            }
        }
    }

    /// The queue head's wait (we hold `wait_lock`) until `done(cnts)`: spins a
    /// bounded time, then sleeps on `cnts` with `sleeper` set until the
    /// release that makes `done` true wakes us. Returns the value that was done.
    fn head_wait(&self, done: impl Fn(u32) -> bool) -> u32 {
        let spin = Spin::new();
        loop {
            // Acquire: pairs with the Release of the unlock we waited for.
            let c = self.cnts.load(Ordering::Acquire);
            if done(c) {
                return c;
            }
            if spin.is_completed() {
                break;
            }
            spin.snooze();
        }
        // Relaxed: ordered before the re-read by the heavy barrier.
        self.sleeper.store(1, Ordering::Relaxed);
        loop {
            // Pairs with the releaser's `light_barrier` (see `wake_head`).
            heavy_barrier();
            // Acquire: as above.
            let c = self.cnts.load(Ordering::Acquire);
            if done(c) {
                self.sleeper.store(0, Ordering::Relaxed);
                return c;
            }
            // Sleeps only while `cnts` still holds `c`; a release after our
            // barrier sees `sleeper` and wakes us.
            crate::arch::futex::wait(&self.cnts, c, None);
        }
    }

    /// `queued_read_lock_slowpath`.
    #[cold]
    fn read_slow(&self) {
        if crate::ctx::in_interrupt() {
            self.read_in_interrupt();
            return;
        }
        // Other readers only made our CAS fail: retry while no writer holds or
        // waits.
        if self.try_read() {
            return;
        }
        self.wait_lock.lock();
        // We are the queue head. A waiting writer behind us has not set
        // WAITING yet (it does so only as the head), so wait only for a writer
        // that holds the lock, then enter.
        loop {
            let c = self.head_wait(|c| c & WLOCKED == 0);
            // Acquire: as in `try_read_once`.
            if self
                .cnts
                .compare_exchange_weak(c, c + READER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        // SAFETY: we took `wait_lock` above.
        unsafe { self.wait_lock.unlock() };
    }

    /// `queued_write_lock_slowpath`.
    #[cold]
    fn write_slow(&self) {
        self.wait_lock.lock();
        loop {
            // Wait for a writer that holds the lock to leave (we may not touch
            // `cnts` while it does), then turn new readers into the queue or
            // take the lock if it is free.
            let c = self.head_wait(|c| c & WLOCKED == 0);
            let (new, taken) = if c & !WAITING == 0 {
                (WLOCKED, true)
            } else {
                (c | WAITING, false)
            };
            // Acquire (when taking it): pairs with the Release of the last
            // reader or writer out.
            if self
                .cnts
                .compare_exchange_weak(c, new, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if taken {
                break;
            }
            // WAITING is set: only readers hold it (irq readers may still come).
            self.head_wait(|c| c == WAITING);
            // Acquire: pairs with the last reader's Release fetch_sub.
            if self
                .cnts
                .compare_exchange(WAITING, WLOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        // SAFETY: we took `wait_lock` above.
        unsafe { self.wait_lock.unlock() };
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_qrwlock_writers_exclude() {
        super::super::loom_support::rw_exclusion::<QueuedRw>();
    }

    /// A writer waits for a reader to drain and, its one-round spin budget
    /// spent, sleeps with `sleeper` set; the reader's unlock must wake it
    /// (a lost wake-up shows as a deadlock). Then a reader waits for that
    /// writer the same way.
    #[test]
    fn loom_qrwlock_sleeping_head_is_woken() {
        use loom::sync::Arc;
        loom::model(|| {
            let l = Arc::new(QueuedRw::new());
            l.read();
            let l2 = l.clone();
            let w = loom::thread::spawn(move || {
                l2.write();
                // SAFETY: taken just above.
                unsafe { l2.write_unlock() };
            });
            // SAFETY: taken above, on this thread.
            unsafe { l.read_unlock() };
            l.read();
            // SAFETY: taken just above.
            unsafe { l.read_unlock() };
            w.join().unwrap();
            assert_eq!(l.cnts.load(Ordering::Relaxed), 0);
            assert_eq!(l.sleeper.load(Ordering::Relaxed), 0);
        });
    }
}
