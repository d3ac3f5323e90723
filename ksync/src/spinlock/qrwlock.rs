//! The queued, fair rwlock (the kernel's `qrwlock`, kernel/locking/qrwlock.c):
//! the lock behind [`RwLock`](super::RwLock).
//!
//! | `cnts` bits | name             | meaning                                        |
//! |-------------|------------------|------------------------------------------------|
//! | 0–7         | `WLOCKED` (0xff) | a writer holds the lock                        |
//! | 8           | `WAITING`        | a writer waits (at the head of the queue) for the readers to drain |
//! | 9–31        | reader count     | in units of `READER` (1 << 9)                  |
//!
//! Transitions: readers `fetch_add(READER)` and back off (subtract) if a writer
//! holds or waits; a writer CASes 0 → `WLOCKED`. Contended lockers queue on
//! `wait_lock` (a [`Queued`] spinlock, so waiters are FIFO and sleep when the
//! holder is preempted): the queue head is the only waiter that spins on
//! `cnts`. A waiting writer sets `WAITING`, which turns new readers away into
//! the queue, then CASes `WAITING` → `WLOCKED` once the readers drain. So a
//! writer waits only for readers that came before it: no starvation.
//!
//! The kernel's irq rule is kept: a reader in interrupt context (hardirq or
//! softirq) does not queue behind a waiting writer — it waits only for a writer
//! that *holds* the lock — so `read_lock` in an irq handler cannot deadlock
//! against a writer queued on the same thread it interrupted.
//!
//! `write_unlock` subtracts `WLOCKED` (an RMW, not the kernel's byte store:
//! Rust forbids racing mixed-size atomics, and readers change the other bits).

use super::qspinlock::Queued;
use super::raw::{RawRwSpin, RawSpin, Spin};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

const WLOCKED: u32 = 0xff;
const WAITING: u32 = 0x100;
const WMASK: u32 = WLOCKED | WAITING;
const READER: u32 = 0x200;

/// The queued fair rwlock (`struct qrwlock`).
#[derive(Debug)]
#[repr(C)]
pub struct QueuedRw {
    cnts: AtomicU32,
    wait_lock: Queued,
}

// SAFETY: a writer holds WLOCKED only after a CAS from 0 or from WAITING (no
// readers); readers hold a count only while no WLOCKED is set (they undo and
// wait otherwise). Entering RMWs/loads are Acquire, exits Release.
unsafe impl RawRwSpin for QueuedRw {
    #[cfg(not(loom))]
    const INIT: Self = QueuedRw {
        cnts: AtomicU32::new(0),
        wait_lock: Queued::INIT,
    };
    #[cfg(loom)]
    fn new() -> Self {
        QueuedRw {
            cnts: AtomicU32::new(0),
            wait_lock: Queued::new(),
        }
    }
    const NAME: &'static str = "queued-rw";

    #[inline]
    fn read(&self) {
        // Acquire: pairs with the writer's Release in `write_unlock`.
        let c = self.cnts.fetch_add(READER, Ordering::Acquire);
        if c & WMASK != 0 {
            self.read_slow();
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
        let c = self.cnts.load(Ordering::Relaxed);
        if c & WMASK == 0 {
            // Acquire: as in `read`.
            let c = self.cnts.fetch_add(READER, Ordering::Acquire);
            if c & WMASK == 0 {
                return true;
            }
            // Release: a waiting writer's Acquire sees our (empty) section end.
            self.cnts.fetch_sub(READER, Ordering::Release);
        }
        false
    }

    #[inline]
    unsafe fn read_unlock(&self) {
        // Release: pairs with the writer's Acquire CAS once readers drain.
        self.cnts.fetch_sub(READER, Ordering::Release);
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
        // Release: pairs with the Acquire of the next reader or writer.
        self.cnts.fetch_sub(WLOCKED, Ordering::Release);
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
    /// Waits until no writer holds the lock (readers may).
    #[inline]
    fn wait_unlocked_writer(&self) {
        let spin = Spin::new();
        // Acquire: pairs with the writer's Release fetch_sub in `write_unlock`.
        while self.cnts.load(Ordering::Acquire) & WLOCKED != 0 {
            if spin.is_completed() {
                crate::arch::yield_now();
            } else {
                spin.snooze();
            }
        }
    }

    /// `queued_read_lock_slowpath`: our READER bias is already added.
    #[cold]
    fn read_slow(&self) {
        if crate::sched::in_interrupt() {
            // Readers in interrupt context keep their bias and only wait for an
            // active writer (the irq rule above).
            self.wait_unlocked_writer();
            return;
        }
        // Release: as in `read_unlock` (our bias came and went).
        self.cnts.fetch_sub(READER, Ordering::Release);
        self.wait_lock.lock();
        // Acquire: as in `read`. A waiting writer behind us in the queue has not
        // set WAITING yet (it is the queue head only after we leave it).
        self.cnts.fetch_add(READER, Ordering::Acquire);
        self.wait_unlocked_writer();
        // SAFETY: we took `wait_lock` above.
        unsafe { self.wait_lock.unlock() };
    }

    /// `queued_write_lock_slowpath`.
    #[cold]
    fn write_slow(&self) {
        self.wait_lock.lock();
        if !self.try_write() {
            // Turn new readers into the queue.
            self.cnts.fetch_or(WAITING, Ordering::Relaxed);
            let spin = Spin::new();
            loop {
                // Acquire: pairs with the last reader's Release fetch_sub.
                if self.cnts.load(Ordering::Relaxed) == WAITING
                    && self
                        .cnts
                        .compare_exchange(WAITING, WLOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    break;
                }
                if spin.is_completed() {
                    crate::arch::yield_now();
                } else {
                    spin.snooze();
                }
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
}
