//! `ksync lockdep-demo`: short programs that each trigger one lockdep report, to
//! show what a user gets. Each runs in a thread of its own, in warn mode (print
//! and collect), and passes when exactly the expected report came out.
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
}

/// Runs the demos; returns whether every demo produced its report.
pub fn main(args: Args) -> bool {
    imp::main(args)
}

#[cfg(not(feature = "lockdep"))]
mod imp {
    pub fn main(args: super::Args) -> bool {
        let _ = args;
        eprintln!(
            "ksync lockdep-demo: this ksync was built without lockdep, so there is nothing to show.\n\
             Build it with the feature:  cargo run --release --features lockdep -- lockdep-demo"
        );
        false
    }
}

#[cfg(feature = "lockdep")]
mod imp {
    use ksync::lockdep::{self, AcquireKind, LockdepMap, Mode, Report, ReportKind};
    use ksync::sched::{self, HARDIRQ_OFFSET, TaskState};
    use std::time::Duration;

    /// A small spinning lock feeding lockdep the way ksync's locks do (acquire
    /// before waiting, release after unlocking).
    struct DemoLock {
        inner: std::sync::Mutex<()>,
        map: LockdepMap,
    }

    struct DemoGuard<'a>(
        &'a DemoLock,
        #[allow(dead_code)] std::sync::MutexGuard<'a, ()>,
    );

    impl DemoLock {
        #[track_caller]
        const fn new(name: &'static str) -> Self {
            DemoLock {
                inner: std::sync::Mutex::new(()),
                map: LockdepMap::new_spinning(name),
            }
        }

        fn lock(&self) -> DemoGuard<'_> {
            lockdep::acquire(&self.map, AcquireKind::Exclusive, false, 0);
            DemoGuard(self, self.inner.lock().unwrap_or_else(|e| e.into_inner()))
        }
    }

    impl Drop for DemoGuard<'_> {
        fn drop(&mut self) {
            lockdep::release(&self.0.map);
        }
    }

    struct Demo {
        name: &'static str,
        about: &'static str,
        expect: ReportKind,
        run: fn() -> Vec<Report>,
    }

    const DEMOS: &[Demo] = &[
        Demo {
            name: "abba",
            about: "thread 1 takes A then B; later B then A (no hang needed: found at once)",
            expect: ReportKind::CircularDependency,
            run: abba,
        },
        Demo {
            name: "cycle3",
            about: "A then B, B then C, then C then A: a three-lock cycle",
            expect: ReportKind::CircularDependency,
            run: cycle3,
        },
        Demo {
            name: "recursive",
            about: "two locks of one class nested without a subclass (spin_lock_nested)",
            expect: ReportKind::RecursiveLocking,
            run: recursive,
        },
        Demo {
            name: "bad-unlock",
            about: "releasing a lock that is not held",
            expect: ReportKind::BadUnlockBalance,
            run: bad_unlock,
        },
        Demo {
            name: "irq-inversion",
            about: "a lock taken in hardirq context and also with irqs enabled (irq simulated through the preempt count)",
            expect: ReportKind::InconsistentIrqUsage,
            run: irq_inversion,
        },
        Demo {
            name: "sleep-in-atomic",
            about: "sleeping while holding a spinlock",
            expect: ReportKind::SleepInAtomic,
            run: sleep_in_atomic,
        },
        Demo {
            name: "rcu-sync",
            about: "synchronize_rcu inside an RCU read section",
            expect: ReportKind::RcuSyncInReader,
            run: rcu_sync,
        },
        Demo {
            name: "held-at-exit",
            about: "a thread exits holding a lock",
            expect: ReportKind::HeldAtExit,
            run: held_at_exit,
        },
    ];

    fn abba() -> Vec<Report> {
        let a = DemoLock::new("demo_lock_A");
        let b = DemoLock::new("demo_lock_B");
        {
            let _ga = a.lock();
            let _gb = b.lock();
        }
        {
            let _gb = b.lock();
            let _ga = a.lock();
        }
        lockdep::take_reports()
    }

    fn cycle3() -> Vec<Report> {
        let a = DemoLock::new("demo_cycle_A");
        let b = DemoLock::new("demo_cycle_B");
        let c = DemoLock::new("demo_cycle_C");
        for (x, y) in [(&a, &b), (&b, &c), (&c, &a)] {
            let _gx = x.lock();
            let _gy = y.lock();
        }
        lockdep::take_reports()
    }

    fn recursive() -> Vec<Report> {
        let inodes: Vec<DemoLock> = (0..2).map(|_| DemoLock::new("demo_inode_lock")).collect();
        let _g0 = inodes[0].lock();
        let _g1 = inodes[1].lock();
        lockdep::take_reports()
    }

    fn bad_unlock() -> Vec<Report> {
        let l = DemoLock::new("demo_unbalanced");
        drop(l.lock());
        lockdep::release(&l.map);
        lockdep::take_reports()
    }

    fn irq_inversion() -> Vec<Report> {
        let l = DemoLock::new("demo_irq_lock");
        sched::preempt_count_add(HARDIRQ_OFFSET); // "in the irq handler"
        drop(l.lock());
        sched::preempt_count_sub(HARDIRQ_OFFSET);
        drop(l.lock()); // process context, irqs enabled: should be spin_lock_irq
        lockdep::take_reports()
    }

    fn sleep_in_atomic() -> Vec<Report> {
        let l = DemoLock::new("demo_spinlock");
        let _g = l.lock();
        sched::preempt_disable(); // what spin_lock does
        let _ = sched::sleep_timeout(TaskState::Uninterruptible, Duration::from_millis(1));
        sched::preempt_enable();
        lockdep::take_reports()
    }

    static DEMO_RCU: LockdepMap = LockdepMap::new("rcu_read_lock");

    fn rcu_sync() -> Vec<Report> {
        lockdep::acquire(&DEMO_RCU, AcquireKind::RecursiveRead, false, 0); // rcu_read_lock()
        lockdep::assert_not_in_rcu_read_section("synchronize_rcu");
        lockdep::release(&DEMO_RCU); // rcu_read_unlock()
        lockdep::take_reports()
    }

    fn held_at_exit() -> Vec<Report> {
        static L: DemoLock = DemoLock::new("demo_leaked_lock");
        let _ = std::thread::Builder::new()
            .name("demo-exiting".into())
            .spawn(|| std::mem::forget(L.lock()))
            .map(|h| h.join());
        lockdep::take_reports_involving("demo_leaked_lock")
    }

    pub fn main(args: super::Args) -> bool {
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
