//! The one lock the irq subsystem itself needs (the timer base, the `ksoftirqd`
//! queue): a test-and-test-and-set spinlock always taken with irqs disabled, so
//! an irq handler on the holder's own thread can never spin on it (it is held
//! pending until the unlock). Async-signal-safe: atomics, `sched_yield`, nothing
//! else. Critical sections are a few list operations long.
//!
//! (The general-purpose `spin_lock_irqsave` is `ksync::spinlock::SpinLock`; this
//! private one keeps the irq layer below the spinlock layer, as DESIGN.md's
//! layering requires.)

use core::sync::atomic::{AtomicBool, Ordering};

use super::{IrqFlags, local_irq_restore, local_irq_save};
use crate::Backoff;

pub(crate) struct IrqSpinLock {
    locked: AtomicBool,
}

impl IrqSpinLock {
    pub(crate) const fn new() -> Self {
        IrqSpinLock {
            locked: AtomicBool::new(false),
        }
    }

    /// Disables irqs, then takes the lock (`raw_spin_lock_irqsave`).
    pub(crate) fn lock(&self) -> IrqFlags {
        // A fork from a foreign signal handler on this thread must not wait
        // for this lock (see `super::fork`).
        crate::arch::fork_lock_enter();
        self.lock_unmarked()
    }

    /// [`lock`](Self::lock) without the fork mark: for the fork handlers.
    pub(crate) fn lock_unmarked(&self) -> IrqFlags {
        let flags = local_irq_save();
        let backoff = Backoff::new();
        loop {
            // Acquire pairs with the Release store in `unlock`: the previous
            // holder's critical section happens before ours.
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return flags;
            }
            while self.locked.load(Ordering::Relaxed) {
                backoff.snooze();
            }
        }
    }

    /// Releases the lock and restores the irq state (`raw_spin_unlock_irqrestore`).
    pub(crate) fn unlock(&self, flags: IrqFlags) {
        // Release pairs with the Acquire CAS in `lock`.
        self.locked.store(false, Ordering::Release);
        crate::arch::fork_lock_exit();
        local_irq_restore(flags);
    }

    /// [`unlock`](Self::unlock) of a [`lock_unmarked`](Self::lock_unmarked).
    #[cfg(not(loom))]
    pub(crate) fn unlock_unmarked(&self, flags: IrqFlags) {
        // Release pairs with the Acquire CAS in `lock`.
        self.locked.store(false, Ordering::Release);
        local_irq_restore(flags);
    }
}
