//! The waiter list shared by [`Mutex`](super::Mutex), [`RwSemaphore`](crate::rwsem::RwSemaphore)
//! and [`CondVar`](crate::condvar::CondVar): the kernel's `wait_lock` plus
//! `wait_list`, built without the spinlock module.
//!
//! # Implementation details
//!
//! A doubly-linked FIFO of [`Waiter`] entries that live on the sleepers' stacks,
//! protected by a one-bit spin lock (`lock`: `0` free, `1` held) that is only
//! ever held for a few pointer updates. Waiting for it uses [`Backoff::snooze`]
//! (spin, then yield), because in user space the holder can be preempted.
//!
//! The wake protocol (DESIGN.md "the four paths", SPEC §12): a waker unlinks an
//! entry under the lock and takes a [`Task`] handle from it; after dropping the
//! lock it sets the entry's `done` flag (Release) and then wakes the task through
//! the handle it owns. Once `done` is set the waker never touches the entry
//! again: the sleeper may return and pop its stack frame at once. A sleeper that
//! finds its entry unlinked but not yet `done` (it was picked by a waker that has
//! not finished) spins until `done` — the window is a few instructions.

use crate::loom::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use crate::sched::Task;
use core::cell::Cell;
use core::ptr;

/// [`Backoff`](crate::Backoff) for the spin loops of the sleeping locks. Under
/// loom it is a single yield per round: `Backoff` seeds its jitter from a stack
/// address, which would make a model non-deterministic.
pub(crate) struct Relax {
    #[cfg(not(loom))]
    backoff: crate::Backoff,
}

impl Relax {
    #[inline]
    pub(crate) fn new() -> Relax {
        Relax {
            #[cfg(not(loom))]
            backoff: crate::Backoff::new(),
        }
    }

    /// [`Backoff::spin`](crate::Backoff::spin).
    #[inline]
    pub(crate) fn spin(&self) {
        #[cfg(not(loom))]
        self.backoff.spin();
        #[cfg(loom)]
        crate::arch::cpu_relax();
    }

    /// [`Backoff::snooze`](crate::Backoff::snooze).
    #[inline]
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        self.backoff.snooze();
        #[cfg(loom)]
        crate::arch::cpu_relax();
    }
}

/// One sleeper's entry (`struct mutex_waiter`, `struct rwsem_waiter`). Lives on
/// the sleeper's stack; linked while it waits.
pub(crate) struct Waiter {
    /// The sleeping task, cloned by the waker to wake it.
    pub(crate) task: Task,
    /// Primitive-specific tag: the owner id for a mutex, reader/writer for a rwsem.
    pub(crate) tag: u32,
    /// Set by the waker (Release) once it has granted/notified this entry and
    /// will not touch it again; read by the sleeper with Acquire.
    pub(crate) done: AtomicBool,
    // The fields below are protected by the list lock.
    next: Cell<*const Waiter>,
    prev: Cell<*const Waiter>,
    linked: Cell<bool>,
    /// Mutex only: this waiter asked for hand-off.
    pub(crate) handoff: Cell<bool>,
}

impl Waiter {
    pub(crate) fn new(task: Task, tag: u32) -> Waiter {
        Waiter {
            task,
            tag,
            done: AtomicBool::new(false),
            next: Cell::new(ptr::null()),
            prev: Cell::new(ptr::null()),
            linked: Cell::new(false),
            handoff: Cell::new(false),
        }
    }

    /// Whether a waker has finished with this entry (Acquire: pairs with the
    /// Release store in [`Woken::wake_all`], so what the waker did before — a lock
    /// hand-off, the notifier's writes — is visible).
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Waits for `done` after finding the entry unlinked by a waker that is
    /// still finishing (see the module docs).
    pub(crate) fn wait_done(&self) {
        let backoff = Relax::new();
        while !self.is_done() {
            backoff.snooze();
        }
    }

    /// Makes a completed entry reusable (its waker is done with it).
    pub(crate) fn reset(&self) {
        debug_assert!(!self.linked.get());
        self.done.store(false, Ordering::Relaxed);
    }
}

struct Links {
    head: *const Waiter,
    tail: *const Waiter,
}

/// The list head and its lock.
pub(crate) struct WaitList {
    lock: AtomicU32,
    links: UnsafeCell<Links>,
}

// SAFETY: the raw pointers in `links` are only followed under `lock`, and point at
// entries whose owners keep them alive while linked (see `Waiter`); `Task` is Send.
unsafe impl Send for WaitList {}
// SAFETY: as above: every access to `links` happens with `lock` held.
unsafe impl Sync for WaitList {}

impl WaitList {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> WaitList {
        WaitList {
            lock: AtomicU32::new(0),
            links: UnsafeCell::new(Links {
                head: ptr::null(),
                tail: ptr::null(),
            }),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> WaitList {
        WaitList {
            lock: AtomicU32::new(0),
            links: UnsafeCell::new(Links {
                head: ptr::null(),
                tail: ptr::null(),
            }),
        }
    }

    /// Takes the list lock (`raw_spin_lock(&lock->wait_lock)`).
    #[inline]
    pub(crate) fn lock(&self) -> Locked<'_> {
        // Acquire pairs with the Release store in `Locked::drop`: the previous
        // holder's link updates are visible.
        if self
            .lock
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        Locked {
            list: self,
            _not_send: core::marker::PhantomData,
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let backoff = Relax::new();
        loop {
            if self.lock.load(Ordering::Relaxed) == 0
                && self
                    .lock
                    .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            backoff.snooze();
        }
    }
}

/// The list with its lock held.
pub(crate) struct Locked<'a> {
    list: &'a WaitList,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release pairs with the Acquire in `WaitList::lock`.
        self.list.lock.store(0, Ordering::Release);
    }
}

impl Locked<'_> {
    fn with<R>(&self, f: impl FnOnce(&mut Links) -> R) -> R {
        // SAFETY: the lock is held (this guard exists), so no other thread
        // accesses the links.
        self.list.links.with_mut(|l| f(unsafe { &mut *l }))
    }

    /// The first entry, if any.
    pub(crate) fn front(&self) -> Option<&Waiter> {
        // SAFETY: linked entries stay alive until unlinked under this lock, which
        // cannot happen while `self` (and so this borrow) lives.
        self.with(|l| unsafe { l.head.as_ref() })
    }

    /// The entry after `w` (linked), if any: lets a waker walk the list.
    pub(crate) fn next_of(&self, w: &Waiter) -> Option<&Waiter> {
        debug_assert!(w.linked.get());
        // SAFETY: linked entries stay alive until unlinked under this lock, which
        // cannot happen while `self` (and so this borrow) lives.
        unsafe { w.next.get().as_ref() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.with(|l| l.head.is_null())
    }

    /// Appends `w`.
    ///
    /// # Safety
    /// `w` must stay at its address and alive until it is unlinked again (by
    /// [`Locked::remove`] or a waker), and must not be linked already.
    pub(crate) unsafe fn push_back(&self, w: &Waiter) {
        debug_assert!(!w.linked.get());
        self.with(|l| {
            w.prev.set(l.tail);
            w.next.set(ptr::null());
            if l.tail.is_null() {
                l.head = w;
            } else {
                // SAFETY: the tail is a live linked entry (lock held).
                unsafe { (*l.tail).next.set(w) };
            }
            l.tail = w;
        });
        w.linked.set(true);
    }

    /// Prepends `w` (a woken waiter going back to sleep keeps its place).
    ///
    /// # Safety
    /// As for [`Locked::push_back`].
    pub(crate) unsafe fn push_front(&self, w: &Waiter) {
        debug_assert!(!w.linked.get());
        self.with(|l| {
            w.next.set(l.head);
            w.prev.set(ptr::null());
            if l.head.is_null() {
                l.tail = w;
            } else {
                // SAFETY: the head is a live linked entry (lock held).
                unsafe { (*l.head).prev.set(w) };
            }
            l.head = w;
        });
        w.linked.set(true);
    }

    /// Unlinks `w` if it is linked; returns whether it was.
    pub(crate) fn remove(&self, w: &Waiter) -> bool {
        if !w.linked.get() {
            return false;
        }
        let (prev, next) = (w.prev.get(), w.next.get());
        self.with(|l| {
            if prev.is_null() {
                l.head = next;
            } else {
                // SAFETY: linked neighbours are live (lock held).
                unsafe { (*prev).next.set(next) };
            }
            if next.is_null() {
                l.tail = prev;
            } else {
                // SAFETY: as above.
                unsafe { (*next).prev.set(prev) };
            }
        });
        w.linked.set(false);
        true
    }

    /// Unlinks `w` and queues it on `woken`, to be completed after the lock is
    /// dropped.
    pub(crate) fn take(&self, w: &Waiter, woken: &mut Woken) {
        let was = self.remove(w);
        debug_assert!(was);
        w.next.set(woken.head);
        woken.head = w;
    }
}

/// Entries picked by a waker under the list lock, completed (marked `done` and
/// woken) after it is dropped — the kernel's `wake_q`, threaded through the
/// entries themselves so that waking never allocates.
pub(crate) struct Woken {
    head: *const Waiter,
}

impl Woken {
    pub(crate) const fn new() -> Woken {
        Woken { head: ptr::null() }
    }

    /// Marks every picked entry `done` and wakes its task. Call with the list lock
    /// dropped.
    pub(crate) fn wake_all(self) {
        let mut p = self.head;
        while !p.is_null() {
            // SAFETY: a picked entry stays alive until its `done` is set below: its
            // sleeper, finding it unlinked, waits for `done` (`Waiter::wait_done`).
            let (next, task) = unsafe { ((*p).next.get(), (*p).task.clone()) };
            // Release pairs with `Waiter::is_done`. After this store the entry may
            // be gone: only our own `next` and `task` copies are used.
            // SAFETY: still alive, as above (`done` is not yet set).
            let done = unsafe { &(*p).done };
            done.store(true, Ordering::Release);
            task.wake_up();
            p = next;
        }
    }
}

impl Waiter {
    /// Whether the entry is on a list (read with the list lock held).
    pub(crate) fn is_linked(&self, _held: &Locked<'_>) -> bool {
        self.linked.get()
    }
}
