//! `call_rcu`, `kfree_rcu` and `rcu_barrier`: callbacks run after a grace period
//! by one background worker thread (liburcu's `call_rcu` thread,
//! `src/urcu-call-rcu-impl.h`).
//!
//! `call_rcu` allocates one node holding the callback (the `rcu_head` and the
//! closure in one box) and pushes it onto a lock-free stack with one CAS. The
//! worker detaches the whole stack with one swap, reverses it into arrival order,
//! waits for one grace period for the whole batch and runs it: one grace period
//! serves every callback queued while the previous batch ran. When the stack is
//! empty the worker sleeps on a futex that the next `call_rcu` wakes.
//!
//! | word | values |
//! |------|--------|
//! | `CallbackQueue::head` | null: empty; else the newest node of the pending stack |
//! | `CallbackQueue::sleeping` | 0: worker running; 1: worker asleep or about to sleep (futex word) |
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
/// `p` is the head of a `Box<CbNode<F>>` leaked by [`CbHead::boxed`], used once.
unsafe fn call_node<F: FnOnce()>(p: *mut CbHead, run: bool) {
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
        let b = Box::new(CbNode {
            head: CbHead {
                next: ptr::null_mut(),
                call: call_node::<F>,
            },
            f,
        });
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
            sleeping: AtomicU32::new(0),
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
            // SeqCst: publishes the node (Release for its contents, paired with
            // the worker's Acquire swap) and is ordered before the `sleeping`
            // load below against the worker's SeqCst store/load pair (Dekker).
            match self
                .head
                .compare_exchange_weak(head, p, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => {
                    head = h;
                    backoff.spin();
                }
            }
        }
        // SeqCst: see the CAS above.
        if self.sleeping.load(Ordering::SeqCst) != 0 {
            self.wake_worker();
        }
    }

    #[cold]
    fn wake_worker(&self) {
        if self.sleeping.swap(0, Ordering::SeqCst) != 0 {
            crate::arch::futex::wake_one(&self.sleeping);
        }
    }

    /// Detaches every queued node, oldest first, as a linked list (null: none).
    #[inline]
    pub(crate) fn take_all(&self) -> *mut CbHead {
        // Acquire: pairs with the producers' CAS; the nodes' contents are visible.
        let mut p = self.head.swap(ptr::null_mut(), Ordering::Acquire);
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
        rev
    }

    /// Sleeps until the queue is (probably) non-empty. Spurious returns happen.
    pub(crate) fn wait_nonempty(&self) {
        // SeqCst store then SeqCst load: pairs with push's CAS then load, so that
        // either push sees `sleeping` set or this load sees the node.
        self.sleeping.store(1, Ordering::SeqCst);
        if self.head.load(Ordering::SeqCst).is_null() {
            let _ = crate::arch::futex::wait(&self.sleeping, 1, None);
        }
        self.sleeping.store(0, Ordering::Relaxed);
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

#[cfg(not(loom))]
mod worker {
    use super::*;
    use crate::sched::{self, TaskState};
    use std::sync::Arc;
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicU64;

    static QUEUE: CallbackQueue = CallbackQueue::new();
    static WORKER: OnceLock<()> = OnceLock::new();
    static PANICS: AtomicU64 = AtomicU64::new(0);

    fn ensure_worker() {
        WORKER.get_or_init(|| {
            std::thread::Builder::new()
                .name("ksync-rcu-cb".into())
                .spawn(worker_loop)
                .expect("ksync: cannot start the call_rcu worker thread");
        });
    }

    fn worker_loop() {
        loop {
            let mut list = QUEUE.take_all();
            if list.is_null() {
                // Idle: a short spin catches bursts, then sleep.
                let backoff = crate::Backoff::new();
                while !backoff.is_completed() {
                    backoff.snooze();
                    list = QUEUE.take_all();
                    if !list.is_null() {
                        break;
                    }
                }
                if list.is_null() {
                    QUEUE.wait_nonempty();
                    continue;
                }
            }
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
        }
    }

    /// Queues `f` to run after a grace period: after every read-side critical
    /// section that exists now has ended (`call_rcu`). Does not block and takes no
    /// lock: one allocation and one CAS.
    ///
    /// Callbacks run one at a time, in the order they were queued, on the RCU
    /// callback thread (`ksync-rcu-cb`); they should be short. See the module
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
    /// Inside a read-side critical section (it would deadlock).
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
        crate::lockdep::might_sleep();
        let done = Arc::new(AtomicU32::new(0));
        let task = sched::current();
        let d = done.clone();
        // Callbacks run in queue order, so this one runs after every earlier one.
        call_rcu(move || {
            // Release: pairs with the Acquire load below.
            d.store(1, Ordering::Release);
            task.wake_up();
        });
        let backoff = crate::Backoff::new();
        while done.load(Ordering::Acquire) == 0 {
            if backoff.is_completed() {
                let _ = sched::sleep(TaskState::Uninterruptible, None);
            } else {
                backoff.snooze();
            }
        }
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
                let mut list = q.take_all();
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
            assert!(q.take_all().is_null());
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
                let mut list = q.take_all();
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
