//! `struct mutex`: a sleeping lock with an owner, adaptive spinning and hand-off.
//!
//! [`Mutex<T>`] guards a `T`; [`Mutex::lock`] returns a [`MutexGuard`] that unlocks
//! on drop (`mutex_unlock`). Only the owner unlocks (guards are `!Send`), the mutex
//! is not recursive, and it may not be taken from interrupt context (SPEC §9).
//!
//! | kernel | ksync |
//! |---|---|
//! | `DEFINE_MUTEX(m)`, `mutex_init(&m)` | `static M: Mutex<T> = Mutex::new(v)`, [`Mutex::new`] |
//! | `mutex_lock` / `mutex_unlock` | [`Mutex::lock`] / drop of the [`MutexGuard`] ([`MutexGuard::unlock`]) |
//! | `mutex_trylock` | [`Mutex::try_lock`] |
//! | `mutex_lock_interruptible`, `mutex_lock_killable` | [`Mutex::lock_interruptible`], [`Mutex::lock_killable`] |
//! | `mutex_is_locked` | [`Mutex::is_locked`] |
//!
//! ```
//! use ksync::mutex::Mutex;
//!
//! static COUNT: Mutex<u64> = Mutex::new(0); // DEFINE_MUTEX
//!
//! std::thread::scope(|s| {
//!     for _ in 0..4 {
//!         s.spawn(|| {
//!             for _ in 0..1000 {
//!                 *COUNT.lock() += 1;
//!             }
//!         });
//!     }
//! });
//! assert_eq!(*COUNT.lock(), 4000);
//! ```
//!
//! # Implementation details
//!
//! The algorithm follows the kernel's `kernel/locking/mutex.c` (owner field,
//! optimistic spinning, `MUTEX_FLAG_WAITERS` and `MUTEX_FLAG_HANDOFF`), with the
//! fast paths of std's futex mutex (`library/std/src/sys/sync/mutex/futex.rs`)
//! and the spin-then-park shape of parking_lot's `raw_mutex.rs`. What differs is
//! the unlock: std and parking_lot unlock with a second atomic RMW (a swap or
//! CAS), so that the unlocker learns about sleepers; here unlock is a plain
//! release store, and the sleeper pays for the ordering with a membarrier.
//!
//! Two words, one cache line:
//!
//! | `owner`      | meaning |
//! |--------------|---------|
//! | `0`          | unlocked |
//! | `tid`        | locked by the thread with that kernel thread id |
//!
//! | `flags` bit   | meaning | set / cleared |
//! |---------------|---------|---------------|
//! | `HAS_WAITERS` | the wait list is not empty | under the list lock, when the list becomes non-empty / empty |
//! | `HANDOFF`     | the first waiter has asked for hand-off (its turn is over, or it has waited too long): the next unlock passes the lock straight to it | stored with `HAS_WAITERS` after every change of the list, under the list lock: set exactly while the first waiter's `handoff` flag is |
//!
//! The wait list is `sched::waitlist` (the wait engine every sleeping primitive
//! shares) in its plain form: FIFO entries on the sleepers' stacks, each tagged
//! with its owner's tid, under a small internal lock that is held only for a
//! few pointer updates (the kernel's `wait_lock` and `wait_list`).
//!
//! Transitions of `owner`: `0 → tid` by a CAS (lock, trylock, a waiter's retry);
//! `tid → 0` by the owner's release store (unlock); `tid → tid'` by the owner
//! under the list lock (hand-off to waiter `tid'`); `0 → tid'` by a CAS of an
//! unlocker that raced with a hand-off request (see below).
//!
//! A third word, `spinners`, counts the contenders that are awake and polling
//! the lock: newcomers in their optimistic spin, and waiters an unlocker has
//! just woken (the unlocker counts them, before they run). A fourth,
//! `releases`, counts unlocks (written only by the owner, with a plain load
//! and store before its release store): the clock of a contender's turn.
//!
//! **Lock** is one CAS `0 → tid` (Acquire, pairing with the Release store of the
//! previous unlock). On failure the slow path spins for one *turn*: it counts
//! itself in `spinners` and polls the lock at intervals that double from 1 to
//! 8 µs (yielding its CPU at the longest), while no hand-off to someone else is
//! pending. Rare polls let a busy owner run bursts of acquisitions with its
//! cache line hot, and two busy threads trade the lock every turn instead of on
//! every acquisition (parking_lot's speed comes from the same barging). A poll
//! takes a free lock only if no release happened since the previous poll: a
//! lock the running threads keep taking is theirs until the turn is over —
//! `TURN` (2048) releases, counted in `releases`, as the queued spinlock
//! counts its turns, or 50 µs (`SPIN_TIME`) for long critical sections (user
//! space cannot see whether the owner is on a CPU, as the kernel's
//! `mutex_spin_on_owner` does; 50 µs is longer than the 15–25 µs a futex
//! wake-up costs in this VM). Counted in acquisitions, turns are the same
//! length for threads on CPUs of unequal speed; in time (before), two threads
//! got 0.77 of each other's acquisitions. The exception is an owner that
//! releases slowly: at most one release per 250 ns (`SLOW_RELEASE_NS`)
//! between two of the contender's looks. Such an owner works outside the
//! lock between its sections, so the contender polls every pause, takes the
//! lock whenever it finds it free, and runs its own section beside the
//! owner's other work, as parking_lot's spinners do. For the count to be
//! what ends the turn, the contender must look soon after the `TURN`th
//! release, not up to a poll interval (8 µs, thousands of releases) later:
//! once it has seen the owner make releases, it polls next when the turn
//! should be over at the rate seen so far (no sooner than 125 ns, no later
//! than 8 µs away). With doubling intervals alone, the turn's overshoot was
//! a time, so a faster owner still got more per turn. At the end of its
//! turn the contender uncounts itself and queues a waiter entry on its
//! stack; if it is first, it asks for hand-off (`HANDOFF`) and polls a while longer for it, which the
//! owner's next unlock makes without any sleep or wake-up; otherwise (or if
//! none comes) it sleeps in [`sched::sleep`](crate::sched::sleep). Only the
//! first waiter asks: were every waiter to carry its request into the queue,
//! each unlock would hand the lock to the next sleeper, a wake-up per
//! acquisition. The
//! unlocker that wakes a waiter unlinks it (as parking_lot does) and counts it
//! as a spinner; while it gets going, later unlocks wake nobody. The woken
//! waiter spins for a turn, counted from its wake-up: the unlocker passes
//! the release count in the wake-up's grant, so the releases the owner makes
//! while the waiter gets going are part of the turn. (Counted from the
//! waiter's first look, the owner's visit lasted a turn plus however long the
//! wake-up took, thousands of acquisitions at 20 µs, and wake-ups vary.) If
//! the woken waiter loses to a newcomer it goes back to the
//! *front* of the list (keeping its place, as the kernel's first waiter does),
//! asking for hand-off if its turn ran out (or it has waited more than
//! [`HANDOFF_AFTER`] in all, or been woken [`HANDOFF_WAKEUPS`] times in vain).
//! While the lock changes hands, a sleeper looks at it every
//! [`HANDOFF_AFTER`]: it takes the lock if it finds it free, and asks for
//! hand-off if it is first (with 8 threads on 2 CPUs these looks are much of
//! what shares the lock evenly over short times). Once the lock has not
//! changed hands for a whole period (its owner holds it), the sleeper sleeps
//! until woken, so a waiter behind a lock held for long costs nothing. Such
//! an untimed sleeper is timed by others once it is first: an unlock leaves
//! the sleepers asleep only while a contender is awake, and an awake
//! contender that sees that an untimed first waiter has been first for
//! [`HANDOFF_AFTER`] (the list notes the time whenever its front changes)
//! asks for hand-off on its behalf: it queues behind it, or, if it has just
//! taken the lock, hands it over at its unlock. (A first waiter with a timer
//! asks for itself, and contenders leave it to do so.)
//!
//! **Unlock** (the owner):
//! 1. load `flags`; if `HANDOFF` is set, hand the lock to the first waiter
//!    (`owner = its tid` under the list lock, unlink it, mark it `HANDED` — the
//!    wait engine's hand-off payload — and wake it) —
//!    the lock is never free, so nobody can steal it;
//! 2. otherwise `owner.store(0, Release)`, then [`light_barrier`], then load
//!    `flags` (and `spinners`); if there are waiters and no awake contender (or
//!    `HANDOFF` was set meanwhile), take the list lock and unlink, count and wake
//!    the first waiter — unless someone has taken the lock meanwhile (their
//!    unlock will) — or, if `HANDOFF` was set meanwhile, CAS `0 → its tid` and
//!    hand off (if a newcomer stole the lock in that window, the newcomer's own
//!    unlock hands off in step 1).
//!
//! **Why no wake-up is lost.** Step 2 is a store followed by a load: without a
//! fence the CPU may perform the load first, see no waiters, and skip the wake
//! while a sleeper sets `HAS_WAITERS`, sees the lock still held and goes to sleep.
//! The sleeper side does: set `HAS_WAITERS` (when the list becomes non-empty),
//! then [`heavy_barrier`] (membarrier:
//! every running thread of the process executes a full barrier), then retries
//! the lock, and only sleeps if it sees it held. The pair acts as a SeqCst fence
//! on both sides (it is the store-buffering pattern `SB` with a fence on each
//! side), so either the unlocker's load sees `HAS_WAITERS` and wakes the first
//! waiter, or the sleeper's retry sees `owner == 0` and takes the lock. A waiter
//! that joins a non-empty list does not need its own membarrier: `HAS_WAITERS`
//! has been set continuously since the waiter that set it did its barrier and
//! will, before it sleeps, either take the lock or see it held by an owner whose
//! unlock comes after that barrier and therefore sees the bit; either way the
//! next unlock wakes the first waiter, and every waiter that takes the lock and
//! unlocks with others still queued wakes the next. The spinner count is the
//! same pattern: an unlocker that saw a contender counted skips its wake-up, so
//! every contender that stops counting without the lock (to sleep, or to leave
//! on a signal) issues [`heavy_barrier`] before its last look at the lock —
//! either that look sees the lock free, or the unlocker saw the count drop. A
//! look that finds the lock free while `HANDOFF` is set (the unlocker left it
//! to us, and the first waiter may be asleep) hands it to the first waiter
//! itself (CAS `0 → its tid` under the list lock), as `unlock_slow` would.
//! Where membarrier is missing (or under loom) both barriers are
//! `fence(SeqCst)`, the textbook `SB` fix; the fast path then costs a full
//! fence instead of a compiler barrier.
//!
//! A waiter interrupted by a signal (or SIGKILL for the killable form) unlinks
//! itself (or finds that an unlocker did), stores the flags of the list left,
//! and if the lock is free and others still wait, hands it to the new first
//! waiter if that one asked for hand-off, or else wakes it if nobody is awake,
//! so a wake-up it absorbed is passed on. If a hand-off reached it first, it owns
//! the lock and returns `Ok`.
//!
//! **Misuse** is reported cheaply on the slow path: a thread that tries to lock a
//! mutex it owns panics ("recursive locking") instead of hanging, locking from
//! interrupt context panics, and [`RawMutex::unlock`] by a thread that is not the
//! owner panics naming the owner's tid.

use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::backoff::{POLL_FIRST, POLL_MAX, Patience, Spin, now_ns};
use crate::ctx::current_id;
use crate::error::Result;
use crate::lock::{Backend, Guard, Lock, SleepingBackend};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use crate::sched::TaskState;
use crate::sched::waitlist::{Detached, FrontClock, Locked, Plain, WaitList, Waiter};
use core::fmt;
use core::time::Duration;

const UNLOCKED: u32 = 0;
const HAS_WAITERS: u32 = 1;
const HANDOFF: u32 = 2;
/// The grant (`sched::waitlist`'s hand-off payload) that marks a waiter the
/// lock was handed to: `owner` holds its id already.
const HANDED: u32 = 2;
/// The low bits of the grant that marks a waiter woken to compete for the
/// lock (not handed it); the bits above carry `releases` at the wake-up,
/// where the waiter's turn starts.
const WOKE: u32 = 3;
/// Turns are counted modulo 2^30, the width of the count a `WOKE` grant carries.
const WOKE_MASK: u32 = u32::MAX >> 2;

/// The grant of a waiter woken when `releases` read `releases` (its low 30 bits).
#[inline]
fn woke_grant(releases: u32) -> u32 {
    releases << 2 | WOKE
}

/// How many releases a turn that started at `start` (30 bits: a `WOKE`
/// grant's count, or `releases` masked) has seen when `releases` reads `now`.
#[inline]
fn turn_done(now: u32, start: u32) -> u32 {
    now.wrapping_sub(start) & WOKE_MASK
}

/// How long an awake contender (a newcomer whose CAS failed, or a waiter just
/// woken) polls the lock before it goes to sleep: longer than a futex wake-up
/// costs in this VM (15–25 µs), so a contender that would get the lock soon
/// does not pay for sleeping.
#[cfg(not(loom))]
const SPIN_TIME: Duration = Duration::from_micros(50);
/// Under loom patience is always exhausted (one poll).
#[cfg(loom)]
const SPIN_TIME: Duration = Duration::ZERO;

/// How long a waiter waits before it asks for hand-off: the starvation
/// bound. A sleeper looks at the lock this often while the lock changes
/// hands (module docs) and asks if it is first; an untimed sleeper that has
/// been first this long is asked for by the awake contender that sees it.
/// (Unlock does not wake sleepers while a contender is awake, so without a
/// request a sleeper could wait for ever behind threads that keep trading
/// the lock.) A waiter that loses to a newcomer after waiting this long in
/// all asks for itself when it requeues. With 8 threads on 2 CPUs the
/// sleepers take their turns at about one per this bound, so it
/// also sets how evenly the threads share the lock over short times: at
/// 500 µs the bench's 8-thread fairness (fewest over most acquisitions per
/// thread) was a median 0.69 over seven quiet rounds, 0.58 at 1 ms.
pub const HANDOFF_AFTER: Duration = Duration::from_micros(500);

/// A waiter woken this many times without getting the lock asks for hand-off.
pub const HANDOFF_WAKEUPS: u32 = if cfg!(loom) { 1 } else { 8 };

/// How many releases an awake contender lets the running threads make past
/// it before it asks for the lock to be handed to it: a turn counted in
/// acquisitions, as the queued spinlock's, so that threads on CPUs of unequal
/// speed get equal shares (with turns in time, two threads got 0.77 of each
/// other's acquisitions). Long enough that the owner's burst keeps its cache
/// line hot; [`SPIN_TIME`] bounds the turn in time where critical sections are
/// long.
#[cfg(not(loom))]
const TURN: u32 = 2048;
/// Under loom every turn is over at once (as patience is).
#[cfg(loom)]
const TURN: u32 = 0;

/// The shortest poll interval of a contender near the end of its turn: a
/// running owner makes about 40 releases in it, so a turn ends within 2 % of
/// [`TURN`] releases.
#[cfg(not(loom))]
const POLL_NEAR: Duration = Duration::from_nanos(125);
#[cfg(loom)]
const POLL_NEAR: Duration = Duration::ZERO;

/// The release rate below which a contender takes a free lock whenever it
/// sees one, turn or no turn: one release per this many ns, on average,
/// between two of the contender's looks. A running thread that re-takes the lock in
/// a tight loop releases every few ns, and its turn keeps its cache line hot.
/// One that releases this rarely spends most of the time outside the lock, so
/// the lock would sit free while the contender waits for its turn; taking it
/// then runs the contender's section beside the owner's other work. In the
/// bench's "contended, with work" rows (20 pauses inside the lock and 20
/// outside) this took the mutex from 0.7–1.0 to 1.4–1.7 M acquisitions/s at
/// 2 and 8 threads (0.43–0.62× to 0.83–1.08× the best peer, std's futex
/// mutex) on the 2-vCPU VM it was tuned on; the tight-loop rows did not move.
/// The rate is measured between two looks, not since the spin began, so an
/// owner that was descheduled and then runs its bursts again is not slow.
/// A thread remembers the mutex it last found slow ([`slow_hint`]), so that
/// its next spin there takes the first free window instead of relearning the
/// rate. (Under loom patience reads no clock: no owner is ever slow there.)
const SLOW_RELEASE_NS: u64 = 250;

/// How many polls (of one pause each) a contender of a slowly releasing
/// owner makes between two yields of its CPU.
const SLOW_YIELD_EVERY: u32 = 1024;
/// How many polls of a held lock between two full looks (which read the
/// clock) of such a contender.
const SLOW_LOOK_EVERY: u32 = 64;

#[cfg(not(loom))]
std::thread_local! {
    /// The mutex whose owner this thread last found releasing slowly
    /// ([`SLOW_RELEASE_NS`]), as an address (0: none): its next spin on that
    /// mutex polls closely from the start, instead of relearning the rate
    /// while the lock sits free. Only a hint; const-initialised.
    static SLOW_HINT: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// Whether this thread's last spin on `m` found its owner slow.
#[inline]
fn slow_hint(m: &RawMutex) -> bool {
    #[cfg(not(loom))]
    return SLOW_HINT.try_with(|h| h.get() == m as *const RawMutex as usize) == Ok(true);
    #[cfg(loom)]
    {
        let _ = m;
        false
    }
}

/// Records whether this spin on `m` found its owner slow.
#[inline]
fn set_slow_hint(m: &RawMutex, slow: bool) {
    #[cfg(not(loom))]
    {
        let addr = m as *const RawMutex as usize;
        let _ = SLOW_HINT.try_with(|h| {
            if slow {
                h.set(addr);
            } else if h.get() == addr {
                h.set(0);
            }
        });
    }
    #[cfg(loom)]
    let _ = (m, slow);
}

/// When a contender should look next: after the time the owner needs for
/// `left` more releases, at the rate it made `done` of them in `elapsed_ns`,
/// clamped to [`POLL_NEAR`]..=[`POLL_MAX`]. `done` is not 0.
fn until_turn_end(left: u32, done: u32, elapsed_ns: u64) -> Duration {
    let ns = u64::from(left).saturating_mul(elapsed_ns) / u64::from(done);
    Duration::from_nanos(ns).clamp(POLL_NEAR, POLL_MAX)
}

/// Why an awake contender stopped polling without the lock.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spun {
    /// Took the lock.
    Got,
    /// Its turn is over ([`TURN`] releases or [`SPIN_TIME`]): it asks for
    /// hand-off.
    TurnOver,
    /// A hand-off to another waiter is pending: it queues (or requeues) and
    /// waits.
    Yielded,
}

/// The raw mutex: the lock word, the wait list and the lockdep map, without data.
///
/// [`Mutex<T>`] is this plus a `T`. Use the raw type where the protected data is
/// not a Rust value (e.g. a lock protecting an external resource); its
/// [`unlock`](RawMutex::unlock) is `unsafe` and checks the owner.
pub struct RawMutex {
    /// `0` or the owner's tid (see the module docs).
    owner: AtomicU32,
    /// `HAS_WAITERS | HANDOFF`; written only with `waiters`' lock held.
    flags: AtomicU32,
    /// How many contenders are awake and polling the lock (spinning newcomers,
    /// and waiters woken by an unlocker, counted by it): while one is, unlock
    /// wakes nobody — one of them takes the lock.
    spinners: AtomicU32,
    /// How many times the mutex has been released, modulo 2^32: the clock an
    /// awake contender's turn is measured in ([`TURN`]). Written only by the
    /// owner, before its release store, so a plain load and store (no atomic
    /// read-modify-write) lose no count; read by contenders as a count.
    releases: AtomicU32,
    /// When the wait list's first entry became first, if it sleeps untimed:
    /// awake contenders ask for hand-off on its behalf once it has waited
    /// [`HANDOFF_AFTER`] there.
    front_clock: FrontClock,
    /// The sleepers, FIFO.
    waiters: WaitList<Plain>,
    dep_map: LockdepMap,
}

impl RawMutex {
    /// An unlocked mutex whose lockdep class is the caller's location.
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new() -> RawMutex {
        RawMutex {
            owner: AtomicU32::new(UNLOCKED),
            flags: AtomicU32::new(0),
            spinners: AtomicU32::new(0),
            releases: AtomicU32::new(0),
            front_clock: FrontClock::new(HANDOFF_AFTER),
            waiters: WaitList::new(),
            dep_map: LockdepMap::new_sleeping("mutex"),
        }
    }

    /// An unlocked mutex whose lockdep class is `key`, named `name`
    /// (`__mutex_init(lock, name, key)`, `lockdep_set_class`): mutexes made at
    /// several places share one class.
    #[cfg(not(loom))]
    #[doc(alias = "__mutex_init")]
    #[track_caller]
    pub const fn with_class(name: &'static str, key: &'static lockdep::LockClassKey) -> RawMutex {
        RawMutex {
            owner: AtomicU32::new(UNLOCKED),
            flags: AtomicU32::new(0),
            spinners: AtomicU32::new(0),
            releases: AtomicU32::new(0),
            front_clock: FrontClock::new(HANDOFF_AFTER),
            waiters: WaitList::new(),
            dep_map: LockdepMap::with_key(name, key).sleeping(),
        }
    }

    /// An unlocked mutex (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new() -> RawMutex {
        RawMutex {
            owner: AtomicU32::new(UNLOCKED),
            flags: AtomicU32::new(0),
            spinners: AtomicU32::new(0),
            releases: AtomicU32::new(0),
            front_clock: FrontClock::new(HANDOFF_AFTER),
            waiters: WaitList::new(),
            dep_map: LockdepMap::new_sleeping("mutex"),
        }
    }

    /// Whether the mutex is held by anyone (`mutex_is_locked`). A snapshot.
    #[doc(alias = "mutex_is_locked")]
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.owner.load(Ordering::Relaxed) != UNLOCKED
    }

    /// The owner's thread id, if locked. A snapshot, for diagnostics.
    #[inline]
    pub fn owner(&self) -> Option<i32> {
        match self.owner.load(Ordering::Relaxed) {
            UNLOCKED => None,
            t => Some(t as i32),
        }
    }

    /// Whether the calling thread holds the mutex.
    #[inline]
    #[doc(alias = "mutex_owned")] // Solaris
    pub fn is_owned_by_current(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == current_id()
    }

    #[inline]
    fn try_acquire(&self, me: u32) -> bool {
        // Acquire pairs with the Release store (or hand-off store) of the previous
        // unlock: its critical section happens before ours.
        self.owner
            .compare_exchange(UNLOCKED, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the mutex, sleeping uninterruptibly while it is held (`mutex_lock`).
    ///
    /// # Panics
    /// If the caller already holds it (recursive locking), or in interrupt context.
    #[doc(alias = "mutex_lock")]
    #[inline]
    pub fn lock(&self) {
        self.lock_nested(0);
    }

    /// [`lock`](Self::lock) with a lockdep subclass (`mutex_lock_nested`): for
    /// taking two mutexes of one lock class nested (a parent's, then a child's),
    /// which lockdep would otherwise report as recursive locking. `subclass` is
    /// the nesting level (0 is plain `lock`); without the `lockdep` feature it is
    /// ignored.
    ///
    /// # Panics
    /// As [`lock`](Self::lock).
    #[doc(alias = "mutex_lock_nested")]
    #[inline]
    pub fn lock_nested(&self, subclass: u32) {
        // Before waiting (the kernel's mutex_acquire_nested + LOCK_CONTENDED), so
        // recursion and inversions are reported before the thread hangs. The map
        // is a sleeping one: lockdep also reports this acquisition in atomic
        // context, as mutex_lock's might_sleep() does, even when uncontended.
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, false, subclass);
        let r = self.acquire(TaskState::Uninterruptible);
        debug_assert!(r.is_ok());
        lockdep::lock_acquired(&self.dep_map);
    }

    /// The acquire without lockdep (the caller records it): the fast path, one
    /// CAS, then the slow path in `state`. `Err` only for an interruptible or
    /// killable `state`, with the mutex not taken.
    #[inline]
    pub(crate) fn acquire(&self, state: TaskState) -> Result<()> {
        if self.try_acquire(current_id()) {
            return Ok(());
        }
        self.lock_slow(state, true)
    }

    /// [`acquire`](Self::acquire) for a lock held while its holder waits on
    /// something else (the rw-semaphore's queue): its holder releases rarely
    /// because it waits, not because it works beside the lock, so contenders
    /// keep to their turns and never take the slow-owner path.
    pub(crate) fn acquire_queue(&self, state: TaskState) -> Result<()> {
        if self.try_acquire(current_id()) {
            return Ok(());
        }
        self.lock_slow(state, false)
    }

    /// Takes the mutex, or returns [`Error::Interrupted`](crate::Error::Interrupted)
    /// (`-EINTR`) if a signal arrives while it sleeps — [`Error::Killed`](crate::Error::Killed)
    /// for SIGKILL — leaving the mutex untouched (`mutex_lock_interruptible`).
    ///
    /// # Errors
    /// [`Error::Interrupted`](crate::Error::Interrupted), [`Error::Killed`](crate::Error::Killed).
    #[doc(alias = "mutex_lock_interruptible")]
    #[inline]
    pub fn lock_interruptible(&self) -> Result<()> {
        self.lock_state(TaskState::Interruptible, 0)
    }

    /// Takes the mutex, or returns [`Error::Killed`](crate::Error::Killed) if SIGKILL
    /// arrives while it sleeps (`mutex_lock_killable`).
    ///
    /// # Errors
    /// [`Error::Killed`](crate::Error::Killed).
    #[doc(alias = "mutex_lock_killable")]
    #[inline]
    pub fn lock_killable(&self) -> Result<()> {
        self.lock_state(TaskState::Killable, 0)
    }

    #[inline]
    fn lock_state(&self, state: TaskState, subclass: u32) -> Result<()> {
        lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, false, subclass);
        let r = self.acquire(state);
        if r.is_err() {
            // Interrupted or killed: the mutex is not ours, undo the acquire.
            lockdep::release(&self.dep_map);
        } else {
            lockdep::lock_acquired(&self.dep_map);
        }
        r
    }

    /// [`lock_interruptible`](Self::lock_interruptible) with a lockdep subclass
    /// (`mutex_lock_interruptible_nested`); see [`lock_nested`](Self::lock_nested).
    ///
    /// # Errors
    /// As [`lock_interruptible`](Self::lock_interruptible).
    #[doc(alias = "mutex_lock_interruptible_nested")]
    #[inline]
    pub fn lock_interruptible_nested(&self, subclass: u32) -> Result<()> {
        self.lock_state(TaskState::Interruptible, subclass)
    }

    /// [`lock_killable`](Self::lock_killable) with a lockdep subclass
    /// (`mutex_lock_killable_nested`); see [`lock_nested`](Self::lock_nested).
    ///
    /// # Errors
    /// As [`lock_killable`](Self::lock_killable).
    #[doc(alias = "mutex_lock_killable_nested")]
    #[inline]
    pub fn lock_killable_nested(&self, subclass: u32) -> Result<()> {
        self.lock_state(TaskState::Killable, subclass)
    }

    /// Takes the mutex if it is free, without sleeping (`mutex_trylock`; the
    /// kernel returns 1 on success, this returns `true`).
    #[doc(alias = "mutex_trylock")]
    #[inline]
    pub fn try_lock(&self) -> bool {
        // A pending hand-off keeps the owner word non-zero, so a trylock cannot
        // steal a handed-off lock.
        let ok = self.try_acquire(current_id());
        if ok {
            lockdep::acquire(&self.dep_map, AcquireKind::Exclusive, true, 0);
            lockdep::lock_acquired(&self.dep_map);
        }
        ok
    }

    /// Releases the mutex (`mutex_unlock`).
    ///
    /// # Safety
    /// The caller must hold the mutex, and nothing may use the data it protects
    /// (e.g. through a guard that was forgotten) after this call.
    ///
    /// # Panics
    /// If the calling thread is not the owner: "unlock by a non-owner" (SPEC §17),
    /// naming the owner.
    #[doc(alias = "mutex_unlock")]
    #[inline]
    pub unsafe fn unlock(&self) {
        let me = current_id();
        let o = self.owner.load(Ordering::Relaxed);
        if o != me {
            self.bad_unlock(o, me);
        }
        // SAFETY: checked just above that we own it; the rest is the caller's promise.
        unsafe { self.unlock_owned() }
    }

    #[cold]
    #[inline(never)]
    fn bad_unlock(&self, owner: u32, me: u32) -> ! {
        // lockdep's "bad unlock balance" report first (this thread does not hold
        // the map), as the kernel's mutex_release does; the mutex is left as is.
        lockdep::release(&self.dep_map);
        if owner == UNLOCKED {
            panic!("mutex_unlock: unlock of an unlocked mutex by tid {me}");
        }
        panic!("mutex_unlock: unlock by tid {me}, which is not the owner (tid {owner})");
    }

    /// Releases the mutex, which the caller owns (no owner check).
    ///
    /// # Safety
    /// The caller owns the mutex.
    #[inline]
    unsafe fn unlock_owned(&self) {
        lockdep::release(&self.dep_map);
        // SAFETY: the caller owns the mutex.
        unsafe { self.release() }
    }

    /// The release without lockdep (the caller records it), no owner check.
    ///
    /// # Safety
    /// The caller owns the mutex.
    #[inline]
    unsafe fn release(&self) {
        // Relaxed load and store: only the owner writes `releases`, and the next
        // owner's Acquire (CAS or hand-off mark) makes this store visible to it;
        // contenders read it only as a count.
        let n = self.releases.load(Ordering::Relaxed);
        self.releases.store(n.wrapping_add(1), Ordering::Relaxed);
        // Step 1: a pending hand-off request (Relaxed: it only decides between two
        // correct paths; step 2 re-checks after the fence).
        if self.flags.load(Ordering::Relaxed) & HANDOFF != 0 {
            self.unlock_handoff();
            return;
        }
        // Step 2. Release pairs with the Acquire CAS of the next locker.
        self.owner.store(UNLOCKED, Ordering::Release);
        // Orders the store above before the load below, together with the
        // sleeper's `heavy_barrier` (see "Why no wake-up is lost").
        light_barrier();
        let f = self.flags.load(Ordering::Relaxed);
        // Waiters, but an awake contender will take the lock: nothing to do.
        // (Relaxed: ordered by the barrier pair, see "Why no wake-up is lost".)
        if f != 0 && (f & HANDOFF != 0 || self.spinners.load(Ordering::Relaxed) == 0) {
            self.unlock_slow();
        }
    }

    /// Unlock with `HANDOFF` seen before releasing: pass the lock to the first
    /// waiter without ever freeing it.
    #[cold]
    fn unlock_handoff(&self) {
        let mut woken = Detached::empty();
        {
            let q = self.waiters.lock();
            match q.front() {
                Some(first) if self.flags.load(Ordering::Relaxed) & HANDOFF != 0 => {
                    // Release: our critical section happens before the new owner's
                    // (it reads its entry's mark with Acquire after this store; the
                    // mark is stored with Release in `Detached::wake`).
                    self.owner.store(first.tag, Ordering::Release);
                    self.pop_first(&q, &mut woken, false);
                }
                _ => {
                    // The requester left (signal) in between: an ordinary unlock.
                    // With the list lock held, the list is what we see: free the
                    // lock and wake the first waiter, if any.
                    self.owner.store(UNLOCKED, Ordering::Release);
                    self.pop_first(&q, &mut woken, true);
                }
            }
        }
        woken.wake();
    }

    /// The flags that describe the list (under its lock): `HAS_WAITERS` if it
    /// is non-empty, `HANDOFF` if its first waiter asked for hand-off. Every
    /// change of the list stores them, so `HANDOFF` always belongs to the
    /// waiter the next hand-off reaches.
    fn flags_of(q: &Locked<'_, Plain>) -> u32 {
        match q.front() {
            None => 0,
            Some(w) if w.handoff.get() => HAS_WAITERS | HANDOFF,
            Some(_) => HAS_WAITERS,
        }
    }

    /// Unlinks the first waiter (if any) into `woken` — to be woken (`wake`:
    /// counted in `spinners` on its behalf, before it can run, so later unlocks
    /// wake nobody else; it uncounts itself when it stops polling), or handed
    /// the lock — and stores the flags of the list left (`flags_of`: the new
    /// first waiter may have asked for hand-off already).
    fn pop_first(&self, q: &Locked<'_, Plain>, woken: &mut Detached, wake: bool) {
        if let Some(first) = q.front() {
            if wake {
                self.spinners.fetch_add(1, Ordering::Relaxed);
                let now = self.releases.load(Ordering::Relaxed);
                q.hand_off(first, woke_grant(now), woken);
            } else {
                q.hand_off(first, HANDED, woken);
            }
        }
        self.publish(q);
    }

    /// Under the list lock, with `HANDOFF` set: if the lock is free, takes it
    /// for the first waiter (CAS `0 → its tid`) and hands it over. If someone
    /// holds it, their unlock hands off (step 1, or step 2 and `unlock_slow`).
    fn hand_free_lock(&self, q: &Locked<'_, Plain>, woken: &mut Detached) {
        let Some(first) = q.front() else { return };
        // AcqRel: Acquire takes in the critical section of a thief that
        // stole and released in the window; Release passes ours on.
        if self
            .owner
            .compare_exchange(UNLOCKED, first.tag, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.pop_first(q, woken, false);
        }
    }

    /// Unlock found waiters after releasing: wake the first (unlinking it, so
    /// later unlocks stay on the fast path until it queues again), or hand off
    /// if it asked in the meantime.
    #[cold]
    fn unlock_slow(&self) {
        let mut woken = Detached::empty();
        {
            let q = self.waiters.lock();
            if q.is_empty() {
                return;
            }
            if self.flags.load(Ordering::Relaxed) & HANDOFF != 0 {
                // Stolen in the window? Then the thief's unlock sees HANDOFF.
                self.hand_free_lock(&q, &mut woken);
            } else if self.owner.load(Ordering::Relaxed) != UNLOCKED
                || self.spinners.load(Ordering::Relaxed) != 0
            {
                // Someone took it already (their unlock will wake the first
                // waiter), or an awake contender will.
                return;
            } else {
                self.pop_first(&q, &mut woken, true);
            }
        }
        woken.wake();
    }

    /// The contended acquire: misuse checks, optimistic spin, then sleep.
    #[cold]
    fn lock_slow(&self, state: TaskState, eager: bool) -> Result<()> {
        let me = current_id();
        if self.owner.load(Ordering::Relaxed) == me {
            // Refused: undo the caller's lockdep acquire (which reported it), so
            // the held-lock stack stays balanced for whoever catches the panic.
            lockdep::release(&self.dep_map);
            panic!(
                "mutex_lock: recursive locking: tid {me} already holds this mutex (it would deadlock)"
            );
        }
        if crate::ctx::in_interrupt() {
            lockdep::release(&self.dep_map);
            panic!("mutex_lock: a mutex may not be taken in interrupt context (it can sleep)");
        }
        // Lock statistics: the fast CAS failed, this acquisition waits
        // (spinning first, then perhaps sleeping).
        lockdep::lock_contended(&self.dep_map);
        let spun = self.spin(me, None, eager);
        if spun == Spun::Got {
            return Ok(());
        }
        // Report a sleep in atomic context before we are on the list.
        lockdep::might_sleep();
        self.lock_queued(me, state, spun == Spun::TurnOver, eager)
    }

    /// Optimistic spinning, for one turn: polls the lock at intervals that
    /// double from [`POLL_FIRST`] to [`POLL_MAX`] (yielding at the longest),
    /// CAS only when it can succeed, and not while a hand-off to a waiter is
    /// pending. A lock found free is taken only if no release happened since
    /// the previous poll (or at the first look of a waiter just woken because
    /// the lock is free): a free lock that the running threads keep taking is
    /// theirs until our turn is over — [`TURN`] releases, or [`SPIN_TIME`] —
    /// so every turn is the same number of acquisitions, not however many
    /// fall before a poll that happens to land between two of them. Unless
    /// the owner releases slowly ([`SLOW_RELEASE_NS`]; not for `eager ==
    /// false`, the rw-semaphore's queue): then we poll every pause and take
    /// the lock whenever it is free.
    ///
    /// Counted in `spinners` meanwhile (`woken`: an unlocker that woke us
    /// counted us already); uncounted on return. A caller that then sleeps
    /// must issue `heavy_barrier` before its last look at the lock (an
    /// unlocker that saw us counted skipped its wake-up).
    fn spin(&self, me: u32, woken_at: Option<u32>, eager: bool) -> Spun {
        let woken = woken_at.is_some();
        if !woken {
            self.spinners.fetch_add(1, Ordering::Relaxed);
        }
        let patience = Patience::start();
        let mut interval = POLL_FIRST;
        // Relaxed: a count; a stale value only moves the turn's end.
        let base = self.releases.load(Ordering::Relaxed);
        // Where the turn started: for a woken waiter, at the wake-up (the
        // releases the owner makes while the waiter gets going are part of
        // the turn); for a newcomer, now.
        let start = woken_at.unwrap_or(base & WOKE_MASK);
        // A woken waiter was woken because the lock is free: look at once, and
        // take it if it is still free. A newcomer's CAS just failed: give the
        // owner its burst first.
        let mut seen = if woken { None } else { Some(start) };
        let mut look = woken;
        let mut slow = false;
        // Slow at our previous spin on this mutex: poll closely until the
        // first look (which measures the rate afresh).
        let mut close = eager && slow_hint(self);
        // When the previous look that saw releases happened (ns into the spin).
        let mut last_look = 0u64;
        let mut polls = 0u32;
        let spun = loop {
            if look {
                let f = self.flags.load(Ordering::Relaxed);
                if f & HANDOFF != 0 {
                    break Spun::Yielded;
                }
                let now = self.releases.load(Ordering::Relaxed);
                let made = now.wrapping_sub(base);
                // The owner releases slowly: it works outside the lock between
                // its sections, and the lock sits free meanwhile. Measured
                // since the previous look, so that an owner that was
                // descheduled and runs its bursts again is not taken for slow.
                let made_since = now.wrapping_sub(seen.unwrap_or(base & WOKE_MASK)) & WOKE_MASK;
                // Whether to look at how long the first waiter has waited
                // (below). Not a waiter just woken: it was ahead of that one,
                // and keeps its place when it requeues.
                let check_first = !woken && f & HAS_WAITERS != 0;
                // The clock, read only where the rate needs it; elsewhere
                // the spin's start (at most `SPIN_TIME` ago) tells well
                // enough whether the first waiter has waited its bound. No
                // other reading delays a take of a free lock, nor the
                // section that follows it.
                let clock = if eager && made_since != 0 {
                    now_ns()
                } else {
                    patience.start_ns()
                };
                if eager && made_since != 0 {
                    let t = patience.elapsed_at(clock);
                    slow = t.saturating_sub(last_look) >= u64::from(made_since) * SLOW_RELEASE_NS;
                    last_look = t;
                }
                // Found slow last time, and at most one release since we came:
                // still slow (a burst would have made many by now).
                slow |= close && made <= 1;
                // A free lock is ours if the running threads are not taking
                // it in a burst: no release since our previous look, or
                // releases too far apart for a burst.
                let took = (seen.is_none_or(|s| s == now) || slow)
                    && self.owner.load(Ordering::Relaxed) == UNLOCKED
                    && self.try_acquire(me);
                // The first waiter has waited its bound at the front: ask for
                // the lock to be handed to it. Without the lock, we queue
                // behind it; with it, our unlock hands it over.
                let asked =
                    check_first && self.front_clock.waited(clock) && self.ask_handoff_for_first();
                if took {
                    break Spun::Got;
                }
                if asked {
                    break Spun::Yielded;
                }
                let done = turn_done(now, start);
                if done >= TURN || patience.expired(SPIN_TIME) {
                    break Spun::TurnOver;
                }
                seen = Some(now);
                close = false;
                if made != 0 {
                    // The owner is making releases: poll next when the turn
                    // should be over, at the rate seen so far.
                    interval = until_turn_end(TURN - done, made, patience.elapsed_ns());
                }
            }
            look = true;
            if slow || close {
                // Catch the lock in the owner's next free window: poll the
                // owner word every pause (a load of a shared line, which
                // misses only once it changed), and look again (the clock,
                // the turn, a hand-off) as soon as it is free or every
                // `SLOW_LOOK_EVERY` polls; yield the CPU now and then for an
                // oversubscribed owner.
                loop {
                    crate::arch::cpu_relax();
                    polls = polls.wrapping_add(1);
                    if polls.is_multiple_of(SLOW_YIELD_EVERY) {
                        crate::arch::yield_now();
                    }
                    if self.owner.load(Ordering::Relaxed) == UNLOCKED
                        || polls.is_multiple_of(SLOW_LOOK_EVERY)
                    {
                        break;
                    }
                }
                continue;
            }
            patience.relax_for(interval);
            if interval >= POLL_MAX {
                crate::arch::yield_now();
            }
            interval = (interval * 2).min(POLL_MAX);
        };
        self.spinners.fetch_sub(1, Ordering::Relaxed);
        set_slow_hint(self, slow);
        spun
    }

    /// Queue, sleep, retry. A woken waiter was unlinked by its waker; if it loses
    /// the race for the lock it goes back to the *front* of the list, keeping
    /// its place. A contender whose turn is over (`turn_over`, or after a vain
    /// wake-up) asks for hand-off, as does one that has waited
    /// [`HANDOFF_AFTER`] in all or been woken [`HANDOFF_WAKEUPS`] times in
    /// vain, if it is first; one queued behind others does not (they have
    /// waited longer, and the first of them asks in its turn). A first waiter
    /// that asked polls for the hand-off a while before it sleeps: the next
    /// unlock gives it the lock.
    fn lock_queued(&self, me: u32, state: TaskState, turn_over: bool, eager: bool) -> Result<()> {
        let node = Waiter::tagged(me);
        node.handoff.set(turn_over);
        #[cfg(not(loom))]
        let start = std::time::Instant::now();
        // When a sleeper looks at the lock next, and `releases` when it last
        // looked: `None` once it has asked for hand-off, or once the lock
        // has not changed hands for a whole period (see below).
        #[cfg(not(loom))]
        let mut look_at = Some((start + HANDOFF_AFTER, self.releases.load(Ordering::Relaxed)));
        let mut wakeups = 0u32;
        loop {
            let handoff_is_ours = {
                let q = self.waiters.lock();
                // SAFETY: `node` is linked only into this list and stays on this
                // stack frame until it is unlinked: we leave this loop only after
                // a waker detached and marked it (the requeue resets the mark),
                // or after `dequeue`/`leave` unlinked it.
                unsafe {
                    if wakeups == 0 {
                        q.push_back(&node);
                    } else {
                        q.push_front(&node);
                    }
                }
                let first = q.front().is_some_and(|w| core::ptr::eq(w, &node));
                if !first {
                    // Behind others, who have waited longer: no request. (Were
                    // every waiter queued behind the first to carry one, each
                    // unlock would hand the lock to the next sleeper in turn,
                    // a wake-up per acquisition: the convoy barging avoids.)
                    node.handoff.set(false);
                }
                let f = self.publish(&q);
                first && f & HANDOFF != 0
            };
            if handoff_is_ours && self.await_handoff(me, &node) {
                return Ok(());
            }
            // Pairs with the unlocker's `light_barrier` (module docs): we may
            // have set HAS_WAITERS, and we have just stopped counting as a
            // spinner (every way here comes from `spin` or `await_handoff`), so
            // an unlocker may have skipped its wake-up because of us. (A waiter
            // already woken needs no barrier: it is handed the lock or counted
            // awake again.)
            if !node.is_woken() {
                heavy_barrier();
            }
            loop {
                if node.is_woken() {
                    break; // unlinked by an unlocker: woken, or handed the lock
                }
                if self.owner.load(Ordering::Relaxed) == UNLOCKED {
                    if self.flags.load(Ordering::Relaxed) & HANDOFF == 0 {
                        if self.try_acquire(me) {
                            self.dequeue(&node);
                            return Ok(());
                        }
                    } else {
                        // The lock is free and reserved for the first waiter
                        // (perhaps us): an unlocker that saw us counted may
                        // have left it to us, so we hand it over.
                        self.hand_off_free();
                        continue;
                    }
                }
                // While the lock changes hands, look at it every
                // `HANDOFF_AFTER` (take it if it is free, ask for hand-off
                // if first); once it has not changed hands for a whole
                // period (its owner holds it), sleep until woken: an idle
                // waiter costs nothing. Untimed, it is timed by others once
                // first: an awake contender asks for hand-off on its behalf
                // after `HANDOFF_AFTER`, and with nobody awake, unlock wakes
                // the first waiter.
                #[cfg(not(loom))]
                if node.handoff.get() {
                    look_at = None;
                }
                #[cfg(not(loom))]
                let deadline = look_at.map(|(at, _)| at);
                #[cfg(loom)]
                let deadline = None;
                match crate::sched::sleep(state, deadline) {
                    Ok(()) => {}
                    Err(crate::Error::TimedOut) => {
                        #[cfg(not(loom))]
                        {
                            let now = self.releases.load(Ordering::Relaxed);
                            let idle = look_at.is_none_or(|(_, seen)| seen == now);
                            self.timer_ran_out(&node, idle);
                            look_at =
                                (!idle).then(|| (std::time::Instant::now() + HANDOFF_AFTER, now));
                        }
                    }
                    Err(e) => {
                        return if self.leave(&node) { Ok(()) } else { Err(e) };
                    }
                }
            }
            // Unlinked and marked. A hand-off stored our id in `owner` before
            // marking us `HANDED` (Release; `grant` is an Acquire load). Anything
            // else was a wake-up; the requeue below resets the mark.
            let grant = node.grant();
            if grant == HANDED {
                return Ok(());
            }
            // Counted as a spinner by the unlocker that woke us.
            let spun = self.spin(me, Some(grant >> 2), eager);
            if spun == Spun::Got {
                return Ok(());
            }
            wakeups += 1;
            #[cfg(not(loom))]
            let long = wakeups >= HANDOFF_WAKEUPS || start.elapsed() >= HANDOFF_AFTER;
            #[cfg(loom)]
            let long = wakeups >= HANDOFF_WAKEUPS;
            // Unlinked: only we read the flag until we are linked again.
            node.handoff.set(long || spun == Spun::TurnOver);
            // Woken: the lock changes hands, so look at it again as it does.
            node.untimed.set(false);
            #[cfg(not(loom))]
            {
                look_at = look_at.or_else(|| {
                    let now = self.releases.load(Ordering::Relaxed);
                    Some((std::time::Instant::now() + HANDOFF_AFTER, now))
                });
            }
        }
    }

    /// The first waiter has asked for hand-off: the next unlock gives it the
    /// lock (or it takes a free one), so it polls, counted as awake, for a
    /// bounded spin before it sleeps. `true`: it owns the lock (`node` is off
    /// the list); `false`: it goes on to sleep (it may have been woken).
    fn await_handoff(&self, me: u32, node: &Waiter) -> bool {
        self.spinners.fetch_add(1, Ordering::Relaxed);
        let spin = Spin::new();
        let got = loop {
            if node.is_woken() {
                break node.grant() == HANDED;
            }
            // The HANDOFF is ours: only we may take a free lock now.
            if self.owner.load(Ordering::Relaxed) == UNLOCKED && self.try_acquire(me) {
                self.dequeue(node);
                break true;
            }
            if spin.is_completed() {
                break false;
            }
            spin.snooze();
        };
        // (`dequeue` above, if it found us unlinked for a wake-up, dropped
        // the count that wake-up added; this drops ours.)
        self.spinners.fetch_sub(1, Ordering::Relaxed);
        got
    }

    /// [`hand_free_lock`](Self::hand_free_lock) under the list lock, for a
    /// waiter that is not first.
    #[cold]
    fn hand_off_free(&self) {
        let mut woken = Detached::empty();
        {
            let q = self.waiters.lock();
            if self.flags.load(Ordering::Relaxed) & HANDOFF != 0 {
                self.hand_free_lock(&q, &mut woken);
            }
        }
        woken.wake();
    }

    /// A sleeping waiter's timer ran out ([`HANDOFF_AFTER`]): if it is still
    /// queued and first, it asks for the lock to be handed to it; if not, and
    /// the lock has not changed hands since its last look (`idle`), it stops
    /// its timer and is marked untimed, for contenders to time once it is
    /// first.
    #[cfg(not(loom))]
    #[cold]
    fn timer_ran_out(&self, node: &Waiter, idle: bool) {
        let q = self.waiters.lock();
        if node.handoff.get() || !q.is_linked(node) {
            return;
        }
        if q.front().is_some_and(|f| core::ptr::eq(f, node)) {
            // Under the list lock: unlockers read a linked entry's flag.
            node.handoff.set(true);
            self.publish(&q);
        } else if idle {
            // Under the list lock: `publish` reads a linked entry's flag.
            node.untimed.set(true);
        }
    }

    /// An awake contender found that the untimed first waiter has waited
    /// [`HANDOFF_AFTER`] at the front ([`FrontClock::waited`]): asks for the
    /// lock to be handed to it, on its behalf (it may be asleep, with no
    /// timer). `true` if a hand-off is pending now: the contender stops
    /// competing and queues behind it (or, if it has just taken the lock,
    /// hands it over at its unlock).
    #[cold]
    fn ask_handoff_for_first(&self) -> bool {
        let q = self.waiters.lock();
        let Some(first) = q.front() else {
            return false;
        };
        if !first.handoff.get() {
            // Again under the list lock, where the front clock is exact: the
            // front may have changed since the contender looked.
            if !self.front_clock.waited(now_ns()) {
                return false;
            }
            // Under the list lock: unlockers read a linked entry's flag.
            first.handoff.set(true);
        }
        self.publish(&q) & HANDOFF != 0
    }

    /// Under the list lock, after every change of the list: stores the flags
    /// that describe it (`flags_of`) and returns them, and notes when its
    /// first entry became first, if that changed and it sleeps untimed (for
    /// a timed one, `u64::MAX`: never too long).
    fn publish(&self, q: &Locked<'_, Plain>) -> u32 {
        let f = Self::flags_of(q);
        self.flags.store(f, Ordering::Relaxed);
        self.front_clock.note(q.front());
        f
    }

    /// Unlinks `node` after its own CAS took the lock.
    fn dequeue(&self, node: &Waiter) {
        let q = self.waiters.lock();
        if !q.remove(node) {
            // An unlocker unlinked us to wake us just as our CAS won: let it
            // finish, and drop the spinner count it added for us (no barrier:
            // we own the lock, and our unlock looks at the waiters). (A
            // hand-off cannot have unlinked us: the lock was free for our CAS.)
            drop(q);
            node.wait_for_mark();
            self.spinners.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        // We own the lock: if the new first waiter asked for hand-off, our
        // unlock sees HANDOFF.
        self.publish(&q);
    }

    /// A waiter gives up (signal). Returns `true` if a hand-off made it the owner
    /// first.
    #[cold]
    fn leave(&self, node: &Waiter) -> bool {
        let mut woken = Detached::empty();
        {
            let q = self.waiters.lock();
            if q.remove(node) {
                self.publish(&q);
            } else {
                // An unlocker unlinked us: a hand-off, or a wake-up we absorb.
                drop(q);
                node.wait_for_mark();
                if node.grant() == HANDED {
                    return true;
                }
                // A wake-up: its unlocker counted us as a spinner. Uncount, and
                // order that before `pass_on`'s look at the lock (an unlocker
                // that saw us counted skipped its wake-up; module docs).
                self.spinners.fetch_sub(1, Ordering::Relaxed);
                heavy_barrier();
                let q = self.waiters.lock();
                self.pass_on(&q, &mut woken);
                drop(q);
                woken.wake();
                return false;
            }
            self.pass_on(&q, &mut woken);
        }
        woken.wake();
        false
    }

    /// Passes on a wake-up or a hand-off a leaving waiter may have absorbed:
    /// if the lock is free, the new first waiter gets it if it asked for
    /// hand-off, or is woken to try if nobody else is awake. (If it is held,
    /// that owner's unlock sees `HAS_WAITERS` and `HANDOFF`.)
    fn pass_on(&self, q: &Locked<'_, Plain>, woken: &mut Detached) {
        if self.owner.load(Ordering::Relaxed) != UNLOCKED {
            return;
        }
        if self.flags.load(Ordering::Relaxed) & HANDOFF != 0 {
            self.hand_free_lock(q, woken);
        } else if self.spinners.load(Ordering::Relaxed) == 0 {
            self.pop_first(q, woken, true);
        }
    }
}

impl Default for RawMutex {
    #[track_caller]
    fn default() -> Self {
        RawMutex::new()
    }
}

impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMutex")
            .field("owner", &self.owner())
            .field("flags", &self.flags.load(Ordering::Relaxed))
            .finish()
    }
}

// SAFETY: `RawMutex` grants the lock to one thread at a time (the owner CAS
// `0 → tid`, or a hand-off that stores the new owner while the lock is never
// free), with Acquire on lock pairing with the Release store or hand-off of the
// previous unlock (module docs). Exclusive only: `Concurrent` is `()`.
unsafe impl Backend for RawMutex {
    type GuardState = ();
    type Concurrent<T: ?Sized> = ();
    const NAME: &'static str = "mutex";

    #[track_caller]
    fn new() -> Self {
        RawMutex::new()
    }

    #[inline(always)]
    fn dep_map(&self) -> Option<&LockdepMap> {
        Some(&self.dep_map)
    }

    #[inline(always)]
    fn lock(&self) {
        let r = self.acquire(TaskState::Uninterruptible);
        debug_assert!(r.is_ok());
    }

    #[inline(always)]
    fn try_lock(&self) -> bool {
        // A pending hand-off keeps the owner word non-zero, so a trylock cannot
        // steal a handed-off lock.
        RawMutex::try_acquire(self, current_id())
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        // SAFETY: the caller owns the mutex (`Backend::unlock`).
        unsafe { self.release() }
    }

    #[inline(always)]
    fn is_locked(&self) -> bool {
        RawMutex::is_locked(self)
    }
}

// SAFETY: `acquire` takes the mutex as `lock` does when it returns `Ok`, and
// an interrupted or killed wait leaves it as if the call never happened (the
// module docs: the waiter leaves the list, passing on any hand-off it absorbed).
unsafe impl SleepingBackend for RawMutex {
    #[inline]
    fn lock_sleeping(&self, state: TaskState) -> Result<()> {
        self.acquire(state)
    }
}

/// A mutual-exclusion lock that sleeps (`struct mutex`), guarding a `T`: the
/// generic [`Lock`] over the [`RawMutex`] backend.
///
/// See the [module docs](self) for the algorithm. Not recursive: a second
/// [`lock`](Lock::lock) by the owner panics (lockdep, when enabled, reports it
/// first). May not be used from interrupt context. `Sync` for `T: Send`: a
/// `&Mutex<T>` lets any thread obtain `&mut T`, one at a time (as std's).
#[doc(alias = "mutex")]
#[doc(alias = "DEFINE_MUTEX")]
pub type Mutex<T> = Lock<T, RawMutex>;

/// The proof that the mutex is held; unlocks on drop (`mutex_unlock`, or
/// [`Guard::unlock`]).
///
/// `!Send`: the owner recorded in the mutex and lockdep's held-lock stack belong
/// to the thread that locked it, so only that thread may unlock.
///
/// ```compile_fail
/// fn must_be_send<T: Send>(_: T) {}
/// let m = ksync::mutex::Mutex::new(0);
/// must_be_send(m.lock()); // error: MutexGuard is not Send
/// ```
pub type MutexGuard<'a, T> = Guard<'a, T, RawMutex>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `data` (`DEFINE_MUTEX`, `mutex_init`). `const`,
    /// so it can initialise a `static`. Its lockdep class is the caller's location.
    ///
    /// ```
    /// use ksync::mutex::Mutex;
    /// static LIST: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    /// LIST.lock().push(1);
    /// assert_eq!(LIST.lock().len(), 1);
    /// ```
    #[doc(alias = "mutex_init")]
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new(data: T) -> Mutex<T> {
        Lock::from_raw(RawMutex::new(), data)
    }

    /// A new unlocked mutex whose lockdep class is `key`, named `name`
    /// (`__mutex_init(lock, name, key)`, `lockdep_set_class`): mutexes made at
    /// several places share one class, and reports name it.
    ///
    /// ```
    /// use ksync::{lockdep::LockClassKey, mutex::Mutex};
    /// static INODE_LOCK: LockClassKey = LockClassKey::new("inode->i_lock");
    /// let a = Mutex::with_class(1, "inode->i_lock", &INODE_LOCK);
    /// assert_eq!(*a.lock(), 1);
    /// ```
    #[cfg(not(loom))]
    #[doc(alias = "__mutex_init")]
    #[track_caller]
    pub const fn with_class(
        data: T,
        name: &'static str,
        key: &'static lockdep::LockClassKey,
    ) -> Mutex<T> {
        Lock::from_raw(RawMutex::with_class(name, key), data)
    }

    /// A new unlocked mutex (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(data: T) -> Mutex<T> {
        Lock::from_raw(RawMutex::new(), data)
    }
}

impl<T: ?Sized> Mutex<T> {
    /// The raw mutex, for [`RawMutex::owner`] and the like.
    pub fn raw(&self) -> &RawMutex {
        &self.raw
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Error;
    use crate::sched::{Signal, current};
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Waits until `cond` holds; false after 30 s, a bound that only turns a
    /// hang into a failure (no test here depends on the machine's speed).
    fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(30);
        while !cond() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    #[test]
    fn next_poll_is_when_the_turn_should_end() {
        // 512 releases in 2 µs: the other 1536 take 6 µs.
        assert_eq!(
            until_turn_end(1536, 512, 2_000),
            Duration::from_nanos(6_000)
        );
        // Near the end the poll comes soon, but not sooner than POLL_NEAR.
        assert_eq!(until_turn_end(4, 2044, 8_000), POLL_NEAR);
        // A slow owner (or one off its CPU): no later than POLL_MAX.
        assert_eq!(until_turn_end(2047, 1, 1_000_000), POLL_MAX);
        // No overflow with a long wait and a whole turn left.
        assert_eq!(until_turn_end(u32::MAX, 1, u64::MAX), POLL_MAX);
    }

    /// A woken waiter's grant says it was woken (not handed the lock) and
    /// carries the release count at the wake-up, from which its turn counts,
    /// across the wrap of the 32-bit count and of the 30 bits carried.
    #[test]
    fn woken_waiters_turn_counts_from_the_wake_up() {
        use crate::sched::waitlist::WOKEN;
        for at in [
            0,
            1,
            12_345,
            WOKE_MASK - 5,
            WOKE_MASK,
            u32::MAX - 5,
            u32::MAX,
        ] {
            let g = woke_grant(at);
            assert!(g != 0 && g != HANDED && g != WOKEN, "{g:#x}");
            let start = g >> 2;
            assert_eq!(turn_done(at, start), 0);
            assert_eq!(turn_done(at.wrapping_add(TURN - 1), start), TURN - 1);
            assert_eq!(turn_done(at.wrapping_add(TURN), start), TURN);
        }
        // A newcomer's turn starts at the masked count: here, u32::MAX's.
        assert_eq!(turn_done(7, WOKE_MASK), 8);
    }

    #[test]
    fn lock_try_lock_and_is_locked() {
        let m = Mutex::new(5);
        assert!(!m.is_locked());
        {
            let mut g = m.lock();
            *g += 1;
            assert!(m.is_locked());
            assert_eq!(m.raw().owner(), Some(crate::arch::gettid()));
            assert!(m.raw().is_owned_by_current());
        }
        assert!(!m.is_locked());
        assert_eq!(*m.try_lock().unwrap(), 6);
        let mut m = m;
        *m.get_mut() += 1;
        assert_eq!(m.into_inner(), 7);
    }

    #[test]
    fn try_lock_fails_while_held_elsewhere() {
        let m = Arc::new(Mutex::new(()));
        let g = m.lock();
        let m2 = m.clone();
        assert!(
            std::thread::spawn(move || m2.try_lock().is_none())
                .join()
                .unwrap()
        );
        drop(g);
    }

    #[test]
    #[should_panic(expected = "recursive locking")]
    fn recursive_lock_panics_instead_of_hanging() {
        let m = Mutex::new(());
        let _g = m.lock();
        let _g2 = m.lock();
    }

    #[test]
    #[should_panic(expected = "not the owner")]
    fn raw_unlock_by_non_owner_panics_naming_the_owner() {
        let m = Arc::new(RawMutex::new());
        let m2 = m.clone();
        std::thread::spawn(move || m2.lock()).join().unwrap();
        // SAFETY: deliberately wrong: we are not the owner, which `unlock` reports.
        unsafe { m.unlock() };
    }

    #[test]
    fn raw_lock_unlock() {
        let m = RawMutex::new();
        m.lock();
        assert!(m.is_locked());
        // SAFETY: we hold it and nothing else refers to protected data.
        unsafe { m.unlock() };
        assert!(!m.is_locked());
    }

    #[test]
    fn interrupt_context_is_refused() {
        let m = Arc::new(Mutex::new(()));
        let g = m.lock();
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            crate::ctx::preempt_count_add(crate::ctx::HARDIRQ_OFFSET);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(m2.lock())));
            crate::ctx::preempt_count_sub(crate::ctx::HARDIRQ_OFFSET);
            r
        })
        .join()
        .unwrap();
        let msg = r.unwrap_err();
        let msg = msg.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(msg.contains("interrupt context"), "{msg}");
        drop(g);
    }

    /// The waiter is really asleep (its task state says so) before the owner
    /// unlocks, and the unlock wakes it.
    #[test]
    fn sleeper_is_woken_by_unlock() {
        let m = Arc::new(Mutex::new(0));
        let g = m.lock();
        let (tx, rx) = mpsc::channel();
        let m2 = m.clone();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            *m2.lock() += 1;
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        drop(g);
        t.join().unwrap();
        assert_eq!(*m.lock(), 1);
    }

    #[test]
    fn interruptible_lock_returns_eintr_and_leaves_the_mutex_alone() {
        let m = Arc::new(Mutex::new(0u32));
        let mut g = m.lock();
        let (tx, rx) = mpsc::channel();
        let m2 = m.clone();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = m2.lock_interruptible().map(|_| ());
            crate::sched::flush_signals();
            r
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Interruptible {
            std::thread::yield_now();
        }
        task.send_signal(Signal::SIGUSR1);
        // The signal alone ends the wait (we hold the lock): a lost signal
        // hangs, which the guard turns into a failure.
        assert!(
            wait_until(|| t.is_finished()),
            "the signal did not end the wait"
        );
        let r = t.join().unwrap();
        assert_eq!(r, Err(Error::Interrupted));
        assert_eq!(r.unwrap_err().errno(), -crate::error::errno::EINTR);
        // Untouched: we still own it, no waiter is recorded, others can use it after us.
        assert!(m.raw().is_owned_by_current());
        assert_eq!(m.raw().flags.load(Ordering::Relaxed), 0);
        *g += 1;
        drop(g);
        let m3 = m.clone();
        std::thread::spawn(move || *m3.lock() += 1).join().unwrap();
        assert_eq!(*m.lock(), 2);
    }

    #[test]
    fn killable_lock_ignores_other_signals_and_stops_at_sigkill() {
        let m = Arc::new(Mutex::new(()));
        let g = m.lock();
        let (tx, rx) = mpsc::channel();
        let m2 = m.clone();
        let t = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let r = m2.lock_killable().map(|_| ());
            crate::sched::flush_signals();
            r
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Killable {
            std::thread::yield_now();
        }
        task.send_signal(Signal::SIGUSR2);
        // A chance for a wrong wake-up to end the wait; nothing below depends
        // on its length: only SIGKILL can end the wait (we hold the lock).
        std::thread::sleep(Duration::from_millis(5));
        assert!(!t.is_finished(), "SIGUSR2 ended a killable wait");
        assert!(
            wait_until(|| task.state() == TaskState::Killable),
            "the waiter did not go back to sleep"
        );
        task.send_signal(Signal::SIGKILL);
        assert_eq!(t.join().unwrap(), Err(Error::Killed));
        drop(g);
        assert!(m.try_lock().is_some());
    }

    /// Hand-off: a sleeper is not starved by a thread that relocks in a tight loop.
    #[test]
    fn handoff_lets_a_sleeper_in_against_a_relocking_loop() {
        let m = Arc::new(Mutex::new(0u64));
        let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let (m1, stop1) = (m.clone(), stop.clone());
        let hog = std::thread::spawn(move || {
            while !stop1.load(core::sync::atomic::Ordering::Relaxed) {
                let mut g = m1.lock();
                *g += 1;
                for _ in 0..50 {
                    core::hint::spin_loop();
                }
            }
        });
        // Let the hog run, then contend.
        while *m.lock() < 1000 {
            std::thread::yield_now();
        }
        let (tx, rx) = mpsc::channel();
        let m2 = m.clone();
        let sleeper = std::thread::spawn(move || {
            for _ in 0..20 {
                drop(m2.lock());
            }
            tx.send(()).unwrap();
        });
        // Watchdog: generous; a starved sleeper would never report.
        let got = rx.recv_timeout(Duration::from_secs(60));
        stop.store(true, core::sync::atomic::Ordering::Relaxed);
        hog.join().unwrap();
        sleeper.join().unwrap();
        assert!(got.is_ok(), "the sleeper was starved");
    }

    /// Liveness against two hogs that trade the lock (one of them is nearly
    /// always awake and polling, so unlocks rarely wake a sleeper): a third
    /// thread still gets in, by its own polls or by the hogs' request for
    /// hand-off on its behalf (which
    /// `a_contender_asks_for_the_handoff_on_behalf_of_a_sleeping_first_waiter`
    /// tests alone).
    #[test]
    fn sleeper_gets_in_past_two_hogs_trading_the_lock() {
        let m = Arc::new(Mutex::new(0u64));
        let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let hogs: Vec<_> = (0..2)
            .map(|_| {
                let (m, stop) = (m.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(core::sync::atomic::Ordering::Relaxed) {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        while *m.lock() < 10_000 {
            std::thread::yield_now();
        }
        let (tx, rx) = mpsc::channel();
        let m2 = m.clone();
        let sleeper = std::thread::spawn(move || {
            for _ in 0..50 {
                drop(m2.lock());
            }
            tx.send(()).unwrap();
        });
        // Watchdog: generous; a starved sleeper would never report.
        let got = rx.recv_timeout(Duration::from_secs(60));
        stop.store(true, core::sync::atomic::Ordering::Relaxed);
        for h in hogs {
            h.join().unwrap();
        }
        sleeper.join().unwrap();
        assert!(got.is_ok(), "the sleeper was starved");
    }

    /// Waits until the first waiter of `m` has been first for
    /// `HANDOFF_AFTER`, untimed (a state, not a sleep: on a slow machine it comes
    /// later, never earlier).
    fn wait_until_first_waited_too_long(m: &RawMutex) {
        assert!(
            wait_until(|| m.flags.load(Ordering::Relaxed) & HAS_WAITERS != 0
                && m.front_clock.waited(now_ns())),
            "the waiter never queued"
        );
    }

    /// A waiter behind a lock that does not change hands stops looking at it:
    /// queued behind a lock held for many times `HANDOFF_AFTER`, it wakes at
    /// most once (to find that nobody released the lock), not every
    /// `HANDOFF_AFTER` (2 000 wake-ups a second for each waiter of a lock
    /// held by a thread that sleeps, as it did). Three waiters: the first
    /// asks for hand-off when its turn ends and then has no timer anyway;
    /// the others are the ones that used to wake.
    #[test]
    fn waiters_sleep_through_a_long_hold_woken_at_most_once() {
        let m = Arc::new(Mutex::new(0u64));
        let g = m.lock();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (tx, rx) = mpsc::channel();
                let m = m.clone();
                let t = std::thread::spawn(move || {
                    tx.send(current()).unwrap();
                    *m.lock() += 1;
                });
                let task = rx.recv().unwrap();
                assert!(
                    wait_until(|| task.state() == TaskState::Uninterruptible),
                    "the waiter never went to sleep"
                );
                (t, task)
            })
            .collect();
        let switches = |w: &(std::thread::JoinHandle<()>, crate::sched::Task)| {
            crate::arch::sched::voluntary_switches(w.1.tid())
        };
        let before: Vec<u64> = waiters.iter().map(switches).collect();
        std::thread::sleep(HANDOFF_AFTER * 20);
        for (w, before) in waiters.iter().zip(before) {
            let woken = switches(w) - before;
            assert!(
                woken <= 1,
                "a waiter woke {woken} times while the lock was held"
            );
            assert!(wait_until(|| w.1.state() == TaskState::Uninterruptible));
        }
        drop(g);
        for (t, _) in waiters {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 3);
    }

    /// The starvation bound without timers: a sleeper that no unlock would
    /// wake (a contender is awake) and that sleeps without a timer is asked
    /// for by that contender, once it has been first for
    /// `HANDOFF_AFTER`; the contender queues behind it, and the unlock
    /// hands the sleeper the lock, so it gets it first.
    ///
    /// The sleeper must be first without having asked, and without a timer
    /// (one that looks asks for itself). One that queues at the end of its
    /// own turn asks for itself, so it queues second, behind a waiter that
    /// asked; its timer finds that nobody released the lock, so it sleeps on
    /// untimed; then the first waiter gets the lock and holds it while the
    /// sleeper, first now, waits.
    #[test]
    fn a_contender_asks_for_the_handoff_on_behalf_of_a_sleeping_first_waiter() {
        let m = Arc::new(Mutex::new(Vec::new()));
        let g = m.lock();
        let spawn_waiter = |name: &'static str, hold: Option<mpsc::Receiver<()>>| {
            let (tx, rx) = mpsc::channel();
            let m = m.clone();
            let t = std::thread::spawn(move || {
                tx.send(current()).unwrap();
                let mut g = m.lock();
                g.push(name);
                if let Some(hold) = hold {
                    hold.recv().unwrap();
                }
            });
            let task = rx.recv().unwrap();
            assert!(
                wait_until(|| task.state() == TaskState::Uninterruptible),
                "{name} never went to sleep"
            );
            (t, task)
        };
        let (release, hold) = mpsc::channel();
        let (holder, holder_task) = spawn_waiter("holder", Some(hold));
        let holder_tid = holder_task.tid();
        let (sleeper, sleeper_task) = spawn_waiter("sleeper", None);
        // The sleeper's timer: it wakes once, finds no release, and sleeps
        // on without one, marked untimed.
        assert!(
            wait_until(|| {
                let q = m.raw().waiters.lock();
                q.front()
                    .and_then(|f| q.next_of(f))
                    .is_some_and(|w| w.untimed.get())
            }),
            "the sleeper's timer never stopped"
        );
        assert!(wait_until(
            || sleeper_task.state() == TaskState::Uninterruptible
        ));
        assert_eq!(m.raw().flags.load(Ordering::Relaxed), HAS_WAITERS | HANDOFF);
        // The holder gets the lock (it asked for it) and keeps it; the
        // sleeper is first now, without a request or a timer.
        drop(g);
        assert!(wait_until(|| m.raw().owner() == Some(holder_tid)));
        wait_until_first_waited_too_long(m.raw());
        assert_eq!(m.raw().flags.load(Ordering::Relaxed), HAS_WAITERS);
        let m3 = m.clone();
        let contender = std::thread::spawn(move || m3.lock().push("contender"));
        // The contender spins, sees the first waiter's time is up, and asks.
        assert!(
            wait_until(|| m.raw().flags.load(Ordering::Relaxed) & HANDOFF != 0),
            "the contender never asked for hand-off on the sleeper's behalf"
        );
        release.send(()).unwrap();
        holder.join().unwrap();
        sleeper.join().unwrap();
        contender.join().unwrap();
        assert_eq!(*m.lock(), ["holder", "sleeper", "contender"]);
        assert_eq!(m.raw().flags.load(Ordering::Relaxed), 0);
        assert_eq!(m.raw().spinners.load(Ordering::Relaxed), 0);
    }

    /// Interrupted lockers against a holder that keeps releasing and
    /// retaking the mutex (barging past them, their turns running out, their
    /// hand-off requests racing the signals): every call either gets the lock
    /// or returns `Interrupted` having taken nothing, and the mutex ends with
    /// no flag or spinner left.
    #[test]
    fn interrupted_lockers_against_a_barging_holder_leave_the_mutex_clean() {
        let m = Arc::new(Mutex::new(0u64));
        let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let (m1, stop1) = (m.clone(), stop.clone());
        let hog = std::thread::spawn(move || {
            while !stop1.load(core::sync::atomic::Ordering::Relaxed) {
                *m1.lock() += 1;
            }
        });
        let (tx, rx) = mpsc::channel();
        let (m2, stop2) = (m.clone(), stop.clone());
        let victim = std::thread::spawn(move || {
            tx.send(current()).unwrap();
            let (mut got, mut interrupted) = (0u64, 0u64);
            while !stop2.load(core::sync::atomic::Ordering::Relaxed) {
                match m2.lock_interruptible() {
                    Ok(mut g) => {
                        *g += 1;
                        got += 1;
                    }
                    Err(e) => {
                        assert_eq!(e, Error::Interrupted);
                        interrupted += 1;
                    }
                }
                crate::sched::flush_signals();
            }
            (got, interrupted)
        });
        let task = rx.recv().unwrap();
        for _ in 0..200 {
            task.send_signal(Signal::SIGUSR1);
            std::thread::sleep(Duration::from_micros(100));
        }
        stop.store(true, core::sync::atomic::Ordering::Relaxed);
        hog.join().unwrap();
        let (got, _) = victim.join().unwrap();
        assert!(*m.lock() >= got);
        assert!(!m.is_locked());
        assert_eq!(m.raw().flags.load(Ordering::Relaxed), 0);
        assert_eq!(m.raw().spinners.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn stress_16_threads() {
        let m = Arc::new(Mutex::new(0u64));
        let n = 16;
        let per = 2000;
        std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(|| {
                    for i in 0..per {
                        let mut g = m.lock();
                        *g += 1;
                        if i % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                });
            }
        });
        assert_eq!(*m.lock(), n * per);
        assert_eq!(m.raw().flags.load(Ordering::Relaxed), 0);
        assert_eq!(m.raw().spinners.load(Ordering::Relaxed), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    /// Mutual exclusion and no lost wake-up: two lockers increment through the
    /// lock (non-atomically, so loom's cell checks catch overlap); the final value
    /// is exact and nobody sleeps forever (loom reports a deadlock otherwise).
    #[test]
    fn loom_mutex_excludes_and_wakes() {
        loom::model(|| {
            let m = Arc::new(Mutex::new(0u32));
            let m2 = m.clone();
            let t = loom::thread::spawn(move || {
                *m2.lock() += 1;
            });
            *m.lock() += 1;
            t.join().unwrap();
            assert_eq!(*m.lock(), 2);
        });
    }

    /// Hand-off: under loom a waiter asks for hand-off after one vain wake-up
    /// (`HANDOFF_WAKEUPS`), so a relocking thread drives the hand-off paths
    /// (both the pre-release one and the CAS after a racing release).
    #[test]
    fn loom_mutex_handoff() {
        loom::model(|| {
            let m = Arc::new(Mutex::new(0u32));
            let m2 = m.clone();
            let t = loom::thread::spawn(move || {
                *m2.lock() += 1;
            });
            for _ in 0..2 {
                *m.lock() += 1;
            }
            t.join().unwrap();
            assert_eq!(*m.lock(), 3);
            assert_eq!(m.raw.flags.load(Ordering::Relaxed), 0);
            assert_eq!(m.raw.spinners.load(Ordering::Relaxed), 0);
        });
    }

    /// A signal racing with the unlock: the interruptible waiter either gets the
    /// lock or returns `Interrupted`, and either way the mutex ends free with no
    /// waiter recorded (a wake-up it absorbed is not lost: the relock below
    /// would hang, and loom report it).
    #[test]
    fn loom_mutex_interrupted_waiter() {
        loom::model(|| {
            let m = Arc::new(Mutex::new(0u32));
            let task = Arc::new(loom::sync::Mutex::new(None));
            let g = m.lock();
            let (m2, task2) = (m.clone(), task.clone());
            let t = loom::thread::spawn(move || {
                *task2.lock().unwrap() = Some(crate::sched::current());
                let r = m2.lock_interruptible().map(|mut g| *g += 1);
                crate::sched::flush_signals();
                r
            });
            let victim = loop {
                if let Some(v) = task.lock().unwrap().clone() {
                    break v;
                }
                loom::thread::yield_now();
            };
            victim.send_signal(crate::sched::Signal::SIGUSR1);
            drop(g);
            let r = t.join().unwrap();
            let v = *m.lock();
            match r {
                Ok(()) => assert_eq!(v, 1),
                Err(e) => {
                    assert_eq!(e, crate::Error::Interrupted);
                    assert_eq!(v, 0);
                }
            }
            assert_eq!(m.raw.flags.load(Ordering::Relaxed), 0);
            assert_eq!(m.raw.spinners.load(Ordering::Relaxed), 0);
        });
    }

    /// A hand-off request passed on by a leaving waiter: under loom every
    /// turn is over at once, so both waiters queue asking for hand-off; the
    /// first is interrupted, which makes the second the first with `HANDOFF`
    /// set, perhaps while the lock is free: the leaver (`pass_on`), the unlock
    /// or the second's own look must hand it the lock. Nobody hangs, and the
    /// mutex ends free with no flag or spinner left.
    #[test]
    fn loom_mutex_leaver_passes_the_handoff_on() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let m = Arc::new(Mutex::new(0u32));
            let g = m.lock();
            let task = Arc::new(loom::sync::Mutex::new(None));
            let (m1, task1) = (m.clone(), task.clone());
            let t1 = loom::thread::spawn(move || {
                *task1.lock().unwrap() = Some(crate::sched::current());
                let r = m1.lock_interruptible().map(|mut g| *g += 1);
                crate::sched::flush_signals();
                r
            });
            let m2 = m.clone();
            let t2 = loom::thread::spawn(move || *m2.lock() += 1);
            let victim = loop {
                if let Some(v) = task.lock().unwrap().clone() {
                    break v;
                }
                loom::thread::yield_now();
            };
            victim.send_signal(crate::sched::Signal::SIGUSR1);
            drop(g);
            let r = t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(*m.lock(), 1 + u32::from(r.is_ok()));
            assert_eq!(m.raw.flags.load(Ordering::Relaxed), 0);
            assert_eq!(m.raw.spinners.load(Ordering::Relaxed), 0);
        });
    }

    /// Three threads: a locker that sleeps, and the wake passed along the queue.
    #[test]
    fn loom_mutex_three_lockers() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let m = Arc::new(Mutex::new(0u32));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    loom::thread::spawn(move || *m.lock() += 1)
                })
                .collect();
            *m.lock() += 1;
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(*m.lock(), 3);
            assert_eq!(m.raw.spinners.load(Ordering::Relaxed), 0);
        });
    }
}
