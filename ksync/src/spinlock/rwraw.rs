//! The classic reader-preferring rwlock word (the kernel's pre-4.2 `rwlock_t`,
//! before qrwlock): one 32-bit word.
//!
//! | state        | word            | transitions                                     |
//! |--------------|-----------------|-------------------------------------------------|
//! | unlocked     | 0               | → n+1 readers (`read`: CAS), → `WRITER` (`write`: CAS 0→`WRITER`) |
//! | n readers    | n (1..2^31)     | → n±1 (`read` CAS / `read_unlock` `fetch_sub`)  |
//! | write-locked | `WRITER` (bit 31) | → 0 by the writer's release store             |
//!
//! Readers enter whenever no writer *holds* the lock, even while a writer
//! waits: a steady stream of readers starves writers — the classic complaint
//! the fair [`QueuedRw`](super::raw::QueuedRw) answers. Because readers only
//! CAS from a value without `WRITER`, nobody changes the word while a writer
//! holds it, so `write_unlock` is a plain release store.
//!
//! | `sleepers` | meaning                                                   |
//! |------------|-----------------------------------------------------------|
//! | n          | waiters (readers or writers) asleep, or about to sleep, on `word` |
//!
//! Waiters spin on loads with [`crate::Backoff`] and, once it is spent, sleep
//! on `word` (a futex): a sleeper counts itself in `sleepers`, issues
//! [`heavy_barrier`], and re-checks `word` before it sleeps; an unlock that
//! frees the lock (`write_unlock`, the last `read_unlock`) issues
//! [`light_barrier`] after its store and wakes every sleeper if `sleepers` is
//! non-zero — the asymmetric fence pair of the queued spinlock, so the unlock
//! fast paths pay only a compiler barrier and a load.

use super::raw::{RawRwSpin, Spin};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

const WRITER: u32 = 1 << 31;

/// Reader-preferring rwlock (`rwlock_t` before qrwlock).
#[derive(Debug)]
pub struct ReaderPref {
    word: AtomicU32,
    sleepers: AtomicU32,
}

// SAFETY: a writer enters only by CAS 0→WRITER (no readers, no writer) and no
// reader CAS succeeds while WRITER is set; Acquire on every entering CAS pairs
// with the Release of the exits.
unsafe impl RawRwSpin for ReaderPref {
    #[cfg(not(loom))]
    const INIT: Self = ReaderPref {
        word: AtomicU32::new(0),
        sleepers: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        ReaderPref {
            word: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }
    const NAME: &'static str = "reader-pref";

    #[inline]
    fn read(&self) {
        if !self.try_read() {
            self.read_slow();
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
        let w = self.word.load(Ordering::Relaxed);
        // Acquire: pairs with the writer's Release store in `write_unlock`.
        w & WRITER == 0
            && w < WRITER - 1
            && self
                .word
                .compare_exchange(w, w + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    #[inline]
    unsafe fn read_unlock(&self) {
        // Release: pairs with a writer's Acquire CAS from 0.
        if self.word.fetch_sub(1, Ordering::Release) == 1 {
            self.wake_sleepers();
        }
    }

    #[inline]
    fn write(&self) {
        if !self.try_write() {
            self.write_slow();
        }
    }

    #[inline]
    fn try_write(&self) -> bool {
        // Acquire: pairs with the Release of the last reader or writer out.
        self.word
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    unsafe fn write_unlock(&self) {
        // Nobody else changes the word while WRITER is set. Release: pairs with
        // the next entrant's Acquire CAS.
        self.word.store(0, Ordering::Release);
        self.wake_sleepers();
    }

    fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }

    fn is_write_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WRITER != 0
    }
}

impl ReaderPref {
    /// After an unlock that freed the lock: wakes the sleepers, if any.
    #[inline]
    fn wake_sleepers(&self) {
        // Orders our unlock before the load below, with the sleeper's
        // heavy_barrier() between its `sleepers` increment and its re-check of
        // `word` (see `sleep_while`): one of the two sees the other.
        light_barrier();
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            crate::arch::futex::wake_all(&self.word);
        }
    }

    /// The spin budget is spent: sleeps on `word` while `blocked(word)`.
    #[cold]
    fn sleep_while(&self, blocked: impl Fn(u32) -> bool) {
        // Relaxed: ordered before the re-check by the heavy barrier.
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        heavy_barrier();
        let w = self.word.load(Ordering::Relaxed);
        if blocked(w) {
            // Sleeps only while `word` still holds `w`; an unlock after our
            // barrier sees `sleepers` and wakes us.
            crate::arch::futex::wait(&self.word, w, None);
        }
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    #[cold]
    fn read_slow(&self) {
        let spin = Spin::new();
        loop {
            let w = self.word.load(Ordering::Relaxed);
            if w & WRITER == 0 {
                if self
                    .word
                    .compare_exchange_weak(w, w + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                spin.spin();
            } else if spin.is_completed() {
                self.sleep_while(|w| w & WRITER != 0);
                spin.reset();
            } else {
                spin.snooze();
            }
        }
    }

    #[cold]
    fn write_slow(&self) {
        let spin = Spin::new();
        loop {
            if self.word.load(Ordering::Relaxed) == 0 && self.try_write() {
                return;
            }
            if spin.is_completed() {
                self.sleep_while(|w| w != 0);
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

    /// A writer waits for a reader and, its one-round spin budget spent,
    /// sleeps; the reader's unlock (store, light barrier, `sleepers` load)
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
            assert_eq!(l.word.load(Ordering::Relaxed), 0);
            assert_eq!(l.sleepers.load(Ordering::Relaxed), 0);
        });
    }
}
