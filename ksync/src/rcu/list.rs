//! [`RcuList<T>`]: an RCU-protected singly linked list (`list_*_rcu`,
//! `hlist_*_rcu`).
//!
//! Readers walk it without locks inside a read-side section
//! ([`iter`](RcuList::iter), `list_for_each_entry_rcu`); writers add, delete and
//! replace under the list's own writer lock ([`RcuList::writer`]), and unlinked
//! entries are freed after a grace period (`call_rcu`). Readers only ever walk
//! forwards, so one `next` link per entry is all they need: the same list serves
//! as the kernel's `list_head` (with [`add_tail`](ListWriter::add_tail)) and as
//! its singly linked `hlist`.
//!
//! | word | values |
//! |------|--------|
//! | `RcuList::head`, `Node::next` | null: end of list; else the next live or just-unlinked node |
//!
//! An unlinked node keeps its `next`, so a reader standing on it walks on into
//! the list (as `list_del_rcu` leaves `->next` intact); the node is freed only
//! after a grace period, and any node it links to was unlinked no earlier, so it is
//! still alive for that reader too.

use super::RcuReadGuard;
use crate::mutex::{Mutex, MutexGuard};
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

struct Node<T> {
    next: AtomicPtr<Node<T>>,
    value: T,
}

/// An RCU-protected linked list of `T`.
///
/// ```
/// use ksync::rcu::{rcu_read_lock, RcuList};
/// let list = RcuList::new();
/// list.add(2);          // list_add_rcu: at the head
/// list.add(1);
/// list.add_tail(3);     // list_add_tail_rcu
/// assert!(list.del(|&x| x == 2));          // list_del_rcu
/// assert!(list.replace(|&x| x == 3, 30));  // list_replace_rcu
/// let g = rcu_read_lock();
/// assert_eq!(list.iter(&g).copied().collect::<Vec<_>>(), [1, 30]);
/// ```
pub struct RcuList<T> {
    head: AtomicPtr<Node<T>>,
    lock: Mutex<()>,
    _owns: PhantomData<Box<Node<T>>>,
}

// SAFETY: readers on other threads share `&T` (Sync); unlinked entries are
// dropped on the callback thread (Send).
unsafe impl<T: Send + Sync> Sync for RcuList<T> {}
// SAFETY: moving the list moves ownership of its `T`s.
unsafe impl<T: Send + Sync> Send for RcuList<T> {}

impl<T> RcuList<T> {
    /// An empty list (`LIST_HEAD_INIT`, `INIT_HLIST_HEAD`). Its writer lock is
    /// a ksync [`Mutex`] (a writer that waits for another sleeps through
    /// `sched::sleep`, dropping the BKL meanwhile), whose lockdep class is the
    /// caller's location.
    #[doc(alias = "INIT_LIST_HEAD")]
    #[doc(alias = "INIT_HLIST_HEAD")]
    #[track_caller]
    pub const fn new() -> Self {
        RcuList {
            head: AtomicPtr::new(ptr::null_mut()),
            lock: Mutex::new(()),
            _owns: PhantomData,
        }
    }

    /// Walks the list inside a read-side section (`list_for_each_entry_rcu`).
    /// Concurrent updates may or may not be seen, but every entry seen stays valid
    /// while the guard lives.
    #[doc(alias = "list_for_each_entry_rcu")]
    #[doc(alias = "hlist_for_each_entry_rcu")]
    #[inline]
    pub fn iter<'a>(&'a self, _guard: &'a RcuReadGuard) -> Iter<'a, T> {
        Iter {
            // Acquire: pairs with the writers' Release publication of a node.
            next: self.head.load(Ordering::Acquire),
            _marker: PhantomData,
        }
    }

    /// Whether the list is empty now (`list_empty_rcu`).
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }
}

impl<T: Send + 'static> RcuList<T> {
    /// Takes the writer lock: the returned writer adds, deletes and replaces.
    pub fn writer(&self) -> ListWriter<'_, T> {
        ListWriter {
            list: self,
            _lock: self.lock.lock(),
        }
    }

    /// Adds `value` at the head (`list_add_rcu`, `hlist_add_head_rcu`).
    #[doc(alias = "list_add_rcu")]
    #[doc(alias = "hlist_add_head_rcu")]
    pub fn add(&self, value: T) {
        self.writer().add(value);
    }

    /// Adds `value` at the tail (`list_add_tail_rcu`); walks the list.
    #[doc(alias = "list_add_tail_rcu")]
    pub fn add_tail(&self, value: T) {
        self.writer().add_tail(value);
    }

    /// Unlinks the first entry that matches and frees it after a grace period
    /// (`list_del_rcu`, `hlist_del_rcu`). Returns whether one matched.
    #[doc(alias = "list_del_rcu")]
    #[doc(alias = "hlist_del_rcu")]
    #[doc(alias = "hlist_del_init_rcu")]
    pub fn del(&self, pred: impl FnMut(&T) -> bool) -> bool {
        self.writer().del(pred)
    }

    /// Replaces the first entry that matches with `value` (`list_replace_rcu`,
    /// `hlist_replace_rcu`); the old entry is freed after a grace period. Returns
    /// whether one matched (if none did, `value` is dropped).
    #[doc(alias = "list_replace_rcu")]
    #[doc(alias = "hlist_replace_rcu")]
    pub fn replace(&self, pred: impl FnMut(&T) -> bool, value: T) -> bool {
        self.writer().replace(pred, value).is_ok()
    }
}

impl<T> Default for RcuList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for RcuList<T> {
    fn drop(&mut self) {
        let mut p = *self.head.get_mut();
        while !p.is_null() {
            // SAFETY: dropping needs ownership, so no reader walks the list; every
            // linked node is a Box owned by the list.
            let node = unsafe { Box::from_raw(p) };
            p = node.next.load(Ordering::Relaxed);
        }
    }
}

impl<T> core::fmt::Debug for RcuList<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RcuList")
    }
}

/// The writer side of an [`RcuList`], holding its writer lock.
pub struct ListWriter<'a, T: Send + 'static> {
    list: &'a RcuList<T>,
    _lock: MutexGuard<'a, ()>,
}

/// Frees an unlinked node after a grace period.
fn retire<T: Send + 'static>(p: *mut Node<T>) {
    struct SendPtr<T>(*mut Node<T>);
    // SAFETY: carries ownership of an unlinked node (T: Send) to the callback thread.
    unsafe impl<T: Send> Send for SendPtr<T> {}
    let p = SendPtr(p);
    super::call_rcu(move || {
        let p = p;
        // SAFETY: the node was unlinked before this callback was queued, and the
        // callback runs after a grace period: no reader can stand on it.
        drop(unsafe { Box::from_raw(p.0) });
    });
}

impl<T: Send + 'static> ListWriter<'_, T> {
    /// Walks the list under the writer lock (no read-side section needed: no
    /// other writer can unlink entries while we hold the lock).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            next: self.list.head.load(Ordering::Acquire),
            _marker: PhantomData,
        }
    }

    fn alloc(value: T, next: *mut Node<T>) -> *mut Node<T> {
        Box::into_raw(Box::new(Node {
            next: AtomicPtr::new(next),
            value,
        }))
    }

    /// Adds `value` at the head (`list_add_rcu`).
    pub fn add(&mut self, value: T) {
        let head = self.list.head.load(Ordering::Relaxed);
        let n = Self::alloc(value, head);
        // Release: publishes the node's contents to readers' Acquire loads
        // (rcu_assign_pointer).
        self.list.head.store(n, Ordering::Release);
    }

    /// The link that points at the first node for which `pred` is true, with
    /// that node (or the tail link and null).
    fn find(&self, mut pred: impl FnMut(&T) -> bool) -> (&AtomicPtr<Node<T>>, *mut Node<T>) {
        let mut link = &self.list.head;
        loop {
            let p = link.load(Ordering::Relaxed);
            if p.is_null() {
                return (link, p);
            }
            // SAFETY: linked nodes are alive while the writer lock is held (only
            // writers unlink, and a node is freed after being unlinked).
            let node = unsafe { &*p };
            if pred(&node.value) {
                return (link, p);
            }
            link = &node.next;
        }
    }

    /// Adds `value` at the tail (`list_add_tail_rcu`).
    pub fn add_tail(&mut self, value: T) {
        let (link, _) = self.find(|_| false);
        let n = Self::alloc(value, ptr::null_mut());
        // Release: as in `add`.
        link.store(n, Ordering::Release);
    }

    /// Unlinks the first matching entry and frees it after a grace period.
    /// Returns whether an entry matched.
    pub fn del(&mut self, pred: impl FnMut(&T) -> bool) -> bool {
        let (link, p) = self.find(pred);
        if p.is_null() {
            return false;
        }
        // SAFETY: `p` is linked, alive under the lock.
        let next = unsafe { (*p).next.load(Ordering::Relaxed) };
        // Release (as rcu_assign_pointer): readers that load the new link with
        // Acquire see `next`'s contents, which were published before it was linked.
        link.store(next, Ordering::Release);
        retire(p);
        true
    }

    /// Replaces the first matching entry with `value`; the old entry is freed
    /// after a grace period. Gives `value` back if nothing matched.
    pub fn replace(&mut self, pred: impl FnMut(&T) -> bool, value: T) -> Result<(), T> {
        let (link, p) = self.find(pred);
        if p.is_null() {
            return Err(value);
        }
        // SAFETY: `p` is linked, alive under the lock.
        let next = unsafe { (*p).next.load(Ordering::Relaxed) };
        let n = Self::alloc(value, next);
        // Release: publishes the new node (rcu_assign_pointer).
        link.store(n, Ordering::Release);
        retire(p);
        Ok(())
    }

    /// Unlinks every entry for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        while self.del(|v| !keep(v)) {}
    }
}

/// A reader's walk over an [`RcuList`].
pub struct Iter<'a, T> {
    next: *mut Node<T>,
    _marker: PhantomData<&'a T>,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;
    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: the node was reachable inside the read-side section (or under
        // the writer lock) that 'a borrows, so it is not freed before 'a ends.
        let node = unsafe { &*self.next };
        // Acquire: pairs with the Release that published the next node.
        self.next = node.next.load(Ordering::Acquire);
        Some(&node.value)
    }
}
