//! The per-thread context: where am I, and what may I do here?
//!
//! Every "where am I?" question in ksync is answered here, from one
//! const-initialised thread-local that a signal handler (an irq) reaches with a
//! plain TLS access:
//!
//! | field | kernel | changed by | read by |
//! |---|---|---|---|
//! | `preempt_count` | `preempt_count()` | [`preempt_disable`], [`local_bh_disable`], irq and softirq entry | [`in_interrupt`], [`in_atomic`], [`preemptible`] …, lockdep, `might_sleep` |
//! | `irqs_off` | the CPU's interrupt flag | [`local_irq_disable`], [`local_irq_save`] | [`irqs_disabled`], the irq signal handler |
//! | `hardirq_raw` | `!current->hardirq_threaded` | the irq dispatch, `irq_enter`/`irq_exit`, [`lockdep_hardirq_threaded`] | lockdep's wait-context check |
//! | `work` | `local_softirq_pending()`, the soft-masked irqs of powerpc's lazy masking | the irq layer, when it defers work | [`local_irq_enable`], [`local_irq_restore`], [`local_bh_enable`] |
//! | `tid` | `current->pid` | its first read (a cached `gettid`) | the mutex's owner word, the rt_mutex's PI futex word, the rwlocks' writer claims |
//!
//! Bottom halves are off when the preempt count's softirq field is nonzero, so
//! the bh-off state is part of the count, as in the kernel.
//!
//! # A leaf, and how enabling still runs deferred work
//!
//! `ctx` uses only [`arch`](crate::arch). Both `irq` and `sched` stand on it, so
//! neither has to ask the other whether irqs are off. But enabling irqs or
//! bottom halves must run what was deferred meanwhile (the irqs held pending,
//! the softirqs raised), and that machinery belongs to `irq`, above. The
//! dependency is inverted: `irq` records deferred work in the `work` word with
//! `defer_work`, naming the function that runs that kind of work; the enable
//! paths load the word and, only when it is nonzero, call those functions
//! through their pointers (`run_deferred_work`). The fast path of
//! `local_irq_save`/`local_irq_restore` stays a flag load and store plus one
//! load.
//!
//! # Who touches what
//!
//! Every field is touched only by its own thread: in task context, or in the irq
//! signal handlers that interrupt it. A handler runs to completion before the
//! code it interrupted resumes, so the fields are atomics only to make the
//! interleaving well defined (Relaxed throughout: there is no second thread to
//! order against), and a compiler fence keeps each critical section's accesses
//! on the right side of the store that opens or closes it. Counts are changed
//! with a load and a store, not an RMW: a handler always leaves the count as it
//! found it, so an update interrupted between its load and store is never lost.

mod irq;
mod preempt;

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

pub use self::irq::{
    IrqFlags, irqs_disabled, local_bh_disable, local_bh_enable, local_irq_disable,
    local_irq_enable, local_irq_restore, local_irq_save,
};
pub use preempt::*;

/// This thread's context. Const-initialised, and without a destructor (every
/// field is an atomic): reachable from a signal handler.
struct Context {
    /// The preempt count, laid out as the kernel's (see [`preempt_count`]).
    preempt_count: AtomicU32,
    /// `local_irq_disable` is in force (lazy masking: irqs that arrive are held
    /// pending by the irq layer, not blocked).
    irqs_off: AtomicBool,
    /// Bit `k`: deferred work of kind `k` may be pending (see [`Deferred`]).
    /// May be set with nothing left to do (the runner then finds nothing), never
    /// clear while work of its kind waits.
    work: AtomicU32,
    /// The hard irq handler running now would *not* be threaded on
    /// PREEMPT_RT (the inverse of `current->hardirq_threaded`, so that a
    /// hardirq emulated by the preempt count alone counts as threaded):
    /// lockdep lets it take raw spinlocks only.
    hardirq_raw: AtomicBool,
    /// This thread's kernel thread id, cached by [`current_id`] (0: not yet).
    /// Loom numbers its model threads instead.
    #[cfg(not(loom))]
    tid: AtomicU32,
}

thread_local! {
    static CTX: Context = const {
        Context {
            preempt_count: AtomicU32::new(0),
            irqs_off: AtomicBool::new(false),
            work: AtomicU32::new(0),
            hardirq_raw: AtomicBool::new(false),
            #[cfg(not(loom))]
            tid: AtomicU32::new(0),
        }
    };
}

/// This thread's id: its kernel thread id, cached in the context so that a
/// fast path reads it with one TLS load and no system call. Never 0, and
/// below 2^30 (the kernel's `PID_MAX_LIMIT` is 2^22). Async-signal-safe: a
/// handler that interrupts the first call stores the same value.
///
/// Unique among the live threads of the process, the rwlocks' writer claims
/// rely on it. A forked child's one thread would otherwise keep the id of
/// the parent's thread that forked, and a thread the child starts later
/// could be given that id again once the parent's thread is gone: so the
/// child forgets the cached id (a `pthread_atfork` handler, registered before
/// `main`).
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn current_id() -> u32 {
    let t = CTX.with(|c| c.tid.load(Ordering::Relaxed));
    if t != 0 {
        return t;
    }
    #[cold]
    fn init() -> u32 {
        let t = crate::arch::gettid() as u32;
        CTX.with(|c| c.tid.store(t, Ordering::Relaxed));
        t
    }
    init()
}

// The child of every `fork` forgets the cached id, before `main` runs.
crate::arch::at_fork_child!(forget_tid);

/// The child of a `fork`: its thread is not the parent's, so the next
/// [`current_id`] reads the id again.
#[cfg(not(loom))]
extern "C" fn forget_tid() {
    CTX.with(|c| c.tid.store(0, Ordering::Relaxed));
}

/// Under loom every model thread runs on the same OS thread: number them instead.
#[cfg(loom)]
pub(crate) fn current_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    loom::thread_local! {
        static ID: u32 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.with(|id| *id)
}

/// The kinds of work the irq layer defers until irqs or bottom halves are
/// enabled again, in the order [`run_deferred_work`] runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Deferred {
    /// Irqs that arrived while irqs were off (or their line's handler ran),
    /// held pending to run at `local_irq_enable`.
    Irqs = 0,
    /// Softirqs raised on this thread that have not run yet.
    Softirqs = 1,
    /// Locks held with irqs or bottom halves off, whose classes lockdep must
    /// mark as taken with them enabled once they are (`mark_held_locks`).
    #[cfg_attr(not(feature = "lockdep"), allow(dead_code))]
    LockdepHeld = 2,
}

const NR_DEFERRED: usize = 3;

/// The runner of each kind of deferred work, as a `fn()` cast to `usize`
/// (0: none yet). Set by [`defer_work`] before the first bit of its kind is set.
static RUNNERS: [AtomicUsize; NR_DEFERRED] = [const { AtomicUsize::new(0) }; NR_DEFERRED];

/// Records that work of kind `kind` waits on this thread, to be done by `run`
/// when irqs (or bottom halves) are enabled again: `run` is called from
/// [`run_deferred_work`] and must start with [`take_deferred`] for its kind.
/// Call it *after* recording the work itself (raising the count or bit that
/// `run` looks at). Async-signal-safe.
#[inline]
pub(crate) fn defer_work(kind: Deferred, run: fn()) {
    let slot = &RUNNERS[kind as usize];
    // Relaxed: the runner is read back only by this same thread (the word is
    // per thread, and only a thread that set a bit calls its runner), which
    // sees its own store, or the value it loaded here, by coherence. Every
    // caller passes the same function for a kind, so a race between threads
    // stores one value twice.
    if slot.load(Ordering::Relaxed) == 0 {
        slot.store(run as usize, Ordering::Relaxed);
    }
    CTX.with(|c| c.work.fetch_or(1 << kind as u32, Ordering::Relaxed));
}

/// Clears `kind`'s bit before its runner looks for work. The runner sets the
/// bit again ([`defer_work`]) if it leaves work behind; work recorded by an irq
/// that interrupts the runner sets the bit itself after recording it. So the
/// bit is never clear while work of its kind waits.
#[inline]
pub(crate) fn take_deferred(kind: Deferred) {
    CTX.with(|c| c.work.fetch_and(!(1 << kind as u32), Ordering::Relaxed));
}

/// Whether any deferred work may be pending on this thread: the one load of the
/// enable paths.
#[inline(always)]
fn work_pending() -> bool {
    CTX.with(|c| c.work.load(Ordering::Relaxed)) != 0
}

/// Lockdep's report of a bogus `local_irq_restore` (irqs restored to
/// disabled while they are enabled), as a `fn()` cast to `usize` (0: none);
/// set by lockdep, which stands above ctx (see [`set_bogus_irq_restore_hook`]).
#[cfg(feature = "lockdep")]
static BOGUS_RESTORE: AtomicUsize = AtomicUsize::new(0);

/// Installs `report`, called when `local_irq_restore` restores "disabled"
/// while irqs are enabled (`warn_bogus_irq_restore`).
#[cfg(feature = "lockdep")]
pub(crate) fn set_bogus_irq_restore_hook(report: fn()) {
    // Relaxed: every caller stores the same function, and a restore that
    // misses it only misses a report.
    BOGUS_RESTORE.store(report as usize, Ordering::Relaxed);
}

#[cfg(feature = "lockdep")]
#[cold]
#[inline(never)]
fn bogus_irq_restore() {
    let report = BOGUS_RESTORE.load(Ordering::Relaxed);
    if report != 0 {
        // SAFETY: nonzero values of `BOGUS_RESTORE` are `fn()`s stored by
        // `set_bogus_irq_restore_hook`; fn pointers and usize have the same
        // size on Linux targets.
        let report: fn() = unsafe { core::mem::transmute::<usize, fn()>(report) };
        report();
    }
}

/// Runs every kind of deferred work whose bit is set on this thread, in
/// this order: lockdep's marks first (the kernel marks held locks before irqs
/// are on), then irqs held pending, then softirqs.
#[cold]
#[inline(never)]
fn run_deferred_work() {
    for kind in [Deferred::LockdepHeld, Deferred::Irqs, Deferred::Softirqs] {
        if CTX.with(|c| c.work.load(Ordering::Relaxed)) & (1 << kind as u32) == 0 {
            continue;
        }
        let run = RUNNERS[kind as usize].load(Ordering::Relaxed);
        if run != 0 {
            // SAFETY: nonzero entries of `RUNNERS` are `fn()`s stored by
            // `defer_work`; fn pointers and usize have the same size on Linux
            // targets.
            let run: fn() = unsafe { core::mem::transmute::<usize, fn()>(run) };
            run();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The id is the kernel's thread id, and a forked child reads its own
    /// (not the parent's cached one).
    #[test]
    fn current_id_is_the_thread_id_and_a_forked_child_reads_its_own() {
        let parent = current_id();
        assert_eq!(parent, crate::arch::gettid() as u32);
        // The child reads its id: a TLS access and `gettid`.
        static PARENT: AtomicU32 = AtomicU32::new(0);
        PARENT.store(parent, Ordering::Relaxed);
        assert!(crate::arch::forked_child_passes(|| {
            current_id() == crate::arch::gettid() as u32
                && current_id() != PARENT.load(Ordering::Relaxed)
        }));
        assert_eq!(current_id(), parent);
    }
}
