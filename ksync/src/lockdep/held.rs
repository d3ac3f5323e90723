//! The held-lock stack (`current->held_locks`): one per thread, the locks it
//! holds with the irq context and chain key of each; and the checks that need
//! nothing but the stack: bad unlock balance, too many locks held, locks held at
//! thread exit.
//!
//! The stack is a const-initialised thread-local. Its destructor is the
//! thread-exit check.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::panic::Location;

use super::chains::{mix, seed};
use super::classes::{F_NOCHECK, F_RCU, F_SPIN, cdesc, class, class_of, inner};
use super::report::{self, Mode, Report, ReportKind, banner, current_trace, thread_name};
use super::stat;
use super::state::{emit_all, state};
use super::{AcquireKind, LockdepMap, MAX_LOCK_DEPTH};
use crate::arch::time::now_ns;

/// One entry of a thread's held-lock stack (`struct held_lock`).
#[derive(Clone, Copy)]
pub(super) struct Held {
    pub(super) class: u32,
    /// The map's address (`instance`).
    pub(super) map: usize,
    pub(super) kind: AcquireKind,
    pub(super) trylock: bool,
    /// 0 process, 1 softirq, 2 hardirq (`irq_context`).
    pub(super) ctx: u8,
    /// The class's flags (`F_*`).
    pub(super) flags: u8,
    /// The class's wait types, packed (`classes::inner`, `classes::outer`).
    pub(super) waits: u8,
    /// The strictest inner wait type of this entry and the ones below it in
    /// the same irq context ([`WAIT_NONE`] if none has one); set when the
    /// entry is pushed ([`Tls::push`]).
    pub(super) wait_min: u8,
    /// Hash of the chain of held classes up to and including this one; set when
    /// the entry is pushed ([`Tls::chain_key`]).
    pub(super) chain_key: u64,
    /// Locks of this class merged into this one entry under a nest lock
    /// (`references`); 0 for a plain entry. A merged entry's `map` is 0, so
    /// no release matches it by address: each release of a lock of its class
    /// takes one away ([`Tls::release`]).
    pub(super) refs: u32,
    /// The call site of the acquisition (`acquire_ip`), for lock statistics.
    pub(super) ip: Option<&'static Location<'static>>,
    /// Lock statistics: the kernel's `waittime_stamp` and `holdtime_stamp`
    /// in one word (they never overlap), a `CLOCK_MONOTONIC` time in ns:
    /// 0, not timed; odd, waiting since `stamp - 1` (set by `lock_contended`);
    /// even, held since `stamp` (set by `lock_acquired` while statistics are on).
    pub(super) stamp: u64,
}

impl Held {
    /// The entry for an acquisition of `map`, of class `id` with `flags`, taken
    /// `kind`-wise in irq context `ctx`: the one builder of both acquire paths.
    #[inline]
    pub(super) fn new(
        map: &LockdepMap,
        id: u32,
        (flags, waits): (u8, u8),
        kind: AcquireKind,
        trylock: bool,
        ctx: u8,
        ip: &'static Location<'static>,
    ) -> Held {
        Held {
            class: id,
            map: map as *const _ as usize,
            kind,
            trylock,
            ctx,
            flags,
            waits,
            wait_min: WAIT_NONE,
            chain_key: 0,
            refs: 0,
            ip: Some(ip),
            stamp: 0,
        }
    }
}

const EMPTY: Held = Held {
    class: 0,
    map: 0,
    kind: AcquireKind::Exclusive,
    trylock: false,
    ctx: 0,
    flags: 0,
    waits: 0,
    wait_min: WAIT_NONE,
    chain_key: 0,
    refs: 0,
    ip: None,
    stamp: 0,
};

/// No wait type (`LD_WAIT_MAX`): looser than every [`WaitType`](super::WaitType).
pub(super) const WAIT_NONE: u8 = 5;

/// The strictest inner wait type of `h` and of `below` if that one is in the
/// same irq context (`check_wait_context`'s scan of the held locks, kept per
/// entry so that a check reads only the top one). Maps without a wait type
/// (`LD_WAIT_INV`) leave it as it is.
#[inline]
fn wait_on(below: Option<&Held>, h: &Held) -> u8 {
    let prev = match below {
        Some(p) if p.ctx == h.ctx => p.wait_min,
        _ => WAIT_NONE,
    };
    wait_min_on(prev, h.waits)
}

/// The strictest inner wait type of a stack whose entry below (same irq
/// context) has `prev`, once a lock with packed wait types `waits` is pushed.
#[inline(always)]
pub(super) fn wait_min_on(prev: u8, waits: u8) -> u8 {
    match inner(waits) {
        0 => prev,
        w => w.min(prev),
    }
}

/// The chain key of `h` taken on top of `below` (`None`: nothing below): it
/// extends the key of the lock below if that one was taken in the same irq
/// context, else starts afresh; an RCU read section adds nothing to it (it takes
/// no part in dependencies), nor does a class that is not validated.
#[inline]
fn key_on(below: Option<&Held>, h: &Held) -> u64 {
    let prev = match below {
        Some(p) if p.ctx == h.ctx => p.chain_key,
        _ => seed(h.ctx),
    };
    if h.flags & F_NOCHECK != 0 {
        prev
    } else {
        mix(prev, h.class, h.kind, h.trylock)
    }
}

pub(super) struct Tls {
    pub(super) held: [Held; MAX_LOCK_DEPTH],
    pub(super) depth: usize,
    /// Held spinning locks.
    pub(super) spin: u32,
    /// Held RCU read sections.
    pub(super) rcu: u32,
    /// The stack overflowed: the validator is off for this thread.
    pub(super) broken: bool,
    /// The fast paths may run: the thread-exit check is armed and the stack
    /// is not `broken`. Until then (a new thread) every hook takes its slow
    /// path, whose [`with_tls`] arms the check; the fast paths test this one
    /// flag, and the stack needs no destructor of its own.
    pub(super) ready: bool,
    /// The thread-exit check ([`EXIT`]) is armed (or could not be: the
    /// thread is exiting).
    armed: bool,
}

impl Tls {
    /// Arms the thread-exit check on the first slow path, and says whether the
    /// fast paths may run.
    #[inline]
    fn arm(&mut self) {
        if !self.armed {
            self.armed = true;
            // Touching `EXIT` registers its destructor; an `Err` means the
            // thread is already running its destructors: nothing to arm.
            let _ = EXIT.try_with(|_| ());
        }
        self.ready = !self.broken;
    }
}

/// The held-lock stack's cell. No destructor (the exit check is [`EXIT`]'s),
/// so that reaching it is one thread-pointer-relative address, with no
/// "registered yet?" test on every hook.
struct TlsCell(RefCell<Tls>);

/// Runs the thread-exit check when the thread's destructors run.
struct ExitCheck;

thread_local! {
    static TLS: TlsCell = const {
        TlsCell(RefCell::new(Tls {
            held: [EMPTY; MAX_LOCK_DEPTH],
            depth: 0,
            spin: 0,
            rcu: 0,
            broken: false,
            ready: false,
            armed: false,
        }))
    };
    static EXIT: ExitCheck = const { ExitCheck };
}

/// Runs `f` on this thread's held-lock state; `None` if it is gone (thread exit)
/// or busy (re-entered from a signal handler).
pub(super) fn with_tls<R>(f: impl FnOnce(&mut Tls) -> R) -> Option<R> {
    TLS.try_with(|c| {
        c.0.try_borrow_mut().ok().map(|mut t| {
            t.arm();
            f(&mut t)
        })
    })
    .ok()
    .flatten()
}

/// Runs the fast path `f` on this thread's stack and returns whether it was
/// done; also true, without running it, if the stack is gone (thread exit) or
/// busy. An irq handler (a signal handler on this thread) that interrupts a hook
/// while the stack is borrowed finds it busy and skips both its acquire and its
/// release (it runs to completion inside the borrow), so the stack stays
/// consistent without disabling irqs on the fast paths.
#[inline(always)]
pub(super) fn fast(f: impl FnOnce(&mut Tls) -> bool) -> bool {
    // Only the cell's address comes out of `try_with`, whose closure is then
    // one line that always inlines: `f` runs in the hook's own frame, on the
    // values it has in registers, not behind a closure's captured references.
    let Ok(cell) = TLS.try_with(|c| c as *const TlsCell) else {
        return true;
    };
    // SAFETY: `cell` is this thread's `TLS` value, which `try_with` found
    // alive; it stays alive until this thread runs its TLS destructors, which
    // cannot begin while this thread is inside this call. Shared access only:
    // the `RefCell` below arbitrates the mutable borrow.
    let cell = unsafe { &*cell };
    match cell.0.try_borrow_mut() {
        Ok(mut t) => f(&mut t),
        Err(_) => true,
    }
}

/// The spinning locks and RCU read sections this thread holds; 0 if its stack is
/// gone or busy.
#[inline]
pub(super) fn atomic_holds() -> u32 {
    TLS.try_with(|c| c.0.try_borrow().map_or(0, |t| t.spin + t.rcu))
        .unwrap_or(0)
}

impl Tls {
    /// The chain key of `h` pushed on top of this stack.
    #[inline]
    pub(super) fn chain_key(&self, h: &Held) -> u64 {
        key_on(self.depth.checked_sub(1).map(|i| &self.held[i]), h)
    }

    /// The strictest inner wait type of the locks held in irq context `ctx`
    /// (the entries on top of the stack, down to the first of another
    /// context); [`WAIT_NONE`] if none.
    #[inline]
    pub(super) fn wait_min(&self, ctx: u8) -> u8 {
        match self.depth.checked_sub(1).map(|i| &self.held[i]) {
            Some(top) if top.ctx == ctx => top.wait_min,
            _ => WAIT_NONE,
        }
    }

    /// What a lock pushed in irq context `ctx` continues from: the chain key
    /// and the strictest inner wait type of the top entry if it is of the
    /// same context, else a new chain's seed and no wait type.
    #[inline(always)]
    pub(super) fn below(&self, ctx: u8) -> (u64, u8) {
        // `wrapping_sub`: an empty stack asks for index `usize::MAX`, which
        // `get` answers with `None` in the same compare as a bound.
        match self.held.get(self.depth.wrapping_sub(1)) {
            Some(top) if top.ctx == ctx => (top.chain_key, top.wait_min),
            _ => (seed(ctx), WAIT_NONE),
        }
    }

    /// Pushes `h`, whose chain key is set; the stack has room for it.
    #[inline]
    pub(super) fn push(&mut self, mut h: Held) {
        h.wait_min = wait_on(self.depth.checked_sub(1).map(|i| &self.held[i]), &h);
        self.held[self.depth] = h;
        self.depth += 1;
        self.count(h.flags);
    }

    /// Counts a pushed lock with `flags` among the spinning and RCU holds.
    #[inline(always)]
    pub(super) fn count(&mut self, flags: u8) {
        // Branches, not adds of 0 or 1: most locks are neither, and the
        // compiler would otherwise update both counters in vector registers.
        if flags & F_SPIN != 0 {
            self.spin += 1;
        }
        if flags & F_RCU != 0 {
            self.rcu += 1;
        }
    }

    /// Drops the counts of spinning locks and RCU sections that an entry with
    /// `flags` adds.
    #[inline]
    fn uncount(&mut self, flags: u8) {
        if flags & F_SPIN != 0 {
            self.spin -= 1;
        }
        if flags & F_RCU != 0 {
            self.rcu -= 1;
        }
    }

    /// The fast path of a release: pops the map at `addr` if it is on top of the
    /// stack and returns true; else false, and [`Tls::release`] does the job.
    #[inline]
    pub(super) fn pop(&mut self, addr: usize) -> bool {
        if !self.ready {
            return false; // new or broken: `release` does the job
        }
        // `wrapping_sub` and `get`: an empty stack and the bound in one
        // compare, as in `below`.
        let top = self.depth.wrapping_sub(1);
        let Some(h) = self.held.get(top) else {
            return false;
        };
        if h.map != addr {
            return false;
        }
        if h.stamp != 0 {
            stat_released(h);
        }
        let flags = h.flags;
        self.depth = top;
        self.uncount(flags);
        true
    }

    /// Releases `map` wherever it is in the stack; reports a map this thread does
    /// not hold.
    pub(super) fn release(&mut self, map: &LockdepMap) -> Vec<Report> {
        let mut out = Vec::new();
        if self.broken {
            return out;
        }
        let addr = map as *const _ as usize;
        let found = self.held[..self.depth].iter().rposition(|h| h.map == addr);
        let Some(i) = found.or_else(|| self.merged(map)) else {
            self.bad_unlock(map, &mut out);
            return out;
        };
        if self.held[i].refs > 1 {
            // One of several locks merged under a nest lock: the entry stays.
            self.held[i].refs -= 1;
            return out;
        }
        if self.held[i].stamp != 0 {
            stat_released(&self.held[i]);
        }
        self.uncount(self.held[i].flags);
        self.held.copy_within(i + 1..self.depth, i);
        self.depth -= 1;
        // Out-of-order release: the chain keys and strictest wait types
        // above the hole change.
        for j in i..self.depth {
            let below = j.checked_sub(1).map(|k| self.held[k]);
            self.held[j].chain_key = key_on(below.as_ref(), &self.held[j]);
            self.held[j].wait_min = wait_on(below.as_ref(), &self.held[j]);
        }
        out
    }

    /// The entry that merges locks of `map`'s class under a nest lock, if any.
    pub(super) fn merged(&self, map: &LockdepMap) -> Option<usize> {
        if !self.held[..self.depth].iter().any(|h| h.refs != 0) {
            return None;
        }
        let id = class_of(map, 0);
        self.held[..self.depth]
            .iter()
            .rposition(|h| h.refs != 0 && h.class == id)
    }

    /// "bad unlock balance detected": a release of `map`, which this thread does
    /// not hold.
    #[cold]
    fn bad_unlock(&self, map: &LockdepMap, out: &mut Vec<Report>) {
        let tid = crate::arch::gettid();
        let id = class_of(map, 0);
        if id == 0 || !state().once(ReportKind::BadUnlockBalance, vec![id], tid) {
            return;
        }
        let name = thread_name();
        let mut text = banner(ReportKind::BadUnlockBalance);
        let _ = writeln!(
            text,
            "{name}/{tid} is trying to release lock ({}) at:\n  {:#x} {}\nbut there are no more locks to release!\n",
            map.name(),
            map as *const _ as usize,
            cdesc(id)
        );
        text.push_str("other info that might help us debug this:\n");
        text.push_str(&held_text(self, tid, Some(&name)));
        text.push_str(&current_trace());
        out.push(Report {
            kind: ReportKind::BadUnlockBalance,
            classes: vec![map.name()],
            text,
            tid,
        });
    }

    /// "MAX_LOCK_DEPTH too low": the stack is full while class `id` is acquired;
    /// the validator turns itself off for this thread.
    ///
    /// The stack is emptied once the report is written: from now on nothing is
    /// pushed or popped, so whatever it still held would be stale for good (the
    /// counts of spinning locks and RCU sections that `might_sleep` reads, most
    /// visibly: a false "sleeping function called from invalid context" long
    /// after every lock was released).
    #[cold]
    pub(super) fn overflow(&mut self, id: u32, out: &mut Vec<Report>) {
        let tid = crate::arch::gettid();
        let mut text = banner(ReportKind::TooDeep);
        let _ = writeln!(
            text,
            "BUG: MAX_LOCK_DEPTH too low! ({MAX_LOCK_DEPTH} locks held)\nturning off the locking correctness validator for this thread.\nacquiring: {}",
            cdesc(id)
        );
        text.push_str(&held_text(self, tid, Some(&thread_name())));
        out.push(Report {
            kind: ReportKind::TooDeep,
            classes: vec![class(id).name],
            text,
            tid,
        });
        self.broken = true;
        self.ready = false;
        self.depth = 0;
        self.spin = 0;
        self.rcu = 0;
    }
}

/// The "locks held by" part of a report (`lockdep_print_held_locks`), for the
/// thread `tid` named `name`.
pub(super) fn held_text(t: &Tls, tid: i32, name: Option<&str>) -> String {
    let mut s = String::new();
    let who = match name {
        Some(n) => format!("{n}/{tid}"),
        None => format!("{tid}"),
    };
    if t.depth == 0 {
        let _ = writeln!(s, "no locks held by {who}.");
    } else {
        let _ = writeln!(
            s,
            "{} lock{} held by {who}:",
            t.depth,
            if t.depth == 1 { "" } else { "s" }
        );
        for (i, h) in t.held[..t.depth].iter().enumerate() {
            let kind = match (h.kind, h.trylock) {
                (AcquireKind::Exclusive, false) => "",
                (AcquireKind::Exclusive, true) => " [trylock]",
                (AcquireKind::Read, _) => " [read]",
                (AcquireKind::RecursiveRead, _) => " [recursive read]",
            };
            if h.refs != 0 {
                let _ = writeln!(s, " #{i}: ({} locks) {}{kind}", h.refs, cdesc(h.class));
            } else {
                let _ = writeln!(s, " #{i}: {:#x} {}{kind}", h.map, cdesc(h.class));
            }
        }
    }
    s
}

/// [`held_text`] for the current thread, `tid`; empty if its stack is gone or busy.
pub(super) fn held_text_now(tid: i32) -> String {
    let name = thread_name();
    with_tls(|t| held_text(t, tid, Some(&name))).unwrap_or_default()
}

/// The thread-exit check: locks still held when the thread's destructors
/// run. The stack itself stays readable (it has no destructor), so a lock
/// released by a later destructor still leaves it in order.
impl Drop for ExitCheck {
    fn drop(&mut self) {
        let _ = with_tls(|t| exit_check(t));
    }
}

/// Reports the locks `t` still holds as its thread exits ("lock held when
/// returning to user space").
fn exit_check(t: &Tls) {
    if t.depth == 0 || t.broken || report::mode() == Mode::Off {
        return;
    }
    let tid = crate::arch::gettid();
    let mut text = banner(ReportKind::HeldAtExit);
    let _ = writeln!(text, "thread {tid} is exiting with locks still held!");
    text.push_str(&held_text(t, tid, None));
    let classes = t.held[..t.depth]
        .iter()
        .map(|h| class(h.class).name)
        .collect();
    emit_all(vec![Report {
        kind: ReportKind::HeldAtExit,
        classes,
        text,
        tid,
    }]);
}

// Lock statistics' per-thread side: the held entry's `stamp` (odd: waiting
// since, even: held since) is this thread's; `stat` counts what ends.

/// This thread's identity for bounces: the address of its held-lock stack.
fn stat_me(t: &Tls) -> usize {
    t as *const Tls as usize
}

/// The entry of `map` on this thread's stack, searched from the top (the
/// acquisition just pushed is normally there).
fn stat_find<'t>(t: &'t mut Tls, map: &LockdepMap) -> Option<&'t mut Held> {
    let addr = map as *const LockdepMap as usize;
    let depth = t.depth;
    t.held[..depth].iter_mut().rev().find(|h| h.map == addr)
}

/// `lock_contended`: the acquisition of `map` on this thread must wait; its
/// entry's stamp becomes the wait's start.
#[cold]
#[inline(never)]
pub(super) fn stat_contended(map: &LockdepMap) {
    with_tls(|t| {
        let me = stat_me(t);
        let Some(h) = stat_find(t, map) else { return };
        if h.stamp != 0 {
            return; // told twice about one wait
        }
        h.stamp = now_ns() | 1; // odd: waiting
        stat::count_contended(map, h.class, h.kind, h.ip, me);
    });
}

/// `lock_acquired`: this thread now holds `map`; the wait (if it contended)
/// ends and the hold begins.
#[cold]
#[inline(never)]
pub(super) fn stat_acquired(map: &LockdepMap) {
    let now = (now_ns() & !1).max(2);
    with_tls(|t| {
        let me = stat_me(t);
        let Some(h) = stat_find(t, map) else { return };
        // Odd: the wait that `stat_contended` stamped ends now.
        let wait = (h.stamp & 1 != 0).then(|| now.saturating_sub(h.stamp - 1));
        h.stamp = now; // even: held
        stat::count_acquired(map, h.class, h.kind, h.ip, wait, me);
    });
}

/// An acquisition that statistics timed ends: `h` is released. A hold (even
/// stamp) is counted; a wait never acquired (odd) is not.
#[cold]
#[inline(never)]
fn stat_released(h: &Held) {
    if h.stamp & 1 == 0 {
        stat::count_hold(h.class, h.kind, now_ns().saturating_sub(h.stamp));
    }
}
