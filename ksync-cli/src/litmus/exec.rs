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
//!
//! A pointer is a value (`ADDR_BASE` + the cell's index) and `*r1` computes
//! the cell's address from the register: the load that follows really depends
//! on the load that produced the pointer, so address dependencies are real.

use super::ast::{ADDR_BASE, Access, BinOp, Expr, Fence, Place, Process, RmwOp, RmwOrder, Stmt};
use ksync::atomic::Atomic64;
use ksync::barrier::{
    barrier, read_once, smp_load_acquire, smp_mb, smp_mb_after_atomic, smp_mb_after_spinlock,
    smp_mb_before_atomic, smp_rmb, smp_store_mb, smp_store_release, smp_wmb, write_once,
};
use ksync::rcu::{RcuReadGuard, SrcuReadGuard, SrcuStruct, rcu_read_lock, synchronize_rcu};
use ksync::spinlock::{SpinLock, SpinLockGuard};
use std::sync::atomic::{AtomicBool, Ordering, fence};

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

/// Something a test did that C would not allow: dereferencing a non-pointer,
/// unlocking a lock not held, `synchronize_rcu()` in a reader.
pub type Fault = String;

/// How a process's run on one instance ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    Done,
    /// It waited for a lock that another process of the instance took and
    /// never released: in herd's terms the execution does not exist (it
    /// would deadlock), so the instance is left out of the counts.
    Deadlocked,
}

/// Why a body stopped early.
enum Stop {
    Fault(Fault),
    Deadlock,
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
        },
        Stmt::Lock(l) => {
            if f.held[*l].is_some() {
                return Err(
                    format!("spin_lock() of lock #{l}, already held: self-deadlock").into(),
                );
            }
            let n = *l * mem.k + mem.i;
            let g = mem.locks[n].lock();
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
