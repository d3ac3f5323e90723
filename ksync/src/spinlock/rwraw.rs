//! The classic reader-preferring rwlock (the kernel's pre-4.2 `rwlock_t`,
//! before qrwlock).
//!
//! | word      | meaning                                                   |
//! |-----------|-----------------------------------------------------------|
//! | `readers` | reader biases: readers holding the lock, or checking for a writer after adding theirs |
//! | `writer`  | 1 while a writer holds the lock, or has just claimed it and checks for readers; written only by the writer that claimed it from 0 |
//! | `sleepers`| waiters (readers or writers) asleep, or about to sleep, on `readers` or `writer` |
//!
//! Readers enter whenever no writer *holds* the lock, even while a writer
//! waits: a steady stream of readers starves writers — the classic complaint
//! the fair [`QueuedRw`](super::raw::QueuedRw) answers.
//!
//! A reader adds its bias with one `fetch_add` (it never fails and retries, as
//! a CAS does when readers crowd the line) and then loads `writer`; a writer
//! claims `writer` by a CAS from 0 and then loads `readers`. Both pairs are
//! SeqCst (the store-buffering pattern: a locked RMW on x86, so no fence
//! instruction), so at least one of the two sees the other. A reader that
//! sees a writer takes its bias back, waits for `writer` to be 0 and tries
//! again; a writer that sees readers gives the word back and waits for both
//! words to be 0. Only the claimer
//! writes `writer`, so `write_unlock` is a plain release store; a reader
//! leaves with one `fetch_sub`.
//!
//! Waiters spin with [`crate::Backoff`] and, once it is spent, sleep on the
//! word they wait for (a futex): a sleeper counts itself in `sleepers`, issues
//! [`heavy_barrier`], and re-checks the word before it sleeps; a release that
//! frees a word (`write_unlock` or a writer giving its claim back, the last
//! `read_unlock`) issues [`light_barrier`] after its store or RMW and wakes
//! every sleeper on that word if `sleepers` is non-zero — the asymmetric
//! fence pair of the queued spinlock, so the unlock fast paths pay only a
//! compiler barrier and a load.

use super::qrwlock::{claim_close, claim_open};
use super::raw::{RawRwSpin, Spin};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

/// Reader-preferring rwlock (`rwlock_t` before qrwlock).
#[derive(Debug)]
pub struct ReaderPref {
    readers: AtomicU32,
    writer: AtomicU32,
    sleepers: AtomicU32,
}

/// Under loom, the SeqCst fence the reader/writer handshake needs between an
/// RMW on one word and the load of the other: loom models SeqCst accesses as
/// AcqRel (its README; `fence(SeqCst)` it models exactly). Natively the
/// SeqCst accesses themselves forbid the store-buffering outcome, so this is
/// nothing.
#[inline(always)]
fn sb_fence() {
    #[cfg(loom)]
    crate::loom::sync::atomic::fence(Ordering::SeqCst);
}

// SAFETY: a writer holds the lock only while it owns `writer` (claimed by a CAS
// from 0: one writer at a time) and saw no reader bias after claiming it; a
// reader holds it only with its bias in `readers` and `writer` seen 0 after
// adding it (the SeqCst handshake in the module docs: one of the two sees the
// other). Entering accesses are Acquire (SeqCst), exits Release.
unsafe impl RawRwSpin for ReaderPref {
    #[cfg(not(loom))]
    const INIT: Self = ReaderPref {
        readers: AtomicU32::new(0),
        writer: AtomicU32::new(0),
        sleepers: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        ReaderPref {
            readers: AtomicU32::new(0),
            writer: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }
    const NAME: &'static str = "reader-pref";

    #[inline]
    fn read(&self) {
        // SeqCst: the reader's half of the handshake with a writer's claim and
        // its load of `readers` (module docs). The load is also the Acquire
        // that pairs with the writer's Release store in `write_unlock`.
        self.readers.fetch_add(1, Ordering::SeqCst);
        sb_fence();
        if self.writer.load(Ordering::SeqCst) != 0 {
            self.read_slow();
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
        if self.writer.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // SeqCst: as in `read`.
        self.readers.fetch_add(1, Ordering::SeqCst);
        sb_fence();
        if self.writer.load(Ordering::SeqCst) == 0 {
            return true;
        }
        // A writer holds it, or claimed it: take our bias back.
        self.unbias();
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
        if self.readers.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // Irqs off while the claim is undecided (`claim_open`'s docs: a reader
        // in an irq on this thread must not wait for a claim that may yield).
        let irqs = claim_open();
        // SeqCst: the writer's half of the handshake with the readers'
        // `fetch_add` and load (module docs); Acquire pairs with the last
        // writer's Release store.
        let got = self
            .writer
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
            && {
                sb_fence();
                // SeqCst: as above; Acquire pairs with the last reader's
                // Release `fetch_sub`.
                self.readers.load(Ordering::SeqCst) == 0 || {
                    self.give_back();
                    false
                }
            };
        claim_close(irqs);
        got
    }

    #[inline]
    unsafe fn write_unlock(&self) {
        self.release_writer();
    }

    fn is_locked(&self) -> bool {
        self.readers.load(Ordering::Relaxed) != 0 || self.writer.load(Ordering::Relaxed) != 0
    }

    fn is_write_locked(&self) -> bool {
        self.writer.load(Ordering::Relaxed) != 0
    }
}

impl ReaderPref {
    /// Stores 0 to `writer`, which we own, and wakes its sleepers.
    #[inline]
    fn release_writer(&self) {
        // Nobody else writes `writer` while we own it. Release: pairs with the
        // next entrant's Acquire load or CAS.
        self.writer.store(0, Ordering::Release);
        self.wake_sleepers(&self.writer);
    }

    /// A reader came in before our claim of `writer`: give the word back.
    #[cold]
    fn give_back(&self) {
        self.release_writer();
    }

    /// Drops one reader bias (`read_unlock`, or a reader backing off).
    #[inline]
    fn unbias(&self) {
        // Release: pairs with a writer's Acquire load of `readers`.
        if self.readers.fetch_sub(1, Ordering::Release) == 1 {
            self.wake_sleepers(&self.readers);
        }
    }

    /// After a release that freed `word`: wakes its sleepers, if any.
    #[inline]
    fn wake_sleepers(&self, word: &AtomicU32) {
        // Orders our release before the load below, with the sleeper's
        // heavy_barrier() between its `sleepers` increment and its re-check of
        // the word (see `sleep_while`): one of the two sees the other.
        light_barrier();
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            crate::arch::futex::wake_all(word);
        }
    }

    /// The spin budget is spent: sleeps on `word` while it is non-zero.
    #[cold]
    fn sleep_while_set(&self, word: &AtomicU32) {
        // Relaxed: ordered before the re-check by the heavy barrier.
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        heavy_barrier();
        // Relaxed: the caller re-checks before it enters.
        let w = word.load(Ordering::Relaxed);
        if w != 0 {
            // Sleeps only while the word still holds `w`; a release after our
            // barrier sees `sleepers` and wakes us.
            crate::arch::futex::wait(word, w, None);
        }
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Our bias is in and a writer's word was seen: take the bias back (a
    /// waiting writer may have seen it and gone to sleep: leave as
    /// `read_unlock` does), wait until the word is 0, and try again. Waiting
    /// without a bias leaves readers and writers on an equal footing when the
    /// writer leaves, as the classic lock's CAS did.
    #[cold]
    fn read_slow(&self) {
        loop {
            self.unbias();
            let spin = Spin::new();
            // Relaxed: only a hint; the SeqCst load below decides.
            while self.writer.load(Ordering::Relaxed) != 0 {
                if spin.is_completed() {
                    self.sleep_while_set(&self.writer);
                    spin.reset();
                } else {
                    spin.snooze();
                }
            }
            // SeqCst: as in `read`.
            self.readers.fetch_add(1, Ordering::SeqCst);
            sb_fence();
            if self.writer.load(Ordering::SeqCst) == 0 {
                return;
            }
        }
    }

    #[cold]
    fn write_slow(&self) {
        let spin = Spin::new();
        loop {
            if self.writer.load(Ordering::Relaxed) == 0 && self.try_write() {
                return;
            }
            if spin.is_completed() {
                // Wait for whichever word keeps us out.
                if self.writer.load(Ordering::Relaxed) != 0 {
                    self.sleep_while_set(&self.writer);
                } else {
                    self.sleep_while_set(&self.readers);
                }
                spin.reset();
            } else {
                spin.snooze();
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_reader_pref_excludes() {
        super::super::loom_support::rw_exclusion::<ReaderPref>();
    }

    /// One reader and one writer, both on their fast paths at once: the
    /// SeqCst handshake of the two words lets at most one in (loom checks the
    /// cell), and whoever backs off gets in after.
    #[test]
    fn loom_reader_pref_reader_writer_handshake() {
        use loom::cell::UnsafeCell;
        use loom::sync::Arc;
        loom::model(|| {
            let s = Arc::new((ReaderPref::new(), UnsafeCell::new(0u32)));
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
            assert_eq!(s.0.readers.load(Ordering::Relaxed), 0);
            assert_eq!(s.0.writer.load(Ordering::Relaxed), 0);
        });
    }

    /// A writer waits for a reader and, its one-round spin budget spent,
    /// sleeps; the reader's unlock (`fetch_sub`, light barrier, `sleepers` load)
    /// must wake it: a lost wake-up shows as a deadlock.
    #[test]
    fn loom_reader_pref_sleeping_writer_is_woken() {
        use loom::sync::Arc;
        loom::model(|| {
            let l = Arc::new(ReaderPref::new());
            l.read();
            let l2 = l.clone();
            let w = loom::thread::spawn(move || {
                l2.write();
                // SAFETY: taken just above.
                unsafe { l2.write_unlock() };
            });
            // Some progress of ours (loom runs a yielding waiter again only
            // after another thread did something), so the writer can spend
            // its spin budget and sleep before we unlock.
            assert!(l.is_locked());
            assert!(!l.is_write_locked());
            // SAFETY: taken above, on this thread.
            unsafe { l.read_unlock() };
            w.join().unwrap();
            assert_eq!(l.readers.load(Ordering::Relaxed), 0);
            assert_eq!(l.writer.load(Ordering::Relaxed), 0);
            assert_eq!(l.sleepers.load(Ordering::Relaxed), 0);
        });
    }
}
