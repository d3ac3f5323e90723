//! `call_rcu`, `kfree_rcu` and `rcu_barrier`: callbacks run after a grace period
//! by one background worker thread (liburcu's `call_rcu` thread,
//! `src/urcu-call-rcu-impl.h`).
//!
//! `call_rcu` allocates one node holding the callback (the `rcu_head` and the
//! closure together; nodes up to 64 bytes come from the thread's cache of
//! blocks that the worker recycles, see `pool`) and pushes it onto a lock-free
//! stack with one CAS. The
//! worker detaches the whole stack with one swap, reverses it into arrival order,
//! waits for one grace period for the whole batch and runs it: one grace period
//! serves every callback queued while the previous batch ran. When the stack is
//! empty the worker sleeps on a futex that the next `call_rcu` wakes.
//!
//! | word | values |
//! |------|--------|
//! | `CallbackQueue::head` | null: empty; else the newest node of the pending stack |
//! | `CallbackQueue::sleeping` | 0 (`RUNNING`); 1 (`IDLE`): the queue was empty, the worker sleeps until a `call_rcu` wakes it; 2 (`GATHERING`): the worker waits up to [`GATHER`] for more callbacks to join its batch, woken early only by `rcu_barrier` (futex word) |
//!
//! The gathering pause is liburcu's: its `call_rcu` thread sleeps 10 ms between
//! batches so that one grace period serves many callbacks. ksync pauses 1 ms, and
//! not at all while an `rcu_barrier` waits.
//!
//! ## At process exit
//!
//! The worker is a detached thread. When `main` returns, callbacks still queued or
//! waiting for their grace period are **not run** (the process ends under them,
//! as with liburcu); memory they would have freed is returned to the system with
//! the process. A program whose callbacks do more than free memory (flush, close,
//! count) calls [`rcu_barrier`] before it exits, which runs them all.
//!
//! ## Panicking callbacks
//!
//! A callback that panics is caught (`catch_unwind`); the panic is reported on
//! stderr, counted in [`callback_panics`], and the worker goes on with the next
//! callback: no other callback is lost.

use crate::loom::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use core::ptr;

/// The header of every queued callback (the kernel's `struct rcu_head`).
#[repr(C)]
pub(crate) struct CbHead {
    next: *mut CbHead,
    /// Takes ownership of the node and runs (or, with `run == false`, drops) it.
    call: unsafe fn(*mut CbHead, bool),
}

#[repr(C)]
struct CbNode<F> {
    head: CbHead,
    f: F,
}

/// # Safety
/// `p` is the head of a node made by [`CbHead::boxed`] for this `F`, used once.
unsafe fn call_node<F: FnOnce()>(p: *mut CbHead, run: bool) {
    #[cfg(not(loom))]
    if pool::fits::<CbNode<F>>() {
        // SAFETY: per the contract the node is a pool block holding an
        // initialised CbNode<F>; the closure is moved out exactly once and the
        // block is not read again after it is released.
        let f = unsafe { ptr::read(&(*(p as *mut CbNode<F>)).f) };
        // SAFETY: the block came from pool::alloc_block (CbHead::boxed) and
        // nothing refers to it any more.
        unsafe { pool::release_block(p as *mut u8) };
        if run {
            f();
        }
        return;
    }
    // SAFETY: per the contract; the head is the first field (repr(C)).
    let node = unsafe { Box::from_raw(p as *mut CbNode<F>) };
    let CbNode { f, .. } = *node;
    if run {
        f();
    }
}

impl CbHead {
    /// Boxes `f` with its header; the node is owned by the returned pointer.
    pub(crate) fn boxed<F: FnOnce() + Send + 'static>(f: F) -> *mut CbHead {
        let head = CbHead {
            next: ptr::null_mut(),
            call: call_node::<F>,
        };
        #[cfg(not(loom))]
        if pool::fits::<CbNode<F>>() {
            let p = pool::alloc_block() as *mut CbNode<F>;
            // SAFETY: a fresh block of pool::BLOCK_SIZE bytes aligned to
            // pool::BLOCK_ALIGN, which CbNode<F> fits (checked above).
            unsafe { p.write(CbNode { head, f }) };
            return p as *mut CbHead;
        }
        let b = Box::new(CbNode { head, f });
        Box::into_raw(b) as *mut CbHead
    }

    /// Runs the callback of node `p` and frees the node.
    ///
    /// # Safety
    /// `p` came from [`CbHead::boxed`] and is not used again.
    pub(crate) unsafe fn run(p: *mut CbHead) {
        // SAFETY: per the contract.
        unsafe { ((*p).call)(p, true) }
    }
}

/// `CallbackQueue::sleeping`: the worker is working.
const RUNNING: u32 = 0;
/// The worker sleeps until the next `call_rcu`.
const IDLE: u32 = 1;
/// The worker gathers a batch; only a kick (rcu_barrier) or the timeout wakes it.
#[cfg(not(loom))]
const GATHERING: u32 = 2;
/// How long the worker gathers callbacks into a batch before its grace period.
#[cfg(not(loom))]
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// The lock-free multi-producer queue and the worker's sleep word.
pub(crate) struct CallbackQueue {
    head: AtomicPtr<CbHead>,
    sleeping: AtomicU32,
}

// SAFETY: the queue only moves `Send` callbacks (CbHead::boxed requires
// F: Send) between threads through its atomics.
unsafe impl Sync for CallbackQueue {}
// SAFETY: as above.
unsafe impl Send for CallbackQueue {}

impl CallbackQueue {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        CallbackQueue {
            head: AtomicPtr::new(ptr::null_mut()),
            sleeping: AtomicU32::new(RUNNING),
        }
    }
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        CallbackQueue {
            head: AtomicPtr::new(ptr::null_mut()),
            sleeping: AtomicU32::new(0),
        }
    }

    /// Queues node `p` and wakes the worker if it sleeps. Lock-free: one CAS
    /// (retried under contention) and one load.
    ///
    /// # Safety
    /// `p` came from [`CbHead::boxed`]; the queue owns it from now on.
    #[inline]
    pub(crate) unsafe fn push(&self, p: *mut CbHead) {
        let backoff = crate::Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `p` is ours until the CAS publishes it.
            unsafe { (*p).next = head };
            // AcqRel: Release publishes the node's contents (pairs with the
            // worker's Acquire swap); Acquire pairs with the worker's Release
            // RMW in `wait_nonempty`, so that if the worker checked the queue
            // before this push, its `sleeping = IDLE` store is visible below.
            match self
                .head
                .compare_exchange_weak(head, p, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => {
                    head = h;
                    backoff.spin();
                }
            }
        }
        // Relaxed: ordered by the CAS's Acquire (see above); a stale RUNNING
        // means the worker has not yet checked the queue and will see the node.
        if self.sleeping.load(Ordering::Relaxed) == IDLE {
            self.wake_idle();
        }
    }

    #[cold]
    fn wake_idle(&self) {
        if self
            .sleeping
            .compare_exchange(IDLE, RUNNING, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            crate::arch::futex::wake_one(&self.sleeping);
        }
    }

    /// Whether nothing is queued (a snapshot).
    #[cfg(not(loom))]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Wakes the worker from either sleep (an `rcu_barrier` is waiting). Call it
    /// after pushing.
    #[cfg(not(loom))]
    pub(crate) fn kick(&self) {
        // Relaxed: a kick that misses the worker entering GATHERING costs at most
        // one GATHER pause (the gather sleep is timed); one that sees IDLE or
        // GATHERING wakes it.
        if self.sleeping.load(Ordering::Relaxed) != RUNNING
            && self.sleeping.swap(RUNNING, Ordering::AcqRel) != RUNNING
        {
            crate::arch::futex::wake_one(&self.sleeping);
        }
    }

    /// Waits up to `timeout` (gathering a batch) unless kicked. Spurious returns
    /// happen.
    #[cfg(not(loom))]
    pub(crate) fn gather(&self, timeout: std::time::Duration) {
        // Relaxed: `kick` only needs to see it eventually (see there).
        self.sleeping.store(GATHERING, Ordering::Relaxed);
        let _ = crate::arch::futex::wait(
            &self.sleeping,
            GATHERING,
            Some(std::time::Instant::now() + timeout),
        );
        self.sleeping.store(RUNNING, Ordering::Relaxed);
    }

    /// Detaches every queued node, oldest first, as a linked list; returns its
    /// first and last nodes (both null: none).
    #[inline]
    pub(crate) fn take_all_with_tail(&self) -> (*mut CbHead, *mut CbHead) {
        // Acquire: pairs with the producers' CAS; the nodes' contents are visible.
        let mut p = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        // The newest node ends up last.
        let tail = p;
        // Reverse the stack into arrival order.
        let mut rev: *mut CbHead = ptr::null_mut();
        while !p.is_null() {
            // SAFETY: detached nodes are owned by the caller now.
            let next = unsafe { (*p).next };
            // SAFETY: as above.
            unsafe { (*p).next = rev };
            rev = p;
            p = next;
        }
        (rev, tail)
    }

    /// Links `after` behind `tail`.
    #[cfg(not(loom))]
    ///
    /// # Safety
    /// `tail` is the live last node of a detached list.
    pub(crate) unsafe fn link(tail: *mut CbHead, after: *mut CbHead) {
        // SAFETY: per the contract.
        unsafe { (*tail).next = after };
    }

    /// Sleeps until the queue is (probably) non-empty. Spurious returns happen.
    pub(crate) fn wait_nonempty(&self) {
        self.sleeping.store(IDLE, Ordering::Relaxed);
        // The emptiness check is an RMW (a CAS of null for null), not a load: it
        // takes a place in the head's modification order, so a producer whose CAS
        // comes later reads from it (AcqRel: our Release, its Acquire) and sees
        // IDLE; a producer whose CAS came earlier left a node that this check sees.
        // No store→load fence is needed on either side.
        if self
            .head
            .compare_exchange(
                ptr::null_mut(),
                ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            let _ = crate::arch::futex::wait(&self.sleeping, IDLE, None);
        }
        self.sleeping.store(RUNNING, Ordering::Relaxed);
    }

    /// The next node of a detached list.
    ///
    /// # Safety
    /// `p` is a live node of a list returned by [`take_all`](Self::take_all).
    #[inline]
    pub(crate) unsafe fn next(p: *mut CbHead) -> *mut CbHead {
        // SAFETY: per the contract.
        unsafe { (*p).next }
    }
}

#[cfg(not(loom))]
pub use worker::*;

/// Recycled memory for small callback nodes (up to [`BLOCK_SIZE`](pool::BLOCK_SIZE)
/// bytes, the common closure that captures a pointer or two).
///
/// Without it every `call_rcu` mallocs a node on the caller's thread and the
/// worker frees it on its own, and glibc's cross-thread free path (arena locks,
/// lines moving between the threads) took over half the CPU time of a
/// `call_rcu` + `rcu_barrier` loop. With it, the worker strings the blocks of
/// the callbacks it ran onto a local list and, after a batch, publishes the
/// list with one CAS onto the shared pool if the pool is empty; a producer
/// takes the whole pool with one swap into its thread-local cache when that
/// runs dry and then allocates with no atomic operation at all. Taking always
/// the whole list is what makes the lock-free stack ABA-free (there is no
/// single-node pop).
///
/// | word | values |
/// |------|--------|
/// | `POOL` | null: empty; else the first block of a list of free blocks |
///
/// Memory bound: the worker's list holds at most
/// [`MAX_RECYCLE`](pool::MAX_RECYCLE) blocks (8 MiB; blocks released beyond
/// that are freed), and it is published only into an empty pool, so the pool
/// holds at most that much beyond what exiting threads hand back (a thread's
/// cache goes back to the pool when the thread exits), and a producer's cache
/// at most one pool's worth. While the pool is not empty — the producers have
/// not needed the last list yet — the worker keeps its list for a later batch
/// instead of freeing it: a burst of callbacks whose blocks come back over
/// several batches (a producer queueing 100 000 before an `rcu_barrier`, as the
/// `rcu` bench does) is then served from recycled blocks in the next burst,
/// instead of sending most of them through malloc and glibc's cross-thread
/// free again (which ran the bench at a quarter of the speed).
#[cfg(not(loom))]
mod pool {
    use core::cell::Cell;
    use core::ptr;
    use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
    use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};

    /// The size of a pooled block.
    pub(super) const BLOCK_SIZE: usize = 64;
    /// Its alignment.
    pub(super) const BLOCK_ALIGN: usize = 16;
    /// The most blocks the worker keeps for the pool (8 MiB): enough for
    /// 100 000 callbacks in flight at once to run on recycled memory.
    pub(super) const MAX_RECYCLE: usize = 128 * 1024;
    const LAYOUT: Layout = match Layout::from_size_align(BLOCK_SIZE, BLOCK_ALIGN) {
        Ok(l) => l,
        Err(_) => panic!("bad block layout"),
    };

    /// A free block's first word: the next free block.
    struct Free {
        next: *mut Free,
    }

    /// The shared pool of free blocks.
    static POOL: AtomicPtr<Free> = AtomicPtr::new(ptr::null_mut());

    /// Blocks taken from the allocator and blocks given back to it: their
    /// difference is the pool's whole footprint (queued callbacks, free lists
    /// and caches). Counted only on the allocator paths, never per callback.
    static MALLOCS: AtomicU64 = AtomicU64::new(0);
    static FREES: AtomicU64 = AtomicU64::new(0);

    /// The footprint, in blocks, past which a producer that has to go to the
    /// allocator (its cache and the pool are empty, so nearly every block is a
    /// queued callback) lets the worker catch up first:
    /// [`throttle`](super::worker::throttle). 1 Mi blocks, 64 MiB of nodes
    /// (plus whatever the callbacks will free).
    pub(super) const BACKLOG_BLOCKS: u64 = 1 << 20;

    /// A producer's private list of free blocks.
    struct Cache {
        head: Cell<*mut Free>,
    }

    impl Drop for Cache {
        fn drop(&mut self) {
            // Thread exit: give the blocks back to the pool (or free them).
            let head = self.head.replace(ptr::null_mut());
            if head.is_null() {
                return;
            }
            let mut tail = head;
            // SAFETY: the cache's blocks are owned by this thread; walk to the end.
            while !unsafe { (*tail).next }.is_null() {
                // SAFETY: as above.
                tail = unsafe { (*tail).next };
            }
            // SAFETY: an owned, well-formed list.
            unsafe { push_list(head, tail) };
        }
    }

    thread_local! {
        static CACHE: Cache = const { Cache { head: Cell::new(ptr::null_mut()) } };
        /// The worker's list of released blocks not yet published to the pool,
        /// with its last block and its length.
        static FREED: Cell<(*mut Free, *mut Free, usize)> =
            const { Cell::new((ptr::null_mut(), ptr::null_mut(), 0)) };
    }

    /// Whether a `T` is allocated from the pool.
    #[inline(always)]
    pub(super) const fn fits<T>() -> bool {
        size_of::<T>() <= BLOCK_SIZE && align_of::<T>() <= BLOCK_ALIGN
    }

    /// A block of [`BLOCK_SIZE`] bytes aligned to [`BLOCK_ALIGN`]: from this
    /// thread's cache, else the whole pool, else the allocator.
    #[inline]
    pub(super) fn alloc_block() -> *mut u8 {
        let p = CACHE
            .try_with(|c| {
                let mut h = c.head.get();
                // Relaxed load first: no RMW on the shared word while it is empty.
                if h.is_null() && !POOL.load(Ordering::Relaxed).is_null() {
                    // Acquire: pairs with the Release CAS in `push_list`, so the
                    // links written before the list was published are visible.
                    h = POOL.swap(ptr::null_mut(), Ordering::Acquire);
                }
                if h.is_null() {
                    return ptr::null_mut();
                }
                // SAFETY: `h` heads a list owned by this thread now.
                c.head.set(unsafe { (*h).next });
                h as *mut u8
            })
            // During thread exit (the cache is gone): the allocator.
            .unwrap_or(ptr::null_mut());
        if !p.is_null() {
            return p;
        }
        // Relaxed: a statistic; a stale value only moves the throttle by a block.
        let live = MALLOCS.fetch_add(1, Ordering::Relaxed) + 1;
        if live.saturating_sub(FREES.load(Ordering::Relaxed)) > BACKLOG_BLOCKS {
            super::worker::throttle();
        }
        // SAFETY: LAYOUT has a non-zero size.
        let p = unsafe { alloc(LAYOUT) };
        if p.is_null() {
            handle_alloc_error(LAYOUT);
        }
        p
    }

    /// Puts the block `p` on the worker's list (or frees it when the list is
    /// full). Called by the worker as it runs callbacks; [`flush`] publishes the
    /// list.
    ///
    /// # Safety
    /// `p` came from [`alloc_block`] and is not used again.
    #[inline]
    pub(super) unsafe fn release_block(p: *mut u8) {
        let b = p as *mut Free;
        let kept = FREED.try_with(|l| {
            let (head, tail, n) = l.get();
            if n >= MAX_RECYCLE {
                return false;
            }
            // SAFETY: the block is ours (per the contract) and big enough.
            unsafe { b.write(Free { next: head }) };
            l.set((b, if tail.is_null() { b } else { tail }, n + 1));
            true
        });
        if kept != Ok(true) {
            // Relaxed: a statistic (see `MALLOCS`).
            FREES.fetch_add(1, Ordering::Relaxed);
            // SAFETY: allocated with LAYOUT (alloc_block), not used again.
            unsafe { dealloc(p, LAYOUT) };
        }
    }

    /// Publishes the worker's list to the pool if the pool is empty, else keeps
    /// it for a later flush (the list is bounded by `release_block`). Called by
    /// the worker after each batch.
    pub(super) fn flush() {
        let _ = FREED.try_with(|l| {
            let (head, tail, _) = l.get();
            if !head.is_null() && POOL.load(Ordering::Relaxed).is_null() {
                l.set((ptr::null_mut(), ptr::null_mut(), 0));
                // SAFETY: a well-formed list owned by this thread.
                unsafe { push_list(head, tail) };
            }
        });
    }

    /// Pushes the list `head..=tail` onto the pool.
    ///
    /// # Safety
    /// The caller owns the list; `tail` is its last block.
    unsafe fn push_list(head: *mut Free, tail: *mut Free) {
        let mut cur = POOL.load(Ordering::Relaxed);
        loop {
            // SAFETY: the list is ours until the CAS publishes it.
            unsafe { (*tail).next = cur };
            // Release: publishes the links (pairs with the Acquire swap in
            // `alloc_block`).
            match POOL.compare_exchange_weak(cur, head, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }
}

#[cfg(not(loom))]
mod worker {
    use super::*;
    use crate::sched::{self, TaskState};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    static QUEUE: CallbackQueue = CallbackQueue::new();
    /// Whether the worker has been started (in this process: a forked child
    /// starts its own, see [`restart_after_fork`]).
    static WORKER: AtomicBool = AtomicBool::new(false);
    /// [`RUN`], or [`PAUSE_ASKED`] / [`PAUSED`] around a fork
    /// ([`pause_for_fork`]); the futex word both sides wait on.
    static PAUSE: AtomicU32 = AtomicU32::new(RUN);
    /// `PAUSE`: the worker runs.
    const RUN: u32 = 0;
    /// `PAUSE`: `rcu_before_fork` asks the worker to stop at the top of its loop.
    const PAUSE_ASKED: u32 = 1;
    /// `PAUSE`: the worker has stopped there, holding no callback, until
    /// `rcu_after_fork_parent` lets it go on.
    const PAUSED: u32 = 2;
    static PANICS: AtomicU64 = AtomicU64::new(0);
    /// rcu_barrier calls in progress: while non-zero the worker does not pause to
    /// gather batches.
    static BARRIERS: AtomicU64 = AtomicU64::new(0);
    /// Batches the worker has finished running.
    static BATCHES: AtomicU64 = AtomicU64::new(0);
    /// Producers waiting in [`throttle`] for the next batch to finish.
    static BATCH_DONE: crate::sched::WaitQueue = crate::sched::WaitQueue::new();
    /// How long one throttled `call_rcu` waits at most.
    const THROTTLE_WAIT: std::time::Duration = std::time::Duration::from_millis(10);
    /// How many `call_rcu` calls were throttled.
    static THROTTLED: AtomicU64 = AtomicU64::new(0);

    /// Backpressure (the user-space stand-in for the kernel running callbacks
    /// on the flooding CPU itself, in softirq): a producer found the callbacks'
    /// memory past [`pool::BACKLOG_BLOCKS`](super::pool::BACKLOG_BLOCKS) with
    /// no recycled block left, so the worker lags behind the producers. If this
    /// thread may sleep, it waits — at most [`THROTTLE_WAIT`], so a callback
    /// that needs a lock the caller holds cannot deadlock it — for the worker
    /// to finish a batch that started after now, or for the queue to drain.
    /// In atomic context, with irqs off, inside an RCU read-side section (the
    /// batch needs a grace period) or on the worker itself it returns at once.
    #[cold]
    #[inline(never)]
    pub(super) fn throttle() {
        if IN_WORKER.with(|w| w.get())
            || crate::ctx::in_atomic()
            || crate::ctx::irqs_disabled()
            || super::super::rcu_read_lock_held()
        {
            return;
        }
        THROTTLED.fetch_add(1, Ordering::Relaxed);
        // The batch running now may have been taken before our callbacks: the
        // one after it has them.
        let target = BATCHES.load(Ordering::Acquire) + 2;
        QUEUE.kick();
        let _ = BATCH_DONE.wait_event_timeout(
            || BATCHES.load(Ordering::Acquire) >= target || QUEUE.is_empty(),
            THROTTLE_WAIT,
        );
    }

    /// How many `call_rcu` calls have waited for the worker to catch up with a
    /// flood of callbacks (see `call_rcu`'s docs).
    pub fn call_rcu_throttled() -> u64 {
        THROTTLED.load(Ordering::Relaxed)
    }

    /// Starts the worker unless it runs. Inlined into `call_rcu` (a generic
    /// function, compiled in the caller's crate), so the common case is a load
    /// and a branch rather than a call.
    #[inline]
    fn ensure_worker() {
        // Acquire: pairs with the starter's Release swap (nothing is published
        // through it; the queue itself carries the callbacks).
        if !WORKER.load(Ordering::Acquire) {
            start_worker();
        }
    }

    #[cold]
    fn start_worker() {
        // One caller starts it; a caller that loses the race returns at once:
        // its callback is queued, and the worker drains the queue once it runs.
        if !WORKER.swap(true, Ordering::AcqRel) {
            std::thread::Builder::new()
                .name("ksync-rcu-cb".into())
                .spawn(worker_loop)
                .expect("ksync: cannot start the call_rcu worker thread");
        }
    }

    /// `call_rcu_before_fork`: stops the worker at the top of its loop, where
    /// it holds no callback (none is lost in a child, which has no worker
    /// thread) and takes no lock, until [`resume_after_fork`]. Waits for the
    /// batch it runs, and so for that batch's grace period.
    ///
    /// Its caller has called [`refuse_fork_in_callback`] first.
    pub(in crate::rcu) fn pause_for_fork() {
        if !WORKER.load(Ordering::Acquire) {
            return;
        }
        // Release: the worker that takes the node below (Acquire swap) or
        // is woken for it sees the request at the top of its loop, at the
        // latest after the batch that holds the node.
        PAUSE.store(PAUSE_ASKED, Ordering::Release);
        // A node wakes an idle worker through the queue's own protocol, which
        // no wake-up can miss (a bare kick could come before the worker's
        // IDLE store and be lost).
        call_rcu(|| {});
        let backoff = crate::Backoff::new();
        // Acquire: pairs with the worker's Release store of PAUSED.
        while PAUSE.load(Ordering::Acquire) != PAUSED {
            if backoff.is_completed() {
                let _ = crate::arch::futex::wait(&PAUSE, PAUSE_ASKED, None);
            } else {
                backoff.snooze();
            }
        }
    }

    /// Whether the worker is paused for a fork (or was never started).
    #[cfg(test)]
    pub(in crate::rcu) fn paused_for_fork() -> bool {
        !WORKER.load(Ordering::Acquire) || PAUSE.load(Ordering::Acquire) == PAUSED
    }

    /// Panics on the worker thread: `rcu_before_fork` there would wait for
    /// the worker to stop between batches, that is for itself. Called before
    /// the fork path takes any lock.
    pub(in crate::rcu) fn refuse_fork_in_callback() {
        if IN_WORKER.with(|w| w.get()) {
            panic!(
                "rcu_before_fork() called from a call_rcu callback: this would deadlock \
                 (it waits for the callback thread to stop between batches)"
            );
        }
    }

    /// `call_rcu_after_fork_parent`: lets the paused worker go on.
    pub(in crate::rcu) fn resume_after_fork() {
        // Release: pairs with the worker's Acquire load in `pause_point`.
        if PAUSE.swap(RUN, Ordering::Release) != RUN {
            crate::arch::futex::wake_all(&PAUSE);
        }
    }

    /// `call_rcu_after_fork_child`: the child of a fork has no worker thread
    /// (and none of the parent's `rcu_barrier` callers or throttled
    /// producers): forget them, and start a worker for the callbacks still
    /// queued — the parent's worker stopped before it took them, so none is
    /// lost or run twice in the child.
    ///
    /// # Safety
    /// The caller is the child's only thread, and called [`pause_for_fork`]
    /// before the fork.
    pub(in crate::rcu) unsafe fn restart_after_fork() {
        PAUSE.store(RUN, Ordering::Relaxed);
        BARRIERS.store(0, Ordering::Relaxed);
        // SAFETY: the caller is the only thread, so nothing else touches the
        // queue's list; every entry on it belonged to a thread the child has
        // not got.
        unsafe { BATCH_DONE.reinit_after_fork() };
        // The queue needs nothing: its stack is whole after every CAS, and the
        // worker paused with its futex word at RUNNING (both of its sleeps
        // restore it before they return).
        WORKER.store(false, Ordering::Relaxed);
        if !QUEUE.is_empty() {
            start_worker();
        }
    }

    /// The top of the worker's loop, when a fork asks it to stop.
    #[cold]
    fn pause_point() {
        // Release: pairs with `pause_for_fork`'s Acquire load.
        if PAUSE
            .compare_exchange(PAUSE_ASKED, PAUSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            crate::arch::futex::wake_all(&PAUSE);
        }
        // Acquire: pairs with `resume_after_fork`'s Release swap.
        while PAUSE.load(Ordering::Acquire) == PAUSED {
            let _ = crate::arch::futex::wait(&PAUSE, PAUSED, None);
        }
    }

    thread_local! {
        /// Set on the callback thread: `rcu_barrier` there would wait for itself.
        static IN_WORKER: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    }

    fn worker_loop() {
        IN_WORKER.with(|w| w.set(true));
        loop {
            // Acquire: see `pause_for_fork`.
            if PAUSE.load(Ordering::Acquire) != RUN {
                pause_point();
            }
            let (mut list, mut tail) = QUEUE.take_all_with_tail();
            if list.is_null() {
                // Idle: a short spin catches bursts, then sleep.
                let backoff = crate::Backoff::new();
                while !backoff.is_completed() {
                    backoff.snooze();
                    (list, tail) = QUEUE.take_all_with_tail();
                    if !list.is_null() {
                        break;
                    }
                }
                if list.is_null() {
                    QUEUE.wait_nonempty();
                    continue;
                }
            }
            // Let more callbacks join this batch, unless someone waits in
            // rcu_barrier.
            if BARRIERS.load(Ordering::Relaxed) == 0 {
                QUEUE.gather(GATHER);
                let (more, more_tail) = QUEUE.take_all_with_tail();
                if !more.is_null() {
                    // SAFETY: `tail` is the last node of our detached list.
                    unsafe { CallbackQueue::link(tail, more) };
                    tail = more_tail;
                }
            }
            let _ = tail;
            // One grace period for the whole batch.
            super::super::synchronize_rcu();
            while !list.is_null() {
                // SAFETY: `list` is a detached node we own.
                let next = unsafe { CallbackQueue::next(list) };
                let node = list;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: each detached node is run exactly once.
                    unsafe { CbHead::run(node) }
                }));
                if let Err(e) = r {
                    PANICS.fetch_add(1, Ordering::Relaxed);
                    let msg = e
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| e.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "<non-string panic>".into());
                    eprintln!("ksync: a call_rcu callback panicked: {msg} (the worker goes on)");
                }
                list = next;
            }
            // Hand the batch's node memory to the producers.
            super::pool::flush();
            // Release: a throttled producer that sees the count sees the pool.
            BATCHES.fetch_add(1, Ordering::Release);
            BATCH_DONE.wake_up_all();
        }
    }

    /// Queues `f` to run after a grace period: after every read-side critical
    /// section that exists now has ended (`call_rcu`). Does not block and takes no
    /// lock: one allocation (for a closure of up to about 48 bytes, a pop from
    /// the thread's cache of recycled blocks) and one CAS.
    ///
    /// Callbacks run one at a time, in the order they were queued, on the RCU
    /// callback thread (`ksync-rcu-cb`); they should be short.
    ///
    /// Backpressure: when callbacks are queued faster than the worker runs
    /// them and their memory passes about a million nodes (64 MiB), a caller
    /// that may sleep waits up to 10 ms for the worker to finish a batch before
    /// it queues (counted in [`call_rcu_throttled`]); in atomic context, with
    /// irqs off or inside an RCU read-side section it never waits. The kernel
    /// needs no such brake: it runs callbacks on the flooding CPU itself. A callback runs
    /// after its grace period and a batching pause of about [`GATHER`](super::GATHER). See the module
    /// docs for what happens at process exit ([`rcu_barrier`] runs them all).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r = ran.clone();
    /// ksync::rcu::call_rcu(move || r.store(true, Ordering::Relaxed));
    /// ksync::rcu::rcu_barrier();
    /// assert!(ran.load(Ordering::Relaxed));
    /// ```
    #[inline]
    pub fn call_rcu<F: FnOnce() + Send + 'static>(f: F) {
        let p = CbHead::boxed(f);
        ensure_worker();
        // SAFETY: `p` is a fresh node from CbHead::boxed; the queue owns it now.
        unsafe { QUEUE.push(p) };
    }

    /// Drops `b` after a grace period (`kfree_rcu`): the object stays valid for
    /// every reader that may still see it.
    ///
    /// ```
    /// ksync::rcu::defer_drop(Box::new(vec![1, 2, 3]));
    /// ksync::rcu::rcu_barrier();
    /// ```
    #[doc(alias = "kfree_rcu")]
    #[doc(alias = "kvfree_rcu")]
    #[inline]
    pub fn defer_drop<T: Send + 'static>(b: Box<T>) {
        call_rcu(move || drop(b));
    }

    /// The kernel's name for [`defer_drop`].
    #[inline]
    pub fn kfree_rcu<T: Send + 'static>(b: Box<T>) {
        defer_drop(b);
    }

    /// Waits until every callback queued by [`call_rcu`] before this call has run
    /// (`rcu_barrier`). Call it before the program exits, or before unloading
    /// whatever the callbacks use.
    ///
    /// # Panics
    /// Inside a read-side critical section, or in a `call_rcu` callback (either
    /// would deadlock).
    ///
    /// ```
    /// ksync::rcu::rcu_barrier(); // nothing queued: returns after one round trip
    /// ```
    #[track_caller]
    pub fn rcu_barrier() {
        if super::super::rcu_read_lock_held() {
            panic!(
                "rcu_barrier() called inside an RCU read-side critical section: this would deadlock"
            );
        }
        if IN_WORKER.with(|w| w.get()) {
            panic!(
                "rcu_barrier() called from a call_rcu callback: this would deadlock \
                 (the barrier waits for a callback queued behind the running one)"
            );
        }
        crate::lockdep::might_sleep();
        BARRIERS.fetch_add(1, Ordering::Relaxed);
        let done = Arc::new(AtomicU32::new(0));
        let task = sched::current();
        let d = done.clone();
        // Callbacks run in queue order, so this one runs after every earlier one.
        call_rcu(move || {
            // Release: pairs with the Acquire load below.
            d.store(1, Ordering::Release);
            task.wake_up();
        });
        // The worker may be gathering a batch: no pause while we wait.
        QUEUE.kick();
        let backoff = crate::Backoff::new();
        while done.load(Ordering::Acquire) == 0 {
            if backoff.is_completed() {
                let _ = sched::sleep(TaskState::Uninterruptible, None);
            } else {
                backoff.snooze();
            }
        }
        BARRIERS.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many callbacks have panicked since the process started.
    pub fn callback_panics() -> u64 {
        PANICS.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::sync::atomic::AtomicUsize;

    /// Two producers queue one callback each while the worker drains: no callback
    /// is lost, none runs twice, and the worker's sleep misses no wake-up (a lost
    /// wake-up shows as a deadlock in the futex model).
    #[test]
    fn loom_no_callback_lost() {
        loom::model(|| {
            let q = Arc::new(CallbackQueue::new());
            let ran = Arc::new(AtomicUsize::new(0));
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let (q, ran) = (q.clone(), ran.clone());
                    loom::thread::spawn(move || {
                        let r = ran.clone();
                        let p = CbHead::boxed(move || {
                            r.fetch_add(1, Ordering::Relaxed);
                        });
                        // SAFETY: fresh node.
                        unsafe { q.push(p) };
                    })
                })
                .collect();
            let mut seen = 0;
            while seen < 2 {
                let mut list = q.take_all_with_tail().0;
                if list.is_null() {
                    q.wait_nonempty();
                    continue;
                }
                while !list.is_null() {
                    // SAFETY: detached nodes are ours; each runs once.
                    let next = unsafe { CallbackQueue::next(list) };
                    // SAFETY: as above.
                    unsafe { CbHead::run(list) };
                    seen += 1;
                    list = next;
                }
            }
            for p in producers {
                p.join().unwrap();
            }
            assert_eq!(ran.load(Ordering::Relaxed), 2);
            assert!(q.take_all_with_tail().0.is_null());
        });
    }

    /// rcu_barrier's guarantee: a barrier callback queued after another callback
    /// (by the same thread) runs after it — the worker runs batches in order.
    #[test]
    fn loom_barrier_runs_after_earlier_callbacks() {
        loom::model(|| {
            let q = Arc::new(CallbackQueue::new());
            let ran = Arc::new(AtomicUsize::new(0));
            let seen_at_barrier = Arc::new(AtomicUsize::new(usize::MAX));
            let producer = {
                let (q, ran, seen) = (q.clone(), ran.clone(), seen_at_barrier.clone());
                loom::thread::spawn(move || {
                    let r = ran.clone();
                    let a = CbHead::boxed(move || {
                        r.fetch_add(1, Ordering::Relaxed);
                    });
                    let r2 = ran.clone();
                    let b = CbHead::boxed(move || {
                        seen.store(r2.load(Ordering::Relaxed), Ordering::Relaxed);
                        r2.fetch_add(1, Ordering::Relaxed);
                    });
                    // SAFETY: fresh nodes.
                    unsafe { q.push(a) };
                    // SAFETY: fresh node.
                    unsafe { q.push(b) };
                })
            };
            let mut seen = 0;
            while seen < 2 {
                let mut list = q.take_all_with_tail().0;
                if list.is_null() {
                    q.wait_nonempty();
                    continue;
                }
                while !list.is_null() {
                    // SAFETY: detached nodes are ours.
                    let next = unsafe { CallbackQueue::next(list) };
                    // SAFETY: each runs once.
                    unsafe { CbHead::run(list) };
                    seen += 1;
                    list = next;
                }
            }
            producer.join().unwrap();
            assert_eq!(seen_at_barrier.load(Ordering::Relaxed), 1);
        });
    }
}
