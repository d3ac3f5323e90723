//! The asymmetric fence pair: a cheap [`light_barrier`] on the fast path, paired
//! with an expensive [`heavy_barrier`] on the rare slow path.
//!
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` makes every other running thread
//! of the process execute a full memory barrier (by IPI) before it returns. A
//! fast path that would need a store→load fence (an unlock that must see a newly
//! arrived sleeper; an RCU reader that must be seen by a grace period) can then
//! use a compiler barrier alone, provided the slow side calls [`heavy_barrier`]
//! between its own store and load. Together they order as if both sides had used
//! `fence(SeqCst)`. liburcu's "membarrier" flavour is built on this pairing.
//!
//! The process registers for the command once, as early as possible: a
//! constructor in `.init_array` does it before `main`, because registering after
//! threads exist makes the kernel wait for a grace period of its own. Where the
//! command is missing (old kernels, seccomp filters) both sides degrade to
//! `fence(SeqCst)`: [`light_barrier`] then costs a full fence (about 20–30 cycles on
//! x86-64) and [`heavy_barrier`] costs one.

use crate::loom::sync::atomic::{Ordering, compiler_fence, fence};
use core::sync::atomic::AtomicU8;

const UNKNOWN: u8 = 0;
const EXPEDITED: u8 = 1;
const FENCE: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Registers this process for private expedited membarrier before `main` runs.
#[cfg(not(loom))]
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER_EARLY: extern "C" fn() = {
    extern "C" fn register_early() {
        let _ = mode();
    }
    register_early
};

#[cold]
fn init_mode() -> u8 {
    #[cfg(loom)]
    let m = FENCE;
    #[cfg(not(loom))]
    let m = {
        use rustix::thread::{MembarrierCommand, MembarrierQuery, membarrier, membarrier_query};
        let q = membarrier_query();
        if std::env::var_os("KSYNC_NO_MEMBARRIER").is_none()
            && q.contains(MembarrierQuery::PRIVATE_EXPEDITED)
            && membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
        {
            EXPEDITED
        } else {
            FENCE
        }
    };
    // Two threads may race here; both compute the same answer, the first store wins.
    match MODE.compare_exchange(UNKNOWN, m, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => m,
        Err(prev) => prev,
    }
}

#[inline(always)]
fn mode() -> u8 {
    let m = MODE.load(Ordering::Relaxed);
    if m == UNKNOWN { init_mode() } else { m }
}

/// Whether [`light_barrier`] is a compiler barrier only (membarrier is in use).
/// Set `KSYNC_NO_MEMBARRIER=1` in the environment to force the fence fallback.
pub fn is_expedited() -> bool {
    mode() == EXPEDITED
}

/// The fast side of the pair: a compiler barrier when membarrier is in use,
/// otherwise `fence(SeqCst)`. Orders this thread's earlier stores before its later
/// loads only together with a [`heavy_barrier`] on the thread it races with.
///
/// The fast path is one load and one compare: the mode is decided before
/// `main` (so `UNKNOWN` is rare), and the cold branch settles it and fences
/// (a full fence is right in every mode).
#[inline(always)]
pub fn light_barrier() {
    if MODE.load(Ordering::Relaxed) == EXPEDITED {
        compiler_fence(Ordering::SeqCst);
    } else {
        light_barrier_slow();
    }
}

/// [`light_barrier`] outside the membarrier mode, or before it is decided.
#[cold]
#[inline(never)]
fn light_barrier_slow() {
    if mode() == EXPEDITED {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The slow side of the pair: a full barrier on every running thread of the
/// process (`membarrier(PRIVATE_EXPEDITED)`), or `fence(SeqCst)` where membarrier
/// is missing. Costs a system call and IPIs — microseconds.
#[inline]
pub fn heavy_barrier() {
    if mode() == EXPEDITED {
        fence(Ordering::SeqCst);
        #[cfg(not(loom))]
        {
            use rustix::thread::{MembarrierCommand, membarrier};
            if membarrier(MembarrierCommand::PrivateExpedited).is_err() {
                // Registration is per process and cannot be undone, so this only
                // happens if a seccomp filter was installed after start-up.
                panic!("membarrier(PRIVATE_EXPEDITED) failed after registration");
            }
        }
        fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn mode_is_decided_once_and_barriers_run() {
        let first = is_expedited();
        light_barrier();
        heavy_barrier();
        assert_eq!(is_expedited(), first);
    }
}
