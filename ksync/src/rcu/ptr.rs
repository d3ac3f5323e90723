//! [`RcuPtr<T>`]: an RCU-protected pointer (`rcu_dereference`,
//! `rcu_assign_pointer`, `rcu_replace_pointer`).
//!
//! | word | values |
//! |------|--------|
//! | `RcuPtr::ptr` | null (`None`) or a `Box<T>` leaked into the pointer |
//!
//! ## Soundness
//!
//! - A reader's `&T` borrows both the `RcuPtr` and an [`RcuReadGuard`]: it cannot
//!   outlive the read-side section, nor the `RcuPtr` itself.
//! - An updater that takes a value out of the pointer ([`swap`](RcuPtr::swap),
//!   [`store`](RcuPtr::store), a successful [`update`](RcuPtr::update)) gets it
//!   back only as a [`Retired<T>`], whose `Box<T>` is released only after a grace
//!   period ([`Retired::into_box_after_gp`] calls `synchronize_rcu`; dropping it
//!   frees the value through `call_rcu`). Readers that could have loaded the old
//!   pointer began before it was swapped out, so the grace period waits for them.
//! - Every unpublishing operation is one atomic RMW on the pointer, so concurrent
//!   updaters through `&self` each take out a different value and no value is
//!   retired twice: updaters need no lock of their own for memory safety (they
//!   need one only for their own logic, as in the kernel).
//! - `Drop` (and [`get_mut`](RcuPtr::get_mut)) run with no borrow of the pointer
//!   alive, hence no reader of it, and free the current value at once.
//! - `T: Send + Sync` for `RcuPtr<T>: Sync`: readers on many threads share `&T`
//!   (`Sync`), and the value is dropped on whichever thread retires it or on the
//!   callback thread (`Send`). `T: 'static` for the operations that may defer the
//!   drop to the callback thread.

use super::RcuReadGuard;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// An RCU-protected pointer to an optional boxed `T`.
///
/// ```
/// use ksync::rcu::{rcu_read_lock, RcuPtr};
/// let config = RcuPtr::new(Some(Box::new(String::from("v1"))));
/// {
///     let g = rcu_read_lock();
///     assert_eq!(config.read(&g).map(String::as_str), Some("v1"));
/// }
/// config.store(Some(Box::new(String::from("v2")))); // old value freed after a grace period
/// config.update(|old| old.map(|s| Box::new(format!("{s}+")))); // copy-update
/// assert_eq!(config.read(&rcu_read_lock()).map(String::as_str), Some("v2+"));
/// ```
pub struct RcuPtr<T> {
    ptr: AtomicPtr<T>,
    _owns: PhantomData<Box<T>>,
}

// SAFETY: see the module docs: readers on other threads share `&T` (Sync) and the
// value may be dropped on another thread (Send).
unsafe impl<T: Send + Sync> Sync for RcuPtr<T> {}
// SAFETY: moving the pointer moves ownership of the boxed `T`.
unsafe impl<T: Send + Sync> Send for RcuPtr<T> {}

fn into_raw<T>(v: Option<Box<T>>) -> *mut T {
    v.map_or(ptr::null_mut(), Box::into_raw)
}

impl<T> RcuPtr<T> {
    /// A pointer holding `value` (`RCU_INIT_POINTER`).
    #[doc(alias = "RCU_INIT_POINTER")]
    pub fn new(value: Option<Box<T>>) -> Self {
        RcuPtr {
            ptr: AtomicPtr::new(into_raw(value)),
            _owns: PhantomData,
        }
    }

    /// A null pointer (usable in statics).
    pub const fn null() -> Self {
        RcuPtr {
            ptr: AtomicPtr::new(ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// The current value, valid for as long as the read-side section and the
    /// pointer are borrowed (`rcu_dereference`).
    #[doc(alias = "rcu_dereference")]
    #[inline(always)]
    pub fn read<'a>(&'a self, _guard: &'a RcuReadGuard) -> Option<&'a T> {
        // Acquire: pairs with the Release/AcqRel publication in store/swap/update,
        // so the object's initialization is visible (the kernel's consume order).
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: a non-null pointer is a live Box: it is freed only after a grace
        // period that began after it was unpublished, and `_guard` holds this
        // thread's read-side section open for 'a (see the module docs).
        unsafe { p.as_ref() }
    }

    /// Whether the pointer is null now (`rcu_access_pointer(p) == NULL`): needs no
    /// read-side section because nothing is dereferenced.
    #[doc(alias = "rcu_access_pointer")]
    pub fn is_null(&self) -> bool {
        self.ptr.load(Ordering::Relaxed).is_null()
    }

    /// Mutable access with no readers possible (`rcu_dereference_protected` with
    /// exclusive ownership).
    #[doc(alias = "rcu_dereference_protected")]
    pub fn get_mut(&mut self) -> Option<&mut T> {
        // SAFETY: `&mut self` excludes every reader and updater; a non-null
        // pointer is a live Box owned by self.
        unsafe { self.ptr.get_mut().as_mut() }
    }

    /// The value, consuming the pointer.
    pub fn into_inner(mut self) -> Option<Box<T>> {
        let p = core::mem::replace(self.ptr.get_mut(), ptr::null_mut());
        // SAFETY: a non-null pointer is a Box owned by self, now taken out.
        (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
    }
}

impl<T: Send + 'static> RcuPtr<T> {
    /// Publishes `new` and returns the unpublished value, which readers may still
    /// be using: it is handed back only as a [`Retired`] (`rcu_replace_pointer`).
    #[doc(alias = "rcu_replace_pointer")]
    #[doc(alias = "rcu_swap_protected")]
    pub fn swap(&self, new: Option<Box<T>>) -> Option<Retired<T>> {
        // AcqRel: Release publishes `new`'s contents to readers' Acquire loads;
        // Acquire makes the old object's contents ours to drop.
        let old = self.ptr.swap(into_raw(new), Ordering::AcqRel);
        (!old.is_null()).then(|| Retired { ptr: old })
    }

    /// The kernel's name for [`swap`](Self::swap).
    pub fn replace(&self, new: Option<Box<T>>) -> Option<Retired<T>> {
        self.swap(new)
    }

    /// Publishes the old value's copy that `f` returns (copy-update), retrying if
    /// another updater got in between; the old value is freed after a grace
    /// period. `f` may run more than once. Returns whether the pointer changed
    /// (`f` returning `None` for a `None` pointer counts as no change).
    ///
    /// Runs `f` inside a read-side section (the old value must stay alive while it
    /// is copied), so `f` must not block.
    pub fn update(&self, mut f: impl FnMut(Option<&T>) -> Option<Box<T>>) -> bool {
        let g = super::rcu_read_lock();
        let backoff = crate::Backoff::new();
        loop {
            // Acquire: as in `read`.
            let old = self.ptr.load(Ordering::Acquire);
            // SAFETY: as in `read`: `g` keeps the old value alive.
            let new = f(unsafe { old.as_ref() });
            let new = into_raw(new);
            if new.is_null() && old.is_null() {
                return false;
            }
            // AcqRel: as in `swap`. The guard keeps `old` from being freed and
            // reused meanwhile, so comparing addresses has no ABA problem.
            match self
                .ptr
                .compare_exchange(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    drop(g);
                    if !old.is_null() {
                        drop(Retired { ptr: old });
                    }
                    return true;
                }
                Err(_) => {
                    if !new.is_null() {
                        // SAFETY: `new` was never published; we still own it.
                        drop(unsafe { Box::from_raw(new) });
                    }
                    backoff.spin();
                }
            }
        }
    }

    /// Publishes `new` (`rcu_assign_pointer`); the old value is freed after a
    /// grace period through [`call_rcu`](super::call_rcu). Never blocks.
    #[doc(alias = "rcu_assign_pointer")]
    pub fn store(&self, new: Option<Box<T>>) {
        drop(self.swap(new));
    }

    /// Publishes `new`, waits for a grace period ([`synchronize_rcu`](super::synchronize_rcu))
    /// and returns the old value, now unreachable by any reader.
    ///
    /// # Panics
    /// Inside a read-side critical section.
    #[track_caller]
    pub fn replace_sync(&self, new: Option<Box<T>>) -> Option<Box<T>> {
        self.swap(new).map(Retired::into_box_after_gp)
    }
}

impl<T> Drop for RcuPtr<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: dropping needs ownership, so no reader borrows this pointer;
            // the value is a Box owned by self.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

impl<T> Default for RcuPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T> core::fmt::Debug for RcuPtr<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RcuPtr")
            .field("ptr", &self.ptr.load(Ordering::Relaxed))
            .finish()
    }
}

/// A value unpublished from an [`RcuPtr`] that readers may still be using.
///
/// Get the `Box<T>` back with [`into_box_after_gp`](Self::into_box_after_gp)
/// (waits for a grace period); dropping it frees the value after a grace period
/// through `call_rcu` (`kfree_rcu`).
pub struct Retired<T: Send + 'static> {
    ptr: *mut T,
}

// SAFETY: a Retired owns a Box<T>; moving it moves a `T: Send`.
unsafe impl<T: Send + 'static> Send for Retired<T> {}

impl<T: Send + 'static> Retired<T> {
    /// Waits for a grace period and returns the value, which no reader can see
    /// any more.
    ///
    /// # Panics
    /// Inside a read-side critical section.
    #[track_caller]
    pub fn into_box_after_gp(self) -> Box<T> {
        let p = self.ptr;
        core::mem::forget(self);
        super::synchronize_rcu();
        // SAFETY: `p` was unpublished before the grace period that just ended, so
        // no reader holds it; we own the Box.
        unsafe { Box::from_raw(p) }
    }
}

impl<T: Send + 'static> Drop for Retired<T> {
    fn drop(&mut self) {
        struct SendPtr<T>(*mut T);
        // SAFETY: carries ownership of a Box<T> with T: Send to the callback thread.
        unsafe impl<T: Send> Send for SendPtr<T> {}
        let p = SendPtr(self.ptr);
        super::call_rcu(move || {
            let p = p;
            // SAFETY: the callback runs after a grace period that began after the
            // pointer was unpublished; we own the Box.
            drop(unsafe { Box::from_raw(p.0) });
        });
    }
}

impl<T: Send + 'static> core::fmt::Debug for Retired<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Retired").field("ptr", &self.ptr).finish()
    }
}
