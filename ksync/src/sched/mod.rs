//! The task and its scheduling state: `current`, the preempt count and the
//! context queries, signals, and the one sleep path every blocking primitive uses.
//!
//! | kernel | ksync |
//! |---|---|
//! | `current` | [`current()`] → [`Task`] |
//! | `preempt_disable()`, `preempt_enable()`, `preempt_count()` | [`preempt_disable`], [`preempt_enable`], [`preempt_count`] |
//! | `in_interrupt()`, `in_hardirq()`, `in_softirq()`, `in_atomic()`, `preemptible()` | the functions of the same names |
//! | `set_current_state(); schedule_timeout()` | [`sleep`] |
//! | `wake_up_process()` | [`Task::wake_up`] |
//! | `wait_queue_head_t`, `wait_event()`, `wake_up()` | [`WaitQueue`] |
//! | `send_sig()`, `signal_pending()`, `fatal_signal_pending()` | [`Task::send_signal`], [`signal_pending`], [`fatal_signal_pending`] |

mod preempt;
mod signal;
mod sleep;
mod task;
pub(crate) mod waitlist;
mod waitqueue;

pub use preempt::*;
pub use signal::{Signal, SignalSet, fatal_signal_pending, flush_signals, raise, signal_pending};
#[cfg(not(loom))]
pub use signal::{intercept_signals, release_signals};
pub(crate) use sleep::poll_before_sleep;
pub use sleep::{sleep, sleep_timeout};
pub use task::{Task, TaskState, current};
#[allow(unused_imports)]
pub(crate) use task::{TaskInner, current_from_handler, with_current};
pub use waitqueue::{WaitQueue, WaitQueueEntry};
