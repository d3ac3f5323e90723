//! The queued spinlock (the kernel's `qspinlock`, kernel/locking/qspinlock.c) with
//! the paravirtual slow path (kernel/locking/qspinlock_paravirt.h): the lock
//! behind [`SpinLock`](super::SpinLock).
//!
//! | word     | bits  | name        | meaning                                          |
//! |----------|-------|-------------|--------------------------------------------------|
//! | `locked` | all   | `LOCKED` 1  | held; 0 = free. The futex the queue head sleeps on |
//! | `locked` | all   | `HANDED` 2  | handed to the queue head by the unlocker (the kernel's `_Q_SLOW_VAL` hand-off): held, and the head owns it |
//! | `tail`   | 0     | `SLEEPER`   | the queue head is (about to be) asleep on `locked`: unlock must wake it |
//! | `tail`   | 1     | `HEAD_SPIN` | the queue head is spinning for the lock: no stealing (the kernel's pending bit as `pv_wait_head_or_lock` uses it) |
//! | `tail`   | 2     | `HANDOFF`   | the queue head has slept `HANDOFF_AFTER` times: no stealing, and unlock hands the lock to it (set only with `SLEEPER`) |
//! | `tail`   | 3..32 | tail code   | the last queued MCS node ([`super::node`]), 0 = no queue |
//!
//! Transitions: `locked` 0→1 only by a CAS (fast path, steal or queue head);
//! 0→2 only by an unlocker that saw `HANDOFF` (CAS); 2→1 only by the queue
//! head (CAS: it takes the handed lock), 2→0 only by that unlocker when the
//! head it saw has meanwhile left (CAS: undo); 1→0 only by the holder's
//! release store. `SLEEPER`/`HEAD_SPIN`/`HANDOFF` are set and cleared only by
//! the queue head. The tail code is exchanged by each arriving waiter (keeping
//! the flag bits) and cleared by the head that finds itself last.
//!
//! ## Why two words
//! The kernel packs all of this into one 32-bit word and unlocks with a *byte*
//! store to the locked byte while other CPUs change the other bytes. Rust's
//! memory model forbids racing mixed-size atomic accesses, and an unlock by RMW
//! would double the uncontended cost. So the lock is two 32-bit words on one
//! 8-byte aligned unit: `locked`, written only by a CAS that saw 0 and by the
//! holder's release store, and `tail`, which the waiters own.
//!
//! ## The paths
//! - Fast path: `tail == 0` (a load from the same line) and one CAS `locked`
//!   0→1. Unlock: one release store, a [`light_barrier`] (a compiler barrier when
//!   membarrier is available), and a load of `tail` to see whether the queue head
//!   sleeps — the asymmetric-fence pair whose other half, [`heavy_barrier`], the
//!   rare sleeper pays.
//! - Lock stealing (`pv_hybrid_queued_unfair_trylock`): while waiters are queued
//!   but the head is not actively spinning (it sleeps, or is preempted before
//!   it started), newcomers may take a free lock for a bounded time instead of
//!   queueing behind a thread that is not running. With `HEAD_SPIN` or
//!   `HANDOFF` set they queue: FIFO.
//! - Queue: a newcomer exchanges its per-thread node into `tail`, links into the
//!   predecessor's `next`, and waits for the hand-over: spins a bounded time,
//!   then sleeps on its node's futex until kicked (`pv_wait_node`/`pv_kick_node`).
//! - Head: first spins a short steal window (`STEAL_WINDOW` exponential rounds)
//!   with stealing still open, so the thread that just unlocked, its cache
//!   line hot, may take the lock again (two contending threads then trade
//!   bursts instead of one cache-line transfer per acquisition); then it sets
//!   `HEAD_SPIN`, spins a bounded time trying the CAS, then clears it,
//!   sets `SLEEPER`, issues [`heavy_barrier`], and if the lock is still held
//!   sleeps on `locked` (`pv_wait_head_or_lock`). The unlocker either sees
//!   `SLEEPER` (and wakes) or the sleeper's re-check sees the unlock: the
//!   barrier pair forbids both missing (store buffering).
//! - Hand-off (starvation bound). A head woken from its sleep competes with
//!   stealers again until it runs, and on an oversubscribed machine a running
//!   thread could re-steal the lock for its whole time slice while the woken
//!   head waits for a CPU. So once the head has gone to sleep `HANDOFF_AFTER`
//!   times it sets `HANDOFF` with `SLEEPER` and stays asleep until it is *given*
//!   the lock: the unlocker that sees `HANDOFF` after its release store sets
//!   `locked` 0→`HANDED` on the head's behalf and kicks it (as the kernel's
//!   `pv_kick_node` with the locked byte set for the head, or the mutex's
//!   `MUTEX_FLAG_HANDOFF`); stealers and `try_lock` back off while `HANDOFF` is
//!   set. An unlocker whose view of `HANDOFF` was stale (the head already took
//!   the lock itself and left) re-reads `tail` after its CAS and undoes the
//!   hand-off (`HANDED`→0), so an unheld lock never stays `HANDED`.
//! - Having the lock, the head clears its flags and either empties the queue
//!   (CAS tail → 0 when it is last) or hands headship to its successor.

use super::node::{self, CODE_SHIFT};
use super::raw::{RawSpin, Spin};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

const LOCKED: u32 = 1;
const HANDED: u32 = 2;
const SLEEPER: u32 = 1;
const HEAD_SPIN: u32 = 2;
const HANDOFF: u32 = 4;
/// Flags that stop newcomers from stealing or barging with `try_lock`.
const NO_STEAL: u32 = HEAD_SPIN | HANDOFF;
const FLAGS: u32 = (1 << CODE_SHIFT) - 1;
const TAIL_MASK: u32 = !FLAGS;

/// Rounds of stealing a newcomer tries before it queues.
#[cfg(not(loom))]
const STEAL_TRIES: u32 = 64;
#[cfg(loom)]
const STEAL_TRIES: u32 = 1;

/// Spin rounds (exponential, like `Backoff::spin`) the queue head leaves
/// stealing open before it sets `HEAD_SPIN`.
#[cfg(not(loom))]
const STEAL_WINDOW: u32 = 7;
#[cfg(loom)]
const STEAL_WINDOW: u32 = 1;

/// How many times the queue head goes to sleep, competing with stealers after
/// each wake-up, before it asks for the lock to be handed to it (`HANDOFF`).
#[cfg(not(loom))]
const HANDOFF_AFTER: u32 = 1;
/// How many times the queue head sleeps before asking for hand-off (loom: 1).
#[cfg(loom)]
const HANDOFF_AFTER: u32 = 1;

/// The queued spinlock (`struct qspinlock`), paravirtual flavour.
#[derive(Debug)]
#[repr(C, align(8))]
pub struct Queued {
    locked: AtomicU32,
    tail: AtomicU32,
}

// SAFETY: `locked` goes 0→1 only through a CAS that saw 0, so one thread wins;
// it returns to 0 only by the holder's Release store, and every winning CAS is
// Acquire. The queue only decides who tries the CAS.
unsafe impl RawSpin for Queued {
    #[cfg(not(loom))]
    const INIT: Self = Queued {
        locked: AtomicU32::new(0),
        tail: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        Queued {
            locked: AtomicU32::new(0),
            tail: AtomicU32::new(0),
        }
    }
    const NAME: &'static str = "queued";

    #[inline]
    fn lock(&self) {
        // Relaxed tail load: only a fairness hint (queue first if others wait);
        // the CAS decides. Acquire CAS: pairs with the Release store in `unlock`.
        if self.tail.load(Ordering::Relaxed) != 0
            || self
                .locked
                .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            self.lock_slow();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.locked.load(Ordering::Relaxed) == 0
            && self.tail.load(Ordering::Relaxed) & NO_STEAL == 0
            && self.cas_lock()
    }

    #[inline]
    unsafe fn unlock(&self) {
        // Release: pairs with the Acquire CAS of the next holder.
        self.locked.store(0, Ordering::Release);
        // Orders the store above before the load below, together with the
        // sleeper's heavy_barrier() between its SLEEPER store and its re-check
        // of `locked` (see `head_wait`).
        light_barrier();
        let t = self.tail.load(Ordering::Relaxed);
        if t & SLEEPER != 0 {
            self.wake_head(t);
        }
    }

    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed) != 0
    }

    fn is_contended(&self) -> bool {
        self.tail.load(Ordering::Relaxed) & TAIL_MASK != 0
    }
}

/// The queued lock under its own type, for [`RawSpinLock`](super::RawSpinLock)
/// (`raw_spinlock_t`): the same algorithm as [`Queued`].
#[derive(Debug)]
#[repr(transparent)]
pub struct RawQueued(Queued);

// SAFETY: delegates every operation to `Queued`.
unsafe impl RawSpin for RawQueued {
    #[cfg(not(loom))]
    const INIT: Self = RawQueued(Queued::INIT);
    #[cfg(loom)]
    fn new() -> Self {
        RawQueued(Queued::new())
    }
    const NAME: &'static str = "raw-queued";
    #[inline]
    fn lock(&self) {
        self.0.lock()
    }
    #[inline]
    fn try_lock(&self) -> bool {
        self.0.try_lock()
    }
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: forwarded from our caller.
        unsafe { self.0.unlock() }
    }
    fn is_locked(&self) -> bool {
        self.0.is_locked()
    }
    fn is_contended(&self) -> bool {
        self.0.is_contended()
    }
}

impl Queued {
    #[inline]
    fn cas_lock(&self) -> bool {
        // Acquire: pairs with the Release store in `unlock`.
        self.locked
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// The queue head takes the lock: a free one by CAS, or one an unlocker
    /// handed to it.
    #[inline]
    fn head_try_take(&self) -> bool {
        match self.locked.load(Ordering::Relaxed) {
            0 => self.cas_lock(),
            // Acquire: reads from the unlocker's CAS, part of the release
            // sequence of its Release store of 0 in `unlock`.
            HANDED => self
                .locked
                .compare_exchange(HANDED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok(),
            _ => false,
        }
    }

    /// Unlock's slow path: the queue head sleeps (`t` has `SLEEPER`). With
    /// `HANDOFF` the lock is handed to it first (`__pv_queued_spin_unlock_slowpath`).
    #[cold]
    fn wake_head(&self, t: u32) {
        // AcqRel: Acquire makes a head that took the lock before our CAS (and
        // cleared its flags before unlocking) visible to the `tail` re-read;
        // the CAS continues the release sequence of our unlock store.
        if t & HANDOFF != 0
            && self
                .locked
                .compare_exchange(0, HANDED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            && self.tail.load(Ordering::Relaxed) & HANDOFF == 0
        {
            // Our view of HANDOFF was stale: the head it belonged to has taken
            // the lock and left. Undo, unless a new head took it meanwhile.
            let _ = self
                .locked
                .compare_exchange(HANDED, 0, Ordering::Release, Ordering::Relaxed);
        }
        crate::arch::futex::wake_one(&self.locked);
    }

    #[cold]
    fn lock_slow(&self) {
        // Steal while the queue's head is not spinning for the lock, a bounded
        // number of rounds (pv_hybrid_queued_unfair_trylock).
        let spin = Spin::new();
        for _ in 0..STEAL_TRIES {
            let t = self.tail.load(Ordering::Relaxed);
            if t & NO_STEAL != 0 {
                break;
            }
            if self.locked.load(Ordering::Relaxed) == 0 && self.cas_lock() {
                return;
            }
            if t & TAIL_MASK == 0 {
                // No queue: become its head right away.
                break;
            }
            spin.spin();
        }

        let Some(me) = node::claim() else {
            // Out of nodes (deep irq nesting, or no thread slot): spin on
            // trylock as the kernel does past MAX_NODES, yielding when spent.
            return self.lock_without_node();
        };
        // AcqRel: Release publishes our node's initialisation to the successor
        // that reads our code from `tail`; Acquire makes the predecessor's node
        // initialisation visible before we write its `next`.
        let old = match self
            .tail
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some((t & FLAGS) | me.code)
            }) {
            Ok(t) | Err(t) => t,
        };
        if old & TAIL_MASK != 0 {
            // Release: pairs with the predecessor's Acquire in `wait_for_next`.
            node::get(old & TAIL_MASK)
                .next
                .store(me.code, Ordering::Release);
            node::wait_for_handover(me.node);
        }

        self.head_wait();

        // We hold the lock and are the queue head: clear our flags and leave
        // the queue, emptying it if we are last.
        let mut t = self.tail.load(Ordering::Relaxed);
        loop {
            let new = if t & TAIL_MASK == me.code {
                0
            } else {
                t & TAIL_MASK
            };
            // Relaxed: the tail carries no data for the next head; hand-over
            // below (Release) and the lock word do.
            match self
                .tail
                .compare_exchange_weak(t, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) if new == 0 => {
                    node::free(&me);
                    return;
                }
                Ok(_) => break,
                Err(now) => t = now,
            }
        }
        let next = node::wait_for_next(me.node);
        node::hand_over(node::get(next));
        node::free(&me);
    }

    /// The queue head's wait for the lock word (`pv_wait_head_or_lock`).
    fn head_wait(&self) {
        let spin = Spin::new();
        // Steal window: a short spin during which running newcomers (often
        // the thread that just unlocked, its cache line still hot) may still
        // take the lock; then HEAD_SPIN closes it.
        for _ in 0..STEAL_WINDOW {
            if self.head_try_take() {
                return;
            }
            spin.spin();
        }
        let mut sleeps = 0;
        loop {
            // Spin phase: HEAD_SPIN set, so newcomers queue instead of stealing.
            self.tail.fetch_or(HEAD_SPIN, Ordering::Relaxed);
            spin.reset();
            loop {
                // Having the lock, `lock_slow` clears our flags as it leaves
                // the queue.
                if self.head_try_take() {
                    return;
                }
                if spin.is_completed() {
                    break;
                }
                spin.snooze();
            }
            // Sleep phase: announce the sleeper (asking for hand-off once it
            // has slept often enough), then re-check.
            sleeps += 1;
            let handoff = sleeps >= HANDOFF_AFTER;
            let flags = if handoff { SLEEPER | HANDOFF } else { SLEEPER };
            self.tail
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                    Some((t & !HEAD_SPIN) | flags)
                })
                .ok();
            // Pairs with the unlocker's light_barrier(): either it sees our
            // flags after its release store, or we see its store of 0 here.
            heavy_barrier();
            loop {
                if self.head_try_take() {
                    return;
                }
                // Sleeps only while `locked` is still LOCKED; any unlock after
                // our heavy barrier sees SLEEPER and wakes us (having handed
                // us the lock if HANDOFF is set).
                crate::arch::futex::wait(&self.locked, LOCKED, None);
                if !handoff {
                    break;
                }
            }
            self.tail.fetch_and(!flags, Ordering::Relaxed);
        }
    }

    #[cold]
    fn lock_without_node(&self) {
        let spin = Spin::new();
        loop {
            if self.locked.load(Ordering::Relaxed) == 0 && self.cas_lock() {
                return;
            }
            if spin.is_completed() {
                crate::arch::yield_now();
            } else {
                spin.snooze();
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// Two threads: mutual exclusion through the fast path, the steal loop and
    /// the queue head's spin.
    #[test]
    fn loom_queued_mutual_exclusion() {
        super::super::loom_support::mutual_exclusion::<Queued>(2);
    }

    /// Three threads: a queue of two behind a holder. With the loom spin
    /// budget of one round this reaches the node sleep (hand-over kick) and the
    /// head sleep (SLEEPER, heavy/light barrier pair, futex kick); a lost
    /// wake-up shows as a deadlock. Checked by mutation: dropping the unlock's
    /// kick, or the sleeper's `heavy_barrier()`, makes this model deadlock.
    #[test]
    fn loom_queued_three_threads() {
        super::super::loom_support::mutual_exclusion::<Queued>(3);
    }

    /// The hand-off: one thread holds the lock while another queues, spins its
    /// one-round budget and sleeps asking for hand-off; the holder's unlock
    /// must give it the lock (`HANDED`) and kick it, and the holder's second
    /// acquisition must wait for it (no stealing past `HANDOFF`). Afterwards
    /// the lock is free: no stale `HANDED` is left behind, even when the
    /// unlocker's view of `HANDOFF` was stale and it had to undo.
    #[test]
    fn loom_queued_handoff() {
        use loom::cell::UnsafeCell;
        use loom::sync::Arc;
        loom::model(|| {
            let s = Arc::new((Queued::new(), UnsafeCell::new(0u32)));
            s.0.lock();
            let s2 = s.clone();
            let t = loom::thread::spawn(move || {
                s2.0.lock();
                // SAFETY: the lock is held.
                s2.1.with_mut(|p| unsafe { *p += 1 });
                // SAFETY: locked just above, on this thread.
                unsafe { s2.0.unlock() };
            });
            // SAFETY: locked above, on this thread.
            s.1.with_mut(|p| unsafe { *p += 1 });
            // SAFETY: locked above, on this thread.
            unsafe { s.0.unlock() };
            s.0.lock();
            // SAFETY: the lock is held.
            s.1.with_mut(|p| unsafe { *p += 1 });
            // SAFETY: locked just above, on this thread.
            unsafe { s.0.unlock() };
            t.join().unwrap();
            // SAFETY: every thread has joined.
            assert_eq!(s.1.with(|p| unsafe { *p }), 3);
            assert!(!s.0.is_locked(), "a stale hand-off left the lock HANDED");
            assert_eq!(s.0.tail.load(Ordering::Relaxed), 0);
        });
    }
}
