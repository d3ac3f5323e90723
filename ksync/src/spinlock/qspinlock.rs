//! The queued spinlock (the kernel's `qspinlock`, kernel/locking/qspinlock.c) with
//! the paravirtual slow path (kernel/locking/qspinlock_paravirt.h): the lock
//! behind [`SpinLock`](super::SpinLock).
//!
//! | word     | bits  | name        | meaning                                          |
//! |----------|-------|-------------|--------------------------------------------------|
//! | `locked` | all   | `LOCKED` 1  | held; 0 = free. The futex the queue head sleeps on |
//! | `locked` | all   | `HANDED` 2  | handed to the queue head by the unlocker (the kernel's `_Q_SLOW_VAL` hand-off): held, and the head owns it |
//! | `tail`   | 0     | `SLEEPER`   | the queue head is (about to be) asleep on `locked`: unlock must wake it (set only with `HANDOFF`) |
//! | `tail`   | 2     | `HANDOFF`   | the queue head's turn is over ([`TURN`] releases or [`FAIR_WAIT`]): unlock hands the lock to it, `try_lock` fails |
//! | `tail`   | 3..32 | tail code   | the last queued MCS node ([`super::node`]), 0 = no queue |
//! | `releases` | all | count       | unlocks so far, modulo 2^32: the clock the head's turn is measured in; written only by the holder |
//! | `turn_end` | all | count       | the `releases` value at which the current head's turn ends; written by the head |
//!
//! Transitions: `locked` 0→1 only by a CAS (fast path or queue head);
//! 0→2 only by an unlocker that saw `HANDOFF` (CAS); 2→1 only by the queue
//! head (CAS: it takes the handed lock), 2→0 only by that unlocker when the
//! head it saw has meanwhile left (CAS: undo); 1→0 only by the holder's
//! release store. `SLEEPER`/`HANDOFF` are set and cleared only by the queue
//! head. The tail code is exchanged by each arriving waiter (keeping the flag
//! bits) and cleared by the head that finds itself last. (Bit 1 is unused.)
//!
//! ## Why two words
//! The kernel packs all of this into one 32-bit word and unlocks with a *byte*
//! store to the locked byte while other CPUs change the other bytes. Rust's
//! memory model forbids racing mixed-size atomic accesses, and an unlock by RMW
//! would double the uncontended cost. So the lock is two 32-bit words on one
//! 8-byte aligned unit: `locked`, written only by a CAS that saw 0 and by the
//! holder's release store, and `tail`, which the waiters own; and, for the
//! fairness of turns, two counters after them (`releases`, `turn_end`): 16
//! bytes in all, against the kernel's 4.
//!
//! ## The paths
//! - Fast path: one CAS `locked` 0→1. Unlock: one release store, a
//!   [`light_barrier`] (a compiler barrier when membarrier is available), and a
//!   load of `tail` to see whether the queue head asked for the lock — the
//!   asymmetric-fence pair whose other half, [`heavy_barrier`], the rare
//!   sleeper pays.
//! - Queue: a thread whose CAS failed exchanges its per-thread node into
//!   `tail`, links into the predecessor's `next`, and waits for the hand-over:
//!   spins a bounded time, then sleeps on its node's futex until kicked
//!   (`pv_wait_node`/`pv_kick_node`). Only the head touches the lock word.
//! - Head, phase 1 (the holder's turn): the head polls the lock word at
//!   intervals that double from [`POLL_FIRST`] to [`POLL_MAX`] (yielding its
//!   CPU at the longest), for one turn: [`TURN`] releases, or [`FAIR_WAIT`]
//!   if that comes first. Running threads keep taking the free lock with the
//!   fast path meanwhile — the kernel's native qspinlock forbids that and
//!   hands the line over on every acquisition; here the holder keeps its
//!   line hot and runs bursts of thousands of acquisitions, paying one cache
//!   miss per poll (parking_lot gets its speed the same way, by letting
//!   running threads barge, and its eventual fairness by a timed hand-off).
//!   A poll that finds the lock free and idle since the previous poll takes
//!   it; a lock that others are still taking is theirs until the turn ends.
//!   The turn is counted in acquisitions, not in time, so threads on CPUs of
//!   unequal speed get equal shares: with time-based turns (50 µs) two
//!   threads of one run got 0.60–0.95 of each other's acquisitions, with
//!   counted turns 0.94–1.00.
//! - Late head: a head that is runnable but not running (its wake-up went to
//!   a CPU the holder occupies) cannot ask for its turn, and the holder would
//!   run on to the end of its time slice — a scheduler tick of several ms,
//!   hundreds of thousands of acquisitions. So an unlocker that sees a queue
//!   checks, every [`LATE_YIELD`] releases, whether the head's turn
//!   (`turn_end`) is a whole [`TURN`] overdue, and if so yields its CPU. With
//!   8 threads on 2 CPUs this took the fairness from 0.41–0.55 to 0.86–0.96.
//! - Head, phase 2 (hand-off, the starvation bound): at the end of its turn
//!   the head sets `HANDOFF`; the unlocker that sees it after its release store
//!   sets `locked` 0→`HANDED` on the head's behalf (as the kernel's
//!   `pv_kick_node` with the locked byte set for the head, or the mutex's
//!   `MUTEX_FLAG_HANDOFF`), so no running thread can take the lock past the
//!   head any more: each waiter's wait is bounded by the queue ahead of it
//!   times ([`FAIR_WAIT`] + one critical section). A stealer that CASed 0→1
//!   between an unlocker's store and its hand-off CAS sees `HANDOFF` at its own
//!   unlock. An unlocker whose view of `HANDOFF` was stale (the head already
//!   took the lock itself and left) re-reads `tail` after its CAS and undoes the
//!   hand-off (`HANDED`→0), so an unheld lock never stays `HANDED`.
//! - Head, phase 3 (sleep, `pv_wait_head_or_lock`): if the holder still has
//!   not let go after a bounded snooze (it is preempted, or its critical
//!   section is long), the head sets `SLEEPER`, issues [`heavy_barrier`], and
//!   if the lock is still held sleeps on `locked`. The unlocker either sees
//!   `SLEEPER` (hands over and wakes) or the sleeper's re-check sees the
//!   unlock: the barrier pair forbids both missing (store buffering).
//! - Having the lock, the head clears its flags and either empties the queue
//!   (CAS tail → 0 when it is last) or hands headship to its successor.

use super::node::{self, CODE_SHIFT};
use super::raw::{RawSpin, Spin};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::backoff::{POLL_FIRST, POLL_MAX, Patience, now_ns};
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

const LOCKED: u32 = 1;
const HANDED: u32 = 2;
const SLEEPER: u32 = 1;
const HANDOFF: u32 = 4;
/// Flags that stop newcomers from stealing or barging with `try_lock`.
const NO_STEAL: u32 = HANDOFF;
/// Flags that send the unlocker to its slow path.
const UNLOCK_SLOW: u32 = SLEEPER | HANDOFF;
const FLAGS: u32 = (1 << CODE_SHIFT) - 1;
const TAIL_MASK: u32 = !FLAGS;

/// The longest the queue head waits with stealing open before it asks for the
/// lock to be handed to it (`HANDOFF`), counted from when its predecessor took
/// the lock (`Node::since`): the bound in time on a turn (normally [`TURN`]
/// releases end it first), for long critical sections and slow wake-ups.
#[cfg(not(loom))]
const FAIR_WAIT: Duration = Duration::from_micros(50);
/// Under loom patience is always exhausted (see `Patience`).
#[cfg(loom)]
const FAIR_WAIT: Duration = Duration::ZERO;

/// How many acquisitions the queue head lets running threads make past it
/// before it asks for the lock to be handed to it (`HANDOFF`): a turn counted
/// in acquisitions, not in time, so two threads on CPUs of unequal speed (or
/// one slowed by its sibling hyperthread or by the hypervisor) get the same
/// number of acquisitions per turn. Long enough that the holder's burst keeps
/// its cache line hot for thousands of acquisitions; [`FAIR_WAIT`] bounds the
/// turn in time where critical sections are long.
#[cfg(not(loom))]
const TURN: u32 = 2048;
/// Under loom every turn is over at once (as patience is).
#[cfg(loom)]
const TURN: u32 = 0;
/// How often (in releases) an unlocker with a queue checks whether the head is
/// late, and yields its CPU if it is (module docs: late head). A power of two,
/// so the check on the unlock path is a mask.
#[cfg(not(loom))]
const LATE_YIELD: u32 = 256;

/// The queued spinlock (`struct qspinlock`), paravirtual flavour.
#[derive(Debug)]
#[repr(C, align(8))]
pub struct Queued {
    locked: AtomicU32,
    tail: AtomicU32,
    /// How many times the lock has been released, modulo 2^32: the queue
    /// head's measure of its turn ([`TURN`]). Written only by the holder,
    /// before its release store, so a plain load and store (no atomic
    /// read-modify-write) lose no count; read by the queue head.
    releases: AtomicU32,
    /// The value of `releases` at which the queue head's turn ends: set by
    /// the head when it starts waiting. An unlocker that finds the turn long
    /// over while the head has not claimed the lock (it is runnable but not
    /// running) yields its CPU to it now and then.
    turn_end: AtomicU32,
}

// SAFETY: `locked` goes 0→1 only through a CAS that saw 0, so one thread wins;
// it returns to 0 only by the holder's Release store, and every winning CAS is
// Acquire. The queue only decides who tries the CAS.
unsafe impl RawSpin for Queued {
    #[cfg(not(loom))]
    const INIT: Self = Queued {
        locked: AtomicU32::new(0),
        tail: AtomicU32::new(0),
        releases: AtomicU32::new(0),
        turn_end: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        Queued {
            locked: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            releases: AtomicU32::new(0),
            turn_end: AtomicU32::new(0),
        }
    }
    const NAME: &'static str = "queued";

    #[inline]
    fn lock(&self) {
        // Relaxed tail load: only a fairness hint (queue first if others wait);
        // the CAS decides. Acquire CAS: pairs with the Release store in `unlock`.
        // Acquire: pairs with the Release store in `unlock`. The queue is not
        // consulted: a running thread may take a free lock past sleeping
        // waiters; the head's `HANDOFF` (after `FAIR_WAIT`) bounds that.
        if self
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
        // Relaxed load and store: only the holder writes `releases`, and the
        // next holder's Acquire CAS makes this store visible to it; the queue
        // head reads it only as a count.
        let n = self.releases.load(Ordering::Relaxed);
        self.releases.store(n.wrapping_add(1), Ordering::Relaxed);
        // Release: pairs with the Acquire CAS of the next holder.
        self.locked.store(0, Ordering::Release);
        // Orders the store above before the load below, together with the
        // sleeper's heavy_barrier() between its SLEEPER store and its re-check
        // of `locked` (see `head_wait`).
        light_barrier();
        let t = self.tail.load(Ordering::Relaxed);
        if t != 0 {
            self.unlock_contended(t, n);
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
    const RAW: bool = true;
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

    /// Unlock with a queue: hand over or wake (`UNLOCK_SLOW`), or, when the
    /// head's turn is a whole [`TURN`] overdue (it has not run to claim the
    /// lock), give it our CPU once every [`LATE_YIELD`] releases.
    #[inline(always)]
    fn unlock_contended(&self, t: u32, n: u32) {
        if t & UNLOCK_SLOW != 0 {
            self.wake_head(t);
            return;
        }
        // A scheduling hint only, with no part in correctness: not modelled
        // under loom.
        #[cfg(not(loom))]
        if n.is_multiple_of(LATE_YIELD) {
            // Relaxed: a count; a stale value only moves when we yield.
            let late = n.wrapping_sub(self.turn_end.load(Ordering::Relaxed));
            if (TURN..u32::MAX / 2).contains(&late) {
                crate::arch::yield_now();
            }
        }
        #[cfg(loom)]
        let _ = n;
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
        if t & SLEEPER != 0 {
            crate::arch::futex::wake_one(&self.locked);
        }
    }

    #[cold]
    fn lock_slow(&self) {
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
        // Our patience and our predecessor's turn count from when it took the
        // lock (it set `since` and `turn` before handing over), or from now if
        // we queued first.
        let now = now_ns();
        let (since, turn) = if old & TAIL_MASK != 0 {
            (me.node.since_ns(now), me.node.turn.load(Ordering::Relaxed))
        } else {
            (now, self.releases.load(Ordering::Relaxed))
        };

        self.head_wait(since, turn);
        let acquired = now_ns();
        // Exact: we hold the lock, and only holders write `releases`.
        let acquired_at = self.releases.load(Ordering::Relaxed);

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
        let next = node::get(node::wait_for_next(me.node));
        // Relaxed: published by hand_over's Release swap.
        next.since.store(acquired as u32, Ordering::Relaxed);
        next.turn.store(acquired_at, Ordering::Relaxed);
        node::hand_over(next);
        node::free(&me);
    }

    /// The queue head's next poll interval: double the last one, from
    /// [`POLL_FIRST`] up to [`POLL_MAX`]; but once releases are under way
    /// (`passed` of them in `elapsed_ns`), no longer than the time the turn is
    /// expected to take to finish at that rate, so the head asks for the lock
    /// close to the turn's end instead of up to a whole [`POLL_MAX`] after it.
    #[inline]
    fn next_poll(interval: Duration, passed: u32, elapsed_ns: u64) -> Duration {
        let doubled = (interval * 2).min(POLL_MAX);
        if passed == 0 {
            return doubled;
        }
        let left = u64::from(TURN.saturating_sub(passed)) * elapsed_ns / u64::from(passed);
        doubled.min(Duration::from_nanos(left)).max(POLL_FIRST)
    }

    /// The queue head's wait for the lock word (`pv_wait_head_or_lock`), in
    /// three phases:
    ///
    /// 1. Poll with stealing open, for the holder's turn: [`TURN`] releases
    ///    from `start` (the count when our predecessor took the lock), or
    ///    [`FAIR_WAIT`] from `since` (the time it did), if that comes first.
    ///    The holder (and anyone running) keeps taking the lock with its
    ///    cache line hot, so two busy threads trade long bursts instead of one
    ///    cache-line transfer per acquisition. The polls back off exponentially (shortened near the
    ///    turn's expected end), so the holder pays a miss only every few
    ///    microseconds. A lock found free and idle since the previous poll
    ///    (no release in between) is taken; one that others are still taking
    ///    is left to them until the turn is over.
    /// 2. Set `HANDOFF`: from now on the unlocker gives the lock to us (`HANDED`)
    ///    instead of freeing it, so nobody can take it past us — every waiter's
    ///    wait is bounded by [`FAIR_WAIT`] plus one critical section per running
    ///    thread. Keep polling (snoozing) a while.
    /// 3. Set `SLEEPER` too and sleep on `locked` until an unlocker hands us the
    ///    lock and kicks us (a holder preempted or in a long critical section
    ///    does not make us burn our time slice).
    fn head_wait(&self, since: u64, start: u32) {
        let spin = Spin::new();
        let patience = Patience::since(since);
        // Relaxed: a count for unlockers' scheduling hint (`unlock_contended`).
        self.turn_end
            .store(start.wrapping_add(TURN), Ordering::Relaxed);
        // Relaxed: counts only; a stale value lengthens the turn by the
        // releases it missed.
        let mut seen = self.releases.load(Ordering::Relaxed);
        let mut interval = POLL_FIRST;
        loop {
            patience.relax_for(interval);
            if interval >= POLL_MAX {
                crate::arch::yield_now();
            }
            // Take the lock only if it has been idle since the last poll: a
            // free lock that others keep taking is theirs until the turn is
            // over, so every turn is the same number of acquisitions (a poll
            // that happens to land between two of the holder's acquisitions
            // would otherwise end its turn at a random length).
            let now = self.releases.load(Ordering::Relaxed);
            if now == seen && self.head_try_take() {
                return;
            }
            let passed = now.wrapping_sub(start);
            if passed >= TURN || patience.expired(FAIR_WAIT) {
                break;
            }
            seen = now;
            interval = Self::next_poll(interval, passed, now_ns().saturating_sub(since));
        }
        self.tail.fetch_or(HANDOFF, Ordering::Relaxed);
        spin.reset();
        loop {
            // Having the lock, `lock_slow` clears our flags as it leaves the
            // queue.
            if self.head_try_take() {
                return;
            }
            if spin.is_completed() {
                break;
            }
            spin.snooze();
        }
        self.tail.fetch_or(SLEEPER, Ordering::Relaxed);
        // Pairs with the unlocker's light_barrier(): either it sees SLEEPER
        // after its release store (and wakes us, having handed us the lock),
        // or we see its store of 0 here.
        heavy_barrier();
        loop {
            if self.head_try_take() {
                return;
            }
            // Sleeps only while `locked` is still LOCKED; any unlock after our
            // heavy barrier sees SLEEPER | HANDOFF, hands us the lock and wakes
            // us. A stealer that slipped in between an unlocker's store of 0
            // and its hand-off CAS sees HANDOFF at its own unlock.
            crate::arch::futex::wait(&self.locked, LOCKED, None);
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    /// The head's poll interval doubles from `POLL_FIRST` to `POLL_MAX` while
    /// no release has happened, and once releases are under way it is cut to
    /// the time the rest of the turn should take at the rate seen so far.
    #[test]
    fn next_poll_doubles_then_aims_at_the_turn_end() {
        let us = Duration::from_micros;
        assert_eq!(Queued::next_poll(POLL_FIRST, 0, 0), POLL_FIRST * 2);
        assert_eq!(Queued::next_poll(POLL_MAX, 0, 0), POLL_MAX);
        // Half the turn in 2 µs: the other half should take 2 µs more.
        assert_eq!(Queued::next_poll(us(2), TURN / 2, 2_000), us(2));
        // A quarter in 1 µs: 3 µs more, but doubling from 1 µs allows only 2.
        assert_eq!(Queued::next_poll(us(1), TURN / 4, 1_000), us(2));
        // Almost over: never below the first interval.
        assert_eq!(Queued::next_poll(us(8), TURN - 1, 8_000), POLL_FIRST);
        // Over: the first interval (the caller asks for the lock first).
        assert_eq!(Queued::next_poll(us(8), TURN + 5, 8_000), POLL_FIRST);
    }

    /// `releases`, updated by a plain load and store under the lock, counts
    /// every unlock exactly once, also through the queue and the hand-off:
    /// the turn the queue head measures loses no release.
    #[test]
    fn releases_count_every_unlock() {
        const THREADS: usize = 6;
        const ITERS: u32 = 20_000;
        let l = Arc::new(Queued::INIT);
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..ITERS {
                        l.lock();
                        // SAFETY: locked just above, on this thread.
                        unsafe { l.unlock() };
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(l.releases.load(Ordering::Relaxed), THREADS as u32 * ITERS);
        assert_eq!(l.tail.load(Ordering::Relaxed), 0);
        assert!(!l.is_locked());
    }

    /// A thread that queues behind a hog (which releases and at once retakes
    /// the lock, so the lock is never idle for a poll) still gets the lock:
    /// its turn comes after `TURN` releases or `FAIR_WAIT`, and the hog, if it
    /// keeps the CPU the waiter needs, yields it once the turn is overdue.
    /// Both threads are pinned to one CPU where the machine allows it, the
    /// case where only that yield lets the waiter run before the hog's time
    /// slice ends.
    #[test]
    fn waiter_gets_its_turn_from_a_hog() {
        let l = Arc::new(Queued::INIT);
        let done = Arc::new(AtomicBool::new(false));
        let hog_ops = Arc::new(AtomicU64::new(0));
        let pin = || {
            // Failure (CPU 0 not allowed) leaves the thread unpinned, which the
            // test tolerates.
            let _ = crate::arch::set_affinity(0);
        };
        let hog = {
            let (l, done, hog_ops) = (l.clone(), done.clone(), hog_ops.clone());
            std::thread::spawn(move || {
                pin();
                while !done.load(Ordering::Relaxed) {
                    l.lock();
                    hog_ops.fetch_add(1, Ordering::Relaxed);
                    // SAFETY: locked just above, on this thread.
                    unsafe { l.unlock() };
                }
            })
        };
        // Let the hog get going, then queue behind it.
        while hog_ops.load(Ordering::Relaxed) < 100_000 {
            std::thread::yield_now();
        }
        pin();
        for _ in 0..100 {
            l.lock();
            // SAFETY: locked just above, on this thread.
            unsafe { l.unlock() };
        }
        done.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        assert!(!l.is_locked());
        assert_eq!(l.tail.load(Ordering::Relaxed), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// Two threads: mutual exclusion through the fast path and the queue
    /// head's polls.
    #[test]
    fn loom_queued_mutual_exclusion() {
        super::super::loom_support::mutual_exclusion::<Queued>(2);
    }

    /// Three threads: a queue of two behind a holder. Under loom the head's
    /// patience is always exhausted and the spin budget is one round, so this
    /// reaches the node sleep (hand-over kick) and the head's phases 2 and 3
    /// (HANDOFF, SLEEPER, heavy/light barrier pair, futex kick); a lost
    /// wake-up shows as a deadlock. Checked by mutation: dropping the
    /// sleeper's `heavy_barrier()` makes this model deadlock. (Dropping the
    /// unlock's kick alone does not: the loom futex model wakes every sleeper
    /// on any kick, and the queue's hand-over kick stands in for it.)
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
