//! The validator behind the hooks (feature `lockdep`): classes, held-lock stacks,
//! the dependency graph, the chain cache and the irq-usage bits.
//!
//! Implementation details, after kernel/locking/lockdep.c:
//!
//! - Classes live in a static array indexed by class id (1-based; 0 = none). A
//!   class's description is written once, before its id is published in the map's
//!   `class_cache` (Release, paired with the Acquire load in [`class_of`]); its
//!   usage bits are an atomic word read without a lock.
//! - Everything else global (the class registry, the dependency graph, the set of
//!   reports already given) sits behind one `std` mutex, taken only on slow paths:
//!   a class's first use, a chain never validated, a usage bit never set, a report.
//!   It is a `std` mutex and not a ksync lock so that the validator never validates
//!   itself.
//! - Validated chains are keys in a lock-free open-addressing table of `AtomicU64`
//!   (0 = empty). A hit means the same sequence of held classes (with their kinds
//!   and trylock flags) followed by the same new class has been validated, so its
//!   edges are in the graph already; a full table only means more slow paths.
//! - The held-lock stack is a const-initialised thread-local. Its destructor is the
//!   thread-exit check.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::report::{self, Mode, Report, ReportKind};
use super::{AcquireKind, LockdepMap, MAX_LOCK_DEPTH, WAIT_SLEEP, WAIT_SPIN};
use crate::ctx::{self as irq, HARDIRQ_MASK, SOFTIRQ_MASK, SOFTIRQ_OFFSET, preempt_count};

/// The most lock classes (`MAX_LOCKDEP_KEYS`).
const MAX_CLASSES: usize = 4096;
/// Slots of the chain-key table (a power of two).
const CHAIN_SLOTS: usize = 1 << 15;
/// How far an insert or lookup probes before giving up.
const CHAIN_PROBES: usize = 32;

// Usage bits: bit = irq * 4 + dir * 2 + read, as the kernel's LOCK_USAGE_* order.
const HARD: u32 = 0;
const SOFT: u32 = 1;
const USED_IN: u32 = 0;
const ENABLED: u32 = 1;
const fn ubit(irq: u32, dir: u32, read: bool) -> u32 {
    1 << (irq * 4 + dir * 2 + read as u32)
}
const USAGE_NAMES: [&str; 8] = [
    "IN-HARDIRQ-W",
    "IN-HARDIRQ-R",
    "HARDIRQ-ON-W",
    "HARDIRQ-ON-R",
    "IN-SOFTIRQ-W",
    "IN-SOFTIRQ-R",
    "SOFTIRQ-ON-W",
    "SOFTIRQ-ON-R",
];

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

/// Class flag: an RCU read section pseudo-lock (no dependencies; no sleeping).
const F_RCU: u8 = 1;
/// Class flag: a spinning lock (no sleeping while held).
const F_SPIN: u8 = 2;
/// Class flag: a sleeping lock (acquiring it is a sleep point).
const F_SLEEP: u8 = 4;

struct ClassInfo {
    name: &'static str,
    subclass: u32,
    site: &'static Location<'static>,
    flags: u8,
}

struct ClassSlot {
    /// Usage bits (`usage_mask`), set under the state lock, read without it.
    usage: AtomicU32,
    info: OnceLock<ClassInfo>,
}

static CLASSES: [ClassSlot; MAX_CLASSES] = [const {
    ClassSlot {
        usage: AtomicU32::new(0),
        info: OnceLock::new(),
    }
}; MAX_CLASSES];

fn class(id: u32) -> &'static ClassInfo {
    CLASSES[id as usize]
        .info
        .get()
        .expect("ksync lockdep: class id published before its description")
}

fn cdesc(id: u32) -> String {
    let c = class(id);
    let mut s = String::from(c.name);
    if c.subclass != 0 {
        let _ = write!(s, "/{}", c.subclass);
    }
    let _ = write!(s, " (class {}", c.site);
    let usage = CLASSES[id as usize].usage.load(Ordering::Relaxed);
    if usage != 0 {
        s.push_str(", usage {");
        let mut first = true;
        for (i, n) in USAGE_NAMES.iter().enumerate() {
            if usage & (1 << i) != 0 {
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str(n);
            }
        }
        s.push('}');
    }
    s.push(')');
    s
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Ident {
    Site(&'static str, u32, u32),
    Key(usize),
}

struct Edge {
    to: u32,
    /// Dependency types present, bit = prev_shared * 2 + next_recursive
    /// (the kernel's -(EN)->, -(ER)->, -(SN)->, -(SR)->).
    mask: u8,
    /// Where the dependency was first recorded, if backtraces are enabled.
    trace: Backtrace,
}

const EN_ER: u8 = 0b0011; // types whose source is held exclusively
const XN: u8 = 0b0101; // types whose target is not a recursive read

struct State {
    registry: Option<HashMap<(Ident, u32), u32>>,
    nclasses: u32,
    fwd: Vec<Vec<Edge>>,
    back: Vec<Vec<u32>>,
    reported: Option<HashSet<(ReportKind, Vec<u32>, i32)>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    registry: None,
    nclasses: 0,
    fwd: Vec::new(),
    back: Vec::new(),
    reported: None,
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// True the first time (kind, ids, scope) is seen: each problem is reported once
    /// (per thread, for per-thread problems: `scope` = tid; else 0).
    fn once(&mut self, kind: ReportKind, mut ids: Vec<u32>, scope: i32) -> bool {
        ids.sort_unstable();
        self.reported
            .get_or_insert_with(HashSet::new)
            .insert((kind, ids, scope))
    }

    fn edge(&self, from: u32, to: u32) -> Option<&Edge> {
        self.fwd[from as usize].iter().find(|e| e.to == to)
    }

    /// Breadth-first search for a *strong* path `from` → … → `to`: one where no
    /// class is entered by a recursive read and left by a shared hold. `start_r`:
    /// the path is entered into `from` by a recursive read; `end_shared`: it must
    /// not enter `to` by a recursive read because `to` is left shared.
    fn strong_path(&self, from: u32, to: u32, start_r: bool, end_shared: bool) -> Option<Vec<u32>> {
        let n = self.fwd.len();
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
            for e in &self.fwd[c as usize] {
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

    /// The first class reachable from `start` (itself included) forwards
    /// (`forward`) or backwards whose usage has any of `bits`, with the path.
    fn find_usage(&self, start: u32, forward: bool, bits: u32) -> Option<Vec<u32>> {
        let n = self.fwd.len();
        let mut parent = vec![u32::MAX; n];
        let mut q = VecDeque::new();
        parent[start as usize] = start;
        q.push_back(start);
        while let Some(c) = q.pop_front() {
            if CLASSES[c as usize].usage.load(Ordering::Relaxed) & bits != 0 {
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
                self.fwd[c as usize].iter().for_each(|e| visit(e.to));
            } else {
                self.back[c as usize].iter().copied().for_each(&mut visit);
            }
        }
        None
    }

    /// The irq-safe → irq-unsafe rule (`check_irq_usage`), for a new edge
    /// `prev` → `next`: no class that is used in an irq may, through the graph,
    /// be held while a class taken with that irq enabled is acquired. Only write
    /// usage counts on both sides (conservative: no false positives from readers).
    fn check_irq_dependency(&mut self, prev: u32, next: u32, out: &mut Vec<Report>) {
        for irq in [HARD, SOFT] {
            let Some(back) = self.find_usage(prev, false, ubit(irq, USED_IN, false)) else {
                continue;
            };
            let Some(fwd) = self.find_usage(next, true, ubit(irq, ENABLED, false)) else {
                continue;
            };
            let safe = back[back.len() - 1];
            let unsafe_ = fwd[fwd.len() - 1];
            if self.once(ReportKind::IrqLockInversion, vec![safe, unsafe_], 0) {
                out.push(irq_inversion_report(irq, safe, unsafe_, prev, next, None));
            }
        }
    }
}

/// One entry of a thread's held-lock stack (`struct held_lock`).
#[derive(Clone, Copy)]
struct Held {
    class: u32,
    map: usize,
    kind: AcquireKind,
    trylock: bool,
    /// 0 process, 1 softirq, 2 hardirq (`irq_context`).
    ctx: u8,
    flags: u8,
    /// Hash of the chain of held classes up to and including this one.
    chain_key: u64,
}

const EMPTY: Held = Held {
    class: 0,
    map: 0,
    kind: AcquireKind::Exclusive,
    trylock: false,
    ctx: 0,
    flags: 0,
    chain_key: 0,
};

struct Tls {
    held: [Held; MAX_LOCK_DEPTH],
    depth: usize,
    /// Held spinning locks.
    spin: u32,
    /// Held RCU read sections.
    rcu: u32,
    /// The stack overflowed: the validator is off for this thread.
    broken: bool,
}

struct TlsCell(RefCell<Tls>);

thread_local! {
    static TLS: TlsCell = const {
        TlsCell(RefCell::new(Tls {
            held: [EMPTY; MAX_LOCK_DEPTH],
            depth: 0,
            spin: 0,
            rcu: 0,
            broken: false,
        }))
    };
}

/// Runs `f` on this thread's held-lock state; `None` if it is gone (thread exit)
/// or busy (re-entered from a signal handler).
fn with_tls<R>(f: impl FnOnce(&mut Tls) -> R) -> Option<R> {
    TLS.try_with(|c| c.0.try_borrow_mut().ok().map(|mut t| f(&mut t)))
        .ok()
        .flatten()
}

impl Drop for TlsCell {
    fn drop(&mut self) {
        let t = self.0.get_mut();
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
}

fn banner(kind: ReportKind) -> String {
    let title = kind.title();
    let rule = "=".repeat(title.len().max(20));
    let dash = "-".repeat(title.len().max(20));
    format!("\n{rule}\n{title}\n{dash}\n")
}

fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned()
}

fn held_text(t: &Tls, tid: i32, name: Option<&str>) -> String {
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
            let _ = writeln!(s, " #{i}: {:#x} {}{kind}", h.map, cdesc(h.class));
        }
    }
    s
}

fn trace_text(bt: &Backtrace) -> String {
    if bt.status() == BacktraceStatus::Captured {
        format!("stack backtrace:\n{bt}\n")
    } else {
        String::new()
    }
}

fn current_trace() -> String {
    trace_text(&Backtrace::capture())
}

#[inline]
fn mix(prev: u64, id: u32, kind: AcquireKind, trylock: bool) -> u64 {
    let v = u64::from(id) | (kind as u64) << 32 | u64::from(trylock) << 34;
    let mut h = (prev ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 32)
}

#[inline]
fn seed(ctx: u8) -> u64 {
    0x6a09_e667_f3bc_c908 ^ u64::from(ctx)
}

static CHAINS: [AtomicU64; CHAIN_SLOTS] = [const { AtomicU64::new(0) }; CHAIN_SLOTS];

#[inline]
fn chain_cached(key: u64) -> bool {
    let k = key.max(1);
    let mut i = k as usize & (CHAIN_SLOTS - 1);
    for _ in 0..CHAIN_PROBES {
        // Relaxed: a hit only says "validated"; the graph it refers to is read
        // only under the state lock.
        let v = CHAINS[i].load(Ordering::Relaxed);
        if v == k {
            return true;
        }
        if v == 0 {
            return false;
        }
        i = (i + 1) & (CHAIN_SLOTS - 1);
    }
    false
}

fn chain_insert(key: u64) {
    let k = key.max(1);
    let mut i = k as usize & (CHAIN_SLOTS - 1);
    for _ in 0..CHAIN_PROBES {
        match CHAINS[i].compare_exchange(0, k, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(v) if v == k => return,
            Err(_) => i = (i + 1) & (CHAIN_SLOTS - 1),
        }
    }
}

/// The class id of `map` at `subclass`, registering it on first use; 0 if the
/// validator ran out of classes (it is then off).
#[inline]
fn class_of(map: &LockdepMap, subclass: u32) -> u32 {
    if let Some(c) = map.class_cache.get(subclass as usize) {
        // Acquire: pairs with the Release store in `register`, after the class's
        // description was written.
        let id = c.load(Ordering::Acquire) & CACHE_ID_MASK;
        if id != 0 {
            return id;
        }
    }
    register(map, subclass)
}

/// A map's `class_cache` word: the class id in the low bits, its flags above.
const CACHE_ID_MASK: u32 = 0xffff;
const CACHE_FLAGS_SHIFT: u32 = 16;

#[cold]
fn register(map: &LockdepMap, subclass: u32) -> u32 {
    irqs_held_back(|| register_locked(map, subclass))
}

fn register_locked(map: &LockdepMap, subclass: u32) -> u32 {
    let ident = match map.key {
        Some(k) => Ident::Key(k as *const _ as usize),
        None => Ident::Site(map.site.file(), map.site.line(), map.site.column()),
    };
    let mut st = state();
    let found = st
        .registry
        .get_or_insert_with(HashMap::new)
        .get(&(ident, subclass))
        .copied();
    let id = match found {
        Some(id) => id,
        None => {
            if st.nclasses as usize + 1 >= MAX_CLASSES {
                drop(st);
                report::emit(Report {
                    kind: ReportKind::TooDeep,
                    classes: vec![map.name()],
                    text: format!(
                        "{}BUG: MAX_LOCKDEP_KEYS too low! ({MAX_CLASSES} classes)\nturning off the locking correctness validator.\n",
                        banner(ReportKind::TooDeep)
                    ),
                    tid: crate::arch::gettid(),
                });
                report::set_mode(Mode::Off);
                return 0;
            }
            let id = st.nclasses + 1;
            let name = map.name();
            let mut flags = 0;
            if name.starts_with("rcu_read_lock") {
                flags |= F_RCU;
            }
            if map.wait == WAIT_SPIN {
                flags |= F_SPIN;
            }
            if map.wait == WAIT_SLEEP {
                flags |= F_SLEEP;
            }
            let _ = CLASSES[id as usize].info.set(ClassInfo {
                name,
                subclass,
                site: map.site,
                flags,
            });
            st.nclasses = id;
            st.fwd.resize_with(id as usize + 1, Vec::new);
            st.back.resize_with(id as usize + 1, Vec::new);
            if let Some(r) = st.registry.as_mut() {
                r.insert((ident, subclass), id);
            }
            id
        }
    };
    if let Some(c) = map.class_cache.get(subclass as usize) {
        // Release: pairs with the Acquire load in `class_of`.
        c.store(
            id | u32::from(class(id).flags) << CACHE_FLAGS_SHIFT,
            Ordering::Release,
        );
    }
    id
}

/// The usage bits an acquisition in this context sets (`mark_usage`).
#[inline]
fn usage_needed(kind: AcquireKind, trylock: bool, pc: u32, irqs_off: bool) -> u32 {
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

impl Tls {
    fn prev_key(&self, ctx: u8) -> u64 {
        match self.depth.checked_sub(1).map(|i| &self.held[i]) {
            Some(h) if h.ctx == ctx => h.chain_key,
            _ => seed(ctx),
        }
    }

    /// The fast path of an acquisition: a known class, nothing new about its
    /// usage and a chain validated before: push and return true. Anything else:
    /// false, and [`Tls::acquire`] does the full job.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn acquire_fast(
        &mut self,
        map: &LockdepMap,
        id: u32,
        flags: u8,
        kind: AcquireKind,
        trylock: bool,
        pc: u32,
        irqs_off: bool,
    ) -> bool {
        if self.broken {
            return true;
        }
        if self.depth == MAX_LOCK_DEPTH
            || (flags & F_SLEEP != 0
                && !trylock
                && (pc != 0 || irqs_off || self.spin + self.rcu != 0))
        {
            return false;
        }
        let ctx = if pc & HARDIRQ_MASK != 0 {
            2
        } else if pc & SOFTIRQ_OFFSET != 0 {
            1
        } else {
            0
        };
        let prev = self.prev_key(ctx);
        let key = if flags & F_RCU != 0 {
            prev
        } else {
            let need = usage_needed(kind, trylock, pc, irqs_off);
            if CLASSES[id as usize].usage.load(Ordering::Relaxed) & need != need {
                return false;
            }
            let key = mix(prev, id, kind, trylock);
            if !trylock && !chain_cached(key) {
                return false;
            }
            key
        };
        self.held[self.depth] = Held {
            class: id,
            map: map as *const _ as usize,
            kind,
            trylock,
            ctx,
            flags,
            chain_key: key,
        };
        self.depth += 1;
        if flags & (F_SPIN | F_RCU) != 0 {
            self.spin += u32::from(flags & F_SPIN != 0);
            self.rcu += u32::from(flags & F_RCU != 0);
        }
        true
    }

    /// The fast path of a release: the lock on top of the stack.
    #[inline]
    fn release_fast(&mut self, addr: usize) -> bool {
        if self.broken {
            return true;
        }
        let Some(top) = self.depth.checked_sub(1) else {
            return false;
        };
        let h = &self.held[top];
        if h.map != addr {
            return false;
        }
        let flags = h.flags;
        self.depth = top;
        if flags & (F_SPIN | F_RCU) != 0 {
            self.spin -= u32::from(flags & F_SPIN != 0);
            self.rcu -= u32::from(flags & F_RCU != 0);
        }
        true
    }

    #[cold]
    fn acquire(
        &mut self,
        map: &LockdepMap,
        id: u32,
        kind: AcquireKind,
        trylock: bool,
        pc: u32,
        irqs_off: bool,
    ) -> Vec<Report> {
        let mut out = Vec::new();
        if self.broken {
            return out;
        }
        let flags = class(id).flags;
        if flags & F_SLEEP != 0 && !trylock && (pc != 0 || irqs_off || self.spin + self.rcu != 0) {
            self.sleep_report(pc, irqs_off, Some(id), &mut out);
        }
        if self.depth == MAX_LOCK_DEPTH {
            self.broken = true;
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
            return out;
        }
        let ctx = if pc & HARDIRQ_MASK != 0 {
            2
        } else if pc & SOFTIRQ_OFFSET != 0 {
            1
        } else {
            0
        };
        let novalidate = flags & F_RCU != 0;
        let prev = self.prev_key(ctx);
        let key = if novalidate {
            prev
        } else {
            let need = usage_needed(kind, trylock, pc, irqs_off);
            if CLASSES[id as usize].usage.load(Ordering::Relaxed) & need != need {
                self.mark_usage(id, need, pc, irqs_off, &mut out);
            }
            mix(prev, id, kind, trylock)
        };
        if !novalidate && !trylock && !chain_cached(key) {
            self.validate(map, id, kind, ctx, &mut out);
            chain_insert(key);
        }
        self.held[self.depth] = Held {
            class: id,
            map: map as *const _ as usize,
            kind,
            trylock,
            ctx,
            flags,
            chain_key: key,
        };
        self.depth += 1;
        self.spin += u32::from(flags & F_SPIN != 0);
        self.rcu += u32::from(flags & F_RCU != 0);
        out
    }

    /// Sets new usage bits of class `id` and checks them (`mark_lock_irq`).
    #[cold]
    fn mark_usage(&self, id: u32, need: u32, pc: u32, irqs_off: bool, out: &mut Vec<Report>) {
        let mut st = state();
        let old = CLASSES[id as usize].usage.fetch_or(need, Ordering::Relaxed);
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
                    text.push_str(&held_text(self, tid, Some(&name)));
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
                st.find_usage(id, true, ubit(irq, ENABLED, false))
                    .map(|p| (id, p[p.len() - 1], p))
            } else {
                st.find_usage(id, false, ubit(irq, USED_IN, false))
                    .map(|p| (p[p.len() - 1], id, p))
            };
            if let Some((safe, unsafe_, path)) = found {
                if safe != unsafe_ && st.once(ReportKind::IrqLockInversion, vec![safe, unsafe_], 0)
                {
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
                        Some((self, crate::arch::gettid(), &name)),
                    ));
                }
            }
        }
    }

    /// Validates a chain never seen: recursion, then the new dependencies
    /// (`validate_chain`: `check_deadlock` and `check_prevs_add`).
    #[cold]
    fn validate(
        &self,
        map: &LockdepMap,
        id: u32,
        kind: AcquireKind,
        ctx: u8,
        out: &mut Vec<Report>,
    ) {
        let mut st = state();
        for h in &self.held[..self.depth] {
            if h.class != id || h.flags & F_RCU != 0 {
                continue;
            }
            if kind == AcquireKind::RecursiveRead && h.kind != AcquireKind::Exclusive {
                continue;
            }
            if st.once(ReportKind::RecursiveLocking, vec![id], 0) {
                out.push(self.recursive_report(map, id, h));
            }
            return;
        }
        for i in (0..self.depth).rev() {
            let h = self.held[i];
            if h.flags & F_RCU != 0 {
                continue;
            }
            if h.ctx != ctx {
                break;
            }
            if h.class != id {
                self.add_edge(&mut st, map, &h, id, kind, out);
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

    fn add_edge(
        &self,
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
        if let Some(path) = st.strong_path(next, prev.class, next_rec, prev_shared) {
            if st.once(ReportKind::CircularDependency, path.clone(), 0) {
                out.push(self.circular_report(st, map, prev, next, &path));
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
                st.check_irq_dependency(prev.class, next, out);
            }
        }
    }

    fn recursive_report(&self, map: &LockdepMap, id: u32, held: &Held) -> Report {
        let tid = crate::arch::gettid();
        let name = thread_name();
        let mut text = banner(ReportKind::RecursiveLocking);
        let _ = writeln!(
            text,
            "{name}/{tid} is trying to acquire lock:\n  {:#x} {}\n\nbut task is already holding lock:\n  {:#x} {}\n",
            map as *const _ as usize,
            cdesc(id),
            held.map,
            cdesc(held.class)
        );
        let n = class(id).name;
        let _ = writeln!(
            text,
            "other info that might help us debug this:\n Possible unsafe locking scenario:\n\n       CPU0\n       ----\n  lock({n});\n  lock({n});\n\n *** DEADLOCK ***\n\n May be due to missing lock nesting notation (use a subclass: *_nested)\n"
        );
        text.push_str(&held_text(self, tid, Some(&name)));
        text.push_str(&current_trace());
        Report {
            kind: ReportKind::RecursiveLocking,
            classes: vec![n],
            text,
            tid,
        }
    }

    fn circular_report(
        &self,
        st: &State,
        map: &LockdepMap,
        prev: &Held,
        next: u32,
        path: &[u32],
    ) -> Report {
        let tid = crate::arch::gettid();
        let name = thread_name();
        let mut text = banner(ReportKind::CircularDependency);
        let _ = writeln!(
            text,
            "{name}/{tid} is trying to acquire lock:\n  {:#x} {}\n\nbut task is already holding lock:\n  {:#x} {}\n\nwhich lock already depends on the new lock.\n\n\nthe existing dependency chain (in reverse order) is:\n",
            map as *const _ as usize,
            cdesc(next),
            prev.map,
            cdesc(prev.class)
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
        text.push_str(&held_text(self, tid, Some(&name)));
        text.push_str(&current_trace());
        Report {
            kind: ReportKind::CircularDependency,
            classes: names,
            text,
            tid,
        }
    }

    /// "sleeping function called from invalid context" (`__might_sleep`).
    fn sleep_report(&self, pc: u32, irqs_off: bool, acquiring: Option<u32>, out: &mut Vec<Report>) {
        let tid = crate::arch::gettid();
        let offenders: Vec<u32> = self.held[..self.depth]
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
            self.rcu
        );
        text.push_str(&held_text(self, tid, Some(&name)));
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

    fn release(&mut self, map: &LockdepMap) -> Vec<Report> {
        let mut out = Vec::new();
        if self.broken {
            return out;
        }
        let addr = map as *const _ as usize;
        let Some(i) = self.held[..self.depth].iter().rposition(|h| h.map == addr) else {
            self.bad_unlock(map, &mut out);
            return out;
        };
        let h = self.held[i];
        self.spin -= u32::from(h.flags & F_SPIN != 0);
        self.rcu -= u32::from(h.flags & F_RCU != 0);
        self.held.copy_within(i + 1..self.depth, i);
        self.depth -= 1;
        // Out-of-order release: the chain keys above the hole change.
        for j in i..self.depth {
            let e = self.held[j];
            let prev = match j.checked_sub(1).map(|k| &self.held[k]) {
                Some(p) if p.ctx == e.ctx => p.chain_key,
                _ => seed(e.ctx),
            };
            self.held[j].chain_key = if e.flags & F_RCU != 0 {
                prev
            } else {
                mix(prev, e.class, e.kind, e.trylock)
            };
        }
        out
    }

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
}

#[inline]
fn emit_all(out: Vec<Report>) {
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

/// Runs `f` with ksync irqs held back, for the slow paths that take a `std` lock
/// outside the held-lock stack's borrow (class registration, reports), so that a
/// handler on this thread cannot re-enter them and deadlock (the kernel's lockdep
/// runs with irqs off too). A panic in `f` (panic mode) restores irqs too, as the
/// panic unwinds: a test or a demo that catches it finds irqs as they were.
fn irqs_held_back<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<irq::IrqFlags>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(flags) = self.0.take() {
                irq::local_irq_restore(flags);
            }
        }
    }
    let _restore = Restore(Some(irq::local_irq_save()));
    f()
}

#[inline]
pub(super) fn acquire(map: &LockdepMap, kind: AcquireKind, trylock: bool, subclass: u32) {
    if report::mode() == Mode::Off {
        return;
    }
    let pc = preempt_count();
    let irqs_off = irq::irqs_disabled();
    // Acquire: pairs with the Release store in `register`.
    let cached = map
        .class_cache
        .get(subclass as usize)
        .map_or(0, |c| c.load(Ordering::Acquire));
    let id = cached & CACHE_ID_MASK;
    if id != 0 {
        let flags = (cached >> CACHE_FLAGS_SHIFT) as u8;
        // An irq handler (a signal handler on this thread) that interrupts us while
        // the stack is borrowed finds it busy and skips both its acquire and its
        // release (it runs to completion inside the borrow), so the stack stays
        // consistent without disabling irqs on this fast path.
        let done = TLS
            .try_with(|c| match c.0.try_borrow_mut() {
                Ok(mut t) => t.acquire_fast(map, id, flags, kind, trylock, pc, irqs_off),
                Err(_) => true,
            })
            .unwrap_or(true);
        if done {
            return;
        }
    }
    acquire_slow(map, kind, trylock, subclass, pc, irqs_off);
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
) {
    let id = class_of(map, subclass);
    if id == 0 {
        return;
    }
    let out = with_tls(|t| {
        let depth = t.depth;
        let out = t.acquire(map, id, kind, trylock, pc, irqs_off);
        if !out.is_empty() && t.depth > depth && report::mode() == Mode::Panic {
            // The report will panic out of the lock's acquire path: the lock is
            // not taken, so it must not stay on the stack.
            t.release_fast(map as *const _ as usize);
        }
        out
    });
    if let Some(out) = out {
        emit_all(out);
    }
}

#[inline]
pub(super) fn release(map: &LockdepMap) {
    if report::mode() == Mode::Off {
        return;
    }
    let addr = map as *const _ as usize;
    let done = TLS
        .try_with(|c| match c.0.try_borrow_mut() {
            Ok(mut t) => t.release_fast(addr),
            Err(_) => true,
        })
        .unwrap_or(true);
    if !done {
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
    if report::mode() == Mode::Off {
        return;
    }
    let pc = preempt_count();
    let irqs_off = irq::irqs_disabled();
    if pc == 0 && !irqs_off {
        let atomic = TLS
            .try_with(|c| c.0.try_borrow().map_or(0, |t| t.spin + t.rcu))
            .unwrap_or(0);
        if atomic == 0 {
            return;
        }
    }
    might_sleep_slow(pc, irqs_off);
}

#[cold]
#[inline(never)]
fn might_sleep_slow(pc: u32, irqs_off: bool) {
    let out = with_tls(|t| {
        let mut out = Vec::new();
        t.sleep_report(pc, irqs_off, None, &mut out);
        out
    });
    if let Some(out) = out {
        emit_all(out);
    }
}

pub(super) fn lock_is_held(map: &LockdepMap) -> bool {
    if report::mode() == Mode::Off {
        return true;
    }
    let addr = map as *const _ as usize;
    with_tls(|t| t.broken || t.held[..t.depth].iter().any(|h| h.map == addr)).unwrap_or(true)
}

pub(super) fn assert_held(map: &LockdepMap) {
    if lock_is_held(map) {
        return;
    }
    let tid = crate::arch::gettid();
    let id = class_of(map, 0);
    if id == 0 || !irqs_held_back(|| state().once(ReportKind::NotHeld, vec![id], tid)) {
        return;
    }
    let mut text = banner(ReportKind::NotHeld);
    let _ = writeln!(
        text,
        "lockdep_assert_held({}) failed on {}/{tid}",
        cdesc(id),
        thread_name()
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
    with_tls(|t| t.rcu).unwrap_or(0)
}

pub(super) fn assert_not_in_rcu(what: &'static str) {
    if report::mode() == Mode::Off || rcu_depth() == 0 {
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

fn held_text_now(tid: i32) -> String {
    let name = thread_name();
    with_tls(|t| held_text(t, tid, Some(&name))).unwrap_or_default()
}

pub(super) fn held_locks_text() -> String {
    held_text_now(crate::arch::gettid())
}

pub(super) fn depth() -> usize {
    with_tls(|t| t.depth).unwrap_or(0)
}
