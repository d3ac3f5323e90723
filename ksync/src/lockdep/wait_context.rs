//! Wait contexts (`check_wait_context`): a lock taken where its waiters could
//! not wait — a `SpinLock` (`spinlock_t`, a sleeping lock on PREEMPT_RT)
//! inside a `RawSpinLock`, inside `rcu_read_lock_sched` or in a hardirq
//! handler that is not threaded; a sleeping lock inside any of those or
//! inside a spinning lock, an RCU reader, a softirq or a threaded hardirq.
//!
//! Each class has an inner and an outer [`WaitType`](super::WaitType). The
//! context of an acquisition is the strictest of the irq context's own type
//! (`task_wait_context`: a hardirq handler [`Spin`](super::WaitType::Spin),
//! or [`Config`](super::WaitType::Config) if threaded; a softirq `Config`;
//! task context none) and the inner types of the locks held in the same irq
//! context. A lock whose outer type is looser than that is reported. Trylocks
//! are not checked (they never wait) but count as held for later ones; maps
//! without a wait type take no part.
//!
//! The strictest inner type of the held locks is kept in each held-lock entry
//! (`Held::wait_min`), so the check reads the top entry only and stays on the
//! fast path of an acquisition.

use std::fmt::Write as _;

use super::WaitType;
use super::classes::{cdesc, class, inner, outer};
use super::held::{Held, Tls, WAIT_NONE, held_text};
use super::report::{Report, ReportKind, banner, current_trace, thread_name};
use super::state::{irqs_held_back, state};
use crate::ctx::{self, HARDIRQ_MASK, SOFTIRQ_OFFSET};

/// The wait type of the irq context itself (`task_wait_context`): a hardirq
/// handler spins ([`WaitType::Spin`]) unless PREEMPT_RT would thread it
/// ([`WaitType::Config`]); softirqs are threaded on PREEMPT_RT (`Config`);
/// task context allows everything ([`WAIT_NONE`]).
#[inline]
fn task_wait_context(pc: u32) -> u8 {
    if pc & HARDIRQ_MASK != 0 {
        if ctx::hardirq_threaded() {
            WaitType::Config as u8
        } else {
            WaitType::Spin as u8
        }
    } else if pc & SOFTIRQ_OFFSET != 0 {
        WaitType::Config as u8
    } else {
        WAIT_NONE
    }
}

/// The strictest wait type of the context that `h` is acquired in on stack
/// `t` with preempt count `pc` (the kernel's `curr_inner`).
#[inline]
fn curr_inner(t: &Tls, h: &Held, pc: u32) -> u8 {
    task_wait_context(pc).min(t.wait_min(h.ctx))
}

/// Whether acquiring `h` on stack `t` with preempt count `pc` is taken in an
/// invalid wait context: its outer wait type is looser than the context's.
#[inline]
pub(super) fn invalid(t: &Tls, h: &Held, pc: u32) -> bool {
    invalid_on(t.wait_min(h.ctx), h.waits, h.trylock, pc)
}

/// [`invalid`] for a lock with packed wait types `waits`, on a stack whose
/// strictest inner wait type in this irq context is `held_min`
/// ([`Tls::below`]).
#[inline(always)]
pub(super) fn invalid_on(held_min: u8, waits: u8, trylock: bool, pc: u32) -> bool {
    let o = outer(waits);
    // `o > min(task, held_min)`, with the irq context's type asked for only
    // in an irq (outside one it is `WAIT_NONE`, above every outer type).
    inner(waits) != 0
        && !trylock
        && (o > held_min
            || (pc & (HARDIRQ_MASK | SOFTIRQ_OFFSET) != 0 && o > task_wait_context(pc)))
}

/// A wait type as the kernel prints it (`{outer:inner}`' digits).
fn wait_name(w: u8) -> &'static str {
    match w {
        0 => "INV",
        1 => "FREE",
        2 => "SPIN",
        3 => "CONFIG",
        4 => "SLEEP",
        _ => "MAX",
    }
}

/// "BUG: Invalid wait context" (`print_lock_invalid_wait_context`): `h` is
/// acquired on stack `t` where its waiters could not wait. Once per class and
/// context.
#[cold]
pub(super) fn report(t: &Tls, h: &Held, pc: u32, out: &mut Vec<Report>) {
    let tid = crate::arch::gettid();
    let curr = curr_inner(t, h, pc);
    let task = task_wait_context(pc);
    if !irqs_held_back(|| {
        // One word: `once` sorts its ids, which would mix the fields.
        let key = h.class << 6 | u32::from(curr) << 3 | u32::from(task);
        state().once(ReportKind::InvalidWaitContext, vec![key], 0)
    }) {
        return;
    }
    let name = thread_name();
    let mut text = banner(ReportKind::InvalidWaitContext);
    let (o, i) = (outer(h.waits), inner(h.waits));
    let _ = writeln!(
        text,
        "{name}/{tid} is trying to lock:\n  {:#x} {}-{{{o}:{i}}}\n",
        h.map,
        cdesc(h.class)
    );
    let _ = writeln!(
        text,
        "other info that might help us debug this:\ncontext-{{{task}:{task}}}\n\
         (a {} lock taken where the context allows {} at most: the irq context \
         is {}, the held locks' strictest inner type is {})",
        wait_name(o),
        wait_name(curr),
        wait_name(task),
        wait_name(t.wait_min(h.ctx)),
    );
    text.push_str(&held_text(t, tid, Some(&name)));
    text.push_str(&current_trace());
    let mut classes = vec![class(h.class).name];
    classes.extend(
        t.held[..t.depth]
            .iter()
            .filter(|x| x.ctx == h.ctx && inner(x.waits) != 0 && inner(x.waits) < o)
            .map(|x| class(x.class).name),
    );
    out.push(Report {
        kind: ReportKind::InvalidWaitContext,
        classes,
        text,
        tid,
    });
}
