//! `struct percpu_rw_semaphore` as [`PercpuRwSemaphore<T>`]: a reader-writer
//! lock whose readers write only their own thread's reader record, so reading
//! costs about what an RCU read side does, and whose rare writer pays for it.
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
//! | `writer` (per semaphore) | `0`; bit `WRITER` (1): a writer is draining the readers or holds the lock; bit `SLOW` (2): the semaphore's unlocks finish on the slow path (it has `NO_ID`, or the process runs without membarrier) | the writer: sets `WRITER` if clear in `down_write`, clears it in `up_write` (RMWs); the first reader sets `SLOW` for good before it settles `id` |
//! | `id` (per semaphore) | `UNASSIGNED` before its first read lock; then, for good, an id below [`COUNTED_SEMAPHORES`], or `NO_ID` when every id was taken | the first reader: one CAS from `UNASSIGNED`; the id goes back to the pool when the semaphore is dropped |
//! | a reader record's counter `counts[id]` (per thread) | how many read holds the thread has on the semaphore with that id | its thread only: `+ 1` on lock, `- 1` on unlock |
//! | a reader record's slot (per thread) | `0` free, or the address of a semaphore with `NO_ID` that the thread holds a read lock on | its thread only: the address on lock, `0` on unlock |
//! | a reader record's `slotted` (per thread) | how many of its slots hold | its thread only, and only its thread reads it |
//!
//! The kernel counts readers per CPU with `this_cpu_inc(*sem->read_count)`
//! under `preempt_disable`; user space cannot disable preemption, so a
//! per-CPU counter would need an atomic read-modify-write (a locked
//! instruction) on each lock and unlock. Per-thread counters need none: each
//! thread owns a cache-padded reader record, registered once in a
//! process-wide list (records are reused after their thread exits, never
//! freed), with one counter per semaphore id. A semaphore takes an id from a
//! process-wide pool of [`COUNTED_SEMAPHORES`] at its first read lock (the
//! kernel allocates its per-CPU counter at `percpu_init_rwsem`; a `const`
//! constructor cannot), so a read lock is `counts[id] += 1` on the thread's
//! own line: the kernel's shape, and nesting is free. Semaphores created
//! while every id is taken get `NO_ID` and record their holds in the
//! record's [`MAX_NESTED_READS`] slots instead, by address (the same
//! protocol, a little slower, and bounded per thread).
//!
//! The fast path has the shape of `rcu_read_lock`'s: a const-initialised
//! thread-local pointer with no destructor (`FAST`) names the thread's record,
//! so reaching it is one TLS load with no lazy-initialisation or
//! destroyed-state check; then the load of `id` and its bounds check (which
//! also sends `UNASSIGNED` and `NO_ID` to the slow path), a plain increment
//! of a counter only this thread writes, a compiler barrier, and a load of
//! `writer`, a line every reader shares read-only (with `id`) while no writer
//! comes. The thread-local bound on the id (`LIMIT`) is 0 while the thread
//! has no fast path, so the one bounds check also stands for a null test of
//! `FAST`. `FAST` is null, and `LIMIT` 0, until the thread's first read
//! lock and where membarrier is unavailable, so those go to the `#[cold]`
//! path, which registers the thread, settles the id, and uses a full fence
//! in the fallback mode.
//!
//! The read guard keeps the counter's address (the
//! [`SharedBackend::lock_shared_hinted`] hint, as the `rcu_read_lock` guard
//! keeps its counter), so the unlock is `rcu_read_unlock`'s shape: a
//! decrement through it, a compiler barrier, and the load of `writer`, with
//! no test of its own. The holds that need more at their unlock get a hint
//! too, and `SLOW` in `writer` sends them on from that load, as RCU's fence
//! mode does with its futex word: a hold in a slot keeps the address of its
//! record's `slotted` count (the slow path undoes the decrement and clears
//! the slot), and without membarrier the decremented counter still needs a
//! full fence before the check for a writer. A first reader sets `SLOW`
//! before its (Release) CAS of `id`, and every thread reads the id (Acquire)
//! before it records a hold, so no hold's unlock misses it. Only a `try_read`
//! guard has no hint: its unlock looks the counter up again.
//!
//! A writer sets `WRITER`, then waits until no record counts a hold on its
//! semaphore. The two sides form a store→load pair (store-buffering): reader
//! `counts[id] += 1; load writer`, writer `set WRITER; load every counts[id]`.
//! The fast side pays nothing for it: the reader's order comes from a compiler
//! barrier matched by one [`heavy_barrier`] (`membarrier`) on the writer's
//! side, the kernel's RCU-sync grace period in its user-space form. After that
//! barrier every reader either was seen by the writer's scan — which waits
//! for its count to drop — or sees `WRITER`, takes its hold back, and
//! waits on `waiters` for the writer to leave (`sched::sleep`, through
//! [`WaitQueue`]). A first reader's CAS of `id` is before its barrier too,
//! so a writer that still reads `UNASSIGNED` after its barrier has no reader
//! to wait for: any reader will see `WRITER`.
//!
//! The record also makes read holds nest: a reader that finds a writer
//! draining while its thread already holds a read lock on this semaphore
//! (its counter was above 0 before its increment) keeps the hold and goes on
//! (the writer is waiting for the outer hold anyway); it would otherwise
//! deadlock against that writer.
//!
//! A thread that exits with a read hold still recorded — a guard forgotten
//! with `mem::forget` — is reported on stderr at its exit (`ksync: BUG: thread
//! … exits holding … percpu_rw_semaphore read lock(s)`), and its record is
//! never reused: the hold stays, and writers of that semaphore wait for it
//! forever, as a forgotten `std::sync::MutexGuard` keeps its mutex locked. A
//! semaphore dropped while a forgotten hold still counts on its id does not
//! give the id back (it would hand a phantom reader to the next owner).
//!
//! Orderings: a reader's load of `writer` is Acquire and pairs with the
//! Release RMW of `up_write`; a reader's decrement (or slot clear) is a
//! Release store that pairs with the writer's Acquire loads of the counters,
//! so the read-side critical sections happen before the write. An unlocking
//! reader wakes the writer (`drain`) if, after its decrement and its barrier
//! (the compiler barrier, or [`light_barrier`] on the slow path), it sees
//! `WRITER`: the same pair with the writer's barrier makes sure either the
//! writer's scan sees the lower count or the reader sees the flag. (Where
//! the fast unlock sees only `SLOW`, the slow path's barrier and load come
//! after the compiler barrier and load, and make the pair.)
//!
//! Writers exclude each other with the `WRITER` bit and are preferred to
//! new readers (the kernel's behaviour): a stream of writers can starve
//! readers; this lock is for data that is written rarely. A writer's scan
//! reads one counter in every registered record: its cost grows with the
//! number of threads that ever read a `PercpuRwSemaphore`.

use core::fmt;
use core::num::NonZeroUsize;

use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::lock::{Backend, Guard, Lock, ReadGuard, SharedBackend};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use crate::sched::WaitQueue;

/// How many `PercpuRwSemaphore`s may count their readers per thread at once
/// (the ids of the counters in every reader record). A semaphore created
/// while all are taken records its read holds in [`MAX_NESTED_READS`] slots
/// instead; ids come back when their semaphores are dropped. One under loom,
/// whose models give every semaphore its own records.
pub const COUNTED_SEMAPHORES: usize = if cfg!(loom) { 1 } else { 256 };

/// How many read holds one thread may keep at once on semaphores that got
/// no id (past [`COUNTED_SEMAPHORES`]), nested or on different semaphores:
/// the slots of its reader record. Holds on semaphores with an id are
/// counted and nest without a limit.
pub const MAX_NESTED_READS: usize = 16;

/// `writer`: no writer, and unlocks with a hint finish on the fast path.
const NO_WRITER: u32 = 0;
/// `writer` bit: a writer drains the readers or holds the lock.
const WRITER: u32 = 1;
/// `writer` bit, set for good before the id settles where an unlock with a
/// hint must finish on the slow path: the semaphore has `NO_ID` (the hint is
/// the record's `slotted`, and a slot must be cleared), or the process runs
/// without membarrier (the decrement needs a full fence before the check for
/// a writer).
const SLOW: u32 = 2;
/// `id`: no read lock has been taken yet.
const UNASSIGNED: u32 = u32::MAX;
/// `id`: the id pool was empty; holds go to the slots.
const NO_ID: u32 = u32::MAX - 1;
/// A reader record's slot: free.
const FREE: usize = 0;

// Both sentinels fail the fast path's bounds check on `counts`.
const _: () = assert!(COUNTED_SEMAPHORES < NO_ID as usize);

/// One thread's read holds over every `PercpuRwSemaphore`. Only the owning
/// thread writes the record; writers read it.
///
/// # Invariants
/// `counts[id]` is the number of read holds the owner has on the live
/// semaphore with that id (or, past a semaphore's drop, forgotten holds on
/// it); each slot is [`FREE`] or the address of a semaphore with `NO_ID`
/// that the owner holds a read lock on, once per hold; `slotted` is the
/// number of slots that are not [`FREE`] (except inside an unlock, between
/// its fast decrement and the undo).
struct ReaderRecord {
    /// Read holds per semaphore id (first: `FAST` points here).
    counts: [AtomicUsize; COUNTED_SEMAPHORES],
    /// Holds on semaphores with `NO_ID`.
    slots: [AtomicUsize; MAX_NESTED_READS],
    /// How many slots hold (owner-only, read by nobody else): the hint that
    /// the read guard of a slot hold keeps, so that its unlock's fast
    /// decrement lands on a count of the owner's, which `SLOW` then undoes
    /// before clearing the slot.
    slotted: AtomicUsize,
}

/// The owner's load of one of its own words: only the owner stores to them,
/// so it always reads its last store. Under loom an `unsync_load` says so;
/// loom's store-selection for plain loads of such words trips an internal
/// assertion of its own (`mo_i != mo_j`, marked "TODO: this sometimes fails").
#[inline(always)]
fn own(word: &AtomicUsize) -> usize {
    #[cfg(not(loom))]
    return word.load(Ordering::Relaxed);
    // SAFETY: only the calling thread (the record's owner) stores to its
    // words, so no store races with this load.
    #[cfg(loom)]
    return unsafe { word.unsync_load() };
}

/// `word`'s address as a read guard's hint, exposed so that the unlock may
/// turn it back into a pointer to `word`.
#[inline(always)]
fn hint_of(word: &AtomicUsize) -> NonZeroUsize {
    NonZeroUsize::new((word as *const AtomicUsize).expose_provenance())
        .expect("a reference is never null")
}

/// Where one read hold is recorded in its thread's record.
#[derive(Clone, Copy)]
enum Hold<'r> {
    /// The semaphore's counter (it has an id).
    Count(&'r AtomicUsize),
    /// A slot naming the semaphore (it has `NO_ID`).
    Slot(&'r AtomicUsize),
}

impl ReaderRecord {
    fn new() -> Self {
        ReaderRecord {
            counts: core::array::from_fn(|_| AtomicUsize::new(0)),
            slots: core::array::from_fn(|_| AtomicUsize::new(FREE)),
            slotted: AtomicUsize::new(0),
        }
    }

    /// The counter of the semaphore with `id`, or `None` for `UNASSIGNED`
    /// and `NO_ID` (the one bounds check of the fast path).
    #[inline(always)]
    fn count(&self, id: u32) -> Option<&AtomicUsize> {
        self.counts.get(id as usize)
    }

    /// Records a hold on the semaphore with `id` at address `sem`. Relaxed:
    /// the store→load order with the writer comes from the caller's barrier.
    /// Owner only. `None` when the semaphore has no id and every slot holds.
    fn enter(&self, id: u32, sem: usize) -> Option<Hold<'_>> {
        if let Some(count) = self.count(id) {
            // INVARIANT: the owner now has one more hold on `id`.
            count.store(own(count) + 1, Ordering::Relaxed);
            return Some(Hold::Count(count));
        }
        let slot = self.slots.iter().find(|s| own(s) == FREE)?;
        // INVARIANT: a free slot now names `sem`, a hold the owner has, and
        // `slotted` counts it.
        slot.store(sem, Ordering::Relaxed);
        self.slotted
            .store(own(&self.slotted) + 1, Ordering::Relaxed);
        Some(Hold::Slot(slot))
    }

    /// The hold on the semaphore with `id` at address `sem` that an unlock
    /// takes back. Owner only. `None` if the record shows no hold on it.
    fn hold_of(&self, id: u32, sem: usize) -> Option<Hold<'_>> {
        match self.count(id) {
            Some(count) => (own(count) != 0).then_some(Hold::Count(count)),
            None => self.slots.iter().find(|s| own(s) == sem).map(Hold::Slot),
        }
    }

    /// How many read holds the record shows (any thread may ask).
    #[cfg(not(loom))]
    fn held(&self) -> usize {
        let counted: usize = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let slotted = self
            .slots
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) != FREE)
            .count();
        counted + slotted
    }

    /// The read holds the record shows on the semaphore with `id` at `sem`
    /// (any thread may ask). `order` is that of each load.
    fn holds_on(&self, id: u32, sem: usize, order: Ordering) -> usize {
        match self.count(id) {
            Some(count) => count.load(order),
            None if id == NO_ID => self.slots.iter().filter(|s| s.load(order) == sem).count(),
            // UNASSIGNED: no hold was ever recorded.
            None => 0,
        }
    }
}

impl Hold<'_> {
    /// Whether the owner has another hold on this hold's semaphore (at
    /// address `sem`) besides this one. Owner only.
    fn nested(self, rec: &ReaderRecord, sem: usize) -> bool {
        match self {
            Hold::Count(count) => own(count) > 1,
            Hold::Slot(slot) => rec
                .slots
                .iter()
                .any(|s| !core::ptr::eq(s, slot) && own(s) == sem),
        }
    }

    /// Takes the hold back from `rec`, its record. Release pairs with the
    /// writer's Acquire loads of the record: the read-side critical section
    /// happens before its write. Owner only.
    #[inline(always)]
    fn leave(self, rec: &ReaderRecord) {
        match self {
            Hold::Count(count) => {
                let n = own(count);
                debug_assert!(n > 0, "ksync: percpu_up_read: a read hold count of 0");
                // INVARIANT: the owner has one hold fewer.
                count.store(n - 1, Ordering::Release);
            }
            Hold::Slot(slot) => {
                // INVARIANT: the slot's hold is gone, and `slotted` with it.
                slot.store(FREE, Ordering::Release);
                rec.slotted.store(own(&rec.slotted) - 1, Ordering::Relaxed);
            }
        }
    }

    /// The hint a read guard keeps for this hold: the address of its
    /// counter, or of `rec.slotted` for a slot hold (see `slotted`).
    #[inline(always)]
    fn hint(self, rec: &ReaderRecord) -> NonZeroUsize {
        let word = match self {
            Hold::Count(count) => count,
            Hold::Slot(_) => &rec.slotted,
        };
        hint_of(word)
    }
}

/// Where reader records live: process-wide, one per thread, in the normal
/// build; per semaphore, one per model thread, under loom (whose objects may
/// not outlive one model run). Also the pool of semaphore ids.
#[cfg(not(loom))]
mod records {
    use super::{COUNTED_SEMAPHORES, ReaderRecord};
    use crate::arch::CachePadded;
    use crate::atomic::{StaticBitmap, bits_to_longs};
    use core::cell::Cell;
    use core::ptr;
    use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

    /// Threads that exited with read holds still recorded (see `Owner`): a
    /// read guard forgotten with `mem::forget`, or one that lives in a
    /// thread-local destroyed after the record's.
    pub(super) static EXITED_HOLDING: AtomicUsize = AtomicUsize::new(0);

    /// The semaphore ids in use (the kernel's `ida`): a set bit is an id that
    /// a live semaphore owns, or one retired with a forgotten hold on it.
    static IDS_IN_USE: StaticBitmap<{ bits_to_longs(COUNTED_SEMAPHORES) }> =
        StaticBitmap::new_static(COUNTED_SEMAPHORES);

    /// A free semaphore id, now taken; `None` if every one is.
    pub(super) fn alloc_id() -> Option<u32> {
        // Each failed `test_and_set_bit` lost the bit to another allocator,
        // so the loop ends after at most COUNTED_SEMAPHORES turns.
        loop {
            let id = IDS_IN_USE.find_first_zero_bit()?;
            if !IDS_IN_USE.test_and_set_bit(id) {
                return Some(id as u32);
            }
        }
    }

    /// Gives `id` back to the pool. Unordered: nothing is published with an
    /// id; every record's counter for it is 0 (the caller checked) and only
    /// the record's owner writes it.
    pub(super) fn free_id(id: u32) {
        IDS_IN_USE.clear_bit(id as usize);
    }

    /// A registered record: never freed, reused after its thread exits.
    pub(super) struct Registered {
        pub(super) record: ReaderRecord,
        /// Whether a live thread owns it (or a dead one left holds in it).
        in_use: AtomicBool,
        /// The next record of the registry; set before this one is published.
        next: *const CachePadded<Registered>,
    }

    /// The registry's head: records are pushed (Release) and never removed.
    static HEAD: AtomicPtr<CachePadded<Registered>> = AtomicPtr::new(ptr::null_mut());

    std::thread_local! {
        /// The fast path's record: this thread's, once registered, where
        /// membarrier is in use (so that the fast path's compiler barrier is
        /// enough); else null, and every read lock takes the `#[cold]` path.
        /// Const-initialised with no destructor, so reading it is one TLS load
        /// with no lazy-initialisation or destroyed-state check.
        static FAST: Cell<*const ReaderRecord> = const { Cell::new(ptr::null()) };
        /// The fast path's bound on semaphore ids: COUNTED_SEMAPHORES while
        /// FAST names the record, else 0, so that the fast path's one bounds
        /// check on the id also tests FAST (no null test). Const-initialised
        /// with no destructor, as FAST.
        static LIMIT: Cell<u32> = const { Cell::new(0) };
        /// This thread's record in either mode, or null before its first read
        /// lock.
        static MINE: Cell<*const CachePadded<Registered>> = const { Cell::new(ptr::null()) };
        /// Gives the record back at thread exit.
        static OWNER: Owner = const { Owner };
    }

    struct Owner;

    impl Drop for Owner {
        fn drop(&mut self) {
            // The fast path off first: LIMIT guards every use of FAST.
            LIMIT.with(|l| l.set(0));
            FAST.with(|f| f.set(ptr::null()));
            let r = MINE.with(Cell::get);
            if r.is_null() {
                return;
            }
            // SAFETY: registered records are leaked boxes, never freed.
            let r = unsafe { &*r };
            let held = r.record.held();
            if held != 0 {
                // A read hold outlives the thread's record: a guard forgotten
                // with `mem::forget` (the kernel's "lock held when returning to
                // user space"), or one in a thread-local destroyed later. The
                // record stays this thread's and is never reused: it keeps the
                // holds, so writers of those semaphores wait for them (forever,
                // for a forgotten guard), and a later guard's drop on this
                // thread still finds its hold through MINE.
                EXITED_HOLDING.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "ksync: BUG: thread {:?} exits holding {held} percpu_rw_semaphore read \
                     lock(s) (a read guard forgotten with mem::forget?): writers of the \
                     semaphore wait until the hold is dropped, forever if it was forgotten",
                    std::thread::current().name().unwrap_or("<unnamed>")
                );
                return;
            }
            MINE.with(|m| m.set(ptr::null()));
            // Every counter is 0 and every slot FREE: the next owner starts
            // with no holds. Release: the next owner (Acquire CAS in `claim`)
            // sees our last stores to the record.
            r.in_use.store(false, Ordering::Release);
        }
    }

    /// Every registered record, for a writer's scan. Acquire pairs with the
    /// Release CAS that published each record.
    pub(super) fn all() -> impl Iterator<Item = &'static ReaderRecord> {
        let mut p = HEAD.load(Ordering::Acquire) as *const CachePadded<Registered>;
        core::iter::from_fn(move || {
            // SAFETY: non-null pointers of the registry are leaked boxes,
            // never freed; `next` was set before the record was published.
            let r = unsafe { p.as_ref()? };
            p = r.next;
            Some(&r.record)
        })
    }

    /// The fast path's counter for the semaphore `id` in this thread's
    /// record, and the record; `None` sends the caller to its slow path:
    /// where the fast path is off (LIMIT 0), and for the ids that are not
    /// counters (UNASSIGNED, NO_ID). One bounds check does both.
    #[inline(always)]
    pub(super) fn fast(
        _sem: &super::RawPercpuRwSemaphore,
        id: u32,
    ) -> Option<(&'static ReaderRecord, &'static AtomicUsize)> {
        if id >= LIMIT.with(Cell::get) {
            return None;
        }
        let r = FAST.with(Cell::get);
        // SAFETY: LIMIT is non-zero only while FAST is this thread's claimed
        // record, inside a leaked box that is never freed (`register`,
        // `Owner::drop`). Said to the compiler too, or it tests `r` for null
        // again to build the `Some`.
        let rec = unsafe {
            core::hint::assert_unchecked(!r.is_null());
            &*r
        };
        // SAFETY: `id < LIMIT <= COUNTED_SEMAPHORES`, the length of `counts`.
        Some((rec, unsafe { rec.counts.get_unchecked(id as usize) }))
    }

    /// This thread's record, registering one on first use.
    #[inline]
    pub(super) fn mine(_sem: &super::RawPercpuRwSemaphore) -> &'static ReaderRecord {
        let r = MINE.with(Cell::get);
        if r.is_null() {
            return register();
        }
        // SAFETY: a non-null MINE is this thread's claimed record, a leaked
        // box that is never freed.
        unsafe { &(&*r).record }
    }

    #[cold]
    fn register() -> &'static ReaderRecord {
        // Arms the destructor that gives the record back at thread exit; a
        // thread already exiting (a read lock in another thread-local's
        // destructor) has none left: its record is never given back and gets
        // no fast path (FAST would outlive the destructor that clears it).
        let armed = OWNER.try_with(|_| {}).is_ok();
        let r = claim().unwrap_or_else(push_new);
        MINE.with(|m| m.set(r));
        if armed && crate::arch::membarrier::is_expedited() {
            FAST.with(|f| f.set(&r.record));
            // After FAST: LIMIT guards every use of it.
            LIMIT.with(|l| l.set(COUNTED_SEMAPHORES as u32));
        }
        &r.record
    }

    /// A record left by an exited thread. Acquire pairs with the Release
    /// store in `Owner::drop`.
    fn claim() -> Option<&'static CachePadded<Registered>> {
        let mut p = HEAD.load(Ordering::Acquire) as *const CachePadded<Registered>;
        // SAFETY: as in `all`: registry records are never freed.
        while let Some(r) = unsafe { p.as_ref() } {
            if r.in_use
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(r);
            }
            p = r.next;
        }
        None
    }

    fn push_new() -> &'static CachePadded<Registered> {
        let r: &'static mut CachePadded<Registered> =
            Box::leak(Box::new(CachePadded::new(Registered {
                record: ReaderRecord::new(),
                in_use: AtomicBool::new(true),
                next: ptr::null(),
            })));
        let mut head = HEAD.load(Ordering::Relaxed);
        loop {
            r.next = head;
            // Release: publishes the record and its `next` to the Acquire
            // loads of `all` and `claim`.
            match HEAD.compare_exchange_weak(head, r, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return r,
                Err(h) => head = h,
            }
        }
    }
}

#[cfg(loom)]
mod records {
    use super::ReaderRecord;
    use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use core::cell::Cell;

    /// Model threads per semaphore.
    pub(super) const THREADS: usize = 3;

    /// A model thread's record, claimed on its first read lock.
    pub(super) struct Slot {
        claimed: AtomicBool,
        pub(super) record: ReaderRecord,
    }

    /// The records of a semaphore under loom.
    pub(super) fn new() -> [Slot; THREADS] {
        core::array::from_fn(|_| Slot {
            claimed: AtomicBool::new(false),
            record: ReaderRecord::new(),
        })
    }

    /// The id of a semaphore under loom: each has its own records, so the
    /// one counter of each record is its own.
    pub(super) fn alloc_id() -> Option<u32> {
        Some(0)
    }

    /// Ids need no pool under loom.
    pub(super) fn free_id(_id: u32) {}

    loom::thread_local! {
        /// The index this model thread claimed (models use one semaphore).
        static INDEX: Cell<Option<usize>> = Cell::new(None);
    }

    /// The fast path's counter for `id` and the record: always this model
    /// thread's for a counted id (the models run the fast path with its
    /// barrier as a SeqCst fence, see `fast_barrier`).
    pub(super) fn fast(
        sem: &super::RawPercpuRwSemaphore,
        id: u32,
    ) -> Option<(&ReaderRecord, &AtomicUsize)> {
        let rec = mine(sem);
        Some((rec, rec.count(id)?))
    }

    /// This model thread's record of `sem`: claimed with a CAS, so the
    /// choice is part of the explored execution (deterministic).
    pub(super) fn mine(sem: &super::RawPercpuRwSemaphore) -> &ReaderRecord {
        let i = INDEX.with(|c| {
            if let Some(i) = c.get() {
                return i;
            }
            let i = sem
                .records
                .iter()
                .position(|r| {
                    r.claimed
                        .compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                })
                .expect("ksync: more model threads than loom records");
            c.set(Some(i));
            i
        });
        &sem.records[i].record
    }
}

/// The fast path's half of the asymmetric barrier: a compiler barrier. The
/// fast path runs only where `records::fast` gives a record, which it does
/// only where membarrier is in use, so that the writer's `heavy_barrier` is a
/// membarrier and this barrier is [`light_barrier`]'s compiler barrier without
/// its check of the mode. Under loom, a SeqCst fence models it (and
/// `heavy_barrier` is one too), as the RCU models do.
#[inline(always)]
fn fast_barrier() {
    #[cfg(not(loom))]
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(loom)]
    crate::loom::sync::atomic::fence(Ordering::SeqCst);
}

/// Whether the process runs without membarrier, so that an unlock needs a
/// full fence (`SLOW` on every semaphore). Never under loom, whose models
/// run the fast path with `fast_barrier` as a SeqCst fence.
#[inline]
fn fence_mode() -> bool {
    #[cfg(not(loom))]
    return !crate::arch::membarrier::is_expedited();
    #[cfg(loom)]
    return false;
}

/// The raw `percpu_rw_semaphore`: the writer flag, the id of its readers'
/// counters, two wait queues and the lockdep map, without data (the readers'
/// holds are in their threads' records). [`PercpuRwSemaphore<T>`] is this
/// plus a `T`.
pub struct RawPercpuRwSemaphore {
    /// `NO_WRITER`, or the bits `WRITER` and `SLOW` (module docs).
    writer: AtomicU32,
    /// The index of this semaphore's counter in every reader record;
    /// `UNASSIGNED` or `NO_ID` (module docs). Beside `writer`: the fast path
    /// reads both, and neither changes while readers come and go.
    id: AtomicU32,
    /// Readers and writers waiting for the `WRITER` bit to clear.
    waiters: WaitQueue,
    /// The writer, waiting for the readers to drain.
    drain: WaitQueue,
    dep_map: LockdepMap,
    /// The model threads' records (loom build; the registry otherwise).
    #[cfg(loom)]
    records: [records::Slot; records::THREADS],
}

impl RawPercpuRwSemaphore {
    /// An unlocked semaphore whose lockdep class is the caller's location.
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new() -> Self {
        Self::with_id(UNASSIGNED)
    }

    /// An unlocked semaphore (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new() -> Self {
        Self::with_id(UNASSIGNED)
    }

    /// A semaphore that got no id, as when the pool is empty: its holds go
    /// to the slots (tests and models of that path).
    #[cfg(test)]
    #[track_caller]
    fn without_id() -> Self {
        Self::with_id(NO_ID)
    }

    #[cfg(not(loom))]
    #[track_caller]
    const fn with_id(id: u32) -> Self {
        RawPercpuRwSemaphore {
            writer: AtomicU32::new(if id == NO_ID { SLOW } else { NO_WRITER }),
            id: AtomicU32::new(id),
            waiters: WaitQueue::new(),
            drain: WaitQueue::new(),
            dep_map: LockdepMap::new_sleeping("percpu_rw_semaphore"),
        }
    }

    #[cfg(loom)]
    #[track_caller]
    fn with_id(id: u32) -> Self {
        RawPercpuRwSemaphore {
            writer: AtomicU32::new(if id == NO_ID { SLOW } else { NO_WRITER }),
            id: AtomicU32::new(id),
            waiters: WaitQueue::new(),
            drain: WaitQueue::new(),
            dep_map: LockdepMap::new_sleeping("percpu_rw_semaphore"),
            records: records::new(),
        }
    }

    #[inline(always)]
    fn key(&self) -> usize {
        self as *const Self as usize
    }

    /// Every reader record a writer must scan: the process-wide registry.
    #[cfg(not(loom))]
    fn all_records(&self) -> impl Iterator<Item = &'static ReaderRecord> + use<> {
        records::all()
    }

    /// Every reader record a writer must scan: this semaphore's (loom build).
    #[cfg(loom)]
    fn all_records(&self) -> impl Iterator<Item = &ReaderRecord> {
        self.records.iter().map(|r| &r.record)
    }

    /// This semaphore's id, taking one from the pool (or settling on
    /// `NO_ID`) at the first read lock, with `SLOW` set first where its
    /// unlocks need it. The CAS makes every thread agree on one id, which
    /// then never changes; it is Release and the loads Acquire so that a
    /// thread that reads the id also reads the `SLOW` set before it (the id
    /// itself publishes nothing: every record has a counter for every id, 0
    /// where unused).
    #[cold]
    fn settle_id(&self) -> u32 {
        let id = self.id.load(Ordering::Acquire);
        if id != UNASSIGNED {
            return id;
        }
        let new = records::alloc_id().unwrap_or(NO_ID);
        let slow = new == NO_ID || fence_mode();
        if slow {
            // Relaxed: the Release CAS below publishes it.
            self.writer.fetch_or(SLOW, Ordering::Relaxed);
        }
        match self
            .id
            .compare_exchange(UNASSIGNED, new, Ordering::Release, Ordering::Acquire)
        {
            Ok(_) => new,
            Err(settled) => {
                if new != NO_ID {
                    records::free_id(new);
                }
                if slow && settled != NO_ID && !fence_mode() {
                    // Another thread settled a counted id: no unlock of this
                    // semaphore needs `SLOW` (until now it only sent them the
                    // long way round, which is correct too).
                    self.writer.fetch_and(!SLOW, Ordering::Relaxed);
                }
                settled
            }
        }
    }

    /// Records a read hold in `rec` (this thread's record) and reports
    /// whether no writer is present: the slow path's entry, with the barrier
    /// that suits the membarrier mode.
    ///
    /// # Panics
    /// Past [`MAX_NESTED_READS`] holds on this thread on semaphores with no
    /// id.
    #[inline]
    fn enter_read<'r>(&self, rec: &'r ReaderRecord) -> (Hold<'r>, bool) {
        let Some(hold) = rec.enter(self.settle_id(), self.key()) else {
            panic!(
                "ksync: more than {MAX_NESTED_READS} percpu_rw_semaphore read locks held by one \
                 thread on semaphores past the first {COUNTED_SEMAPHORES}"
            );
        };
        // Our hold's store (and a first reader's CAS of `id`) before our load
        // of `writer`, paired with the writer's heavy_barrier between its
        // store of `writer` and its scan.
        light_barrier();
        // Acquire pairs with the Release RMW of `up_write`.
        (hold, self.writer.load(Ordering::Acquire) & WRITER == 0)
    }

    /// `percpu_down_read` past the fast path: registers this thread's record
    /// if it has none, settles the id, enters with the mode's barrier, and
    /// waits for a writer. Returns the guard's hint.
    #[cold]
    fn lock_shared_slow(&self) -> core::num::NonZeroUsize {
        let rec = records::mine(self);
        let (mut hold, free) = self.enter_read(rec);
        if !free {
            hold = self.read_slow(rec, hold);
        }
        hold.hint(rec)
    }

    /// Takes a hold back from `rec` (this thread's record) and wakes a
    /// writer that may be waiting for it: the slow path's exit.
    fn leave_read(&self, rec: &ReaderRecord, hold: Hold<'_>) {
        hold.leave(rec);
        self.after_leave();
    }

    /// The end of an unlock past its store: the mode's barrier, then the
    /// check for a writer to wake.
    fn after_leave(&self) {
        // Our decrement (or clear) before our load of `writer`: the same pair
        // as in `enter_read`, so a writer that saw our hold sees us wake it.
        light_barrier();
        if self.writer.load(Ordering::Relaxed) & WRITER != 0 {
            self.wake_writer();
        }
    }

    /// `percpu_up_read`'s fast path on `count`, a hint's word: this
    /// thread's counter for this semaphore, which counts the caller's hold,
    /// or its record's `slotted`. The release store of the decremented count,
    /// the compiler barrier, the check of `writer`: the whole unlock where
    /// membarrier is in use (the writer's `heavy_barrier` pairs with the
    /// compiler barrier) and the hold is counted; `SLOW` sends the other
    /// cases on.
    #[inline(always)]
    fn unlock_fast(&self, count: &AtomicUsize) {
        let n = own(count);
        debug_assert!(n > 0, "ksync: percpu_up_read without a read hold");
        // INVARIANT: this thread has one hold fewer. Release pairs with the
        // writer's Acquire loads of the counters: our read-side critical
        // section happens before its write.
        count.store(n - 1, Ordering::Release);
        // Our decrement before our load of `writer`: the same pair as in
        // `lock_shared_hinted`, so a writer that saw our hold sees us wake it
        // (where membarrier is in use; else `SLOW` sends us to the fence).
        fast_barrier();
        if self.writer.load(Ordering::Relaxed) != NO_WRITER {
            self.unlock_fast_slow(count);
        }
    }

    /// [`unlock_fast`](Self::unlock_fast) found `WRITER` or `SLOW`. With
    /// `SLOW` and `NO_ID`, `word` is this thread's `slotted` (the hint of a
    /// slot hold): undo the decrement and clear a slot of this semaphore.
    /// Else `word` was a counter, now decremented: in the fallback mode it
    /// still needs the full fence before the check for a writer, which
    /// `after_leave` gives (and only a compiler barrier where membarrier is
    /// in use).
    #[cold]
    fn unlock_fast_slow(&self, word: &AtomicUsize) {
        // Relaxed: this thread's lock settled the id, so it reads it.
        if self.id.load(Ordering::Relaxed) == NO_ID {
            let rec = records::mine(self);
            debug_assert!(core::ptr::eq(word, &rec.slotted));
            // INVARIANT: `slotted` counts the slot again, until `leave`.
            word.store(own(word) + 1, Ordering::Relaxed);
            self.unlock_shared_slow();
            return;
        }
        self.after_leave();
    }

    /// `percpu_up_read` without the fast path (a semaphore with no id, or a
    /// thread without `FAST`).
    #[cold]
    fn unlock_shared_slow(&self) {
        let rec = records::mine(self);
        // Relaxed: this thread's own lock settled the id, so it reads it.
        let hold = rec
            .hold_of(self.id.load(Ordering::Relaxed), self.key())
            .expect("ksync: percpu_up_read without a read hold on this thread");
        self.leave_read(rec, hold);
    }

    #[cold]
    fn wake_writer(&self) {
        self.drain.wake_up_all();
    }

    /// A writer may be present (or `SLOW` is set): go on if this thread
    /// already holds a read lock here (nesting), else back out and wait for
    /// the writer to leave. Returns the hold, recorded anew if it backed out.
    #[cold]
    fn read_slow<'r>(&self, rec: &'r ReaderRecord, mut hold: Hold<'r>) -> Hold<'r> {
        loop {
            if hold.nested(rec, self.key()) {
                // The writer waits for our outer hold: keep this one too.
                return hold;
            }
            // Only `SLOW` (for a moment in `settle_id`), or the writer left:
            // a load after our hold's barrier that sees no writer is as good
            // as `enter_read`'s. Acquire pairs with the Release RMW of
            // `up_write`.
            if self.writer.load(Ordering::Acquire) & WRITER == 0 {
                return hold;
            }
            // Lock statistics (once per wait: a repeat is ignored).
            lockdep::lock_contended(&self.dep_map);
            self.leave_read(rec, hold);
            self.waiters
                .wait_event(|| self.writer.load(Ordering::Relaxed) & WRITER == 0);
            let (again, free) = self.enter_read(rec);
            if free {
                return again;
            }
            hold = again;
        }
    }

    /// Whether no reader record shows a hold on this semaphore. Acquire pairs
    /// with the readers' Release decrements. Relaxed on `id`: the writer's
    /// heavy_barrier orders it after a first reader's CAS, or that reader
    /// sees `writer` (module docs).
    fn drained(&self) -> bool {
        let (id, key) = (self.id.load(Ordering::Relaxed), self.key());
        self.all_records()
            .all(|r| r.holds_on(id, key, Ordering::Acquire) == 0)
    }

    /// Makes this thread the writer: sets the `WRITER` bit if it was clear
    /// (setting it again changes nothing). Acquire pairs with the Release RMW
    /// of the previous `up_write`.
    #[inline]
    fn claim(&self) -> bool {
        self.writer.fetch_or(WRITER, Ordering::Acquire) & WRITER == 0
    }

    /// Whether a writer is present (draining or holding). A snapshot.
    #[inline]
    pub fn is_write_locked(&self) -> bool {
        self.writer.load(Ordering::Relaxed) & WRITER != 0
    }

    /// The read holds recorded now, over every thread. A snapshot, for
    /// diagnostics; it scans every reader record.
    pub fn readers(&self) -> usize {
        let (id, key) = (self.id.load(Ordering::Relaxed), self.key());
        self.all_records()
            .map(|r| r.holds_on(id, key, Ordering::Relaxed))
            .sum()
    }

    fn unlock_write(&self) {
        // Release pairs with the readers' Acquire loads of `writer` and the
        // next writer's Acquire RMW: our write happens before their sections.
        // An RMW, not a store: `SLOW` stays.
        self.writer.fetch_and(!WRITER, Ordering::Release);
        self.waiters.wake_up_all();
    }
}

impl Drop for RawPercpuRwSemaphore {
    /// Gives the id back to the pool, unless a forgotten read guard still
    /// counts on it (the id is retired then: its next owner would inherit a
    /// phantom reader).
    fn drop(&mut self) {
        // Relaxed (in `readers` too): every unlock of this semaphore happens
        // before its drop (the guards borrowed it), so the loads read the
        // final counts; a forgotten guard's count stays.
        let id = self.id.load(Ordering::Relaxed);
        if (id as usize) < COUNTED_SEMAPHORES && self.readers() == 0 {
            records::free_id(id);
        }
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

// SAFETY: one writer at a time (the RMW that sets `WRITER` only if it was
// clear), and the writer holds only once no reader record shows a hold on the
// semaphore after its heavy barrier: by then every reader either was seen by
// the scan — and the writer waits for its hold to go — or sees `WRITER` and
// backs out (or keeps its hold only while this thread's earlier, recorded
// hold keeps the writer waiting). Readers' holds end with a Release store
// that the writer's Acquire scan reads; the writer's section ends with the
// Release RMW clearing `WRITER` that readers' Acquire loads and the next
// writer's Acquire RMW read (module docs). Readers share `&T`:
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
    /// readers to drain.
    fn lock(&self) {
        while !self.claim() {
            // Lock statistics (once per wait: a repeat is ignored).
            lockdep::lock_contended(&self.dep_map);
            self.waiters
                .wait_event(|| self.writer.load(Ordering::Relaxed) & WRITER == 0);
        }
        // Our store of `writer` before our scan, paired with every reader's
        // light_barrier (module docs).
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

// SAFETY: a shared hold is granted only with this thread's hold recorded
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
        self.lock_shared_hinted();
    }

    /// `percpu_down_read`'s fast path (`this_cpu_inc(*sem->read_count)`):
    /// one TLS load, the load and bounds check of `id`, an increment of this
    /// thread's counter for it, a compiler barrier, a load of `writer`. The
    /// hint, never 0, is the counter's address, for the unlock (or, for a
    /// slot hold, that of the record's `slotted`).
    #[inline]
    fn lock_shared_hinted(&self) -> usize {
        // Relaxed on `id`: it changes once, from UNASSIGNED, which fails the
        // bounds check like NO_ID; any other value is final (`settle_id`).
        if let Some((rec, count)) = records::fast(self, self.id.load(Ordering::Relaxed)) {
            // INVARIANT: this thread has one more hold on the semaphore.
            // Relaxed: the order with the writer comes from the barrier below.
            count.store(own(count) + 1, Ordering::Relaxed);
            // Our increment before our load of `writer`; pairs with the
            // writer's heavy_barrier (membarrier) between its store of
            // `writer` and its scan of the counters.
            fast_barrier();
            // Acquire pairs with the Release RMW of `up_write`.
            if self.writer.load(Ordering::Acquire) != NO_WRITER {
                // Returns with the hold in the same counter.
                self.read_slow(rec, Hold::Count(count));
            }
            return hint_of(count).get();
        }
        self.lock_shared_slow().get()
    }

    #[inline]
    fn try_lock_shared(&self) -> bool {
        let rec = records::mine(self);
        let (hold, free) = self.enter_read(rec);
        if free || hold.nested(rec, self.key()) {
            return true;
        }
        self.leave_read(rec, hold);
        false
    }

    /// `percpu_up_read` without a hint: one TLS load, the load and bounds
    /// check of `id`, then as [`unlock_shared_hinted`](Self::unlock_shared_hinted).
    #[inline]
    unsafe fn unlock_shared(&self) {
        // Relaxed on `id`: this thread's lock settled it (or read it
        // settled), so it reads that value.
        if let Some((_, count)) = records::fast(self, self.id.load(Ordering::Relaxed)) {
            // Our caller holds a read lock on `self` on this thread (the
            // contract of `unlock_shared`), counted in this thread's record,
            // which `fast` returns; `fast` runs only where membarrier does.
            self.unlock_fast(count);
            return;
        }
        self.unlock_shared_slow();
    }

    /// `percpu_up_read`'s fast path (`this_cpu_dec(*sem->read_count)`),
    /// with the counter the lock's hint names: the release store of the
    /// decremented counter, a compiler barrier, a load of `writer` — the
    /// `rcu_read_unlock` shape. `SLOW` in `writer` sends the holds that need
    /// more (a slot to clear, a fence) on from there. A guard without a hint
    /// (`try_read`) looks the counter up as `unlock_shared` does.
    #[inline]
    unsafe fn unlock_shared_hinted(&self, hint: usize) {
        if hint == 0 {
            // SAFETY: our caller holds a read lock on `self` on this thread.
            unsafe { self.unlock_shared() };
            return;
        }
        // SAFETY: a non-zero hint is what `lock_shared_hinted` of this hold
        // returned (our caller's contract): the exposed address of this
        // thread's counter for this semaphore or of its record's `slotted`,
        // inside a record that is never freed (or, under loom, inside
        // `self`); the guard that kept it is !Send, so this is that thread.
        let word = unsafe { &*core::ptr::with_exposed_provenance::<AtomicUsize>(hint) };
        // The hold is counted there (or `slotted` counts its slot).
        self.unlock_fast(word);
    }

    fn is_write_locked(&self) -> bool {
        RawPercpuRwSemaphore::is_write_locked(self)
    }
}

/// A reader-writer semaphore whose readers write only their own thread's
/// reader record (`struct percpu_rw_semaphore`): the generic [`Lock`] over
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
    /// `DEFINE_STATIC_PERCPU_RWSEM`); `const`, for statics. Its lockdep class
    /// is the caller's location.
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

    /// Tests that exhaust the process-wide id pool, or need an id, hold this.
    static POOL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn pool() -> std::sync::MutexGuard<'static, ()> {
        POOL.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id_of<T>(s: &PercpuRwSemaphore<T>) -> u32 {
        s.raw().id.load(Ordering::Relaxed)
    }

    /// This thread's record: `slotted` counts its slots that hold.
    fn slots_agree<T>(s: &PercpuRwSemaphore<T>) {
        let rec = records::mine(s.raw());
        let holding = rec.slots.iter().filter(|s| own(s) != FREE).count();
        assert_eq!(own(&rec.slotted), holding);
    }

    /// A semaphore of each kind: one that takes an id (counted holds) and
    /// one without (holds in slots, as past the id pool).
    fn both<T>(data: impl Fn() -> T) -> [PercpuRwSemaphore<T>; 2] {
        [
            PercpuRwSemaphore::new(data()),
            Lock::from_raw(RawPercpuRwSemaphore::without_id(), data()),
        ]
    }

    #[test]
    fn readers_count_on_their_thread_and_uncount_on_drop() {
        for s in both(|| 3) {
            let a = s.read();
            let b = s.try_read().unwrap();
            assert_eq!(s.raw().readers(), 2);
            assert!(s.try_write().is_none());
            drop((a, b));
            assert_eq!(s.raw().readers(), 0);
            *s.try_write().unwrap() += 1;
            assert_eq!(*s.read(), 4);
        }
    }

    #[test]
    fn a_writer_waits_for_readers_and_blocks_new_ones() {
        for s in both(|| 0u32) {
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
                // Our nested reads go on past the draining writer.
                let nested = s.read();
                let tried = s.try_read().expect("a nested try_read passes the writer");
                assert_eq!(*nested + *tried, 0);
                drop((nested, tried));
                drop(r);
                w.join().unwrap();
            });
            assert_eq!(*s.read(), 1);
            assert_eq!(s.raw().readers(), 0);
        }
    }

    #[test]
    fn a_reader_sleeps_while_a_writer_holds() {
        for s in both(|| 0u32) {
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
    }

    #[test]
    fn readers_and_writers_exclude() {
        for s in both(|| (0u64, 0u64)) {
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
    }

    #[test]
    fn guards_dropped_out_of_order_leave_no_hold() {
        let [a1, a2] = both(|| 1);
        let [b1, b2] = both(|| 2);
        for (a, b) in [(&a1, &b1), (&a2, &b2), (&a1, &b2), (&a2, &b1)] {
            for _ in 0..3 * MAX_NESTED_READS {
                // A is taken first and dropped first, under B's hold; the
                // record must not run out of room.
                let ga = a.read();
                let gb = b.read();
                let ga2 = a.read();
                drop(ga);
                assert_eq!((a.raw().readers(), b.raw().readers()), (1, 1));
                slots_agree(a);
                drop(gb);
                drop(ga2);
                assert_eq!((a.raw().readers(), b.raw().readers()), (0, 0));
                slots_agree(a);
            }
            drop(a.try_write().expect("no reader left on a"));
            drop(b.try_write().expect("no reader left on b"));
        }
    }

    #[test]
    fn a_thread_exiting_with_a_forgotten_read_guard_is_reported() {
        let s: &'static PercpuRwSemaphore<u32> = Box::leak(Box::new(PercpuRwSemaphore::new(0)));
        let before = records::EXITED_HOLDING.load(Ordering::Relaxed);
        std::thread::spawn(|| core::mem::forget(s.read()))
            .join()
            .unwrap();
        assert!(records::EXITED_HOLDING.load(Ordering::Relaxed) > before);
        // The hold stays recorded (its record is never reused): no writer.
        assert_eq!(s.raw().readers(), 1);
        assert!(s.try_write().is_none());
        // Threads that exit cleanly give their records back to be reused.
        for _ in 0..4 {
            std::thread::spawn(|| drop(s.read())).join().unwrap();
        }
        assert_eq!(s.raw().readers(), 1);
    }

    #[test]
    #[should_panic(expected = "read locks held by one thread")]
    fn too_many_nested_reads_without_an_id_panic() {
        let s = Lock::from_raw(RawPercpuRwSemaphore::without_id(), ());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g: Vec<_> = (0..=MAX_NESTED_READS).map(|_| s.read()).collect();
        }));
        // The failed hold took no slot: a writer gets in.
        assert_eq!(s.raw().readers(), 0);
        drop(s.try_write().expect("no reader left"));
        std::panic::resume_unwind(r.unwrap_err());
    }

    /// Counted holds nest past the slots' limit, and a semaphore's first read
    /// lock gives it its id for good.
    #[test]
    fn counted_reads_nest_without_a_limit() {
        let _pool = pool();
        let s = PercpuRwSemaphore::new(5);
        assert_eq!(id_of(&s), UNASSIGNED);
        let held: Vec<_> = (0..4 * MAX_NESTED_READS).map(|_| s.read()).collect();
        let id = id_of(&s);
        assert!((id as usize) < COUNTED_SEMAPHORES, "no id: {id}");
        assert_eq!(s.raw().readers(), held.len());
        assert!(s.try_write().is_none());
        drop(held);
        assert_eq!(id_of(&s), id);
        drop(s.try_write().expect("no reader left"));
    }

    /// Ids come back when their semaphores are dropped (else this loop would
    /// empty the pool), except from under a forgotten hold; past an empty
    /// pool, semaphores work on slots; a writer needs no id.
    #[test]
    fn ids_are_recycled_and_an_empty_pool_falls_back_to_slots() {
        let _pool = pool();
        for _ in 0..3 * COUNTED_SEMAPHORES {
            let s = PercpuRwSemaphore::new(0);
            *s.write() += 1;
            assert_eq!(id_of(&s), UNASSIGNED, "a writer takes no id");
            assert_eq!(*s.read(), 1);
            assert!((id_of(&s) as usize) < COUNTED_SEMAPHORES);
        }
        // A forgotten hold keeps its id out of the pool (the thread that
        // forgot it is reported at its exit).
        let lost = Box::new(PercpuRwSemaphore::new(0));
        let lost = std::thread::spawn(move || {
            core::mem::forget(lost.read());
            lost
        })
        .join()
        .unwrap();
        let lost_id = id_of(&lost);
        drop(lost);
        // Empty the pool (other tests may hold a few ids meanwhile).
        let mut live = Vec::new();
        let spare = loop {
            let s = PercpuRwSemaphore::new(0u32);
            drop(s.read());
            assert_ne!(id_of(&s), lost_id, "a forgotten hold's id was reused");
            if id_of(&s) == NO_ID {
                break s;
            }
            live.push(s);
            assert!(live.len() <= COUNTED_SEMAPHORES, "the pool never ran out");
        };
        let outer = spare.read();
        let inner = spare.read();
        assert_eq!(spare.raw().readers(), 2);
        assert!(spare.try_write().is_none());
        drop((outer, inner));
        // `settle_id` set SLOW for it, so the guards' unlocks cleared slots.
        assert_eq!(spare.raw().readers(), 0);
        slots_agree(&spare);
        *spare.write() += 1;
        assert_eq!(*spare.read(), 1);
        // Ids come back: the next semaphore counts again.
        drop(live);
        let s = PercpuRwSemaphore::new(0);
        drop(s.read());
        assert!((id_of(&s) as usize) < COUNTED_SEMAPHORES);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    /// A semaphore of each kind: with an id (counted holds; the first read
    /// lock settles it, inside the model) and without (holds in slots).
    fn kinds() -> [fn() -> PercpuRwSemaphore<u32>; 2] {
        [
            || PercpuRwSemaphore::new(0),
            || Lock::from_raw(RawPercpuRwSemaphore::without_id(), 0),
        ]
    }

    /// The reader/writer handshake of the library's own code: a reader and a
    /// writer never hold at once (the writer's store into the data would race
    /// with the reader's load, which loom reports), and neither misses the
    /// other's wake-up (a lost one deadlocks, which loom reports). The
    /// reader's first lock takes the slow path: it settles the id (or finds
    /// none) while the writer may be reading it.
    #[test]
    fn loom_percpu_rwsem_reader_and_writer_exclude() {
        for new in kinds() {
            loom::model(move || reader_races_writer(Arc::new(new())));
        }
    }

    /// One read on this thread races one write on another: the reader sees
    /// the value before or after the write, and the write lands.
    fn reader_races_writer(s: Arc<PercpuRwSemaphore<u32>>) {
        let s2 = s.clone();
        let w = loom::thread::spawn(move || {
            *s2.write() += 1;
        });
        let v = *s.read();
        assert!(v == 0 || v == 1);
        w.join().unwrap();
        assert_eq!(*s.read(), 1);
    }

    /// The same with the semaphore's id settled before the model's threads
    /// race, so that the reader takes the fast path, whose compiler barrier
    /// is modelled as a SeqCst fence against the writer's membarrier, a
    /// SeqCst fence too (as the RCU models do). Without the reader's
    /// `fast_barrier` in `lock_shared` this model fails: it checks the
    /// store-buffering pair, not only the happy path.
    #[test]
    fn loom_percpu_rwsem_fast_reader_and_writer_exclude() {
        loom::model(|| {
            let s = Arc::new(PercpuRwSemaphore::new(0u32));
            // Settles the id: the racing read below takes the fast path.
            drop(s.read());
            reader_races_writer(s);
        });
    }

    /// A read hold nests past a writer that is draining: the inner read keeps
    /// its hold instead of waiting for the writer, which waits for the outer
    /// hold (a deadlock, which loom would report, otherwise).
    #[test]
    fn loom_percpu_rwsem_nested_read_passes_a_draining_writer() {
        for new in kinds() {
            loom::model(move || {
                let s = Arc::new(new());
                let outer = s.read();
                let s2 = s.clone();
                let w = loom::thread::spawn(move || {
                    *s2.write() += 1;
                });
                let inner = s.read();
                assert_eq!(*inner, 0);
                drop(inner);
                drop(outer);
                w.join().unwrap();
                assert_eq!(*s.read(), 1);
            });
        }
    }
}
