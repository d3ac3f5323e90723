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
//! holds it, so `write_unlock` is a plain release store. Waiters spin on loads
//! with [`crate::Backoff`] and yield once it is spent.

use super::raw::{RawRwSpin, Spin};
use crate::loom::sync::atomic::{AtomicU32, Ordering};

const WRITER: u32 = 1 << 31;

/// Reader-preferring rwlock (`rwlock_t` before qrwlock).
#[derive(Debug)]
pub struct ReaderPref {
    word: AtomicU32,
}

// SAFETY: a writer enters only by CAS 0→WRITER (no readers, no writer) and no
// reader CAS succeeds while WRITER is set; Acquire on every entering CAS pairs
// with the Release of the exits.
unsafe impl RawRwSpin for ReaderPref {
    #[cfg(not(loom))]
    const INIT: Self = ReaderPref {
        word: AtomicU32::new(0),
    };
    #[cfg(loom)]
    fn new() -> Self {
        ReaderPref {
            word: AtomicU32::new(0),
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
        self.word.fetch_sub(1, Ordering::Release);
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
    }

    fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }

    fn is_write_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WRITER != 0
    }
}

impl ReaderPref {
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
                crate::arch::yield_now();
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
                crate::arch::yield_now();
            } else {
                spin.snooze();
            }
        }
    }
}
