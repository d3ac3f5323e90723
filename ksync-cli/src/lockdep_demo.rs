//! `ksync lockdep-demo`: short programs that each trigger one lockdep report, to
//! show what a user gets. Each runs in a thread of its own, in warn mode (print
//! and collect), and passes when exactly the expected report came out.
//!
//! `--stat` runs the lock statistics demo instead (`CONFIG_LOCK_STAT`): locks
//! made to contend, then the table that `/proc/lock_stat` would show. And
//! `ksync lockstat [torture options]` runs the torture with lock statistics
//! on and prints the same table after it.
//!
//! Needs the `lockdep` feature: `cargo run --release --features lockdep -- lockdep-demo`.

/// Options of `ksync lockdep-demo`.
#[derive(clap::Args, Default)]
pub struct Args {
    /// Run only the demo of this name (see `--list`).
    #[arg(long)]
    pub demo: Option<String>,
    /// List the demos and exit.
    #[arg(long)]
    pub list: bool,
    /// Show lock statistics instead (CONFIG_LOCK_STAT): make locks contend,
    /// then print the table as /proc/lock_stat does.
    #[arg(long)]
    pub stat: bool,
}

/// Runs the demos; returns whether every demo produced its report.
pub fn main(args: Args) -> bool {
    imp::main(args)
}

/// `ksync lockstat`: the torture run `args` describes, with lock statistics
/// on, then the table; returns the torture's verdict.
pub fn lockstat(args: crate::torture::Args) -> bool {
    imp::lockstat(args)
}

#[cfg(not(feature = "lockdep"))]
mod imp {
    fn unavailable(what: &str) -> bool {
        eprintln!(
            "ksync {what}: this ksync was built without lockdep, so there is nothing to show.\n\
             Build it with the feature:  cargo run --release --features lockdep -- {what}"
        );
        false
    }

    pub fn main(args: super::Args) -> bool {
        let _ = args;
        unavailable("lockdep-demo")
    }

    pub fn lockstat(args: crate::torture::Args) -> bool {
        let _ = args;
        unavailable("lockstat")
    }
}

#[cfg(feature = "lockdep")]
mod imp {
    use ksync::irq;
    use ksync::lockdep::{self, LockClassKey, Mode, Report, ReportKind};
    use ksync::mutex::Mutex;
    use ksync::rcu;
    use ksync::sched;
    use ksync::spinlock::{RawSpinLock, RwLock, SpinLock};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    struct Demo {
        name: &'static str,
        about: &'static str,
        expect: ReportKind,
        run: fn() -> Vec<Report>,
    }

    const DEMOS: &[Demo] = &[
        Demo {
            name: "abba",
            about: "SpinLock A then B; later B then A, on one thread (found at once, no hang needed)",
            expect: ReportKind::CircularDependency,
            run: abba,
        },
        Demo {
            name: "cycle3",
            about: "SpinLock A then B, B then C, then C then A: a three-lock cycle",
            expect: ReportKind::CircularDependency,
            run: cycle3,
        },
        Demo {
            name: "recursive",
            about: "mutex_lock of a Mutex its owner already holds (reported before it hangs; the mutex refuses)",
            expect: ReportKind::RecursiveLocking,
            run: recursive,
        },
        Demo {
            name: "recursive-spin",
            about: "spin_lock of a SpinLock its holder already holds, in KSYNC_LOCKDEP=panic mode: stopped by the report instead of spinning for ever",
            expect: ReportKind::RecursiveLocking,
            run: recursive_spin,
        },
        Demo {
            name: "nested-class",
            about: "two SpinLocks of one class (one creation site) nested without a subclass",
            expect: ReportKind::RecursiveLocking,
            run: nested_class,
        },
        Demo {
            name: "bad-unlock",
            about: "mutex_unlock of a Mutex that is not held (RawMutex::unlock; the mutex refuses)",
            expect: ReportKind::BadUnlockBalance,
            run: bad_unlock,
        },
        Demo {
            name: "irq-inversion",
            about: "a SpinLock taken in a real irq handler, and with plain spin_lock (irqs enabled) in process context",
            expect: ReportKind::InconsistentIrqUsage,
            run: irq_inversion,
        },
        Demo {
            name: "irq-safe-unsafe",
            about: "an RwLock read in a real irq handler, another read with irqs on, then the first written under irqs off while the second is written: a new HARDIRQ-safe -> HARDIRQ-unsafe dependency",
            expect: ReportKind::IrqSafeToUnsafe,
            run: irq_safe_unsafe,
        },
        Demo {
            name: "irq-lock-inversion",
            about: "SpinLock S then U with irqs off, U alone with irqs on, and only then S in a real irq handler: S becomes irq-safe while it already depends on the irq-unsafe U",
            expect: ReportKind::IrqLockInversion,
            run: irq_lock_inversion,
        },
        Demo {
            name: "irq-restore-order",
            about: "lock_irq(A), lock_irqsave(B), then A's guard dropped first: B's restore turns irqs off again with no lock held (a check the kernel cannot make)",
            expect: ReportKind::IrqRestoreOutOfOrder,
            run: irq_restore_order,
        },
        Demo {
            name: "sleep-in-atomic",
            about: "mutex_lock with preemption disabled (under a SpinLock it is also an invalid wait context: two reports, as in the kernel)",
            expect: ReportKind::SleepInAtomic,
            run: sleep_in_atomic,
        },
        Demo {
            name: "wait-context",
            about: "a SpinLock (spinlock_t: a sleeping lock on PREEMPT_RT) taken while holding a RawSpinLock",
            expect: ReportKind::InvalidWaitContext,
            run: wait_context,
        },
        Demo {
            name: "rcu-sync",
            about: "synchronize_rcu inside rcu_read_lock",
            expect: ReportKind::RcuSyncInReader,
            run: rcu_sync,
        },
        Demo {
            name: "held-lock-freed",
            about: "a Mutex freed (its Box dropped) while its guard, forgotten, still holds it",
            expect: ReportKind::HeldLockFreed,
            run: held_lock_freed,
        },
        Demo {
            name: "held-at-exit",
            about: "a thread exits holding a Mutex (its guard forgotten)",
            expect: ReportKind::HeldAtExit,
            run: held_at_exit,
        },
    ];

    /// Runs `f`, which the lock under demonstration refuses with a panic after
    /// lockdep's report, and prints the refusal in one line instead of the
    /// panic hook's message and backtrace.
    fn refused(f: impl FnOnce()) {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = catch_unwind(AssertUnwindSafe(f));
        std::panic::set_hook(hook);
        match r {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("?");
                eprintln!("(then refused, with a panic: {msg})");
            }
            Ok(()) => eprintln!("(not refused)"),
        }
    }

    fn abba() -> Vec<Report> {
        static KA: LockClassKey = LockClassKey::new("demo_spin_A");
        static KB: LockClassKey = LockClassKey::new("demo_spin_B");
        let a = SpinLock::with_class(0, "demo_spin_A", &KA);
        let b = SpinLock::with_class(0, "demo_spin_B", &KB);
        {
            let _ga = a.lock();
            let _gb = b.lock();
        }
        {
            let _gb = b.lock();
            let _ga = a.lock(); // reported here
        }
        lockdep::take_reports()
    }

    fn cycle3() -> Vec<Report> {
        static KA: LockClassKey = LockClassKey::new("demo_cycle_A");
        static KB: LockClassKey = LockClassKey::new("demo_cycle_B");
        static KC: LockClassKey = LockClassKey::new("demo_cycle_C");
        let a = SpinLock::with_class(0, "demo_cycle_A", &KA);
        let b = SpinLock::with_class(0, "demo_cycle_B", &KB);
        let c = SpinLock::with_class(0, "demo_cycle_C", &KC);
        // A → B, then B → C; C → A closes the cycle (three CPUs could deadlock).
        for (x, y) in [(&a, &b), (&b, &c), (&c, &a)] {
            let _gx = x.lock();
            let _gy = y.lock();
        }
        lockdep::take_reports()
    }

    fn recursive() -> Vec<Report> {
        static K: LockClassKey = LockClassKey::new("demo_recursive_mutex");
        let m = Mutex::with_class(0, "demo_recursive_mutex", &K);
        let _g = m.lock();
        refused(|| drop(m.lock()));
        lockdep::take_reports()
    }

    fn recursive_spin() -> Vec<Report> {
        static K: LockClassKey = LockClassKey::new("demo_recursive_spin");
        let l = SpinLock::with_class(0, "demo_recursive_spin", &K);
        let g = l.lock();
        // In warn mode the second spin_lock would report, then spin for ever, as
        // in the kernel; panic mode turns the report into a panic before it spins.
        lockdep::set_mode(Mode::Panic);
        refused(|| drop(l.lock()));
        lockdep::set_mode(Mode::Warn);
        // The panic left the second lock()'s preempt-count raise behind (what a
        // kernel oops leaves too); this thread ends right after the demo.
        drop(g);
        lockdep::take_reports()
    }

    fn nested_class() -> Vec<Report> {
        // One creation site, one class: every inode's lock.
        let inodes: Vec<SpinLock<u32>> = (0..2).map(SpinLock::new).collect();
        let _g0 = inodes[0].lock();
        let _g1 = inodes[1].lock(); // needs spin_lock_nested(.., SINGLE_DEPTH_NESTING)
        lockdep::take_reports()
    }

    fn bad_unlock() -> Vec<Report> {
        static K: LockClassKey = LockClassKey::new("demo_unbalanced_mutex");
        let m = Mutex::with_class(0, "demo_unbalanced_mutex", &K);
        drop(m.lock());
        // SAFETY: deliberately wrong (the mutex is not held): RawMutex::unlock
        // checks the owner and refuses with a panic, leaving the mutex as it is.
        refused(|| unsafe { m.raw().unlock() });
        lockdep::take_reports()
    }

    static IRQ_KEY: LockClassKey = LockClassKey::new("demo_irq_lock");
    static IRQ_LOCK: SpinLock<u64> = SpinLock::with_class(0, "demo_irq_lock", &IRQ_KEY);
    /// The irq line the irq demos request, one after another, and the next one
    /// (any free ones below `NR_IRQS`; the tests use low numbers).
    const DEMO_IRQ: u32 = 14;

    fn demo_irq_handler(_irq: u32) {
        *IRQ_LOCK.lock() += 1; // in hardirq context: {IN-HARDIRQ-W}
    }

    fn irq_inversion() -> Vec<Report> {
        if let Err(e) = irq::request_irq(DEMO_IRQ, demo_irq_handler, "lockdep-demo") {
            eprintln!("request_irq({DEMO_IRQ}): {e:?}");
            return Vec::new();
        }
        // A real irq (a signal to this thread): the handler runs now.
        let raised = irq::raise_irq(DEMO_IRQ, &sched::current());
        let ran = *IRQ_LOCK.lock_irqsave() == 1;
        // Process context, irqs enabled: should have been spin_lock_irqsave.
        *IRQ_LOCK.lock() += 1;
        let _ = irq::free_irq(DEMO_IRQ);
        if raised.is_err() || !ran {
            eprintln!("the irq did not run: {raised:?}");
            return Vec::new();
        }
        lockdep::take_reports()
    }

    /// Requests irq `line` with `handler`, raises it on this thread and checks
    /// that it ran (`ran` reads what the handler changed); false if not.
    fn run_irq(line: u32, handler: fn(u32), ran: impl FnOnce() -> bool) -> bool {
        if let Err(e) = irq::request_irq(line, handler, "lockdep-demo") {
            eprintln!("request_irq({line}): {e:?}");
            return false;
        }
        let raised = irq::raise_irq(line, &sched::current());
        let ok = raised.is_ok() && ran();
        let _ = irq::free_irq(line);
        if !ok {
            eprintln!("the irq did not run: {raised:?}");
        }
        ok
    }

    static RW_L1: RwLock<u64> = RwLock::new(0);
    static RW_L2: RwLock<u64> = RwLock::new(0);

    fn rw_irq_handler(_irq: u32) {
        let _r = RW_L1.read(); // in hardirq context: {IN-HARDIRQ-R}
    }

    fn irq_safe_unsafe() -> Vec<Report> {
        if !run_irq(DEMO_IRQ + 1, rw_irq_handler, || true) {
            return Vec::new();
        }
        drop(RW_L2.read()); // irqs enabled: {HARDIRQ-ON-R}
        // L1 -> L2: CPU0 reads L2 and takes the irq, whose read of L1 waits
        // for CPU1, which holds L1 for write and waits for CPU0's reader of L2.
        let _g1 = RW_L1.write_irqsave();
        *RW_L2.write() += 1; // reported here
        lockdep::take_reports()
    }

    static INV_KS: LockClassKey = LockClassKey::new("demo_inv_S");
    static INV_KU: LockClassKey = LockClassKey::new("demo_inv_U");
    static INV_S: SpinLock<u64> = SpinLock::with_class(0, "demo_inv_S", &INV_KS);
    static INV_U: SpinLock<u64> = SpinLock::with_class(0, "demo_inv_U", &INV_KU);

    fn inv_irq_handler(_irq: u32) {
        *INV_S.lock() += 1; // S becomes {IN-HARDIRQ-W}: reported here
    }

    fn irq_lock_inversion() -> Vec<Report> {
        {
            let _gs = INV_S.lock_irqsave();
            *INV_U.lock() += 1; // S -> U, neither irq-safe nor irq-unsafe yet
        }
        *INV_U.lock() += 1; // U: {HARDIRQ-ON-W}
        if !run_irq(DEMO_IRQ, inv_irq_handler, || *INV_S.lock_irqsave() == 1) {
            return Vec::new();
        }
        lockdep::take_reports()
    }

    fn irq_restore_order() -> Vec<Report> {
        static KA: LockClassKey = LockClassKey::new("demo_order_A");
        static KB: LockClassKey = LockClassKey::new("demo_order_B");
        let a = SpinLock::with_class((), "demo_order_A", &KA);
        let b = SpinLock::with_class((), "demo_order_B", &KB);
        let ga = a.lock_irq();
        let gb = b.lock_irqsave(); // saves "irqs disabled"
        drop(ga); // spin_unlock_irq: irqs on, B still held
        drop(gb); // restores "disabled": reported here
        irq::local_irq_enable();
        lockdep::take_reports()
    }

    fn sleep_in_atomic() -> Vec<Report> {
        static KM: LockClassKey = LockClassKey::new("demo_mutex");
        let m = Mutex::with_class((), "demo_mutex", &KM);
        sched::preempt_disable();
        drop(m.lock()); // uncontended, still a sleep point
        sched::preempt_enable();
        lockdep::take_reports()
    }

    fn wait_context() -> Vec<Report> {
        static KR: LockClassKey = LockClassKey::new("demo_raw_spinlock");
        static KS: LockClassKey = LockClassKey::new("demo_spinlock");
        let raw = RawSpinLock::with_class((), "demo_raw_spinlock", &KR);
        let s = SpinLock::with_class((), "demo_spinlock", &KS);
        let _gr = raw.lock();
        let _gs = s.lock(); // fine here, a sleep inside a spinning lock on PREEMPT_RT
        lockdep::take_reports()
    }

    fn rcu_sync() -> Vec<Report> {
        let _r = rcu::rcu_read_lock();
        // synchronize_rcu's own check, made explicitly too so the report is the
        // same whichever ksync::rcu this is built with (the report is once per
        // thread and section, so this does not double it).
        lockdep::assert_not_in_rcu_read_section("synchronize_rcu");
        refused(rcu::synchronize_rcu);
        lockdep::take_reports()
    }

    fn held_lock_freed() -> Vec<Report> {
        static K: LockClassKey = LockClassKey::new("demo_freed_mutex");
        let m = Box::new(Mutex::with_class(0u32, "demo_freed_mutex", &K));
        std::mem::forget(m.lock());
        drop(m); // reported here, not only when the thread exits
        lockdep::take_reports()
    }

    fn held_at_exit() -> Vec<Report> {
        static K: LockClassKey = LockClassKey::new("demo_leaked_mutex");
        static M: Mutex<u32> = Mutex::with_class(0, "demo_leaked_mutex", &K);
        let _ = std::thread::Builder::new()
            .name("demo-exiting".into())
            .spawn(|| std::mem::forget(M.lock()))
            .map(|h| h.join());
        lockdep::take_reports_involving("demo_leaked_mutex")
    }

    /// `ksync lockdep-demo --stat`: a mutex that a waiter is known to wait
    /// for (its contention is seen before the holder lets go), a spinlock
    /// and a mutex hammered by a few threads, an rwlock read by many and
    /// written by one; then the table. Passes if the certain contention was
    /// counted.
    fn stat_demo() -> bool {
        static HOLD: LockClassKey = LockClassKey::new("demo_stat_handoff");
        static SPIN: LockClassKey = LockClassKey::new("demo_stat_spin");
        static MUTEX: LockClassKey = LockClassKey::new("demo_stat_mutex");
        static RW: LockClassKey = LockClassKey::new("demo_stat_rwlock");
        lockdep::lock_stat_enable(true);
        lockdep::lock_stat_reset();
        let handoff = Mutex::with_class(0u64, "demo_stat_handoff", &HOLD);
        let spin = SpinLock::with_class(0u64, "demo_stat_spin", &SPIN);
        let mutex = Mutex::with_class(0u64, "demo_stat_mutex", &MUTEX);
        let rw = RwLock::with_class(0u64, "demo_stat_rwlock", &RW);
        let contended = |name: &str| {
            lockdep::lock_stats()
                .iter()
                .find(|c| c.name == name)
                .map_or(0, |c| {
                    c.contention_points.iter().map(|p| p.count).sum::<u64>()
                })
        };
        std::thread::scope(|s| {
            // One contention for certain: hold, start a waiter, let go only
            // once its contention is counted.
            let g = handoff.lock();
            let waiter = s.spawn(|| *handoff.lock() += 1);
            while contended("demo_stat_handoff") == 0 {
                std::thread::yield_now();
            }
            drop(g);
            waiter.join().unwrap();
            // The rest as the scheduler makes it: a few threads at once.
            for t in 0..4u64 {
                let (spin, mutex, rw) = (&spin, &mutex, &rw);
                s.spawn(move || {
                    for i in 0..20_000u64 {
                        *spin.lock() += 1;
                        if i % 16 == 0 {
                            let mut g = mutex.lock();
                            *g += 1;
                            std::hint::black_box(&mut *g);
                        }
                        if t == 0 && i % 64 == 0 {
                            *rw.write() += 1;
                        } else {
                            std::hint::black_box(*rw.read());
                        }
                    }
                });
            }
        });
        lockdep::lock_stat_enable(false);
        print!("{}", lockdep::lock_stat_table());
        let ok = contended("demo_stat_handoff") == 1;
        eprintln!(
            "### lock statistics demo: the certain contention {}",
            if ok {
                "was counted: ok"
            } else {
                "was not counted: FAILED"
            }
        );
        ok
    }

    pub fn lockstat(args: crate::torture::Args) -> bool {
        let json = args.json;
        lockdep::lock_stat_enable(true);
        lockdep::lock_stat_reset();
        let ok = crate::torture::main(args);
        lockdep::lock_stat_enable(false);
        let table = lockdep::lock_stat_table();
        if json {
            eprint!("{table}"); // stdout holds the torture's JSON
        } else {
            print!("{table}");
        }
        ok
    }

    pub fn main(args: super::Args) -> bool {
        if args.stat {
            return stat_demo();
        }
        if args.list {
            for d in DEMOS {
                println!("{:<16} {}", d.name, d.about);
            }
            return true;
        }
        let chosen: Vec<&Demo> = DEMOS
            .iter()
            .filter(|d| args.demo.as_deref().is_none_or(|n| n == d.name))
            .collect();
        if chosen.is_empty() {
            eprintln!(
                "ksync lockdep-demo: no demo named {:?} (try --list)",
                args.demo.unwrap_or_default()
            );
            return false;
        }
        lockdep::set_mode(Mode::Warn);
        let mut ok = true;
        for d in chosen {
            eprintln!("\n### demo {}: {}", d.name, d.about);
            let run = d.run;
            let got = std::thread::Builder::new()
                .name(format!("demo-{}", d.name))
                .spawn(run)
                .map(|h| h.join());
            let kinds: Vec<ReportKind> = match got {
                Ok(Ok(rs)) => rs.iter().map(|r| r.kind).collect(),
                _ => Vec::new(),
            };
            let pass = kinds == [d.expect];
            ok &= pass;
            eprintln!(
                "### demo {}: expected {:?}, got {:?}: {}",
                d.name,
                d.expect,
                kinds,
                if pass { "ok" } else { "FAILED" }
            );
        }
        ok
    }
}
