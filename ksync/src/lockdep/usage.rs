//! Irq usage: the irq context of an acquisition, the usage bits it sets on its
//! class (`mark_usage`), and the irq rules, for reads as for writes:
//!
//! - a class used in an irq must not also be taken with that irq enabled
//!   ("inconsistent lock state"): used-in-irq write against enabled read or
//!   write, used-in-irq read against enabled write; two reads never conflict;
//! - a class that gains a usage must not be connected through the graph to a
//!   class with the opposite one ("possible irq lock inversion dependency
//!   detected", `check_usage_forwards`/`check_usage_backwards`);
//! - a new dependency must not connect an irq-safe class to an irq-unsafe one
//!   ("HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", `check_irq_usage`).
//!
//! The graph searches of the last two follow only *strong* paths, as the cycle
//! search does, and where the path holds or takes a class as a recursive read,
//! only that class's write usages count (the kernel's `only_xr` with
//! `usage_match`): a recursive reader in an irq does not wait for another reader.
//!
//! The bit layout and names are the class's (`classes`); the context is read
//! from the preempt count that the hooks pass in.

use std::backtrace::Backtrace;
use std::collections::VecDeque;
use std::fmt::Write as _;

use super::AcquireKind;
use super::classes::{
    self, ENABLED, F_PERCPU, HARD, SOFT, USAGE_NAMES, USED_IN, cdesc, class, ubit,
};
use super::held::{Held, Tls, held_text};
use super::report::{
    Report, ReportKind, banner, banner_titled, current_trace, thread_name, trace_text,
};
use super::state::{EN_ER, State, XN, state};
use crate::ctx::{self, HARDIRQ_MASK, SOFTIRQ_MASK, SOFTIRQ_OFFSET};

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
    // Process context with irqs and bottom halves on (the common case, a
    // preempt count of preemption only): the two enabled usages.
    if pc & (HARDIRQ_MASK | SOFTIRQ_MASK) == 0 && !irqs_off {
        return enabled_bits(kind);
    }
    usage_needed_irq(kind, trylock, pc, irqs_off)
}

/// [`usage_needed`] with irqs or bottom halves off, or in an irq.
#[inline]
fn usage_needed_irq(kind: AcquireKind, trylock: bool, pc: u32, irqs_off: bool) -> u32 {
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

/// The enabled usages (both irqs) that an acquisition of `kind` in process
/// context with everything enabled would set: what a held lock may still
/// gain when irqs and bottom halves are enabled under it.
#[inline]
pub(super) fn enabled_bits(kind: AcquireKind) -> u32 {
    let read = kind != AcquireKind::Exclusive;
    ubit(HARD, ENABLED, read) | ubit(SOFT, ENABLED, read)
}

/// Whether held lock `h` may still gain enabled usages, when irqs or bottom
/// halves are enabled while it is held: taken in process context, and its
/// class lacks one of them.
#[inline]
pub(super) fn may_gain_enabled(h: &Held) -> bool {
    may_gain_enabled_bits(h.class, h.kind, h.ctx)
}

#[inline]
fn may_gain_enabled_bits(id: u32, kind: AcquireKind, ctx: u8) -> bool {
    let all = enabled_bits(kind);
    ctx == 0 && classes::usage(id) & all != all
}

/// For a lock `h` about to be pushed with preempt count `pc` and irqs off or
/// not: if irqs or bottom halves are off and its class may still gain an
/// enabled usage, asks `ctx` to run `mark_held` when they are enabled (the
/// kernel's `mark_held_locks` from `lockdep_hardirqs_on`/`lockdep_softirqs_on`).
/// With everything enabled (the common case) it costs two tests of values at
/// hand.
#[inline]
pub(super) fn defer_mark(h: &Held, pc: u32, irqs_off: bool, mark_held: fn()) {
    defer_mark_bits(h.class, h.kind, h.ctx, pc, irqs_off, mark_held);
}

/// [`defer_mark`] for a lock of class `id` taken as `kind` in irq context
/// `ctx`, from the values at hand.
#[inline(always)]
pub(super) fn defer_mark_bits(
    id: u32,
    kind: AcquireKind,
    ctx: u8,
    pc: u32,
    irqs_off: bool,
    mark_held: fn(),
) {
    if (irqs_off || pc & SOFTIRQ_MASK != 0) && may_gain_enabled_bits(id, kind, ctx) {
        ctx::defer_work(ctx::Deferred::LockdepHeld, mark_held);
    }
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

/// The read usage bits (`LOCKF_IRQ_READ`).
const READ_BITS: u32 = 0b1010_1010;

/// Both usage bits (read and write) of `irq` in direction `dir`.
const fn both(irq: u32, dir: u32) -> u32 {
    ubit(irq, dir, false) | ubit(irq, dir, true)
}

/// The irq's name as reports print it.
fn irq_name(irq: u32) -> &'static str {
    if irq == HARD { "HARDIRQ" } else { "SOFTIRQ" }
}

/// The usage of class `c` that a search sees: all of it, or only its write
/// bits where the path holds or takes `c` as a recursive read (`xr`).
fn visible(c: u32, xr: bool) -> u32 {
    let u = classes::usage(c);
    if xr { u & !READ_BITS } else { u }
}

/// Breadth-first search along strong paths from `start`, forwards (the locks
/// taken after it) or backwards (the locks held before it), for the first
/// class whose visible usage has any of `bits`; the path from `start` to it
/// (`find_usage_forwards`, `find_usage_backwards`).
///
/// Per-CPU locks (`local_lock_t`) are passed over, `start` included, as the
/// kernel's `usage_skip` does: one CPU's local lock is never contended by
/// another, so no irq deadlock runs through it.
///
/// `start_xr`: forwards, `start` is taken as a recursive read, so the path must
/// not leave it by a shared hold; backwards, `start` is held shared, so the
/// path must not enter it by a recursive read. Each class is reached in the
/// best state seen: a class reached both ways is searched as the stronger.
fn find_usage(
    st: &State,
    start: u32,
    forward: bool,
    start_xr: bool,
    bits: u32,
) -> Option<Vec<u32>> {
    let n = st.fwd.len();
    // 0 unvisited, 1 reached with only recursive-read links, 2 reached otherwise.
    let mut seen = vec![0u8; n];
    let mut parent = vec![u32::MAX; n];
    let mut q = VecDeque::new();
    seen[start as usize] = if start_xr { 1 } else { 2 };
    parent[start as usize] = start;
    q.push_back((start, start_xr));
    while let Some((c, xr)) = q.pop_front() {
        if class(c).flags & F_PERCPU != 0 {
            // A local lock: neither a match nor a way through (`usage_skip`).
            continue;
        }
        if visible(c, xr) & bits != 0 {
            let mut path = vec![c];
            let mut x = c;
            while x != start && path.len() <= n {
                x = parent[x as usize];
                path.push(x);
            }
            path.reverse();
            return Some(path);
        }
        let mut step = |to: u32, mask: u8| {
            let (allowed, nxr) = if forward {
                let a = if xr { mask & EN_ER } else { mask };
                (a, a & XN == 0)
            } else {
                let a = if xr { mask & XN } else { mask };
                (a, a & EN_ER == 0)
            };
            let lvl = if nxr { 1 } else { 2 };
            if allowed == 0 || seen[to as usize] >= lvl {
                return;
            }
            seen[to as usize] = lvl;
            parent[to as usize] = c;
            q.push_back((to, nxr));
        };
        if forward {
            st.fwd[c as usize].iter().for_each(|e| step(e.to, e.mask));
        } else {
            for &p in &st.back[c as usize] {
                if let Some(e) = st.edge(p, c) {
                    step(p, e.mask);
                }
            }
        }
    }
    None
}

/// The dependencies of `path`, a chain of classes in graph order (each held
/// while the next was taken), with the stack of each where it was recorded
/// (`print_shortest_lock_dependencies`).
fn path_text(st: &State, path: &[u32]) -> String {
    let mut s = String::new();
    for (i, &c) in path.iter().enumerate() {
        let _ = writeln!(s, "{:i$}-> {}", "", cdesc(c));
        if let Some(e) = i.checked_sub(1).and_then(|p| st.edge(path[p], c)) {
            let _ = writeln!(s, "{:i$}   ... acquired at:", "");
            s.push_str(&trace_text(&e.trace));
        }
    }
    s
}

/// Where class `id` gained usage bit `b`, if its stack was recorded.
fn usage_trace(st: &State, id: u32, b: u32) -> String {
    match st
        .usage_traces
        .get(id as usize)
        .and_then(|t| t[b as usize].as_ref())
    {
        Some(bt) => trace_text(bt),
        None => String::new(),
    }
}

/// The lowest usage bit of class `c` within `bits`, as it was found.
fn first_bit(c: u32, bits: u32) -> u32 {
    (classes::usage(c) & bits).trailing_zeros()
}

/// The scenario of an irq-safe class `safe` held (through `middle`, when it is
/// neither end) while the irq-unsafe `unsafe_` is taken (`print_irq_lock_scenario`).
fn scenario_text(safe: u32, unsafe_: u32, middle: u32) -> String {
    let (s, u, m) = (class(safe).name, class(unsafe_).name, class(middle).name);
    let mut text = String::new();
    if middle != unsafe_ && middle != safe {
        let _ = writeln!(text, "Chain exists of:\n  {s} --> {m} --> {u}\n");
    }
    let m = if middle == safe { u } else { m };
    let _ = writeln!(
        text,
        " Possible interrupt unsafe locking scenario:\n\n       CPU0                    CPU1\n       ----                    ----\n  lock({u});\n                               local_irq_disable();\n                               lock({s});\n                               lock({m});\n  <Interrupt>\n    lock({s});\n\n *** DEADLOCK ***\n"
    );
    text
}

/// The irq-safe → irq-unsafe rule for a new dependency `prev` → `next`, `next`
/// taken `kind`-wise by the thread whose stack is `t` (`check_irq_usage`): no
/// class used in an irq (read or write) may be held, through strong paths of
/// the graph, while a class taken with that irq enabled (read or write) is
/// acquired.
pub(super) fn check_irq_dependency(
    t: &Tls,
    st: &mut State,
    prev: &Held,
    next: u32,
    kind: AcquireKind,
    out: &mut Vec<Report>,
) {
    for irq in [HARD, SOFT] {
        let prev_shared = prev.kind != AcquireKind::Exclusive;
        let Some(back) = find_usage(st, prev.class, false, prev_shared, both(irq, USED_IN)) else {
            continue;
        };
        let next_rec = kind == AcquireKind::RecursiveRead;
        let Some(fwd) = find_usage(st, next, true, next_rec, both(irq, ENABLED)) else {
            continue;
        };
        let (safe, unsafe_) = (back[back.len() - 1], fwd[fwd.len() - 1]);
        if st.once(ReportKind::IrqSafeToUnsafe, vec![safe, unsafe_], 0) {
            out.push(bad_irq_dependency_report(
                t, st, irq, prev, next, &back, &fwd,
            ));
        }
    }
}

/// "HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"
/// (`print_bad_irq_dependency`): the new dependency `prev` → `next` connects
/// `back`'s last class (irq-safe; `back` runs from `prev` backwards) to `fwd`'s
/// last class (irq-unsafe; `fwd` runs from `next` forwards).
fn bad_irq_dependency_report(
    t: &Tls,
    st: &State,
    irq: u32,
    prev: &Held,
    next: u32,
    back: &[u32],
    fwd: &[u32],
) -> Report {
    let (safe, unsafe_) = (back[back.len() - 1], fwd[fwd.len() - 1]);
    let irqn = irq_name(irq);
    let tid = crate::arch::gettid();
    let name = thread_name();
    let mut text = banner_titled(&format!(
        "WARNING: {irqn}-safe -> {irqn}-unsafe lock order detected"
    ));
    let _ = writeln!(
        text,
        "{name}/{tid} {} is trying to acquire:\n  {}\n\nand this task is already holding:\n  {:#x} {}\nwhich would create a new lock dependency:\n  {} -> {}\n",
        context_text(ctx::preempt_count(), ctx::irqs_disabled()),
        cdesc(next),
        prev.map,
        cdesc(prev.class),
        class(prev.class).name,
        class(next).name
    );
    let sb = first_bit(safe, both(irq, USED_IN));
    let ub = first_bit(unsafe_, both(irq, ENABLED));
    let _ = writeln!(
        text,
        "but this new dependency connects a {irqn}-irq-safe lock:\n  {}\n\n... which became {irqn}-irq-safe at:\n{}\nto a {irqn}-irq-unsafe lock:\n  {}\n\n... which became {irqn}-irq-unsafe at:\n...\n{}\nother info that might help us debug this:\n",
        cdesc(safe),
        usage_trace(st, safe, sb),
        cdesc(unsafe_),
        usage_trace(st, unsafe_, ub),
    );
    let middle = if prev.class == safe { next } else { prev.class };
    text.push_str(&scenario_text(safe, unsafe_, middle));
    text.push_str(&held_text(t, tid, Some(&name)));
    let _ = writeln!(
        text,
        "\nthe dependencies between {irqn}-irq-safe lock and the holding lock:"
    );
    let mut rev = back.to_vec();
    rev.reverse();
    text.push_str(&path_text(st, &rev));
    let _ = writeln!(
        text,
        "\nthe dependencies between the lock to be acquired and {irqn}-irq-unsafe lock:"
    );
    text.push_str(&path_text(st, fwd));
    text.push_str(&current_trace());
    Report {
        kind: ReportKind::IrqSafeToUnsafe,
        classes: vec![class(safe).name, class(unsafe_).name],
        text,
        tid,
    }
}

/// Sets new usage bits `need` of class `id`, taken `kind`-wise by the thread
/// whose stack is `t` (at its acquisition, or when irqs were enabled under
/// it), and checks each against the irq rules (`mark_lock_irq`).
#[cold]
#[allow(clippy::too_many_arguments)]
pub(super) fn mark_usage(
    t: &Tls,
    id: u32,
    kind: AcquireKind,
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
        if let Some(slot) = st.usage_traces.get_mut(id as usize) {
            slot[b as usize].get_or_insert_with(Backtrace::capture);
        }
        let bad = all & conflicts(b);
        if bad != 0 {
            if st.once(ReportKind::InconsistentIrqUsage, vec![id], 0) {
                out.push(inconsistent_report(
                    t,
                    &st,
                    id,
                    bad.trailing_zeros(),
                    b,
                    pc,
                    irqs_off,
                ));
            }
            continue;
        }
        // The dependency form of the rule: a new used-in-irq usage looks
        // forwards for a class taken with that irq enabled; a new enabled
        // usage looks backwards for a class used in that irq.
        let (irq, dir) = (b / 4, (b / 2) % 2);
        let path = if dir == USED_IN {
            find_usage(
                &st,
                id,
                true,
                kind == AcquireKind::RecursiveRead,
                both(irq, ENABLED),
            )
        } else {
            find_usage(
                &st,
                id,
                false,
                kind != AcquireKind::Exclusive,
                both(irq, USED_IN),
            )
        };
        let Some(path) = path else {
            continue;
        };
        let other = path[path.len() - 1];
        if other == id || !st.once(ReportKind::IrqLockInversion, vec![id, other], 0) {
            continue;
        }
        // Named by the usage found at the other end, as the kernel does.
        let write_found = classes::usage(other) & ubit(irq, 1 - dir, false) != 0;
        let irqclass = if !write_found {
            format!("{}-READ", irq_name(irq))
        } else {
            irq_name(irq).to_owned()
        };
        out.push(inversion_report(
            t,
            &st,
            id,
            &path,
            dir == USED_IN,
            &irqclass,
        ));
    }
}

/// "inconsistent lock state" (`print_usage_bug`): class `id` gains usage bit
/// `new` while it has the conflicting `old`.
#[allow(clippy::too_many_arguments)]
fn inconsistent_report(
    t: &Tls,
    st: &State,
    id: u32,
    old: u32,
    new: u32,
    pc: u32,
    irqs_off: bool,
) -> Report {
    let tid = crate::arch::gettid();
    let name = thread_name();
    let (o, n) = (USAGE_NAMES[old as usize], USAGE_NAMES[new as usize]);
    let mut text = banner(ReportKind::InconsistentIrqUsage);
    let _ = writeln!(
        text,
        "inconsistent {{{o}}} -> {{{n}}} usage.\n{name}/{tid} {} takes:\n  {}\n{{{o}}} state was registered at:\n{}",
        context_text(pc, irqs_off),
        cdesc(id),
        usage_trace(st, id, old),
    );
    let _ = writeln!(
        text,
        "other info that might help us debug this:\n Possible unsafe locking scenario:\n\n       CPU0\n       ----\n  lock({c});\n  <Interrupt>\n    lock({c});\n\n *** DEADLOCK ***\n",
        c = class(id).name
    );
    text.push_str(&held_text(t, tid, Some(&name)));
    text.push_str(&current_trace());
    Report {
        kind: ReportKind::InconsistentIrqUsage,
        classes: vec![class(id).name],
        text,
        tid,
    }
}

/// "possible irq lock inversion dependency detected" (`print_irq_inversion_bug`):
/// class `this` just gained a usage, and `path` connects it to a class with the
/// opposite one: forwards (`this` irq-safe, the last class of `path` taken
/// after it irq-unsafe) or backwards (`this` irq-unsafe, taken after the
/// irq-safe last class of `path`).
fn inversion_report(
    t: &Tls,
    st: &State,
    this: u32,
    path: &[u32],
    forwards: bool,
    irqclass: &str,
) -> Report {
    let other = path[path.len() - 1];
    let tid = crate::arch::gettid();
    let name = thread_name();
    let mut text = banner(ReportKind::IrqLockInversion);
    let _ = writeln!(
        text,
        "{name}/{tid} just changed the state of lock:\n  {}",
        cdesc(this)
    );
    let _ = writeln!(
        text,
        "{}\n  {}\n\nand interrupts could create inverse lock ordering between them.\n\nother info that might help us debug this:",
        if forwards {
            format!("but this lock took another, {irqclass}-unsafe lock in the past:")
        } else {
            format!("but this lock was taken by another, {irqclass}-safe lock in the past:")
        },
        cdesc(other)
    );
    let (safe, unsafe_) = if forwards {
        (this, other)
    } else {
        (other, this)
    };
    text.push_str(&scenario_text(safe, unsafe_, path[1]));
    text.push_str(&held_text(t, tid, Some(&name)));
    text.push_str("\nthe shortest dependencies between 2nd lock and 1st lock:\n");
    let mut order = path.to_vec();
    if !forwards {
        order.reverse();
    }
    text.push_str(&path_text(st, &order));
    text.push_str(&current_trace());
    Report {
        kind: ReportKind::IrqLockInversion,
        classes: vec![class(safe).name, class(unsafe_).name],
        text,
        tid,
    }
}
