//! The task and its scheduling state: `current`, signals, and the one sleep
//! path every blocking primitive uses.
//!
//! The preempt count and the context queries live in [`ctx`](crate::ctx), below
//! both `sched` and `irq`; they are re-exported here under their kernel home.
//!
//! Two paths every blocking primitive shares live here (DESIGN.md's "four
//! paths"): [`sleep`], THE sleep (might-sleep check, the BKL dropped and
//! retaken, signals, the deadline, a park on the task's own futex word), and
//! the crate-private `waitlist`, THE wait engine: FIFO entries on the sleepers'
//! stacks, exclusive and shared waiters, a hand-off payload (a semaphore unit,
//! the mutex, a read or write grant) that the waker stores as its last write to
//! the entry, and an internal lock with a plain and an irq-safe form. Wait
//! queues, completions, semaphores, the mutex, the rw-semaphore, the condition
//! variable and `synchronize_rcu`'s waiters all queue on it.
//!
//! | kernel | ksync |
//! |---|---|
//! | `current` | [`current()`] → [`Task`] |
//! | `preempt_disable()`, `preempt_enable()`, `preempt_count()` | [`preempt_disable`], [`preempt_enable`], [`preempt_count`] (from [`ctx`](crate::ctx)) |
//! | `in_interrupt()`, `in_hardirq()`, `in_softirq()`, `in_atomic()`, `preemptible()` | the functions of the same names (from [`ctx`](crate::ctx)) |
//! | `set_current_state(); schedule_timeout()` | [`sleep`] |
//! | `msleep()`, `msleep_interruptible()` | [`msleep`], [`msleep_interruptible`] |
//! | `wake_up_process()` | [`Task::wake_up`] |
//! | `wait_queue_head_t`, `wait_event()`, `wake_up()` | [`WaitQueue`] |
//! | `send_sig()`, `signal_pending()`, `fatal_signal_pending()` | [`Task::send_signal`], [`signal_pending`], [`fatal_signal_pending`] |

mod signal;
mod signal_types;
mod sleep;
mod task;
pub(crate) mod waitlist;
mod waitqueue;

pub use crate::ctx::{
    HARDIRQ_MASK, HARDIRQ_OFFSET, NMI_MASK, NMI_OFFSET, PREEMPT_MASK, PREEMPT_OFFSET, PreemptGuard,
    SOFTIRQ_DISABLE_OFFSET, SOFTIRQ_MASK, SOFTIRQ_OFFSET, in_atomic, in_hardirq, in_interrupt,
    in_irq, in_nmi, in_serving_softirq, in_softirq, in_task, preempt_count, preempt_count_add,
    preempt_count_sub, preempt_disable, preempt_enable, preemptible,
};
pub use signal::{fatal_signal_pending, flush_signals, raise, signal_pending};
#[cfg(not(loom))]
pub use signal::{intercept_signals, release_signals};
pub use signal_types::{Signal, SignalSet};
pub(crate) use sleep::poll_before_sleep;
#[cfg(not(loom))]
pub(crate) use sleep::sleep_in_kernel;
pub(crate) use sleep::sleep_on_word;
pub use sleep::{msleep, msleep_interruptible, sleep, sleep_timeout};
pub use task::{Task, TaskState, current};
pub use waitqueue::{WaitQueue, WaitQueueEntry};
