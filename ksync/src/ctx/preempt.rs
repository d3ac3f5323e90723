//! The preempt count and the context queries built on it.
//!
//! Each thread has a 32-bit count laid out as the kernel's `preempt_count`:
//!
//! | bits  | mask            | field    | raised by                                   |
//! |-------|-----------------|----------|---------------------------------------------|
//! | 0–7   | `PREEMPT_MASK`  | preempt  | `preempt_disable`, spinlocks held           |
//! | 8–15  | `SOFTIRQ_MASK`  | softirq  | `local_bh_disable` (by 2), serving a softirq (by 1) |
//! | 16–19 | `HARDIRQ_MASK`  | hardirq  | entering an irq handler                     |
//! | 20–23 | `NMI_MASK`      | nmi      | (unused in user space)                      |
//!
//! User space cannot stop the OS scheduler, so a raised count does not keep the
//! thread on its CPU; it marks *atomic context*, which the debugging checks
//! (`might_sleep`) and the context queries read.
//!
//! The count is changed with a plain load and store, not an atomic RMW: only the
//! owning thread and the irq handlers that interrupt it (signal handlers on the
//! same thread) touch it, and a handler always leaves it as it found it, so an
//! update interrupted between its load and store is never lost.
//!
//! The kernel's context queries read the count: [`in_interrupt`],
//! [`in_hardirq`] ([`in_irq`]), [`in_softirq`], [`in_serving_softirq`],
//! [`in_nmi`], [`in_task`], [`in_atomic`], and [`preemptible`] (which also asks
//! whether irqs are off).

use core::sync::atomic::{Ordering, compiler_fence};

use super::CTX;

/// Mask of the preemption-disable depth.
pub const PREEMPT_MASK: u32 = 0x0000_00ff;
/// Mask of the softirq field (serving + bh-disable depth).
pub const SOFTIRQ_MASK: u32 = 0x0000_ff00;
/// Mask of the hardirq nesting depth.
pub const HARDIRQ_MASK: u32 = 0x000f_0000;
/// Mask of the NMI nesting depth.
pub const NMI_MASK: u32 = 0x00f0_0000;
/// One level of `preempt_disable`.
pub const PREEMPT_OFFSET: u32 = 1;
/// Serving a softirq.
pub const SOFTIRQ_OFFSET: u32 = 0x100;
/// One level of `local_bh_disable` (twice `SOFTIRQ_OFFSET`, so "serving" stays odd).
pub const SOFTIRQ_DISABLE_OFFSET: u32 = 2 * SOFTIRQ_OFFSET;
/// One level of hardirq nesting.
pub const HARDIRQ_OFFSET: u32 = 0x1_0000;
/// One level of NMI nesting.
pub const NMI_OFFSET: u32 = 0x10_0000;

/// This thread's preempt count (`preempt_count()`).
#[inline(always)]
pub fn preempt_count() -> u32 {
    CTX.with(|c| c.preempt_count.load(Ordering::Relaxed))
}

/// Adds `val` to the preempt count (`preempt_count_add`), with a compiler barrier
/// after it so the critical section's accesses cannot move above it.
#[inline(always)]
pub fn preempt_count_add(val: u32) {
    CTX.with(|c| {
        let c = &c.preempt_count;
        c.store(
            c.load(Ordering::Relaxed).wrapping_add(val),
            Ordering::Relaxed,
        )
    });
    compiler_fence(Ordering::SeqCst);
}

/// Subtracts `val` from the preempt count (`preempt_count_sub`), with a compiler
/// barrier before it.
///
/// # Panics
/// If the field `val` belongs to would go below zero (unbalanced enable).
#[inline(always)]
pub fn preempt_count_sub(val: u32) {
    compiler_fence(Ordering::SeqCst);
    CTX.with(|c| {
        let c = &c.preempt_count;
        let old = c.load(Ordering::Relaxed);
        let mask = field_mask(val);
        if old & mask < val & mask {
            unbalanced(old, val);
        }
        c.store(old - val, Ordering::Relaxed);
    });
}

/// [`preempt_enable`] on a lock guard's exit, whose own [`preempt_disable`]
/// the count still holds: one decrement of the thread's count (`decl` on
/// x86-64), as the kernel's `preempt_enable` without
/// `CONFIG_DEBUG_PREEMPT`. The underflow check of [`preempt_count_sub`] (a
/// load, a test, a branch and a separate store around the decrement) runs
/// where that debug option would: with debug assertions or the `lockdep`
/// feature. Without them, an unbalanced [`preempt_enable`] inside the
/// guard's section (which takes the guard's own increment, so its own check
/// passes) leaves the count one too low, as in the kernel, instead of
/// panicking at the guard's drop; nothing else changes.
#[inline(always)]
pub(crate) fn preempt_enable_guard() {
    if cfg!(any(debug_assertions, feature = "lockdep")) {
        preempt_enable();
    } else {
        compiler_fence(Ordering::SeqCst);
        CTX.with(|c| {
            let c = &c.preempt_count;
            c.store(
                c.load(Ordering::Relaxed).wrapping_sub(PREEMPT_OFFSET),
                Ordering::Relaxed,
            );
        });
    }
}

#[inline(always)]
const fn field_mask(val: u32) -> u32 {
    if val & PREEMPT_MASK != 0 {
        PREEMPT_MASK
    } else if val & SOFTIRQ_MASK != 0 {
        SOFTIRQ_MASK
    } else if val & HARDIRQ_MASK != 0 {
        HARDIRQ_MASK
    } else {
        NMI_MASK
    }
}

#[cold]
#[inline(never)]
fn unbalanced(old: u32, val: u32) -> ! {
    panic!(
        "ksync: unbalanced preempt count: subtracting {val:#x} from {old:#x} (more enables than disables)"
    );
}

/// Disables preemption (`preempt_disable()`): raises the count by one. Contains a
/// compiler barrier. Nestable; each call needs one [`preempt_enable`].
#[inline(always)]
pub fn preempt_disable() {
    preempt_count_add(PREEMPT_OFFSET);
}

/// Re-enables preemption (`preempt_enable()`).
///
/// # Panics
/// If preemption was not disabled.
#[doc(alias = "preempt_enable_no_resched")]
#[inline(always)]
pub fn preempt_enable() {
    preempt_count_sub(PREEMPT_OFFSET);
}

/// A guard that holds preemption disabled until dropped. `!Send`: the count is
/// per thread.
#[must_use = "preemption is re-enabled when the guard is dropped"]
pub struct PreemptGuard {
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl PreemptGuard {
    /// `preempt_disable()` now, `preempt_enable()` on drop.
    #[inline(always)]
    pub fn new() -> Self {
        preempt_disable();
        PreemptGuard {
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Default for PreemptGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PreemptGuard {
    #[inline(always)]
    fn drop(&mut self) {
        preempt_enable();
    }
}

/// Running an irq handler, a softirq, or with bhs disabled
/// (`in_interrupt()`: hardirq, softirq or NMI count nonzero).
#[inline]
pub fn in_interrupt() -> bool {
    preempt_count() & (HARDIRQ_MASK | SOFTIRQ_MASK | NMI_MASK) != 0
}

/// Running in a hard irq handler (`in_hardirq()`, formerly `in_irq()`).
#[doc(alias = "in_irq")]
#[inline]
pub fn in_hardirq() -> bool {
    preempt_count() & HARDIRQ_MASK != 0
}

/// Marks the hard irq handler running on this thread as one that PREEMPT_RT
/// would force into a thread (`lockdep_hardirq_threaded()`): lockdep then lets
/// it take locks of [`WaitType::Config`](crate::lockdep::WaitType::Config)
/// (`SpinLock`), not only raw spinlocks.
///
/// ksync's irq dispatch marks handlers bound with
/// [`request_irq`](crate::irq::request_irq) so, and not the hard handlers of
/// [`request_threaded_irq`](crate::irq::request_threaded_irq).
/// [`irq_enter`](crate::irq::irq_enter) clears the mark when it enters the
/// outermost hardirq, as the kernel's does, and
/// [`irq_exit`](crate::irq::irq_exit) sets it again when it leaves: a hardirq
/// emulated by raising the preempt count alone counts as threaded.
#[inline]
pub fn lockdep_hardirq_threaded() {
    set_hardirq_threaded(true);
}

/// Whether the hard irq handler running on this thread would be threaded on
/// PREEMPT_RT (see [`lockdep_hardirq_threaded`]); meaningful in hardirq
/// context only.
#[inline]
pub fn hardirq_threaded() -> bool {
    // Relaxed: only this thread and its own irq handlers touch it (see the
    // module docs of `ctx`).
    !CTX.with(|c| c.hardirq_raw.load(Ordering::Relaxed))
}

/// Sets this thread's [`hardirq_threaded`] mark to `on`; returns the old one,
/// for a nested handler to restore.
#[inline]
pub(crate) fn set_hardirq_threaded(on: bool) -> bool {
    // Relaxed: as in `hardirq_threaded`.
    !CTX.with(|c| c.hardirq_raw.swap(!on, Ordering::Relaxed))
}

/// Same as [`in_hardirq`] (`in_irq()`, the kernel's older name).
#[inline]
pub fn in_irq() -> bool {
    in_hardirq()
}

/// In softirq context or with bottom halves disabled (`in_softirq()`).
#[inline]
pub fn in_softirq() -> bool {
    preempt_count() & SOFTIRQ_MASK != 0
}

/// Actually serving a softirq, not merely with bhs disabled (`in_serving_softirq()`).
#[inline]
pub fn in_serving_softirq() -> bool {
    preempt_count() & SOFTIRQ_OFFSET != 0
}

/// In an NMI handler (`in_nmi()`).
#[inline]
pub fn in_nmi() -> bool {
    preempt_count() & NMI_MASK != 0
}

/// In task (process) context: no irq, softirq or NMI (`in_task()`).
#[inline]
pub fn in_task() -> bool {
    !in_interrupt()
}

/// In atomic context: the preempt count is nonzero (`in_atomic()`). Sleeping here
/// is a bug.
#[inline]
pub fn in_atomic() -> bool {
    preempt_count() != 0
}

/// The kernel could preempt this task here: count zero and irqs enabled
/// (`preemptible()`).
#[inline]
pub fn preemptible() -> bool {
    preempt_count() == 0 && !super::irqs_disabled()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn disable_enable_nests_and_queries_follow() {
        std::thread::spawn(|| {
            assert_eq!(preempt_count(), 0);
            assert!(preemptible() && in_task() && !in_atomic());
            preempt_disable();
            preempt_disable();
            assert_eq!(preempt_count(), 2);
            assert!(in_atomic() && !preemptible() && !in_interrupt());
            preempt_enable();
            preempt_enable();
            assert_eq!(preempt_count(), 0);
            {
                let _g = PreemptGuard::new();
                assert_eq!(preempt_count(), 1);
            }
            assert_eq!(preempt_count(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn fields_are_separate() {
        std::thread::spawn(|| {
            preempt_count_add(SOFTIRQ_DISABLE_OFFSET);
            assert!(in_softirq() && !in_serving_softirq() && in_interrupt() && !in_hardirq());
            preempt_count_add(HARDIRQ_OFFSET);
            assert!(in_hardirq() && in_irq());
            preempt_count_sub(HARDIRQ_OFFSET);
            preempt_count_sub(SOFTIRQ_DISABLE_OFFSET);
            assert_eq!(preempt_count(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn unbalanced_enable_panics() {
        let r = std::thread::spawn(preempt_enable).join();
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("unbalanced preempt count"), "{msg}");
    }
}
