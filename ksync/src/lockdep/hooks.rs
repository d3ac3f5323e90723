//! The validator's entry points behind the public hooks (feature `lockdep`):
//! each reads where the thread is (preempt count, irqs off), runs its fast path
//! inline on the held-lock stack, and leaves anything new to a cold slow path
//! that runs the checks in the kernel's order (`__lock_acquire`).
//!
//! The fast path of an acquisition is a class cached in the map, usage bits
//! already set and a chain validated before: the map's class cache (an Acquire
//! load), the class's usage bits, the chain key's hash and a lookup in the chain
//! table, then a push; no lock and no allocation. Keep it so: the budget is
//! under 100 ns per lock and unlock with a cached chain (`benches/lockdep_cost.rs`
//! measures it).

use std::fmt::Write as _;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};

use super::chains::{chain_cached, chain_insert, clear_chains, mix};
use super::classes::{self, F_NOCHECK, cdesc, class, class_of};
use super::graph;
use super::held::{self, Held, Tls, held_text_now, with_tls};
use super::report::{self, Mode, Report, ReportKind, banner, current_trace, thread_name};
use super::stat;
use super::state::{emit_all, irqs_held_back, state};
use super::usage::{self, irq_context, usage_needed};
use super::wait;
use super::wait_context;
use super::{AcquireKind, LockdepMap, MAX_LOCK_DEPTH};
use crate::ctx;
use crate::ctx::preempt_count;

/// `#[track_caller]`: the held-lock entry remembers the caller of the lock
/// method, the call site that lock statistics count.
///
#[inline]
#[track_caller]
pub(super) fn acquire(map: &LockdepMap, kind: AcquireKind, trylock: bool, subclass: u32) {
    if !report::enabled() {
        return;
    }
    let ip = Location::caller();
    let pc = preempt_count();
    let irqs_off = ctx::irqs_disabled();
    let cached = classes::cached(map, subclass);
    if cached.0 != 0
        && held::fast(|t| acquire_fast(t, map, cached, kind, trylock, pc, irqs_off, ip))
    {
        // Outside the stack's borrow, so that the fast path itself makes no
        // call (and saves no registers for one); a skipped push (stack busy
        // or off) only asks `mark_held_locks` to look at the stack again.
        if cached.1 & F_NOCHECK == 0 {
            usage::defer_mark_bits(
                cached.0,
                kind,
                irq_context(pc),
                pc,
                irqs_off,
                mark_held_locks,
            );
        }
        return;
    }
    acquire_slow(map, kind, trylock, subclass, pc, irqs_off, ip);
}

/// The fast path of an acquisition of `map`, whose class is cached as
/// `(id, flags, waits)`: nothing new about its usage and a chain validated
/// before: push the entry and return true. Anything else (a check that fails,
/// a new usage, a new chain, a full stack): false, with the stack untouched,
/// and [`acquire_checked`] does the full job.
///
/// The same checks as [`acquire_checked`] in the same order, computed on the
/// values at hand: the entry below in the same irq context is read once for
/// both the chain key and the wait context, and the new entry is written into
/// its slot in place.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn acquire_fast(
    t: &mut Tls,
    map: &LockdepMap,
    (id, flags, waits): (u32, u8, u8),
    kind: AcquireKind,
    trylock: bool,
    pc: u32,
    irqs_off: bool,
    ip: &'static Location<'static>,
) -> bool {
    if !t.ready {
        return false; // a new thread, or a broken stack: the slow path
    }
    if wait::sleeps_in_atomic_bits(t, flags, trylock, pc, irqs_off) {
        return false;
    }
    let ctx = irq_context(pc);
    let (prev_key, prev_wait) = t.below(ctx);
    if wait_context::invalid_on(prev_wait, waits, trylock, pc) {
        return false;
    }
    let mut chain_key = prev_key;
    if flags & F_NOCHECK == 0 {
        chain_key = mix(prev_key, id, kind, trylock);
        let need = usage_needed(kind, trylock, pc, irqs_off);
        if classes::usage(id) & need != need {
            return false;
        }
        if !trylock && !chain_cached(chain_key) {
            return false;
        }
    }
    let depth = t.depth;
    let Some(slot) = t.held.get_mut(depth) else {
        return false; // full: the slow path reports it
    };
    *slot = Held {
        class: id,
        map: map as *const _ as usize,
        kind,
        trylock,
        ctx,
        flags,
        waits,
        wait_min: held::wait_min_on(prev_wait, waits),
        chain_key,
        refs: 0,
        ip: Some(ip),
        stamp: 0,
    };
    t.depth = depth + 1;
    t.count(flags);
    true
}

#[cold]
#[inline(never)]
fn acquire_slow(
    map: &LockdepMap,
    kind: AcquireKind,
    trylock: bool,
    subclass: u32,
    pc: u32,
    irqs_off: bool,
    ip: &'static Location<'static>,
) {
    install_ctx_hooks();
    let id = class_of(map, subclass);
    if id == 0 {
        return;
    }
    let h = Held::new(map, id, class_bits(id), kind, trylock, irq_context(pc), ip);
    let out = with_tls(|t| {
        let depth = t.depth;
        let out = acquire_checked(t, map, h, pc, irqs_off, None);
        if !out.is_empty() && t.depth > depth && report::mode() == Mode::Panic {
            // The report will panic out of the lock's acquire path: the lock is
            // not taken, so it must not stay on the stack.
            t.pop(h.map);
        }
        out
    });
    if let Some(out) = out {
        emit_all(out);
    }
}

/// The flags and packed wait types of registered class `id`, as
/// [`Held::new`] takes them.
fn class_bits(id: u32) -> (u8, u8) {
    let c = class(id);
    (c.flags, c.waits)
}

/// An acquisition with every check (`__lock_acquire`): a sleep in atomic
/// context, the wait context, the stack's depth, new usage bits, and a chain never validated; then
/// the push.
#[cold]
fn acquire_checked(
    t: &mut Tls,
    map: &LockdepMap,
    mut h: Held,
    pc: u32,
    irqs_off: bool,
    nest: Option<usize>,
) -> Vec<Report> {
    let mut out = Vec::new();
    if t.broken {
        return out;
    }
    if wait::sleeps_in_atomic(t, &h, pc, irqs_off) {
        wait::sleep_report(t, pc, irqs_off, Some(h.class), &mut out);
    }
    if wait_context::invalid(t, &h, pc) {
        wait_context::report(t, &h, pc, &mut out);
    }
    if t.depth == MAX_LOCK_DEPTH {
        t.overflow(h.class, &mut out);
        return out;
    }
    h.chain_key = t.chain_key(&h);
    // An RCU read section, or a class not validated, takes no part in usage
    // or dependencies (`check = 0`).
    if h.flags & F_NOCHECK == 0 {
        let need = usage_needed(h.kind, h.trylock, pc, irqs_off);
        if classes::usage(h.class) & need != need {
            usage::mark_usage(t, h.class, h.kind, need, pc, irqs_off, &mut out);
        }
        if !h.trylock && !chain_cached(h.chain_key) {
            graph::validate(t, map, h.class, h.kind, h.ctx, nest, &mut out);
            chain_insert(h.chain_key);
        }
        usage::defer_mark(&h, pc, irqs_off, mark_held_locks);
    }
    t.push(h);
    out
}

/// Irqs or bottom halves were just enabled on this thread (`ctx` runs this as
/// its deferred work, set by [`usage::defer_mark`]): the locks it holds gain
/// the enabled usages of the new context, checked against the irq rules as at
/// an acquisition (`mark_held_locks`). Asks to be run again while a held lock
/// may still gain one (bottom halves still off, say).
#[cold]
#[inline(never)]
fn mark_held_locks() {
    ctx::take_deferred(ctx::Deferred::LockdepHeld);
    if !report::enabled() {
        return;
    }
    let pc = preempt_count();
    let irqs_off = ctx::irqs_disabled();
    let done = with_tls(|t| {
        let mut out = Vec::new();
        let mut again = false;
        if t.broken {
            return (out, again);
        }
        for i in 0..t.depth {
            let h = t.held[i];
            if h.flags & F_NOCHECK != 0 || h.ctx != 0 {
                continue;
            }
            // Enabled usages only: `trylock` leaves out the used-in-irq ones.
            let need = usage_needed(h.kind, true, pc, irqs_off);
            if classes::usage(h.class) & need != need {
                usage::mark_usage(t, h.class, h.kind, need, pc, irqs_off, &mut out);
            }
            again |= usage::may_gain_enabled(&h);
        }
        (out, again)
    });
    let (out, again) = done.unwrap_or((Vec::new(), true));
    if again {
        ctx::defer_work(ctx::Deferred::LockdepHeld, mark_held_locks);
    }
    emit_all(out);
}

/// Out of line: one call from every guard's drop, which measured fewer
/// instructions per lock+unlock than the body inlined into each drop.
#[inline(never)]
pub(super) fn release(map: &LockdepMap) {
    if !report::enabled() {
        return;
    }
    let addr = map as *const _ as usize;
    if !held::fast(|t| t.pop(addr)) {
        release_slow(map);
    }
}

#[cold]
#[inline(never)]
fn release_slow(map: &LockdepMap) {
    if let Some(out) = with_tls(|t| t.release(map)) {
        emit_all(out);
    }
}

#[inline]
pub(super) fn might_sleep() {
    if !report::enabled() {
        return;
    }
    let pc = preempt_count();
    let irqs_off = ctx::irqs_disabled();
    if pc == 0 && !irqs_off && held::atomic_holds() == 0 {
        return;
    }
    wait::might_sleep_slow(pc, irqs_off);
}

pub(super) fn lock_is_held(map: &LockdepMap) -> bool {
    if !report::enabled() {
        return true;
    }
    let addr = map as *const _ as usize;
    with_tls(|t| {
        t.broken || t.held[..t.depth].iter().any(|h| h.map == addr) || t.merged(map).is_some()
    })
    .unwrap_or(true)
}

/// An acquisition of `map` under the nest lock `nest` (`lock_acquire` with
/// `nest_lock`): many locks of one class taken under one outer lock that
/// serializes them (`mutex_lock_nest_lock`, `spin_lock_nest_lock`). Locks of
/// the class taken one after another share one held-lock entry (`references`),
/// so any number fit in the stack; a lock of the class already held is no
/// recursion. Reports if `nest` is not held.
#[track_caller]
pub(super) fn acquire_nest(map: &LockdepMap, kind: AcquireKind, trylock: bool, nest: &LockdepMap) {
    if !report::enabled() {
        return;
    }
    install_ctx_hooks();
    let pc = preempt_count();
    let irqs_off = ctx::irqs_disabled();
    let id = class_of(map, 0);
    let nest_id = class_of(nest, 0);
    if id == 0 || nest_id == 0 {
        return;
    }
    let ip = Location::caller();
    let h = Held::new(map, id, class_bits(id), kind, trylock, irq_context(pc), ip);
    let nest_addr = nest as *const _ as usize;
    let out = with_tls(|t| {
        if t.broken {
            return Vec::new();
        }
        let held = t.held[..t.depth].iter().any(|x| x.map == nest_addr);
        if !held {
            let mut out = nest_not_held(t, map, id, nest, nest_id);
            out.extend(acquire_checked(t, map, h, pc, irqs_off, None));
            return out;
        }
        if let Some(top) = t.depth.checked_sub(1).map(|i| &mut t.held[i])
            && top.class == id
            && top.flags & F_NOCHECK == 0
        {
            top.refs = top.refs.max(1) + 1;
            top.map = 0;
            return Vec::new();
        }
        acquire_checked(t, map, h, pc, irqs_off, Some(nest_addr))
    });
    if let Some(out) = out {
        emit_all(out);
    }
}

/// "Nested lock was not taken" (`print_lock_nested_lock_not_held`).
fn nest_not_held(
    t: &Tls,
    map: &LockdepMap,
    id: u32,
    nest: &LockdepMap,
    nest_id: u32,
) -> Vec<Report> {
    let tid = crate::arch::gettid();
    if !state().once(ReportKind::NestLockNotHeld, vec![id, nest_id], tid) {
        return Vec::new();
    }
    let name = thread_name();
    let mut text = banner(ReportKind::NestLockNotHeld);
    let _ = writeln!(
        text,
        "{name}/{tid} is trying to lock:\n  {:#x} {}\nbut this task is not holding:\n  {}\n",
        map as *const _ as usize,
        cdesc(id),
        nest.name()
    );
    text.push_str(&held::held_text(t, tid, Some(&name)));
    text.push_str(&current_trace());
    vec![Report {
        kind: ReportKind::NestLockNotHeld,
        classes: vec![map.name(), nest.name()],
        text,
        tid,
    }]
}

/// Whether this thread holds `map` in the mode `read` asks for (`None`:
/// any; `Some(false)`: exclusively; `Some(true)`: shared) (`lock_is_held_type`).
/// True with lockdep off or the stack gone, as `lock_is_held`.
fn lock_is_held_type(map: &LockdepMap, read: Option<bool>) -> bool {
    if !report::enabled() {
        return true;
    }
    let addr = map as *const _ as usize;
    with_tls(|t| {
        if t.broken {
            return true;
        }
        let found = t.held[..t.depth]
            .iter()
            .rposition(|h| h.map == addr)
            .or_else(|| t.merged(map));
        match (found, read) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(i), Some(r)) => (t.held[i].kind != AcquireKind::Exclusive) == r,
        }
    })
    .unwrap_or(true)
}

/// `lockdep_assert_held` (`read`: `None`), `_held_write` (`Some(false)`) and
/// `_held_read` (`Some(true)`): reports unless this thread holds `map` so.
pub(super) fn assert_held(map: &LockdepMap, read: Option<bool>) {
    if lock_is_held_type(map, read) {
        return;
    }
    let tid = crate::arch::gettid();
    let id = class_of(map, 0);
    let what = match read {
        None => "lockdep_assert_held",
        Some(false) => "lockdep_assert_held_write",
        Some(true) => "lockdep_assert_held_read",
    };
    // Once per class, thread, assertion and whether the lock is held at all
    // (a held-for-read lock asserted held for write is another bug than a
    // lock not held).
    let held_otherwise = read.is_some() && lock_is_held_type(map, None);
    // One word: `once` sorts its ids, which would mix separate fields.
    let code = read.map_or(2, u32::from) << 1 | u32::from(held_otherwise);
    let ids = vec![id << 3 | code];
    if id == 0 || !irqs_held_back(|| state().once(ReportKind::NotHeld, ids, tid)) {
        return;
    }
    let mut text = banner(ReportKind::NotHeld);
    let _ = writeln!(
        text,
        "{what}({}) failed on {}/{tid}{}",
        cdesc(id),
        thread_name(),
        if held_otherwise {
            ": held, but in the other mode"
        } else {
            ""
        }
    );
    text.push_str(&held_text_now(tid));
    text.push_str(&current_trace());
    emit_all(vec![Report {
        kind: ReportKind::NotHeld,
        classes: vec![map.name()],
        text,
        tid,
    }]);
}

pub(super) fn rcu_depth() -> u32 {
    wait::rcu_depth()
}

pub(super) fn assert_not_in_rcu(what: &'static str) {
    if !report::enabled() {
        return;
    }
    wait::assert_not_in_rcu(what);
}

pub(super) fn held_locks_text() -> String {
    held_text_now(crate::arch::gettid())
}

pub(super) fn depth() -> usize {
    with_tls(|t| t.depth).unwrap_or(0)
}

/// `lockdep::reset`: forgets the dependency graph, every class's usage, the
/// validated chains and the reports given, and empties this thread's held-lock
/// stack (turning its validator back on if it overflowed).
pub(super) fn reset() {
    irqs_held_back(|| {
        let mut st = state();
        st.clear_graph();
        classes::clear_usage(st.nclasses);
        clear_chains();
    });
    with_tls(|t| {
        t.depth = 0;
        t.spin = 0;
        t.rcu = 0;
        t.broken = false;
    });
}

/// Installs lockdep's hooks in `ctx`, which stands below it (once; from the
/// slow path of an acquisition, so a program that takes no lock installs none).
fn install_ctx_hooks() {
    static DONE: AtomicBool = AtomicBool::new(false);
    // Relaxed: installing twice stores the same function twice.
    if !DONE.load(Ordering::Relaxed) {
        DONE.store(true, Ordering::Relaxed);
        ctx::set_bogus_irq_restore_hook(bogus_irq_restore);
        stat::init_from_env();
    }
}

/// "local_irq_restore() called with irqs enabled": a saved irqs-disabled
/// state restored while irqs are on, which leaves them off for good. With
/// guards it is a drop order the kernel's scoped locks cannot produce:
/// `lock_irq(a)`, `lock_irqsave(b)`, drop `a` (irqs on), drop `b` (irqs off
/// again, no lock held). Called by `ctx::local_irq_restore`; once per thread.
fn bogus_irq_restore() {
    if !report::enabled() {
        return;
    }
    let tid = crate::arch::gettid();
    if !irqs_held_back(|| state().once(ReportKind::IrqRestoreOutOfOrder, Vec::new(), tid)) {
        return;
    }
    let mut text = banner(ReportKind::IrqRestoreOutOfOrder);
    let _ = writeln!(
        text,
        "{}/{tid} restores irq flags saved with irqs disabled while irqs are enabled:\n\
         the save and this restore are not nested with whatever enabled irqs in between\n\
         (guards dropped out of order: lock_irq(a), lock_irqsave(b), drop(a), drop(b));\n\
         irqs stay disabled after it.\n",
        thread_name()
    );
    text.push_str(&held_text_now(tid));
    text.push_str(&current_trace());
    emit_all(vec![Report {
        kind: ReportKind::IrqRestoreOutOfOrder,
        classes: Vec::new(),
        text,
        tid,
    }]);
}

/// `map` is being dropped: if this thread holds it, "held lock freed!"
/// (`debug_check_no_locks_freed`), and the entry leaves the stack, since no
/// release will come for it.
pub(super) fn map_freed(map: &LockdepMap) {
    if classes::cached(map, 0).0 == 0 && classes::cached(map, 1).0 == 0 {
        return; // never acquired
    }
    if !report::enabled() {
        return;
    }
    let addr = map as *const _ as usize;
    let out = with_tls(|t| {
        let mut out = Vec::new();
        if t.broken || !t.held[..t.depth].iter().any(|h| h.map == addr) {
            return out;
        }
        let tid = crate::arch::gettid();
        let name = thread_name();
        let id = class_of(map, 0);
        if state().once(ReportKind::HeldLockFreed, vec![id], tid) {
            let mut text = banner(ReportKind::HeldLockFreed);
            let _ = writeln!(
                text,
                "{name}/{tid} is freeing memory {addr:#x}-{:#x}, with a lock still held there!\n  {addr:#x} {}",
                addr + core::mem::size_of::<LockdepMap>() - 1,
                cdesc(id)
            );
            text.push_str(&held::held_text(t, tid, Some(&name)));
            text.push_str(&current_trace());
            out.push(Report {
                kind: ReportKind::HeldLockFreed,
                classes: vec![map.name()],
                text,
                tid,
            });
        }
        // No release will come: take it off the stack.
        out.extend(t.release(map));
        out
    });
    if let Some(out) = out {
        emit_all(out);
    }
}
