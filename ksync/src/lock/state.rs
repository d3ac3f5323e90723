//! Guard states: what a [`Guard`](super::Guard) undoes after its unlock.
//!
//! A spinlock's `_irq`, `_irqsave` and `_bh` variants change the execution
//! context before they take the lock, and every spinning lock raises the preempt
//! count; the unlock restores both, in the kernel's order. A sleeping lock changes
//! nothing (`()`). Each variant is its own type, so a guard's drop is straight-line
//! code: the plain spinlock guard's drop is the raw unlock and one
//! decrement of the preempt count (`preempt_enable_guard`), with nothing to
//! match. [`AnyCtx`] is the one state chosen at
//! run time, for code that picks the variant from a value (the seqlock's writer,
//! torture tests): [`Guard::into_any`](super::Guard::into_any) turns a typed guard
//! into it.

use crate::ctx::{self, IrqFlags};
use crate::ctx::{preempt_disable, preempt_enable_guard};

/// What a guard restores after the unlock: the context its acquisition entered
/// before taking the lock (irqs or bhs off, the preempt count raised), or nothing.
pub trait GuardState: Copy {
    /// Enters the context, before lockdep and the lock (`local_irq_save`,
    /// `local_bh_disable`, `preempt_disable` …), and returns what to undo.
    fn enter() -> Self;

    /// Undoes [`enter`](Self::enter), after the unlock, in the kernel's order:
    /// irqs are restored before the preempt count drops
    /// (`__raw_spin_unlock_irqrestore`); for bhs the count drops first, so pending
    /// softirqs run preemptible (`__local_bh_enable_ip`).
    fn exit(self);

    /// Enters again the context that `self` was made by (the relock of
    /// [`Guard::do_unlocked`](super::Guard::do_unlocked)).
    #[inline(always)]
    fn reenter(self) -> Self {
        Self::enter()
    }

    /// The irq flags this state restores, if it holds any (`_irqsave`).
    #[inline]
    fn saved_flags(&self) -> Option<IrqFlags> {
        None
    }
}

/// Sleeping locks (mutex, rwsem): no context change.
impl GuardState for () {
    #[inline(always)]
    fn enter() {}
    #[inline(always)]
    fn exit(self) {}
}

/// Plain `spin_lock` (and `local_lock`): the preempt count only.
#[derive(Clone, Copy, Debug)]
pub struct Preempt(());

impl GuardState for Preempt {
    #[inline(always)]
    fn enter() -> Self {
        preempt_disable();
        Preempt(())
    }
    #[inline(always)]
    fn exit(self) {
        preempt_enable_guard();
    }
}

/// `spin_lock_irq`: irqs off, then the preempt count; the unlock re-enables irqs
/// unconditionally (`spin_unlock_irq`).
#[derive(Clone, Copy, Debug)]
pub struct IrqOff(());

impl GuardState for IrqOff {
    #[inline(always)]
    fn enter() -> Self {
        ctx::local_irq_disable();
        preempt_disable();
        IrqOff(())
    }
    #[inline(always)]
    fn exit(self) {
        ctx::local_irq_enable();
        preempt_enable_guard();
    }
}

/// `spin_lock_irqsave`: the saved irq flags, restored on unlock
/// (`spin_unlock_irqrestore`).
#[derive(Clone, Copy, Debug)]
pub struct IrqSave(IrqFlags);

impl GuardState for IrqSave {
    #[inline(always)]
    fn enter() -> Self {
        let flags = ctx::local_irq_save();
        preempt_disable();
        IrqSave(flags)
    }
    #[inline(always)]
    fn exit(self) {
        ctx::local_irq_restore(self.0);
        preempt_enable_guard();
    }
    #[inline]
    fn saved_flags(&self) -> Option<IrqFlags> {
        Some(self.0)
    }
}

/// `spin_lock_bh`: bottom halves off, then the preempt count; the unlock drops the
/// count first, then re-enables bhs (`spin_unlock_bh`).
#[derive(Clone, Copy, Debug)]
pub struct BhOff(());

impl GuardState for BhOff {
    #[inline(always)]
    fn enter() -> Self {
        ctx::local_bh_disable();
        preempt_disable();
        BhOff(())
    }
    #[inline(always)]
    fn exit(self) {
        preempt_enable_guard();
        ctx::local_bh_enable();
    }
}

/// Any of the spinning variants, chosen at run time: the guard's drop matches on
/// it. Made only from a typed state ([`Guard::into_any`](super::Guard::into_any));
/// its [`enter`](GuardState::enter) is the plain variant's.
#[derive(Clone, Copy, Debug)]
pub enum AnyCtx {
    /// [`Preempt`]: `spin_lock`.
    Plain(Preempt),
    /// [`IrqOff`]: `spin_lock_irq`.
    Irq(IrqOff),
    /// [`IrqSave`]: `spin_lock_irqsave`.
    IrqSave(IrqSave),
    /// [`BhOff`]: `spin_lock_bh`.
    Bh(BhOff),
}

impl GuardState for AnyCtx {
    #[inline]
    fn enter() -> Self {
        AnyCtx::Plain(Preempt::enter())
    }
    #[inline]
    fn exit(self) {
        match self {
            AnyCtx::Plain(s) => s.exit(),
            AnyCtx::Irq(s) => s.exit(),
            AnyCtx::IrqSave(s) => s.exit(),
            AnyCtx::Bh(s) => s.exit(),
        }
    }
    #[inline]
    fn reenter(self) -> Self {
        match self {
            AnyCtx::Plain(s) => AnyCtx::Plain(s.reenter()),
            AnyCtx::Irq(s) => AnyCtx::Irq(s.reenter()),
            AnyCtx::IrqSave(s) => AnyCtx::IrqSave(s.reenter()),
            AnyCtx::Bh(s) => AnyCtx::Bh(s.reenter()),
        }
    }
    #[inline]
    fn saved_flags(&self) -> Option<IrqFlags> {
        match self {
            AnyCtx::IrqSave(s) => s.saved_flags(),
            _ => None,
        }
    }
}

impl From<Preempt> for AnyCtx {
    #[inline]
    fn from(s: Preempt) -> Self {
        AnyCtx::Plain(s)
    }
}

impl From<IrqOff> for AnyCtx {
    #[inline]
    fn from(s: IrqOff) -> Self {
        AnyCtx::Irq(s)
    }
}

impl From<IrqSave> for AnyCtx {
    #[inline]
    fn from(s: IrqSave) -> Self {
        AnyCtx::IrqSave(s)
    }
}

impl From<BhOff> for AnyCtx {
    #[inline]
    fn from(s: BhOff) -> Self {
        AnyCtx::Bh(s)
    }
}
