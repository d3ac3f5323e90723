//! The per-thread ("per-CPU") irq state: the irqs held pending, the softirq
//! pending mask and the tasklet lists. (The irq-off flag itself is
//! [`ctx`](crate::ctx)'s, below the irq layer; so is the word that tells
//! `local_irq_enable` there is work here.)
//!
//! It lives in one const-initialised thread-local without a destructor, so the
//! irq signal handler reaches it with a plain TLS access (no lazy
//! initialisation, no allocation): async-signal-safe.
//!
//! # Who touches what
//!
//! Every field is touched only by its own thread, in task context or in the irq
//! signal handlers that interrupt it. A handler runs to completion before the
//! code it interrupted resumes, so the fields are atomics only to make the
//! interleaving well defined (Relaxed throughout: there is no second thread to
//! order against); read-modify-writes are single instructions a signal cannot
//! split.
//!
//! | field | meaning |
//! |---|---|
//! | `in_progress` | bit `n`: line `n`'s handler runs now on this thread |
//! | `pending[n]` | raises of line `n` not yet handled (held while disabled or in progress) |
//! | `pending_total` | sum of `pending`, the fast "anything to replay?" check |
//! | `first_seq[n]` | arrival stamp of the oldest pending raise of line `n` (replay order) |
//! | `softirq_pending` | bit `nr`: softirq `nr` raised on this thread, not yet served |
//! | `tasklets[0/1]` | `TASKLET_SOFTIRQ` / `HI_SOFTIRQ` lists, changed only with irqs off |
//! | `in_signal` | depth of ksync's irq signal handler frames on this thread |

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use super::hardirq::NR_IRQS;
use super::tasklet::Tasklet;

/// An intrusive FIFO of tasklets linked through `Tasklet::next`. The owner
/// changes it only with irqs disabled (thread lists) or under a lock (the
/// `ksoftirqd` list).
pub(crate) struct TaskletList {
    pub(crate) head: AtomicPtr<Tasklet>,
    pub(crate) tail: AtomicPtr<Tasklet>,
}

impl TaskletList {
    pub(crate) const fn new() -> Self {
        TaskletList {
            head: AtomicPtr::new(ptr::null_mut()),
            tail: AtomicPtr::new(ptr::null_mut()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Appends `t`. The caller excludes every other user of the list (irqs off
    /// for a thread list, the lock for a shared one) and owns `t`'s link (it set
    /// `TASKLET_STATE_SCHED`, or took `t` off another list).
    pub(crate) fn push(&self, t: &'static Tasklet) {
        let p = t as *const Tasklet as *mut Tasklet;
        t.next.store(ptr::null_mut(), Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        if tail.is_null() {
            self.head.store(p, Ordering::Relaxed);
        } else {
            // SAFETY: list entries are `&'static Tasklet`s (see `push`'s argument).
            unsafe { &*tail }.next.store(p, Ordering::Relaxed);
        }
        self.tail.store(p, Ordering::Relaxed);
    }

    /// Takes the whole list, leaving it empty; returns its head.
    pub(crate) fn take(&self) -> *mut Tasklet {
        let head = self.head.load(Ordering::Relaxed);
        self.head.store(ptr::null_mut(), Ordering::Relaxed);
        self.tail.store(ptr::null_mut(), Ordering::Relaxed);
        head
    }

    /// Moves every entry of `other` to the end of this list.
    pub(crate) fn splice(&self, other: &TaskletList) {
        let oh = other.head.load(Ordering::Relaxed);
        if oh.is_null() {
            return;
        }
        let ot = other.tail.load(Ordering::Relaxed);
        other.take();
        let tail = self.tail.load(Ordering::Relaxed);
        if tail.is_null() {
            self.head.store(oh, Ordering::Relaxed);
        } else {
            // SAFETY: list entries are `&'static Tasklet`s.
            unsafe { &*tail }.next.store(oh, Ordering::Relaxed);
        }
        self.tail.store(ot, Ordering::Relaxed);
    }
}

pub(crate) struct IrqLocal {
    pub(crate) in_progress: AtomicU32,
    pub(crate) pending_total: AtomicU32,
    pub(crate) pending: [AtomicU32; NR_IRQS],
    pub(crate) first_seq: [AtomicU64; NR_IRQS],
    pub(crate) seq: AtomicU64,
    pub(crate) softirq_pending: AtomicU32,
    /// `[TASKLET_SOFTIRQ list, HI_SOFTIRQ list]`.
    pub(crate) tasklets: [TaskletList; 2],
    pub(crate) in_signal: AtomicU32,
}

impl IrqLocal {
    const fn new() -> Self {
        IrqLocal {
            in_progress: AtomicU32::new(0),
            pending_total: AtomicU32::new(0),
            pending: [const { AtomicU32::new(0) }; NR_IRQS],
            first_seq: [const { AtomicU64::new(0) }; NR_IRQS],
            seq: AtomicU64::new(0),
            softirq_pending: AtomicU32::new(0),
            tasklets: [TaskletList::new(), TaskletList::new()],
            in_signal: AtomicU32::new(0),
        }
    }
}

thread_local! {
    /// This thread's irq state. Const-initialised, no destructor (every field is
    /// an atomic): reachable from a signal handler.
    pub(crate) static LOCAL: IrqLocal = const { IrqLocal::new() };
}
