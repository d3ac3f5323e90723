//! The queued, fair rwlock (the kernel's `qrwlock`, kernel/locking/qrwlock.c):
//! the lock behind [`RwLock`](super::RwLock).
//!
//! Two words on one cache line. The kernel keeps the writer byte inside the
//! reader count and releases it with a byte store; Rust forbids racing
//! mixed-size atomics on one word, so the writer gets a word of its own
//! (`wlocked`), which only its owner writes: the write release is a plain
//! store, while readers keep one `fetch_add` on `cnts` to enter and one
//! `fetch_sub` to leave.
//!
//! | `wlocked`        | meaning                                        |
//! |------------------|------------------------------------------------|
//! | 0                | no writer                                      |
//! | `WLOCKED`        | a writer holds the lock, or has just claimed it and checks for readers |
//! | `WAITING`        | the queue-head writer waits for the readers to drain: new readers turn away into the queue |
//!
//! | `cnts` bits | name         | meaning                                        |
//! |-------------|--------------|------------------------------------------------|
//! | 0           | `SLEEPING_W` | the queue head sleeps on `wlocked`: the write release must wake it |
//! | 1           | `SLEEPING_R` | the queue-head writer sleeps on `cnts`: the last reader out must wake it |
//! | 2–31        | reader count | in units of `READER` (4)                       |
//!
//! `wlocked` leaves 0 only by a CAS from 0 (a writer claiming it), and nobody
//! but the claimer writes it until it stores 0 again. A reader adds its bias
//! to `cnts` and then loads `wlocked`; a writer claims `wlocked` and then
//! loads `cnts`. Both pairs are SeqCst (the store-buffering pattern: a locked
//! RMW on x86, so no fence instruction): at least one of the two sees the
//! other. A reader that sees a writer's word takes its bias back and queues;
//! a writer that sees readers after claiming `WLOCKED` in its fast path gives
//! the word back (a release, as `write_unlock`) and queues. So a writer holds
//! the lock exactly when it owns `WLOCKED` and saw no reader after claiming it.
//!
//! Contended lockers queue on `wait_lock` (a [`Queued`] spinlock, so waiters
//! are FIFO and sleep when the holder is preempted): the queue head is the
//! only waiter that waits on the lock words. A head writer waits for `wlocked`
//! to be 0, claims it as `WAITING` (which turns new readers away into the
//! queue), waits for the readers to drain, and then stores `WLOCKED` and
//! re-checks the readers (the handshake above; back to `WAITING` if one came
//! in). So a writer waits only for readers that came before it: no
//! starvation. A head reader keeps its bias and waits for `WLOCKED` to clear
//! (a fast-path writer that claimed the word meanwhile sees that bias and
//! gives the word back).
//!
//! The head's waits spin a bounded time and then sleep, as the queued
//! spinlock's head does. Waiting on `wlocked`, it sets `SLEEPING_W`, issues
//! [`heavy_barrier`] and re-checks; a release of `wlocked` (`write_unlock`, a
//! fast-path writer giving the word back) stores, issues [`light_barrier`] and
//! loads `cnts`: the asymmetric fence pair, so the write release pays no fence.
//! Waiting for the readers (on `cnts`), it sets `SLEEPING_R` with an RMW on
//! `cnts`, which the last reader's `fetch_sub` sees: no fence needed. Only the
//! `wait_lock` holder sleeps, so there is at most one sleeper; readers in
//! interrupt context never sleep (they spin and yield).
//!
//! The kernel's irq rule is kept: a reader in interrupt context (hardirq or
//! softirq) does not queue behind a waiting writer — it keeps its bias and
//! waits only for a writer that *holds* the lock (`WLOCKED`) — so `read_lock`
//! in an irq handler cannot deadlock against a writer queued on the same
//! thread it interrupted. A writer's claim reads as `WLOCKED` before the
//! writer knows whether it holds the lock, so irqs are off on the writer's
//! thread across that window ([`ClaimIrqs`]: a thread-local flag).

use super::qspinlock::Queued;
use super::raw::{RawRwSpin, RawSpin, Spin};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::loom::sb_fence;
use crate::loom::sync::atomic::{AtomicU32, Ordering};

/// `wlocked`: a writer holds the lock (or checks for readers after claiming it).
const WLOCKED: u32 = 1;
/// `wlocked`: the queue-head writer waits for the readers to drain.
const WAITING: u32 = 2;
/// `cnts`: the queue head sleeps on `wlocked`.
const SLEEPING_W: u32 = 1;
/// `cnts`: the queue-head writer sleeps on `cnts` for the readers to drain.
const SLEEPING_R: u32 = 2;
/// `cnts`: one reader's bias.
const READER: u32 = 4;

/// The queued fair rwlock (`struct qrwlock`).
#[derive(Debug)]
#[repr(C)]
pub struct QueuedRw {
    /// Reader biases and the sleep flags (module docs).
    cnts: AtomicU32,
    /// The writer's word: 0, `WLOCKED` or `WAITING`; written only by the
    /// writer that claimed it from 0.
    wlocked: AtomicU32,
    wait_lock: Queued,
}

/// A writer's claim of its word is undecided from the claim to its check of
/// the readers (and, if it saw one, until it gives the word back): the word
/// reads as held though the writer may not hold the lock. A reader in
/// interrupt context on the same thread would wait for that word forever (the
/// interrupted writer cannot decide until the handler returns), where the
/// kernel's one-word CAS lets it in (the irq rule). So irqs are off on this
/// thread across that window (a thread-local flag, no system call; an irq
/// arriving meanwhile runs at the restore, when the writer either holds the
/// lock — the kernel's rule then asks for `write_lock_irq*` — or has let go).
/// Not under loom, which models no irqs and shares the thread-local flag
/// between its threads.
#[cfg(not(loom))]
pub(super) type ClaimIrqs = crate::ctx::IrqFlags;
/// See the non-loom definition.
#[cfg(loom)]
pub(super) type ClaimIrqs = ();

/// Opens a claim window (see [`ClaimIrqs`]).
#[inline(always)]
pub(super) fn claim_open() -> ClaimIrqs {
    #[cfg(not(loom))]
    return crate::ctx::local_irq_save();
}

/// Closes a claim window opened by [`claim_open`].
#[inline(always)]
pub(super) fn claim_close(irqs: ClaimIrqs) {
    #[cfg(not(loom))]
    crate::ctx::local_irq_restore(irqs);
    #[cfg(loom)]
    let () = irqs;
}

// SAFETY: a writer holds the lock only while it owns `wlocked` (claimed by a
// CAS from 0, so one writer at a time) as `WLOCKED` and saw no reader bias in
// `cnts` after claiming it; a reader holds it only with its bias in `cnts` and
// `WLOCKED` unseen after adding it (the SeqCst handshake in the module docs:
// one of the two sees the other). Entering accesses are Acquire (SeqCst),
// exits Release.
unsafe impl RawRwSpin for QueuedRw {
    #[cfg(not(loom))]
    const INIT: Self = QueuedRw {
        cnts: AtomicU32::new(0),
        wlocked: AtomicU32::new(0),
        wait_lock: Queued::INIT,
    };
    #[cfg(loom)]
    fn new() -> Self {
        QueuedRw {
            cnts: AtomicU32::new(0),
            wlocked: AtomicU32::new(0),
            wait_lock: Queued::new(),
        }
    }
    const NAME: &'static str = "queued-rw";

    #[inline]
    fn read(&self) {
        // SeqCst: the reader's half of the handshake with a writer's claim of
        // `wlocked` and its load of `cnts` (module docs). The load is also the
        // Acquire that pairs with the Release store of `write_unlock`.
        self.cnts.fetch_add(READER, Ordering::SeqCst);
        sb_fence();
        if self.wlocked.load(Ordering::SeqCst) != 0 {
            self.read_slow();
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
        if self.wlocked.load(Ordering::Relaxed) == 0 {
            // SeqCst: as in `read`.
            self.cnts.fetch_add(READER, Ordering::SeqCst);
            sb_fence();
            if self.wlocked.load(Ordering::SeqCst) == 0 {
                return true;
            }
            self.unbias();
        }
        false
    }

    #[inline]
    unsafe fn read_unlock(&self) {
        self.unbias();
    }

    #[inline]
    fn write(&self) {
        if !self.try_write() {
            self.write_slow();
        }
    }

    #[inline]
    fn try_write(&self) -> bool {
        // No claim while readers hold it: it would only bounce them.
        if self.cnts.load(Ordering::Relaxed) >= READER {
            return false;
        }
        let irqs = claim_open();
        // SeqCst: the writer's half of the handshake with the readers'
        // `fetch_add` and load (module docs); Acquire pairs with the last
        // writer's Release store.
        let got = self
            .wlocked
            .compare_exchange(0, WLOCKED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
            && {
                sb_fence();
                // SeqCst: as above; Acquire pairs with the last reader's
                // Release `fetch_sub`.
                self.cnts.load(Ordering::SeqCst) < READER || {
                    self.give_back();
                    false
                }
            };
        claim_close(irqs);
        got
    }

    #[inline]
    unsafe fn write_unlock(&self) {
        self.release_wlocked();
    }

    fn is_locked(&self) -> bool {
        self.wlocked.load(Ordering::Relaxed) & WLOCKED != 0
            || self.cnts.load(Ordering::Relaxed) >= READER
    }

    fn is_write_locked(&self) -> bool {
        self.wlocked.load(Ordering::Relaxed) & WLOCKED != 0
    }
}

impl QueuedRw {
    /// Stores 0 to `wlocked`, which we own (`write_unlock`, or a claim given
    /// back), and wakes the queue head if it sleeps on it.
    #[inline]
    fn release_wlocked(&self) {
        // Nobody else writes `wlocked` while we own it. Release: pairs with
        // the Acquire of the next reader's or writer's access to it.
        self.wlocked.store(0, Ordering::Release);
        // Orders the store before the `cnts` load, with the sleeper's
        // `heavy_barrier` between its `SLEEPING_W` and its re-check of
        // `wlocked`: one of the two sees the other.
        light_barrier();
        if self.cnts.load(Ordering::Relaxed) & SLEEPING_W != 0 {
            self.wake(&self.wlocked);
        }
    }

    /// A reader came in before our fast-path claim of `wlocked`: give the
    /// word back (a release, as `write_unlock`).
    #[cold]
    fn give_back(&self) {
        self.release_wlocked();
    }

    /// Drops one reader bias (`read_unlock`, or a reader backing off).
    #[inline]
    fn unbias(&self) {
        // Release: pairs with the writer's Acquire load of `cnts` once the
        // readers drained.
        let c = self.cnts.fetch_sub(READER, Ordering::Release);
        if c & SLEEPING_R != 0 && c < 2 * READER {
            // The last reader out, and the waiting writer sleeps.
            self.wake(&self.cnts);
        }
    }

    #[cold]
    fn wake(&self, word: &AtomicU32) {
        crate::arch::futex::wake_one(word);
    }

    /// Waits until no writer holds the lock (readers may), spinning and
    /// yielding: for readers in interrupt context, which must not sleep.
    fn wait_unlocked_writer_spinning(&self) {
        let spin = Spin::new();
        // SeqCst: the reader's side of the handshake (our bias is in); Acquire
        // pairs with the writer's Release store in `write_unlock`.
        while self.wlocked.load(Ordering::SeqCst) & WLOCKED != 0 {
            if spin.is_completed() {
                crate::arch::yield_now();
            } else {
                spin.snooze();
            }
        }
    }

    /// The queue head's wait (we hold `wait_lock`) until `done(wlocked)`:
    /// spins a bounded time, then sleeps on `wlocked` with `SLEEPING_W` set
    /// until the release that makes `done` true wakes us. Returns with
    /// `SLEEPING_W` clear.
    fn head_wait_wlocked(&self, done: impl Fn(u32) -> bool) {
        let spin = Spin::new();
        loop {
            // SeqCst: a head reader's side of the handshake (its bias is in);
            // Acquire pairs with the Release store of the release we waited for.
            if done(self.wlocked.load(Ordering::SeqCst)) {
                return;
            }
            if spin.is_completed() {
                break;
            }
            spin.snooze();
        }
        loop {
            // Relaxed: ordered before the re-check by the heavy barrier.
            self.cnts.fetch_or(SLEEPING_W, Ordering::Relaxed);
            // Pairs with the `light_barrier` of `release_wlocked`: either it
            // sees `SLEEPING_W` and wakes us, or we see its store below.
            heavy_barrier();
            // SeqCst, Acquire: as above.
            let w = self.wlocked.load(Ordering::SeqCst);
            if done(w) {
                self.cnts.fetch_and(!SLEEPING_W, Ordering::Relaxed);
                return;
            }
            // Sleeps only while `wlocked` still holds `w`.
            crate::arch::futex::wait(&self.wlocked, w, None);
        }
    }

    /// The queue-head writer's wait (it owns `wlocked` as `WAITING`) until no
    /// reader bias is left: spins a bounded time, then sleeps on `cnts` with
    /// `SLEEPING_R` set until the last reader out wakes it. Returns with
    /// `SLEEPING_R` clear.
    fn head_wait_readers(&self) {
        let spin = Spin::new();
        loop {
            // Acquire: pairs with the last reader's Release `fetch_sub`.
            if self.cnts.load(Ordering::Acquire) < READER {
                return;
            }
            if spin.is_completed() {
                break;
            }
            spin.snooze();
        }
        loop {
            // Acquire: as above. The RMW is ordered with the readers' RMWs on
            // the same word: either the last one sees `SLEEPING_R` and wakes
            // us, or we see its release here.
            let c = self.cnts.fetch_or(SLEEPING_R, Ordering::Acquire);
            if c < READER {
                self.cnts.fetch_and(!SLEEPING_R, Ordering::Relaxed);
                return;
            }
            // Sleeps only while `cnts` is unchanged since our RMW.
            crate::arch::futex::wait(&self.cnts, c | SLEEPING_R, None);
        }
    }

    /// `queued_read_lock_slowpath`: our bias is already added.
    #[cold]
    fn read_slow(&self) {
        if crate::ctx::in_interrupt() {
            // Readers in interrupt context keep their bias and only wait for an
            // active writer (the irq rule above).
            self.wait_unlocked_writer_spinning();
            return;
        }
        // Our bias came and went, but a waiting writer may have seen it and
        // gone to sleep: leave as `read_unlock` does.
        self.unbias();
        self.wait_lock.lock();
        // SeqCst: as in `read`. A waiting writer behind us in the queue has not
        // claimed `wlocked` yet (it is the queue head only after we leave it),
        // so only a holder or a fast-path writer's claim can be there: the
        // holder releases, a claimer sees our bias and gives the word back.
        self.cnts.fetch_add(READER, Ordering::SeqCst);
        sb_fence();
        self.head_wait_wlocked(|w| w & WLOCKED == 0);
        // SAFETY: we took `wait_lock` above.
        unsafe { self.wait_lock.unlock() };
    }

    /// `queued_write_lock_slowpath`.
    #[cold]
    fn write_slow(&self) {
        self.wait_lock.lock();
        if !self.try_write() {
            // Claim the writer's word as WAITING, turning new readers away
            // into the queue. Relaxed: the claim publishes nothing, and the
            // lock is taken below with SeqCst.
            loop {
                self.head_wait_wlocked(|w| w == 0);
                if self
                    .wlocked
                    .compare_exchange(0, WAITING, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
            }
            loop {
                self.head_wait_readers();
                let irqs = claim_open();
                // SeqCst: the writer's half of the handshake (module docs):
                // a reader that biased before this store is seen below, one
                // after sees `WLOCKED` (and nobody else writes the word we own).
                self.wlocked.store(WLOCKED, Ordering::SeqCst);
                sb_fence();
                // SeqCst: as above; Acquire pairs with the last reader's
                // Release `fetch_sub`.
                if self.cnts.load(Ordering::SeqCst) < READER {
                    claim_close(irqs);
                    break;
                }
                // A reader biased first: one in interrupt context (it does not
                // queue, and goes first), or a fast-path reader about to see
                // our word and back off. No head sleeps on `wlocked` (we are
                // the head), so a store gives `WLOCKED` back.
                self.wlocked.store(WAITING, Ordering::Relaxed);
                claim_close(irqs);
            }
        }
        // SAFETY: we took `wait_lock` above.
        unsafe { self.wait_lock.unlock() };
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_qrwlock_writers_exclude() {
        super::super::loom_support::rw_exclusion::<QueuedRw>();
    }

    /// One reader and one writer, both on their fast paths at once: the
    /// SeqCst handshake of the two words lets at most one in (loom checks the
    /// cell), and whoever backs off gets in after.
    #[test]
    fn loom_qrwlock_reader_writer_handshake() {
        use loom::cell::UnsafeCell;
        use loom::sync::Arc;
        loom::model(|| {
            let s = Arc::new((QueuedRw::new(), UnsafeCell::new(0u32)));
            let s2 = s.clone();
            let r = loom::thread::spawn(move || {
                s2.0.read();
                // SAFETY: read lock held; loom checks no writer overlaps.
                let v = s2.1.with(|p| unsafe { *p });
                // SAFETY: taken just above.
                unsafe { s2.0.read_unlock() };
                v
            });
            s.0.write();
            // SAFETY: write lock held; loom checks exclusivity.
            s.1.with_mut(|p| unsafe { *p += 1 });
            // SAFETY: taken just above.
            unsafe { s.0.write_unlock() };
            assert!(r.join().unwrap() <= 1);
            assert_eq!(s.0.cnts.load(Ordering::Relaxed), 0);
            assert_eq!(s.0.wlocked.load(Ordering::Relaxed), 0);
        });
    }

    /// A writer waits for a reader to drain and, its one-round spin budget
    /// spent, sleeps with `SLEEPING` set; the reader's unlock must wake it
    /// (a lost wake-up shows as a deadlock). Then a reader waits for that
    /// writer the same way.
    #[test]
    fn loom_qrwlock_sleeping_head_is_woken() {
        use loom::sync::Arc;
        loom::model(|| {
            let l = Arc::new(QueuedRw::new());
            l.read();
            let l2 = l.clone();
            let w = loom::thread::spawn(move || {
                l2.write();
                // SAFETY: taken just above.
                unsafe { l2.write_unlock() };
            });
            // SAFETY: taken above, on this thread.
            unsafe { l.read_unlock() };
            l.read();
            // SAFETY: taken just above.
            unsafe { l.read_unlock() };
            w.join().unwrap();
            assert_eq!(l.cnts.load(Ordering::Relaxed), 0);
            assert_eq!(l.wlocked.load(Ordering::Relaxed), 0);
        });
    }
}
