//! # ksync — the Linux kernel's synchronization toolkit, in user space
//!
//! Every mechanism the kernel documents for concurrent code, with the kernel's
//! semantics, its debugging aids and its torture tests. Each kernel C name is
//! findable in these docs through its `doc(alias)`: search for `spin_lock_irqsave`
//! or `synchronize_rcu` and you land on the Rust item that implements it.
//!
//! ## The map
//!
//! - [`ctx`] — the per-thread context: the preempt count, the irq-off and bh-off
//!   state, and every "where am I?" query (`in_interrupt`, `in_atomic`,
//!   `irqs_disabled`, `preemptible`). `sched` and `irq` re-export them.
//! - [`sched`] — the task (`current`), signals (`signal_pending`), `msleep`,
//!   [`sched::sleep`], the one sleep path every blocking primitive uses, and the
//!   one wait engine they all queue on (FIFO waiters with hand-off).
//! - [`irq`] — interrupts as real POSIX signals (`request_irq`,
//!   `request_threaded_irq`), `local_irq_save`, `local_bh_disable`, softirqs,
//!   tasklets, timers and `jiffies`.
//! - [`atomic`] — `atomic_t` as [`atomic::Atomic`], `atomic64_t` as
//!   [`atomic::Atomic64`], bit operations on [`atomic::Bitmap`], and
//!   `refcount_t`/`kref` as [`atomic::Refcount`] and [`atomic::Kref`].
//! - [`barrier`] — `barrier`, `smp_mb`, `smp_load_acquire`, `READ_ONCE` and the rest.
//! - [`lock`] — the one generic [`lock::Lock<T, B>`] and its `!Send`
//!   [`lock::Guard`]: every lock below (spinlocks, rwlocks, mutex, rwsem, local
//!   lock) is an alias over a raw-lock backend; `Guard::do_unlocked` for condvars.
//! - [`spinlock`] — `spinlock_t` as [`spinlock::SpinLock`] with its `_irq`,
//!   `_irqsave` and `_bh` variants, the raw algorithms (ticket, MCS, queued), and
//!   `rwlock_t` as [`spinlock::RwLock`].
//! - [`semaphore`] — `struct semaphore` as [`semaphore::Semaphore`]: counting
//!   semaphores that sleep, FIFO, with interruptible, killable and timed downs.
//! - [`rwsem`] — `struct rw_semaphore` as [`rwsem::RwSemaphore`]: many sleeping
//!   readers or one writer, neither starving.
//! - [`mutex`] — `struct mutex` as [`mutex::Mutex`]: owner-tracked, adaptive (spin,
//!   then sleep), with hand-off so no sleeper starves.
//! - [`rtmutex`] — `struct rt_mutex` as [`rtmutex::RtMutex`]: a mutex with
//!   priority inheritance on PI futexes (uncontended: one CAS in user space;
//!   contended: the kernel lends the waiter's priority to the owner, along a
//!   chain of owners), and [`rtmutex::RtCondVar`], which keeps the inheritance
//!   across its wait (`FUTEX_WAIT_REQUEUE_PI`).
//! - [`ww_mutex`] — `struct ww_mutex` as [`ww_mutex::WwMutex`], with
//!   [`ww_mutex::WwClass`] (`DEFINE_WW_CLASS`) and [`ww_mutex::WwAcquireCtx`]
//!   (`ww_acquire_init`): many locks of one class taken in any order; the
//!   younger of two transactions backs off with `-EDEADLK` (wound-wait or
//!   wait-die).
//! - [`completion`] — `struct completion` as [`completion::Completion`]: wait for
//!   something to be done. Wait queues (`wait_queue_head_t`) are
//!   [`sched::WaitQueue`].
//! - [`condvar`] — [`condvar::CondVar`]: condition variables over ksync's mutex.
//! - [`seqlock`] — `seqlock_t`/`seqcount_t` as [`seqlock::SeqLock`] and
//!   [`seqlock::SeqCount`]: writers never wait for readers, and readers copy the data
//!   with atomic loads, so a racing read is never a data race.
//! - [`percpu`] — `DEFINE_PER_CPU` as [`percpu::PerCpu`], `this_cpu_*`, and
//!   `percpu_counter` as [`percpu::PercpuCounter`].
//! - [`percpu_rwsem`] — `struct percpu_rw_semaphore` as
//!   [`percpu_rwsem::PercpuRwSemaphore`]: a reader writes only its own
//!   thread's reader record and reads a flag (an RCU read side's price); the
//!   rare writer sets the flag, pays one `membarrier` so every reader sees it,
//!   and waits for the readers to drain. Read holds nest; the writer may sleep.
//! - [`rcu`] — read-copy-update: [`rcu::rcu_read_lock`], [`rcu::synchronize_rcu`],
//!   [`rcu::call_rcu`], the polled grace-period API
//!   ([`rcu::get_state_synchronize_rcu`], [`rcu::poll_state_synchronize_rcu`]),
//!   [`rcu::RcuPtr`], RCU lists and hash tables, and SRCU.
//! - [`bkl`] — the Big Kernel Lock, the only lock held across a sleep.
//! - [`lockdep`] — the lock validator (lock order, irq safety, wait contexts),
//!   the `CONFIG_DEBUG_*` checks, `lockdep_assert_held` for any lock, and lock
//!   statistics (`CONFIG_LOCK_STAT`) (feature `lockdep`).
//! - [`arch`] — the machine: `cpu_relax`, cache-line padding, the CPU id, futex,
//!   membarrier, signals, the monotonic clock. The only module with system calls
//!   or inline assembly.
//! - [`Error`] — `-EINTR`, `-ETIME`, `-EAGAIN` … as a Rust error with
//!   [`Error::errno`]; [`Backoff`] — randomized exponential backoff for every
//!   retry loop.
//!
//! ## Reading on
//!
//! - [`guide`] — which primitive for which situation: the protection table by
//!   context, sleeping vs spinning, read-mostly data (RCU, seqlocks, per-CPU),
//!   and tables for readers coming from std, parking_lot, crossbeam, arc-swap and
//!   liburcu.
//! - [`names`] — every kernel (and Solaris) C name beside the ksync item that
//!   implements it.
//! - The examples in `ksync/examples/` (`cargo run --release -p ksync --example
//!   driver`): a driver's irq/softirq/seqlock pattern, an RCU routing table, a
//!   seqlock clock, per-CPU statistics, lockdep catching an AB-BA order, and a
//!   worker pool that Ctrl-C interrupts.
//! - No poisoning: as in the kernel and parking_lot, a panic that unwinds through
//!   a guard releases the lock, and the next `lock()` returns the data as the
//!   panicking thread left it (there is no `PoisonError`, and `lock()` returns the
//!   guard, not a `Result`).
//!
//! ## Which protection does my data need?
//!
//! It depends on which control paths touch it: system calls (tasks), interrupt
//! handlers, or deferrable functions (softirqs, tasklets, timers). The kernel's
//! table, with the ksync call for each cell, is in the [`irq`] module's docs:
//! [Which protection does my data need?](irq#which-protection-does-my-data-need).
//!
//! ## A taste
//!
//! ```
//! use ksync::spinlock::SpinLock;
//! use ksync::mutex::Mutex;
//! use ksync::rcu::{RcuPtr, rcu_read_lock};
//!
//! static STATS: SpinLock<u64> = SpinLock::new(0); // DEFINE_SPINLOCK
//!
//! // spin_lock_irqsave(&stats_lock, flags); ... spin_unlock_irqrestore(...)
//! *STATS.lock_irqsave() += 1;
//!
//! let config = Mutex::new(String::from("eth0")); // mutex_init
//! config.lock().push_str(":up");                 // mutex_lock ... mutex_unlock
//!
//! let route = RcuPtr::new(Some(Box::new(42u32)));
//! {
//!     let guard = rcu_read_lock();                // rcu_read_lock()
//!     assert_eq!(route.read(&guard), Some(&42));  // rcu_dereference()
//! }                                               // rcu_read_unlock()
//! assert_eq!(*STATS.lock(), 1);
//! assert_eq!(*config.lock(), "eth0:up");
//! ```

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
pub mod ctx;
mod error;
pub mod irq;
pub mod lock;
pub mod lockdep;
pub mod mutex;
pub mod percpu;
pub mod percpu_rwsem;
mod rawlock;
pub mod rcu;
#[cfg(not(loom))]
pub mod rtmutex;
pub mod rwsem;
pub mod sched;
pub mod semaphore;
pub mod seqlock;
pub mod spinlock;
pub mod ww_mutex;

#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

#[doc = include_str!("../docs/names.md")]
pub mod names {}

/// The README's quick start, compiled and run as a doctest so that it stays
/// true (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use backoff::Backoff;
pub use error::{Error, Result};
