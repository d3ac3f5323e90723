//! `synchronize_rcu`: grace periods shared by concurrent callers.
//!
//! Callers queue an entry (on their own stack) on [`GP_WAITERS`], a list of
//! `sched::waitlist`, ksync's one wait engine. The caller that finds the list
//! empty becomes the leader: it takes the grace-period semaphore, detaches every
//! entry queued so far (its own excepted), runs one grace period
//! (`gp::grace_period`) and wakes them. A caller that finds the list non-empty
//! waits for its entry to be woken; the grace period that wakes it began after
//! the entry was queued, because the leader detaches the list only after taking
//! the semaphore. This is liburcu's `gp_waiters` queue (`urcu-wait.h`), on the
//! engine every sleeping primitive shares.
//!
//! Ordering: a waiter's stores before its call (the unpublished pointer) are
//! released by the list lock's unlock and acquired by the leader's lock before
//! it detaches, so they happen before the grace period; the leader's wake-up
//! marks each entry with a Release store after the grace period, which the
//! waiter's Acquire check of its mark pairs with, so the grace period happens
//! before the waiter returns.

use super::gp;
use super::reader::{GP, registry};
use crate::arch::membarrier::heavy_barrier;
use crate::sched::waitlist::{Plain, WaitList, Waiter};
use crate::sched::{self, TaskState};
use crate::semaphore::Semaphore;

/// The callers of `synchronize_rcu` waiting for a grace period.
static GP_WAITERS: WaitList<Plain> = WaitList::new();
static GP_LOCK: Semaphore = Semaphore::new(1);

#[cold]
#[track_caller]
fn in_reader_panic(what: &str) -> ! {
    panic!(
        "{what}() called inside an RCU read-side critical section: this would deadlock \
         (the grace period waits for the caller's own section to end)"
    )
}

/// Waits for a grace period: returns once every RCU read-side critical section
/// that began before the call has ended, so an object unpublished before the call
/// may be freed after it.
///
/// Concurrent callers share grace periods. Blocks: spins a little, then sleeps on
/// a futex until the last pre-existing reader's `rcu_read_unlock` wakes it.
///
/// # Panics
/// Inside a read-side critical section ("synchronize_rcu() called inside an RCU
/// read-side critical section: this would deadlock").
///
/// ```
/// use ksync::rcu::{synchronize_rcu, rcu_read_lock, RcuPtr};
/// let p = RcuPtr::new(Some(Box::new(1)));
/// let old = p.swap(Some(Box::new(2)));   // unpublish the old value
/// synchronize_rcu();                    // every reader that could see it is done
/// assert_eq!(old.map(|o| *o.into_box_after_gp()), Some(1));
/// assert_eq!(p.read(&rcu_read_lock()), Some(&2));
/// ```
#[track_caller]
pub fn synchronize_rcu() {
    if super::rcu_read_lock_held() {
        // Lockdep's "suspicious RCU usage" report first (a no-op without the
        // feature), then the panic: the call would wait for its own section.
        crate::lockdep::assert_not_in_rcu_read_section("synchronize_rcu");
        in_reader_panic("synchronize_rcu");
    }
    synchronize(gp::ACTIVE_ATTEMPTS);
}

/// [`synchronize_rcu`] that spins ten times longer before it sleeps, trading CPU
/// time for latency (the kernel's expedited grace periods; liburcu has none).
///
/// # Panics
/// Inside a read-side critical section.
///
/// ```
/// ksync::rcu::synchronize_rcu_expedited();
/// ```
#[track_caller]
pub fn synchronize_rcu_expedited() {
    if super::rcu_read_lock_held() {
        // Lockdep's "suspicious RCU usage" report first (a no-op without the
        // feature), then the panic: the call would wait for its own section.
        crate::lockdep::assert_not_in_rcu_read_section("synchronize_rcu_expedited");
        in_reader_panic("synchronize_rcu_expedited");
    }
    synchronize(gp::EXPEDITED_ATTEMPTS);
}

fn synchronize(attempts: u32) {
    crate::lockdep::might_sleep();
    let me = Waiter::new(false, TaskState::Uninterruptible);
    let leader = {
        let q = GP_WAITERS.lock();
        let leader = q.is_empty();
        // SAFETY: `me` is fresh, linked into this list only, and stays on this
        // frame until it is unlinked: by ourselves below as the leader, or by a
        // leader that detaches it and marks it woken, which we wait for.
        unsafe { q.push_back(&me) };
        leader
    };
    if !leader {
        // Someone else leads: wait for a grace period that started after our
        // entry was queued. Poll first (a grace period over idle readers takes
        // about a microsecond), then sleep; uninterruptible, so it cannot fail.
        if !sched::poll_before_sleep(None, || me.is_woken()) {
            let r = GP_WAITERS.wait_woken(&me, TaskState::Uninterruptible, None, |_| {});
            debug_assert!(r.is_ok());
        }
        return;
    }
    let gp_guard = GP_LOCK.down_guard();
    let waiters = {
        let q = GP_WAITERS.lock();
        q.remove(&me);
        q.detach(0, false)
    };
    run_grace_period(attempts);
    drop(gp_guard);
    waiters.wake();
}

/// One grace period over the registered readers. The caller holds `GP_LOCK`.
fn run_grace_period(attempts: u32) {
    if registry().is_empty() {
        // No reader exists; a thread that registers later synchronizes with us
        // through the registry mutex and sees everything we published.
        // Still order our stores before the caller's frees on other threads.
        heavy_barrier();
        return;
    }
    gp::grace_period(
        &GP,
        attempts,
        |off| {
            // Under the registry lock, so a thread that registers reads the
            // phase and publishes its fast pointer either before or after the
            // whole flip.
            let reg = registry();
            GP.set_phase(off);
            for r in reg.iter() {
                // SAFETY: the lock is held and `r` is in the registry.
                unsafe { r.set_phase(off) };
            }
        },
        |off| {
            let reg = registry();
            reg.iter().all(|r| {
                // SAFETY: records in the registry are alive while its lock is held.
                unsafe { (*r.rec).quiescent_at(off) }
            })
        },
    );
}
