//! The wait engine (DESIGN.md "The four paths", 3 and 4): one FIFO list of
//! waiter entries that live on the sleepers' stacks, under a small internal
//! lock. Every sleeping primitive queues its sleepers here: [`WaitQueue`],
//! [`Semaphore`], [`Completion`] (the lock in its irq-safe form), and
//! [`RawMutex`], [`RwSemaphore`] and [`CondVar`] (its plain form).
//!
//! | kernel | here |
//! |---|---|
//! | `wait_queue_head_t.lock` + `.head`, `mutex.wait_lock` + `.wait_list` | [`WaitList`] |
//! | `wait_queue_entry`, `mutex_waiter`, `rwsem_waiter`, `semaphore_waiter` | [`Waiter`] |
//! | `WQ_FLAG_EXCLUSIVE`, `rwsem_waiter.type`, `mutex_waiter` → owner | [`Waiter::exclusive`], [`Waiter::tag`] |
//! | `semaphore_waiter.up`, `rwsem`'s `waiter->task = NULL` grant | a hand-off payload: [`Locked::hand_off`], [`Waiter::grant`] |
//! | `wake_q` | [`Detached`] |
//!
//! [`WaitQueue`]: super::WaitQueue
//! [`Semaphore`]: crate::semaphore::Semaphore
//! [`Completion`]: crate::completion::Completion
//! [`RawMutex`]: crate::mutex::RawMutex
//! [`RwSemaphore`]: crate::rwsem::RwSemaphore
//! [`CondVar`]: crate::condvar::CondVar
//!
//! # Implementation details
//!
//! The list is doubly linked through the entries and protected by a
//! [`RawLock`] (a futex mutex). The lock comes in two forms, chosen by the
//! list's type parameter: [`IrqSafe`] disables ksync's (signal-based) irqs while
//! it is held, as the kernel takes `wq_head->lock` with `spin_lock_irqsave`, so
//! that `complete()`, `up()` or `wake_up()` from an irq handler cannot deadlock
//! against the thread it interrupted; it also keeps a lock-free `active` hint
//! (the list is non-empty) for [`WaitQueue`]'s `wq_has_sleeper` check.
//! [`Plain`] does neither: the sleeping locks are never taken in irq context
//! and keep their own waiter bits in their lock words.
//!
//! An entry's `mark` word is what the waker hands over:
//!
//! | value              | meaning                                                        |
//! |--------------------|----------------------------------------------------------------|
//! | `QUEUED` (0)       | linked into the list, or detached by a waker that has not marked it yet |
//! | [`WOKEN`] (1)      | detached and woken; nothing handed over                        |
//! | any other (a grant)| detached and woken with a hand-off the primitive defines: the mutex itself, a read or write grant |
//!
//! **Waking** (the completion rule, SPEC §12): the waker detaches entries under
//! the lock — unlinks them, records the grant in the entry's links and chains
//! them into a [`Detached`] set through their own `next` links (the kernel's
//! `wake_q`: nothing allocates) — releases the lock, and only then, per entry,
//! takes its own reference to the task, stores the grant into `mark` (Release)
//! and calls [`Task::wake_up`](super::Task::wake_up). It never touches the entry
//! again: its owner may return and pop its stack frame as soon as it sees the
//! mark. Whatever the waker did before the mark — handing over a unit, storing
//! the new owner, setting a condition — is visible to the owner through the
//! mark's Release/Acquire pair.
//!
//! **Leaving early** (signal, timeout, a condition that became true): the owner
//! takes the lock. If its entry is still linked, it unlinks it (and the
//! primitive passes on whatever the entry's presence may have absorbed). If a
//! waker detached it, the wake-up — and its grant — is on its way: the owner
//! waits for the mark ([`Waiter::wait_for_mark`]: a short spin, then an
//! uninterruptible [`sleep`]) and takes the wake-up as if the signal had come
//! after it, so an entry is never freed while a waker may still write to it and
//! no grant is lost or duplicated.

use super::sleep::sleep;
use super::task::{Task, TaskState, current};
use crate::backoff::Spin;
use crate::error::Result;
use crate::loom::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use crate::rawlock::RawLock;
use core::cell::Cell;
use core::marker::{PhantomData, PhantomPinned};
use core::ptr;
use std::time::Instant;

/// The `mark` of a linked entry (module docs).
const QUEUED: u32 = 0;
/// The `mark` (and grant) of an entry woken with nothing handed over.
pub(crate) const WOKEN: u32 = 1;

// ---------------------------------------------------------------------------
// The two forms of the internal lock.

/// How a [`WaitList`]'s internal lock treats irqs, and whether the list keeps
/// its lock-free `active` hint: [`Plain`] or [`IrqSafe`].
pub(crate) trait LockMode {
    /// What taking the lock saved, for its release to restore.
    type Saved: Copy;
    /// Whether the list maintains `active` (a Relaxed store per link/unlink).
    const TRACKS_ACTIVE: bool;
    /// Runs before the lock is taken.
    fn save() -> Self::Saved;
    /// Runs after the lock is released.
    fn restore(saved: Self::Saved);
}

/// The internal lock as is: for the sleeping locks, never used from irq context.
pub(crate) enum Plain {}

/// The internal lock with irqs disabled while held (`spin_lock_irqsave`), and
/// the `active` hint: for lists that irq handlers may wake.
pub(crate) enum IrqSafe {}

impl LockMode for Plain {
    type Saved = ();
    const TRACKS_ACTIVE: bool = false;
    #[inline(always)]
    fn save() {}
    #[inline(always)]
    fn restore(_: ()) {}
}

impl LockMode for IrqSafe {
    #[cfg(not(loom))]
    type Saved = crate::ctx::IrqFlags;
    #[cfg(loom)]
    type Saved = ();
    const TRACKS_ACTIVE: bool = true;
    #[inline(always)]
    fn save() -> Self::Saved {
        #[cfg(not(loom))]
        return crate::ctx::local_irq_save();
    }
    #[inline(always)]
    fn restore(saved: Self::Saved) {
        #[cfg(not(loom))]
        crate::ctx::local_irq_restore(saved);
        #[cfg(loom)]
        let () = saved;
    }
}

// ---------------------------------------------------------------------------
// Entries.

/// The part of an entry that only the list lock's holder may touch (and the
/// waker that detached it, until it marks it).
struct Links {
    next: *const Waiter,
    prev: *const Waiter,
    linked: bool,
    /// Taken off the list by a waker, which will mark it after unlocking.
    detached: bool,
    /// What the waker will store into `mark`.
    grant: u32,
}

/// A waiter entry (`struct wait_queue_entry`, `struct mutex_waiter`, `struct
/// rwsem_waiter`): lives on the sleeping task's stack, linked into one
/// [`WaitList`] while the task waits.
///
/// # Invariants
/// An entry is linked only into one list in its life. While linked, or while
/// detached by a waker and not yet marked, it is not moved or freed (its owner
/// waits for the mark before it leaves).
pub(crate) struct Waiter {
    /// Protected by the list's lock; read by a waker without the lock only while
    /// the entry is detached and not yet marked (the waker owns it then).
    links: UnsafeCell<Links>,
    /// `QUEUED`, [`WOKEN`] or a grant; see the module docs.
    mark: AtomicU32,
    /// The sleeping task, cloned by the waker to wake it.
    task: Task,
    /// Exclusive waiter (`WQ_FLAG_EXCLUSIVE`): a `wake_up` wakes only one.
    pub(crate) exclusive: bool,
    /// The state the owner sleeps in, for `wake_up_interruptible`.
    pub(crate) state: TaskState,
    /// The primitive's tag: the owner id for a mutex, reader or writer for a rwsem.
    pub(crate) tag: u32,
    /// A second word for the primitive: a `ww_mutex` waiter's acquire context
    /// (its address, which orders the list by the context's stamp), 0 unused.
    pub(crate) key: usize,
    /// The sleeping locks' "asked for hand-off" flag. Written by the owner (the
    /// mutex; the rwsem under the list lock), read by the owner and under the
    /// list lock.
    pub(crate) handoff: Cell<bool>,
    /// A sleeping lock's waiter that sleeps with no timer (the mutex's: the
    /// lock stopped changing hands), so that awake contenders time its wait
    /// once it is first. Written by the owner, under the list lock while
    /// linked; read under the list lock.
    pub(crate) untimed: Cell<bool>,
    _pin: PhantomPinned,
}

impl Waiter {
    /// An unlinked entry for the current task, for a wait queue, a semaphore or
    /// a completion: `exclusive` or not, sleeping in `state`.
    pub(crate) fn new(exclusive: bool, state: TaskState) -> Waiter {
        Waiter::with(exclusive, state, 0)
    }

    /// An unlinked exclusive entry for the current task, for a sleeping lock,
    /// carrying `tag`.
    pub(crate) fn tagged(tag: u32) -> Waiter {
        Waiter::with(true, TaskState::Uninterruptible, tag)
    }

    /// [`tagged`](Self::tagged) with a second word, `key`, for the primitive.
    pub(crate) fn keyed(tag: u32, key: usize) -> Waiter {
        Waiter {
            key,
            ..Waiter::tagged(tag)
        }
    }

    fn with(exclusive: bool, state: TaskState, tag: u32) -> Waiter {
        Waiter {
            links: UnsafeCell::new(Links {
                next: ptr::null(),
                prev: ptr::null(),
                linked: false,
                detached: false,
                grant: WOKEN,
            }),
            mark: AtomicU32::new(QUEUED),
            task: current(),
            exclusive,
            state,
            tag,
            key: 0,
            handoff: Cell::new(false),
            untimed: Cell::new(false),
            _pin: PhantomPinned,
        }
    }

    /// The sleeping task (a waker that leaves the entry queued wakes it through
    /// a clone).
    #[inline]
    pub(crate) fn task(&self) -> &Task {
        &self.task
    }

    /// Whether a waker has detached and marked this entry (Acquire pairs with
    /// the waker's Release store of the mark in [`Detached::wake`]: what the
    /// waker did before waking — handing over a unit, setting a condition — is
    /// visible).
    #[inline]
    pub(crate) fn is_woken(&self) -> bool {
        self.grant() != QUEUED
    }

    /// The mark: `0` while not yet woken, else what the waker handed over
    /// ([`WOKEN`] or the grant given to [`Locked::hand_off`]). Acquire as in
    /// [`is_woken`](Self::is_woken).
    #[inline]
    pub(crate) fn grant(&self) -> u32 {
        self.mark.load(Ordering::Acquire)
    }

    /// Waits until a waker that detached this entry marks it: spins briefly (the
    /// window is a few instructions unless the waker is preempted), then sleeps
    /// uninterruptibly (the waker's wake-up follows its mark). Called only
    /// after seeing the entry detached under the lock, so the mark is on its way.
    #[cold]
    pub(crate) fn wait_for_mark(&self) {
        let spin = Spin::new();
        while !self.is_woken() {
            if spin.is_completed() {
                // Ok or spurious: loop. Uninterruptible without deadline cannot fail.
                let _ = sleep(TaskState::Uninterruptible, None);
            } else {
                spin.snooze();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The list.

/// When a wait list's first entry became first, for the sleeping locks
/// whose awake contenders time an untimed first sleeper (the mutex's and
/// the semaphore's starvation bound: a sleeper keeps a timer to ask for
/// hand-off only while the lock is busy). Written under the list lock
/// whenever the front changes ([`note`](Self::note)); read without it,
/// only to time a request that is checked again under the lock. Not in the
/// loom build, which has no clock: there every first sleeper has waited
/// long enough, so the models run every request.
pub(crate) struct FrontClock {
    /// The entry the reading belongs to, as an address (0: none).
    #[cfg(not(loom))]
    front: core::sync::atomic::AtomicUsize,
    /// When it became first (`backoff::now_ns`), if it sleeps untimed; else
    /// `u64::MAX`: never too long.
    #[cfg(not(loom))]
    since: core::sync::atomic::AtomicU64,
    /// How long an untimed first entry may wait before contenders ask for
    /// hand-off on its behalf (the primitive's `HANDOFF_AFTER`).
    #[cfg(not(loom))]
    bound: core::time::Duration,
}

impl FrontClock {
    /// No entry first; an untimed first entry waits at most `bound`.
    pub(crate) const fn new(bound: core::time::Duration) -> Self {
        #[cfg(loom)]
        let _ = bound;
        FrontClock {
            #[cfg(not(loom))]
            bound,
            #[cfg(not(loom))]
            front: core::sync::atomic::AtomicUsize::new(0),
            #[cfg(not(loom))]
            since: core::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// Under the list lock, after a change of the list whose first entry is
    /// now `front`: notes when it became first, if it changed and sleeps
    /// untimed ([`Waiter::untimed`]). A first entry with a timer asks for
    /// itself.
    #[inline]
    pub(crate) fn note(&self, front: Option<&Waiter>) {
        #[cfg(not(loom))]
        {
            let addr = front.map_or(0, |w| w as *const Waiter as usize);
            // Relaxed: both are written and compared under the list lock.
            if self.front.load(Ordering::Relaxed) != addr {
                self.front.store(addr, Ordering::Relaxed);
                let since = match front {
                    Some(w) if w.untimed.get() => crate::backoff::now_ns(),
                    _ => u64::MAX,
                };
                self.since.store(since, Ordering::Relaxed);
            }
        }
        #[cfg(loom)]
        let _ = front;
    }

    /// Whether the first entry sleeps untimed and had been first for the
    /// bound at `now` (a `backoff::now_ns` reading): contenders ask for
    /// hand-off on its behalf. Always under loom.
    #[inline]
    pub(crate) fn waited(&self, now: u64) -> bool {
        #[cfg(not(loom))]
        return now.saturating_sub(self.since.load(Ordering::Relaxed))
            >= self.bound.as_nanos() as u64;
        #[cfg(loom)]
        {
            let _ = now;
            true
        }
    }

    /// Forgets the first entry (in a forked child, with the list).
    #[cfg(not(loom))]
    pub(crate) fn reset(&self) {
        self.front.store(0, Ordering::Relaxed);
        self.since.store(u64::MAX, Ordering::Relaxed);
    }
}

/// A FIFO list of [`Waiter`] entries under a [`RawLock`], in the form `M`
/// ([`IrqSafe`] by default, or [`Plain`]).
pub(crate) struct WaitList<M: LockMode = IrqSafe> {
    lock: RawLock,
    /// Whether the list is non-empty (only with `M::TRACKS_ACTIVE`); written under
    /// `lock`, read without it by [`WaitQueue`](super::WaitQueue)'s empty check.
    active: AtomicBool,
    /// Head and tail, protected by `lock`.
    ends: UnsafeCell<(*const Waiter, *const Waiter)>,
    _mode: PhantomData<M>,
}

// SAFETY: the raw pointers in `ends` and in the entries are only followed under
// `lock` (or by the waker that owns a detached entry), and the entries they point
// to stay valid while linked (see `Waiter`'s invariants); `Task` is Send.
unsafe impl<M: LockMode> Send for WaitList<M> {}
// SAFETY: every shared mutation of `ends` and of linked entries' links goes
// through `lock`; the rest are atomics.
unsafe impl<M: LockMode> Sync for WaitList<M> {}

impl<M: LockMode> WaitList<M> {
    /// An empty list.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        WaitList {
            lock: RawLock::new(),
            active: AtomicBool::new(false),
            ends: UnsafeCell::new((ptr::null(), ptr::null())),
            _mode: PhantomData,
        }
    }

    /// An empty list (loom build).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        WaitList {
            lock: RawLock::new(),
            active: AtomicBool::new(false),
            ends: UnsafeCell::new((ptr::null(), ptr::null())),
            _mode: PhantomData,
        }
    }

    /// Empties the list and unlocks its lock, forgetting every entry: in the
    /// child of a fork, where the entries belong to the parent's other
    /// threads, which the child has not got (none is woken or touched).
    ///
    /// # Safety
    /// The caller is the process's only thread, and no entry of its own is
    /// linked (or detached and not yet marked).
    #[cfg(not(loom))]
    pub(crate) unsafe fn reinit_after_fork(&self) {
        // SAFETY: the only thread, so nobody holds the lock or follows the
        // ends; the entries they name are forgotten, never dereferenced.
        unsafe { self.lock.reinit_after_fork() };
        // SAFETY: as above: no reference to `ends` exists.
        self.ends
            .with_mut(|e| unsafe { *e = (ptr::null(), ptr::null()) });
        self.active.store(false, Ordering::Relaxed);
    }

    /// Takes the internal lock (with irqs off for [`IrqSafe`]).
    #[inline]
    pub(crate) fn lock(&self) -> Locked<'_, M> {
        let saved = M::save();
        self.lock.lock();
        Locked {
            list: self,
            saved,
            _not_send: PhantomData,
        }
    }

    /// Whether anyone waits, without the lock (a hint, kept only by [`IrqSafe`]
    /// lists; see [`WaitQueue`](super::WaitQueue) for the fence that makes it exact).
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Sleeps until `w` (linked by the caller) is woken, or `sleep` fails. On
    /// failure, `cancel` runs under the lock if `w` is still linked (after it was
    /// unlinked) and the error is returned; if a waker had already detached `w`,
    /// the wake-up is taken instead and the result is `Ok` — the hand-off
    /// happened before the signal or deadline counted, as in the kernel's
    /// `__down_common`, so nothing is lost or duplicated.
    pub(crate) fn wait_woken(
        &self,
        w: &Waiter,
        state: TaskState,
        deadline: Option<Instant>,
        cancel: impl FnOnce(&Locked<'_, M>),
    ) -> Result<()> {
        loop {
            if w.is_woken() {
                return Ok(());
            }
            if let Err(e) = sleep(state, deadline) {
                return if self.leave(w, cancel) {
                    Ok(())
                } else {
                    Err(e)
                };
            }
        }
    }

    /// Takes `w` off the list for a waiter that stops waiting: returns `false`
    /// if it was still linked (now unlinked, and `cancel` ran under the lock) or
    /// not queued at all, `true` if a waker had detached it (after waiting for
    /// the mark, so that the waker is done with it).
    pub(crate) fn leave(&self, w: &Waiter, cancel: impl FnOnce(&Locked<'_, M>)) -> bool {
        if w.is_woken() {
            return true;
        }
        let l = self.lock();
        if l.remove(w) {
            cancel(&l);
            false
        } else if l.is_detached(w) {
            drop(l);
            w.wait_for_mark();
            true
        } else {
            false
        }
    }
}

/// The list locked: the only way to reach the links.
pub(crate) struct Locked<'a, M: LockMode = IrqSafe> {
    list: &'a WaitList<M>,
    saved: M::Saved,
    /// The lock is released on this thread (the irq flags are per thread).
    _not_send: PhantomData<*mut ()>,
}

impl<M: LockMode> Drop for Locked<'_, M> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this guard exists only while `lock` is held, by this thread.
        unsafe { self.list.lock.unlock() };
        M::restore(self.saved);
    }
}

impl<M: LockMode> Locked<'_, M> {
    /// Runs `f` on `w`'s links, reading only: a waker that detached `w` may be
    /// reading them at the same time, without the lock (`Detached::wake`).
    fn links_ref<R>(&self, w: &Waiter, f: impl FnOnce(&Links) -> R) -> R {
        // SAFETY: `w` is linked into this list or unlinked (`Waiter`'s
        // invariants: one list per entry), so its links are written only under
        // the lock we hold; no reference to them outlives `f`.
        w.links.with(|l| f(unsafe { &*l }))
    }

    /// Runs `f` on `w`'s links, writing: only for an entry that is linked (no
    /// waker reads it outside the lock) or that its owner is about to link.
    fn links<R>(&self, w: &Waiter, f: impl FnOnce(&mut Links) -> R) -> R {
        // SAFETY: callers write only the links of an entry linked into this list
        // (one list per entry, `Waiter`'s invariants: protected by the lock we
        // hold, and no waker holds it detached), of one they are detaching under
        // this lock, or of an unlinked one that is not detached-unmarked (its
        // owner's, being linked: nobody else reads it). No reference to the links
        // outlives `f`.
        w.links.with_mut(|l| f(unsafe { &mut *l }))
    }

    fn ends<R>(&self, f: impl FnOnce(&mut (*const Waiter, *const Waiter)) -> R) -> R {
        // SAFETY: `ends` is protected by the lock we hold; the reference does not
        // outlive `f`.
        self.list.ends.with_mut(|e| f(unsafe { &mut *e }))
    }

    /// Whether `w` is linked.
    #[inline]
    pub(crate) fn is_linked(&self, w: &Waiter) -> bool {
        self.links_ref(w, |l| l.linked)
    }

    /// Whether a waker detached `w` since it was last linked (it is marked or
    /// about to be).
    #[inline]
    pub(crate) fn is_detached(&self, w: &Waiter) -> bool {
        self.links_ref(w, |l| l.detached)
    }

    /// Whether the list is empty.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ends(|e| e.0.is_null())
    }

    /// The first entry, if any.
    #[inline]
    pub(crate) fn front(&self) -> Option<&Waiter> {
        // SAFETY: a linked entry stays alive until it is unlinked and, if a
        // waker detached it, marked (`Waiter`'s invariants). Its owner unlinks it
        // only under this lock, so not while `self` lives; a detach through
        // `self` defers the mark (and so the owner's return) to `Detached::wake`,
        // after `self`, and with it this borrow, is gone.
        self.ends(|e| unsafe { e.0.as_ref() })
    }

    /// The entry after `w` (linked), if any: lets a waker walk the list.
    #[inline]
    pub(crate) fn next_of(&self, w: &Waiter) -> Option<&Waiter> {
        debug_assert!(self.is_linked(w));
        // SAFETY: a linked entry's `next` is a linked entry or null, alive as
        // argued in `front`.
        self.links_ref(w, |l| unsafe { l.next.as_ref() })
    }

    fn set_active(&self) {
        if M::TRACKS_ACTIVE {
            // Relaxed: written under the lock; ordered for WaitQueue's lock-free check by
            // the fences described in its module docs.
            self.list.active.store(!self.is_empty(), Ordering::Relaxed);
        }
    }

    /// Appends `w`, resetting its mark.
    ///
    /// # Safety
    /// `w` is unlinked, is linked into no other list in its life, is not detached
    /// and unmarked, and stays in place (not moved, not freed) until it is
    /// unlinked or marked.
    #[inline]
    pub(crate) unsafe fn push_back(&self, w: &Waiter) {
        // SAFETY: forwarded from the caller.
        unsafe { self.link(w, false) }
    }

    /// Prepends `w` (a woken waiter going back to sleep keeps its place),
    /// resetting its mark.
    ///
    /// # Safety
    /// As for [`push_back`](Self::push_back).
    #[inline]
    pub(crate) unsafe fn push_front(&self, w: &Waiter) {
        // SAFETY: forwarded from the caller.
        unsafe { self.link(w, true) }
    }

    /// Links `w` just before `at` (linked): for a list kept in an order of the
    /// primitive's own (`ww_mutex` waiters by stamp), resetting `w`'s mark.
    ///
    /// # Safety
    /// As for [`push_back`](Self::push_back).
    pub(crate) unsafe fn insert_before(&self, w: &Waiter, at: &Waiter) {
        debug_assert!(!self.is_linked(w) && self.is_linked(at));
        let prev = self.links_ref(at, |l| l.prev);
        if prev.is_null() {
            // SAFETY: forwarded from the caller.
            return unsafe { self.link(w, true) };
        }
        // Relaxed: as in `link`, only the owner reads the mark before a waker
        // finds the entry under this lock.
        w.mark.store(QUEUED, Ordering::Relaxed);
        let (wp, atp): (*const Waiter, *const Waiter) = (w, at);
        self.links(w, |l| {
            l.next = atp;
            l.prev = prev;
            l.linked = true;
            l.detached = false;
            l.grant = WOKEN;
        });
        // SAFETY: `prev` is a live linked entry (lock held).
        self.links(unsafe { &*prev }, |l| l.next = wp);
        self.links(at, |l| l.prev = wp);
        self.set_active();
    }

    /// Links `w` at the head (`front`) or the tail, resetting its mark.
    ///
    /// # Safety
    /// As for [`push_back`](Self::push_back).
    pub(crate) unsafe fn link(&self, w: &Waiter, front: bool) {
        debug_assert!(!self.is_linked(w));
        // Relaxed: only its owner (this thread) reads the mark before a waker,
        // which will find the entry under this lock, writes it again.
        w.mark.store(QUEUED, Ordering::Relaxed);
        let wp: *const Waiter = w;
        let (head, tail) = self.ends(|e| *e);
        self.links(w, |l| {
            l.next = if front { head } else { ptr::null() };
            l.prev = if front { ptr::null() } else { tail };
            l.linked = true;
            l.detached = false;
            l.grant = WOKEN;
        });
        if front {
            if head.is_null() {
                self.ends(|e| e.1 = wp);
            } else {
                // SAFETY: the head is a live linked entry (lock held).
                self.links(unsafe { &*head }, |l| l.prev = wp);
            }
            self.ends(|e| e.0 = wp);
        } else {
            if tail.is_null() {
                self.ends(|e| e.0 = wp);
            } else {
                // SAFETY: the tail is a live linked entry (lock held).
                self.links(unsafe { &*tail }, |l| l.next = wp);
            }
            self.ends(|e| e.1 = wp);
        }
        self.set_active();
    }

    /// Unlinks `w` if it is linked; returns whether it was.
    pub(crate) fn remove(&self, w: &Waiter) -> bool {
        // Read first: a detached entry's links may be read by its waker now.
        if !self.is_linked(w) {
            return false;
        }
        let (prev, next) = self.links(w, |l| {
            l.linked = false;
            (l.prev, l.next)
        });
        if prev.is_null() {
            self.ends(|e| e.0 = next);
        } else {
            // SAFETY: linked neighbours are live (lock held).
            self.links(unsafe { &*prev }, |l| l.next = next);
        }
        if next.is_null() {
            self.ends(|e| e.1 = prev);
        } else {
            // SAFETY: as above.
            self.links(unsafe { &*next }, |l| l.prev = prev);
        }
        self.set_active();
        true
    }

    /// Unlinks `w` (linked) and adds it to `out`, to be marked [`WOKEN`] and
    /// woken after the lock is released.
    #[inline]
    pub(crate) fn take(&self, w: &Waiter, out: &mut Detached) {
        self.hand_off(w, WOKEN, out);
    }

    /// Unlinks `w` (linked) and adds it to `out`, to be marked with `grant` (not
    /// 0: the primitive's hand-off, which its owner reads with
    /// [`Waiter::grant`]) and woken after the lock is released.
    pub(crate) fn hand_off(&self, w: &Waiter, grant: u32, out: &mut Detached) {
        debug_assert_ne!(grant, QUEUED);
        let was = self.remove(w);
        debug_assert!(was, "detaching an entry that is not linked");
        self.links(w, |l| {
            l.next = ptr::null();
            l.detached = true;
            l.grant = grant;
        });
        out.push(w);
    }

    /// Detaches waiters from the head for a wake-up: every non-exclusive one and
    /// up to `nr_exclusive` exclusive ones (all if 0), skipping (leaving queued)
    /// those that `interruptible_only` does not wake — `__wake_up_common`.
    pub(crate) fn detach(&self, nr_exclusive: usize, interruptible_only: bool) -> Detached {
        let mut out = Detached::empty();
        let mut nr = nr_exclusive;
        let mut cur = self.front();
        while let Some(w) = cur {
            cur = self.next_of(w);
            if !interruptible_only || w.state == TaskState::Interruptible {
                self.take(w, &mut out);
                if w.exclusive && nr_exclusive != 0 {
                    nr -= 1;
                    if nr == 0 {
                        break;
                    }
                }
            }
        }
        out
    }

    /// Detaches the first waiter onto `out` (FIFO hand-off); returns whether
    /// there was one.
    pub(crate) fn detach_first(&self, out: &mut Detached) -> bool {
        match self.front() {
            Some(w) => {
                self.take(w, out);
                true
            }
            None => false,
        }
    }
}

/// Entries a waker detached, chained through their `next` links in FIFO order,
/// to be marked and woken after the lock is released (the kernel's `wake_q`).
#[must_use = "detached waiters must be woken"]
pub(crate) struct Detached {
    head: *const Waiter,
    tail: *const Waiter,
    count: usize,
}

impl Detached {
    /// No entries.
    pub(crate) const fn empty() -> Detached {
        Detached {
            head: ptr::null(),
            tail: ptr::null(),
            count: 0,
        }
    }

    /// Appends `w`, just detached under the lock, with its `next` cleared.
    fn push(&mut self, w: &Waiter) {
        let wp: *const Waiter = w;
        if self.tail.is_null() {
            self.head = wp;
        } else {
            // SAFETY: `tail` is a detached entry we own until it is marked; only we
            // touch its links.
            unsafe { (*self.tail).links.with_mut(|l| (*l).next = wp) };
        }
        self.tail = wp;
        self.count += 1;
    }

    /// Marks and wakes every detached entry; call after releasing the lock. The
    /// last access to each entry is the Release store of its mark. Returns how
    /// many were woken.
    pub(crate) fn wake(self) -> usize {
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: a detached entry stays valid until we mark it (its owner waits
            // for the mark; `Waiter`'s invariants), and only we touch its links.
            let (next, grant, task) = unsafe {
                let w = &*cur;
                let (next, grant) = w.links.with(|l| ((*l).next, (*l).grant));
                (next, grant, w.task.clone())
            };
            // SAFETY: as above; after this store we never touch the entry again.
            // Release pairs with the owner's Acquire in `Waiter::grant`.
            unsafe { (*cur).mark.store(grant, Ordering::Release) };
            task.wake_up();
            cur = next;
        }
        self.count
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// FIFO order, walking, and removal from the middle, head and tail.
    #[test]
    fn links_keep_fifo_order_through_removals() {
        let list = WaitList::<Plain>::new();
        let ws: Vec<Waiter> = (0..4).map(Waiter::tagged).collect();
        let tags = |l: &Locked<'_, Plain>| {
            let mut v = Vec::new();
            let mut p = l.front();
            while let Some(w) = p {
                v.push(w.tag);
                p = l.next_of(w);
            }
            v
        };
        let l = list.lock();
        for w in &ws[1..] {
            // SAFETY: fresh entries, only ever linked into `list`; they outlive
            // their links (all unlinked below, before `ws` is dropped).
            unsafe { l.push_back(w) };
        }
        // SAFETY: as above.
        unsafe { l.push_front(&ws[0]) };
        assert_eq!(tags(&l), [0, 1, 2, 3]);
        assert!(l.remove(&ws[2]));
        assert!(!l.remove(&ws[2]));
        assert_eq!(tags(&l), [0, 1, 3]);
        assert!(l.remove(&ws[0]) && l.remove(&ws[3]));
        assert_eq!(tags(&l), [1]);
        assert!(l.remove(&ws[1]));
        assert!(l.is_empty());
        // An ordered insert: before the head, in the middle, before the tail.
        // SAFETY: as above.
        unsafe {
            l.push_back(&ws[3]);
            l.insert_before(&ws[1], &ws[3]);
            l.insert_before(&ws[0], &ws[1]);
            l.insert_before(&ws[2], &ws[3]);
        }
        assert_eq!(tags(&l), [0, 1, 2, 3]);
        for w in &ws {
            assert!(l.remove(w));
        }
        assert!(l.is_empty());
    }

    /// `detach` wakes every non-exclusive waiter and `nr` exclusive ones, in
    /// FIFO order, and hands each its grant through the mark; the `active` hint
    /// follows the list in the irq-safe form only.
    #[test]
    fn detach_counts_exclusive_waiters_and_delivers_grants() {
        let list = WaitList::<IrqSafe>::new();
        let ws = [
            Waiter::new(false, TaskState::Uninterruptible),
            Waiter::new(true, TaskState::Uninterruptible),
            Waiter::new(true, TaskState::Interruptible),
            Waiter::new(false, TaskState::Interruptible),
        ];
        {
            let l = list.lock();
            for w in &ws {
                // SAFETY: fresh entries, only linked into `list`; every one is
                // detached and marked (or unlinked) below, before `ws` is dropped.
                unsafe { l.push_back(w) };
            }
        }
        assert!(list.is_active());
        // As `__wake_up_common`: the walk stops at the `nr`-th exclusive waiter.
        let d = list.lock().detach(1, false);
        assert_eq!(d.wake(), 2);
        assert!(ws[0].is_woken() && ws[1].is_woken());
        assert!(!ws[2].is_woken() && !ws[3].is_woken());
        let mut d = Detached::empty();
        {
            let l = list.lock();
            let first = l.front().expect("two left");
            l.hand_off(first, 7, &mut d);
            assert!(l.is_detached(&ws[2]) && !l.is_linked(&ws[2]));
        }
        assert!(list.is_active());
        assert_eq!(d.wake(), 1);
        assert_eq!(list.lock().detach(0, true).wake(), 1);
        assert!(ws[3].is_woken());
        assert!(!list.is_active());
        assert_eq!(ws[2].grant(), 7);
        assert_eq!(ws[0].grant(), WOKEN);
        let plain = WaitList::<Plain>::new();
        let w = Waiter::tagged(0);
        // SAFETY: fresh, only linked into `plain`, unlinked before it is dropped.
        unsafe { plain.lock().push_back(&w) };
        assert!(!plain.is_active());
        assert!(plain.lock().remove(&w));
    }

    /// A waiter interrupted while queued leaves the list (and `cancel` runs);
    /// one that a waker detached first takes the grant instead of the error.
    #[test]
    fn a_signal_after_the_hand_off_does_not_lose_it() {
        let list = Arc::new(WaitList::<IrqSafe>::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = list.clone();
        let t = std::thread::spawn(move || {
            let w = Waiter::new(true, TaskState::Interruptible);
            // SAFETY: fresh, only linked into this list, and `wait_woken` returns
            // only once it is unlinked or marked.
            unsafe { l2.lock().push_back(&w) };
            tx.send(current()).unwrap();
            let mut cancelled = false;
            let r = l2.wait_woken(&w, TaskState::Interruptible, None, |_| cancelled = true);
            crate::sched::flush_signals();
            (r, w.grant(), cancelled)
        });
        let task = rx.recv().unwrap();
        while task.state() != TaskState::Interruptible {
            std::thread::yield_now();
        }
        let mut d = Detached::empty();
        {
            let l = list.lock();
            let first = l.front().expect("queued");
            l.hand_off(first, 5, &mut d);
        }
        // The signal lands before the mark: the waiter must still take the grant.
        task.send_signal(crate::sched::Signal::SIGUSR1);
        d.wake();
        assert_eq!(t.join().unwrap(), (Ok(()), 5, false));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::sync::atomic::AtomicBool;
    use crate::sched::{Signal, flush_signals};

    /// The grant of the hand-off models.
    const UNIT: u32 = 2;

    /// A list and a count of wake-ups (or units) that found nobody queued,
    /// protected by the list's lock (an atomic only to make it `Sync`).
    struct Pool<M: LockMode> {
        list: WaitList<M>,
        pending: AtomicU32,
    }

    impl<M: LockMode> Pool<M> {
        fn new() -> Self {
            Pool {
                list: WaitList::new(),
                pending: AtomicU32::new(0),
            }
        }

        /// Hands one unit to the first waiter, or leaves it pending.
        fn post(&self) {
            let mut d = Detached::empty();
            {
                let l = self.list.lock();
                match l.front() {
                    Some(f) => l.hand_off(f, UNIT, &mut d),
                    None => {
                        self.pending.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            d.wake();
        }

        /// Takes a pending unit, or queues `w` and waits in `state`; whether a
        /// unit was got (pending or handed over).
        fn wait(&self, w: &Waiter, state: TaskState) -> bool {
            {
                let l = self.list.lock();
                if self.pending.load(Ordering::Relaxed) > 0 {
                    self.pending.fetch_sub(1, Ordering::Relaxed);
                    return true;
                }
                // SAFETY: fresh, only linked into this list, and `wait_woken`
                // returns only once it is unlinked or marked.
                unsafe { l.push_back(w) };
            }
            match self.list.wait_woken(w, state, None, |_| {}) {
                Ok(()) => {
                    assert_eq!(w.grant(), UNIT);
                    true
                }
                Err(_) => false,
            }
        }
    }

    /// No lost wake-up (plain form): a waiter that checks a flag and queues
    /// under the lock, against a waker that sets it and wakes under the lock,
    /// always finishes, and never sees the flag clear after its wake-up.
    #[test]
    fn loom_waitlist_no_lost_wakeup() {
        loom::model(|| {
            let list = Arc::new(WaitList::<Plain>::new());
            let flag = Arc::new(AtomicBool::new(false));
            let (l2, f2) = (list.clone(), flag.clone());
            let t = loom::thread::spawn(move || {
                let d = {
                    let l = l2.lock();
                    f2.store(true, Ordering::Relaxed);
                    l.detach(0, false)
                };
                d.wake();
            });
            let w = Waiter::new(true, TaskState::Uninterruptible);
            let queued = {
                let l = list.lock();
                let queued = !flag.load(Ordering::Relaxed);
                if queued {
                    // SAFETY: fresh, only linked into `list`; `wait_woken` below
                    // returns only once it is marked.
                    unsafe { l.push_back(&w) };
                }
                queued
            };
            if queued {
                list.wait_woken(&w, TaskState::Uninterruptible, None, |_| {})
                    .unwrap();
                assert!(w.is_woken());
                assert!(flag.load(Ordering::Relaxed));
            }
            t.join().unwrap();
        });
    }

    /// A hand-off is delivered exactly once: one unit, posted while its only
    /// waiter is interrupted, ends up either with the waiter (which then
    /// returns `Ok` with the grant, whatever the signal did) or pending — never
    /// both, never neither.
    #[test]
    fn loom_waitlist_handoff_delivered_exactly_once() {
        loom::model(|| {
            let pool = Arc::new(Pool::<IrqSafe>::new());
            let (tx, rx) = loom::sync::mpsc::channel();
            let p2 = pool.clone();
            let a = loom::thread::spawn(move || {
                tx.send(current()).unwrap();
                let w = Waiter::new(true, TaskState::Interruptible);
                let got = p2.wait(&w, TaskState::Interruptible);
                flush_signals();
                got
            });
            let task = rx.recv().unwrap();
            // The signal races the post: the waiter may leave before it, or find
            // its entry detached but not yet marked, or be woken first.
            task.send_signal(Signal::SIGINT);
            pool.post();
            let got = a.join().unwrap();
            assert_eq!(u32::from(got) + pool.pending.load(Ordering::Relaxed), 1);
        });
    }

    /// A cancelled exclusive waiter passes its wake-up on: A (interrupted)
    /// gives back whatever reaches it, so B, which sleeps uninterruptibly,
    /// always gets the single unit — whether A had left the list before the
    /// post, was detached by it, or had not queued yet.
    #[test]
    fn loom_waitlist_cancelled_waiter_passes_wakeup_on() {
        loom::model(|| {
            let pool = Arc::new(Pool::<IrqSafe>::new());
            let (tx, rx) = loom::sync::mpsc::channel();
            let pa = pool.clone();
            let a = loom::thread::spawn(move || {
                tx.send(current()).unwrap();
                let w = Waiter::new(true, TaskState::Interruptible);
                if pa.wait(&w, TaskState::Interruptible) {
                    // Cancelled: the unit is not ours to keep.
                    pa.post();
                }
                flush_signals();
            });
            let pb = pool.clone();
            let b = loom::thread::spawn(move || {
                let w = Waiter::new(true, TaskState::Uninterruptible);
                assert!(pb.wait(&w, TaskState::Uninterruptible));
            });
            let task_a = rx.recv().unwrap();
            task_a.send_signal(Signal::SIGINT);
            pool.post();
            a.join().unwrap();
            b.join().unwrap();
            assert_eq!(pool.pending.load(Ordering::Relaxed), 0);
        });
    }
}
