//! Interrupts and bottom halves: `local_irq_*`, `local_bh_*`.
//!
//! `local_irq_disable` is a per-thread flag, not a system call (lazy masking): an
//! irq that arrives while the flag is set is recorded and its handler runs at
//! `local_irq_enable`/`local_irq_restore`.

use core::sync::atomic::{AtomicBool, Ordering, compiler_fence};

use crate::sched::{SOFTIRQ_DISABLE_OFFSET, preempt_count_add, preempt_count_sub};

thread_local! {
    /// Whether hardirqs are disabled on this thread. Const-initialised, no
    /// destructor: async-signal-safe to read from the irq (signal) handler.
    static IRQS_DISABLED: AtomicBool = const { AtomicBool::new(false) };
}

/// The saved irq state returned by [`local_irq_save`] (`unsigned long flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the flags must be passed to local_irq_restore"]
pub struct IrqFlags {
    disabled: bool,
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
    IRQS_DISABLED.with(|f| f.load(Ordering::Relaxed))
}

/// Disables hardirqs on this thread (`local_irq_disable()`). Not nestable: use
/// [`local_irq_save`] where irqs may already be off.
#[inline(always)]
pub fn local_irq_disable() {
    IRQS_DISABLED.with(|f| f.store(true, Ordering::Relaxed));
    compiler_fence(Ordering::SeqCst);
}

/// Enables hardirqs on this thread (`local_irq_enable()`), running the handlers of
/// irqs that arrived while they were disabled.
#[inline(always)]
pub fn local_irq_enable() {
    compiler_fence(Ordering::SeqCst);
    IRQS_DISABLED.with(|f| f.store(false, Ordering::Relaxed));
    compiler_fence(Ordering::SeqCst);
}

/// Disables hardirqs and returns the previous state (`local_irq_save(flags)`).
#[inline(always)]
pub fn local_irq_save() -> IrqFlags {
    let disabled = irqs_disabled();
    local_irq_disable();
    IrqFlags { disabled }
}

/// Restores the irq state saved by [`local_irq_save`] (`local_irq_restore(flags)`).
#[inline(always)]
pub fn local_irq_restore(flags: IrqFlags) {
    if !flags.disabled {
        local_irq_enable();
    }
}

/// Disables bottom halves (softirqs, tasklets, timers) on this thread
/// (`local_bh_disable()`). Nestable.
#[inline(always)]
pub fn local_bh_disable() {
    preempt_count_add(SOFTIRQ_DISABLE_OFFSET);
}

/// Re-enables bottom halves (`local_bh_enable()`), running pending softirqs when
/// the count drops to zero outside interrupt context.
#[inline(always)]
pub fn local_bh_enable() {
    preempt_count_sub(SOFTIRQ_DISABLE_OFFSET);
}
