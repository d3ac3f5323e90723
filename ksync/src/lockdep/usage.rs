//! Irq usage: the irq context of an acquisition, the usage bits it sets on its
//! class (`mark_usage`), and the two irq rules: a class used in an irq must not
//! also be taken with that irq enabled ("inconsistent lock state"), and no
//! irq-safe class may be held, directly or through the graph, while an irq-unsafe
//! one is taken (`check_irq_usage`).
//!
//! The bit layout and names are the class's (`classes`); the context is read
//! from the preempt count that the hooks pass in.

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::AcquireKind;
use super::classes::{self, ENABLED, HARD, SOFT, USAGE_NAMES, USED_IN, cdesc, class, ubit};
use super::held::{Tls, held_text};
use super::report::{Report, ReportKind, banner, current_trace, thread_name};
use super::state::{State, state};
use crate::ctx::{HARDIRQ_MASK, SOFTIRQ_MASK, SOFTIRQ_OFFSET};

/// The usage bits that conflict with usage bit number `b` (`exclusive_bit` and
/// its read variant): used-in-irq write vs enabled read or write; used-in-irq read
/// vs enabled write. Two reads never conflict (recursive readers cannot deadlock).
const fn conflicts(b: u32) -> u32 {
    let irq = b / 4;
    let dir = (b / 2) % 2;
    let read = b % 2 == 1;
    let other = 1 - dir;
    if read {
        ubit(irq, other, false)
    } else {
        ubit(irq, other, false) | ubit(irq, other, true)
    }
}

/// The irq context of preempt count `pc`: 0 process, 1 softirq, 2 hardirq
/// (`irq_context`). A chain of held locks starts afresh in each.
#[inline]
pub(super) fn irq_context(pc: u32) -> u8 {
    if pc & HARDIRQ_MASK != 0 {
        2
    } else if pc & SOFTIRQ_OFFSET != 0 {
        1
    } else {
        0
    }
}

/// The usage bits an acquisition in this context sets (`mark_usage`).
#[inline]
pub(super) fn usage_needed(kind: AcquireKind, trylock: bool, pc: u32, irqs_off: bool) -> u32 {
    let read = kind != AcquireKind::Exclusive;
    let hardirq = pc & HARDIRQ_MASK != 0;
    let softirq = pc & SOFTIRQ_OFFSET != 0;
    let mut need = 0;
    if !trylock {
        if hardirq {
            need |= ubit(HARD, USED_IN, read);
        }
        if softirq {
            need |= ubit(SOFT, USED_IN, read);
        }
    }
    if !(irqs_off || hardirq) {
        need |= ubit(HARD, ENABLED, read);
        if pc & SOFTIRQ_MASK == 0 {
            need |= ubit(SOFT, ENABLED, read);
        }
    }
    need
}

fn context_text(pc: u32, irqs_off: bool) -> String {
    format!(
        "[HC{}[{}]:SC{}[{}]:HE{}:SE{}]",
        u32::from(pc & HARDIRQ_MASK != 0),
        (pc & HARDIRQ_MASK) >> 16,
        u32::from(pc & SOFTIRQ_OFFSET != 0),
        (pc & SOFTIRQ_MASK) >> 8,
        u32::from(!(irqs_off || pc & HARDIRQ_MASK != 0)),
        u32::from(pc & SOFTIRQ_MASK == 0),
    )
}

/// The first class reachable in the graph from `start` (itself included)
/// forwards (`forward`) or backwards whose usage has any of `bits`, with the path
/// (`find_usage_forwards`, `find_usage_backwards`).
fn find_usage(st: &State, start: u32, forward: bool, bits: u32) -> Option<Vec<u32>> {
    let n = st.fwd.len();
    let mut parent = vec![u32::MAX; n];
    let mut q = VecDeque::new();
    parent[start as usize] = start;
    q.push_back(start);
    while let Some(c) = q.pop_front() {
        if classes::usage(c) & bits != 0 {
            let mut path = vec![c];
            let mut x = c;
            while x != start {
                x = parent[x as usize];
                path.push(x);
            }
            path.reverse();
            return Some(path);
        }
        let mut visit = |to: u32| {
            if parent[to as usize] == u32::MAX {
                parent[to as usize] = c;
                q.push_back(to);
            }
        };
        if forward {
            st.fwd[c as usize].iter().for_each(|e| visit(e.to));
        } else {
            st.back[c as usize].iter().copied().for_each(&mut visit);
        }
    }
    None
}

/// The irq-safe → irq-unsafe rule (`check_irq_usage`), for a new edge
/// `prev` → `next`: no class that is used in an irq may, through the graph,
/// be held while a class taken with that irq enabled is acquired. Only write
/// usage counts on both sides (conservative: no false positives from readers).
pub(super) fn check_irq_dependency(st: &mut State, prev: u32, next: u32, out: &mut Vec<Report>) {
    for irq in [HARD, SOFT] {
        let Some(back) = find_usage(st, prev, false, ubit(irq, USED_IN, false)) else {
            continue;
        };
        let Some(fwd) = find_usage(st, next, true, ubit(irq, ENABLED, false)) else {
            continue;
        };
        let safe = back[back.len() - 1];
        let unsafe_ = fwd[fwd.len() - 1];
        if st.once(ReportKind::IrqLockInversion, vec![safe, unsafe_], 0) {
            out.push(irq_inversion_report(irq, safe, unsafe_, prev, next, None));
        }
    }
}

/// Sets new usage bits `need` of class `id`, acquired by the thread whose stack
/// is `t`, and checks them against both rules (`mark_lock_irq`).
#[cold]
pub(super) fn mark_usage(
    t: &Tls,
    id: u32,
    need: u32,
    pc: u32,
    irqs_off: bool,
    out: &mut Vec<Report>,
) {
    let mut st = state();
    let old = classes::add_usage(id, need);
    let new = need & !old;
    let all = old | need;
    for b in 0..8 {
        if new & (1 << b) == 0 {
            continue;
        }
        let bad = all & conflicts(b);
        if bad != 0 {
            if st.once(ReportKind::InconsistentIrqUsage, vec![id], 0) {
                let tid = crate::arch::gettid();
                let name = thread_name();
                let old_b = bad.trailing_zeros() as usize;
                let mut text = banner(ReportKind::InconsistentIrqUsage);
                let _ = writeln!(
                    text,
                    "inconsistent {{{}}} -> {{{}}} usage.\n{name}/{tid} {} takes:\n  {}\n{{{}}} state was registered before; now {{{}}}.\n",
                    USAGE_NAMES[old_b],
                    USAGE_NAMES[b as usize],
                    context_text(pc, irqs_off),
                    cdesc(id),
                    USAGE_NAMES[old_b],
                    USAGE_NAMES[b as usize],
                );
                let _ = writeln!(
                    text,
                    "other info that might help us debug this:\n Possible unsafe locking scenario:\n\n       CPU0\n       ----\n  lock({n});\n  <Interrupt>\n    lock({n});\n\n *** DEADLOCK ***\n",
                    n = class(id).name
                );
                text.push_str(&held_text(t, tid, Some(&name)));
                text.push_str(&current_trace());
                out.push(Report {
                    kind: ReportKind::InconsistentIrqUsage,
                    classes: vec![class(id).name],
                    text,
                    tid,
                });
            }
            continue;
        }
        // The dependency form of the rule, for the write bits.
        let (irq, dir, read) = (b / 4, (b / 2) % 2, b % 2 == 1);
        if read {
            continue;
        }
        let found = if dir == USED_IN {
            find_usage(&st, id, true, ubit(irq, ENABLED, false)).map(|p| (id, p[p.len() - 1], p))
        } else {
            find_usage(&st, id, false, ubit(irq, USED_IN, false)).map(|p| (p[p.len() - 1], id, p))
        };
        if let Some((safe, unsafe_, path)) = found {
            if safe != unsafe_ && st.once(ReportKind::IrqLockInversion, vec![safe, unsafe_], 0) {
                let (prev, next) = if dir == USED_IN {
                    (path[0], path[1])
                } else {
                    (path[1], path[0])
                };
                let name = thread_name();
                out.push(irq_inversion_report(
                    irq,
                    safe,
                    unsafe_,
                    prev,
                    next,
                    Some((t, crate::arch::gettid(), &name)),
                ));
            }
        }
    }
}

/// "irq-safe -> irq-unsafe lock order detected" (`print_bad_irq_dependency`),
/// with the stack of thread `t` (its id and name) if it is the one acquiring.
fn irq_inversion_report(
    irq: u32,
    safe: u32,
    unsafe_: u32,
    prev: u32,
    next: u32,
    t: Option<(&Tls, i32, &str)>,
) -> Report {
    let irqname = if irq == HARD { "HARDIRQ" } else { "SOFTIRQ" };
    let mut text = banner(ReportKind::IrqLockInversion);
    let _ = writeln!(
        text,
        "{irqname}-safe -> {irqname}-unsafe lock order detected\n\n{irqname}-safe lock:\n  {}\nis (directly or through a chain) held while taking {irqname}-unsafe lock:\n  {}\nthrough the dependency\n  {}\n  -> {}\n",
        cdesc(safe),
        cdesc(unsafe_),
        cdesc(prev),
        cdesc(next)
    );
    let _ = writeln!(
        text,
        " Possible interrupt unsafe locking scenario:\n\n       CPU0                    CPU1\n       ----                    ----\n  lock({u});\n                               local_irq_disable();\n                               lock({s});\n                               lock({u});\n  <Interrupt>\n    lock({s});\n\n *** DEADLOCK ***\n",
        u = class(unsafe_).name,
        s = class(safe).name
    );
    let tid = match t {
        Some((t, tid, name)) => {
            text.push_str(&held_text(t, tid, Some(name)));
            tid
        }
        None => crate::arch::gettid(),
    };
    text.push_str(&current_trace());
    Report {
        kind: ReportKind::IrqLockInversion,
        classes: vec![class(safe).name, class(unsafe_).name],
        text,
        tid,
    }
}
