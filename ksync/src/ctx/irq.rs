//! The irq-off and bh-off state of this thread: `local_irq_*` and `local_bh_*`.
//!
//! `local_irq_disable` is a per-thread flag, not a system call (lazy masking,
//! as powerpc's soft-masked interrupts): the irq signal is still delivered, and
//! the irq layer's handler, seeing the flag, only records the irq as pending.
//! Enabling irqs runs what was held ([`run_deferred_work`]), through the work
//! word (see the [module docs](super#a-leaf-and-how-enabling-still-runs-deferred-work)).
//! Bottom halves are off while the preempt count's softirq field is nonzero.

use core::sync::atomic::{Ordering, compiler_fence};

use super::{CTX, SOFTIRQ_DISABLE_OFFSET, preempt_count_add, preempt_count_sub};
use super::{run_deferred_work, work_pending};

/// The saved irq state returned by [`local_irq_save`] (`unsigned long flags`).
///
/// `!Send`: the state belongs to the thread that saved it and must be restored
/// there, as the kernel's flags belong to one CPU.
///
/// ```compile_fail
/// let flags = ksync::irq::local_irq_save();
/// std::thread::spawn(move || ksync::irq::local_irq_restore(flags));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the flags must be passed to local_irq_restore"]
pub struct IrqFlags {
    disabled: bool,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl IrqFlags {
    /// Whether irqs were disabled when the flags were saved (`irqs_disabled_flags`).
    #[doc(alias = "irqs_disabled_flags")]
    pub fn irqs_disabled(self) -> bool {
        self.disabled
    }
}

/// Whether hardirqs are disabled on this thread (`irqs_disabled()`).
#[inline(always)]
pub fn irqs_disabled() -> bool {
    CTX.with(|c| c.irqs_off.load(Ordering::Relaxed))
}

/// Disables hardirqs on this thread (`local_irq_disable()`): sets the thread's
/// flag, no system call. An irq that arrives now is held pending until
/// [`local_irq_enable`]. Not nestable: use [`local_irq_save`] where irqs may
/// already be off.
#[inline(always)]
pub fn local_irq_disable() {
    // Relaxed: only this thread and its own signal handlers read the flag, and a
    // signal handler sees every store its thread made before the interruption.
    // The compiler fence keeps the critical section's accesses below the store.
    CTX.with(|c| c.irqs_off.store(true, Ordering::Relaxed));
    compiler_fence(Ordering::SeqCst);
}

/// Enables hardirqs on this thread (`local_irq_enable()`), then runs the handlers
/// of irqs that arrived while they were disabled (and softirqs left pending),
/// oldest first.
#[inline(always)]
pub fn local_irq_enable() {
    compiler_fence(Ordering::SeqCst);
    let work = CTX.with(|c| {
        c.irqs_off.store(false, Ordering::Relaxed);
        // Keep the check below the store: an irq arriving between the two runs
        // at once (the flag is clear) and drains what was pending itself; one
        // that arrived before the store is seen here.
        compiler_fence(Ordering::SeqCst);
        c.work.load(Ordering::Relaxed)
    });
    if work != 0 {
        run_deferred_work();
    }
}

/// Disables hardirqs and returns the previous state (`local_irq_save(flags)`).
/// Nests: each save is undone by its own [`local_irq_restore`].
#[inline(always)]
pub fn local_irq_save() -> IrqFlags {
    // A load and a store, not a swap: only this thread and its signal handlers
    // touch the flag, and a handler always leaves it as it found it, so an irq
    // arriving between the two cannot make the saved value stale.
    let disabled = CTX.with(|c| {
        let was = c.irqs_off.load(Ordering::Relaxed);
        c.irqs_off.store(true, Ordering::Relaxed);
        was
    });
    compiler_fence(Ordering::SeqCst);
    IrqFlags {
        disabled,
        _not_send: core::marker::PhantomData,
    }
}

/// Restores the irq state saved by [`local_irq_save`] (`local_irq_restore(flags)`):
/// re-enables irqs (running pending ones) only if they were enabled at the save.
#[inline(always)]
pub fn local_irq_restore(flags: IrqFlags) {
    if flags.disabled {
        // Restoring "disabled" while irqs are on: the save and this restore
        // were not nested with what enabled irqs in between (guards dropped
        // out of order). The kernel's CONFIG_DEBUG_IRQFLAGS check.
        #[cfg(feature = "lockdep")]
        if !irqs_disabled() {
            super::bogus_irq_restore();
        }
        compiler_fence(Ordering::SeqCst);
        CTX.with(|c| c.irqs_off.store(true, Ordering::Relaxed));
    } else {
        local_irq_enable();
    }
}

/// Disables bottom halves (softirqs, tasklets, timers) on this thread
/// (`local_bh_disable()`): raises the preempt count by `SOFTIRQ_DISABLE_OFFSET`.
/// Nestable.
#[inline(always)]
pub fn local_bh_disable() {
    preempt_count_add(SOFTIRQ_DISABLE_OFFSET);
}

/// Re-enables bottom halves (`local_bh_enable()`). When the count drops to zero
/// outside interrupt context and irqs are enabled, softirqs raised meanwhile run
/// now, on this thread.
///
/// # Panics
/// If bottom halves were not disabled.
#[inline(always)]
pub fn local_bh_enable() {
    preempt_count_sub(SOFTIRQ_DISABLE_OFFSET);
    if work_pending() {
        run_deferred_work();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ctx::{in_serving_softirq, in_softirq, preemptible};

    #[test]
    fn save_restore_nests() {
        std::thread::spawn(|| {
            assert!(!irqs_disabled());
            let outer = local_irq_save();
            assert!(irqs_disabled() && !outer.irqs_disabled());
            let inner = local_irq_save();
            assert!(inner.irqs_disabled());
            local_irq_restore(inner);
            assert!(irqs_disabled(), "inner restore must keep irqs off");
            local_irq_restore(outer);
            assert!(!irqs_disabled());
            assert!(preemptible());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn bh_disable_is_counted() {
        std::thread::spawn(|| {
            local_bh_disable();
            local_bh_disable();
            assert!(in_softirq() && !in_serving_softirq());
            local_bh_enable();
            assert!(in_softirq());
            local_bh_enable();
            assert!(!in_softirq());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn unbalanced_bh_enable_panics() {
        let r = std::thread::spawn(local_bh_enable).join();
        assert!(r.is_err());
    }
}
