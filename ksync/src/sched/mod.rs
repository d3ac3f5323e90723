//! The task and its scheduling state: `current`, signals, and the one sleep
//! path every blocking primitive uses.
//!
//! The preempt count and the context queries live in [`ctx`](crate::ctx), below
//! both `sched` and `irq`; they are re-exported here under their kernel home.
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
#[allow(unused_imports)]
pub(crate) use task::{TaskInner, current_from_handler, with_current};
#[allow(unused_imports)]
pub(crate) use waitqueue::{Detached, Locked, WaitList, Waiter};
pub use waitqueue::{WaitQueue, WaitQueueEntry};
