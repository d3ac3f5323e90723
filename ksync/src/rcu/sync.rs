//! `synchronize_rcu`: grace periods shared by concurrent callers.
//!
//! Callers push a wait node (on their own stack) onto a lock-free stack,
//! [`GP_WAITERS`]. The caller that finds the stack empty becomes the leader: it
//! takes the grace-period mutex, detaches the whole stack (itself and everyone who
//! arrived before), runs one grace period (`gp::grace_period`) and wakes the
//! others. A caller that finds the stack non-empty waits for its node to be marked
//! done; the grace period that marks it began after the node was pushed, because
//! the leader detaches the stack only after taking the mutex. This is liburcu's
//! `gp_waiters` queue (`urcu-wait.h`).
//!
//! | word | values |
//! |------|--------|
//! | [`GP_WAITERS`] | null: nobody waits; else the newest node of a stack of waiters |
//! | `WaitNode::done` | 0: waiting; 1: the grace period it waited for has ended |

use super::gp;
use super::reader::{GP, registry};
use crate::arch::membarrier::heavy_barrier;
use crate::sched::{self, Task, TaskState};
use crate::semaphore::Semaphore;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

struct WaitNode {
    next: *mut WaitNode,
    done: AtomicU32,
    task: Task,
}

static GP_WAITERS: AtomicPtr<WaitNode> = AtomicPtr::new(ptr::null_mut());
/// Serializes grace periods (liburcu's `rcu_gp_lock`). A ksync semaphore, not a
/// std mutex: a leader that waits for the previous grace period sleeps through
/// `sched::sleep`, and so drops the BKL meanwhile (SPEC §15); a semaphore has no
/// owner, so lockdep orders nothing through it (the grace period itself is not
/// a lock the caller holds).
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
    let mut node = WaitNode {
        next: ptr::null_mut(),
        done: AtomicU32::new(0),
        task: sched::current(),
    };
    let me: *mut WaitNode = &mut node;
    let backoff = crate::Backoff::new();
    let mut head = GP_WAITERS.load(Ordering::Relaxed);
    loop {
        // SAFETY: `me` is our own node, not yet published.
        unsafe { (*me).next = head };
        // Release: publishes `next` to the leader that detaches the stack
        // (its Acquire swap); AcqRel also orders our earlier stores (the
        // unpublished pointer) before the grace period the leader starts.
        match GP_WAITERS.compare_exchange_weak(head, me, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break,
            Err(h) => {
                head = h;
                backoff.spin();
            }
        }
    }
    if !head.is_null() {
        // Someone else leads: wait for a grace period that started after our push.
        let backoff = crate::Backoff::new();
        // Acquire: pairs with the leader's Release store of `done`, which follows
        // its grace period.
        while node.done.load(Ordering::Acquire) == 0 {
            if backoff.is_completed() {
                let _ = sched::sleep(TaskState::Uninterruptible, None);
            } else {
                backoff.snooze();
            }
        }
        return;
    }
    let gp_guard = GP_LOCK.down_guard();
    // Acquire: pairs with the waiters' Release push; reads their `next` links.
    let waiters = GP_WAITERS.swap(ptr::null_mut(), Ordering::AcqRel);
    run_grace_period(attempts);
    drop(gp_guard);
    // Wake everyone we detached, except ourselves.
    let mut w = waiters;
    while !w.is_null() {
        if w == me {
            // SAFETY: our own node.
            w = unsafe { (*me).next };
            continue;
        }
        // SAFETY: a detached waiter's node stays alive until its `done` is set;
        // read everything we need before setting it.
        let (next, task) = unsafe { ((*w).next, (*w).task.clone()) };
        // Release: pairs with the waiter's Acquire load; the grace period
        // happens-before its return. After this store the node may vanish.
        // SAFETY: still alive (done not yet set).
        unsafe { (*w).done.store(1, Ordering::Release) };
        task.wake_up();
        w = next;
    }
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
