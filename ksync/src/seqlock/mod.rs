//! Sequence locks: `seqcount_t`, `seqlock_t` and the latch — readers that take no
//! lock and writers that never wait for readers.
//!
//! A writer makes the sequence count odd, updates the data and makes the count
//! even again. A reader notes the count (waiting while it is odd), copies the
//! data, and checks that the count has not changed; if it has, a writer ran
//! meanwhile and the reader retries. Readers therefore write nothing shared: any
//! number of them run in parallel without moving a cache line, which is what makes
//! a seqlock the fastest read side there is for small, often-read data (the
//! kernel's `jiffies_64`, the vDSO clock, `struct fs_struct`'s paths).
//!
//! | ksync                        | kernel                                        |
//! |------------------------------|-----------------------------------------------|
//! | [`SeqCount`]                 | `seqcount_t`: the count alone; writers are serialized by the caller |
//! | [`SeqLock<T>`]               | `seqlock_t`: the count, a writer spinlock and the data |
//! | [`SeqLatch<T>`]              | `seqcount_latch_t` with two copies of the data: readers never wait |
//! | [`SeqData<T>`]               | the protected data, read and written with atomic words |
//!
//! # The sequence word
//!
//! | value        | meaning                                                   |
//! |--------------|-----------------------------------------------------------|
//! | even `2n`    | no writer; `n` updates completed since initialisation      |
//! | odd `2n + 1` | update `n + 1` in progress; readers wait (or, latch: read the other copy) |
//!
//! Transitions: `2n → 2n+1` (`write_begin`, by the one writer) and `2n+1 → 2n+2`
//! (`write_end`, by the same writer). The count wraps at 2³²; a reader would have
//! to sleep through four billion updates to be fooled.
//!
//! # Soundness in Rust
//!
//! A seqlock reader reads the data *while* a writer may be writing it. In C that
//! is a data race the kernel tolerates; in Rust (and C++) a data race on
//! non-atomic memory is undefined behaviour even if the torn value is thrown away
//! afterwards (H.-J. Boehm, *Can Seqlocks Get Along With Programming Language
//! Memory Models?*, MSPC 2012). The `seqlock` crate and most hand-rolled seqlocks
//! read with `ptr::read_volatile`, which is still a data race. ksync's readers and
//! writers access the data only through [`SeqData`], with relaxed atomic loads and
//! stores of whole words; the copy is assembled in a `MaybeUninit<T>` and only
//! then turned into a `T`. For that, `T` must be [`SeqPod`]: no padding (padding
//! bytes cannot be loaded atomically without reading uninitialised memory) and
//! every bit pattern valid (a torn copy must still be a valid `T`).
//!
//! The orderings are Boehm's "fence" solution:
//!
//! - reader: `seq.load(Acquire)`; data `load(Relaxed)`…; `fence(Acquire)`;
//!   `seq.load(Relaxed)`.
//! - writer: `seq.store(odd, Relaxed)`; `fence(Release)`; data `store(Relaxed)`…;
//!   `seq.store(even, Release)`.
//!
//! If a reader's data load sees any store of a writer, the writer's release fence
//! synchronizes with the reader's acquire fence, so the writer's odd store
//! happens-before the reader's second count load, which therefore sees a changed
//! count: a torn copy is always detected. If the reader's first load saw the even
//! count a writer's `write_end` released, the reader's data loads see that
//! writer's data.
//!
//! # Example
//!
//! The data type derives bytemuck's `Pod` (which checks at compile time that it
//! has no padding); ksync re-exports bytemuck, so a crate that does not depend on
//! it names the re-export with `#[bytemuck(crate = "ksync::seqlock::bytemuck")]`.
//!
//! ```
//! use ksync::seqlock::{Pod, SeqLock, Zeroable};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
//! #[bytemuck(crate = "ksync::seqlock::bytemuck")]
//! #[repr(C)]
//! struct Clock {
//!     sec: u64,
//!     nsec: u64,
//! }
//!
//! static CLOCK: SeqLock<Clock> = SeqLock::new(Clock { sec: 0, nsec: 0 });
//!
//! let mut w = CLOCK.write();
//! w.sec = 1;
//! w.nsec = 500;
//! drop(w);
//! assert_eq!(CLOCK.read(), Clock { sec: 1, nsec: 500 });
//! ```

mod data;
mod latch;
mod lock;

pub use bytemuck::{self, AnyBitPattern, NoUninit, Pod, Zeroable};
pub use data::{SeqData, SeqPod};
pub use latch::SeqLatch;
pub use lock::{READ_LOCKLESS_TRIES, SeqLock, SeqLockWriteGuard};

use crate::loom::sync::atomic::{AtomicU32, Ordering, fence};

/// The sequence count alone (`seqcount_t`): pair it with data in a [`SeqData`]
/// (or other atomics) and serialize the writers yourself.
///
/// The safe writer API, [`write_begin`](Self::write_begin), checks that no other
/// writer is active and panics if one is; the raw forms
/// ([`raw_write_begin`](Self::raw_write_begin)) trust the caller.
///
/// ```
/// use ksync::seqlock::{SeqCount, SeqData};
///
/// let seq = SeqCount::new();
/// let data = SeqData::new([0u64; 2]);
///
/// // Writer (serialized by, e.g., a lock the caller holds):
/// let w = seq.write_begin();
/// data.store(&[7, 7]);
/// w.write_end();
///
/// // Reader:
/// let v = loop {
///     let start = seq.read_begin();
///     let v = data.load();
///     if !seq.read_retry(start) {
///         break v;
///     }
/// };
/// assert_eq!(v, [7, 7]);
/// ```
#[doc(alias = "seqcount_t")]
#[doc(alias = "seqcount_init")]
#[doc(alias = "SEQCNT_ZERO")]
#[derive(Debug)]
pub struct SeqCount {
    /// The sequence word; see the table in the [module docs](self).
    seq: AtomicU32,
}

impl SeqCount {
    /// A count of zero: no writer, no updates (`seqcount_init`, `SEQCNT_ZERO`).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        SeqCount {
            seq: AtomicU32::new(0),
        }
    }

    /// A count of zero (loom model).
    #[cfg(loom)]
    pub fn new() -> Self {
        SeqCount {
            seq: AtomicU32::new(0),
        }
    }

    /// Begins a read section: waits until no writer is active and returns the
    /// (even) count to pass to [`read_retry`](Self::read_retry)
    /// (`read_seqcount_begin`).
    #[doc(alias = "read_seqcount_begin")]
    #[doc(alias = "__read_seqcount_begin")]
    #[inline]
    pub fn read_begin(&self) -> u32 {
        // Acquire pairs with the Release store of `write_end`: the data loads that
        // follow see at least the update that made the count this even value.
        let s = self.seq.load(Ordering::Acquire);
        if s & 1 == 0 {
            s
        } else {
            self.read_begin_slow()
        }
    }

    #[cold]
    fn read_begin_slow(&self) -> u32 {
        let backoff = crate::Backoff::new();
        loop {
            backoff.snooze();
            // Acquire: as in `read_begin`.
            let s = self.seq.load(Ordering::Acquire);
            if s & 1 == 0 {
                return s;
            }
        }
    }

    /// Whether the read section begun at `start` must be retried: a writer began
    /// or completed an update since (`read_seqcount_retry`).
    #[doc(alias = "read_seqcount_retry")]
    #[doc(alias = "__read_seqcount_retry")]
    #[inline]
    #[must_use = "a read section that must be retried saw torn data"]
    pub fn read_retry(&self, start: u32) -> bool {
        // smp_rmb(): this Acquire fence orders the reader's relaxed data loads
        // before the count load below. It pairs with the writer's Release fence in
        // `raw_write_begin`: if any data load saw a store made after that fence,
        // the writer's odd count happens-before the load below, so it differs.
        fence(Ordering::Acquire);
        self.seq.load(Ordering::Relaxed) != start
    }

    /// The count as it is, odd or even, without waiting (`raw_read_seqcount`).
    #[doc(alias = "raw_read_seqcount")]
    #[inline]
    pub fn raw_read(&self) -> u32 {
        // Acquire: as in `read_begin`.
        self.seq.load(Ordering::Acquire)
    }

    /// Begins a read section without waiting for a writer: an odd count is
    /// rounded down, so [`read_retry`](Self::read_retry) fails if a writer was
    /// active (`raw_seqcount_begin`). For readers that must not spin, such as irq
    /// handlers that may have interrupted the writer.
    #[doc(alias = "raw_seqcount_begin")]
    #[doc(alias = "raw_read_seqcount_begin")]
    #[inline]
    pub fn raw_begin(&self) -> u32 {
        self.raw_read() & !1
    }

    /// Begins an update: makes the count odd (`write_seqcount_begin`). The update
    /// ends when the returned guard is dropped or [`write_end`](SeqCountWriteGuard::write_end)
    /// is called.
    ///
    /// # Panics
    ///
    /// If another writer is active: `seqcount_t` writers must be serialized (the
    /// kernel asserts the associated lock is held, `seqcount_LOCKNAME_t`). The
    /// check is one compare-and-swap, which also orders this writer after the
    /// previous one.
    #[doc(alias = "write_seqcount_begin")]
    #[inline]
    pub fn write_begin(&self) -> SeqCountWriteGuard<'_> {
        let s = self.seq.load(Ordering::Relaxed);
        // Acquire on success: this writer's data stores come after the previous
        // writer's (whose `write_end` released the even count we replace).
        if s & 1 != 0
            || self
                .seq
                .compare_exchange(s, s.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            concurrent_writers();
        }
        // smp_wmb(): pairs with the reader's Acquire fence in `read_retry`; the
        // odd count is ordered before every data store that follows.
        fence(Ordering::Release);
        SeqCountWriteGuard { count: self }
    }

    /// Makes the count odd without checking for other writers
    /// (`raw_write_seqcount_begin`).
    ///
    /// # Safety
    ///
    /// Writers must be serialized (hold the lock that protects the data) and every
    /// call must be followed by one [`raw_write_end`](Self::raw_write_end) by the
    /// same writer. Readers built on this count may rely on an even, unchanged
    /// count meaning that no update overlapped their read, so concurrent raw
    /// writers can break the soundness of such code.
    #[doc(alias = "raw_write_seqcount_begin")]
    #[inline]
    pub unsafe fn raw_write_begin(&self) {
        // Relaxed load: only the serialized writer stores this word.
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // smp_wmb(): pairs with the reader's Acquire fence in `read_retry`.
        fence(Ordering::Release);
    }

    /// Makes the count even again (`raw_write_seqcount_end`).
    ///
    /// # Safety
    ///
    /// The caller is the writer that called [`raw_write_begin`](Self::raw_write_begin)
    /// and has not yet ended that update.
    #[doc(alias = "raw_write_seqcount_end")]
    #[inline]
    pub unsafe fn raw_write_end(&self) {
        let s = self.seq.load(Ordering::Relaxed);
        debug_assert!(s & 1 == 1, "ksync: raw_write_end without raw_write_begin");
        // smp_wmb() + store: Release orders the data stores before the even count;
        // pairs with the Acquire load in `read_begin`.
        self.seq.store(s.wrapping_add(1), Ordering::Release);
    }

    /// Switches latch readers to the other copy (`raw_write_seqcount_latch`):
    /// increments the count between two write barriers. See [`SeqLatch`] for the
    /// safe form.
    ///
    /// # Safety
    ///
    /// Writers must be serialized, as for [`raw_write_begin`](Self::raw_write_begin).
    #[doc(alias = "raw_write_seqcount_latch")]
    #[doc(alias = "write_seqcount_latch")]
    #[inline]
    pub unsafe fn raw_write_latch(&self) {
        let s = self.seq.load(Ordering::Relaxed);
        // First smp_wmb(): Release orders the stores to the copy just finished
        // before the count that sends readers to it; pairs with the Acquire load
        // in `raw_read_latch`.
        self.seq.store(s.wrapping_add(1), Ordering::Release);
        // Second smp_wmb(): orders the count before the stores to the copy that
        // readers just left; pairs with the Acquire fence in `read_retry`.
        fence(Ordering::Release);
    }

    /// The count for a latch reader, who picks copy `count & 1`
    /// (`raw_read_seqcount_latch`). Validate with [`read_retry`](Self::read_retry)
    /// (`raw_read_seqcount_latch_retry`).
    #[doc(alias = "raw_read_seqcount_latch")]
    #[doc(alias = "read_seqcount_latch")]
    #[doc(alias = "raw_read_seqcount_latch_retry")]
    #[inline]
    pub fn raw_read_latch(&self) -> u32 {
        // Acquire pairs with the Release store of `raw_write_latch`.
        self.seq.load(Ordering::Acquire)
    }
}

impl Default for SeqCount {
    fn default() -> Self {
        Self::new()
    }
}

#[cold]
#[inline(never)]
fn concurrent_writers() -> ! {
    panic!(
        "ksync: SeqCount::write_begin: another writer is active (seqcount writers must be serialized)"
    );
}

/// An update of a [`SeqCount`] in progress; dropping it makes the count even
/// (`write_seqcount_end`).
#[must_use = "the update ends when the guard is dropped"]
#[derive(Debug)]
pub struct SeqCountWriteGuard<'a> {
    count: &'a SeqCount,
}

impl SeqCountWriteGuard<'_> {
    /// Ends the update (`write_seqcount_end`); the same as dropping the guard.
    #[doc(alias = "write_seqcount_end")]
    #[inline]
    pub fn write_end(self) {}
}

impl Drop for SeqCountWriteGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this guard is the proof that its writer made the count odd with
        // `write_begin` and is the only writer.
        unsafe { self.count.raw_write_end() }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn count_moves_by_two_per_update_and_retry_detects_it() {
        let c = SeqCount::new();
        let s = c.read_begin();
        assert_eq!(s, 0);
        assert!(!c.read_retry(s));
        let g = c.write_begin();
        assert_eq!(c.raw_read(), 1);
        assert_eq!(c.raw_begin(), 0);
        assert!(c.read_retry(s));
        g.write_end();
        assert_eq!(c.read_begin(), 2);
        assert!(c.read_retry(s));
    }

    #[test]
    #[should_panic(expected = "another writer is active")]
    fn overlapping_writers_panic() {
        let c = SeqCount::new();
        let _a = c.write_begin();
        let _b = c.write_begin();
    }

    #[test]
    fn the_types_are_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<SeqCount>();
        shareable::<SeqData<[u64; 8]>>();
        shareable::<SeqLock<[u64; 8]>>();
        shareable::<SeqLatch<[u8; 3]>>();
    }

    #[test]
    fn latch_bump_is_one() {
        let c = SeqCount::new();
        // SAFETY: single-threaded test: the only writer.
        unsafe { c.raw_write_latch() };
        assert_eq!(c.raw_read_latch(), 1);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// A reader whose section validates never returns a torn value: the writer
    /// updates two words (two separate atomic stores) from 0,0 to 1,1 to 2,2.
    #[test]
    fn loom_seqcount_validated_read_is_never_torn() {
        loom::model(|| {
            let seq = Arc::new(SeqCount::new());
            let data = Arc::new(SeqData::new([0u64; 2]));
            let (s2, d2) = (seq.clone(), data.clone());
            let writer = loom::thread::spawn(move || {
                for i in 1..=2u64 {
                    let w = s2.write_begin();
                    d2.store(&[i, i]);
                    w.write_end();
                }
            });
            let start = seq.read_begin();
            let v = data.load();
            if !seq.read_retry(start) {
                assert_eq!(v[0], v[1], "validated a torn read");
                assert_eq!(u64::from(start / 2), v[0], "data does not match the count");
            }
            writer.join().unwrap();
            assert_eq!(data.load(), [2, 2]);
        });
    }
}
