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
//! | `CLAIMING \| id` | thread `id` has just claimed the word and checks for readers: its claim is undecided |
//! | `WLOCKED`        | a writer holds the lock                        |
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
//! to `cnts` and then loads `wlocked`; a writer claims `wlocked` (as
//! `CLAIMING | id`, its thread's id) and then loads `cnts`. Both pairs are
//! SeqCst (the store-buffering pattern: a locked RMW on x86, so no fence
//! instruction): at least one of the two sees the other. A reader that sees a
//! writer's word takes its bias back and queues; a writer that sees readers
//! after its fast-path claim gives the word back (a release, as
//! `write_unlock`) and queues. A writer that sees none holds the lock, and
//! says so with a plain store of `WLOCKED` to the word it owns. So a writer
//! holds the lock exactly when it owns the word and saw no reader after
//! claiming it; from then on the word reads `WLOCKED`.
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
//! waits only for a writer that holds the lock or may be about to — so
//! `read_lock` in an irq handler cannot deadlock against a writer queued on
//! the same thread it interrupted. The kernel's writer claims and decides in
//! one CAS; ours has a window between its claim and its check of the
//! readers, and an irq may arrive in it. A reader that finds its *own*
//! thread's claim (`CLAIMING | id` with its id) knows the writer is the code
//! it interrupted, still undecided: it enters, and is gone before that writer
//! resumes and checks `cnts`. Any other claim is a writer running elsewhere,
//! which decides in a few instructions: the reader waits. So the claim needs
//! no irq masking, and the fast path touches no thread-local state beyond the
//! cached thread id. The handshake and the claims are
//! [`lock::twoword`](crate::lock::twoword)'s, shared with the other two-word
//! locks.

use super::qspinlock::Queued;
use super::raw::{RawRwSpin, RawSpin, Spin};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::lock::twoword::{
    decide, my_claim, others_claim, reader_enter, reader_passes_claim, reader_try, writer_try,
};
use crate::loom::sb_fence;
use crate::loom::sync::atomic::{AtomicU32, Ordering};

/// `wlocked`: a writer holds the lock.
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
    /// The writer's word: 0, `CLAIMING | id`, `WLOCKED` or `WAITING`;
    /// written only by the writer that claimed it from 0.
    wlocked: AtomicU32,
    wait_lock: Queued,
}

// SAFETY: a writer holds the lock only while it owns `wlocked` (claimed by a
// CAS from 0, so one writer at a time) and saw no reader bias in `cnts` after
// claiming it; a reader holds it only with its bias in `cnts` and no writer's
// word seen after adding it (the SeqCst handshake in the module docs: one of
// the two sees the other), or its own thread's undecided claim, which it
// leaves before that claim is decided (`reader_passes_claim`). Entering
// accesses are Acquire (SeqCst), exits Release.
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
        let w = reader_enter(&self.cnts, &self.wlocked, READER);
        if w != 0 {
            self.read_slow(w);
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
        reader_try(
            &self.cnts,
            &self.wlocked,
            READER,
            reader_passes_claim,
            || self.unbias(),
        )
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
        writer_try(
            &self.wlocked,
            &self.cnts,
            READER,
            my_claim,
            Some(WLOCKED),
            || self.give_back(),
        )
    }

    #[inline]
    unsafe fn write_unlock(&self) {
        self.release_wlocked();
    }

    fn is_locked(&self) -> bool {
        self.is_write_locked() || self.cnts.load(Ordering::Relaxed) >= READER
    }

    /// A writer holds it, or has claimed it on another thread and is about
    /// to decide (an irq handler on the claimer's own thread reads its
    /// undecided claim as not held: it could take a read lock).
    fn is_write_locked(&self) -> bool {
        writer_in(self.wlocked.load(Ordering::Relaxed))
    }
}

/// Whether `w` keeps a reader in interrupt context (or the queue-head reader)
/// out: a writer holds the lock, or another thread's claim may be about to.
#[inline]
fn writer_in(w: u32) -> bool {
    w == WLOCKED || others_claim(w)
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
        while writer_in(self.wlocked.load(Ordering::SeqCst)) {
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

    /// `queued_read_lock_slowpath`: our bias is already added, and we saw `w`
    /// in `wlocked`.
    #[cold]
    fn read_slow(&self, w: u32) {
        if reader_passes_claim(w) {
            // This thread's own undecided claim: we interrupted the writer.
            return;
        }
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
        self.head_wait_wlocked(|w| !writer_in(w));
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
                // SeqCst: the writer's half of the handshake (module docs):
                // a reader that biased before this store is seen below, one
                // after sees our claim (and nobody else writes the word we
                // own).
                self.wlocked.store(my_claim(), Ordering::SeqCst);
                sb_fence();
                // SeqCst: as above; Acquire pairs with the last reader's
                // Release `fetch_sub`.
                if self.cnts.load(Ordering::SeqCst) < READER {
                    decide(&self.wlocked, WLOCKED);
                    break;
                }
                // A reader biased first: one in interrupt context (it does not
                // queue, and goes first), or a fast-path reader about to see
                // our word and back off. No head sleeps on `wlocked` (we are
                // the head), so a store takes the claim back.
                self.wlocked.store(WAITING, Ordering::Relaxed);
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ctx::{HARDIRQ_OFFSET, preempt_count_add, preempt_count_sub};
    use crate::lock::twoword::CLAIMING;

    /// The words a reader may pass: none, or its own thread's undecided
    /// claim. A holder, and another thread's claim, keep it out; a waiting
    /// writer does not (the irq rule).
    #[test]
    fn a_reader_passes_only_its_own_threads_claim() {
        let mine = my_claim();
        let theirs = std::thread::spawn(my_claim).join().unwrap();
        assert_ne!(mine, theirs);
        assert!(mine & CLAIMING != 0 && mine & !CLAIMING != 0);
        assert!(reader_passes_claim(0) && reader_passes_claim(mine));
        for w in [WLOCKED, WAITING, theirs] {
            assert!(!reader_passes_claim(w), "{w:#x}");
        }
        assert!(writer_in(WLOCKED) && writer_in(theirs));
        for w in [0, WAITING, mine] {
            assert!(!writer_in(w), "{w:#x}");
        }
    }

    /// An irq on this thread that arrives between a writer's claim and its
    /// check of the readers: the handler's reader gets in at once (it would
    /// wait for ever for a claim that cannot be decided until it returns),
    /// and is gone when the writer goes on; the writer then sees no reader
    /// and holds the lock, and from then on the word keeps readers out.
    #[test]
    fn an_irq_reader_enters_past_its_own_threads_undecided_claim() {
        let l = QueuedRw::INIT;
        // The writer has claimed the word: it is this thread's claim.
        l.wlocked.store(my_claim(), Ordering::Relaxed);
        assert!(
            !l.is_write_locked(),
            "its own claim does not hold the lock yet"
        );
        preempt_count_add(HARDIRQ_OFFSET);
        l.read();
        assert_eq!(l.cnts.load(Ordering::Relaxed), READER);
        assert!(l.try_read());
        // SAFETY: both taken just above, on this thread.
        unsafe {
            l.read_unlock();
            l.read_unlock();
        }
        preempt_count_sub(HARDIRQ_OFFSET);
        // The writer resumes: no reader is left, so it holds the lock.
        assert!(l.cnts.load(Ordering::Relaxed) < READER);
        decide(&l.wlocked, WLOCKED);
        assert!(l.is_write_locked());
        assert!(!l.try_read());
        // SAFETY: "held" by this thread since `decide`.
        unsafe { l.write_unlock() };
        assert!(!l.is_locked());
    }

    /// A real fast-path writer leaves the word as `WLOCKED` (decided), and a
    /// reader on another thread in irq context waits for it to be released.
    #[test]
    fn a_decided_claim_keeps_an_irq_reader_out_until_released() {
        use core::sync::atomic::AtomicBool;
        let l = QueuedRw::INIT;
        let entered = AtomicBool::new(false);
        l.write();
        assert_eq!(l.wlocked.load(Ordering::Relaxed), WLOCKED);
        std::thread::scope(|s| {
            s.spawn(|| {
                preempt_count_add(HARDIRQ_OFFSET);
                l.read();
                entered.store(true, Ordering::Relaxed);
                // SAFETY: taken just above, on this thread.
                unsafe { l.read_unlock() };
                preempt_count_sub(HARDIRQ_OFFSET);
            });
            // Wait for the reader's bias: it is now waiting on the word.
            while l.cnts.load(Ordering::Relaxed) < READER {
                std::thread::yield_now();
            }
            assert!(!entered.load(Ordering::Relaxed));
            // SAFETY: taken above, on this thread.
            unsafe { l.write_unlock() };
        });
        assert!(entered.load(Ordering::Relaxed));
        assert!(!l.is_locked());
    }
}
