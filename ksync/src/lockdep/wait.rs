//! Wait context: sleeping where the thread must not (`__might_sleep`): with a
//! raised preempt count, irqs off, a spinning lock held or inside an RCU read
//! section; a sleeping lock's acquisition there is such a sleep; and waiting for a
//! grace period inside an RCU read section (`RCU_LOCKDEP_WARN`).

use std::fmt::Write as _;

use super::classes::{F_RCU, F_SLEEP, F_SPIN, cdesc, class};
use super::held::{Held, Tls, held_text, held_text_now, with_tls};
use super::report::{Report, ReportKind, banner, current_trace, thread_name};
use super::state::{emit_all, irqs_held_back, state};

/// Whether acquiring `h` on stack `t` is a sleep in atomic context: a sleeping
/// lock taken (not tried) with preempt count `pc` raised, irqs off, a spinning
/// lock held or inside an RCU read section.
#[inline]
pub(super) fn sleeps_in_atomic(t: &Tls, h: &Held, pc: u32, irqs_off: bool) -> bool {
    sleeps_in_atomic_bits(t, h.flags, h.trylock, pc, irqs_off)
}

/// [`sleeps_in_atomic`] for a lock with class flags `flags`, before its
/// held-lock entry exists.
#[inline(always)]
pub(super) fn sleeps_in_atomic_bits(
    t: &Tls,
    flags: u8,
    trylock: bool,
    pc: u32,
    irqs_off: bool,
) -> bool {
    flags & F_SLEEP != 0 && !trylock && (pc != 0 || irqs_off || t.spin + t.rcu != 0)
}

/// "sleeping function called from invalid context" (`__might_sleep`), by the
/// thread whose stack is `t`, with preempt count `pc` and irqs off or not;
/// `acquiring`: the sleeping lock whose acquisition is the sleep.
pub(super) fn sleep_report(
    t: &Tls,
    pc: u32,
    irqs_off: bool,
    acquiring: Option<u32>,
    out: &mut Vec<Report>,
) {
    let tid = crate::arch::gettid();
    let offenders: Vec<u32> = t.held[..t.depth]
        .iter()
        .filter(|h| h.flags & (F_SPIN | F_RCU) != 0)
        .map(|h| h.class)
        .collect();
    // Once per thread and atomic context (the locks making it atomic, the
    // preempt count, the irq flag) — not per lock being acquired: a contended
    // mutex_lock under a spinlock reports at its acquire and would again at
    // its sleep, one bug (the kernel rate-limits __might_sleep likewise).
    let mut ids = offenders.clone();
    ids.push(pc);
    ids.push(u32::from(irqs_off));
    if !state().once(ReportKind::SleepInAtomic, ids, tid) {
        return;
    }
    let name = thread_name();
    let mut text = banner(ReportKind::SleepInAtomic);
    if let Some(id) = acquiring {
        let _ = writeln!(text, "acquiring sleeping lock {}", cdesc(id));
    }
    let _ = writeln!(
        text,
        "in_atomic(): {}, irqs_disabled(): {}, non_block: 0, pid: {tid}, name: {name}\npreempt_count: {pc:#x}, expected: 0\nRCU nest depth: {}, expected: 0",
        u32::from(pc != 0),
        u32::from(irqs_off),
        t.rcu
    );
    text.push_str(&held_text(t, tid, Some(&name)));
    text.push_str(&current_trace());
    let mut classes: Vec<&'static str> = offenders.iter().map(|&c| class(c).name).collect();
    if let Some(id) = acquiring {
        classes.push(class(id).name);
    }
    out.push(Report {
        kind: ReportKind::SleepInAtomic,
        classes,
        text,
        tid,
    });
}

/// The slow path of `might_sleep`: the context is atomic; report it.
#[cold]
#[inline(never)]
pub(super) fn might_sleep_slow(pc: u32, irqs_off: bool) {
    let out = with_tls(|t| {
        let mut out = Vec::new();
        sleep_report(t, pc, irqs_off, None, &mut out);
        out
    });
    if let Some(out) = out {
        emit_all(out);
    }
}

/// The RCU read sections this thread holds; 0 if its stack is gone or busy.
pub(super) fn rcu_depth() -> u32 {
    with_tls(|t| t.rcu).unwrap_or(0)
}

/// "Illegal synchronize_rcu() in RCU read-side critical section": `what`, a wait
/// for a grace period, called inside an RCU read section.
pub(super) fn assert_not_in_rcu(what: &'static str) {
    if rcu_depth() == 0 {
        return;
    }
    let tid = crate::arch::gettid();
    let Some((ids, names)) = with_tls(|t| {
        let held = t.held[..t.depth].iter().filter(|h| h.flags & F_RCU != 0);
        (
            held.clone().map(|h| h.class).collect::<Vec<_>>(),
            held.map(|h| class(h.class).name).collect::<Vec<_>>(),
        )
    }) else {
        return;
    };
    if !irqs_held_back(|| state().once(ReportKind::RcuSyncInReader, ids, tid)) {
        return;
    }
    let mut text = banner(ReportKind::RcuSyncInReader);
    let _ = writeln!(
        text,
        "Illegal {what}() in RCU read-side critical section!\n\nother info that might help us debug this:\n\nrcu_scheduler_active = 2, debug_locks = 1"
    );
    text.push_str(&held_text_now(tid));
    text.push_str(&current_trace());
    emit_all(vec![Report {
        kind: ReportKind::RcuSyncInReader,
        classes: names,
        text,
        tid,
    }]);
}
