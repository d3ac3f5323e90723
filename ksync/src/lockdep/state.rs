//! The validator's global state, behind its one `std` mutex (the kernel's
//! `graph_lock`): the class registry, the dependency graph and the problems
//! already reported; and the rule for every `std` lock section of the validator
//! (this one and the report collection): ksync irqs held back.
//!
//! The mutex is taken only on slow paths: a class's first use, a chain never
//! validated, a usage bit never set, a report. It is a `std` mutex and not a ksync
//! lock so that the validator never validates itself. The code that reads and
//! writes each part lives with its concern: `classes` registers, `graph` adds
//! edges and searches for cycles, `usage` searches for irq-safe and irq-unsafe
//! classes.

use std::backtrace::Backtrace;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::report::{self, Report, ReportKind};
use crate::ctx;

/// What makes two maps one class (with the subclass): their creation site, or
/// their explicit key's address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Ident {
    Site(&'static str, u32, u32),
    Key(usize),
}

/// Dependency types (bits of [`Edge::mask`]) whose source is held exclusively:
/// -(EN)-> and -(ER)->.
pub(super) const EN_ER: u8 = 0b0011;
/// Dependency types whose target is not taken as a recursive read: -(EN)-> and
/// -(SN)->.
pub(super) const XN: u8 = 0b0101;

/// A dependency `from` → `to` (`struct lock_list`), kept in `from`'s list.
pub(super) struct Edge {
    pub(super) to: u32,
    /// Dependency types present, bit = prev_shared * 2 + next_recursive
    /// (the kernel's -(EN)->, -(ER)->, -(SN)->, -(SR)->).
    pub(super) mask: u8,
    /// Where the dependency was first recorded, if backtraces are enabled.
    pub(super) trace: Backtrace,
}

pub(super) struct State {
    /// (identity, subclass) → class id (`classhash_table`); `None` until the first.
    pub(super) registry: Option<HashMap<(Ident, u32), u32>>,
    /// Classes registered; ids run 1..=nclasses.
    pub(super) nclasses: u32,
    /// Per class: the dependencies it is the source of (`locks_after`).
    pub(super) fwd: Vec<Vec<Edge>>,
    /// Per class: the classes it is the target of (`locks_before`).
    pub(super) back: Vec<Vec<u32>>,
    /// Per class and usage bit: where the class first gained that usage
    /// (`usage_traces`), if backtraces are enabled.
    pub(super) usage_traces: Vec<[Option<Backtrace>; 8]>,
    /// (kind, sorted class ids, scope) of every report given.
    reported: Option<HashSet<(ReportKind, Vec<u32>, i32)>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    registry: None,
    nclasses: 0,
    fwd: Vec::new(),
    back: Vec::new(),
    usage_traces: Vec::new(),
    reported: None,
});

// Neither of the validator's two `std` mutexes may be held by another thread
// across a `fork`: the child, which has none of the parent's other threads,
// would wait for ever at its next slow path. Every fork takes both (state,
// then reports: no code holds the reports' lock while it takes the state's)
// with ksync irqs held back, and lets go of both on each side.
crate::arch::at_fork!(fork_prepare, fork_release, fork_release);

/// What the forking thread holds across a `fork`.
struct ForkHold {
    _reports: MutexGuard<'static, Vec<Report>>,
    _state: MutexGuard<'static, State>,
    irqs: ctx::IrqFlags,
}

thread_local! {
    static FORK_HOLD: core::cell::RefCell<Option<ForkHold>> =
        const { core::cell::RefCell::new(None) };
}

extern "C" fn fork_prepare() {
    // A fork from a signal handler that interrupted this thread inside the
    // validator takes nothing: it would wait for itself (see `Locked`).
    if crate::arch::holds_fork_lock() {
        return;
    }
    // A thread whose thread-locals are being destroyed takes nothing (and
    // so keeps the behaviour from before).
    let _ = FORK_HOLD.try_with(|h| {
        let irqs = ctx::local_irq_save();
        // Unmarked: these two are the handler's own.
        let state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let reports = report::REPORTS.lock().unwrap_or_else(|e| e.into_inner());
        *h.borrow_mut() = Some(ForkHold {
            _reports: reports,
            _state: state,
            irqs,
        });
    });
}

extern "C" fn fork_release() {
    let _ = FORK_HOLD.try_with(|h| {
        // The guards go first (field order), then irqs come back.
        if let Some(hold) = h.borrow_mut().take() {
            let irqs = hold.irqs;
            drop(hold);
            ctx::local_irq_restore(irqs);
        }
    });
}

/// Locks the global state. Call it with ksync irqs off or held back
/// ([`irqs_held_back`]), or from inside the held-lock stack's borrow (which an
/// irq handler on this thread skips), so that a handler cannot re-enter it.
///
/// The thread is marked ([`ForkLockMark`](crate::arch::ForkLockMark)) while
/// it takes and holds the lock: a `fork` from a (non-ksync) signal handler
/// that interrupted it here does not make the fork handlers wait for the
/// section they interrupted.
pub(super) fn state() -> crate::arch::MarkedGuard<'static, State> {
    crate::arch::lock_marked(&STATE)
}

impl State {
    /// Forgets every dependency, usage trace and report given (`reset`); the
    /// classes stay registered, so the maps' cached ids stay right.
    pub(super) fn clear_graph(&mut self) {
        self.fwd.iter_mut().for_each(Vec::clear);
        self.back.iter_mut().for_each(Vec::clear);
        for t in &mut self.usage_traces {
            *t = std::array::from_fn(|_| None);
        }
        self.reported = None;
    }

    /// The dependency `from` → `to`, if recorded.
    pub(super) fn edge(&self, from: u32, to: u32) -> Option<&Edge> {
        self.fwd[from as usize].iter().find(|e| e.to == to)
    }

    /// True the first time (kind, ids, scope) is seen: each problem is reported once
    /// (per thread, for per-thread problems: `scope` = tid; else 0).
    pub(super) fn once(&mut self, kind: ReportKind, mut ids: Vec<u32>, scope: i32) -> bool {
        ids.sort_unstable();
        self.reported
            .get_or_insert_with(HashSet::new)
            .insert((kind, ids, scope))
    }
}

/// Runs `f` with ksync irqs held back, for the slow paths that take a `std` lock
/// outside the held-lock stack's borrow (class registration, reports), so that a
/// handler on this thread cannot re-enter them and deadlock (the kernel's lockdep
/// runs with irqs off too). A panic in `f` (panic mode) restores irqs too, as the
/// panic unwinds: a test or a demo that catches it finds irqs as they were.
pub(super) fn irqs_held_back<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<ctx::IrqFlags>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(flags) = self.0.take() {
                ctx::local_irq_restore(flags);
            }
        }
    }
    let _restore = Restore(Some(ctx::local_irq_save()));
    f()
}

/// Prints, collects and (in panic mode) panics on the reports in `out`, with
/// irqs held back; call it with no lockdep lock held.
#[inline]
pub(super) fn emit_all(out: Vec<Report>) {
    if !out.is_empty() {
        emit_slow(out);
    }
}

#[cold]
fn emit_slow(out: Vec<Report>) {
    for r in out {
        irqs_held_back(|| report::emit(r));
    }
}
