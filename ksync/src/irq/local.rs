//! The per-thread ("per-CPU") irq state that several files of the irq layer
//! share: the softirq pending mask, and whether ksync's irq signal handler is
//! on this thread's stack. (The irqs held pending are `hardirq`'s, the tasklet
//! lists `tasklet`'s; the irq-off flag itself is
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
//! | `softirq_pending` | bit `nr`: softirq `nr` raised on this thread, not yet served |
//! | `in_signal` | depth of ksync's irq signal handler frames on this thread |
//! | `irq_held` | the irq signal's number while an irq that interrupted a softirq pass left it blocked for the pass to unblock (0: not held) |

use core::sync::atomic::{AtomicI32, AtomicU32};

pub(crate) struct IrqLocal {
    pub(crate) softirq_pending: AtomicU32,
    pub(crate) in_signal: AtomicU32,
    pub(crate) irq_held: AtomicI32,
}

impl IrqLocal {
    const fn new() -> Self {
        IrqLocal {
            softirq_pending: AtomicU32::new(0),
            in_signal: AtomicU32::new(0),
            irq_held: AtomicI32::new(0),
        }
    }
}

thread_local! {
    /// This thread's irq state. Const-initialised, no destructor (every field is
    /// an atomic): reachable from a signal handler.
    pub(crate) static LOCAL: IrqLocal = const { IrqLocal::new() };
}
