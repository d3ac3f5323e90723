//! Benchmark groups for the irq area (registered in `super::all`): the cost of
//! masking irqs (ksync's lazy flag against a `pthread_sigmask` pair), of the
//! preempt count, and of delivering an irq (ksync's dispatch against a bare
//! signal round trip).

use super::{Config, Group, Interleaved, Row, single};
use ksync::irq;
use ksync::sched;
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "irq-mask",
            about: "local_irq_save+restore vs a pthread_sigmask block+setmask pair",
            run: run_mask,
        },
        Group {
            name: "preempt",
            about: "preempt_disable+enable vs a plain thread-local counter",
            run: run_preempt,
        },
        Group {
            name: "irq-raise",
            about: "raise_irq at the calling thread vs a bare pthread_kill signal round trip",
            run: run_raise,
        },
    ]
}

fn run_mask(cfg: &Config, rows: &mut Vec<Row>) {
    let g = "irq-mask";
    let mut unc = Interleaved::new(g, "save+restore");
    unc.add("ksync::local_irq_save+restore", || {
        let f = irq::local_irq_save();
        black_box(&f);
        irq::local_irq_restore(f);
    });
    unc.add("ksync::local_irq_disable+enable", || {
        irq::local_irq_disable();
        black_box(());
        irq::local_irq_enable();
    });
    // SAFETY: sigset operations on a zeroed local set; pthread_sigmask with valid
    // pointers. The set blocks every signal, then the old mask is restored.
    let (all, mut old) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        (all, std::mem::zeroed::<libc::sigset_t>())
    };
    unc.add("pthread_sigmask block+setmask", || {
        // SAFETY: as above.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            black_box(&old);
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
    });
    rows.extend(unc.run(cfg));
}

thread_local! {
    static COUNTER: Cell<u32> = const { Cell::new(0) };
}

fn run_preempt(cfg: &Config, rows: &mut Vec<Row>) {
    let g = "preempt";
    let mut unc = Interleaved::new(g, "disable+enable");
    unc.add("ksync::preempt_disable+enable", || {
        sched::preempt_disable();
        black_box(());
        sched::preempt_enable();
    });
    unc.add("thread_local Cell inc+dec", || {
        COUNTER.with(|c| c.set(c.get() + 1));
        black_box(());
        COUNTER.with(|c| c.set(c.get() - 1));
    });
    rows.extend(unc.run(cfg));
    rows.push(single(
        cfg,
        g,
        "bh disable+enable",
        "ksync::local_bh_disable+enable",
        || {
            irq::local_bh_disable();
            black_box(());
            irq::local_bh_enable();
        },
    ));
}

static HITS: AtomicU64 = AtomicU64::new(0);

fn bench_irq_handler(_irq: u32) {
    HITS.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn bare_handler(_sig: libc::c_int) {
    HITS.fetch_add(1, Ordering::Relaxed);
}

fn run_raise(cfg: &Config, rows: &mut Vec<Row>) {
    let g = "irq-raise";
    const LINE: u32 = 14;
    if irq::request_irq(LINE, bench_irq_handler, "bench").is_err() {
        eprintln!("ksync bench: irq line {LINE} unavailable; skipping irq-raise");
        return;
    }
    let me = sched::current();
    rows.push(single(cfg, g, "raise at self", "ksync::raise_irq", || {
        irq::raise_irq(LINE, &me).expect("raise_irq");
    }));
    rows.push(single(
        cfg,
        g,
        "raise at self",
        "ksync::raise_irq (irqs off, replay)",
        || {
            let f = irq::local_irq_save();
            irq::raise_irq(LINE, &me).expect("raise_irq");
            irq::local_irq_restore(f);
        },
    ));
    let _ = irq::free_irq(LINE);
    // A bare signal round trip on a spare real-time signal.
    let sig = libc::SIGRTMIN() + 2;
    // SAFETY: installs a handler that only bumps an atomic (async-signal-safe) on
    // a real-time signal nothing else in this program uses.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = bare_handler as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
    // SAFETY: signalling our own live thread.
    let self_thread = unsafe { libc::pthread_self() };
    rows.push(single(
        cfg,
        g,
        "raise at self",
        "pthread_kill + bare handler",
        || {
            // SAFETY: as above.
            unsafe { libc::pthread_kill(self_thread, sig) };
        },
    ));
}
