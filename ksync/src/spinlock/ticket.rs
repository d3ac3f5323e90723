//! The ticket spinlock (the kernel's x86 spinlock from 2.6.25 until qspinlock
//! replaced it in 4.2): strict FIFO order, two counters.
//!
//! | field   | meaning                                  | written by                    |
//! |---------|------------------------------------------|-------------------------------|
//! | `next`  | the next ticket to hand out              | every `lock` (`fetch_add`)    |
//! | `owner` | the ticket now served (holder's ticket)  | the holder only (`unlock`)    |
//!
//! Unlocked ⇔ `owner == next`; locked with `next - owner - 1` waiters otherwise
//! (wrapping arithmetic). The two counters are separate 32-bit words so that the
//! unlock is a plain release store of `owner + 1` (only the holder writes
//! `owner`), not an RMW on a word the waiters are incrementing.
//!
//! Waiters spin on `owner` with backoff proportional to their distance in line
//! and yield once the backoff is spent; they never sleep. Ticket order is fair,
//! but it hands the lock to the next ticket even when that thread is preempted
//! (the lock-waiter-preemption problem the bench's oversubscribed rows show).

use super::raw::{RawSpin, Spin};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

/// Ticket spinlock (`arch_spinlock_t` with `head`/`tail` tickets).
#[derive(Debug)]
#[repr(C)]
pub struct Ticket {
    owner: AtomicU32,
    next: AtomicU32,
}

// SAFETY: each ticket is handed out once (`fetch_add`), and only the holder of
// ticket `owner` runs; `owner` advances by Release store, observed by Acquire.
unsafe impl RawSpin for Ticket {
    #[cfg(not(loom))]
    const INIT: Self = Ticket {
        owner: AtomicU32::new(0),
        next: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        Ticket {
            owner: AtomicU32::new(0),
            next: AtomicU32::new(0),
        }
    }
    const NAME: &'static str = "ticket";

    #[inline]
    fn lock(&self) {
        // Relaxed: taking a ticket orders nothing; the Acquire load of `owner`
        // below pairs with the previous holder's Release store.
        let me = self.next.fetch_add(1, Ordering::Relaxed);
        if self.owner.load(Ordering::Acquire) != me {
            self.wait(me);
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        // Acquire: pairs with the Release store of `owner` in `unlock`.
        let o = self.owner.load(Ordering::Acquire);
        self.next
            .compare_exchange(o, o.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    unsafe fn unlock(&self) {
        // Only the holder writes `owner`, so a load and a store suffice.
        let o = self.owner.load(Ordering::Relaxed);
        // Release: pairs with the next ticket holder's Acquire load.
        self.owner.store(o.wrapping_add(1), Ordering::Release);
    }

    fn is_locked(&self) -> bool {
        self.owner.load(Ordering::Relaxed) != self.next.load(Ordering::Relaxed)
    }

    fn is_contended(&self) -> bool {
        let o = self.owner.load(Ordering::Relaxed);
        self.next.load(Ordering::Relaxed).wrapping_sub(o) > 1
    }
}

impl Ticket {
    #[cold]
    fn wait(&self, me: u32) {
        let spin = Spin::new();
        loop {
            // Acquire: pairs with the Release store of `owner` in `unlock`.
            let o = self.owner.load(Ordering::Acquire);
            if o == me {
                return;
            }
            let ahead = me.wrapping_sub(o);
            if ahead > 1 && spin.is_completed() {
                // Not next in line and the line is not moving: give the CPU to
                // the threads ahead of us (one of them may be the preempted
                // holder or the next ticket).
                crate::arch::yield_now();
                continue;
            }
            // Proportional backoff: one relax per thread ahead of us, then the
            // randomized backoff (which ends in yields).
            for _ in 1..ahead.min(64) {
                crate::arch::cpu_relax();
            }
            if spin.is_completed() {
                crate::arch::yield_now();
            } else {
                spin.snooze();
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_ticket_mutual_exclusion() {
        super::super::loom_support::mutual_exclusion::<Ticket>(2);
    }
}
