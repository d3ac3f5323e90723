//! [`SeqLock<T>`]: `seqlock_t` — a [`SeqCount`], a writer lock and the data.
//!
//! # The writer lock word
//!
//! | value | meaning                       |
//! |-------|-------------------------------|
//! | 0     | unlocked                      |
//! | 1     | held by a writer (or a locking reader, `read_seqlock_excl`) |
//!
//! A test-and-test-and-set spinlock with randomized backoff that yields after a
//! short spin, taken with preemption (and, for the `_irq`/`_bh` forms, irqs or
//! bottom halves) disabled, as the kernel's `spin_lock` is. It sits next to the
//! count and is touched only by writers, never by lockless readers.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use super::{SeqCount, SeqData, SeqPod};
use crate::irq::{self, IrqFlags};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::sync::atomic::{AtomicU32, Ordering};
use crate::sched;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;

/// The writer-side lock: see the table at the top of this file.
struct WriterLock {
    state: AtomicU32,
}

impl WriterLock {
    #[cfg(not(loom))]
    const fn new() -> Self {
        WriterLock {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        WriterLock {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    #[inline]
    fn lock(&self) {
        // Acquire pairs with the Release store in `unlock`: this writer sees the
        // previous writer's data and count.
        if self
            .state
            .compare_exchange_weak(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[cold]
    fn lock_slow(&self) {
        let backoff = crate::Backoff::new();
        loop {
            // Spin on loads; CAS only when it can succeed.
            while self.state.load(Ordering::Relaxed) != UNLOCKED {
                backoff.snooze();
            }
            // Acquire: as in `lock`.
            if self
                .state
                .compare_exchange_weak(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    #[inline]
    fn unlock(&self) {
        // Release pairs with the Acquire CAS in `lock`.
        self.state.store(UNLOCKED, Ordering::Release);
    }
}

/// How a writer entered, so its guard can undo exactly that.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Plain,
    Irq,
    IrqSave(IrqFlags),
    Bh,
}

/// A sequence lock (`seqlock_t`): lockless readers that retry, writers
/// serialized by a spinlock that never wait for readers.
///
/// `T` is copied in and out ([`SeqPod`]: plain data, no padding): readers get a
/// validated copy from [`read`](Self::read); writers get a guard that derefs to a
/// private copy, written back with atomic stores before the count turns even
/// again. See the [module docs](super) for why the data is never read with plain
/// loads.
///
/// Readers must be free of side effects that a retry would repeat, and must not
/// follow addresses found in `T` (see [`SeqPod`]).
///
/// ```
/// use ksync::seqlock::SeqLock;
///
/// let sl = SeqLock::new([0u64; 8]);
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         for i in 1..=1000u64 {
///             *sl.write() = [i; 8];
///         }
///     });
///     s.spawn(|| {
///         for _ in 0..1000 {
///             let v = sl.read();
///             assert!(v.iter().all(|&x| x == v[0]), "torn read");
///         }
///     });
/// });
/// assert_eq!(sl.read(), [1000; 8]);
/// ```
#[doc(alias = "seqlock_t")]
pub struct SeqLock<T> {
    seq: SeqCount,
    lock: WriterLock,
    map: LockdepMap,
    data: SeqData<T>,
}

// SAFETY: `SeqData<T>` is `Sync` for `T: SeqPod` (atomic accesses only); the
// count and the lock are atomics.
unsafe impl<T: SeqPod> Sync for SeqLock<T> {}

impl<T: SeqPod> SeqLock<T> {
    /// A seqlock holding `value` (`DEFINE_SEQLOCK`, `seqlock_init`). The lockdep
    /// class is the caller's source location.
    #[doc(alias = "DEFINE_SEQLOCK")]
    #[doc(alias = "seqlock_init")]
    #[doc(alias = "__SEQLOCK_UNLOCKED")]
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new(value: T) -> Self {
        SeqLock {
            seq: SeqCount::new(),
            lock: WriterLock::new(),
            map: LockdepMap::new("seqlock_t"),
            data: SeqData::new(value),
        }
    }

    /// A seqlock holding `value` (loom model).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(value: T) -> Self {
        SeqLock {
            seq: SeqCount::new(),
            lock: WriterLock::new(),
            map: LockdepMap::new("seqlock_t"),
            data: SeqData::new(value),
        }
    }

    /// A consistent copy of the data: retries while a writer is active or ran
    /// during the copy. Never blocks a writer; waits only while one is mid-update.
    #[inline]
    pub fn read(&self) -> T {
        loop {
            let start = self.seq.read_begin();
            let v = self.data.load();
            if !self.seq.read_retry(start) {
                return v;
            }
        }
    }

    /// Runs `f` on consistent copies of the data and returns its result from a
    /// validated pass. `f` may run more than once (on torn copies that are then
    /// discarded), so it must not have side effects.
    #[inline]
    pub fn read_with<R>(&self, mut f: impl FnMut(&T) -> R) -> R {
        loop {
            let start = self.seq.read_begin();
            let v = self.data.load();
            let r = f(&v);
            if !self.seq.read_retry(start) {
                return r;
            }
        }
    }

    /// Begins an explicit read section (`read_seqbegin`): waits for an active
    /// writer, returns the count for [`read_retry`](Self::read_retry). Read the
    /// data in between with [`read_unvalidated`](Self::read_unvalidated).
    ///
    /// ```
    /// use ksync::seqlock::SeqLock;
    /// let sl = SeqLock::new([3u32, 4]);
    /// let [a, b] = loop {
    ///     let seq = sl.read_begin();
    ///     let v = sl.read_unvalidated();
    ///     if !sl.read_retry(seq) {
    ///         break v;
    ///     }
    /// };
    /// assert_eq!(a * a + b * b, 25);
    /// ```
    #[doc(alias = "read_seqbegin")]
    #[inline]
    pub fn read_begin(&self) -> u32 {
        self.seq.read_begin()
    }

    /// Whether the read section begun at `start` saw a writer and must be retried
    /// (`read_seqretry`).
    #[doc(alias = "read_seqretry")]
    #[inline]
    #[must_use = "a read section that must be retried saw torn data"]
    pub fn read_retry(&self, start: u32) -> bool {
        self.seq.read_retry(start)
    }

    /// A copy of the data that is consistent only if the surrounding
    /// [`read_begin`](Self::read_begin)/[`read_retry`](Self::read_retry) section
    /// validates. Until then it may be torn: a valid `T` (any bit pattern is), but
    /// a mix of two updates.
    #[inline]
    pub fn read_unvalidated(&self) -> T {
        self.data.load()
    }

    /// A reader that tries once without the lock and, if a writer interfered,
    /// takes the writer lock (excluding writers, without bumping the count) for a
    /// second pass that cannot fail (`read_seqbegin_or_lock`, then
    /// `need_seqretry` and `done_seqretry`). `f` runs at most twice, the first
    /// result possibly discarded. Bounds reader latency under a stream of writers.
    ///
    /// ```
    /// use ksync::seqlock::SeqLock;
    /// let sl = SeqLock::new([1u32, 2]);
    /// assert_eq!(sl.read_or_lock(|v| v[0] + v[1]), 3);
    /// ```
    #[doc(alias = "read_seqbegin_or_lock")]
    #[doc(alias = "need_seqretry")]
    #[doc(alias = "done_seqretry")]
    #[doc(alias = "read_seqbegin_or_lock_irqsave")]
    #[inline]
    pub fn read_or_lock<R>(&self, mut f: impl FnMut(&T) -> R) -> R {
        let start = self.seq.read_begin();
        let v = self.data.load();
        let r = f(&v);
        if !self.seq.read_retry(start) {
            return r;
        }
        self.read_locked_with(f)
    }

    #[cold]
    fn read_locked_with<R>(&self, mut f: impl FnMut(&T) -> R) -> R {
        let v = self.read_locked();
        f(&v)
    }

    /// A copy of the data taken under the writer lock, without touching the count
    /// (`read_seqlock_excl` … `read_sequnlock_excl`): never retries, but waits
    /// for and excludes writers.
    #[doc(alias = "read_seqlock_excl")]
    #[doc(alias = "read_sequnlock_excl")]
    pub fn read_locked(&self) -> T {
        sched::preempt_disable();
        self.lock.lock();
        lockdep::acquire(&self.map, AcquireKind::Exclusive, false, 0);
        // The lock excludes writers, so this copy cannot be torn.
        let v = self.data.load();
        lockdep::release(&self.map);
        self.lock.unlock();
        sched::preempt_enable();
        v
    }

    #[inline]
    fn write_mode(&self, mode: Mode) -> SeqLockWriteGuard<'_, T> {
        sched::preempt_disable();
        self.lock.lock();
        lockdep::acquire(&self.map, AcquireKind::Exclusive, false, 0);
        // SAFETY: we hold the writer lock, so we are the only writer; the guard
        // calls `raw_write_end` exactly once, in `drop`.
        unsafe { self.seq.raw_write_begin() };
        // The lock excludes other writers, so this copy is exact.
        let shadow = self.data.load();
        SeqLockWriteGuard {
            lock: self,
            shadow,
            mode,
            _not_send: PhantomData,
        }
    }

    /// Takes the writer lock and begins an update (`write_seqlock`). The guard
    /// derefs to a copy of the data; dropping it stores the copy, ends the update
    /// and unlocks (`write_sequnlock`).
    #[doc(alias = "write_seqlock")]
    #[inline]
    pub fn write(&self) -> SeqLockWriteGuard<'_, T> {
        self.write_mode(Mode::Plain)
    }

    /// [`write`](Self::write) with irqs disabled on this thread
    /// (`write_seqlock_irq`); the guard re-enables them (`write_sequnlock_irq`).
    #[doc(alias = "write_seqlock_irq")]
    #[inline]
    pub fn write_irq(&self) -> SeqLockWriteGuard<'_, T> {
        irq::local_irq_disable();
        self.write_mode(Mode::Irq)
    }

    /// [`write`](Self::write) saving and disabling irqs
    /// (`write_seqlock_irqsave`); the guard restores them
    /// (`write_sequnlock_irqrestore`).
    #[doc(alias = "write_seqlock_irqsave")]
    #[inline]
    pub fn write_irqsave(&self) -> SeqLockWriteGuard<'_, T> {
        let flags = irq::local_irq_save();
        self.write_mode(Mode::IrqSave(flags))
    }

    /// [`write`](Self::write) with bottom halves disabled (`write_seqlock_bh`);
    /// the guard re-enables them (`write_sequnlock_bh`).
    #[doc(alias = "write_seqlock_bh")]
    #[inline]
    pub fn write_bh(&self) -> SeqLockWriteGuard<'_, T> {
        irq::local_bh_disable();
        self.write_mode(Mode::Bh)
    }

    /// The data, for an owner with exclusive access.
    #[cfg(not(loom))]
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Unwraps the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// The number of completed updates (the count divided by two), for
    /// statistics; an update in progress is not counted.
    pub fn updates(&self) -> u32 {
        self.seq.raw_read() / 2
    }
}

impl<T: SeqPod + Default> Default for SeqLock<T> {
    #[track_caller]
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: SeqPod + fmt::Debug> fmt::Debug for SeqLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqLock")
            .field("data", &self.read())
            .finish()
    }
}

/// An update of a [`SeqLock`] in progress: derefs to a private copy of the data,
/// which is stored (with atomic word stores) when the guard is dropped, before the
/// count turns even and the lock is released.
///
/// `!Send`: it undoes per-thread state (the preempt count, irq or bh disabling,
/// lockdep's held-lock stack) on the thread that took the lock.
///
/// ```compile_fail
/// use ksync::seqlock::SeqLock;
/// static SL: SeqLock<u64> = SeqLock::new(0);
/// let g = SL.write();
/// std::thread::spawn(move || drop(g)); // error: the guard is not `Send`
/// ```
#[must_use = "the update is published and the lock released when the guard is dropped"]
pub struct SeqLockWriteGuard<'a, T: SeqPod> {
    lock: &'a SeqLock<T>,
    shadow: T,
    mode: Mode,
    _not_send: PhantomData<*mut ()>,
}

impl<T: SeqPod> SeqLockWriteGuard<'_, T> {
    /// Publishes the update and unlocks: the same as dropping the guard
    /// (`write_sequnlock`, `write_sequnlock_irq`, `write_sequnlock_irqrestore`,
    /// `write_sequnlock_bh` — the guard remembers which lock call it came from).
    #[doc(alias = "write_sequnlock")]
    #[doc(alias = "write_sequnlock_irq")]
    #[doc(alias = "write_sequnlock_irqrestore")]
    #[doc(alias = "write_sequnlock_bh")]
    #[inline]
    pub fn unlock(self) {}
}

impl<T: SeqPod> Deref for SeqLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.shadow
    }
}

impl<T: SeqPod> DerefMut for SeqLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.shadow
    }
}

impl<T: SeqPod> Drop for SeqLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let l = self.lock;
        l.data.store(&self.shadow);
        // SAFETY: `write_mode` began this update under the writer lock, which we
        // still hold; this is its one `raw_write_end`.
        unsafe { l.seq.raw_write_end() };
        lockdep::release(&l.map);
        l.lock.unlock();
        sched::preempt_enable();
        match self.mode {
            Mode::Plain => {}
            Mode::Irq => irq::local_irq_enable(),
            Mode::IrqSave(flags) => irq::local_irq_restore(flags),
            Mode::Bh => irq::local_bh_enable(),
        }
    }
}

impl<T: SeqPod + fmt::Debug> fmt::Debug for SeqLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SeqLockWriteGuard")
            .field(&self.shadow)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn write_guard_publishes_on_drop_and_counts_updates() {
        let sl = SeqLock::new([0u32; 3]);
        {
            let mut g = sl.write();
            g[1] = 5;
            // Not visible before the guard is dropped; readers would wait.
            assert_eq!(sl.seq.raw_read() & 1, 1);
        }
        assert_eq!(sl.read(), [0, 5, 0]);
        assert_eq!(sl.updates(), 1);
    }

    #[test]
    fn irq_and_bh_variants_restore_the_context() {
        let sl = SeqLock::new(1u64);
        assert!(!irq::irqs_disabled());
        {
            let mut g = sl.write_irq();
            assert!(irq::irqs_disabled());
            *g += 1;
        }
        assert!(!irq::irqs_disabled());
        let g = sl.write_irqsave();
        assert!(irq::irqs_disabled());
        g.unlock();
        assert!(!irq::irqs_disabled());
        {
            let _g = sl.write_bh();
            assert!(sched::in_softirq());
            assert!(!sched::preemptible());
        }
        assert!(!sched::in_softirq());
        assert!(sched::preemptible());
        assert_eq!(sl.read(), 2);
    }

    #[test]
    fn explicit_section_retries_across_a_write() {
        let sl = SeqLock::new(7u16);
        let s = sl.read_begin();
        *sl.write() = 8;
        assert!(sl.read_retry(s));
        let s = sl.read_begin();
        assert_eq!(sl.read_unvalidated(), 8);
        assert!(!sl.read_retry(s));
    }

    #[test]
    fn read_or_lock_falls_back_to_the_lock_after_interference() {
        let sl = SeqLock::new(1u64);
        let mut passes = 0;
        let r = sl.read_or_lock(|v| {
            passes += 1;
            if passes == 1 {
                // A writer interferes with the optimistic pass.
                *sl.write() = 2;
            }
            *v
        });
        assert_eq!((r, passes), (2, 2));
        assert_eq!(sl.read_or_lock(|v| *v), 2);
    }
}
