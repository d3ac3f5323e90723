//! [`PercpuCounter`]: `struct percpu_counter` — a counter whose updates touch
//! only a local cache line, folded into a shared count in batches. The design
//! notes are on the type.

use core::cell::{Cell, UnsafeCell};
use core::cmp::Ordering as CmpOrdering;
use core::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::arch::CachePadded;

/// One thread's delta for one counter, on a cache line of its own: written at
/// full speed by its owner thread only.
#[repr(C)]
struct Slot {
    /// The delta not yet folded into the shared count.
    delta: AtomicI64,
    /// The fold sequence: odd while the owner moves `delta` into the shared
    /// count, so that `sum` never sees the amount in both places or in neither.
    /// Written by the owner only.
    seq: AtomicU64,
}

type SlotBox = Arc<CachePadded<Slot>>;

/// A counter's shared state, behind an `Arc` (threads' tables hold `Weak`s).
struct Inner {
    /// The shared count (`fbc->count`): folds and interrupt-context adds.
    count: CachePadded<Count>,
    /// Every live thread slot of this counter, and their number (readable
    /// without the lock, for `compare`'s error bound). The lock serializes
    /// registration, thread-exit folds, `sum` and `set` — not the owners' folds.
    slots: Mutex<Vec<SlotBox>>,
    nslots: AtomicUsize,
    /// This counter's index in every thread's table.
    id: usize,
}

/// The shared count, and the flag that asks folds to wait (on the same line:
/// every fold writes the count anyway).
struct Count {
    value: AtomicI64,
    /// Set by a `sum` whose first few snapshots were spoiled by folds: new folds
    /// wait for it (on the slot lock, which it holds) so that it finishes.
    /// A liveness aid only; correctness comes from the slot sequences.
    summing: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<SlotBox>> {
        // No poisoning semantics (as everywhere in ksync): the data is a list of
        // slots whose values are atomics, always consistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the shared count and the sum of the deltas, read as one
    /// consistent set: retried until no owner folded meanwhile. Called with the
    /// slot lock held (`slots`), so no thread registers or exits meanwhile.
    fn snapshot<R>(&self, slots: &[SlotBox], mut f: impl FnMut(i64, i128) -> Option<R>) -> R {
        let backoff = crate::Backoff::new();
        let mut tries = 0u32;
        let result = loop {
            tries += 1;
            if tries == 4 {
                // Folds keep spoiling the snapshot: hold new ones back until it
                // is taken. Relaxed: only a hint (see `Count::summing`); the
                // folds that miss it are caught by the sequences as usual.
                self.count.summing.store(true, Ordering::Relaxed);
            }
            // A read-side seqcount over every slot at once: the sequences only
            // grow, so equal sums before and after mean no fold ran between.
            let mut before = 0u64;
            let mut odd = false;
            for s in slots {
                // Acquire pairs with the Release store that ends a fold: a fold
                // seen finished is seen whole (count and delta).
                let q = s.seq.load(Ordering::Acquire);
                before = before.wrapping_add(q);
                odd |= q & 1 != 0;
            }
            if odd {
                // An owner is mid-fold (a few instructions, unless preempted).
                backoff.snooze();
                continue;
            }
            let count = self.count.value.load(Ordering::Relaxed);
            let deltas = slots.iter().fold(0i128, |a, s| {
                a + i128::from(s.delta.load(Ordering::Relaxed))
            });
            // smp_rmb(): orders the loads above before the sequence loads below;
            // pairs with the Release fence in `fold`. If any load above saw a
            // store or add made after a fold began, that fold's odd sequence is
            // visible below and the sums differ.
            fence(Ordering::Acquire);
            let after = slots
                .iter()
                .fold(0u64, |a, s| a.wrapping_add(s.seq.load(Ordering::Relaxed)));
            if after == before
                && let Some(r) = f(count, deltas)
            {
                break r;
            }
            backoff.spin();
        };
        if tries >= 4 {
            self.count.summing.store(false, Ordering::Relaxed);
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        ids().free.push(self.id);
    }
}

/// Allocator of small counter ids, so that a thread's table is a plain vector;
/// and of unique counter numbers (never reused), which tell a table entry of a
/// dropped counter from one of a live counter that got the same id.
struct Ids {
    next: usize,
    free: Vec<usize>,
    uid: u64,
}

fn ids() -> MutexGuard<'static, Ids> {
    static IDS: Mutex<Ids> = Mutex::new(Ids {
        next: 0,
        free: Vec::new(),
        uid: 0,
    });
    IDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A thread's slot for one counter: `uid` and `slot` are what the fast path
/// reads (through [`CACHE`]); `owner` keeps the slot allocated as long as the
/// entry exists, and `counter` (weak: a thread must not keep a dropped counter
/// alive) lets the thread fold the slot at exit.
#[repr(C)]
struct Entry {
    /// The counter's unique number; 0 for an empty entry.
    uid: u64,
    /// `&owner.delta`, or null when empty.
    slot: *const Slot,
    owner: Option<SlotBox>,
    counter: Weak<Inner>,
}

/// This thread's entries, indexed by counter id. The vector is touched only by
/// the owning thread, never re-entrantly (adds in interrupt context, the only
/// way to re-enter on one thread, bypass it). Dropped at thread exit, which
/// folds every slot into its counter.
struct Table {
    entries: UnsafeCell<Vec<Entry>>,
}

/// Where the fast path finds this thread's entries: a copy of the table's
/// pointer and length. A `const`-initialised thread-local without a destructor,
/// so reading it is a plain thread-pointer-relative load with no "initialised
/// yet?" check; empty until the thread's first add and again once its
/// [`Table`] is being destroyed.
struct Cache {
    entries: Cell<*const Entry>,
    len: Cell<usize>,
}

impl Table {
    /// Points [`CACHE`] at the entries (after any change to the vector).
    fn publish(entries: &[Entry]) {
        CACHE.with(|c| {
            c.entries.set(entries.as_ptr());
            c.len.set(entries.len());
        });
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // First make the fast path miss: adds made from here on (by later
        // thread-local destructors) go to the shared count.
        Self::publish(&[]);
        // The thread is exiting: fold each slot into its counter, if alive.
        for e in self.entries.get_mut().drain(..) {
            let (Some(inner), Some(slot)) = (e.counter.upgrade(), e.owner) else {
                continue;
            };
            let mut slots = inner.lock();
            // Under the lock, so `sum` sees the delta either in the slot or in
            // the count, never in both or neither. Relaxed: the lock orders it.
            let d = slot.delta.swap(0, Ordering::Relaxed);
            inner.count.value.fetch_add(d, Ordering::Relaxed);
            slots.retain(|s| !Arc::ptr_eq(s, &slot));
            inner.nslots.store(slots.len(), Ordering::Relaxed);
        }
    }
}

thread_local! {
    static TABLE: Table = const {
        Table {
            entries: UnsafeCell::new(Vec::new()),
        }
    };
    static CACHE: Cache = const {
        Cache {
            entries: Cell::new(core::ptr::null()),
            len: Cell::new(0),
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
/// # Overflow
///
/// The value is an `i64`, and it overflows as Rust's integers do: in debug
/// builds a fold into the shared count, an interrupt-context add or a
/// [`sum`](Self::sum) whose result leaves `i64` panics with the values
/// involved ("PercpuCounter overflow: …"); release builds wrap silently (two's
/// complement), so a counter that passes `i64::MAX` reads near `i64::MIN`. An
/// add that stays in this thread's delta is checked when it is folded or
/// summed, not at the add itself: the fast path stays a load and a store.
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
/// - The fast path finds the slot through a `const`-initialised thread-local
///   with no destructor (no lazy-init check): a pointer to this thread's table of
///   slots, indexed by a small id given to the counter at creation and checked
///   against the counter's unique number (ids are reused, numbers never), so an
///   add is: preempt-count test, two thread-local loads, index, compare, load,
///   add, range compare, store.
/// - When `|delta| >= batch`, the owner folds it into the shared count
///   (`count += delta; delta = 0`, `#[cold]`). The kernel takes the counter's
///   spinlock for this; here the slot carries a sequence count that the owner
///   makes odd around the two updates (one locked instruction per fold instead
///   of three), and `sum` is a seqcount reader over all slots at once: it reads
///   every sequence, the count and the deltas, then the sequences again, and
///   retries if any fold ran — so it never sees an amount in both places or in
///   neither.
/// - Each counter keeps a registry of its slots (under a mutex taken by
///   registration, thread exit, `sum` and `set`); `sum` adds them to the count.
///   When a thread exits, its thread-local destructor folds each of its slots
///   into its counter and unregisters it under that mutex, so no delta is lost.
///   A dropped counter frees nothing a thread's table points to: the table entry
///   keeps its slot alive until the thread exits or the id is reused.
/// - Adds from interrupt context ([`in_interrupt`](crate::ctx::in_interrupt):
///   an irq handler may have interrupted this thread's own load/store pair), from
///   a thread whose thread-locals are being destroyed, or for a thread's first add
///   to a counter before its slot exists, go to the shared count with a
///   `fetch_add` (the first one also registers the slot).
///
/// | field       | written by                         | read by                     |
/// |-------------|------------------------------------|-----------------------------|
/// | `count`     | folds, exit folds (under `slots`), irq and first adds | `read`, `sum`, `set` (CAS) |
/// | slot delta  | its owner thread only (and its exit fold) | its owner, `sum`, `set` |
/// | slot `seq`  | its owner's folds (odd while folding) | `sum`, `set`           |
/// | `slots`     | registration and exit (under its lock) | `sum`, `set`, exit       |
///
/// The error of [`read`](PercpuCounter::read) is below `batch` per registered
/// slot, i.e. `batch × threads that used the counter and are alive`, where the
/// kernel's is `batch × online CPUs`; [`compare`](PercpuCounter::compare) uses
/// this bound.
#[doc(alias = "percpu_counter")]
pub struct PercpuCounter {
    /// This counter's index in the threads' tables and its unique number
    /// (copies of what the thread tables hold, read by every add: kept next to
    /// the `Arc` pointer, not behind it).
    id: usize,
    uid: u64,
    /// The default fold threshold, and `batch - 1` for the fast path.
    batch: i64,
    lim: u64,
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
        let (id, uid) = {
            let mut ids = ids();
            ids.uid += 1;
            let id = match ids.free.pop() {
                Some(id) => id,
                None => {
                    ids.next += 1;
                    ids.next - 1
                }
            };
            (id, ids.uid)
        };
        PercpuCounter {
            id,
            uid,
            batch,
            lim: batch as u64 - 1,
            inner: Arc::new(Inner {
                count: CachePadded::new(Count {
                    value: AtomicI64::new(value),
                    summing: AtomicBool::new(false),
                }),
                slots: Mutex::new(Vec::new()),
                nslots: AtomicUsize::new(0),
                id,
            }),
        }
    }

    /// The default batch of this counter.
    pub fn batch(&self) -> i64 {
        self.batch
    }

    /// Adds `amount` (`percpu_counter_add`).
    #[doc(alias = "percpu_counter_add")]
    #[doc(alias = "percpu_counter_add_local")]
    #[inline]
    pub fn add(&self, amount: i64) {
        self.add_within(amount, self.lim);
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
        self.add_within(amount, batch.unsigned_abs().saturating_sub(1));
    }

    /// Adds `amount`, keeping this thread's delta within `-lim..=lim` (`lim` is
    /// `|batch| - 1`, below 2^63) and folding it otherwise.
    ///
    /// The fast path: this thread's slot found through [`CACHE`] (two
    /// thread-local loads, an index, a compare), then a load and a store.
    #[inline(always)]
    fn add_within(&self, amount: i64, lim: u64) {
        // An irq handler may have interrupted this thread between its own load
        // and store of the slot: it must not use the slot (nor the table, which
        // the interrupted code may be changing).
        if !crate::ctx::in_interrupt() {
            let (entries, len) = CACHE.with(|c| (c.entries.get(), c.len.get()));
            if self.id < len {
                // SAFETY: `CACHE` describes this thread's live table vector
                // (`publish` runs after every change to it and when it is
                // dropped), `id < len`, and nothing changes the vector while
                // this borrow lives: only this thread does, never re-entrantly
                // (interrupt context is excluded above).
                let e = unsafe { &*entries.add(self.id) };
                if e.uid == self.uid {
                    // SAFETY: a nonzero `uid` that matches is this counter's
                    // entry, whose `slot` points into `owner`, kept alive by the
                    // entry.
                    let slot = unsafe { &*e.slot };
                    // Only this thread stores to its slot: a load and a store,
                    // no locked RMW. Relaxed: `sum` orders its reads with the
                    // fold sequence, not with this store.
                    let d = slot.delta.load(Ordering::Relaxed).wrapping_add(amount);
                    // -lim <= d <= lim as one unsigned compare: d + lim lies in
                    // 0..=2·lim exactly then (lim < 2^63, so 2·lim cannot wrap).
                    if (d as u64).wrapping_add(lim) <= lim.wrapping_mul(2) {
                        slot.delta.store(d, Ordering::Relaxed);
                    } else {
                        fold(&self.inner, slot, d);
                    }
                    return;
                }
            }
        }
        self.add_slow(amount);
    }

    /// Not the fast path: interrupt context, this thread's first add to this
    /// counter (make and register its slot), or thread-locals already destroyed.
    #[cold]
    #[inline(never)]
    fn add_slow(&self, amount: i64) {
        if !crate::ctx::in_interrupt() {
            self.register();
        }
        // Relaxed: a plain statistic; `sum` sees it through the count's
        // modification order, with no other data to order.
        let before = self.inner.count.value.fetch_add(amount, Ordering::Relaxed);
        check_count_add(before, amount);
    }

    /// Gives this thread a slot for this counter.
    fn register(&self) {
        let inner = &*self.inner;
        let slot: SlotBox = Arc::new(CachePadded::new(Slot {
            delta: AtomicI64::new(0),
            seq: AtomicU64::new(0),
        }));
        {
            let mut slots = inner.lock();
            slots.push(slot.clone());
            inner.nslots.store(slots.len(), Ordering::Relaxed);
        }
        let registered = TABLE.try_with(|t| {
            // SAFETY: the table is this thread's; no other borrow of it is live
            // (the fast path's borrow ended; interrupt context never gets here).
            let entries = unsafe { &mut *t.entries.get() };
            if entries.len() <= self.id {
                entries.resize_with(self.id + 1, || Entry {
                    uid: 0,
                    slot: core::ptr::null(),
                    owner: None,
                    counter: Weak::new(),
                });
            }
            // Any entry left here belongs to a dropped counter that had this id.
            entries[self.id] = Entry {
                uid: self.uid,
                slot: &**slot as *const Slot,
                owner: Some(slot.clone()),
                counter: Arc::downgrade(&self.inner),
            };
            Table::publish(entries);
        });
        if registered.is_err() {
            // Thread exiting: nobody will fold the slot; take it back.
            let mut slots = inner.lock();
            slots.retain(|s| !Arc::ptr_eq(s, &slot));
            inner.nslots.store(slots.len(), Ordering::Relaxed);
        }
    }

    /// The shared count: fast, and off by less than `batch` per thread that has
    /// used the counter (`percpu_counter_read`).
    #[doc(alias = "percpu_counter_read")]
    #[inline]
    pub fn read(&self) -> i64 {
        self.inner.count.value.load(Ordering::Relaxed)
    }

    /// [`read`](Self::read), but never negative (`percpu_counter_read_positive`).
    #[doc(alias = "percpu_counter_read_positive")]
    #[inline]
    pub fn read_positive(&self) -> i64 {
        self.read().max(0)
    }

    /// The exact value: the shared count plus every thread's delta
    /// (`percpu_counter_sum`). Exact when no add runs concurrently; with
    /// concurrent adds, each thread's contribution is counted once, as of some
    /// moment during the call.
    #[doc(alias = "percpu_counter_sum")]
    #[doc(alias = "__percpu_counter_sum")]
    pub fn sum(&self) -> i64 {
        let slots = self.inner.lock();
        self.inner
            .snapshot(&slots, |count, deltas| Some(total(count, deltas)))
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
        let inner = &*self.inner;
        inner.snapshot(&slots, |count, deltas| {
            // A fold that moved an amount from a slot to the count after the
            // snapshot keeps the total (count + deltas) unchanged; the exchange
            // fails only if the count moved since it was read (a fold or an
            // interrupt-context add), and then the snapshot is retaken. Relaxed:
            // the snapshot ordered the reads.
            inner
                .count
                .value
                .compare_exchange(
                    count,
                    // The deltas sum to less than `batch` times the thread
                    // count in magnitude, far inside i64: only their wrapping
                    // difference with `value` is stored, as the kernel does.
                    value.wrapping_sub(deltas as i64),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .ok()
                .map(|_| ())
        });
    }

    /// Compares the counter with `rhs` (`percpu_counter_compare`), cheaply when
    /// the approximate value is far enough away: with the default batch.
    #[doc(alias = "percpu_counter_compare")]
    pub fn compare(&self, rhs: i64) -> CmpOrdering {
        self.compare_batch(rhs, self.batch)
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
        let slots = self.inner.nslots.load(Ordering::Relaxed) as i128;
        let bound = i128::from(batch.max(self.batch)) * slots;
        if (i128::from(count) - i128::from(rhs)).abs() > bound {
            return count.cmp(&rhs);
        }
        self.sum().cmp(&rhs)
    }

    /// Frees the counter (`percpu_counter_destroy`); the same as dropping.
    #[doc(alias = "percpu_counter_destroy")]
    pub fn destroy(self) {}
}

/// Moves `d` (this thread's new delta) into the shared count: a write-side
/// seqcount section on the slot, so that `sum` sees the amount in exactly one
/// place, with one locked instruction (the count's add) and no lock.
#[cold]
#[inline(never)]
fn fold(inner: &Inner, slot: &Slot, d: i64) {
    if inner.count.summing.load(Ordering::Relaxed) {
        // A `sum` is starved by folds: wait until it is done (it holds the lock).
        drop(inner.lock());
    }
    let count = &inner.count.value;
    // Only this thread writes `seq`: a load and a store suffice.
    let s = slot.seq.load(Ordering::Relaxed);
    slot.seq.store(s.wrapping_add(1), Ordering::Relaxed);
    // smp_wmb(): the odd sequence is ordered before the count and delta updates
    // below (and the later fast-path stores); pairs with the Acquire fence in
    // `Inner::snapshot`.
    fence(Ordering::Release);
    let before = count.fetch_add(d, Ordering::Relaxed);
    slot.delta.store(0, Ordering::Relaxed);
    // Release pairs with the Acquire sequence loads of `snapshot`: a reader that
    // sees the fold finished sees both updates.
    slot.seq.store(s.wrapping_add(2), Ordering::Release);
    // After the fold is complete, so a caught panic leaves a consistent counter.
    check_count_add(before, d);
}

/// Debug builds: panics if adding `d` to the shared count `before` left `i64`
/// (the counter's value no longer fits, as with Rust's integer arithmetic).
/// Release builds wrap silently, as Rust integers do; the type's docs say so.
#[inline(always)]
fn check_count_add(before: i64, d: i64) {
    if cfg!(debug_assertions) && before.checked_add(d).is_none() {
        overflow("shared count", before, i128::from(d));
    }
}

/// Debug builds: `count + deltas` as an `i64`, panicking if the exact value
/// leaves `i64`; release builds wrap.
#[inline]
fn total(count: i64, deltas: i128) -> i64 {
    let t = i128::from(count) + deltas;
    if cfg!(debug_assertions) && i64::try_from(t).is_err() {
        overflow("sum", count, deltas);
    }
    t as i64
}

#[cold]
#[inline(never)]
fn overflow(what: &str, count: i64, plus: i128) -> ! {
    panic!(
        "PercpuCounter overflow: {what} {count} + {plus} = {} does not fit in i64 \
         (debug builds check, as for Rust integers; release builds wrap)",
        i128::from(count) + plus
    )
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
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Passing `i64::MAX` is reported in debug builds (the sum leaves i64),
    /// as `i64::MAX + 1` is; it used to wrap to `i64::MIN` silently.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "PercpuCounter overflow: sum 9223372036854775807 + 1")]
    fn sum_past_i64_max_panics_in_debug_builds() {
        let c = PercpuCounter::with_batch(i64::MAX, 8);
        c.add(0); // this thread's first add registers its slot (to the count)
        c.inc(); // stays in this thread's delta
        let _ = c.sum();
    }

    /// A fold that carries the shared count past `i64::MIN` is reported too.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "PercpuCounter overflow: shared count -9223372036854775808 + -1")]
    fn fold_past_i64_min_panics_in_debug_builds() {
        let c = PercpuCounter::with_batch(i64::MIN, 1);
        c.add(0); // registers this thread's slot
        c.dec(); // batch 1: folds at once
    }

    /// Values that come back inside i64 are fine, whatever the order of adds.
    #[test]
    fn sums_near_the_limits_are_exact() {
        let c = PercpuCounter::with_batch(i64::MAX - 3, 8);
        c.add(3);
        assert_eq!(c.sum(), i64::MAX);
        c.add(-5);
        assert_eq!(c.sum(), i64::MAX - 5);
    }

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
        crate::ctx::local_bh_disable();
        // bh disabled counts as interrupt context: an irq handler interrupting
        // this thread's own load/store pair must not use the slot.
        c.add(10);
        crate::ctx::local_bh_enable();
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
