//! The classic reader-preferring rwlock (the kernel's pre-4.2 `rwlock_t`,
//! before qrwlock).
//!
//! | word       | meaning                                                   |
//! |------------|-----------------------------------------------------------|
//! | `cnts`     | reader biases in units of `READER` (readers holding the lock, or checking for a writer after adding theirs); bit 0 `HEAD_SLEEPS`: the queue-head writer sleeps until they drain |
//! | `writer`   | `WRITER` while a writer holds the lock; `CLAIMING \| id` while thread `id` has just claimed it and checks for readers (undecided); written only by the writer that claimed it from 0 |
//! | `sleepers` | waiters (readers, the queue-head writer) asleep, or about to sleep, on `writer` |
//! | `drained`  | the queue-head writer's futex word while `HEAD_SLEEPS` is set: bumped by the reader that wakes it |
//! | `wait_lock`| the writers' queue (a [`Queued`] spinlock)                |
//!
//! Readers enter whenever no writer *holds* the lock, even while writers
//! wait: a steady stream of readers starves writers — the classic complaint
//! the fair [`QueuedRw`](super::raw::QueuedRw) answers. Readers never look at
//! the writers' queue.
//!
//! A reader adds its bias with one `fetch_add` (it never fails and retries, as
//! a CAS does when readers crowd the line) and then loads `writer`; a writer
//! claims `writer` by a CAS from 0 and then loads `cnts`. Both pairs are
//! SeqCst (the store-buffering pattern: a locked RMW on x86, so no fence
//! instruction), so at least one of the two sees the other. A reader that
//! sees a writer takes its bias back, waits for `writer` to be 0 and tries
//! again; a writer that sees readers gives the word back, and one that sees
//! none stores `WRITER` (it holds the lock). Only the claimer writes
//! `writer`, so `write_unlock` is a plain release store; a reader leaves
//! with one `fetch_sub`. A reader in an irq handler that finds its own
//! thread's undecided claim enters past it, as in
//! [`QueuedRw`](super::raw::QueuedRw) (whose module docs explain why that is
//! sound and needs no irq masking).
//!
//! A writer whose fast path fails queues on `wait_lock`, as qrwlock's
//! writers do: only the queue head waits on the lock words, so one writer at
//! a time polls them (the others spin on, then sleep in, the queued lock),
//! and a last reader out wakes at most that one — where writers that all
//! waited on the words at once took turns bouncing the readers' line and
//! were woken all together by every last reader out. The head claims nothing
//! while it waits (a claim would turn readers away): it waits for `writer`
//! to be 0 and the readers to drain, and then tries the claim as the fast
//! path does. Fast-path writers may still take the lock past the queue.
//!
//! The head polls the words at most every [`HEAD_POLL_GAP`] pauses (on top
//! of its backoff): each poll takes the readers' line away from them, shared,
//! and a reader's next `fetch_add` must fetch it back for writing, so a head
//! that polled from the first pause kept two CPUs bouncing the line while the
//! readers it waited for ran slower. Polled rarely, the readers run with the
//! line hot and the head still sees the first gap between them within a few
//! µs (the two-thread read-mostly row of `ksync bench --group rwlock` ran
//! about twice as fast).
//!
//! Waiters spin with [`crate::Backoff`] and, once it is spent, sleep:
//! - on `writer` (readers, and the head while another writer holds it): a
//!   sleeper counts itself in `sleepers`, issues [`heavy_barrier`], and
//!   re-checks the word before it sleeps; a release of the word
//!   (`write_unlock` or a writer giving its claim back) issues
//!   [`light_barrier`] after its store and wakes every sleeper on it if
//!   `sleepers` is non-zero — the asymmetric fence pair of the queued
//!   spinlock, so the write release pays only a compiler barrier and a load;
//! - for the readers to drain (the head only): it sets `HEAD_SLEEPS` with an
//!   RMW on `cnts` and sleeps on `drained`; the last reader out sees the flag
//!   in the exact result of its own `fetch_sub` (no fence), clears it with a
//!   CAS (so one reader wakes the head, not each of a stream of them), bumps
//!   `drained` and wakes the head. The head sleeps on `drained` and not on
//!   `cnts` because readers that come and go would change `cnts` under its
//!   futex wait and keep it from sleeping.

use super::qspinlock::Queued;
use super::raw::{RawRwSpin, RawSpin, Spin};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::lock::twoword::{
    my_claim, others_claim, reader_enter, reader_passes_claim, reader_try, writer_try,
};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

/// `cnts`: the queue-head writer sleeps on `drained` until the readers drain.
const HEAD_SLEEPS: u32 = 1;
/// `cnts`: one reader's bias.
const READER: u32 = 2;
/// `writer`: a writer holds the lock.
const WRITER: u32 = 1;

/// The pauses the queue-head writer lets pass between two polls of the lock
/// words, besides its backoff (module docs). None under loom, where a pause
/// is a yield and the models only need the order of events.
const HEAD_POLL_GAP: u32 = if cfg!(loom) { 0 } else { 64 };

/// Reader-preferring rwlock (`rwlock_t` before qrwlock).
#[derive(Debug)]
#[repr(C)]
pub struct ReaderPref {
    /// Reader biases and `HEAD_SLEEPS` (module docs).
    cnts: AtomicU32,
    /// 0, `CLAIMING | id` while a writer's claim is undecided, or `WRITER`
    /// while it holds the lock; written only by the writer that claimed it
    /// from 0.
    writer: AtomicU32,
    /// Waiters asleep, or about to sleep, on `writer`.
    sleepers: AtomicU32,
    /// The queue head's futex word while it sleeps for the readers to drain.
    drained: AtomicU32,
    /// The writers' queue: its holder is the only writer waiting on the words.
    wait_lock: Queued,
}

// SAFETY: a writer holds the lock only while it owns `writer` (claimed by a CAS
// from 0: one writer at a time) and saw no reader bias after claiming it; a
// reader holds it only with its bias in `cnts` and `writer` seen 0 after
// adding it (the SeqCst handshake in the module docs: one of the two sees the
// other), or its own thread's undecided claim, which it leaves before that
// claim is decided (`reader_passes_claim`). Entering accesses are Acquire
// (SeqCst), exits Release. The writers' queue only decides which waiting
// writer tries the claim.
unsafe impl RawRwSpin for ReaderPref {
    #[cfg(not(loom))]
    const INIT: Self = ReaderPref {
        cnts: AtomicU32::new(0),
        writer: AtomicU32::new(0),
        sleepers: AtomicU32::new(0),
        drained: AtomicU32::new(0),
        wait_lock: Queued::INIT,
    };
    #[cfg(loom)]
    fn new() -> Self {
        ReaderPref {
            cnts: AtomicU32::new(0),
            writer: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            drained: AtomicU32::new(0),
            wait_lock: Queued::new(),
        }
    }
    const NAME: &'static str = "reader-pref";

    #[inline]
    fn read(&self) {
        let w = reader_enter(&self.cnts, &self.writer, READER);
        if w != 0 {
            self.read_slow(w);
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
        // A writer that holds it, or another thread's claim, turns us away.
        reader_try(
            &self.cnts,
            &self.writer,
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
            &self.writer,
            &self.cnts,
            READER,
            my_claim,
            Some(WRITER),
            || self.give_back(),
        )
    }

    #[inline]
    unsafe fn write_unlock(&self) {
        self.release_writer();
    }

    fn is_locked(&self) -> bool {
        self.cnts.load(Ordering::Relaxed) >= READER || self.is_write_locked()
    }

    /// A writer holds it, or has claimed it on another thread and is about
    /// to decide (as [`QueuedRw`](super::raw::QueuedRw)'s).
    fn is_write_locked(&self) -> bool {
        let w = self.writer.load(Ordering::Relaxed);
        w == WRITER || others_claim(w)
    }
}

impl ReaderPref {
    /// Stores 0 to `writer`, which we own, and wakes its sleepers.
    #[inline]
    fn release_writer(&self) {
        // Nobody else writes `writer` while we own it. Release: pairs with the
        // next entrant's Acquire load or CAS.
        self.writer.store(0, Ordering::Release);
        // Orders our store before the load below, with the sleeper's
        // heavy_barrier() between its `sleepers` increment and its re-check of
        // the word (see `sleep_while_claimed`): one of the two sees the other.
        light_barrier();
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            crate::arch::futex::wake_all(&self.writer);
        }
    }

    /// A reader came in before our claim of `writer`: give the word back.
    #[cold]
    fn give_back(&self) {
        self.release_writer();
    }

    /// Drops one reader bias (`read_unlock`, or a reader backing off).
    #[inline]
    fn unbias(&self) {
        // Release: pairs with a writer's Acquire load of `cnts`. The exact
        // old value: the last reader out while the head sleeps sees its flag.
        if self.cnts.fetch_sub(READER, Ordering::Release) == READER | HEAD_SLEEPS {
            self.wake_head();
        }
    }

    /// The last reader out found `HEAD_SLEEPS`: whoever clears it wakes the
    /// head (one wake-up per sleep). A CAS that fails found a new reader
    /// (its own exit will see the flag) or the head awake and gone.
    #[cold]
    fn wake_head(&self) {
        // Acquire: pairs with the head's Release `fetch_or` of the flag, so
        // that the head's load of `drained` before it cannot see our bump
        // below (it then sleeps on the old value, and our wake finds it, or
        // its wait finds the new value and returns at once).
        if self
            .cnts
            .compare_exchange(HEAD_SLEEPS, 0, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // Relaxed: the futex compares the value atomically with the wake.
            self.drained.fetch_add(1, Ordering::Relaxed);
            crate::arch::futex::wake_one(&self.drained);
        }
    }

    /// The spin budget is spent: sleeps on `writer` while it is non-zero.
    #[cold]
    fn sleep_while_claimed(&self) {
        // Relaxed: ordered before the re-check by the heavy barrier.
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        heavy_barrier();
        // Relaxed: the caller re-checks before it enters.
        let w = self.writer.load(Ordering::Relaxed);
        if w != 0 {
            // Sleeps only while the word still holds `w`; a release after our
            // barrier sees `sleepers` and wakes us.
            crate::arch::futex::wait(&self.writer, w, None);
        }
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// The queue head's spin budget is spent with readers in: sleeps until
    /// the last of them (or of any that follow) leaves (module docs).
    #[cold]
    fn sleep_until_drained(&self) {
        // Relaxed: the Release `fetch_or` below orders it before the flag.
        let seq = self.drained.load(Ordering::Relaxed);
        // Release: pairs with the waker's Acquire CAS (see `wake_head`).
        // The RMW is ordered with the readers' RMWs on `cnts`: either the
        // last reader out sees the flag, or we see no reader here.
        let c = self.cnts.fetch_or(HEAD_SLEEPS, Ordering::Release);
        if c >= READER {
            crate::arch::futex::wait(&self.drained, seq, None);
        }
        // Woken (the waker cleared the flag), or drained already, or a
        // spurious return: take the flag back if it is still up, so that no
        // reader wakes a head that is awake.
        if self.cnts.load(Ordering::Relaxed) & HEAD_SLEEPS != 0 {
            self.cnts.fetch_and(!HEAD_SLEEPS, Ordering::Relaxed);
        }
    }

    /// Our bias is in and a writer's word was seen: take the bias back (a
    /// sleeping head writer may be waiting for it: leave as `read_unlock`
    /// does), wait until the word is 0, and try again. Waiting without a bias
    /// leaves readers and writers on an equal footing when the writer leaves,
    /// as the classic lock's CAS did.
    ///
    /// `w` is the word we saw. If it is this thread's own undecided claim, we
    /// are an irq handler that interrupted that writer: we enter at once
    /// (module docs).
    #[cold]
    fn read_slow(&self, w: u32) {
        if reader_passes_claim(w) {
            return;
        }
        loop {
            self.unbias();
            let spin = Spin::new();
            // Relaxed: only a hint; the SeqCst load below decides.
            while self.writer.load(Ordering::Relaxed) != 0 {
                if spin.is_completed() {
                    self.sleep_while_claimed();
                    spin.reset();
                } else {
                    spin.snooze();
                }
            }
            if reader_passes_claim(reader_enter(&self.cnts, &self.writer, READER)) {
                return;
            }
        }
    }

    /// Queues on `wait_lock`; as the head, waits for `writer` to be 0 and the
    /// readers to drain (spinning, then sleeping on whichever keeps it out),
    /// and claims the word as the fast path does.
    #[cold]
    fn write_slow(&self) {
        self.wait_lock.lock();
        let spin = Spin::new();
        loop {
            // Relaxed: only a hint; `try_write` decides.
            if self.writer.load(Ordering::Relaxed) == 0 && self.try_write() {
                break;
            }
            if spin.is_completed() {
                if self.writer.load(Ordering::Relaxed) != 0 {
                    self.sleep_while_claimed();
                } else {
                    self.sleep_until_drained();
                }
                spin.reset();
            } else {
                spin.snooze();
                for _ in 0..HEAD_POLL_GAP {
                    crate::arch::cpu_relax();
                }
            }
        }
        // SAFETY: we took `wait_lock` above, on this thread.
        unsafe { self.wait_lock.unlock() };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU64;

    /// 16 threads (more than the CPUs), each a writer every fourth operation
    /// and a reader otherwise: writers exclude everyone (a reader never sees
    /// the pair torn), every write lands, and the words end clean — no bias,
    /// claim, sleeper or `HEAD_SLEEPS` flag left behind by the writers' queue.
    #[test]
    fn stress_16_threads_leaves_the_words_clean() {
        let l = ReaderPref::INIT;
        let pair = [AtomicU64::new(0), AtomicU64::new(0)];
        std::thread::scope(|sc| {
            for _ in 0..16 {
                sc.spawn(|| {
                    for i in 0..20_000u32 {
                        if i % 4 == 0 {
                            l.write();
                            // Relaxed: the lock orders these.
                            pair[0].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                            core::hint::spin_loop();
                            pair[1].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                            // SAFETY: taken just above, on this thread.
                            unsafe { l.write_unlock() };
                        } else {
                            l.read();
                            let a = pair[0].load(core::sync::atomic::Ordering::Relaxed);
                            let b = pair[1].load(core::sync::atomic::Ordering::Relaxed);
                            // SAFETY: taken just above, on this thread.
                            unsafe { l.read_unlock() };
                            assert_eq!(a, b, "a reader saw a writer's half-done update");
                        }
                    }
                });
            }
        });
        assert_eq!(
            pair[0].load(core::sync::atomic::Ordering::Relaxed),
            16 * 5_000
        );
        assert_eq!(l.cnts.load(Ordering::Relaxed), 0);
        assert_eq!(l.writer.load(Ordering::Relaxed), 0);
        assert_eq!(l.sleepers.load(Ordering::Relaxed), 0);
        assert!(!l.wait_lock.is_locked());
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
            assert_eq!(s.0.cnts.load(Ordering::Relaxed), 0);
            assert_eq!(s.0.writer.load(Ordering::Relaxed), 0);
        });
    }

    /// A writer waits for a reader and, its one-round spin budget spent,
    /// sleeps for the readers to drain; the reader's unlock (`fetch_sub`
    /// seeing `HEAD_SLEEPS`) must wake it: a lost wake-up shows as a deadlock.
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
            // after another thread wrote something), so the writer can spend
            // its spin budget and sleep before we unlock: a second read lock
            // and unlock, which leaves our first one held.
            assert!(l.is_locked());
            assert!(!l.is_write_locked());
            l.read();
            // SAFETY: taken just above, on this thread.
            unsafe { l.read_unlock() };
            // SAFETY: taken above, on this thread.
            unsafe { l.read_unlock() };
            w.join().unwrap();
            assert_eq!(l.cnts.load(Ordering::Relaxed), 0);
            assert_eq!(l.writer.load(Ordering::Relaxed), 0);
            assert_eq!(l.sleepers.load(Ordering::Relaxed), 0);
        });
    }

    /// Two writers wait for a reader: one as the queue head (its one-round
    /// budget spent, it sleeps for the readers to drain), the other in the
    /// writers' queue. A second read lock is still granted meanwhile (reader
    /// preference), and the last of the two read unlocks must wake the head:
    /// a lost wake-up shows as a deadlock, a flag left up in the final word.
    #[test]
    fn loom_reader_pref_queued_writers_wait_for_the_readers() {
        use loom::sync::Arc;
        loom::model(|| {
            let l = Arc::new(ReaderPref::new());
            l.read();
            let ws: Vec<_> = (0..2)
                .map(|_| {
                    let l = l.clone();
                    loom::thread::spawn(move || {
                        l.write();
                        // SAFETY: taken just above.
                        unsafe { l.write_unlock() };
                    })
                })
                .collect();
            l.read();
            // SAFETY: both taken above, on this thread.
            unsafe { l.read_unlock() };
            // SAFETY: as above.
            unsafe { l.read_unlock() };
            for w in ws {
                w.join().unwrap();
            }
            assert_eq!(l.cnts.load(Ordering::Relaxed), 0);
            assert_eq!(l.writer.load(Ordering::Relaxed), 0);
            assert_eq!(l.sleepers.load(Ordering::Relaxed), 0);
        });
    }
}
