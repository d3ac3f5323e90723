//! # ksync — the Linux kernel's synchronization toolkit, in user space
//!
//! Every mechanism the kernel documents for concurrent code, with the kernel's
//! semantics, its debugging aids and its torture tests. Each kernel C name is
//! findable in these docs through its `doc(alias)`: search for `spin_lock_irqsave`
//! or `synchronize_rcu` and you land on the Rust item that implements it.
//!
//! ## The map
//!
//! - [`sched`] — the task (`current`), the preempt count and the context queries
//!   (`in_interrupt`, `in_atomic`, `preemptible`), signals (`signal_pending`), and
//!   [`sched::sleep`], the one sleep path every blocking primitive uses.
//! - [`irq`] — interrupts as real POSIX signals (`request_irq`), `local_irq_save`,
//!   `local_bh_disable`, softirqs, tasklets, timers and `jiffies`.
//! - [`atomic`] — `atomic_t` as [`atomic::Atomic`], `atomic64_t` as
//!   [`atomic::Atomic64`], bit operations on [`atomic::Bitmap`], and
//!   `refcount_t`/`kref` as [`atomic::Refcount`] and [`atomic::Kref`].
//! - [`barrier`] — `barrier`, `smp_mb`, `smp_load_acquire`, `READ_ONCE` and the rest.
//! - [`spinlock`] — `spinlock_t` as [`spinlock::SpinLock`] with its `_irq`,
//!   `_irqsave` and `_bh` variants, the raw algorithms (ticket, MCS, queued), and
//!   `rwlock_t` as [`spinlock::RwLock`].
//! - [`semaphore`] — `struct semaphore`: counting semaphores that sleep.
//! - [`rwsem`] — `struct rw_semaphore`: many sleeping readers or one writer.
//! - [`mutex`] — `struct mutex`: owner-tracked, adaptive (spin, then sleep).
//! - [`completion`] — `struct completion`: wait for something to be done.
//! - [`condvar`] — condition variables over ksync's mutex.
//! - [`seqlock`] — `seqlock_t`/`seqcount_t`: writers never wait for readers.
//! - [`percpu`] — `DEFINE_PER_CPU`, `this_cpu_*`, `percpu_counter`.
//! - [`rcu`] — read-copy-update: `rcu_read_lock`, `synchronize_rcu`, `call_rcu`,
//!   RCU lists and SRCU.
//! - [`bkl`] — the Big Kernel Lock, the only lock held across a sleep.
//! - [`lockdep`] — the lock validator and the `CONFIG_DEBUG_*` checks (feature
//!   `lockdep`).
//! - [`arch`] — the machine: `cpu_relax`, cache-line padding, the CPU id, futex,
//!   membarrier. The only module with system calls or inline assembly.
//! - [`Error`] — `-EINTR`, `-ETIME`, `-EAGAIN` … as a Rust error with
//!   [`Error::errno`]; [`Backoff`] — randomized exponential backoff for every
//!   retry loop.
//!
//! ## Which protection does my data need?
//!
//! (The table of SPEC section 1 with the ksync call for each cell: see [`irq`].)

#![cfg(target_os = "linux")]
#![warn(missing_docs, rust_2018_idioms)]

pub(crate) mod loom;

pub mod arch;
pub mod atomic;
mod backoff;
pub mod barrier;
pub mod bkl;
pub mod completion;
pub mod condvar;
mod error;
pub mod irq;
pub mod lockdep;
pub mod mutex;
pub mod percpu;
pub mod rcu;
pub mod rwsem;
pub mod sched;
pub mod semaphore;
pub mod seqlock;
pub mod spinlock;

pub use backoff::Backoff;
pub use error::{Error, Result};
