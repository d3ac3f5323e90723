//! `jiffies`, the timer interrupt, and kernel timers (`struct timer_list`).
//!
//! # Implementation details
//!
//! A background thread, `ktimer`, is the "CPU" the timer interrupt hits. While
//! any timer is armed it sleeps to the next tick boundary (1/[`hz()`] s) and
//! raises [`TIMER_IRQ`](super::TIMER_IRQ) at itself — a real signal, so the
//! handler runs in hardirq context like any other irq. The handler advances
//! `jiffies` to the clock (catching up ticks it missed, as the kernel's
//! `tick_do_update_jiffies64`) and raises `TIMER_SOFTIRQ` when a timer is due;
//! the timer callbacks then run at that irq's exit, in softirq context, inside
//! the signal handler. With no timer armed the thread parks and [`jiffies()`]
//! catches up from the clock itself (the kernel's NO_HZ idle).
//!
//! Armed timers sit in one list under the timer base's irq-safe lock (a
//! list, not the kernel's wheel: ksync programs arm tens of timers, not
//! millions). One thread at a time runs callbacks; the base records which timer
//! is running so that [`Timer::del_timer_sync`] can wait for it.
//!
//! `jiffies` starts at [`INITIAL_JIFFIES`], 5 minutes (at HZ=250) before it
//! wraps through zero, as the kernel's does, so that code comparing jiffies
//! without [`time_after`] and friends breaks early.

use core::cell::UnsafeCell;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::local::LOCAL;
use super::softirq::{Softirq, futex_wait, futex_wake, open_builtin, raise_softirq_irqoff};
use super::sync::IrqSpinLock;
use crate::arch::time::now_ns;
use crate::error::{Error, Result};

/// The default timer frequency, ticks per second (`HZ`, `CONFIG_HZ_250`).
pub const HZ: u32 = 250;

/// The first value of [`jiffies()`]: 300 s worth of ticks at [`HZ`] before zero
/// (`INITIAL_JIFFIES`).
pub const INITIAL_JIFFIES: u64 = 0u64.wrapping_sub(300 * HZ as u64);

static HZ_NOW: AtomicU32 = AtomicU32::new(HZ);
/// `CLOCK_MONOTONIC` at jiffy zero, in ns; 0 until first use.
static EPOCH_NS: AtomicU64 = AtomicU64::new(0);
/// Ticks since the epoch, as last advanced.
static TICKS: AtomicU64 = AtomicU64::new(0);
/// Whether `ktimer` is ticking (else `jiffies()` catches up itself).
static TICKING: AtomicBool = AtomicBool::new(false);

fn epoch() -> u64 {
    let e = EPOCH_NS.load(Ordering::Acquire);
    if e != 0 {
        return e;
    }
    let now = now_ns().max(1);
    // AcqRel: the winner's HZ (read after) is the one every later reader uses.
    match EPOCH_NS.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => now,
        Err(e) => e,
    }
}

/// Advances the tick count to the clock and returns it (monotonic: `fetch_max`).
fn advance() -> u64 {
    let e = epoch();
    let t = (now_ns().saturating_sub(e) as u128 * hz() as u128 / 1_000_000_000) as u64;
    TICKS.fetch_max(t, Ordering::Relaxed).max(t)
}

/// The timer frequency in use (`HZ`): [`HZ`] unless [`set_hz`] changed it.
pub fn hz() -> u32 {
    HZ_NOW.load(Ordering::Relaxed)
}

/// Sets the timer frequency. Allowed only before anything read the clock of
/// the timer subsystem (`jiffies`, a timer, an irq request).
///
/// # Errors
/// [`Error::Busy`] once jiffies started counting; [`Error::InvalidArgument`]
/// unless `1 <= hz <= 10_000`.
pub fn set_hz(hz: u32) -> Result<()> {
    if !(1..=10_000).contains(&hz) {
        return Err(Error::InvalidArgument);
    }
    if EPOCH_NS.load(Ordering::Acquire) != 0 {
        return Err(Error::Busy);
    }
    HZ_NOW.store(hz, Ordering::Relaxed);
    if EPOCH_NS.load(Ordering::Acquire) != 0 && HZ_NOW.load(Ordering::Relaxed) != hz {
        return Err(Error::Busy);
    }
    Ok(())
}

/// Ticks since start, offset by [`INITIAL_JIFFIES`] (`jiffies`). Compare values
/// with [`time_after`] and friends: they wrap.
///
/// ```
/// use ksync::irq::{jiffies, time_after};
/// let start = jiffies();
/// ksync::irq::msleep(20); // 5 ticks at HZ=250
/// assert!(time_after(jiffies(), start));
/// ```
#[doc(alias = "get_jiffies_64")]
pub fn jiffies() -> u64 {
    let t = if TICKING.load(Ordering::Relaxed) {
        TICKS.load(Ordering::Relaxed)
    } else {
        advance()
    };
    INITIAL_JIFFIES.wrapping_add(t)
}

/// Milliseconds to jiffies, rounded up (`msecs_to_jiffies`).
pub fn msecs_to_jiffies(ms: u64) -> u64 {
    (ms as u128 * hz() as u128).div_ceil(1000) as u64
}

/// Jiffies to milliseconds (`jiffies_to_msecs`).
pub fn jiffies_to_msecs(j: u64) -> u64 {
    (j as u128 * 1000 / hz() as u128) as u64
}

/// Whether jiffy `a` is after `b`, across wrap-around (`time_after(a, b)`).
#[inline]
pub const fn time_after(a: u64, b: u64) -> bool {
    (b.wrapping_sub(a) as i64) < 0
}

/// Whether `a` is before `b` (`time_before(a, b)`).
#[inline]
pub const fn time_before(a: u64, b: u64) -> bool {
    time_after(b, a)
}

/// Whether `a` is after or equal to `b` (`time_after_eq(a, b)`).
#[inline]
pub const fn time_after_eq(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) >= 0
}

/// Whether `a` is before or equal to `b` (`time_before_eq(a, b)`).
#[inline]
pub const fn time_before_eq(a: u64, b: u64) -> bool {
    time_after_eq(b, a)
}

/// A kernel timer (`struct timer_list`): calls its function once, in softirq
/// context, when [`jiffies()`] reaches its expiry.
///
/// A timer is armed through a pinned reference, because the timer base links
/// it into its list in place; dropping it deletes it and waits for a running
/// callback (as `del_timer_sync`), so a dropped timer is never touched again.
/// Keep it in a `static` (`Pin::static_ref`), a `Box::pin`/`Arc::pin`, or on the
/// stack with `core::pin::pin!`.
///
/// The callback runs inside a signal handler (or in `ksoftirqd`): it must be
/// async-signal-safe. It may re-arm its own timer with `mod_timer`.
///
/// ```
/// use core::pin::pin;
/// use ksync::irq::{Timer, jiffies, msecs_to_jiffies};
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// static FIRED: AtomicBool = AtomicBool::new(false);
/// fn expire(t: &Timer) {
///     assert!(ksync::sched::in_serving_softirq());
///     FIRED.store(true, Ordering::Release);
/// }
///
/// let timer = pin!(Timer::setup(expire));
/// timer.as_ref().mod_timer(jiffies() + msecs_to_jiffies(10));
/// while !FIRED.load(Ordering::Acquire) {
///     ksync::irq::msleep(5);
/// }
/// assert!(!timer.pending());
/// ```
pub struct Timer {
    func: fn(&Timer),
    data: usize,
    expires: AtomicU64,
    /// In the base's list. Changed under the base lock.
    pending: AtomicBool,
    /// The timer softirq pass count when it was last armed: a pass runs only
    /// timers armed before it started, so a callback that re-arms its timer for
    /// "now" runs again on the next tick, not in a loop. Changed under the lock.
    armed_gen: AtomicU64,
    /// Set by the first `mod_timer` (only a pinned timer can be armed; a timer
    /// that never was needs no lock on drop).
    armed_ever: AtomicBool,
    /// The list link. Protected by the base lock.
    next: UnsafeCell<*const Timer>,
    _pin: PhantomPinned,
}

// SAFETY: `next` is only read or written under the timer base's lock; every
// other field is an atomic or immutable.
unsafe impl Sync for Timer {}
// SAFETY: no field is tied to a thread; `next` is null until the pinned timer is
// armed, and then only the base (under its lock) uses it.
unsafe impl Send for Timer {}

struct TimerBase {
    lock: IrqSpinLock,
    /// The armed timers. Protected by `lock`.
    head: UnsafeCell<*const Timer>,
    /// Number of armed timers (changed under `lock`).
    armed: AtomicUsize,
    /// No armed timer expires before this (may be early; changed under `lock`).
    next_expiry: AtomicU64,
    /// The timer whose callback runs now, and the runner's thread (the address
    /// of its irq state). Set under `lock`.
    running: AtomicPtr<Timer>,
    running_on: AtomicUsize,
    /// One thread runs callbacks at a time.
    softirq_busy: AtomicBool,
    /// Timer softirq passes so far (changed under `lock`).
    passes: AtomicU64,
    /// `ktimer`'s futex word, bumped when a timer is armed, and whether it sleeps.
    word: AtomicU32,
    parked: AtomicBool,
    started: AtomicBool,
}

// SAFETY: `head` is protected by `lock`; the rest are atomics.
unsafe impl Sync for TimerBase {}

static BASE: TimerBase = TimerBase {
    lock: IrqSpinLock::new(),
    head: UnsafeCell::new(ptr::null()),
    armed: AtomicUsize::new(0),
    next_expiry: AtomicU64::new(0),
    running: AtomicPtr::new(ptr::null_mut()),
    running_on: AtomicUsize::new(0),
    softirq_busy: AtomicBool::new(false),
    passes: AtomicU64::new(0),
    word: AtomicU32::new(0),
    parked: AtomicBool::new(false),
    started: AtomicBool::new(false),
};

fn this_thread_id() -> usize {
    LOCAL.with(|l| l as *const _ as usize)
}

impl Timer {
    /// A timer that will call `func` (`timer_setup(timer, func, 0)`,
    /// `DEFINE_TIMER`). Not armed.
    #[doc(alias = "timer_setup")]
    #[doc(alias = "DEFINE_TIMER")]
    #[doc(alias = "init_timer")]
    pub const fn setup(func: fn(&Timer)) -> Timer {
        Timer::with_data(func, 0)
    }

    /// A timer with a data word for its callback (the old `timer->data`).
    pub const fn with_data(func: fn(&Timer), data: usize) -> Timer {
        Timer {
            func,
            data,
            expires: AtomicU64::new(0),
            pending: AtomicBool::new(false),
            armed_gen: AtomicU64::new(0),
            armed_ever: AtomicBool::new(false),
            next: UnsafeCell::new(ptr::null()),
            _pin: PhantomPinned,
        }
    }

    /// The data word.
    pub fn data(&self) -> usize {
        self.data
    }

    /// The jiffy the timer expires at (last set by `mod_timer`).
    pub fn expires(&self) -> u64 {
        self.expires.load(Ordering::Relaxed)
    }

    /// Whether the timer is armed (`timer_pending`).
    #[doc(alias = "timer_pending")]
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Arms the timer to expire at jiffy `expires`, re-arming it if it was armed
    /// (`mod_timer`). Returns whether it was armed. Async-signal-safe; callbacks
    /// may re-arm their own timer.
    #[doc(alias = "add_timer")]
    pub fn mod_timer(self: Pin<&Self>, expires: u64) -> bool {
        let me: &Timer = self.get_ref();
        if LOCAL.with(|l| l.in_signal.load(Ordering::Relaxed)) == 0 {
            ensure_ticker();
        }
        let flags = BASE.lock.lock();
        // SAFETY: we hold the base lock.
        let was = unsafe { detach(me) };
        me.expires.store(expires, Ordering::Relaxed);
        // SAFETY: we hold the base lock; `me` is pinned, and its Drop removes it
        // from the list before its memory can be reused.
        unsafe {
            *me.next.get() = *BASE.head.get();
            *BASE.head.get() = me;
        }
        me.pending.store(true, Ordering::Relaxed);
        me.armed_ever.store(true, Ordering::Relaxed);
        me.armed_gen
            .store(BASE.passes.load(Ordering::Relaxed), Ordering::Relaxed);
        let armed = BASE.armed.fetch_add(1, Ordering::Relaxed);
        let next = BASE.next_expiry.load(Ordering::Relaxed);
        if armed == 0 || time_before(expires, next) {
            BASE.next_expiry.store(expires, Ordering::Relaxed);
        }
        BASE.lock.unlock(flags);
        kick_ticker();
        was
    }

    /// Disarms the timer (`del_timer`, `timer_delete`); returns whether it was
    /// armed. A callback already running keeps running: see
    /// [`del_timer_sync`](Self::del_timer_sync).
    #[doc(alias = "timer_delete")]
    pub fn del_timer(self: Pin<&Self>) -> bool {
        let flags = BASE.lock.lock();
        // SAFETY: we hold the base lock.
        let was = unsafe { detach(self.get_ref()) };
        BASE.lock.unlock(flags);
        was
    }

    /// Disarms the timer and waits until its callback is not running on any
    /// thread (`del_timer_sync`, `timer_delete_sync`); returns whether it was
    /// armed. When it returns, the callback is neither running nor pending —
    /// unless someone else re-arms the timer.
    ///
    /// # Panics
    /// When called from the timer's own callback (it would wait for itself).
    #[doc(alias = "timer_delete_sync")]
    pub fn del_timer_sync(self: Pin<&Self>) -> bool {
        self.get_ref().delete_sync()
    }

    fn delete_sync(&self) -> bool {
        let me = self as *const Timer as *mut Timer;
        let backoff = crate::Backoff::new();
        loop {
            let flags = BASE.lock.lock();
            if BASE.running.load(Ordering::Relaxed) == me {
                let own = BASE.running_on.load(Ordering::Relaxed) == this_thread_id();
                BASE.lock.unlock(flags);
                if own {
                    panic!("ksync: del_timer_sync called from the timer's own callback");
                }
                backoff.snooze();
                continue;
            }
            // SAFETY: we hold the base lock.
            let was = unsafe { detach(self) };
            BASE.lock.unlock(flags);
            return was;
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // Always under the lock: an unlocked look at `pending` and `running` could
        // miss a callback that the softirq is just starting.
        if self.armed_ever.load(Ordering::Relaxed) {
            self.delete_sync();
        }
    }
}

impl core::fmt::Debug for Timer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Timer")
            .field("expires", &self.expires())
            .field("pending", &self.pending())
            .field("data", &self.data)
            .finish()
    }
}

/// Unlinks `t` if it is in the list; returns whether it was.
///
/// # Safety
/// The caller holds the base lock.
unsafe fn detach(t: &Timer) -> bool {
    if !t.pending.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: the caller holds the base lock, which protects `head` and every
    // listed timer's `next`; listed timers are alive (pinned, removed on drop).
    unsafe {
        let mut link: *mut *const Timer = BASE.head.get();
        while !(*link).is_null() {
            if ptr::eq(*link, t) {
                *link = *t.next.get();
                *t.next.get() = ptr::null();
                t.pending.store(false, Ordering::Relaxed);
                BASE.armed.fetch_sub(1, Ordering::Relaxed);
                return true;
            }
            link = (**link).next.get();
        }
    }
    false
}

/// `run_timer_softirq`: runs the callbacks of expired timers, in softirq context.
fn run_timer_softirq() {
    // Acquire pairs with the Release store at the end: one runner at a time.
    if BASE.softirq_busy.swap(true, Ordering::Acquire) {
        return; // another thread is running timers; it or the next tick gets these
    }
    let now = jiffies();
    let me = this_thread_id();
    let mut flags = BASE.lock.lock();
    // Timers armed from now on (by the callbacks below) wait for the next pass.
    let pass = BASE.passes.fetch_add(1, Ordering::Relaxed) + 1;
    loop {
        // SAFETY: we hold the base lock (see `detach`).
        let due = unsafe {
            let mut p = *BASE.head.get();
            while !p.is_null()
                && (time_before(now, (*p).expires.load(Ordering::Relaxed))
                    || (*p).armed_gen.load(Ordering::Relaxed) >= pass)
            {
                p = *(*p).next.get();
            }
            p
        };
        if due.is_null() {
            break;
        }
        // SAFETY: `due` is listed, hence alive; we hold the lock.
        let t: &Timer = unsafe { &*due };
        // SAFETY: we hold the base lock.
        unsafe { detach(t) };
        BASE.running.store(due as *mut Timer, Ordering::Relaxed);
        BASE.running_on.store(me, Ordering::Relaxed);
        BASE.lock.unlock(flags);
        // `t` stays alive during the call: its Drop (`delete_sync`) waits while
        // it is the running timer.
        (t.func)(t);
        flags = BASE.lock.lock();
        BASE.running.store(ptr::null_mut(), Ordering::Relaxed);
    }
    // Recompute the earliest expiry.
    // SAFETY: we hold the base lock.
    unsafe {
        let mut p = *BASE.head.get();
        let mut min: Option<u64> = None;
        while !p.is_null() {
            let e = (*p).expires.load(Ordering::Relaxed);
            if min.is_none_or(|m| time_before(e, m)) {
                min = Some(e);
            }
            p = *(*p).next.get();
        }
        if let Some(m) = min {
            BASE.next_expiry.store(m, Ordering::Relaxed);
        }
    }
    BASE.lock.unlock(flags);
    BASE.softirq_busy.store(false, Ordering::Release);
}

/// The timer interrupt's handler: advance jiffies, raise `TIMER_SOFTIRQ` when
/// a timer is due.
fn timer_interrupt(_irq: u32) {
    let now = INITIAL_JIFFIES.wrapping_add(advance());
    if BASE.armed.load(Ordering::Relaxed) != 0
        && time_after_eq(now, BASE.next_expiry.load(Ordering::Relaxed))
    {
        open_builtin(Softirq::Timer, run_timer_softirq);
        raise_softirq_irqoff(Softirq::Timer);
    }
}

/// Serializes the start of `ktimer` (and is held across a `fork`, see
/// [`super::fork`]). Taken before the `ksoftirqd` start lock.
pub(super) static START: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether the timer irq line is bound to [`timer_interrupt`] (it stays bound:
/// `free_irq` refuses the line). Changed under [`START`].
static IRQ_BOUND: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether this thread is `ktimer`.
    static IS_KTIMER: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Starts `ktimer` (and requests the timer irq) if needed. Task context only.
pub(crate) fn ensure_ticker() {
    if BASE.started.load(Ordering::Acquire) {
        return;
    }
    // Marked: a fork from a signal handler here must not wait for it.
    let _g = crate::arch::lock_marked(&START);
    if BASE.started.load(Ordering::Relaxed) {
        return;
    }
    epoch();
    super::softirq::start_ksoftirqd();
    if !IRQ_BOUND.load(Ordering::Relaxed) {
        if super::hardirq::request(super::hardirq::TIMER_IRQ, timer_interrupt, "timer").is_err() {
            return; // the irq signal is unavailable: no timers (mod_timer still arms)
        }
        IRQ_BOUND.store(true, Ordering::Relaxed);
    }
    if std::thread::Builder::new()
        .name("ktimer".into())
        .spawn(ticker_main)
        .is_ok()
    {
        // Release pairs with the Acquire load above.
        BASE.started.store(true, Ordering::Release);
    }
}

fn kick_ticker() {
    // SeqCst against `ticker_main`'s park (store `parked`, load `word`): either
    // it sees the new word and does not sleep, or we see it parked and wake it.
    BASE.word.fetch_add(1, Ordering::SeqCst);
    if BASE.parked.load(Ordering::SeqCst) {
        futex_wake(&BASE.word);
    }
}

/// Takes the timer base's lock for a `fork` (irqs off until
/// [`fork_unlock`]), so that no other thread is inside it when the child is
/// made.
#[cfg(not(loom))]
pub(super) fn fork_lock() -> crate::ctx::IrqFlags {
    BASE.lock.lock_unmarked()
}

/// Lets go of what [`fork_lock`] took.
#[cfg(not(loom))]
pub(super) fn fork_unlock(flags: crate::ctx::IrqFlags) {
    BASE.lock.unlock_unmarked(flags);
}

/// In the child of a `fork`, alone and under [`fork_lock`]: forgets the
/// parent's threads. A callback that was running on another thread never
/// finishes there, so it no longer counts as running (`del_timer_sync` would
/// wait for it for ever), and the next pass may run. `ktimer` is marked as
/// not started (unless the forking thread is `ktimer`, which it then still
/// is); returns whether it ran in the parent (and is to be started again).
/// The armed timers stay armed.
#[cfg(not(loom))]
pub(super) fn forget_threads_in_child() -> bool {
    // A pass runs on this thread only if it is inside a callback (the fork
    // came from one): `running_on` means something only while `running` is set.
    let ours = !BASE.running.load(Ordering::Relaxed).is_null()
        && BASE.running_on.load(Ordering::Relaxed) == this_thread_id();
    if !ours {
        BASE.running.store(ptr::null_mut(), Ordering::Relaxed);
        BASE.running_on.store(0, Ordering::Relaxed);
        BASE.softirq_busy.store(false, Ordering::Relaxed);
    }
    if IS_KTIMER.with(core::cell::Cell::get) {
        return false;
    }
    BASE.parked.store(false, Ordering::Relaxed);
    TICKING.store(false, Ordering::Relaxed);
    BASE.started.swap(false, Ordering::Relaxed)
}

fn ticker_main() {
    IS_KTIMER.with(|k| k.set(true));
    let tid = crate::arch::gettid();
    loop {
        let seen = BASE.word.load(Ordering::SeqCst);
        if BASE.armed.load(Ordering::Relaxed) == 0 {
            TICKING.store(false, Ordering::Relaxed);
            BASE.parked.store(true, Ordering::SeqCst);
            if BASE.word.load(Ordering::SeqCst) == seen {
                futex_wait(&BASE.word, seen);
            }
            BASE.parked.store(false, Ordering::Relaxed);
            continue;
        }
        advance();
        TICKING.store(true, Ordering::Relaxed);
        let tick = 1_000_000_000 / hz() as u64;
        let since = now_ns().saturating_sub(epoch());
        std::thread::sleep(Duration::from_nanos(tick - since % tick));
        // The handler (and the timer softirq at its exit) runs on this thread
        // before the call returns. A full signal queue just skips a tick.
        let _ = super::hardirq::raise_irq_tid(super::hardirq::TIMER_IRQ, tid);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn time_comparisons_wrap() {
        let a = u64::MAX - 5;
        let b = a.wrapping_add(10); // 4, past the wrap
        assert!(time_after(b, a) && time_before(a, b));
        assert!(time_after_eq(b, a) && time_before_eq(a, b));
        assert!(time_after_eq(a, a) && time_before_eq(a, a));
        assert!(!time_after(a, a) && !time_before(a, a));
        assert!(b < a, "the raw values compare the wrong way");
    }

    #[test]
    fn conversions_round_up_to_ticks() {
        let hz = hz() as u64;
        assert_eq!(msecs_to_jiffies(1000), hz);
        assert_eq!(msecs_to_jiffies(1), 1, "a partial tick rounds up");
        assert_eq!(jiffies_to_msecs(hz), 1000);
        assert_eq!(jiffies_to_msecs(msecs_to_jiffies(40)), 40);
    }

    #[test]
    fn jiffies_advance_without_timers() {
        // Waits for the state, not for a time: a busy machine may take long to
        // run us again, but the clock moves on. The bound only guards a hang.
        let a = jiffies();
        let end = Instant::now() + Duration::from_secs(30);
        while !time_after(jiffies(), a) {
            assert!(Instant::now() < end, "jiffies stood still at {a} for 30 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
