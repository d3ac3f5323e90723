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
//! | `writer` (per semaphore) | `0` no writer; `1` a writer is draining the readers or holds the lock | the writer: CAS `0 → 1` in `down_write`, store `0` in `up_write` |
//! | a reader record's slot (per thread) | `0` free, or the address of a semaphore this thread holds a read lock on | its thread only: the address on lock, `0` on unlock |
//! | a reader record's `top` (per thread) | how many slots from the bottom may be taken: the slots at `top` and above are free | its thread only, and only its thread reads it |
//!
//! The kernel counts readers per CPU with `this_cpu_inc` under
//! `preempt_disable`; user space cannot disable preemption, so a per-CPU
//! counter would need an atomic read-modify-write (a locked instruction) on
//! each lock and unlock. Per-thread records need none: each thread owns a
//! cache-padded record of [`MAX_NESTED_READS`] slots, registered once in a
//! process-wide list (records are reused after their thread exits, never
//! freed). The slots are a stack: a read lock stores the semaphore's address
//! into slot `top` and bumps `top`, the unlock of the last hold taken clears
//! slot `top - 1` (guards dropped out of order leave holes, which the slow
//! path skips and reclaims).
//!
//! The fast path has the shape of `rcu_read_lock`'s: a const-initialised
//! thread-local pointer with no destructor (`FAST`) names the thread's record,
//! so reaching it is one TLS load with no lazy-initialisation or
//! destroyed-state check; then a plain store to a line only this thread
//! writes, a compiler barrier, and a load of `writer`, a line every reader
//! shares read-only while no writer comes. The unlock is the same with the
//! slot cleared. `FAST` is null until the thread's first read lock and where
//! membarrier is unavailable, so those go to the `#[cold]` path, which
//! registers the thread and uses a full fence in the fallback mode.
//!
//! A writer sets `writer`, then waits until no record's slot names its
//! semaphore. The two sides form a store→load pair (store-buffering): reader
//! `slot = sem; load writer`, writer `writer = 1; load slots`. The fast side
//! pays nothing for it: the reader's order comes from a compiler barrier
//! matched by one [`heavy_barrier`] (`membarrier`) on the
//! writer's side, the kernel's RCU-sync grace period in its user-space form.
//! After that barrier every reader either was seen by the writer's scan — which
//! waits for its slot to clear — or sees `writer == 1`, clears its slot, and
//! waits on `waiters` for the writer to leave (`sched::sleep`, through
//! [`WaitQueue`]).
//!
//! The record also makes read holds nest: a reader that finds a writer
//! draining while its thread already holds a read lock on this semaphore keeps
//! its slot and goes on (the writer is waiting for the outer hold anyway); it
//! would otherwise deadlock against that writer.
//!
//! A thread that exits with a read hold still recorded — a guard forgotten
//! with `mem::forget` — is reported on stderr at its exit (`ksync: BUG: thread
//! … exits holding … percpu_rw_semaphore read lock(s)`), and its record is
//! never reused: the hold stays, and writers of that semaphore wait for it
//! forever, as a forgotten `std::sync::MutexGuard` keeps its mutex locked.
//!
//! Orderings: a reader's load of `writer` is Acquire and pairs with the
//! Release store of `up_write`; a reader clears its slot with a Release store
//! that pairs with the writer's Acquire loads of the slots, so the read-side
//! critical sections happen before the write. An unlocking reader wakes the
//! writer (`drain`) if, after clearing its slot and its barrier (the compiler
//! barrier, or [`light_barrier`] on the slow path), it
//! sees `writer == 1`: the same pair with the writer's barrier makes sure
//! either the writer's scan sees the cleared slot or the reader sees the flag.
//!
//! Writers exclude each other with the CAS on `writer` and are preferred to
//! new readers (the kernel's behaviour): a stream of writers can starve
//! readers; this lock is for data that is written rarely. A writer's scan
//! reads every registered record: its cost grows with the number of threads
//! that ever read a `PercpuRwSemaphore`.

use core::fmt;

use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::lock::{Backend, Guard, Lock, ReadGuard, SharedBackend};
use crate::lockdep::{self, AcquireKind, LockdepMap};
use crate::loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use crate::sched::WaitQueue;

/// How many read holds one thread may keep at once, over every
/// `PercpuRwSemaphore` (nested or on different semaphores): the slots of its
/// reader record.
pub const MAX_NESTED_READS: usize = 16;

/// `writer`: no writer.
const NO_WRITER: u32 = 0;
/// `writer`: a writer drains the readers or holds the lock.
const WRITER: u32 = 1;
/// A reader record's slot: free.
const FREE: usize = 0;

/// One thread's read holds over every `PercpuRwSemaphore`: each slot is
/// [`FREE`] or the address of a semaphore the thread holds a read lock on.
/// Only the owning thread writes the record; writers read the slots.
///
/// # Invariants
/// Every slot at index `top` or above is [`FREE`]; a slot below `top` names
/// a semaphore the thread holds, or is a [`FREE`] hole left by a read guard
/// dropped out of order. So a read lock takes slot `top` (one store), and the
/// unlock of the last hold taken clears slot `top - 1`: the slots are a stack
/// in the common, nested case, with no search on either side.
struct ReaderRecord {
    slots: [AtomicUsize; MAX_NESTED_READS],
    /// One past the highest slot that may be taken (Invariants). Owner-only:
    /// an atomic only so that the record may be shared with writers.
    top: AtomicUsize,
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

impl ReaderRecord {
    fn new() -> Self {
        ReaderRecord {
            slots: core::array::from_fn(|_| AtomicUsize::new(FREE)),
            top: AtomicUsize::new(0),
        }
    }

    /// Stores `sem` into slot `top` and returns it, or `None` if `top` is
    /// past the last slot. Relaxed: the store→load order with the writer
    /// comes from the caller's barrier. Owner only.
    #[inline(always)]
    fn push(&self, sem: usize) -> Option<&AtomicUsize> {
        let t = own(&self.top);
        let slot = self.slots.get(t)?;
        // INVARIANT: slot `t` was FREE (it is at `top`); it names `sem`, a
        // hold the caller now has, and `top` moves past it.
        slot.store(sem, Ordering::Relaxed);
        self.top.store(t + 1, Ordering::Relaxed);
        Some(slot)
    }

    /// [`push`](Self::push), or where the stack is full, a hole below it.
    /// `None` when every slot holds.
    #[cold]
    fn push_any(&self, sem: usize) -> Option<&AtomicUsize> {
        if let Some(slot) = self.push(sem) {
            return Some(slot);
        }
        self.shrink();
        if let Some(slot) = self.push(sem) {
            return Some(slot);
        }
        // INVARIANT: a hole below `top`; filling it keeps `top`.
        let slot = self.slots.iter().find(|s| own(s) == FREE)?;
        slot.store(sem, Ordering::Relaxed);
        Some(slot)
    }

    /// The top slot, if it names `sem`, popped off the stack. Owner only;
    /// the caller clears the slot.
    ///
    /// # Safety
    /// The calling thread owns the record and holds a read lock on `sem`
    /// recorded in it.
    #[inline(always)]
    unsafe fn pop(&self, sem: usize) -> Option<&AtomicUsize> {
        let t = own(&self.top);
        debug_assert!((1..=MAX_NESTED_READS).contains(&t));
        // SAFETY: `top` never exceeds MAX_NESTED_READS (`push` moves it past
        // a slot that exists), and it is at least 1: the caller's hold on
        // `sem` sits in a slot, and every slot from `top` up is FREE
        // (Invariants). So `t - 1` is a slot's index.
        let slot = unsafe { self.slots.get_unchecked(t - 1) };
        if own(slot) != sem {
            return None;
        }
        // INVARIANT: the caller clears slot `t - 1` before anything else
        // touches the record; until then it is below the new `top`.
        self.top.store(t - 1, Ordering::Relaxed);
        Some(slot)
    }

    /// Lowers `top` past the holes at the top of the stack. Owner only.
    fn shrink(&self) {
        let mut t = own(&self.top);
        while t > 0 && own(&self.slots[t - 1]) == FREE {
            t -= 1;
        }
        // INVARIANT: the slots from the new `top` up are FREE.
        self.top.store(t, Ordering::Relaxed);
    }

    /// A slot of the owner's that holds `sem`, other than `except`.
    #[inline]
    fn holds(&self, sem: usize, except: &AtomicUsize) -> bool {
        self.slots
            .iter()
            .any(|s| !core::ptr::eq(s, except) && own(s) == sem)
    }

    /// The owner's slot holding `sem`.
    #[inline]
    fn slot_of(&self, sem: usize) -> Option<&AtomicUsize> {
        self.slots.iter().find(|s| own(s) == sem)
    }

    /// How many read holds the record shows (any thread may ask).
    fn held(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) != FREE)
            .count()
    }
}

/// Where reader records live: process-wide, one per thread, in the normal
/// build; per semaphore, one per model thread, under loom (whose objects may
/// not outlive one model run).
#[cfg(not(loom))]
mod records {
    use super::ReaderRecord;
    use crate::arch::CachePadded;
    use core::cell::Cell;
    use core::ptr;
    use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

    /// Threads that exited with read holds still recorded (see `Owner`): a
    /// read guard forgotten with `mem::forget`, or one that lives in a
    /// thread-local destroyed after the record's.
    pub(super) static EXITED_HOLDING: AtomicUsize = AtomicUsize::new(0);

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
        /// This thread's record in either mode, or null before its first read
        /// lock.
        static MINE: Cell<*const CachePadded<Registered>> = const { Cell::new(ptr::null()) };
        /// Gives the record back at thread exit.
        static OWNER: Owner = const { Owner };
    }

    struct Owner;

    impl Drop for Owner {
        fn drop(&mut self) {
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
                // record stays this thread's and is never reused: its slots
                // keep the holds, so writers of those semaphores wait for them
                // (forever, for a forgotten guard), and a later guard's drop on
                // this thread still finds its slot through MINE.
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
            // Every slot is FREE: the next owner starts with an empty stack.
            r.record.top.store(0, Ordering::Relaxed);
            // Release: the next owner (Acquire CAS in `claim`) sees our last
            // stores to the record.
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

    /// The fast path's record: this thread's where membarrier is in use and
    /// the thread is registered; `None` sends the caller to its slow path.
    #[inline(always)]
    pub(super) fn fast(_sem: &super::RawPercpuRwSemaphore) -> Option<&'static ReaderRecord> {
        let r = FAST.with(Cell::get);
        // SAFETY: a non-null FAST is this thread's claimed record, inside a
        // leaked box that is never freed.
        unsafe { r.as_ref() }
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
    use crate::loom::sync::atomic::{AtomicBool, Ordering};
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

    loom::thread_local! {
        /// The index this model thread claimed (models use one semaphore).
        static INDEX: Cell<Option<usize>> = Cell::new(None);
    }

    /// The fast path's record: always this model thread's (the models run
    /// the fast path with its barrier as a SeqCst fence, see `fast_barrier`).
    pub(super) fn fast(sem: &super::RawPercpuRwSemaphore) -> Option<&ReaderRecord> {
        Some(mine(sem))
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

/// The raw `percpu_rw_semaphore`: the writer flag, two wait queues
/// and the lockdep map, without data (the readers' holds are in their
/// threads' records). [`PercpuRwSemaphore<T>`] is this plus a `T`.
pub struct RawPercpuRwSemaphore {
    /// `NO_WRITER` or `WRITER` (module docs).
    writer: AtomicU32,
    /// Readers and writers waiting for `writer == NO_WRITER`.
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
        RawPercpuRwSemaphore {
            writer: AtomicU32::new(NO_WRITER),
            waiters: WaitQueue::new(),
            drain: WaitQueue::new(),
            dep_map: LockdepMap::new_sleeping("percpu_rw_semaphore"),
        }
    }

    /// An unlocked semaphore (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new() -> Self {
        RawPercpuRwSemaphore {
            writer: AtomicU32::new(NO_WRITER),
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

    /// Records a read hold in `rec` (this thread's record) and reports
    /// whether no writer is present: the slow path's entry, with the barrier
    /// that suits the membarrier mode.
    ///
    /// # Panics
    /// Past [`MAX_NESTED_READS`] holds on this thread.
    #[inline]
    fn enter_read<'r>(&self, rec: &'r ReaderRecord) -> (&'r AtomicUsize, bool) {
        let Some(slot) = rec.push_any(self.key()) else {
            panic!(
                "ksync: more than {MAX_NESTED_READS} percpu_rw_semaphore read locks held by one thread"
            );
        };
        // Our slot store before our load of `writer`, paired with the
        // writer's heavy_barrier between its store of `writer` and its scan.
        light_barrier();
        // Acquire pairs with the Release store of `up_write`.
        (slot, self.writer.load(Ordering::Acquire) == NO_WRITER)
    }

    /// `percpu_down_read` past the fast path: registers this thread's record
    /// if it has none, enters with the mode's barrier, and waits for a writer.
    #[cold]
    fn lock_shared_slow(&self) {
        let rec = records::mine(self);
        let (slot, free) = self.enter_read(rec);
        if !free {
            self.read_slow(rec, slot);
        }
    }

    /// Clears a hold's slot in `rec` (this thread's record) and wakes a
    /// writer that may be waiting for it: the slow path's exit.
    fn leave_read(&self, rec: &ReaderRecord, slot: &AtomicUsize) {
        // Release pairs with the writer's Acquire loads of the slots: our
        // read-side critical section happens before its write.
        slot.store(FREE, Ordering::Release);
        rec.shrink();
        // Our clear before our load of `writer`: the same pair as in
        // `enter_read`, so a writer that saw our slot sees us wake it.
        light_barrier();
        if self.writer.load(Ordering::Relaxed) != NO_WRITER {
            self.wake_writer();
        }
    }

    /// `percpu_up_read` of a hold that is not on top of the thread's stack
    /// (guards dropped out of order), or without the fast path.
    #[cold]
    fn unlock_shared_slow(&self) {
        let rec = records::mine(self);
        let slot = rec
            .slot_of(self.key())
            .expect("ksync: percpu_up_read without a read hold on this thread");
        self.leave_read(rec, slot);
    }

    #[cold]
    fn wake_writer(&self) {
        self.drain.wake_up_all();
    }

    /// A writer is present: go on if this thread already holds a read lock
    /// here (nesting), else back out and wait for the writer to leave.
    #[cold]
    fn read_slow<'r>(&self, rec: &'r ReaderRecord, mut slot: &'r AtomicUsize) {
        loop {
            if rec.holds(self.key(), slot) {
                // The writer waits for our outer hold: keep this one too.
                return;
            }
            // Lock statistics (once per wait: a repeat is ignored).
            lockdep::lock_contended(&self.dep_map);
            self.leave_read(rec, slot);
            self.waiters
                .wait_event(|| self.writer.load(Ordering::Relaxed) == NO_WRITER);
            let (again, free) = self.enter_read(rec);
            if free {
                return;
            }
            slot = again;
        }
    }

    /// Whether no reader record names this semaphore. Acquire pairs with the
    /// readers' Release clears.
    fn drained(&self) -> bool {
        let key = self.key();
        self.all_records()
            .all(|r| r.slots.iter().all(|s| s.load(Ordering::Acquire) != key))
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

    /// The read holds recorded now, over every thread. A snapshot, for
    /// diagnostics; it scans every reader record.
    pub fn readers(&self) -> usize {
        let key = self.key();
        self.all_records()
            .map(|r| {
                r.slots
                    .iter()
                    .filter(|s| s.load(Ordering::Relaxed) == key)
                    .count()
            })
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
// holds only once no reader record names the semaphore after its heavy
// barrier: by then every reader either was seen by the scan — and the writer
// waits for its slot to clear — or sees `writer == 1` and backs out (or keeps
// its slot only while this thread's earlier, recorded hold keeps the writer
// waiting). Readers' holds end with a Release clear that the writer's Acquire
// scan reads; the writer's section ends with the Release store of `writer`
// that readers' Acquire loads and the next writer's Acquire CAS read (module
// docs). Readers share `&T`: `Concurrent<T>` is `T`.
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
                .wait_event(|| self.writer.load(Ordering::Relaxed) == NO_WRITER);
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

// SAFETY: a shared hold is granted only with this thread's slot recorded
// while no writer holds (module docs, and `Backend`'s argument above); it
// synchronizes-with the last `up_write` through the Acquire load of `writer`.
unsafe impl SharedBackend for RawPercpuRwSemaphore {
    /// Read holds nest on one thread even past a waiting writer (see the
    /// module docs): lockdep's recursive read.
    #[inline(always)]
    fn read_kind(&self) -> AcquireKind {
        AcquireKind::RecursiveRead
    }

    /// `percpu_down_read`'s fast path: one TLS load, a store into slot
    /// `top` of this thread's record and of `top`, a compiler barrier, a
    /// load of `writer`.
    #[inline]
    fn lock_shared(&self) {
        if let Some(rec) = records::fast(self)
            && let Some(slot) = rec.push(self.key())
        {
            // Our slot store before our load of `writer`; pairs with the
            // writer's heavy_barrier (membarrier) between its store of
            // `writer` and its scan of the slots.
            fast_barrier();
            // Acquire pairs with the Release store of `up_write`.
            if self.writer.load(Ordering::Acquire) != NO_WRITER {
                self.read_slow(rec, slot);
            }
            return;
        }
        self.lock_shared_slow();
    }

    #[inline]
    fn try_lock_shared(&self) -> bool {
        let rec = records::mine(self);
        let (slot, free) = self.enter_read(rec);
        if free || rec.holds(self.key(), slot) {
            return true;
        }
        self.leave_read(rec, slot);
        false
    }

    /// `percpu_up_read`'s fast path: one TLS load, the release store that
    /// clears the top slot (the last hold taken), a store of `top`, a
    /// compiler barrier, a load of `writer`.
    #[inline]
    unsafe fn unlock_shared(&self) {
        if let Some(rec) = records::fast(self)
            // SAFETY: our caller holds a read lock on `self` on this thread
            // (the contract of `unlock_shared`), recorded in this thread's
            // record, which `fast` returns.
            && let Some(slot) = unsafe { rec.pop(self.key()) }
        {
            // Release pairs with the writer's Acquire loads of the slots: our
            // read-side critical section happens before its write.
            slot.store(FREE, Ordering::Release);
            // Our clear before our load of `writer`: the same pair as in
            // `lock_shared`, so a writer that saw our slot sees us wake it.
            fast_barrier();
            if self.writer.load(Ordering::Relaxed) != NO_WRITER {
                self.wake_writer();
            }
            return;
        }
        self.unlock_shared_slow();
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
    fn guards_dropped_out_of_order_leave_no_hold() {
        let (a, b) = (PercpuRwSemaphore::new(1), PercpuRwSemaphore::new(2));
        for _ in 0..3 * MAX_NESTED_READS {
            // A is taken first and dropped first: its slot is a hole below
            // B's until B goes; the stack must not run out of slots.
            let ga = a.read();
            let gb = b.read();
            let ga2 = a.read();
            drop(ga);
            assert_eq!((a.raw().readers(), b.raw().readers()), (1, 1));
            drop(gb);
            drop(ga2);
            assert_eq!((a.raw().readers(), b.raw().readers()), (0, 0));
        }
        drop(a.try_write().expect("no reader left on a"));
        drop(b.try_write().expect("no reader left on b"));
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
    fn too_many_nested_reads_panic() {
        let s = PercpuRwSemaphore::new(());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g: Vec<_> = (0..=MAX_NESTED_READS).map(|_| s.read()).collect();
        }));
        // The failed hold took no slot: a writer gets in.
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
    /// other's wake-up (a lost one deadlocks, which loom reports). The reader
    /// runs the fast path, whose compiler barrier is modelled as a SeqCst
    /// fence against the writer's membarrier, a SeqCst fence too (as the RCU
    /// models do). Without the reader's `fast_barrier` in `lock_shared` this
    /// model fails: it checks the store-buffering pair, not only the happy
    /// path.
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

    /// A read hold nests past a writer that is draining: the inner read keeps
    /// its slot instead of waiting for the writer, which waits for the outer
    /// hold (a deadlock, which loom would report, otherwise).
    #[test]
    fn loom_percpu_rwsem_nested_read_passes_a_draining_writer() {
        loom::model(|| {
            let s = Arc::new(PercpuRwSemaphore::new(0u32));
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
