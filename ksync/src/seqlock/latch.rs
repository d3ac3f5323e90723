//! [`SeqLatch<T>`]: the latch form of the seqcount (`seqcount_latch_t`,
//! `raw_write_seqcount_latch`) — two copies of the data, so readers never wait.
//!
//! # Implementation details
//!
//! The count's low bit names the copy readers use: `data[seq & 1]`. A writer
//!
//! 1. bumps the count (odd): readers move to `data[1]`;
//! 2. updates `data[0]`;
//! 3. bumps the count (even): readers move to `data[0]`;
//! 4. updates `data[1]`.
//!
//! At every moment one copy is stable, so a reader — even an irq handler that
//! interrupted the writer on the same thread, or a reader in an NMI — finds a
//! consistent value without spinning; it retries only if the count moved during
//! its copy (then the writer has made progress, so the retry is bounded by the
//! writer's speed). The kernel uses this for `sched_clock` and the timekeeping
//! fast path (`ktime_get_mono_fast_ns`) and the module address tree.
//!
//! | `seq`   | readers use | writer may be storing |
//! |---------|-------------|-----------------------|
//! | even    | `data[0]`   | `data[1]` (step 4)    |
//! | odd     | `data[1]`   | `data[0]` (step 2)    |

use core::fmt;

use super::{SeqCount, SeqData, SeqPod};
use crate::loom::sync::atomic::{AtomicBool, Ordering};

/// A latch-protected value (`seqcount_latch_t` with its two copies): lockless,
/// wait-free-to-start readers that work from any context, including one that
/// interrupted the writer.
///
/// Writers are serialized by an internal flag (a writer waits for another
/// writer; never for readers). A writer must not be interrupted by another
/// writer on its own thread (an irq handler that writes would spin forever).
///
/// ```
/// use ksync::seqlock::SeqLatch;
/// let clock = SeqLatch::new([1u64, 10]);
/// clock.write([2, 20]);
/// assert_eq!(clock.read(), [2, 20]);
/// ```
#[doc(alias = "seqcount_latch_t")]
pub struct SeqLatch<T> {
    seq: SeqCount,
    /// Serializes writers: `false` free, `true` a writer is updating.
    writer: AtomicBool,
    data: [SeqData<T>; 2],
}

impl<T: SeqPod> SeqLatch<T> {
    /// A latch holding `value` in both copies.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        SeqLatch {
            seq: SeqCount::new(),
            writer: AtomicBool::new(false),
            data: [SeqData::new(value), SeqData::new(value)],
        }
    }

    /// A latch holding `value` (loom model).
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        SeqLatch {
            seq: SeqCount::new(),
            writer: AtomicBool::new(false),
            data: [SeqData::new(value), SeqData::new(value)],
        }
    }

    /// A consistent copy of the value (`raw_read_seqcount_latch` …
    /// `raw_read_seqcount_latch_retry`). Never waits for a writer.
    #[doc(alias = "raw_read_seqcount_latch")]
    #[doc(alias = "raw_read_seqcount_latch_retry")]
    #[doc(alias = "read_seqcount_latch_retry")]
    #[inline]
    pub fn read(&self) -> T {
        loop {
            let start = self.seq.raw_read_latch();
            let v = self.data[(start & 1) as usize].load();
            // Acquire fence inside `read_retry` pairs with the Release fence of
            // `raw_write_latch`: a copy torn by the writer's later stores is seen
            // as a moved count.
            if !self.seq.read_retry(start) {
                return v;
            }
        }
    }

    /// Publishes `value` (`raw_write_seqcount_latch` twice, updating the copy
    /// readers have just left each time).
    #[doc(alias = "raw_write_seqcount_latch")]
    #[doc(alias = "write_seqcount_latch_begin")]
    #[doc(alias = "write_seqcount_latch_end")]
    pub fn write(&self, value: T) {
        self.lock_writer();
        // SAFETY: the writer flag serializes writers.
        unsafe { self.seq.raw_write_latch() };
        self.data[0].store(&value);
        // SAFETY: as above.
        unsafe { self.seq.raw_write_latch() };
        self.data[1].store(&value);
        // Release pairs with the Acquire in `lock_writer`: the next writer's
        // count and copies follow ours.
        self.writer.store(false, Ordering::Release);
    }

    #[inline]
    fn lock_writer(&self) {
        let backoff = crate::Backoff::new();
        // Acquire pairs with the Release store at the end of `write`.
        while self
            .writer
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.writer.load(Ordering::Relaxed) {
                backoff.snooze();
            }
        }
    }

    /// The number of completed [`write`](Self::write)s.
    pub fn updates(&self) -> u32 {
        self.seq.raw_read_latch() / 2
    }
}

impl<T: SeqPod + fmt::Debug> fmt::Debug for SeqLatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqLatch")
            .field("data", &self.read())
            .finish()
    }
}

impl<T: SeqPod + Default> Default for SeqLatch<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reader_uses_the_stable_copy_mid_update() {
        let l = SeqLatch::new(1u64);
        // Simulate a writer interrupted after step 1: count odd, data[0] being
        // rewritten. A reader (an irq handler) must not wait and reads data[1].
        // SAFETY: single-threaded test: the only writer.
        unsafe { l.seq.raw_write_latch() };
        l.data[0].store(&99);
        assert_eq!(l.read(), 1);
        l.data[0].store(&2);
        // SAFETY: as above.
        unsafe { l.seq.raw_write_latch() };
        assert_eq!(l.read(), 2);
        l.data[1].store(&2);
        l.write(3);
        assert_eq!((l.read(), l.updates()), (3, 2));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// A latch reader never returns a torn or never-written value, and never
    /// waits for the writer.
    #[test]
    fn loom_latch_read_is_never_torn() {
        loom::model(|| {
            let latch = Arc::new(SeqLatch::new([0u64; 2]));
            let l2 = latch.clone();
            let writer = loom::thread::spawn(move || {
                l2.write([1, 1]);
            });
            let v = latch.read();
            assert_eq!(v[0], v[1], "torn latch read");
            assert!(v[0] <= 1);
            writer.join().unwrap();
            assert_eq!(latch.read(), [1, 1]);
        });
    }
}
