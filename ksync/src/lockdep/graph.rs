//! The dependency graph: validating a chain never seen (`validate_chain`):
//! recursion (`check_deadlock`), then one new edge per lock it now depends on
//! (`check_prevs_add`), each searched first for a cycle it would close
//! (`check_noncircular`); and the two reports.
//!
//! Read locks follow the kernel's rules: an edge remembers whether its source was
//! held shared and whether its target was taken as a recursive read, and a cycle
//! is only a deadlock if it is *strong*: no class in it is entered by a recursive
//! read and left by a shared hold. The edges themselves sit in the global state
//! (`state`), under its lock.

use std::backtrace::Backtrace;
use std::collections::VecDeque;
use std::fmt::Write as _;

use super::classes::{F_NOCHECK, cdesc, class};
use super::held::{Held, Tls, held_text};
use super::report::{Report, ReportKind, banner, current_trace, thread_name, trace_text};
use super::state::{EN_ER, Edge, State, XN, state};
use super::usage::check_irq_dependency;
use super::{AcquireKind, LockdepMap};

/// Breadth-first search for a *strong* path `from` → … → `to`: one where no
/// class is entered by a recursive read and left by a shared hold. `start_r`:
/// the path is entered into `from` by a recursive read; `end_shared`: it must
/// not enter `to` by a recursive read because `to` is left shared.
fn strong_path(
    st: &State,
    from: u32,
    to: u32,
    start_r: bool,
    end_shared: bool,
) -> Option<Vec<u32>> {
    let n = st.fwd.len();
    // 0 unvisited, 1 reached only by a recursive read, 2 reached otherwise.
    let mut seen = vec![0u8; n];
    let mut parent = vec![0u32; n];
    let mut q = VecDeque::new();
    seen[from as usize] = if start_r { 1 } else { 2 };
    q.push_back((from, start_r));
    while let Some((c, r)) = q.pop_front() {
        if c == to && !(r && end_shared) {
            let mut path = vec![to];
            let mut x = to;
            while x != from && path.len() <= n {
                x = parent[x as usize];
                path.push(x);
            }
            path.reverse();
            return Some(path);
        }
        for e in &st.fwd[c as usize] {
            let allowed = if r { e.mask & EN_ER } else { e.mask };
            if allowed == 0 {
                continue;
            }
            let nr = allowed & XN == 0;
            let lvl = if nr { 1 } else { 2 };
            if seen[e.to as usize] >= lvl {
                continue;
            }
            seen[e.to as usize] = lvl;
            parent[e.to as usize] = c;
            q.push_back((e.to, nr));
        }
    }
    None
}

/// Validates the chain of the thread whose stack is `t` with `map`, of class
/// `id`, taken `kind`-wise in irq context `ctx` on top: recursion, then the new
/// dependencies. `nest`: the address of the held nest lock the acquisition
/// names, which serializes the nesting of its class: a lock of the class held
/// *after* the nest lock is no recursion, and adds no dependency
/// (`check_deadlock` returning 2); one held before it still is recursion.
#[cold]
pub(super) fn validate(
    t: &Tls,
    map: &LockdepMap,
    id: u32,
    kind: AcquireKind,
    ctx: u8,
    nest: Option<usize>,
    out: &mut Vec<Report>,
) {
    let mut st = state();
    let mut nest_seen = false;
    for h in &t.held[..t.depth] {
        nest_seen |= nest == Some(h.map);
        if h.class != id || h.flags & F_NOCHECK != 0 {
            continue;
        }
        if kind == AcquireKind::RecursiveRead && h.kind != AcquireKind::Exclusive {
            continue;
        }
        if nest_seen {
            return;
        }
        if st.once(ReportKind::RecursiveLocking, vec![id], 0) {
            out.push(recursive_report(t, map, id, h));
        }
        return;
    }
    for i in (0..t.depth).rev() {
        let h = t.held[i];
        if h.flags & F_NOCHECK != 0 {
            continue;
        }
        if h.ctx != ctx {
            break;
        }
        if h.class != id {
            add_edge(t, &mut st, map, &h, id, kind, out);
        }
        // Stop after the first lock taken exclusively without trylock: the
        // locks below it are connected to the new one through it. (Past a
        // shared hold, keep going: a path through a recursive read would not
        // be strong, and the real dependency would be lost.)
        if !h.trylock && h.kind == AcquireKind::Exclusive {
            break;
        }
    }
}

/// Adds the dependency `prev` → `next` (taken `kind`-wise) unless it is known,
/// or reports the cycle it would close (`check_prev_add`).
fn add_edge(
    t: &Tls,
    st: &mut State,
    map: &LockdepMap,
    prev: &Held,
    next: u32,
    kind: AcquireKind,
    out: &mut Vec<Report>,
) {
    let prev_shared = prev.kind != AcquireKind::Exclusive;
    let next_rec = kind == AcquireKind::RecursiveRead;
    let ty = 1u8 << ((u8::from(prev_shared) << 1) | u8::from(next_rec));
    if st.edge(prev.class, next).is_some_and(|e| e.mask & ty != 0) {
        return;
    }
    if let Some(path) = strong_path(st, next, prev.class, next_rec, prev_shared) {
        if st.once(ReportKind::CircularDependency, path.clone(), 0) {
            out.push(circular_report(t, st, map, prev, next, &path));
        }
        return;
    }
    let list = &mut st.fwd[prev.class as usize];
    match list.iter_mut().find(|e| e.to == next) {
        Some(e) => e.mask |= ty,
        None => {
            list.push(Edge {
                to: next,
                mask: ty,
                trace: Backtrace::capture(),
            });
            st.back[next as usize].push(prev.class);
            check_irq_dependency(t, st, prev, next, kind, out);
        }
    }
}

/// The opening of a report about an acquisition that meets a held lock: thread
/// `name`/`tid` takes `map`, of class `id`, while it holds `held`.
fn acquiring_while_holding(
    kind: ReportKind,
    map: &LockdepMap,
    id: u32,
    held: &Held,
    name: &str,
    tid: i32,
) -> String {
    let mut text = banner(kind);
    let _ = write!(
        text,
        "{name}/{tid} is trying to acquire lock:\n  {:#x} {}\n\nbut task is already holding lock:\n  {:#x} {}\n\n",
        map as *const _ as usize,
        cdesc(id),
        held.map,
        cdesc(held.class)
    );
    text
}

/// "possible recursive locking detected" (`print_deadlock_bug`): `map`, of class
/// `id`, taken while `held` of the same class is held.
fn recursive_report(t: &Tls, map: &LockdepMap, id: u32, held: &Held) -> Report {
    let tid = crate::arch::gettid();
    let name = thread_name();
    let mut text = acquiring_while_holding(ReportKind::RecursiveLocking, map, id, held, &name, tid);
    let n = class(id).name;
    let _ = writeln!(
        text,
        "other info that might help us debug this:\n Possible unsafe locking scenario:\n\n       CPU0\n       ----\n  lock({n});\n  lock({n});\n\n *** DEADLOCK ***\n\n May be due to missing lock nesting notation (use a subclass: *_nested)\n"
    );
    text.push_str(&held_text(t, tid, Some(&name)));
    text.push_str(&current_trace());
    Report {
        kind: ReportKind::RecursiveLocking,
        classes: vec![n],
        text,
        tid,
    }
}

/// "possible circular locking dependency detected" (`print_circular_bug`): the
/// new dependency `prev` → `next` closes the cycle through `path`
/// (`next` → … → `prev`).
fn circular_report(
    t: &Tls,
    st: &State,
    map: &LockdepMap,
    prev: &Held,
    next: u32,
    path: &[u32],
) -> Report {
    let tid = crate::arch::gettid();
    let name = thread_name();
    let mut text =
        acquiring_while_holding(ReportKind::CircularDependency, map, next, prev, &name, tid);
    text.push_str(
        "which lock already depends on the new lock.\n\n\nthe existing dependency chain (in reverse order) is:\n\n",
    );
    // path = next -> ... -> prev, the existing dependencies; print them from
    // the end, then the new one (#0), as the kernel does.
    let k = path.len() - 1;
    for i in (1..=k).rev() {
        let (held, taken) = (path[i - 1], path[i]);
        let _ = writeln!(
            text,
            "\n-> #{} {}:\n       acquired while holding {}",
            k - i + 1,
            cdesc(taken),
            class(held).name
        );
        if let Some(e) = st.edge(held, taken) {
            text.push_str(&trace_text(&e.trace));
        }
    }
    let _ = writeln!(
        text,
        "\n-> #0 {}:\n       acquired now while holding {} (the new dependency; stack below)",
        cdesc(next),
        class(prev.class).name
    );
    text.push_str("\nother info that might help us debug this:\n\n");
    let names: Vec<&str> = path.iter().map(|&c| class(c).name).collect();
    if path.len() == 2 {
        let (a, b) = (class(prev.class).name, class(next).name);
        let _ = writeln!(
            text,
            " Possible unsafe locking scenario:\n\n       CPU0                    CPU1\n       ----                    ----\n  lock({a});\n                               lock({b});\n                               lock({a});\n  lock({b});\n\n *** DEADLOCK ***\n"
        );
    } else {
        let _ = writeln!(
            text,
            "Chain exists of:\n  {} --> {}\n",
            names.join(" --> "),
            class(next).name
        );
    }
    text.push_str(&held_text(t, tid, Some(&name)));
    text.push_str(&current_trace());
    Report {
        kind: ReportKind::CircularDependency,
        classes: names,
        text,
        tid,
    }
}
