//! The MCS queue lock (Mellor-Crummey and Scott, 1991; the kernel's
//! `kernel/locking/mcs_spinlock.h`): each waiter spins on its own node, so a
//! hand-over moves one cache line instead of invalidating every waiter.
//!
//! | field   | meaning                                                         |
//! |---------|-----------------------------------------------------------------|
//! | `tail`  | code of the last queued node (the holder's when alone), 0 = unlocked |
//! | `owner` | code of the holder's node, written by the holder, read by its unlock |
//!
//! Transitions of `tail`: 0 → my code by `lock` (swap: I hold the lock);
//! X → my code by `lock` (swap: I queue behind X and link into X's `next`);
//! my code → 0 by `unlock` when no one queued (CAS); otherwise `unlock` hands
//! over to `next` ([`node::hand_over`]).
//!
//! Nodes are the per-thread static nodes of [`super::node`]; a node stays
//! claimed while the lock is held, so a thread can hold as many MCS locks at
//! once as it has nodes (8), in any order. Queued waiters spin a bounded time
//! and then sleep on their node's futex until the predecessor kicks them.

use super::node::{self, Claimed};
use super::raw::RawSpin;
use crate::loom::sync::atomic::{AtomicU32, Ordering};

/// MCS queue spinlock.
#[derive(Debug)]
#[repr(C)]
pub struct Mcs {
    tail: AtomicU32,
    owner: AtomicU32,
}

// SAFETY: the tail swap linearizes the queue; only the node whose predecessor
// handed over (or that found the tail empty) holds the lock. Acquire on the
// swap/hand-over load pairs with the Release CAS/swap of the previous holder.
unsafe impl RawSpin for Mcs {
    #[cfg(not(loom))]
    const INIT: Self = Mcs {
        tail: AtomicU32::new(0),
        owner: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        Mcs {
            tail: AtomicU32::new(0),
            owner: AtomicU32::new(0),
        }
    }
    const NAME: &'static str = "mcs";

    #[inline]
    fn lock(&self) {
        let Some(me) = node::claim() else {
            no_node();
        };
        // AcqRel: Acquire pairs with the Release of the previous holder's CAS
        // (tail → 0) and with the predecessor's enqueue (its node is
        // initialised); Release publishes our node's initialisation.
        let prev = self.tail.swap(me.code, Ordering::AcqRel);
        if prev != 0 {
            // Release: the predecessor's Acquire load in `wait_for_next` sees
            // our initialised node.
            node::get(prev).next.store(me.code, Ordering::Release);
            node::wait_for_handover(me.node);
        }
        // Relaxed: read back only by this thread's `unlock`.
        self.owner.store(me.code, Ordering::Relaxed);
    }

    #[inline]
    fn try_lock(&self) -> bool {
        if self.tail.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let Some(me) = node::claim() else {
            return false;
        };
        // Acquire: pairs with the previous holder's Release CAS to 0.
        if self
            .tail
            .compare_exchange(0, me.code, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.owner.store(me.code, Ordering::Relaxed);
            true
        } else {
            node::free(&me);
            false
        }
    }

    #[inline]
    unsafe fn unlock(&self) {
        let code = self.owner.load(Ordering::Relaxed);
        let me = Claimed {
            code,
            node: node::get(code),
        };
        // Release: the next locker's Acquire swap/CAS sees our critical section.
        if me.node.next.load(Ordering::Relaxed) == 0
            && self
                .tail
                .compare_exchange(code, 0, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        {
            node::free(&me);
            return;
        }
        let next = node::wait_for_next(me.node);
        node::hand_over(node::get(next));
        node::free(&me);
    }

    fn is_locked(&self) -> bool {
        self.tail.load(Ordering::Relaxed) != 0
    }

    fn is_contended(&self) -> bool {
        let t = self.tail.load(Ordering::Relaxed);
        t != 0 && t != self.owner.load(Ordering::Relaxed)
    }
}

#[cold]
#[inline(never)]
fn no_node() -> ! {
    panic!(
        "ksync: MCS lock: no free queue node (more than {} MCS locks held by one thread, \
         or more than the supported number of live threads)",
        node::NODES_PER_THREAD
    )
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_mcs_mutual_exclusion() {
        super::super::loom_support::mutual_exclusion::<Mcs>(2);
    }

    #[test]
    fn loom_mcs_three_threads() {
        super::super::loom_support::mutual_exclusion::<Mcs>(3);
    }
}
