//! Runs one process of a parsed test on one instance, with ksync's own
//! primitives behind every statement.
//!
//! | statement                                  | runs as                                           |
//! |--------------------------------------------|---------------------------------------------------|
//! | `READ_ONCE`, `WRITE_ONCE`, plain `*x`       | [`read_once`] / [`write_once`] on an [`Atomic64`]  |
//! | `smp_load_acquire`, `smp_store_release`     | [`smp_load_acquire`] / [`smp_store_release`]       |
//! | `rcu_dereference`, `rcu_assign_pointer`     | `read_once` (the address dependency orders) / `smp_store_release` |
//! | `smp_mb`, `smp_rmb`, `smp_wmb`, `smp_mb__*` | the [`ksync::barrier`] functions of the same name  |
//! | `xchg`, `cmpxchg`, `atomic_*`               | the [`Atomic64`] method of the same name           |
//! | `spin_lock`, `spin_unlock`, `spin_trylock`, `spin_is_locked` | ksync's [`SpinLock`]             |
//! | `rcu_read_lock`, `rcu_read_unlock`, `synchronize_rcu` | [`ksync::rcu`]'s                         |
//! | `srcu_read_lock`, `srcu_read_unlock`, `synchronize_srcu` | a [`SrcuStruct`] per domain            |
//! | `srcu_down_read`, `srcu_up_read`            | [`SrcuStruct::down_read`] / [`SrcuStruct::up_read`] (any process may end it) |
//! | `smp_memb()`                                | [`heavy_barrier`]: `membarrier(PRIVATE_EXPEDITED)`, a full barrier on every running thread |
//!
//! In a test that may deadlock ([`Litmus::may_deadlock`](super::ast::Litmus::may_deadlock):
//! two locks in one process, or a lock and a grace period) a lock wait is
//! bounded (the watchdog): a process that waits for a lock longer than
//! [`Mem::lock_timeout`] decides the instance deadlocked (two processes taking
//! two locks in opposite orders), raises [`Mem::abort`], and every thread of
//! the test stops: the harness reports the deadlock instead of hanging. Other
//! tests take their locks with `SpinLock::lock`, the queued slow path
//! included.
//!
//! A pointer is a value (`ADDR_BASE` + the cell's index) and `*r1` computes
//! the cell's address from the register: the load that follows really depends
//! on the load that produced the pointer, so address dependencies are real.

use super::ast::{ADDR_BASE, Access, BinOp, Expr, Fence, Place, Process, RmwOp, RmwOrder, Stmt};
use ksync::arch::membarrier::heavy_barrier;
use ksync::atomic::Atomic64;
use ksync::barrier::{
    barrier, read_once, smp_load_acquire, smp_mb, smp_mb_after_atomic, smp_mb_after_spinlock,
    smp_mb_before_atomic, smp_rmb, smp_store_mb, smp_store_release, smp_wmb, write_once,
};
use ksync::rcu::{RcuReadGuard, SrcuReadGuard, SrcuStruct, rcu_read_lock, synchronize_rcu};
use ksync::spinlock::{SpinLock, SpinLockGuard};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

/// One instance's memory as a process sees it: cell `c` of instance `i` is
/// `cells[c * k + i]`, lock `l` is `locks[l * k + i]` (each variable an array
/// of its own, so that neighbouring instances of one variable share lines, not
/// different variables of one instance).
pub struct Mem<'a> {
    pub cells: &'a [Atomic64],
    pub locks: &'a [SpinLock<()>],
    pub srcus: &'a [SrcuStruct],
    /// Per lock instance: its holder ended without releasing it (see [`run`]).
    pub leaked: &'a [AtomicBool],
    /// Per SRCU instance (`(s * k + i) * DOWN_WORDS`): the `srcu_down_read()`
    /// sections of index 0 and of index 1 not yet ended by `srcu_up_read()`,
    /// and whether an `srcu_up_read()` ended none (see [`up_read`]).
    pub downs: &'a [AtomicUsize],
    /// The watchdog's flag: a lock wait ran past [`Self::lock_timeout`], and
    /// every thread of the test stops.
    pub abort: &'a AtomicBool,
    /// How long a lock wait may last before it counts as a deadlock; `None`:
    /// the test cannot deadlock, and locks are taken with `SpinLock::lock`.
    pub lock_timeout: Option<Duration>,
    /// Spins before a lock waiter starts yielding its CPU.
    pub spin_limit: u32,
    pub k: usize,
    pub i: usize,
    /// How many cells a test has (pointers beyond are faults).
    pub ncells: usize,
}

/// A process's state while it runs one instance.
pub struct Frame<'a> {
    pub regs: Vec<i64>,
    /// The guard of each lock this process holds, by lock index.
    held: Vec<Option<SpinLockGuard<'a, ()>>>,
    /// Nested `rcu_read_lock()`s.
    rcu: Vec<RcuReadGuard>,
    /// Open SRCU sections: (domain, index returned, guard), in the order taken
    /// (SRCU sections need not nest: `srcu_read_unlock` ends the first of its
    /// domain with its index).
    srcu: Vec<(usize, i64, SrcuReadGuard<'a>)>,
}

impl<'a> Frame<'a> {
    pub fn new(proc: &Process, locks: usize) -> Self {
        Frame {
            regs: proc.reg_init.clone(),
            held: (0..locks).map(|_| None).collect(),
            rcu: Vec::new(),
            srcu: Vec::new(),
        }
    }
}

/// Words per SRCU instance in [`Mem::downs`].
pub const DOWN_WORDS: usize = 3;

/// Something a test did that C would not allow: dereferencing a non-pointer,
/// unlocking a lock not held, `synchronize_rcu()` in a reader.
pub type Fault = String;

/// How a process's run on one instance ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    Done,
    /// It waited for a lock that another process of the instance took and
    /// never released, or for a lock it held itself: in herd's terms the
    /// execution does not exist (it would deadlock), so the instance is left
    /// out of the counts.
    Deadlocked,
    /// The watchdog stopped the test ([`Mem::abort`]): this process waited
    /// too long for a lock, or another one did.
    Aborted,
    /// An `srcu_up_read()` whose index no open `srcu_down_read()` section
    /// had (a register read before the index was passed): herd matches an up
    /// to its down by the index's data flow, so this execution has no
    /// section to end and is left out of the counts.
    Unmatched,
}

/// Why a body stopped early.
enum Stop {
    Fault(Fault),
    Deadlock,
    Watchdog,
    Unmatched,
}

impl From<String> for Stop {
    fn from(s: String) -> Self {
        Stop::Fault(s)
    }
}

impl From<&str> for Stop {
    fn from(s: &str) -> Self {
        Stop::Fault(s.to_string())
    }
}

/// Runs `proc` on instance `mem.i`; on return the frame's registers hold the
/// results and every lock and RCU reader it took is released.
///
/// A lock the process still holds at its end is released, but first marked
/// leaked for this instance: a process that then acquires it knows it could
/// never have in the test (it would wait forever) and the instance ends
/// [`Completion::Deadlocked`].
pub fn run<'a>(proc: &Process, mem: &Mem<'a>, f: &mut Frame<'a>) -> Result<Completion, Fault> {
    f.regs.copy_from_slice(&proc.reg_init);
    let r = block(&proc.body, mem, f);
    let readers = f.rcu.len() + f.srcu.len();
    for (l, g) in f.held.iter_mut().enumerate() {
        if let Some(g) = g.take() {
            // Relaxed: set before the unlock below, and read by the next owner
            // after its acquisition of this same lock, whose release/acquire
            // pair orders the two.
            mem.leaked[l * mem.k + mem.i].store(true, Ordering::Relaxed);
            drop(g);
        }
    }
    f.rcu.clear();
    f.srcu.clear();
    match r {
        Ok(()) => {}
        Err(Stop::Deadlock) => return Ok(Completion::Deadlocked),
        Err(Stop::Watchdog) => return Ok(Completion::Aborted),
        Err(Stop::Unmatched) => return Ok(Completion::Unmatched),
        Err(Stop::Fault(e)) => return Err(e),
    }
    if readers > 0 {
        return Err("the process ends inside an (S)RCU read-side section".into());
    }
    Ok(Completion::Done)
}

fn block<'a>(body: &[Stmt], mem: &Mem<'a>, f: &mut Frame<'a>) -> Result<(), Stop> {
    for s in body {
        stmt(s, mem, f)?;
    }
    Ok(())
}

#[inline]
fn stmt<'a>(s: &Stmt, mem: &Mem<'a>, f: &mut Frame<'a>) -> Result<(), Stop> {
    match s {
        Stmt::Assign(r, e) => f.regs[*r] = eval(e, mem, f)?,
        Stmt::Store(access, place, e) => {
            let v = eval(e, mem, f)?;
            let c = cell(place, mem, f)?;
            match access {
                Access::Plain | Access::Once => write_once(c, v),
                Access::AcqRel => smp_store_release(c, v),
                Access::Mb => smp_store_mb(c, v),
            }
        }
        Stmt::Eval(e) => {
            eval(e, mem, f)?;
        }
        Stmt::Fence(fence) => match fence {
            Fence::Mb => smp_mb(),
            Fence::Rmb => smp_rmb(),
            Fence::Wmb => smp_wmb(),
            Fence::BeforeAtomic => smp_mb_before_atomic(),
            Fence::AfterAtomic => smp_mb_after_atomic(),
            Fence::AfterSpinlock => smp_mb_after_spinlock(),
            // The kernel's smp_mb__after_unlock_lock() is smp_mb() on POWER
            // and nothing elsewhere; ksync's unlock+lock is RCsc already, so
            // the full barrier is the safe reading.
            Fence::AfterUnlockLock => smp_mb(),
            // In the kernel, srcu_read_unlock() followed by this is a full
            // barrier; a full barrier here gives at least that.
            Fence::AfterSrcuReadUnlock => smp_mb(),
            Fence::Compiler => barrier(),
            Fence::Memb => heavy_barrier(),
        },
        Stmt::Lock(l) => {
            if f.held[*l].is_some() {
                // spin_lock() of a lock this process holds: a self-deadlock,
                // which herd has no execution for either.
                return Err(Stop::Deadlock);
            }
            let n = *l * mem.k + mem.i;
            let g = match mem.lock_timeout {
                None => mem.locks[n].lock(),
                Some(limit) => match mem.locks[n].try_lock() {
                    Some(g) => g,
                    None => wait_for_lock(&mem.locks[n], mem, limit)?,
                },
            };
            // Relaxed: see `run`; our acquisition orders it after the
            // leaker's store.
            if mem.leaked[n].load(Ordering::Relaxed) {
                return Err(Stop::Deadlock);
            }
            f.held[*l] = Some(g);
        }
        Stmt::Unlock(l) => {
            if f.held[*l].take().is_none() {
                return Err(format!("spin_unlock() of lock #{l}, not held").into());
            }
        }
        Stmt::RcuReadLock => f.rcu.push(rcu_read_lock()),
        Stmt::RcuReadUnlock => {
            if f.rcu.pop().is_none() {
                return Err("rcu_read_unlock() without rcu_read_lock()".into());
            }
        }
        Stmt::SynchronizeRcu => {
            if !f.rcu.is_empty() {
                return Err(
                    "synchronize_rcu() inside an RCU read-side critical section: it would deadlock"
                        .into(),
                );
            }
            synchronize_rcu();
        }
        Stmt::SrcuUnlock(s, idx) => {
            let idx = eval(idx, mem, f)?;
            match f.srcu.iter().position(|(d, i, _)| d == s && *i == idx) {
                Some(n) => drop(f.srcu.remove(n)),
                None => {
                    return Err(format!(
                        "srcu_read_unlock() of index {idx}, which no open section returned"
                    )
                    .into());
                }
            }
        }
        Stmt::SrcuUp(s, idx) => {
            let idx = eval(idx, mem, f)?;
            up_read(*s, idx, mem)?;
        }
        Stmt::SynchronizeSrcu(s) => {
            if f.srcu.iter().any(|(d, ..)| d == s) {
                return Err(
                    "synchronize_srcu() inside a read-side section of its domain: it would deadlock"
                        .into(),
                );
            }
            mem.srcus[*s * mem.k + mem.i].synchronize();
        }
        Stmt::If(c, then, els) => {
            if eval(c, mem, f)? != 0 {
                block(then, mem, f)?;
            } else {
                block(els, mem, f)?;
            }
        }
    }
    Ok(())
}

/// Waits for `lock`, held by another process of the instance, with the
/// watchdog's bound: past `limit` (or once another thread raised
/// [`Mem::abort`]) the wait ends in [`Stop::Watchdog`].
#[cold]
fn wait_for_lock<'m>(
    lock: &'m SpinLock<()>,
    mem: &Mem<'m>,
    limit: Duration,
) -> Result<SpinLockGuard<'m, ()>, Stop> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        // Relaxed: the flag only stops the wait; nothing is read after it.
        if mem.abort.load(Ordering::Relaxed) {
            return Err(Stop::Watchdog);
        }
        if let Some(g) = lock.try_lock() {
            return Ok(g);
        }
        spins = spins.wrapping_add(1);
        if spins < mem.spin_limit {
            ksync::arch::cpu_relax();
        } else {
            ksync::arch::yield_now();
        }
        if spins.is_multiple_of(256) && start.elapsed() > limit {
            // Relaxed: as above.
            mem.abort.store(true, Ordering::Relaxed);
            return Err(Stop::Watchdog);
        }
    }
}

/// Takes one open section of index `idx` from the count at `words[idx]`.
fn take_section(words: &[AtomicUsize], idx: usize) -> bool {
    // SeqCst: with the stores and loads of `down_read` and `up_read` (see
    // there); an RMW, as two processes may end sections of one index at once.
    words[idx]
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// `srcu_down_read(s)` on this instance: begins a section any process may end,
/// counted in [`Mem::downs`].
fn down_read(s: usize, mem: &Mem<'_>) -> usize {
    let domain = &mem.srcus[s * mem.k + mem.i];
    let words = &mem.downs[(s * mem.k + mem.i) * DOWN_WORDS..][..DOWN_WORDS];
    let idx = domain.down_read() & 1;
    // SeqCst, paired with up_read's orphan path (a store-buffering pair):
    // either this count is seen there, or the orphan mark is seen here, so a
    // section of an instance left out is always ended and no grace period of
    // the round waits for it forever.
    words[idx].fetch_add(1, Ordering::SeqCst);
    if words[2].load(Ordering::SeqCst) != 0 && take_section(words, idx) {
        // SAFETY: the section just begun, whose count was just taken once.
        unsafe { domain.up_read(idx) };
    }
    idx
}

/// `srcu_up_read(s, idx)` on this instance. An index that no open section
/// has (read before the downer passed it on) leaves the instance out
/// ([`Completion::Unmatched`]); the sections of the instance then end at once,
/// the open ones here and later ones in [`down_read`], so that no
/// `synchronize_srcu()` of the round waits for them forever.
fn up_read(s: usize, idx: i64, mem: &Mem<'_>) -> Result<(), Stop> {
    let domain = &mem.srcus[s * mem.k + mem.i];
    let words = &mem.downs[(s * mem.k + mem.i) * DOWN_WORDS..][..DOWN_WORDS];
    if (0..=1).contains(&idx) && take_section(words, idx as usize) {
        // SAFETY: a section of this domain with this index was begun by
        // srcu_down_read() and not yet ended: its count was just taken, once.
        unsafe { domain.up_read(idx as usize) };
        return Ok(());
    }
    // SeqCst: see down_read.
    words[2].store(1, Ordering::SeqCst);
    for i in 0..2 {
        while take_section(words, i) {
            // SAFETY: as above.
            unsafe { domain.up_read(i) };
        }
    }
    Err(Stop::Unmatched)
}

/// The cell a place designates in this instance.
#[inline]
fn cell<'m>(place: &Place, mem: &Mem<'m>, f: &mut Frame<'m>) -> Result<&'m Atomic64, Stop> {
    let c = match place {
        Place::Static(c) => *c,
        Place::Dynamic(e) => {
            let v = eval(e, mem, f)?;
            let c = v.wrapping_sub(ADDR_BASE);
            if !(0..mem.ncells as i64).contains(&c) {
                return Err(format!("dereference of {v}, which is not a pointer").into());
            }
            c as usize
        }
    };
    Ok(&mem.cells[c * mem.k + mem.i])
}

fn eval<'a>(e: &Expr, mem: &Mem<'a>, f: &mut Frame<'a>) -> Result<i64, Stop> {
    Ok(match e {
        Expr::Int(n) => *n,
        Expr::Reg(r) => f.regs[*r],
        Expr::Load(access, place) => {
            let c = cell(place, mem, f)?;
            match access {
                Access::Plain | Access::Once | Access::Mb => read_once(c),
                Access::AcqRel => smp_load_acquire(c),
            }
        }
        Expr::Rmw(op, order, place, args) => {
            let a = match args.first() {
                Some(e) => eval(e, mem, f)?,
                None => 0,
            };
            let b = match args.get(1) {
                Some(e) => eval(e, mem, f)?,
                None => 0,
            };
            let c = cell(place, mem, f)?;
            rmw(c, *op, *order, a, b)
        }
        Expr::Trylock(l) => {
            if f.held[*l].is_some() {
                0
            } else {
                let n = *l * mem.k + mem.i;
                match mem.locks[n].try_lock() {
                    // Taken after its holder's end: in the test it is held
                    // for good (Relaxed: as for spin_lock).
                    Some(_) if mem.leaked[n].load(Ordering::Relaxed) => 0,
                    Some(g) => {
                        f.held[*l] = Some(g);
                        1
                    }
                    None => 0,
                }
            }
        }
        Expr::IsLocked(l) => {
            let n = *l * mem.k + mem.i;
            // A leaked lock is held for good in the test. If `is_locked` read
            // the leaker's unlock (a release store), the Acquire fence makes
            // the flag it stored before that unlock visible to the load.
            let locked = mem.locks[n].is_locked();
            fence(Ordering::Acquire);
            i64::from(locked || mem.leaked[n].load(Ordering::Relaxed))
        }
        Expr::SrcuLock(s) => {
            let g = mem.srcus[*s * mem.k + mem.i].read_lock();
            let idx = g.index() as i64;
            f.srcu.push((*s, idx, g));
            idx
        }
        Expr::SrcuDown(s) => down_read(*s, mem) as i64,
        Expr::Not(a) => i64::from(eval(a, mem, f)? == 0),
        Expr::Neg(a) => eval(a, mem, f)?.wrapping_neg(),
        Expr::BitNot(a) => !eval(a, mem, f)?,
        Expr::Bin(op, a, b) => {
            let x = eval(a, mem, f)?;
            // `&&` and `||` short-circuit, as in C.
            match op {
                BinOp::LAnd if x == 0 => return Ok(0),
                BinOp::LOr if x != 0 => return Ok(1),
                _ => {}
            }
            let y = eval(b, mem, f)?;
            match op {
                BinOp::Add => x.wrapping_add(y),
                BinOp::Sub => x.wrapping_sub(y),
                BinOp::Mul => x.wrapping_mul(y),
                BinOp::Div | BinOp::Rem if y == 0 => return Err("division by zero".into()),
                BinOp::Div => x.wrapping_div(y),
                BinOp::Rem => x.wrapping_rem(y),
                BinOp::And => x & y,
                BinOp::Or => x | y,
                BinOp::Xor => x ^ y,
                BinOp::Shl => x.wrapping_shl(y as u32),
                BinOp::Shr => x.wrapping_shr(y as u32),
                BinOp::Eq => i64::from(x == y),
                BinOp::Ne => i64::from(x != y),
                BinOp::Lt => i64::from(x < y),
                BinOp::Le => i64::from(x <= y),
                BinOp::Gt => i64::from(x > y),
                BinOp::Ge => i64::from(x >= y),
                BinOp::LAnd | BinOp::LOr => i64::from(y != 0),
            }
        }
    })
}

/// One RMW on ksync's `atomic64_t`, `a` and `b` its operands.
#[inline]
fn rmw(c: &Atomic64, op: RmwOp, order: RmwOrder, a: i64, b: i64) -> i64 {
    use RmwOrder::*;
    match (op, order) {
        (RmwOp::Xchg, Full) => c.xchg(a),
        (RmwOp::Xchg, Relaxed) => c.xchg_relaxed(a),
        (RmwOp::Xchg, Acquire) => c.xchg_acquire(a),
        (RmwOp::Xchg, Release) => c.xchg_release(a),
        (RmwOp::Cmpxchg, Full) => c.cmpxchg(a, b),
        (RmwOp::Cmpxchg, Relaxed) => c.cmpxchg_relaxed(a, b),
        (RmwOp::Cmpxchg, Acquire) => c.cmpxchg_acquire(a, b),
        (RmwOp::Cmpxchg, Release) => c.cmpxchg_release(a, b),
        (RmwOp::FetchAdd, Full) => c.fetch_add(a),
        (RmwOp::FetchAdd, Relaxed) => c.fetch_add_relaxed(a),
        (RmwOp::FetchAdd, Acquire) => c.fetch_add_acquire(a),
        (RmwOp::FetchAdd, Release) => c.fetch_add_release(a),
        (RmwOp::AddReturn, Full) => c.add_return(a),
        (RmwOp::AddReturn, Relaxed) => c.add_return_relaxed(a),
        (RmwOp::AddReturn, Acquire) => c.add_return_acquire(a),
        (RmwOp::AddReturn, Release) => c.add_return_release(a),
        (RmwOp::FetchAnd, Full) => c.fetch_and(a),
        (RmwOp::FetchAnd, Relaxed) => c.fetch_and_relaxed(a),
        (RmwOp::FetchAnd, Acquire) => c.fetch_and_acquire(a),
        (RmwOp::FetchAnd, Release) => c.fetch_and_release(a),
        (RmwOp::FetchOr, Full) => c.fetch_or(a),
        (RmwOp::FetchOr, Relaxed) => c.fetch_or_relaxed(a),
        (RmwOp::FetchOr, Acquire) => c.fetch_or_acquire(a),
        (RmwOp::FetchOr, Release) => c.fetch_or_release(a),
        (RmwOp::FetchXor, Full) => c.fetch_xor(a),
        (RmwOp::FetchXor, Relaxed) => c.fetch_xor_relaxed(a),
        (RmwOp::FetchXor, Acquire) => c.fetch_xor_acquire(a),
        (RmwOp::FetchXor, Release) => c.fetch_xor_release(a),
        // The void ops are unordered whatever the spelling (the parser only
        // gives them `Relaxed`).
        (RmwOp::Add, _) => {
            c.add(a);
            0
        }
        (RmwOp::And, _) => {
            c.and(a);
            0
        }
        (RmwOp::Or, _) => {
            c.or(a);
            0
        }
        (RmwOp::Xor, _) => {
            c.xor(a);
            0
        }
        // The conditional and testing ops exist fully ordered only (the parser
        // accepts no other spelling).
        (RmwOp::AddUnless, _) => i64::from(c.add_unless(a, b)),
        (RmwOp::IncNotZero, _) => i64::from(c.inc_not_zero()),
        (RmwOp::SubAndTest, _) => i64::from(c.sub_and_test(a)),
        (RmwOp::AddAndTest, _) => i64::from(c.add_return(a) == 0),
    }
}
