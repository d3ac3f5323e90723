//! The machine: the only module that issues system calls or inline assembly.
//!
//! Everything above `arch` asks it for what the hardware and the Linux kernel
//! provide:
//!
//! - [`cpu_relax`]: the spin-wait hint (`pause` on x86-64, `yield`/`isb` on arm64).
//! - [`CachePadded`]: a value on a cache line of its own (128 bytes on x86-64 and
//!   arm64, where the adjacent-line prefetcher pulls lines in pairs).
//! - [`cpu_id`] and [`nr_cpu_ids`]: the CPU the calling thread runs on, read from
//!   the restartable-sequences area glibc registered (`rseq`), else from
//!   `sched_getcpu`; and the number of possible CPUs.
//! - [`futex`]: wait on and wake a 32-bit word (`FUTEX_WAIT_PRIVATE`,
//!   `FUTEX_WAKE_PRIVATE`).
//! - [`membarrier`]: the asymmetric fence pair — a compiler-only
//!   [`light_barrier`](membarrier::light_barrier) on fast paths, paid for by a
//!   process-wide [`heavy_barrier`](membarrier::heavy_barrier)
//!   (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`) on slow paths.

mod cache;
mod cpu;
pub mod futex;
pub mod membarrier;

pub use cache::CachePadded;
pub(crate) use cpu::cpu_id_fast;
pub use cpu::{cpu_id, cpu_id_syscall, nr_cpu_ids, online_cpus};

/// Tells the CPU the caller is busy-waiting (`cpu_relax()`): `pause` on x86-64,
/// which lets the sibling hyper-thread run and avoids the memory-order
/// mis-speculation penalty when the awaited store arrives.
#[inline(always)]
pub fn cpu_relax() {
    crate::loom::spin_loop();
}

/// Gives the CPU to another runnable thread (`sched_yield(2)`).
#[doc(alias = "sched_yield")]
#[doc(alias = "cond_resched")]
#[inline]
pub fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    rustix::thread::sched_yield();
}

/// The kernel thread id of the calling thread (`gettid(2)`).
#[inline]
pub fn gettid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}
