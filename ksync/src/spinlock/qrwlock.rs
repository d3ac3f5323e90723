//! The queued, fair rwlock (the kernel's `qrwlock`, kernel/locking/qrwlock.c):
//! the lock behind [`RwLock`](super::RwLock).
//!
//! | `cnts` bits | name             | meaning                                        |
//! |-------------|------------------|------------------------------------------------|
//! | 0–7         | `WLOCKED` (0xff) | a writer holds the lock                        |
//! | 8           | `WAITING`        | a writer waits (at the head of the queue) for the readers to drain |
//! | 9           | `SLEEPING`       | the queue head (the `wait_lock` holder) sleeps on `cnts`: the release that ends its wait must wake it |
//! | 10–31       | reader count     | in units of `READER` (1 << 10)                 |
//!
//! Transitions: readers `fetch_add(READER)` and back off (subtract) if a writer
//! holds or waits; a writer CASes 0 → `WLOCKED`. Contended lockers queue on
//! `wait_lock` (a [`Queued`] spinlock, so waiters are FIFO and sleep when the
//! holder is preempted): the queue head is the only waiter that spins on
//! `cnts`. A waiting writer sets `WAITING`, which turns new readers away into
//! the queue, then CASes `WAITING` → `WLOCKED` once the readers drain. So a
//! writer waits only for readers that came before it: no starvation.
//!
//! The queue head's waits (a reader for the writer to leave, a writer for the
//! readers to drain) spin a bounded time and then sleep on `cnts` with
//! `SLEEPING` set, as the queued spinlock's head does; the unlock that ends the
//! wait (`write_unlock`, or the last `read_unlock` before a waiting writer)
//! sees `SLEEPING` in the value its RMW returns and wakes it. Both sides are
//! RMWs on `cnts`, so one sees the other: no fence is needed for the lost
//! wake-up race. Only the `wait_lock` holder sleeps, so there is at most one
//! sleeper; readers in interrupt context never sleep (they spin and yield).
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
const SLEEPING: u32 = 0x200;
const READER: u32 = 0x400;

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
            self.unbias();
        }
        false
    }

    #[inline]
    unsafe fn read_unlock(&self) {
        self.unbias();
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
        if self.cnts.fetch_sub(WLOCKED, Ordering::Release) & SLEEPING != 0 {
            // The queue head (a reader) sleeps until we leave.
            self.wake_head();
        }
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
    /// Drops one reader bias (`read_unlock`, or a reader backing off).
    #[inline]
    fn unbias(&self) {
        // Release: pairs with the writer's Acquire CAS once readers drain.
        let c = self.cnts.fetch_sub(READER, Ordering::Release);
        if c & SLEEPING != 0 && (c - READER) & !SLEEPING == WAITING {
            // The last reader out, and the waiting writer sleeps.
            self.wake_head();
        }
    }

    #[cold]
    fn wake_head(&self) {
        crate::arch::futex::wake_one(&self.cnts);
    }

    /// Waits until no writer holds the lock (readers may), spinning and
    /// yielding: for readers in interrupt context, which must not sleep.
    fn wait_unlocked_writer_spinning(&self) {
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

    /// The queue head's wait (we hold `wait_lock`) until `done(cnts)`: spins a
    /// bounded time, then sleeps on `cnts` with `SLEEPING` set until the
    /// release that makes `done` true wakes us. Returns with `SLEEPING` clear.
    fn head_wait(&self, done: impl Fn(u32) -> bool) {
        let spin = Spin::new();
        loop {
            // Acquire: pairs with the Release RMW of the unlock we waited for.
            if done(self.cnts.load(Ordering::Acquire)) {
                return;
            }
            if spin.is_completed() {
                break;
            }
            spin.snooze();
        }
        loop {
            // Acquire: as above. The RMW is ordered with the releaser's RMW on
            // the same word: either it sees SLEEPING and wakes us, or we see
            // its release here.
            let c = self.cnts.fetch_or(SLEEPING, Ordering::Acquire);
            if done(c) {
                self.cnts.fetch_and(!SLEEPING, Ordering::Relaxed);
                return;
            }
            // Sleeps only while `cnts` is unchanged since our RMW.
            crate::arch::futex::wait(&self.cnts, c | SLEEPING, None);
            self.cnts.fetch_and(!SLEEPING, Ordering::Relaxed);
        }
    }

    /// `queued_read_lock_slowpath`: our READER bias is already added.
    #[cold]
    fn read_slow(&self) {
        if crate::ctx::in_interrupt() {
            // Readers in interrupt context keep their bias and only wait for an
            // active writer (the irq rule above).
            self.wait_unlocked_writer_spinning();
            return;
        }
        // Our bias came and went, but a waiting writer may have seen it and
        // gone to sleep: leave as `read_unlock` does.
        self.unbias();
        self.wait_lock.lock();
        // Acquire: as in `read`. A waiting writer behind us in the queue has not
        // set WAITING yet (it is the queue head only after we leave it).
        self.cnts.fetch_add(READER, Ordering::Acquire);
        self.head_wait(|c| c & WLOCKED == 0);
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
            loop {
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
    /// spent, sleeps with `SLEEPING` set; the reader's unlock must wake it
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
        });
    }
}
