//! The catalogue: the classic patterns, each plain (`READ_ONCE`/`WRITE_ONCE`
//! only) and with the barrier or acquire/release that the Linux-kernel memory
//! model says forbids the interesting outcome. Names and verdicts follow the
//! kernel's tools/memory-model/litmus-tests (and herd's naming for the shapes
//! that directory lacks, such as 2+2W): `po` = program order, `once` =
//! READ_ONCE/WRITE_ONCE, `release`/`acquire` = smp_store_release /
//! smp_load_acquire, `fencemb`/`fencewmb`/`fencermb` = smp_mb/smp_wmb/smp_rmb,
//! `ctrl` = a control dependency, `rfi` = reading one's own store, `lock` =
//! an access inside a `spin_lock`/`spin_unlock` critical section (`Lock` with
//! `smp_mb__after_spinlock()` after the acquisition), `unlocklock` = an unlock
//! followed by a lock in program order, `sil` = `spin_is_locked()`, `onceassign`/`derefonce` =
//! `rcu_assign_pointer` / `rcu_dereference` (an address dependency).
//!
//! Every body uses ksync's own barrier functions and spinlocks
//! ([`SpinLock`](ksync::spinlock::SpinLock), the queued lock), so the run
//! checks them.
//!
//! Registers are numbered per thread in the order the thread sets them (the
//! kernel's files sometimes number them otherwise, e.g. `2:r2` for our `2:r0`).

use super::harness::{Loc, Test, Vars, Verdict, ptr_of};
use ksync::barrier::{
    read_once, smp_load_acquire, smp_mb, smp_mb_after_spinlock, smp_rmb, smp_store_release,
    smp_wmb, write_once,
};
use ksync::rcu::rcu_read_lock;

type R = [u32; super::harness::REGS];

const R0: Loc = Loc::Reg(0, 0);
const R1: Loc = Loc::Reg(1, 0);

/// Every test, in the order a default run takes them.
pub fn all() -> Vec<Test> {
    vec![
        // ---- SB: store buffering (Dekker) ------------------------------------
        Test {
            name: "SB+poonceonces",
            about: "store buffering: can both threads miss the other's store?",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.x, 1);
                    r[0] = read_once(v.y);
                },
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.y, 1);
                    r[0] = read_once(v.x);
                },
            ],
            observe: &[R0, R1],
            exists: &[0, 0],
            model: Verdict::Sometimes,
        },
        Test {
            name: "SB+fencembonceonces",
            about: "store buffering with smp_mb() between store and load",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.x, 1);
                    smp_mb();
                    r[0] = read_once(v.y);
                },
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.y, 1);
                    smp_mb();
                    r[0] = read_once(v.x);
                },
            ],
            observe: &[R0, R1],
            exists: &[0, 0],
            model: Verdict::Never,
        },
        Test {
            name: "SB+rfionceonce-poonceonces",
            about: "store buffering where each thread first reads its own store back",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.x, 1);
                    r[0] = read_once(v.x);
                    r[1] = read_once(v.y);
                },
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.y, 1);
                    r[0] = read_once(v.y);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[
                Loc::Reg(0, 0),
                Loc::Reg(0, 1),
                Loc::Reg(1, 0),
                Loc::Reg(1, 1),
            ],
            exists: &[1, 0, 1, 0],
            model: Verdict::Sometimes,
        },
        // ---- MP: message passing ---------------------------------------------
        Test {
            name: "MP+poonceonces",
            about: "message passing: can the flag be seen before the data?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(1, 1)],
            exists: &[1, 0],
            model: Verdict::Sometimes,
        },
        Test {
            name: "MP+pooncerelease+poacquireonce",
            about: "message passing with smp_store_release / smp_load_acquire",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    smp_store_release(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = smp_load_acquire(v.y);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(1, 1)],
            exists: &[1, 0],
            model: Verdict::Never,
        },
        Test {
            name: "MP+fencewmbonceonce+fencermbonceonce",
            about: "message passing with smp_wmb() and smp_rmb()",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    smp_wmb();
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    smp_rmb();
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(1, 1)],
            exists: &[1, 0],
            model: Verdict::Never,
        },
        Test {
            name: "MP+onceassign+derefonce",
            about: "rcu_assign_pointer / rcu_dereference: can a reader that sees the new pointer read stale data through it?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    // rcu_assign_pointer(p, &x): a release store.
                    smp_store_release(v.p, ptr_of(v.x));
                },
                |v: &Vars<'_>, r: &mut R| {
                    let g = rcu_read_lock();
                    // rcu_dereference(p): READ_ONCE, then the load through the
                    // pointer is ordered only by its address dependency, as in
                    // the kernel (no acquire, no fence).
                    let p = read_once(v.p);
                    // SAFETY: `p` holds only this instance's `&x` or `&z`
                    // (the `Vars::p` invariant), which outlive the run.
                    r[1] = read_once(unsafe { &*p });
                    r[0] = u32::from(p == ptr_of(v.x));
                    drop(g);
                },
            ],
            observe: &[Loc::PtrReg(1, 0), Loc::Reg(1, 1)],
            exists: &[1, 0],
            model: Verdict::Never,
        },
        // ---- LB: load buffering ----------------------------------------------
        Test {
            name: "LB+poonceonces",
            about: "load buffering: can each load see the other thread's later store?",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    write_once(v.x, 1);
                },
            ],
            observe: &[R0, R1],
            exists: &[1, 1],
            model: Verdict::Sometimes,
        },
        Test {
            name: "LB+poacquireonce+pooncerelease",
            about: "load buffering with a release on one side and an acquire on the other",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    smp_store_release(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = smp_load_acquire(v.y);
                    write_once(v.x, 1);
                },
            ],
            observe: &[R0, R1],
            exists: &[1, 1],
            model: Verdict::Never,
        },
        Test {
            name: "LB+fencembonceonce+ctrlonceonce",
            about: "load buffering with a control dependency and smp_mb()",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    if r[0] != 0 {
                        write_once(v.y, 1);
                    }
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    smp_mb();
                    write_once(v.x, 1);
                },
            ],
            observe: &[R0, R1],
            exists: &[1, 1],
            model: Verdict::Never,
        },
        // ---- WRC: write-to-read causality --------------------------------------
        Test {
            name: "WRC+poonceonces+Once",
            about: "write-to-read causality across three threads, no ordering",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| write_once(v.x, 1),
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(2, 0), Loc::Reg(2, 1)],
            exists: &[1, 1, 0],
            model: Verdict::Sometimes,
        },
        Test {
            name: "WRC+pooncerelease+fencermbonceonce+Once",
            about: "write-to-read causality with a release and smp_rmb()",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| write_once(v.x, 1),
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    smp_store_release(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    smp_rmb();
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(2, 0), Loc::Reg(2, 1)],
            exists: &[1, 1, 0],
            model: Verdict::Never,
        },
        // ---- ISA2: a release-acquire chain -------------------------------------
        Test {
            name: "ISA2+poonceonces",
            about: "a chain of three threads passing a message, no ordering",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    write_once(v.z, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.z);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(2, 0), Loc::Reg(2, 1)],
            exists: &[1, 1, 0],
            model: Verdict::Sometimes,
        },
        Test {
            name: "ISA2+pooncerelease+poacquirerelease+poacquireonce",
            about: "can a release-acquire chain order a prior store against a later load?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    smp_store_release(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = smp_load_acquire(v.y);
                    smp_store_release(v.z, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = smp_load_acquire(v.z);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(2, 0), Loc::Reg(2, 1)],
            exists: &[1, 1, 0],
            model: Verdict::Never,
        },
        // ---- IRIW: independent reads of independent writes ---------------------
        Test {
            name: "IRIW+poonceonces+OnceOnce",
            about: "can two readers disagree on the order of two independent writes?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| write_once(v.x, 1),
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    r[1] = read_once(v.y);
                },
                |v: &Vars<'_>, _r: &mut R| write_once(v.y, 1),
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[
                Loc::Reg(1, 0),
                Loc::Reg(1, 1),
                Loc::Reg(3, 0),
                Loc::Reg(3, 1),
            ],
            exists: &[1, 0, 1, 0],
            model: Verdict::Sometimes,
        },
        Test {
            name: "IRIW+fencembonceonces+OnceOnce",
            about: "independent reads of independent writes, smp_mb() between the reads",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| write_once(v.x, 1),
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    smp_mb();
                    r[1] = read_once(v.y);
                },
                |v: &Vars<'_>, _r: &mut R| write_once(v.y, 1),
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    smp_mb();
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[
                Loc::Reg(1, 0),
                Loc::Reg(1, 1),
                Loc::Reg(3, 0),
                Loc::Reg(3, 1),
            ],
            exists: &[1, 0, 1, 0],
            model: Verdict::Never,
        },
        // ---- 2+2W: two writes each, in opposite orders -------------------------
        Test {
            name: "2+2W+poonceonces",
            about: "can each thread's first write land after the other's second?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    write_once(v.y, 2);
                },
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.y, 1);
                    write_once(v.x, 2);
                },
            ],
            observe: &[Loc::Var(0), Loc::Var(1)],
            exists: &[1, 1],
            model: Verdict::Sometimes,
        },
        Test {
            name: "2+2W+fencembonceonces",
            about: "two writes each in opposite orders, smp_mb() between them",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    smp_mb();
                    write_once(v.y, 2);
                },
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.y, 1);
                    smp_mb();
                    write_once(v.x, 2);
                },
            ],
            observe: &[Loc::Var(0), Loc::Var(1)],
            exists: &[1, 1],
            model: Verdict::Never,
        },
        // ---- R: a write racing a write-then-read ---------------------------------
        Test {
            name: "R+poonceonces",
            about: "store propagation: can a read miss a write that is co-before the reader's own?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.y, 2);
                    r[0] = read_once(v.x);
                },
            ],
            observe: &[Loc::Var(1), R1],
            exists: &[2, 0],
            model: Verdict::Sometimes,
        },
        Test {
            name: "R+fencembonceonces",
            about: "the R pattern with smp_mb() on both sides",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    smp_mb();
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.y, 2);
                    smp_mb();
                    r[0] = read_once(v.x);
                },
            ],
            observe: &[Loc::Var(1), R1],
            exists: &[2, 0],
            model: Verdict::Never,
        },
        // ---- S: a write ordered against a later write via a read ----------------
        Test {
            name: "S+poonceonces",
            about: "can a store that depends on a read land before the read's source's predecessor?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 2);
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    write_once(v.x, 1);
                },
            ],
            observe: &[Loc::Var(0), R1],
            exists: &[2, 1],
            model: Verdict::Sometimes,
        },
        Test {
            name: "S+fencewmbonceonce+poacquireonce",
            about: "can smp_wmb() and an acquire order a prior store against a later store?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 2);
                    smp_wmb();
                    write_once(v.y, 1);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = smp_load_acquire(v.y);
                    write_once(v.x, 1);
                },
            ],
            observe: &[Loc::Var(0), R1],
            exists: &[2, 1],
            model: Verdict::Never,
        },
        // ---- Coherence: one variable --------------------------------------------
        Test {
            name: "CoRR+poonceonce+Once",
            about: "read-read coherence: can a later read see an older value?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| write_once(v.x, 1),
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(1, 1)],
            exists: &[1, 0],
            model: Verdict::Never,
        },
        Test {
            name: "CoRW+poonceonce+Once",
            about: "read-write coherence: can a read see a write that is co-after the reader's own?",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.x);
                    write_once(v.x, 1);
                },
                |v: &Vars<'_>, _r: &mut R| write_once(v.x, 2),
            ],
            observe: &[R0, Loc::Var(0)],
            exists: &[2, 2],
            model: Verdict::Never,
        },
        Test {
            name: "CoWR+poonceonce+Once",
            about: "write-read coherence: can a read after a write see a value co-before it?",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.x, 1);
                    r[0] = read_once(v.x);
                },
                |v: &Vars<'_>, _r: &mut R| write_once(v.x, 2),
            ],
            observe: &[R0, Loc::Var(0)],
            exists: &[2, 1],
            model: Verdict::Never,
        },
        // ---- Locks: ksync's SpinLock as the LKMM's spin_lock/spin_unlock ---------
        Test {
            name: "MP+polocks",
            about: "message passing through a lock: does the critical section that sees the flag see the data written before it?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    write_once(v.x, 1);
                    let g = v.s.lock();
                    write_once(v.y, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    let g = v.s.lock();
                    r[0] = read_once(v.y);
                    drop(g);
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(1, 1)],
            exists: &[1, 0],
            model: Verdict::Never,
        },
        Test {
            name: "MP+porevlocks",
            about: "message passing through a lock, reversed: a write before the unlock, a read after the lock",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    let g = v.s.lock();
                    r[1] = read_once(v.x);
                    drop(g);
                },
                |v: &Vars<'_>, _r: &mut R| {
                    let g = v.s.lock();
                    write_once(v.x, 1);
                    drop(g);
                    write_once(v.y, 1);
                },
            ],
            observe: &[Loc::Reg(0, 0), Loc::Reg(0, 1)],
            exists: &[1, 0],
            model: Verdict::Never,
        },
        Test {
            name: "LB+unlocklockonceonce+poacquireonce",
            about: "an unlock then a lock of another lock orders the first section's read before the second's write",
            threads: &[
                |v: &Vars<'_>, r: &mut R| {
                    let g = v.s.lock();
                    r[0] = read_once(v.x);
                    drop(g);
                    let g = v.t.lock();
                    write_once(v.y, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = smp_load_acquire(v.y);
                    write_once(v.x, 1);
                },
            ],
            observe: &[R0, R1],
            exists: &[1, 1],
            model: Verdict::Never,
        },
        Test {
            name: "MP+unlocklockonceonce+fencermbonceonce",
            about: "an unlock then a lock of another lock: are the first section's stores seen before the second's?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    let g = v.s.lock();
                    write_once(v.x, 1);
                    drop(g);
                    let g = v.t.lock();
                    write_once(v.y, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.y);
                    smp_rmb();
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(1, 1)],
            exists: &[1, 0],
            model: Verdict::Never,
        },
        Test {
            name: "MP+polockmbonce+poacquiresilsil",
            about: "with smp_mb__after_spinlock(), can spin_is_locked() see the lock free then taken after the section's store was read?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    let g = v.s.lock();
                    smp_mb_after_spinlock();
                    write_once(v.x, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = smp_load_acquire(v.x);
                    r[1] = u32::from(v.s.is_locked());
                    r[2] = u32::from(v.s.is_locked());
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(1, 1), Loc::Reg(1, 2)],
            exists: &[1, 0, 1],
            model: Verdict::Never,
        },
        Test {
            name: "MP+polockonce+poacquiresilsil",
            about: "without smp_mb__after_spinlock(), may spin_is_locked() see the lock free then taken after the section's store was read?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    let g = v.s.lock();
                    write_once(v.x, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = smp_load_acquire(v.x);
                    r[1] = u32::from(v.s.is_locked());
                    r[2] = u32::from(v.s.is_locked());
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(1, 1), Loc::Reg(1, 2)],
            exists: &[1, 0, 1],
            model: Verdict::Sometimes,
        },
        Test {
            name: "ISA2+pooncelock+pooncelock+pombonce",
            about: "is the write order two critical sections of one lock impose seen by a third thread with smp_mb()?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    let g = v.s.lock();
                    write_once(v.x, 1);
                    write_once(v.y, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    let g = v.s.lock();
                    r[0] = read_once(v.y);
                    write_once(v.z, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    r[0] = read_once(v.z);
                    smp_mb();
                    r[1] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Reg(2, 0), Loc::Reg(2, 1)],
            exists: &[1, 1, 0],
            model: Verdict::Never,
        },
        Test {
            name: "Z6.0+pooncelock+poonceLock+pombonce",
            about: "with smp_mb__after_spinlock(), are two critical sections seen in order by a thread not holding the lock?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    let g = v.s.lock();
                    write_once(v.x, 1);
                    write_once(v.y, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    let g = v.s.lock();
                    smp_mb_after_spinlock();
                    r[0] = read_once(v.y);
                    write_once(v.z, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.z, 2);
                    smp_mb();
                    r[0] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Var(2), Loc::Reg(2, 0)],
            exists: &[1, 2, 0],
            model: Verdict::Never,
        },
        Test {
            name: "Z6.0+pooncelock+pooncelock+pombonce",
            about: "without smp_mb__after_spinlock(), may a thread not holding the lock see two critical sections out of order?",
            threads: &[
                |v: &Vars<'_>, _r: &mut R| {
                    let g = v.s.lock();
                    write_once(v.x, 1);
                    write_once(v.y, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    let g = v.s.lock();
                    r[0] = read_once(v.y);
                    write_once(v.z, 1);
                    drop(g);
                },
                |v: &Vars<'_>, r: &mut R| {
                    write_once(v.z, 2);
                    smp_mb();
                    r[0] = read_once(v.x);
                },
            ],
            observe: &[Loc::Reg(1, 0), Loc::Var(2), Loc::Reg(2, 0)],
            exists: &[1, 2, 0],
            model: Verdict::Sometimes,
        },
    ]
}
