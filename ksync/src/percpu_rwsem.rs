//! `struct percpu_rw_semaphore` as [`PercpuRwSemaphore<T>`]: a reader-writer
//! lock whose readers touch only their own CPU's counter, so reading costs
//! about what an RCU read side does, and whose rare writer pays for it.
//!
//! | kernel | ksync |
//! |---|---|
//! | `DEFINE_STATIC_PERCPU_RWSEM`, `percpu_init_rwsem` | [`PercpuRwSemaphore::new`] |
//! | `percpu_down_read`, `percpu_up_read` | [`read`](crate::lock::Lock::read), drop the guard |
//! | `percpu_down_read_trylock` | [`try_read`](crate::lock::Lock::try_read) |
//! | `percpu_down_write`, `percpu_up_write` | [`write`](crate::lock::Lock::write), drop the guard |
//! | `percpu_is_write_locked` | [`is_write_locked`](crate::lock::Lock::is_write_locked) |
//!
//! # Implementation details
//!
//! | word | values | written by |
//! |---|---|---|
//! | `writer` | `0` no writer; `1` a writer is draining the readers or holds the lock | the writer: CAS `0 → 1` in `down_write`, store `0` in `up_write` |
//! | `readers[cpu]` | how many read holds were taken on this CPU's counter and not yet dropped | readers: `+1` on lock, `-1` on unlock, on the same counter |
//!
//! A reader increments the counter of the CPU it runs on, then reads
//! `writer`; with no writer it holds the lock (one RMW on its own line and a
//! load of a line every reader shares read-only). A writer sets `writer`, then
//! waits until every counter is zero. The two sides form a store→load pair
//! (store-buffering): reader `counter += 1; load writer`, writer
//! `writer = 1; load counters`. The fast side pays nothing for it: the reader's
//! order comes from a compiler barrier ([`light_barrier`]) matched by one
//! [`heavy_barrier`] (`membarrier`) on the writer's side, the kernel's RCU-sync
//! grace period in its user-space form. After that barrier every reader either
//! was counted by then — and the writer waits for its decrement — or sees
//! `writer == 1`, takes back its increment, and waits on `waiters` for the
//! writer to leave (`sched::sleep`, through [`WaitQueue`]).
//!
//! Each read hold decrements the counter it incremented (the thread records
//! it), so every counter is exact and never negative, and "all zero" means no
//! reader holds. The record also makes read holds nest: a reader that finds a
//! writer draining while this thread already holds a read lock on this
//! semaphore keeps its increment and goes on (the writer is waiting for the
//! outer hold anyway); it would otherwise deadlock against that writer.
//!
//! Orderings: a reader's load of `writer` is Acquire and pairs with the
//! Release store of `up_write`; a reader's decrement is Release and pairs with
//! the writer's Acquire loads of the counters, so the read-side critical
//! sections happen before the write. An unlocking reader wakes the writer
//! (`drain`) if, after its decrement and a [`light_barrier`], it sees
//! `writer == 1`: the same pair with the writer's barrier makes sure either the
//! writer's scan sees the decrement or the reader sees the flag.
//!
//! Writers exclude each other with the CAS on `writer` and are preferred to
//! new readers (the kernel's behaviour): a stream of writers can starve
//! readers; this lock is for data that is written rarely.

use core::cell::Cell;
use core::fmt;

use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::lock::{Backend, Guard, Lock, ReadGuard, SharedBackend};
use crate::lockdep::{AcquireKind, LockdepMap};
use crate::loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use crate::percpu::PerCpu;
use crate::sched::WaitQueue;

/// How many read holds one thread may keep at once, over every
/// `PercpuRwSemaphore` (nested or on different semaphores).
pub const MAX_NESTED_READS: usize = 16;

/// `writer`: no writer.
const NO_WRITER: u32 = 0;
/// `writer`: a writer drains the readers or holds the lock.
const WRITER: u32 = 1;

/// This thread's read holds: which semaphore, and which counter it
/// incremented. Only the owning thread touches it.
struct Held {
    entries: [Cell<(usize, *const AtomicUsize)>; MAX_NESTED_READS],
    len: Cell<usize>,
}

impl Held {
    #[cfg(not(loom))]
    const fn new() -> Held {
        Held {
            entries: [const { Cell::new((0, core::ptr::null())) }; MAX_NESTED_READS],
            len: Cell::new(0),
        }
    }

    #[cfg(loom)]
    fn new() -> Held {
        Held {
            entries: core::array::from_fn(|_| Cell::new((0, core::ptr::null()))),
            len: Cell::new(0),
        }
    }

    /// Records a hold; false if the record is full.
    #[inline]
    fn push(&self, sem: usize, counter: &AtomicUsize) -> bool {
        let n = self.len.get();
        if n == MAX_NESTED_READS {
            return false;
        }
        self.entries[n].set((sem, counter));
        self.len.set(n + 1);
        true
    }

    #[inline]
    fn holds(&self, sem: usize) -> bool {
        self.entries[..self.len.get()]
            .iter()
            .any(|e| e.get().0 == sem)
    }

    /// Removes the latest hold of `sem` and returns its counter.
    #[inline]
    fn pop(&self, sem: usize) -> *const AtomicUsize {
        let n = self.len.get();
        let i = (0..n)
            .rev()
            .find(|&i| self.entries[i].get().0 == sem)
            .expect("ksync: percpu_up_read without a read hold on this thread");
        let counter = self.entries[i].get().1;
        self.entries[i].set(self.entries[n - 1].get());
        self.len.set(n - 1);
        counter
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static HELD: Held = const { Held::new() };
}
#[cfg(loom)]
loom::thread_local! {
    static HELD: Held = Held::new();
}

/// The raw per-CPU reader-writer semaphore: the writer flag, the per-CPU
/// reader counters, two wait queues and the lockdep map, without data.
/// [`PercpuRwSemaphore<T>`] is this plus a `T`.
pub struct RawPercpuRwSemaphore {
    /// `NO_WRITER` or `WRITER` (module docs).
    writer: AtomicU32,
    /// Read holds per CPU counter (module docs), each on its own cache line.
    readers: PerCpu<AtomicUsize>,
    /// Readers and writers waiting for `writer == NO_WRITER`.
    waiters: WaitQueue,
    /// The writer, waiting for the counters to drain.
    drain: WaitQueue,
    dep_map: LockdepMap,
}

impl RawPercpuRwSemaphore {
    /// An unlocked semaphore whose lockdep class is the caller's location.
    /// The counters are allocated on first use.
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new() -> Self {
        RawPercpuRwSemaphore {
            writer: AtomicU32::new(NO_WRITER),
            readers: PerCpu::new(),
            waiters: WaitQueue::new(),
            drain: WaitQueue::new(),
            dep_map: LockdepMap::new_sleeping("percpu_rw_semaphore"),
        }
    }

    /// An unlocked semaphore (loom build). The counters are allocated now:
    /// `PerCpu`'s lazy allocation publishes them through std atomics, which
    /// loom does not see, so it would report their first loads as races.
    #[cfg(loom)]
    #[track_caller]
    pub fn new() -> Self {
        RawPercpuRwSemaphore {
            writer: AtomicU32::new(NO_WRITER),
            readers: PerCpu::from_fn(|_| AtomicUsize::new(0)),
            waiters: WaitQueue::new(),
            drain: WaitQueue::new(),
            dep_map: LockdepMap::new_sleeping("percpu_rw_semaphore"),
        }
    }

    #[inline(always)]
    fn key(&self) -> usize {
        self as *const Self as usize
    }

    /// Counts a read hold on this CPU's counter and reports whether no writer
    /// is present (the fast path).
    #[inline(always)]
    fn enter_read(&self) -> (&AtomicUsize, bool) {
        let c = self.readers.this_cpu();
        // Relaxed: the pair with the writer's scan is ordered by the barriers
        // (module docs); the hold's ordering with the writer's data comes from
        // the Acquire load below.
        c.fetch_add(1, Ordering::Relaxed);
        // Our increment before our load of `writer`, paired with the writer's
        // heavy_barrier between its store of `writer` and its counter scan.
        light_barrier();
        // Acquire pairs with the Release store of `up_write`.
        (c, self.writer.load(Ordering::Acquire) == NO_WRITER)
    }

    /// Takes back a hold counted on `c` and wakes a writer that may be
    /// waiting for it.
    #[inline]
    fn leave_read(&self, c: &AtomicUsize) {
        // Release pairs with the writer's Acquire loads of the counters: our
        // read-side critical section happens before its write.
        c.fetch_sub(1, Ordering::Release);
        // Our decrement before our load of `writer`: the same pair as in
        // `enter_read`, so a writer that saw our count sees us wake it.
        light_barrier();
        if self.writer.load(Ordering::Relaxed) != NO_WRITER {
            self.drain.wake_up_all();
        }
    }

    /// Records this thread's hold counted on `c`.
    ///
    /// # Panics
    /// Past [`MAX_NESTED_READS`] holds on this thread; the count is taken back
    /// first, so the semaphore stays usable.
    #[inline(always)]
    fn record(&self, c: &AtomicUsize) {
        if !HELD.with(|h| h.push(self.key(), c)) {
            self.leave_read(c);
            panic!(
                "ksync: more than {MAX_NESTED_READS} percpu_rw_semaphore read locks held by one thread"
            );
        }
    }

    /// A writer is present: go on if this thread already holds a read lock
    /// here (nesting), else back out and wait for the writer to leave.
    #[cold]
    fn read_slow<'a>(&'a self, mut c: &'a AtomicUsize) {
        loop {
            if HELD.with(|h| h.holds(self.key())) {
                // The writer waits for our outer hold: keep this one too.
                self.record(c);
                return;
            }
            self.leave_read(c);
            self.waiters
                .wait_event(|| self.writer.load(Ordering::Relaxed) == NO_WRITER);
            let (again, free) = self.enter_read();
            c = again;
            if free {
                self.record(c);
                return;
            }
        }
    }

    /// Whether every counter is zero. Acquire pairs with the readers' Release
    /// decrements.
    fn drained(&self) -> bool {
        self.readers
            .iter()
            .all(|(_, c)| c.load(Ordering::Acquire) == 0)
    }

    /// Makes this thread the writer: `writer` goes `0 → 1`. Acquire pairs with
    /// the Release store of the previous `up_write`.
    #[inline]
    fn claim(&self) -> bool {
        self.writer
            .compare_exchange(NO_WRITER, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether a writer is present (draining or holding). A snapshot.
    #[inline]
    pub fn is_write_locked(&self) -> bool {
        self.writer.load(Ordering::Relaxed) != NO_WRITER
    }

    /// The read holds counted now, over every CPU. A snapshot, for diagnostics.
    pub fn readers(&self) -> usize {
        self.readers
            .iter()
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    fn unlock_write(&self) {
        // Release pairs with the readers' Acquire loads of `writer` and the
        // next writer's Acquire CAS: our write happens before their sections.
        self.writer.store(NO_WRITER, Ordering::Release);
        self.waiters.wake_up_all();
    }
}

impl Default for RawPercpuRwSemaphore {
    #[track_caller]
    fn default() -> Self {
        RawPercpuRwSemaphore::new()
    }
}

impl fmt::Debug for RawPercpuRwSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawPercpuRwSemaphore")
            .field("writer", &self.is_write_locked())
            .field("readers", &self.readers())
            .finish()
    }
}

// SAFETY: one writer at a time (the CAS `0 → 1` on `writer`), and the writer
// holds only once every counter is zero after its heavy barrier: by then every
// reader is either counted — and the writer waits for its decrement — or sees
// `writer == 1` and backs out (or keeps an increment only while this thread's
// earlier, counted hold keeps the writer waiting). Readers' holds end with a
// Release decrement that the writer's Acquire scan reads; the writer's
// section ends with the Release store of `writer` that readers' Acquire loads
// and the next writer's Acquire CAS read (module docs). Readers share `&T`:
// `Concurrent<T>` is `T`.
unsafe impl Backend for RawPercpuRwSemaphore {
    type GuardState = ();
    type Concurrent<T: ?Sized> = T;
    const NAME: &'static str = "percpu_rw_semaphore";

    #[track_caller]
    fn new() -> Self {
        RawPercpuRwSemaphore::new()
    }

    #[inline(always)]
    fn dep_map(&self) -> Option<&LockdepMap> {
        Some(&self.dep_map)
    }

    /// `percpu_down_write`: claim `writer` (waiting for another writer to
    /// leave), make every reader see it (`heavy_barrier`), wait for the
    /// counters to drain.
    fn lock(&self) {
        while !self.claim() {
            self.waiters
                .wait_event(|| self.writer.load(Ordering::Relaxed) == NO_WRITER);
        }
        // Our store of `writer` before our counter scan, paired with every
        // reader's light_barrier (module docs).
        heavy_barrier();
        self.drain.wait_event(|| self.drained());
    }

    fn try_lock(&self) -> bool {
        if !self.claim() {
            return false;
        }
        heavy_barrier();
        if self.drained() {
            return true;
        }
        self.unlock_write();
        false
    }

    unsafe fn unlock(&self) {
        self.unlock_write();
    }

    fn is_locked(&self) -> bool {
        self.is_write_locked() || self.readers() != 0
    }
}

// SAFETY: a shared hold is granted only with this thread's increment counted
// while no writer holds (module docs, and `Backend`'s argument above); it
// synchronizes-with the last `up_write` through the Acquire load of `writer`.
unsafe impl SharedBackend for RawPercpuRwSemaphore {
    /// Read holds nest on one thread even past a waiting writer (see the
    /// module docs): lockdep's recursive read.
    #[inline(always)]
    fn read_kind(&self) -> AcquireKind {
        AcquireKind::RecursiveRead
    }

    #[inline]
    fn lock_shared(&self) {
        let (c, free) = self.enter_read();
        if free {
            self.record(c);
        } else {
            self.read_slow(c);
        }
    }

    #[inline]
    fn try_lock_shared(&self) -> bool {
        let (c, free) = self.enter_read();
        if free || HELD.with(|h| h.holds(self.key())) {
            self.record(c);
            return true;
        }
        self.leave_read(c);
        false
    }

    #[inline]
    unsafe fn unlock_shared(&self) {
        let c = HELD.with(|h| h.pop(self.key()));
        // SAFETY: `c` is a counter of this semaphore recorded by this thread's
        // read lock, still held (the caller's contract); the counters live as
        // long as the semaphore, which outlives the hold.
        self.leave_read(unsafe { &*c });
    }

    fn is_write_locked(&self) -> bool {
        RawPercpuRwSemaphore::is_write_locked(self)
    }
}

/// A reader-writer semaphore whose readers touch only their own CPU's counter
/// (`struct percpu_rw_semaphore`): the generic [`Lock`] over
/// [`RawPercpuRwSemaphore`]. Reading costs about an RCU read side; writing
/// costs a `membarrier` and waits for every reader, and may sleep. Read
/// guards nest on one thread. `Sync` for `T: Send + Sync`.
///
/// ```
/// use ksync::percpu_rwsem::PercpuRwSemaphore;
/// static CONFIG: PercpuRwSemaphore<u32> = PercpuRwSemaphore::new(1); // DEFINE_STATIC_PERCPU_RWSEM
/// let r = CONFIG.read();                                            // percpu_down_read
/// let nested = CONFIG.read();                                       // read holds nest
/// assert_eq!(*r + *nested, 2);
/// drop((r, nested));                                                // percpu_up_read
/// *CONFIG.write() = 2;                                              // percpu_down_write
/// assert_eq!(*CONFIG.read(), 2);
/// ```
///
/// ```compile_fail
/// use ksync::percpu_rwsem::PercpuRwSemaphore;
/// static S: PercpuRwSemaphore<u32> = PercpuRwSemaphore::new(0);
/// let g = S.read();
/// std::thread::spawn(move || drop(g)); // error: the read guard is not Send
/// ```
#[doc(alias = "percpu_rw_semaphore")]
#[doc(alias = "DEFINE_STATIC_PERCPU_RWSEM")]
#[doc(alias = "percpu_down_read")]
#[doc(alias = "percpu_up_read")]
#[doc(alias = "percpu_down_read_trylock")]
#[doc(alias = "percpu_down_write")]
#[doc(alias = "percpu_up_write")]
pub type PercpuRwSemaphore<T> = Lock<T, RawPercpuRwSemaphore>;

/// A read hold on a [`PercpuRwSemaphore`]; dropping it is `percpu_up_read`.
/// `!Send`: the hold is recorded on the locking thread.
pub type PercpuRwSemaphoreReadGuard<'a, T> = ReadGuard<'a, T, RawPercpuRwSemaphore>;

/// The write hold on a [`PercpuRwSemaphore`]; dropping it is `percpu_up_write`.
pub type PercpuRwSemaphoreWriteGuard<'a, T> = Guard<'a, T, RawPercpuRwSemaphore>;

impl<T> PercpuRwSemaphore<T> {
    /// A new semaphore holding `data` (`percpu_init_rwsem`,
    /// `DEFINE_STATIC_PERCPU_RWSEM`); `const`, for statics: the per-CPU
    /// counters are allocated on first use. Its lockdep class is the caller's
    /// location.
    #[doc(alias = "percpu_init_rwsem")]
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new(data: T) -> Self {
        Lock::from_raw(RawPercpuRwSemaphore::new(), data)
    }

    /// A new semaphore holding `data` (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(data: T) -> Self {
        Lock::from_raw(RawPercpuRwSemaphore::new(), data)
    }
}

impl<T: ?Sized> PercpuRwSemaphore<T> {
    /// The raw semaphore, for [`RawPercpuRwSemaphore::readers`] and the like.
    pub fn raw(&self) -> &RawPercpuRwSemaphore {
        &self.raw
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sched::{TaskState, current};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn wait_until(mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < end, "condition not reached in 30 s");
            std::thread::yield_now();
        }
    }

    #[test]
    fn readers_count_on_their_cpu_and_uncount_on_drop() {
        let s = PercpuRwSemaphore::new(3);
        let a = s.read();
        let b = s.try_read().unwrap();
        assert_eq!(s.raw().readers(), 2);
        assert!(s.try_write().is_none());
        drop((a, b));
        assert_eq!(s.raw().readers(), 0);
        *s.try_write().unwrap() += 1;
        assert_eq!(*s.read(), 4);
    }

    #[test]
    fn a_writer_waits_for_readers_and_blocks_new_ones() {
        let s = PercpuRwSemaphore::new(0u32);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|sc| {
            let r = s.read();
            let w = sc.spawn(|| {
                tx.send(current()).unwrap();
                *s.write() += 1;
            });
            let writer = rx.recv().unwrap();
            // The writer sleeps until our read hold goes.
            wait_until(|| writer.state() == TaskState::Uninterruptible);
            assert!(s.is_write_locked());
            // A new reader on another thread backs out and fails.
            sc.spawn(|| assert!(s.try_read().is_none())).join().unwrap();
            // Our nested read goes on past the draining writer.
            let nested = s.read();
            assert_eq!(*nested, 0);
            drop(nested);
            drop(r);
            w.join().unwrap();
        });
        assert_eq!(*s.read(), 1);
        assert_eq!(s.raw().readers(), 0);
    }

    #[test]
    fn a_reader_sleeps_while_a_writer_holds() {
        let s = PercpuRwSemaphore::new(0u32);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|sc| {
            let mut w = s.write();
            let r = sc.spawn(|| {
                tx.send(current()).unwrap();
                *s.read()
            });
            let reader = rx.recv().unwrap();
            wait_until(|| reader.state() == TaskState::Uninterruptible);
            *w = 7;
            drop(w);
            assert_eq!(r.join().unwrap(), 7);
        });
    }

    #[test]
    fn readers_and_writers_exclude() {
        let s = PercpuRwSemaphore::new((0u64, 0u64));
        std::thread::scope(|sc| {
            for _ in 0..3 {
                sc.spawn(|| {
                    for _ in 0..3000 {
                        let g = s.read();
                        assert_eq!(g.0, g.1, "a reader saw a half-done write");
                    }
                });
            }
            sc.spawn(|| {
                for _ in 0..100 {
                    let mut g = s.write();
                    g.0 += 1;
                    std::hint::black_box(&mut *g);
                    g.1 += 1;
                }
            });
        });
        assert_eq!(*s.read(), (100, 100));
    }

    #[test]
    #[should_panic(expected = "read locks held by one thread")]
    fn too_many_nested_reads_panic() {
        let s = PercpuRwSemaphore::new(());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g: Vec<_> = (0..=MAX_NESTED_READS).map(|_| s.read()).collect();
        }));
        // The failed hold was taken back: a writer gets in.
        assert_eq!(s.raw().readers(), 0);
        drop(s.try_write().expect("no reader left"));
        std::panic::resume_unwind(r.unwrap_err());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    /// The reader/writer handshake of the library's own code: a reader and a
    /// writer never hold at once (the writer's store into the data would race
    /// with the reader's load, which loom reports), and neither misses the
    /// other's wake-up (a lost one deadlocks, which loom reports). Without the
    /// reader's `light_barrier` in `enter_read` this model fails: it checks
    /// the store-buffering pair, not only the happy path.
    #[test]
    fn loom_percpu_rwsem_reader_and_writer_exclude() {
        loom::model(|| {
            let s = Arc::new(PercpuRwSemaphore::new(0u32));
            let s2 = s.clone();
            let w = loom::thread::spawn(move || {
                *s2.write() += 1;
            });
            let v = *s.read();
            assert!(v == 0 || v == 1);
            w.join().unwrap();
            assert_eq!(*s.read(), 1);
        });
    }
}
