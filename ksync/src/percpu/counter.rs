//! [`PercpuCounter`]: `struct percpu_counter` — a counter whose updates touch
//! only a local cache line, folded into a shared count in batches. The design
//! notes are on the type.

use core::cmp::Ordering as CmpOrdering;
use core::fmt;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::arch::CachePadded;

/// One thread's delta for one counter. `CachePadded`: a slot is written at full
/// speed by its owner and must not share a line with anything.
struct Slot {
    delta: CachePadded<AtomicI64>,
}

/// A counter's shared state, behind an `Arc` (threads' entries hold `Weak`s).
///
/// `repr(C)` with three cache lines: the read-mostly fields every add reads
/// (`batch`, `id`, next to the `Arc` counts, which change only when a thread
/// registers or exits), the shared count (written by folds), and the lock with the
/// slot count (written by folds and registrations). A fold by one thread must not
/// evict the line that other threads' fast paths read.
#[repr(C)]
struct Inner {
    /// The default fold threshold.
    batch: i64,
    /// This counter's index in every thread's slot table.
    id: usize,
    /// The shared count (`fbc->count`).
    count: CachePadded<AtomicI64>,
    /// Every live thread slot of this counter (`fbc->lock`, which also
    /// serializes folds), and the number of slots.
    locked: CachePadded<Locked>,
}

struct Locked {
    slots: Mutex<Vec<Arc<Slot>>>,
    /// `slots.len()`, readable without the lock (for `compare`'s error bound).
    nslots: AtomicUsize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        // No poisoning semantics (as everywhere in ksync): the data is a list of
        // slots whose values are atomics, always consistent.
        self.locked.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        ids().free.push(self.id);
    }
}

/// Allocator of small counter ids, so that a thread's table is a plain vector.
struct Ids {
    next: usize,
    free: Vec<usize>,
}

fn ids() -> MutexGuard<'static, Ids> {
    static IDS: Mutex<Ids> = Mutex::new(Ids {
        next: 0,
        free: Vec::new(),
    });
    IDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A thread's slot for one counter. `counter` is weak: the thread must not keep a
/// dropped counter alive, and the weak reference also keeps the counter's
/// allocation (not its contents) alive, so its address identifies it: no other
/// counter can reuse the address while this entry exists.
struct Entry {
    counter: Weak<Inner>,
    slot: Arc<Slot>,
}

/// This thread's slots, indexed by counter id.
struct Local {
    /// Touched only by the owning thread, never re-entrantly: adds from interrupt
    /// context (the only way to re-enter on one thread) bypass the table.
    entries: UnsafeCell<Vec<Option<Entry>>>,
}

impl Drop for Local {
    fn drop(&mut self) {
        // The thread is exiting: fold each slot into its counter, if alive.
        for e in self.entries.get_mut().drain(..).flatten() {
            if let Some(inner) = e.counter.upgrade() {
                let mut slots = inner.lock();
                // Under the lock, so `sum` sees the delta either in the slot or in
                // the count, never in both or neither. Relaxed: the lock orders it.
                let d = e.slot.delta.swap(0, Ordering::Relaxed);
                inner.count.fetch_add(d, Ordering::Relaxed);
                slots.retain(|s| !Arc::ptr_eq(s, &e.slot));
                inner.locked.nslots.store(slots.len(), Ordering::Relaxed);
            }
        }
    }
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            entries: UnsafeCell::new(Vec::new()),
        }
    };
}

/// A counter for hot paths (`struct percpu_counter`): adds touch only this
/// thread's cache line; [`read`](Self::read) is fast and approximate,
/// [`sum`](Self::sum) exact.
///
/// ```
/// use ksync::percpu::PercpuCounter;
///
/// let free_blocks = PercpuCounter::new(1000);
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..100 {
///                 free_blocks.dec();
///             }
///         });
///     }
/// });
/// assert_eq!(free_blocks.sum(), 600);
/// assert!(free_blocks.compare(500).is_gt());
/// ```
///
/// # Implementation details
///
/// The kernel keeps one `s32` delta per CPU and adds to it with `this_cpu_add`
/// under `preempt_disable`, folding it into the shared `s64` count under a spinlock
/// when it reaches the batch (`lib/percpu_counter.c`). A user-space thread cannot
/// disable preemption: a read-modify-write of a per-CPU slot must then be a locked
/// atomic (a migrated thread may race another on the same slot), and a
/// `cpu_id` + locked-add design reaches only about 2× a shared `fetch_add`.
///
/// ksync therefore gives each *thread* its own delta slot per counter — a
/// per-thread approximation of per-CPU data, with the same guarantees:
///
/// - Only the owning thread writes its slot, so an add is a relaxed load and a
///   relaxed store (no `lock` prefix, no contention), and `sum` can still read the
///   slot at any time (both are atomic accesses: no data race).
/// - When `|delta| >= batch`, the owner folds it into the shared count under the
///   counter's lock (`count += delta; delta = 0`), as the kernel does; `sum` takes
///   the same lock, so it never sees a fold half done.
/// - Each counter keeps a registry of its slots; `sum` adds them to the count.
///   When a thread exits, its thread-local destructor folds each of its slots
///   into its counter and unregisters it (under the lock), so no delta is lost.
/// - Adds from interrupt context ([`in_interrupt`](crate::sched::in_interrupt):
///   an irq handler may have interrupted this thread's own load/store pair), from
///   a thread whose thread-locals are being destroyed, or for a thread's first add
///   to a counter before its slot exists, go to the shared count with a
///   `fetch_add` or through the registering slow path.
///
/// | field       | written by                         | read by                     |
/// |-------------|------------------------------------|-----------------------------|
/// | `count`     | folds (under `slots`), irq adds     | `read`, `sum` (under `slots`) |
/// | slot delta  | its owner thread only (and its exit fold) | its owner, `sum`, `set` |
/// | `slots`     | registration and exit (under its lock) | `sum`, `set`, exit       |
///
/// The error of [`read`](PercpuCounter::read) is below `batch` per registered
/// slot, i.e. `batch × threads that used the counter and are alive`, where the
/// kernel's is `batch × online CPUs`; [`compare`](PercpuCounter::compare) uses
/// this bound.
#[doc(alias = "percpu_counter")]
pub struct PercpuCounter {
    inner: Arc<Inner>,
}

impl PercpuCounter {
    /// A counter starting at `value` (`percpu_counter_init`), with the kernel's
    /// default batch, `max(32, 2 × online CPUs)` (`percpu_counter_batch`).
    #[doc(alias = "percpu_counter_init")]
    pub fn new(value: i64) -> Self {
        let batch = (2 * crate::arch::online_cpus()).max(32) as i64;
        Self::with_batch(value, batch)
    }

    /// A counter starting at `value` that folds deltas of `batch` or more.
    ///
    /// # Panics
    ///
    /// If `batch < 1`.
    pub fn with_batch(value: i64, batch: i64) -> Self {
        assert!(batch >= 1, "ksync: percpu_counter batch must be positive");
        let id = {
            let mut ids = ids();
            match ids.free.pop() {
                Some(id) => id,
                None => {
                    ids.next += 1;
                    ids.next - 1
                }
            }
        };
        PercpuCounter {
            inner: Arc::new(Inner {
                count: CachePadded::new(AtomicI64::new(value)),
                locked: CachePadded::new(Locked {
                    slots: Mutex::new(Vec::new()),
                    nslots: AtomicUsize::new(0),
                }),
                batch,
                id,
            }),
        }
    }

    /// The default batch of this counter.
    pub fn batch(&self) -> i64 {
        self.inner.batch
    }

    /// Adds `amount` (`percpu_counter_add`).
    #[doc(alias = "percpu_counter_add")]
    #[doc(alias = "percpu_counter_add_local")]
    #[inline]
    pub fn add(&self, amount: i64) {
        self.add_batch(amount, self.inner.batch);
    }

    /// Adds one (`percpu_counter_inc`).
    #[doc(alias = "percpu_counter_inc")]
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one (`percpu_counter_dec`).
    #[doc(alias = "percpu_counter_dec")]
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Subtracts `amount` (`percpu_counter_sub`).
    #[doc(alias = "percpu_counter_sub")]
    #[inline]
    pub fn sub(&self, amount: i64) {
        self.add(amount.wrapping_neg());
    }

    /// Adds `amount`, folding this thread's delta into the shared count when it
    /// reaches `batch` in magnitude (`percpu_counter_add_batch`).
    #[doc(alias = "percpu_counter_add_batch")]
    #[inline]
    pub fn add_batch(&self, amount: i64, batch: i64) {
        if !crate::sched::in_interrupt() {
            let inner = &*self.inner;
            let hit = LOCAL.try_with(|l| {
                // SAFETY: the table is this thread's and is never accessed
                // re-entrantly (interrupt context is excluded above; nothing below
                // calls back into a counter); this shared borrow ends before any
                // mutable one in `add_slow`.
                let entries = unsafe { &*l.entries.get() };
                match entries.get(inner.id) {
                    Some(Some(e)) if Weak::as_ptr(&e.counter) == Arc::as_ptr(&self.inner) => {
                        // Only this thread stores to its slot: a load and a store,
                        // no locked RMW. Relaxed: `sum` reads it under no ordering
                        // promise; folds are ordered by the lock.
                        let d = e.slot.delta.load(Ordering::Relaxed).wrapping_add(amount);
                        if d.unsigned_abs() < batch.unsigned_abs() {
                            e.slot.delta.store(d, Ordering::Relaxed);
                        } else {
                            fold(inner, &e.slot, d);
                        }
                        true
                    }
                    _ => false,
                }
            });
            match hit {
                Ok(true) => return,
                Ok(false) => return self.add_slow(amount),
                // Thread-locals being destroyed: fall through to the shared count.
                Err(_) => {}
            }
        }
        // Relaxed: a plain statistic; `sum`'s lock does not need to order it.
        self.inner.count.fetch_add(amount, Ordering::Relaxed);
    }

    /// First add of this thread to this counter: make and register its slot.
    #[cold]
    fn add_slow(&self, amount: i64) {
        let inner = &*self.inner;
        let slot = Arc::new(Slot {
            delta: CachePadded::new(AtomicI64::new(0)),
        });
        {
            let mut slots = inner.lock();
            slots.push(slot.clone());
            inner.locked.nslots.store(slots.len(), Ordering::Relaxed);
        }
        let registered = LOCAL.try_with(|l| {
            // SAFETY: as in `add_batch`; no other borrow of the table is live.
            let entries = unsafe { &mut *l.entries.get() };
            if entries.len() <= inner.id {
                entries.resize_with(inner.id + 1, || None);
            }
            // Any entry left here belongs to a dropped counter that had this id.
            entries[inner.id] = Some(Entry {
                counter: Arc::downgrade(&self.inner),
                slot: slot.clone(),
            });
        });
        if registered.is_err() {
            // Thread exiting: nobody will fold the slot; take it back.
            let mut slots = inner.lock();
            slots.retain(|s| !Arc::ptr_eq(s, &slot));
            inner.locked.nslots.store(slots.len(), Ordering::Relaxed);
        }
        inner.count.fetch_add(amount, Ordering::Relaxed);
    }

    /// The shared count: fast, and off by less than `batch` per thread that has
    /// used the counter (`percpu_counter_read`).
    #[doc(alias = "percpu_counter_read")]
    #[inline]
    pub fn read(&self) -> i64 {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// [`read`](Self::read), but never negative (`percpu_counter_read_positive`).
    #[doc(alias = "percpu_counter_read_positive")]
    #[inline]
    pub fn read_positive(&self) -> i64 {
        self.read().max(0)
    }

    /// The exact value: the shared count plus every thread's delta, under the
    /// counter's lock (`percpu_counter_sum`). Exact when no add runs concurrently;
    /// with concurrent adds, some value the counter had during the call.
    #[doc(alias = "percpu_counter_sum")]
    #[doc(alias = "__percpu_counter_sum")]
    pub fn sum(&self) -> i64 {
        let slots = self.inner.lock();
        // Relaxed loads under the lock: folds and exit folds happen under it, so
        // the count and the deltas are read as one consistent set.
        let mut s = self.inner.count.load(Ordering::Relaxed);
        for slot in slots.iter() {
            s = s.wrapping_add(slot.delta.load(Ordering::Relaxed));
        }
        s
    }

    /// [`sum`](Self::sum), but never negative (`percpu_counter_sum_positive`).
    #[doc(alias = "percpu_counter_sum_positive")]
    pub fn sum_positive(&self) -> i64 {
        self.sum().max(0)
    }

    /// Sets the counter to `value` (`percpu_counter_set`): the shared count
    /// becomes `value` minus the deltas, so threads' slots are left alone.
    #[doc(alias = "percpu_counter_set")]
    pub fn set(&self, value: i64) {
        let slots = self.inner.lock();
        let deltas = slots
            .iter()
            .fold(0i64, |s, d| s.wrapping_add(d.delta.load(Ordering::Relaxed)));
        // Relaxed: under the lock, as in `sum`.
        self.inner
            .count
            .store(value.wrapping_sub(deltas), Ordering::Relaxed);
    }

    /// Compares the counter with `rhs` (`percpu_counter_compare`), cheaply when
    /// the approximate value is far enough away: with the default batch.
    #[doc(alias = "percpu_counter_compare")]
    pub fn compare(&self, rhs: i64) -> CmpOrdering {
        self.compare_batch(rhs, self.inner.batch)
    }

    /// Compares the counter with `rhs` given the largest `batch` used with
    /// [`add_batch`](Self::add_batch) (`__percpu_counter_compare`).
    ///
    /// The kernel's error-bound trick: every thread's delta is below `batch` in
    /// magnitude, so if the shared count is more than `batch × slots` away from
    /// `rhs`, its sign is the answer; only otherwise is the exact sum taken.
    #[doc(alias = "__percpu_counter_compare")]
    pub fn compare_batch(&self, rhs: i64, batch: i64) -> CmpOrdering {
        let count = self.read();
        let slots = self.inner.locked.nslots.load(Ordering::Relaxed) as i128;
        let bound = i128::from(batch.max(self.inner.batch)) * slots;
        if (i128::from(count) - i128::from(rhs)).abs() > bound {
            return count.cmp(&rhs);
        }
        self.sum().cmp(&rhs)
    }

    /// Frees the counter (`percpu_counter_destroy`); the same as dropping.
    #[doc(alias = "percpu_counter_destroy")]
    pub fn destroy(self) {}
}

/// Folds `d` (this thread's new delta) into the shared count, under the lock.
#[cold]
fn fold(inner: &Inner, slot: &Slot, d: i64) {
    let _slots = inner.lock();
    // Relaxed: `sum` reads both under the same lock.
    inner.count.fetch_add(d, Ordering::Relaxed);
    slot.delta.store(0, Ordering::Relaxed);
}

impl Default for PercpuCounter {
    fn default() -> Self {
        Self::new(0)
    }
}

impl fmt::Debug for PercpuCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PercpuCounter")
            .field("count", &self.read())
            .field("batch", &self.inner.batch)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn read_lags_by_less_than_a_batch_and_sum_is_exact() {
        let c = PercpuCounter::with_batch(10, 8);
        for _ in 0..7 {
            c.inc();
        }
        // The first add registered the slot and went to the count; six more sit
        // in this thread's slot, below the batch.
        assert_eq!(c.read(), 11);
        assert_eq!(c.sum(), 17);
        c.add(1); // delta reaches 7
        c.add(1); // 8: folded
        assert_eq!(c.read(), 19);
        assert_eq!(c.sum(), 19);
        c.sub(30);
        assert_eq!(c.sum(), -11);
        assert_eq!(c.sum_positive(), 0);
        assert_eq!(c.read_positive(), c.read().max(0));
    }

    #[test]
    fn set_and_compare() {
        let c = PercpuCounter::with_batch(0, 100);
        c.inc();
        for _ in 0..50 {
            c.inc();
        }
        assert_eq!(c.read(), 1);
        c.set(1000);
        assert_eq!(c.sum(), 1000);
        c.add(-40);
        assert_eq!(c.sum(), 960);
        // Far away: decided from the approximate count alone.
        assert_eq!(c.compare(10), CmpOrdering::Greater);
        assert_eq!(c.compare(100_000), CmpOrdering::Less);
        // Close: the exact sum decides, though read() says otherwise.
        assert_ne!(c.read(), 960);
        assert_eq!(c.compare(960), CmpOrdering::Equal);
        assert_eq!(c.compare(961), CmpOrdering::Less);
        assert_eq!(c.compare(959), CmpOrdering::Greater);
    }

    #[test]
    fn ids_are_reused_without_mixing_counters() {
        let a = PercpuCounter::with_batch(0, 1000);
        a.add(1);
        a.add(5);
        drop(a);
        // b may get a's id; this thread's stale entry must not be used for it.
        let b = PercpuCounter::with_batch(0, 1000);
        b.add(2);
        b.add(3);
        assert_eq!(b.sum(), 5);
    }

    #[test]
    fn adds_in_interrupt_context_go_straight_to_the_shared_count() {
        let c = PercpuCounter::with_batch(0, 1000);
        c.add(1); // registers this thread's slot
        c.add(1); // in the slot
        crate::irq::local_bh_disable();
        // bh disabled counts as interrupt context: an irq handler interrupting
        // this thread's own load/store pair must not use the slot.
        c.add(10);
        crate::irq::local_bh_enable();
        assert_eq!((c.read(), c.sum()), (11, 12));
    }

    #[test]
    fn a_thread_outliving_its_counter_exits_cleanly() {
        let c = PercpuCounter::with_batch(0, 1000);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::scope(|s| {
            let h = s.spawn(|| {
                c.add(1);
                c.add(2);
            });
            h.join().unwrap();
            std::thread::spawn({
                let c2 = PercpuCounter::with_batch(0, 1000);
                move || {
                    c2.add(1);
                    c2.add(1);
                    drop(c2); // the counter dies first; the exit fold must skip it
                    rx.recv().unwrap();
                }
            })
        });
        tx.send(()).unwrap();
        t.join().unwrap();
        assert_eq!(c.sum(), 3);
    }

    #[test]
    fn exiting_threads_fold_their_deltas() {
        let c = PercpuCounter::with_batch(0, 1 << 20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.inc();
                    }
                });
            }
        });
        // Whether or not the exit folds have run yet, the sum is exact.
        assert_eq!(c.sum(), 4000);
        let t = std::thread::spawn({
            let c = PercpuCounter::with_batch(5, 1 << 20);
            move || {
                for _ in 0..10 {
                    c.inc();
                }
                c
            }
        });
        let c = t.join().unwrap();
        // The thread exited (joined): its delta is in the shared count now.
        assert_eq!(c.read(), 15);
    }
}
