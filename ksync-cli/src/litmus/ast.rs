//! A parsed litmus test: names resolved to indices, ready to run.
//!
//! The parser ([`super::parse`]) builds these; the executor
//! ([`super::exec`]) runs the process bodies and the harness
//! ([`super::harness`]) evaluates the final condition over the outcomes.

use std::fmt;

/// The herd verdict a file's `Result:` line records for its proposition: the
/// share of executions the Linux-kernel memory model lets satisfy it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    /// No execution satisfies it: seeing it here is a bug (in ksync's
    /// primitives, in the compiler or in the CPU).
    Never,
    /// Some executions do; whether this CPU shows one is informative.
    Sometimes,
    /// Every execution does: an outcome that does not is a bug, as for `Never`.
    Always,
    /// `Result: DEADLOCK`: every execution deadlocks (herd finds none that
    /// completes, within the filter if there is one). An instance that
    /// completes and passes the filter here contradicts it.
    Deadlock,
    /// `Result: Flag NAME`: herd flags the test (a misuse such as
    /// `srcu-bad-nesting`, named in [`Litmus::flag`]) instead of judging a
    /// proposition.
    Flag,
}

/// Values are `i64`; a pointer to shared variable `v` is `ADDR_BASE + v`, so
/// that a register holding one can be dereferenced (the address computed from
/// the loaded value: a real address dependency) and printed by name.
pub const ADDR_BASE: i64 = 1 << 40;

/// A shared variable's storage kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarKind {
    /// `int`, `int *`, `atomic_t`: a ksync [`Atomic64`](ksync::atomic::Atomic64).
    Cell,
    /// `spinlock_t`: a ksync [`SpinLock`](ksync::spinlock::SpinLock).
    Lock,
    /// `struct srcu_struct`: a ksync [`SrcuStruct`](ksync::rcu::SrcuStruct).
    Srcu,
}

impl VarKind {
    /// The C type that declares this kind.
    pub fn c_type(self) -> &'static str {
        match self {
            VarKind::Cell => "an int",
            VarKind::Lock => "a spinlock_t",
            VarKind::Srcu => "a struct srcu_struct",
        }
    }
}

/// A shared variable.
#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub kind: VarKind,
    /// Index among the variables of its kind (cells and locks are stored apart).
    pub slot: usize,
    /// Initial value (cells only).
    pub init: i64,
}

/// The ordering a load or store carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A plain C access (`*x = 1`, `r0 = *x`): run as `READ_ONCE`/`WRITE_ONCE`
    /// since Rust has no racy plain access; the LKMM calls a race on one a data
    /// race and herd gives no verdict for it.
    Plain,
    /// `READ_ONCE`/`WRITE_ONCE`, `rcu_dereference` (whose ordering is its address
    /// dependency), `atomic_read`/`atomic_set`.
    Once,
    /// `smp_load_acquire`/`smp_store_release`, `rcu_assign_pointer`.
    AcqRel,
    /// `smp_store_mb`: a store then `smp_mb()`.
    Mb,
}

/// Where a memory access goes.
#[derive(Clone, Debug)]
pub enum Place {
    /// A shared cell named directly (`*x` with `x` a parameter): its slot.
    Static(usize),
    /// Through a pointer value computed at run time (`*r1`): an address
    /// dependency on whatever produced it.
    Dynamic(Box<Expr>),
}

/// Barriers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    Mb,
    Rmb,
    Wmb,
    BeforeAtomic,
    AfterAtomic,
    AfterSpinlock,
    AfterUnlockLock,
    AfterSrcuReadUnlock,
    /// `barrier()`: the compiler only.
    Compiler,
    /// `smp_memb()`: the membarrier system call, a full barrier on every
    /// running thread (paulmckrcu's `memb/` tests).
    Memb,
}

/// Read-modify-write operations, named by what they return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmwOp {
    /// `xchg`, `atomic_xchg`: returns the old value.
    Xchg,
    /// `cmpxchg`, `atomic_cmpxchg`: returns the old value.
    Cmpxchg,
    /// `atomic_fetch_add` (and sub, via a negated operand): returns the old value.
    FetchAdd,
    /// `atomic_add_return`: returns the new value.
    AddReturn,
    /// `atomic_add`/`atomic_inc`/…: returns nothing (0).
    Add,
    FetchAnd,
    FetchOr,
    FetchXor,
    And,
    Or,
    Xor,
    /// `atomic_add_unless(v, a, u)`: returns 1 if it added.
    AddUnless,
    /// `atomic_inc_not_zero`, returns 1 if it added.
    IncNotZero,
    /// `atomic_dec_and_test`/`atomic_sub_and_test`: returns 1 if the result is 0.
    SubAndTest,
    /// `atomic_inc_and_test`: 1 if the result is 0.
    AddAndTest,
}

/// The ordering variant of an RMW (`_relaxed`, `_acquire`, `_release`, or
/// none: fully ordered; void `atomic_*` ops are unordered as in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmwOrder {
    Full,
    Relaxed,
    Acquire,
    Release,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LAnd,
    LOr,
}

/// An expression of a process body.
#[derive(Clone, Debug)]
pub enum Expr {
    Int(i64),
    /// A register of this process (its slot).
    Reg(usize),
    /// A load.
    Load(Access, Place),
    /// An RMW on a cell: operands, then ordering.
    Rmw(RmwOp, RmwOrder, Place, Vec<Expr>),
    /// `spin_trylock(l)`: 1 if taken.
    Trylock(usize),
    /// `spin_is_locked(l)`.
    IsLocked(usize),
    /// `srcu_read_lock(s)`: the section's index.
    SrcuLock(usize),
    /// `srcu_down_read(s)`: the section's index; any process may end it.
    SrcuDown(usize),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    BitNot(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

/// A statement of a process body.
#[derive(Clone, Debug)]
pub enum Stmt {
    Assign(usize, Expr),
    Store(Access, Place, Expr),
    /// An expression evaluated for its effect (`xchg(x, 1);`).
    Eval(Expr),
    Fence(Fence),
    Lock(usize),
    Unlock(usize),
    RcuReadLock,
    RcuReadUnlock,
    SynchronizeRcu,
    /// `srcu_read_unlock(s, idx)`.
    SrcuUnlock(usize, Expr),
    /// `srcu_up_read(s, idx)`.
    SrcuUp(usize, Expr),
    /// `synchronize_srcu(s)`.
    SynchronizeSrcu(usize),
    If(Expr, Vec<Stmt>, Vec<Stmt>),
}

/// A process (`P0`, `P1`, …).
#[derive(Clone, Debug)]
pub struct Process {
    /// Register names, by slot.
    pub regs: Vec<String>,
    /// Initial register values (from the init block), by slot.
    pub reg_init: Vec<i64>,
    pub body: Vec<Stmt>,
}

/// A location of the final state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loc {
    /// Process, register slot.
    Reg(usize, usize),
    /// Shared cell slot.
    Var(usize),
}

/// A proposition over the final state.
#[derive(Clone, Debug)]
pub enum Prop {
    True,
    False,
    /// Index into [`Litmus::observed`], value.
    Eq(usize, i64),
    /// Two locations hold the same value (`0:r1=1:r1`).
    EqLoc(usize, usize),
    Not(Box<Prop>),
    And(Box<Prop>, Box<Prop>),
    Or(Box<Prop>, Box<Prop>),
}

impl Prop {
    pub fn eval(&self, values: &[i64]) -> bool {
        match self {
            Prop::True => true,
            Prop::False => false,
            Prop::Eq(l, v) => values[*l] == *v,
            Prop::EqLoc(a, b) => values[*a] == values[*b],
            Prop::Not(p) => !p.eval(values),
            Prop::And(a, b) => a.eval(values) && b.eval(values),
            Prop::Or(a, b) => a.eval(values) || b.eval(values),
        }
    }
}

/// The final condition's quantifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Quantifier {
    /// `exists P`: some execution satisfies P.
    Exists,
    /// `~exists P`: none does.
    NotExists,
    /// `forall P`: all do.
    Forall,
}

/// A whole test.
#[derive(Clone, Debug)]
pub struct Litmus {
    pub name: String,
    /// Where it came from (a path, or `builtin:NAME`).
    pub source: String,
    /// The `Result:` line, when the file has one.
    pub expected: Option<Verdict>,
    /// A flag herd raises beside (or instead of) the verdict: `data-race` for
    /// `Result: Never DATARACE`, the name of `Result: Flag NAME`.
    pub flag: Option<String>,
    /// Every shared variable, cells and locks.
    pub vars: Vec<Var>,
    pub cells: usize,
    pub locks: usize,
    pub srcus: usize,
    pub procs: Vec<Process>,
    /// The locations an outcome is made of: the `locations` clause's, then the
    /// condition's and the filter's, in order of first mention.
    pub observed: Vec<Loc>,
    /// How many of [`Self::observed`] are shown (the filter's own are not).
    pub shown: usize,
    pub filter: Option<Prop>,
    pub quantifier: Quantifier,
    pub prop: Prop,
    /// The condition as written (normalized spacing); `(none)` for a
    /// `Result: DEADLOCK` file without one.
    pub condition: String,
}

impl Litmus {
    /// Whether any process calls `synchronize_rcu()` or `synchronize_srcu()`
    /// (a grace period per instance: such tests get fewer iterations).
    pub fn uses_synchronize_rcu(&self) -> bool {
        fn any(body: &[Stmt]) -> bool {
            body.iter().any(|s| match s {
                Stmt::SynchronizeRcu | Stmt::SynchronizeSrcu(_) => true,
                Stmt::If(_, a, b) => any(a) || any(b),
                _ => false,
            })
        }
        self.procs.iter().any(|p| any(&p.body))
    }

    /// Whether a lock wait of this test may last forever: some process takes
    /// two different locks (the opposite orders of two processes deadlock)
    /// or takes a lock and waits for a grace period (which may wait for a
    /// reader that waits for the lock). Otherwise every holder releases its
    /// lock without waiting for anything, and lock waits need no watchdog.
    pub fn may_deadlock(&self) -> bool {
        fn expr_locks(e: &Expr, out: &mut Vec<usize>) {
            match e {
                Expr::Trylock(l) => out.push(*l),
                Expr::Load(_, Place::Dynamic(a))
                | Expr::Not(a)
                | Expr::Neg(a)
                | Expr::BitNot(a) => expr_locks(a, out),
                Expr::Bin(_, a, b) => {
                    expr_locks(a, out);
                    expr_locks(b, out);
                }
                Expr::Rmw(_, _, _, args) => args.iter().for_each(|a| expr_locks(a, out)),
                _ => {}
            }
        }
        /// The locks `body` acquires, and whether it waits for a grace period.
        fn scan(body: &[Stmt], locks: &mut Vec<usize>, sync: &mut bool) {
            for s in body {
                match s {
                    Stmt::Lock(l) => locks.push(*l),
                    Stmt::SynchronizeRcu | Stmt::SynchronizeSrcu(_) => *sync = true,
                    Stmt::Assign(_, e) | Stmt::Eval(e) | Stmt::Store(_, _, e) => {
                        expr_locks(e, locks)
                    }
                    Stmt::If(c, a, b) => {
                        expr_locks(c, locks);
                        scan(a, locks, sync);
                        scan(b, locks, sync);
                    }
                    _ => {}
                }
            }
        }
        self.procs.iter().any(|p| {
            let (mut locks, mut sync) = (Vec::new(), false);
            scan(&p.body, &mut locks, &mut sync);
            locks.sort_unstable();
            locks.dedup();
            locks.len() >= 2 || (!locks.is_empty() && sync)
        })
    }

    /// Whether any process calls `smp_memb()`, which orders only where the
    /// membarrier system call is in use.
    pub fn uses_memb(&self) -> bool {
        fn any(body: &[Stmt]) -> bool {
            body.iter().any(|s| match s {
                Stmt::Fence(Fence::Memb) => true,
                Stmt::If(_, a, b) => any(a) || any(b),
                _ => false,
            })
        }
        self.procs.iter().any(|p| any(&p.body))
    }

    /// The cell variable with slot `slot`.
    pub fn cell_name(&self, slot: usize) -> &str {
        self.vars
            .iter()
            .find(|v| v.kind == VarKind::Cell && v.slot == slot)
            .map(|v| v.name.as_str())
            .unwrap_or("?")
    }

    /// `0:r1`, `x`.
    pub fn loc_name(&self, loc: &Loc) -> String {
        match *loc {
            Loc::Reg(p, r) => format!("{p}:{}", self.procs[p].regs[r]),
            Loc::Var(v) => self.cell_name(v).to_string(),
        }
    }

    /// A value as herd prints it: pointers by the name they point to.
    pub fn value_name(&self, v: i64) -> String {
        let slot = v - ADDR_BASE;
        if (0..self.cells as i64).contains(&slot) {
            self.cell_name(slot as usize).to_string()
        } else {
            v.to_string()
        }
    }

    /// `0:r0=1; 1:r0=0;` for the shown locations of an outcome.
    pub fn format_outcome(&self, values: &[i64]) -> String {
        self.observed[..self.shown]
            .iter()
            .zip(values)
            .map(|(l, &v)| format!("{}={}", self.loc_name(l), self.value_name(v)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for Quantifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantifier::Exists => "exists",
            Quantifier::NotExists => "~exists",
            Quantifier::Forall => "forall",
        })
    }
}
