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
//!
//! # The grace-period sequence
//!
//! [`GP_SEQ`] counts grace periods the kernel's way (`rcu_state.gp_seq`): the
//! leader makes it odd when its grace period begins and even when it ends, so
//! `GP_SEQ / 2` grace periods have completed. The polled API
//! ([`get_state_synchronize_rcu`], [`poll_state_synchronize_rcu`],
//! [`cond_synchronize_rcu`]) compares a cookie with it.
//!
//! | `GP_SEQ`     | meaning                                                   |
//! |--------------|-----------------------------------------------------------|
//! | even `2n`    | no grace period runs; `n` have completed                  |
//! | odd `2n + 1` | grace period `n + 1` runs (the leader holds `GP_LOCK`)    |
//!
//! Only the leader, holding `GP_LOCK`, changes it, and every change is a
//! read-modify-write, as is the cookie's snapshot: so the release sequence of
//! a snapshot runs through every later change, and the next grace period's
//! Acquire start synchronizes with it (see [`get_state_synchronize_rcu`]).

use super::gp;
use super::reader::{GP, registry};
use crate::arch::membarrier::heavy_barrier;
use crate::sched::waitlist::{Plain, WaitList, Waiter};
use crate::sched::{self, TaskState};
use crate::semaphore::{Semaphore, SemaphoreGuard};
use core::sync::atomic::{AtomicU64, Ordering};

/// The callers of `synchronize_rcu` waiting for a grace period.
static GP_WAITERS: WaitList<Plain> = WaitList::new();
static GP_LOCK: Semaphore = Semaphore::new(1);
/// The grace-period sequence: see the [module table](self). Changed only by
/// the leader holding `GP_LOCK`, always with read-modify-writes.
static GP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Takes the grace-period lock for a fork (`rcu_before_fork`): no grace
/// period runs until the guard goes (in the parent) or the child's lock is
/// made anew ([`reinit_after_fork`]).
pub(super) fn lock_for_fork() -> SemaphoreGuard<'static> {
    GP_LOCK.down_guard()
}

/// In the child of a fork: the grace-period lock free again and the
/// `synchronize_rcu` callers forgotten — they were the parent's other
/// threads: a leader among them, blocked on the lock the forking thread
/// held, would otherwise be awaited for ever by every later caller.
///
/// # Safety
/// The caller is the process's only thread, and `held` is the guard that
/// [`lock_for_fork`] gave it before the fork.
pub(super) unsafe fn reinit_after_fork(held: SemaphoreGuard<'static>) {
    // Its `up` would hand the unit to a waiter the child has not got.
    core::mem::forget(held);
    // SAFETY: the caller's contract: the only thread, so every entry on the
    // list and every waiter on the lock is another thread's, and gone.
    unsafe {
        GP_WAITERS.reinit_after_fork();
        GP_LOCK.reinit_after_fork(1);
    }
}

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
    // Odd: a grace period runs. Acquire pairs with the Release snapshot of
    // every `get_state_synchronize_rcu` before this in the word's order (their
    // release sequences run through every change, all read-modify-writes): a
    // snapshot that did not see this grace period begin happens before it, and
    // so does the unpublish before that snapshot, which the grace period's
    // first barrier then orders before every reader it does not wait for.
    GP_SEQ.fetch_add(1, Ordering::Acquire);
    run_grace_period(attempts);
    // Even: it has ended. Release pairs with the Acquire load of
    // `poll_state_synchronize_rcu` (and orders the grace period before the
    // count that `completed_grace_periods` reports); the wake-up below orders
    // it before the waiters' return.
    GP_SEQ.fetch_add(1, Ordering::Release);
    drop(gp_guard);
    waiters.wake();
}

/// A grace-period cookie: what [`get_state_synchronize_rcu`] returns and
/// [`poll_state_synchronize_rcu`] and [`cond_synchronize_rcu`] take (the
/// kernel's `unsigned long` cookie). It names the end of the first grace
/// period that begins after the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GpCookie(u64);

/// How many grace periods have completed since the process started: the RCU
/// grace-period counter (`rcu_get_gp_seq`, which the kernel keeps with two
/// state bits; this is its count of completed periods). Every
/// [`synchronize_rcu`], [`synchronize_rcu_expedited`] and batch of
/// [`call_rcu`](super::call_rcu) callbacks waits for one, but concurrent callers
/// share them, so the count grows by at most one per call.
///
/// ```
/// use ksync::rcu::{completed_grace_periods, synchronize_rcu};
/// let before = completed_grace_periods();
/// synchronize_rcu();
/// assert!(completed_grace_periods() > before);
/// ```
#[doc(alias = "rcu_get_gp_seq")]
#[doc(alias = "rcu_seq_current")]
pub fn completed_grace_periods() -> u64 {
    // Relaxed: a statistic. A caller that needs the grace period ordered before
    // what it does next uses the cookie API, whose load is Acquire.
    GP_SEQ.load(Ordering::Relaxed) / 2
}

/// A cookie for the polled grace-period API (`get_state_synchronize_rcu`):
/// once a grace period that begins after this call has ended,
/// [`poll_state_synchronize_rcu`] returns true for it. Does not block, start
/// a grace period or allocate; may be called anywhere, in a read-side
/// critical section too.
///
/// Typical use: unpublish an object, take a cookie, and free the object
/// later, once polling says the grace period has passed — without blocking
/// and without a callback.
///
/// ```
/// use ksync::rcu::{get_state_synchronize_rcu, poll_state_synchronize_rcu, synchronize_rcu, RcuPtr};
/// let p = RcuPtr::new(Some(Box::new(1)));
/// let old = p.swap(Some(Box::new(2)));          // unpublish
/// let cookie = get_state_synchronize_rcu();
/// // ... other work; a grace period passes (here, one we wait for) ...
/// synchronize_rcu();
/// assert!(poll_state_synchronize_rcu(cookie));
/// drop(old.map(|o| o.into_box_after_gp()));     // no reader can still see it
/// ```
#[doc(alias = "get_state_synchronize_rcu_full")]
pub fn get_state_synchronize_rcu() -> GpCookie {
    // A read-modify-write with Release, not a load: the next grace period's
    // Acquire start reads this value or a later change (all of them
    // read-modify-writes, so in this one's release sequence) and synchronizes
    // with it, so everything before this call (the caller's unpublish)
    // happens before that grace period begins. A plain load would give no
    // such edge when it reads the value just before the start.
    let s = GP_SEQ.fetch_add(0, Ordering::Release);
    // `rcu_seq_snap`: the end of the next grace period to begin. Idle (even
    // `s`): the one that makes it `s + 2`; one running (odd `s`) may have
    // begun before the caller's unpublish, so the one after it: `s + 3`.
    GpCookie((s + 3) & !1)
}

/// A cookie whose grace period has already completed
/// (`get_completed_synchronize_rcu`): [`poll_state_synchronize_rcu`] is always
/// true for it. For a structure that holds a cookie before it has one to hold.
///
/// ```
/// use ksync::rcu::{get_completed_synchronize_rcu, poll_state_synchronize_rcu};
/// assert!(poll_state_synchronize_rcu(get_completed_synchronize_rcu()));
/// ```
pub fn get_completed_synchronize_rcu() -> GpCookie {
    GpCookie(0)
}

/// Whether a full grace period has passed since `cookie` was taken
/// (`poll_state_synchronize_rcu`): once true, every read-side critical section
/// that began before [`get_state_synchronize_rcu`] returned it has ended, and
/// stays true. Does not block.
///
/// ```
/// use ksync::rcu::{get_state_synchronize_rcu, poll_state_synchronize_rcu, rcu_read_lock};
/// let g = rcu_read_lock();
/// let cookie = get_state_synchronize_rcu();
/// // Our own section began before the cookie: no grace period can end yet.
/// assert!(!poll_state_synchronize_rcu(cookie));
/// drop(g);
/// ```
#[doc(alias = "poll_state_synchronize_rcu_full")]
pub fn poll_state_synchronize_rcu(cookie: GpCookie) -> bool {
    // Acquire pairs with the leader's Release at the end of the grace period:
    // the grace period (and every section it waited for) happens before what
    // the caller does after a true answer, such as freeing.
    GP_SEQ.load(Ordering::Acquire) >= cookie.0
}

/// Waits for a grace period unless one has passed since `cookie` was taken
/// (`cond_synchronize_rcu`): [`poll_state_synchronize_rcu`], then
/// [`synchronize_rcu`] if it said no.
///
/// # Panics
/// Inside a read-side critical section, when it has to wait.
///
/// ```
/// use ksync::rcu::{cond_synchronize_rcu, get_state_synchronize_rcu, poll_state_synchronize_rcu};
/// let cookie = get_state_synchronize_rcu();
/// cond_synchronize_rcu(cookie);
/// assert!(poll_state_synchronize_rcu(cookie));
/// ```
#[doc(alias = "cond_synchronize_rcu_full")]
#[track_caller]
pub fn cond_synchronize_rcu(cookie: GpCookie) {
    if !poll_state_synchronize_rcu(cookie) {
        synchronize_rcu();
    }
}

/// A cookie, as [`get_state_synchronize_rcu`], and a grace period on its way
/// that will complete it (`start_poll_synchronize_rcu`): an empty callback
/// queued with [`call_rcu`](super::call_rcu), whose batch waits for a grace
/// period that begins after this call. Does not block.
///
/// ```
/// use ksync::rcu::{poll_state_synchronize_rcu, rcu_barrier, start_poll_synchronize_rcu};
/// let cookie = start_poll_synchronize_rcu();
/// rcu_barrier(); // the queued callback has run, after its grace period
/// assert!(poll_state_synchronize_rcu(cookie));
/// ```
#[doc(alias = "start_poll_synchronize_rcu_full")]
pub fn start_poll_synchronize_rcu() -> GpCookie {
    let cookie = get_state_synchronize_rcu();
    // The worker's `synchronize_rcu` for this callback's batch is called after
    // the callback is queued, so after the snapshot: its grace period ends at
    // or after the cookie.
    super::call_rcu(|| {});
    cookie
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
