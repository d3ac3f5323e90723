//! `atomic_t` and `atomic64_t`/`atomic_long_t`: [`Atomic`] and [`Atomic64`].
//!
//! Generated from one template for both widths, so that the two types cannot
//! drift apart; every method carries the kernel's C name as a `doc(alias)`.
//!
//! The ordering rules and what each operation compiles to are in the
//! [module docs](crate::atomic).

use crate::Backoff;
use crate::loom::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use core::fmt;

/// `atomic_t`: a 32-bit signed integer that admits only atomic operations.
///
/// Value-returning read-modify-write operations are fully ordered, void ones are
/// unordered, and each value-returning operation also comes in `_relaxed`,
/// `_acquire` and `_release` forms — the kernel's rules, see the
/// [module docs](crate::atomic). Every method is named after the kernel's
/// `atomic_<op>()` and carries that name as a doc alias.
///
/// ```
/// use ksync::atomic::Atomic;
///
/// static USERS: Atomic = Atomic::new(0); // ATOMIC_INIT(0)
///
/// USERS.inc();                            // atomic_inc(&users)
/// assert_eq!(USERS.add_return(2), 3);     // atomic_add_return(2, &users)
/// assert_eq!(USERS.fetch_sub(1), 3);      // atomic_fetch_sub(1, &users)
/// assert!(!USERS.sub_and_test(1));        // atomic_sub_and_test(1, &users): 1 left
/// assert!(USERS.dec_and_test());          // the last one: true at zero
/// assert!(!USERS.inc_not_zero());         // zero stays zero
/// assert_eq!(USERS.cmpxchg(0, 7), 0);     // returns the old value
/// assert_eq!(USERS.read(), 7);
/// ```
#[doc(alias = "atomic_t")]
#[repr(transparent)]
pub struct Atomic {
    v: AtomicI32,
}

impl Atomic {
    /// `ATOMIC_INIT(i)`: a new atomic holding `i`; `const`, so it can initialize a
    /// `static`.
    #[doc(alias = "ATOMIC_INIT")]
    #[cfg(not(loom))]
    #[inline]
    pub const fn new(i: i32) -> Self {
        Atomic {
            v: AtomicI32::new(i),
        }
    }

    /// `ATOMIC_INIT(i)` (the loom model's atomics have no `const fn new`).
    #[cfg(loom)]
    pub fn new(i: i32) -> Self {
        Atomic {
            v: AtomicI32::new(i),
        }
    }

    /// Consumes the atomic and returns its value (no other thread can see it).
    #[inline]
    pub fn into_inner(self) -> i32 {
        self.v.into_inner()
    }

    /// `atomic_read(v)`: the value, read once (`READ_ONCE`); unordered.
    #[doc(alias = "atomic_read")]
    #[inline]
    pub fn read(&self) -> i32 {
        // Relaxed: atomic_read() is READ_ONCE, ordered by nothing.
        self.v.load(Ordering::Relaxed)
    }

    /// `atomic_read_acquire(v)`: the value, with acquire ordering: later memory
    /// accesses of this thread stay after it. Pairs with a release store
    /// ([`set_release`](Self::set_release) or any `_release` operation).
    #[doc(alias = "atomic_read_acquire")]
    #[inline]
    pub fn read_acquire(&self) -> i32 {
        self.v.load(Ordering::Acquire)
    }

    /// `atomic_set(v, i)`: stores `i` once (`WRITE_ONCE`); unordered.
    #[doc(alias = "atomic_set")]
    #[inline]
    pub fn set(&self, i: i32) {
        // Relaxed: atomic_set() is WRITE_ONCE, ordered by nothing.
        self.v.store(i, Ordering::Relaxed)
    }

    /// `atomic_set_release(v, i)`: stores `i` with release ordering: earlier memory
    /// accesses of this thread are visible to a thread whose acquire load
    /// ([`read_acquire`](Self::read_acquire)) reads `i`.
    #[doc(alias = "atomic_set_release")]
    #[inline]
    pub fn set_release(&self, i: i32) {
        self.v.store(i, Ordering::Release)
    }

    /// `atomic_add(i, v)`: adds `i`; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic_add")]
    #[inline]
    pub fn add(&self, i: i32) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_add(i, Ordering::Relaxed);
    }

    /// `atomic_sub(i, v)`: subtracts `i`; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic_sub")]
    #[inline]
    pub fn sub(&self, i: i32) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_sub(i, Ordering::Relaxed);
    }

    /// `atomic_inc(v)`: adds one; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic_inc")]
    #[inline]
    pub fn inc(&self) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_add(1, Ordering::Relaxed);
    }

    /// `atomic_dec(v)`: subtracts one; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic_dec")]
    #[inline]
    pub fn dec(&self) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_sub(1, Ordering::Relaxed);
    }

    /// `atomic_and(i, v)`: ands in `i`; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic_and")]
    #[inline]
    pub fn and(&self, i: i32) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_and(i, Ordering::Relaxed);
    }

    /// `atomic_or(i, v)`: ors in `i` (the old `atomic_set_mask(i, v)`); unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic_or")]
    #[doc(alias = "atomic_set_mask")]
    #[inline]
    pub fn or(&self, i: i32) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_or(i, Ordering::Relaxed);
    }

    /// `atomic_xor(i, v)`: xors in `i`; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic_xor")]
    #[inline]
    pub fn xor(&self, i: i32) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_xor(i, Ordering::Relaxed);
    }

    /// `atomic_andnot(i, v)`: clears the bits of `i` (the old `atomic_clear_mask(i, v)`); unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic_andnot")]
    #[doc(alias = "atomic_clear_mask")]
    #[inline]
    pub fn andnot(&self, i: i32) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_and(!i, Ordering::Relaxed);
    }

    /// `atomic_add_return(i, v)`: adds `i`; returns the new value. Fully ordered.
    #[doc(alias = "atomic_add_return")]
    #[inline]
    pub fn add_return(&self, i: i32) -> i32 {
        self.v.fetch_add(i, Ordering::SeqCst).wrapping_add(i)
    }

    /// `atomic_add_return_relaxed(i, v)`: adds `i`; returns the new value. Unordered.
    #[doc(alias = "atomic_add_return_relaxed")]
    #[inline]
    pub fn add_return_relaxed(&self, i: i32) -> i32 {
        self.v.fetch_add(i, Ordering::Relaxed).wrapping_add(i)
    }

    /// `atomic_add_return_acquire(i, v)`: adds `i`; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_add_return_acquire")]
    #[inline]
    pub fn add_return_acquire(&self, i: i32) -> i32 {
        self.v.fetch_add(i, Ordering::Acquire).wrapping_add(i)
    }

    /// `atomic_add_return_release(i, v)`: adds `i`; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_add_return_release")]
    #[inline]
    pub fn add_return_release(&self, i: i32) -> i32 {
        self.v.fetch_add(i, Ordering::Release).wrapping_add(i)
    }

    /// `atomic_sub_return(i, v)`: subtracts `i`; returns the new value. Fully ordered.
    #[doc(alias = "atomic_sub_return")]
    #[inline]
    pub fn sub_return(&self, i: i32) -> i32 {
        self.v.fetch_sub(i, Ordering::SeqCst).wrapping_sub(i)
    }

    /// `atomic_sub_return_relaxed(i, v)`: subtracts `i`; returns the new value. Unordered.
    #[doc(alias = "atomic_sub_return_relaxed")]
    #[inline]
    pub fn sub_return_relaxed(&self, i: i32) -> i32 {
        self.v.fetch_sub(i, Ordering::Relaxed).wrapping_sub(i)
    }

    /// `atomic_sub_return_acquire(i, v)`: subtracts `i`; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_sub_return_acquire")]
    #[inline]
    pub fn sub_return_acquire(&self, i: i32) -> i32 {
        self.v.fetch_sub(i, Ordering::Acquire).wrapping_sub(i)
    }

    /// `atomic_sub_return_release(i, v)`: subtracts `i`; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_sub_return_release")]
    #[inline]
    pub fn sub_return_release(&self, i: i32) -> i32 {
        self.v.fetch_sub(i, Ordering::Release).wrapping_sub(i)
    }

    /// `atomic_inc_return(v)`: adds one; returns the new value. Fully ordered.
    #[doc(alias = "atomic_inc_return")]
    #[inline]
    pub fn inc_return(&self) -> i32 {
        self.v.fetch_add(1, Ordering::SeqCst).wrapping_add(1)
    }

    /// `atomic_inc_return_relaxed(v)`: adds one; returns the new value. Unordered.
    #[doc(alias = "atomic_inc_return_relaxed")]
    #[inline]
    pub fn inc_return_relaxed(&self) -> i32 {
        self.v.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    /// `atomic_inc_return_acquire(v)`: adds one; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_inc_return_acquire")]
    #[inline]
    pub fn inc_return_acquire(&self) -> i32 {
        self.v.fetch_add(1, Ordering::Acquire).wrapping_add(1)
    }

    /// `atomic_inc_return_release(v)`: adds one; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_inc_return_release")]
    #[inline]
    pub fn inc_return_release(&self) -> i32 {
        self.v.fetch_add(1, Ordering::Release).wrapping_add(1)
    }

    /// `atomic_dec_return(v)`: subtracts one; returns the new value. Fully ordered.
    #[doc(alias = "atomic_dec_return")]
    #[inline]
    pub fn dec_return(&self) -> i32 {
        self.v.fetch_sub(1, Ordering::SeqCst).wrapping_sub(1)
    }

    /// `atomic_dec_return_relaxed(v)`: subtracts one; returns the new value. Unordered.
    #[doc(alias = "atomic_dec_return_relaxed")]
    #[inline]
    pub fn dec_return_relaxed(&self) -> i32 {
        self.v.fetch_sub(1, Ordering::Relaxed).wrapping_sub(1)
    }

    /// `atomic_dec_return_acquire(v)`: subtracts one; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_dec_return_acquire")]
    #[inline]
    pub fn dec_return_acquire(&self) -> i32 {
        self.v.fetch_sub(1, Ordering::Acquire).wrapping_sub(1)
    }

    /// `atomic_dec_return_release(v)`: subtracts one; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_dec_return_release")]
    #[inline]
    pub fn dec_return_release(&self) -> i32 {
        self.v.fetch_sub(1, Ordering::Release).wrapping_sub(1)
    }

    /// `atomic_fetch_add(i, v)`: adds `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic_fetch_add")]
    #[inline]
    pub fn fetch_add(&self, i: i32) -> i32 {
        self.v.fetch_add(i, Ordering::SeqCst)
    }

    /// `atomic_fetch_add_relaxed(i, v)`: adds `i`; returns the old value. Unordered.
    #[doc(alias = "atomic_fetch_add_relaxed")]
    #[inline]
    pub fn fetch_add_relaxed(&self, i: i32) -> i32 {
        self.v.fetch_add(i, Ordering::Relaxed)
    }

    /// `atomic_fetch_add_acquire(i, v)`: adds `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_fetch_add_acquire")]
    #[inline]
    pub fn fetch_add_acquire(&self, i: i32) -> i32 {
        self.v.fetch_add(i, Ordering::Acquire)
    }

    /// `atomic_fetch_add_release(i, v)`: adds `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_fetch_add_release")]
    #[inline]
    pub fn fetch_add_release(&self, i: i32) -> i32 {
        self.v.fetch_add(i, Ordering::Release)
    }

    /// `atomic_fetch_sub(i, v)`: subtracts `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic_fetch_sub")]
    #[inline]
    pub fn fetch_sub(&self, i: i32) -> i32 {
        self.v.fetch_sub(i, Ordering::SeqCst)
    }

    /// `atomic_fetch_sub_relaxed(i, v)`: subtracts `i`; returns the old value. Unordered.
    #[doc(alias = "atomic_fetch_sub_relaxed")]
    #[inline]
    pub fn fetch_sub_relaxed(&self, i: i32) -> i32 {
        self.v.fetch_sub(i, Ordering::Relaxed)
    }

    /// `atomic_fetch_sub_acquire(i, v)`: subtracts `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_fetch_sub_acquire")]
    #[inline]
    pub fn fetch_sub_acquire(&self, i: i32) -> i32 {
        self.v.fetch_sub(i, Ordering::Acquire)
    }

    /// `atomic_fetch_sub_release(i, v)`: subtracts `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_fetch_sub_release")]
    #[inline]
    pub fn fetch_sub_release(&self, i: i32) -> i32 {
        self.v.fetch_sub(i, Ordering::Release)
    }

    /// `atomic_fetch_inc(v)`: adds one; returns the old value. Fully ordered.
    #[doc(alias = "atomic_fetch_inc")]
    #[inline]
    pub fn fetch_inc(&self) -> i32 {
        self.v.fetch_add(1, Ordering::SeqCst)
    }

    /// `atomic_fetch_inc_relaxed(v)`: adds one; returns the old value. Unordered.
    #[doc(alias = "atomic_fetch_inc_relaxed")]
    #[inline]
    pub fn fetch_inc_relaxed(&self) -> i32 {
        self.v.fetch_add(1, Ordering::Relaxed)
    }

    /// `atomic_fetch_inc_acquire(v)`: adds one; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_fetch_inc_acquire")]
    #[inline]
    pub fn fetch_inc_acquire(&self) -> i32 {
        self.v.fetch_add(1, Ordering::Acquire)
    }

    /// `atomic_fetch_inc_release(v)`: adds one; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_fetch_inc_release")]
    #[inline]
    pub fn fetch_inc_release(&self) -> i32 {
        self.v.fetch_add(1, Ordering::Release)
    }

    /// `atomic_fetch_dec(v)`: subtracts one; returns the old value. Fully ordered.
    #[doc(alias = "atomic_fetch_dec")]
    #[inline]
    pub fn fetch_dec(&self) -> i32 {
        self.v.fetch_sub(1, Ordering::SeqCst)
    }

    /// `atomic_fetch_dec_relaxed(v)`: subtracts one; returns the old value. Unordered.
    #[doc(alias = "atomic_fetch_dec_relaxed")]
    #[inline]
    pub fn fetch_dec_relaxed(&self) -> i32 {
        self.v.fetch_sub(1, Ordering::Relaxed)
    }

    /// `atomic_fetch_dec_acquire(v)`: subtracts one; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_fetch_dec_acquire")]
    #[inline]
    pub fn fetch_dec_acquire(&self) -> i32 {
        self.v.fetch_sub(1, Ordering::Acquire)
    }

    /// `atomic_fetch_dec_release(v)`: subtracts one; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_fetch_dec_release")]
    #[inline]
    pub fn fetch_dec_release(&self) -> i32 {
        self.v.fetch_sub(1, Ordering::Release)
    }

    /// `atomic_fetch_and(i, v)`: ands in `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic_fetch_and")]
    #[inline]
    pub fn fetch_and(&self, i: i32) -> i32 {
        self.v.fetch_and(i, Ordering::SeqCst)
    }

    /// `atomic_fetch_and_relaxed(i, v)`: ands in `i`; returns the old value. Unordered.
    #[doc(alias = "atomic_fetch_and_relaxed")]
    #[inline]
    pub fn fetch_and_relaxed(&self, i: i32) -> i32 {
        self.v.fetch_and(i, Ordering::Relaxed)
    }

    /// `atomic_fetch_and_acquire(i, v)`: ands in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_fetch_and_acquire")]
    #[inline]
    pub fn fetch_and_acquire(&self, i: i32) -> i32 {
        self.v.fetch_and(i, Ordering::Acquire)
    }

    /// `atomic_fetch_and_release(i, v)`: ands in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_fetch_and_release")]
    #[inline]
    pub fn fetch_and_release(&self, i: i32) -> i32 {
        self.v.fetch_and(i, Ordering::Release)
    }

    /// `atomic_fetch_or(i, v)`: ors in `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic_fetch_or")]
    #[inline]
    pub fn fetch_or(&self, i: i32) -> i32 {
        self.v.fetch_or(i, Ordering::SeqCst)
    }

    /// `atomic_fetch_or_relaxed(i, v)`: ors in `i`; returns the old value. Unordered.
    #[doc(alias = "atomic_fetch_or_relaxed")]
    #[inline]
    pub fn fetch_or_relaxed(&self, i: i32) -> i32 {
        self.v.fetch_or(i, Ordering::Relaxed)
    }

    /// `atomic_fetch_or_acquire(i, v)`: ors in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_fetch_or_acquire")]
    #[inline]
    pub fn fetch_or_acquire(&self, i: i32) -> i32 {
        self.v.fetch_or(i, Ordering::Acquire)
    }

    /// `atomic_fetch_or_release(i, v)`: ors in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_fetch_or_release")]
    #[inline]
    pub fn fetch_or_release(&self, i: i32) -> i32 {
        self.v.fetch_or(i, Ordering::Release)
    }

    /// `atomic_fetch_xor(i, v)`: xors in `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic_fetch_xor")]
    #[inline]
    pub fn fetch_xor(&self, i: i32) -> i32 {
        self.v.fetch_xor(i, Ordering::SeqCst)
    }

    /// `atomic_fetch_xor_relaxed(i, v)`: xors in `i`; returns the old value. Unordered.
    #[doc(alias = "atomic_fetch_xor_relaxed")]
    #[inline]
    pub fn fetch_xor_relaxed(&self, i: i32) -> i32 {
        self.v.fetch_xor(i, Ordering::Relaxed)
    }

    /// `atomic_fetch_xor_acquire(i, v)`: xors in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_fetch_xor_acquire")]
    #[inline]
    pub fn fetch_xor_acquire(&self, i: i32) -> i32 {
        self.v.fetch_xor(i, Ordering::Acquire)
    }

    /// `atomic_fetch_xor_release(i, v)`: xors in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_fetch_xor_release")]
    #[inline]
    pub fn fetch_xor_release(&self, i: i32) -> i32 {
        self.v.fetch_xor(i, Ordering::Release)
    }

    /// `atomic_fetch_andnot(i, v)`: clears the bits of `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic_fetch_andnot")]
    #[inline]
    pub fn fetch_andnot(&self, i: i32) -> i32 {
        self.v.fetch_and(!i, Ordering::SeqCst)
    }

    /// `atomic_fetch_andnot_relaxed(i, v)`: clears the bits of `i`; returns the old value. Unordered.
    #[doc(alias = "atomic_fetch_andnot_relaxed")]
    #[inline]
    pub fn fetch_andnot_relaxed(&self, i: i32) -> i32 {
        self.v.fetch_and(!i, Ordering::Relaxed)
    }

    /// `atomic_fetch_andnot_acquire(i, v)`: clears the bits of `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_fetch_andnot_acquire")]
    #[inline]
    pub fn fetch_andnot_acquire(&self, i: i32) -> i32 {
        self.v.fetch_and(!i, Ordering::Acquire)
    }

    /// `atomic_fetch_andnot_release(i, v)`: clears the bits of `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_fetch_andnot_release")]
    #[inline]
    pub fn fetch_andnot_release(&self, i: i32) -> i32 {
        self.v.fetch_and(!i, Ordering::Release)
    }

    /// `atomic_xchg(v, new)`: stores `new`; returns the old value. Fully ordered.
    #[doc(alias = "atomic_xchg")]
    #[inline]
    pub fn xchg(&self, new: i32) -> i32 {
        self.v.swap(new, Ordering::SeqCst)
    }

    /// `atomic_xchg_relaxed(v, new)`: stores `new`; returns the old value. Unordered.
    #[doc(alias = "atomic_xchg_relaxed")]
    #[inline]
    pub fn xchg_relaxed(&self, new: i32) -> i32 {
        self.v.swap(new, Ordering::Relaxed)
    }

    /// `atomic_xchg_acquire(v, new)`: stores `new`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_xchg_acquire")]
    #[inline]
    pub fn xchg_acquire(&self, new: i32) -> i32 {
        self.v.swap(new, Ordering::Acquire)
    }

    /// `atomic_xchg_release(v, new)`: stores `new`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_xchg_release")]
    #[inline]
    pub fn xchg_release(&self, new: i32) -> i32 {
        self.v.swap(new, Ordering::Release)
    }

    /// `atomic_cmpxchg(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Fully ordered.
    #[doc(alias = "atomic_cmpxchg")]
    #[inline]
    pub fn cmpxchg(&self, old: i32, new: i32) -> i32 {
        match self
            .v
            .compare_exchange(old, new, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// `atomic_cmpxchg_relaxed(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Unordered.
    #[doc(alias = "atomic_cmpxchg_relaxed")]
    #[inline]
    pub fn cmpxchg_relaxed(&self, old: i32, new: i32) -> i32 {
        match self
            .v
            .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// `atomic_cmpxchg_acquire(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_cmpxchg_acquire")]
    #[inline]
    pub fn cmpxchg_acquire(&self, old: i32, new: i32) -> i32 {
        match self
            .v
            .compare_exchange(old, new, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// `atomic_cmpxchg_release(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_cmpxchg_release")]
    #[inline]
    pub fn cmpxchg_release(&self, old: i32, new: i32) -> i32 {
        match self
            .v
            .compare_exchange(old, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// `atomic_try_cmpxchg(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Fully ordered.
    #[doc(alias = "atomic_try_cmpxchg")]
    #[inline]
    pub fn try_cmpxchg(&self, old: &mut i32, new: i32) -> bool {
        match self
            .v
            .compare_exchange(*old, new, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => {
                *old = now;
                false
            }
        }
    }

    /// `atomic_try_cmpxchg_relaxed(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Unordered.
    #[doc(alias = "atomic_try_cmpxchg_relaxed")]
    #[inline]
    pub fn try_cmpxchg_relaxed(&self, old: &mut i32, new: i32) -> bool {
        match self
            .v
            .compare_exchange(*old, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => {
                *old = now;
                false
            }
        }
    }

    /// `atomic_try_cmpxchg_acquire(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic_try_cmpxchg_acquire")]
    #[inline]
    pub fn try_cmpxchg_acquire(&self, old: &mut i32, new: i32) -> bool {
        match self
            .v
            .compare_exchange(*old, new, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => {
                *old = now;
                false
            }
        }
    }

    /// `atomic_try_cmpxchg_release(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic_try_cmpxchg_release")]
    #[inline]
    pub fn try_cmpxchg_release(&self, old: &mut i32, new: i32) -> bool {
        match self
            .v
            .compare_exchange(*old, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => {
                *old = now;
                false
            }
        }
    }

    /// `atomic_sub_and_test(i, v)`: subtracts `i`; returns whether the result is zero.
    /// Fully ordered.
    #[doc(alias = "atomic_sub_and_test")]
    #[inline]
    pub fn sub_and_test(&self, i: i32) -> bool {
        self.v.fetch_sub(i, Ordering::SeqCst) == i
    }

    /// `atomic_dec_and_test(v)`: decrements; returns whether the result is zero.
    /// Fully ordered.
    #[doc(alias = "atomic_dec_and_test")]
    #[inline]
    pub fn dec_and_test(&self) -> bool {
        self.v.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// `atomic_inc_and_test(v)`: increments; returns whether the result is zero.
    /// Fully ordered.
    #[doc(alias = "atomic_inc_and_test")]
    #[inline]
    pub fn inc_and_test(&self) -> bool {
        self.v.fetch_add(1, Ordering::SeqCst) == -1
    }

    /// `atomic_add_negative(i, v)`: adds `i`; returns whether the result is negative.
    /// Fully ordered.
    #[doc(alias = "atomic_add_negative")]
    #[inline]
    pub fn add_negative(&self, i: i32) -> bool {
        self.v.fetch_add(i, Ordering::SeqCst).wrapping_add(i) < 0
    }

    /// `atomic_add_negative_relaxed(i, v)`: [`add_negative`](Self::add_negative),
    /// unordered.
    #[doc(alias = "atomic_add_negative_relaxed")]
    #[inline]
    pub fn add_negative_relaxed(&self, i: i32) -> bool {
        self.v.fetch_add(i, Ordering::Relaxed).wrapping_add(i) < 0
    }

    /// Updates the value with `f` in a compare-and-swap loop until `f` declines
    /// (returns `None`) or the swap succeeds; returns the value `f` last saw.
    /// A successful swap is fully ordered; a declined one is an unordered read.
    #[inline]
    fn update_if(&self, mut f: impl FnMut(i32) -> Option<i32>) -> Result<i32, i32> {
        let backoff = Backoff::new();
        let mut cur = self.v.load(Ordering::Relaxed);
        loop {
            let Some(new) = f(cur) else { return Err(cur) };
            // SeqCst on success: the kernel's conditional RMWs are fully ordered
            // when they store. Relaxed on failure: we only learn the new value.
            match self
                .v
                .compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(old) => return Ok(old),
                Err(now) => cur = now,
            }
            backoff.spin();
        }
    }

    /// `atomic_fetch_add_unless(v, a, u)`: adds `a` unless the value is `u`; returns
    /// the old value. Fully ordered when it adds.
    #[doc(alias = "atomic_fetch_add_unless")]
    #[inline]
    pub fn fetch_add_unless(&self, a: i32, u: i32) -> i32 {
        match self.update_if(|c| (c != u).then(|| c.wrapping_add(a))) {
            Ok(old) | Err(old) => old,
        }
    }

    /// `atomic_add_unless(v, a, u)`: adds `a` unless the value is `u`; returns
    /// whether it added. Fully ordered when it adds.
    #[doc(alias = "atomic_add_unless")]
    #[inline]
    pub fn add_unless(&self, a: i32, u: i32) -> bool {
        self.update_if(|c| (c != u).then(|| c.wrapping_add(a)))
            .is_ok()
    }

    /// `atomic_inc_not_zero(v)`: increments unless the value is zero; returns whether
    /// it incremented (the lookup-side "get a reference unless it is dying").
    /// Fully ordered when it increments.
    #[doc(alias = "atomic_inc_not_zero")]
    #[inline]
    pub fn inc_not_zero(&self) -> bool {
        self.add_unless(1, 0)
    }

    /// `atomic_inc_unless_negative(v)`: increments unless the value is negative;
    /// returns whether it incremented. Fully ordered when it increments.
    #[doc(alias = "atomic_inc_unless_negative")]
    #[inline]
    pub fn inc_unless_negative(&self) -> bool {
        self.update_if(|c| (c >= 0).then(|| c.wrapping_add(1)))
            .is_ok()
    }

    /// `atomic_dec_unless_positive(v)`: decrements unless the value is positive;
    /// returns whether it decremented. Fully ordered when it decrements.
    #[doc(alias = "atomic_dec_unless_positive")]
    #[inline]
    pub fn dec_unless_positive(&self) -> bool {
        self.update_if(|c| (c <= 0).then(|| c.wrapping_sub(1)))
            .is_ok()
    }

    /// `atomic_dec_if_positive(v)`: decrements if the result stays `>= 0`; returns
    /// the old value minus one either way (negative: nothing was done). Fully
    /// ordered when it decrements.
    #[doc(alias = "atomic_dec_if_positive")]
    #[inline]
    pub fn dec_if_positive(&self) -> i32 {
        match self.update_if(|c| {
            let d = c.wrapping_sub(1);
            (d >= 0).then_some(d)
        }) {
            Ok(old) | Err(old) => old.wrapping_sub(1),
        }
    }
}

impl Default for Atomic {
    /// Zero.
    fn default() -> Self {
        Self::new(0)
    }
}

impl From<i32> for Atomic {
    fn from(i: i32) -> Self {
        Self::new(i)
    }
}

impl fmt::Debug for Atomic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Atomic").field(&self.read()).finish()
    }
}

/// `atomic64_t`: a 64-bit signed integer that admits only atomic operations.
///
/// Value-returning read-modify-write operations are fully ordered, void ones are
/// unordered, and each value-returning operation also comes in `_relaxed`,
/// `_acquire` and `_release` forms — the kernel's rules, see the
/// [module docs](crate::atomic). Every method is named after the kernel's
/// `atomic64_<op>()` and carries that name as a doc alias.
///
/// ```
/// use ksync::atomic::Atomic64;
///
/// static USERS: Atomic64 = Atomic64::new(0); // ATOMIC64_INIT(0)
///
/// USERS.inc();                            // atomic64_inc(&users)
/// assert_eq!(USERS.add_return(2), 3);     // atomic64_add_return(2, &users)
/// assert_eq!(USERS.fetch_sub(1), 3);      // atomic64_fetch_sub(1, &users)
/// assert!(!USERS.sub_and_test(1));        // atomic64_sub_and_test(1, &users): 1 left
/// assert!(USERS.dec_and_test());          // the last one: true at zero
/// assert!(!USERS.inc_not_zero());         // zero stays zero
/// assert_eq!(USERS.cmpxchg(0, 7), 0);     // returns the old value
/// assert_eq!(USERS.read(), 7);
/// ```
#[doc(alias = "atomic64_t")]
#[doc(alias = "atomic_long_t")]
#[repr(transparent)]
pub struct Atomic64 {
    v: AtomicI64,
}

impl Atomic64 {
    /// `ATOMIC64_INIT(i)`: a new atomic holding `i`; `const`, so it can initialize a
    /// `static`.
    #[doc(alias = "ATOMIC64_INIT")]
    #[doc(alias = "ATOMIC_LONG_INIT")]
    #[cfg(not(loom))]
    #[inline]
    pub const fn new(i: i64) -> Self {
        Atomic64 {
            v: AtomicI64::new(i),
        }
    }

    /// `ATOMIC64_INIT(i)` (the loom model's atomics have no `const fn new`).
    #[cfg(loom)]
    pub fn new(i: i64) -> Self {
        Atomic64 {
            v: AtomicI64::new(i),
        }
    }

    /// Consumes the atomic and returns its value (no other thread can see it).
    #[inline]
    pub fn into_inner(self) -> i64 {
        self.v.into_inner()
    }

    /// `atomic64_read(v)`: the value, read once (`READ_ONCE`); unordered.
    #[doc(alias = "atomic64_read")]
    #[doc(alias = "atomic_long_read")]
    #[inline]
    pub fn read(&self) -> i64 {
        // Relaxed: atomic_read() is READ_ONCE, ordered by nothing.
        self.v.load(Ordering::Relaxed)
    }

    /// `atomic64_read_acquire(v)`: the value, with acquire ordering: later memory
    /// accesses of this thread stay after it. Pairs with a release store
    /// ([`set_release`](Self::set_release) or any `_release` operation).
    #[doc(alias = "atomic64_read_acquire")]
    #[doc(alias = "atomic_long_read_acquire")]
    #[inline]
    pub fn read_acquire(&self) -> i64 {
        self.v.load(Ordering::Acquire)
    }

    /// `atomic64_set(v, i)`: stores `i` once (`WRITE_ONCE`); unordered.
    #[doc(alias = "atomic64_set")]
    #[doc(alias = "atomic_long_set")]
    #[inline]
    pub fn set(&self, i: i64) {
        // Relaxed: atomic_set() is WRITE_ONCE, ordered by nothing.
        self.v.store(i, Ordering::Relaxed)
    }

    /// `atomic64_set_release(v, i)`: stores `i` with release ordering: earlier memory
    /// accesses of this thread are visible to a thread whose acquire load
    /// ([`read_acquire`](Self::read_acquire)) reads `i`.
    #[doc(alias = "atomic64_set_release")]
    #[doc(alias = "atomic_long_set_release")]
    #[inline]
    pub fn set_release(&self, i: i64) {
        self.v.store(i, Ordering::Release)
    }

    /// `atomic64_add(i, v)`: adds `i`; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic64_add")]
    #[doc(alias = "atomic_long_add")]
    #[inline]
    pub fn add(&self, i: i64) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_add(i, Ordering::Relaxed);
    }

    /// `atomic64_sub(i, v)`: subtracts `i`; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic64_sub")]
    #[doc(alias = "atomic_long_sub")]
    #[inline]
    pub fn sub(&self, i: i64) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_sub(i, Ordering::Relaxed);
    }

    /// `atomic64_inc(v)`: adds one; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic64_inc")]
    #[doc(alias = "atomic_long_inc")]
    #[inline]
    pub fn inc(&self) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_add(1, Ordering::Relaxed);
    }

    /// `atomic64_dec(v)`: subtracts one; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic64_dec")]
    #[doc(alias = "atomic_long_dec")]
    #[inline]
    pub fn dec(&self) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_sub(1, Ordering::Relaxed);
    }

    /// `atomic64_and(i, v)`: ands in `i`; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic64_and")]
    #[doc(alias = "atomic_long_and")]
    #[inline]
    pub fn and(&self, i: i64) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_and(i, Ordering::Relaxed);
    }

    /// `atomic64_or(i, v)`: ors in `i` (the old `atomic_set_mask(i, v)`); unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic64_or")]
    #[doc(alias = "atomic_long_or")]
    #[inline]
    pub fn or(&self, i: i64) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_or(i, Ordering::Relaxed);
    }

    /// `atomic64_xor(i, v)`: xors in `i`; unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic64_xor")]
    #[doc(alias = "atomic_long_xor")]
    #[inline]
    pub fn xor(&self, i: i64) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_xor(i, Ordering::Relaxed);
    }

    /// `atomic64_andnot(i, v)`: clears the bits of `i` (the old `atomic_clear_mask(i, v)`); unordered (a void RMW, see the module docs).
    #[doc(alias = "atomic64_andnot")]
    #[doc(alias = "atomic_long_andnot")]
    #[inline]
    pub fn andnot(&self, i: i64) {
        // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
        // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
        self.v.fetch_and(!i, Ordering::Relaxed);
    }

    /// `atomic64_add_return(i, v)`: adds `i`; returns the new value. Fully ordered.
    #[doc(alias = "atomic64_add_return")]
    #[doc(alias = "atomic_long_add_return")]
    #[inline]
    pub fn add_return(&self, i: i64) -> i64 {
        self.v.fetch_add(i, Ordering::SeqCst).wrapping_add(i)
    }

    /// `atomic64_add_return_relaxed(i, v)`: adds `i`; returns the new value. Unordered.
    #[doc(alias = "atomic64_add_return_relaxed")]
    #[doc(alias = "atomic_long_add_return_relaxed")]
    #[inline]
    pub fn add_return_relaxed(&self, i: i64) -> i64 {
        self.v.fetch_add(i, Ordering::Relaxed).wrapping_add(i)
    }

    /// `atomic64_add_return_acquire(i, v)`: adds `i`; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_add_return_acquire")]
    #[doc(alias = "atomic_long_add_return_acquire")]
    #[inline]
    pub fn add_return_acquire(&self, i: i64) -> i64 {
        self.v.fetch_add(i, Ordering::Acquire).wrapping_add(i)
    }

    /// `atomic64_add_return_release(i, v)`: adds `i`; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_add_return_release")]
    #[doc(alias = "atomic_long_add_return_release")]
    #[inline]
    pub fn add_return_release(&self, i: i64) -> i64 {
        self.v.fetch_add(i, Ordering::Release).wrapping_add(i)
    }

    /// `atomic64_sub_return(i, v)`: subtracts `i`; returns the new value. Fully ordered.
    #[doc(alias = "atomic64_sub_return")]
    #[doc(alias = "atomic_long_sub_return")]
    #[inline]
    pub fn sub_return(&self, i: i64) -> i64 {
        self.v.fetch_sub(i, Ordering::SeqCst).wrapping_sub(i)
    }

    /// `atomic64_sub_return_relaxed(i, v)`: subtracts `i`; returns the new value. Unordered.
    #[doc(alias = "atomic64_sub_return_relaxed")]
    #[doc(alias = "atomic_long_sub_return_relaxed")]
    #[inline]
    pub fn sub_return_relaxed(&self, i: i64) -> i64 {
        self.v.fetch_sub(i, Ordering::Relaxed).wrapping_sub(i)
    }

    /// `atomic64_sub_return_acquire(i, v)`: subtracts `i`; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_sub_return_acquire")]
    #[doc(alias = "atomic_long_sub_return_acquire")]
    #[inline]
    pub fn sub_return_acquire(&self, i: i64) -> i64 {
        self.v.fetch_sub(i, Ordering::Acquire).wrapping_sub(i)
    }

    /// `atomic64_sub_return_release(i, v)`: subtracts `i`; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_sub_return_release")]
    #[doc(alias = "atomic_long_sub_return_release")]
    #[inline]
    pub fn sub_return_release(&self, i: i64) -> i64 {
        self.v.fetch_sub(i, Ordering::Release).wrapping_sub(i)
    }

    /// `atomic64_inc_return(v)`: adds one; returns the new value. Fully ordered.
    #[doc(alias = "atomic64_inc_return")]
    #[doc(alias = "atomic_long_inc_return")]
    #[inline]
    pub fn inc_return(&self) -> i64 {
        self.v.fetch_add(1, Ordering::SeqCst).wrapping_add(1)
    }

    /// `atomic64_inc_return_relaxed(v)`: adds one; returns the new value. Unordered.
    #[doc(alias = "atomic64_inc_return_relaxed")]
    #[doc(alias = "atomic_long_inc_return_relaxed")]
    #[inline]
    pub fn inc_return_relaxed(&self) -> i64 {
        self.v.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    /// `atomic64_inc_return_acquire(v)`: adds one; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_inc_return_acquire")]
    #[doc(alias = "atomic_long_inc_return_acquire")]
    #[inline]
    pub fn inc_return_acquire(&self) -> i64 {
        self.v.fetch_add(1, Ordering::Acquire).wrapping_add(1)
    }

    /// `atomic64_inc_return_release(v)`: adds one; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_inc_return_release")]
    #[doc(alias = "atomic_long_inc_return_release")]
    #[inline]
    pub fn inc_return_release(&self) -> i64 {
        self.v.fetch_add(1, Ordering::Release).wrapping_add(1)
    }

    /// `atomic64_dec_return(v)`: subtracts one; returns the new value. Fully ordered.
    #[doc(alias = "atomic64_dec_return")]
    #[doc(alias = "atomic_long_dec_return")]
    #[inline]
    pub fn dec_return(&self) -> i64 {
        self.v.fetch_sub(1, Ordering::SeqCst).wrapping_sub(1)
    }

    /// `atomic64_dec_return_relaxed(v)`: subtracts one; returns the new value. Unordered.
    #[doc(alias = "atomic64_dec_return_relaxed")]
    #[doc(alias = "atomic_long_dec_return_relaxed")]
    #[inline]
    pub fn dec_return_relaxed(&self) -> i64 {
        self.v.fetch_sub(1, Ordering::Relaxed).wrapping_sub(1)
    }

    /// `atomic64_dec_return_acquire(v)`: subtracts one; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_dec_return_acquire")]
    #[doc(alias = "atomic_long_dec_return_acquire")]
    #[inline]
    pub fn dec_return_acquire(&self) -> i64 {
        self.v.fetch_sub(1, Ordering::Acquire).wrapping_sub(1)
    }

    /// `atomic64_dec_return_release(v)`: subtracts one; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_dec_return_release")]
    #[doc(alias = "atomic_long_dec_return_release")]
    #[inline]
    pub fn dec_return_release(&self) -> i64 {
        self.v.fetch_sub(1, Ordering::Release).wrapping_sub(1)
    }

    /// `atomic64_fetch_add(i, v)`: adds `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_fetch_add")]
    #[doc(alias = "atomic_long_fetch_add")]
    #[inline]
    pub fn fetch_add(&self, i: i64) -> i64 {
        self.v.fetch_add(i, Ordering::SeqCst)
    }

    /// `atomic64_fetch_add_relaxed(i, v)`: adds `i`; returns the old value. Unordered.
    #[doc(alias = "atomic64_fetch_add_relaxed")]
    #[doc(alias = "atomic_long_fetch_add_relaxed")]
    #[inline]
    pub fn fetch_add_relaxed(&self, i: i64) -> i64 {
        self.v.fetch_add(i, Ordering::Relaxed)
    }

    /// `atomic64_fetch_add_acquire(i, v)`: adds `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_fetch_add_acquire")]
    #[doc(alias = "atomic_long_fetch_add_acquire")]
    #[inline]
    pub fn fetch_add_acquire(&self, i: i64) -> i64 {
        self.v.fetch_add(i, Ordering::Acquire)
    }

    /// `atomic64_fetch_add_release(i, v)`: adds `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_fetch_add_release")]
    #[doc(alias = "atomic_long_fetch_add_release")]
    #[inline]
    pub fn fetch_add_release(&self, i: i64) -> i64 {
        self.v.fetch_add(i, Ordering::Release)
    }

    /// `atomic64_fetch_sub(i, v)`: subtracts `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_fetch_sub")]
    #[doc(alias = "atomic_long_fetch_sub")]
    #[inline]
    pub fn fetch_sub(&self, i: i64) -> i64 {
        self.v.fetch_sub(i, Ordering::SeqCst)
    }

    /// `atomic64_fetch_sub_relaxed(i, v)`: subtracts `i`; returns the old value. Unordered.
    #[doc(alias = "atomic64_fetch_sub_relaxed")]
    #[doc(alias = "atomic_long_fetch_sub_relaxed")]
    #[inline]
    pub fn fetch_sub_relaxed(&self, i: i64) -> i64 {
        self.v.fetch_sub(i, Ordering::Relaxed)
    }

    /// `atomic64_fetch_sub_acquire(i, v)`: subtracts `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_fetch_sub_acquire")]
    #[doc(alias = "atomic_long_fetch_sub_acquire")]
    #[inline]
    pub fn fetch_sub_acquire(&self, i: i64) -> i64 {
        self.v.fetch_sub(i, Ordering::Acquire)
    }

    /// `atomic64_fetch_sub_release(i, v)`: subtracts `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_fetch_sub_release")]
    #[doc(alias = "atomic_long_fetch_sub_release")]
    #[inline]
    pub fn fetch_sub_release(&self, i: i64) -> i64 {
        self.v.fetch_sub(i, Ordering::Release)
    }

    /// `atomic64_fetch_inc(v)`: adds one; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_fetch_inc")]
    #[doc(alias = "atomic_long_fetch_inc")]
    #[inline]
    pub fn fetch_inc(&self) -> i64 {
        self.v.fetch_add(1, Ordering::SeqCst)
    }

    /// `atomic64_fetch_inc_relaxed(v)`: adds one; returns the old value. Unordered.
    #[doc(alias = "atomic64_fetch_inc_relaxed")]
    #[doc(alias = "atomic_long_fetch_inc_relaxed")]
    #[inline]
    pub fn fetch_inc_relaxed(&self) -> i64 {
        self.v.fetch_add(1, Ordering::Relaxed)
    }

    /// `atomic64_fetch_inc_acquire(v)`: adds one; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_fetch_inc_acquire")]
    #[doc(alias = "atomic_long_fetch_inc_acquire")]
    #[inline]
    pub fn fetch_inc_acquire(&self) -> i64 {
        self.v.fetch_add(1, Ordering::Acquire)
    }

    /// `atomic64_fetch_inc_release(v)`: adds one; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_fetch_inc_release")]
    #[doc(alias = "atomic_long_fetch_inc_release")]
    #[inline]
    pub fn fetch_inc_release(&self) -> i64 {
        self.v.fetch_add(1, Ordering::Release)
    }

    /// `atomic64_fetch_dec(v)`: subtracts one; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_fetch_dec")]
    #[doc(alias = "atomic_long_fetch_dec")]
    #[inline]
    pub fn fetch_dec(&self) -> i64 {
        self.v.fetch_sub(1, Ordering::SeqCst)
    }

    /// `atomic64_fetch_dec_relaxed(v)`: subtracts one; returns the old value. Unordered.
    #[doc(alias = "atomic64_fetch_dec_relaxed")]
    #[doc(alias = "atomic_long_fetch_dec_relaxed")]
    #[inline]
    pub fn fetch_dec_relaxed(&self) -> i64 {
        self.v.fetch_sub(1, Ordering::Relaxed)
    }

    /// `atomic64_fetch_dec_acquire(v)`: subtracts one; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_fetch_dec_acquire")]
    #[doc(alias = "atomic_long_fetch_dec_acquire")]
    #[inline]
    pub fn fetch_dec_acquire(&self) -> i64 {
        self.v.fetch_sub(1, Ordering::Acquire)
    }

    /// `atomic64_fetch_dec_release(v)`: subtracts one; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_fetch_dec_release")]
    #[doc(alias = "atomic_long_fetch_dec_release")]
    #[inline]
    pub fn fetch_dec_release(&self) -> i64 {
        self.v.fetch_sub(1, Ordering::Release)
    }

    /// `atomic64_fetch_and(i, v)`: ands in `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_fetch_and")]
    #[doc(alias = "atomic_long_fetch_and")]
    #[inline]
    pub fn fetch_and(&self, i: i64) -> i64 {
        self.v.fetch_and(i, Ordering::SeqCst)
    }

    /// `atomic64_fetch_and_relaxed(i, v)`: ands in `i`; returns the old value. Unordered.
    #[doc(alias = "atomic64_fetch_and_relaxed")]
    #[doc(alias = "atomic_long_fetch_and_relaxed")]
    #[inline]
    pub fn fetch_and_relaxed(&self, i: i64) -> i64 {
        self.v.fetch_and(i, Ordering::Relaxed)
    }

    /// `atomic64_fetch_and_acquire(i, v)`: ands in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_fetch_and_acquire")]
    #[doc(alias = "atomic_long_fetch_and_acquire")]
    #[inline]
    pub fn fetch_and_acquire(&self, i: i64) -> i64 {
        self.v.fetch_and(i, Ordering::Acquire)
    }

    /// `atomic64_fetch_and_release(i, v)`: ands in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_fetch_and_release")]
    #[doc(alias = "atomic_long_fetch_and_release")]
    #[inline]
    pub fn fetch_and_release(&self, i: i64) -> i64 {
        self.v.fetch_and(i, Ordering::Release)
    }

    /// `atomic64_fetch_or(i, v)`: ors in `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_fetch_or")]
    #[doc(alias = "atomic_long_fetch_or")]
    #[inline]
    pub fn fetch_or(&self, i: i64) -> i64 {
        self.v.fetch_or(i, Ordering::SeqCst)
    }

    /// `atomic64_fetch_or_relaxed(i, v)`: ors in `i`; returns the old value. Unordered.
    #[doc(alias = "atomic64_fetch_or_relaxed")]
    #[doc(alias = "atomic_long_fetch_or_relaxed")]
    #[inline]
    pub fn fetch_or_relaxed(&self, i: i64) -> i64 {
        self.v.fetch_or(i, Ordering::Relaxed)
    }

    /// `atomic64_fetch_or_acquire(i, v)`: ors in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_fetch_or_acquire")]
    #[doc(alias = "atomic_long_fetch_or_acquire")]
    #[inline]
    pub fn fetch_or_acquire(&self, i: i64) -> i64 {
        self.v.fetch_or(i, Ordering::Acquire)
    }

    /// `atomic64_fetch_or_release(i, v)`: ors in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_fetch_or_release")]
    #[doc(alias = "atomic_long_fetch_or_release")]
    #[inline]
    pub fn fetch_or_release(&self, i: i64) -> i64 {
        self.v.fetch_or(i, Ordering::Release)
    }

    /// `atomic64_fetch_xor(i, v)`: xors in `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_fetch_xor")]
    #[doc(alias = "atomic_long_fetch_xor")]
    #[inline]
    pub fn fetch_xor(&self, i: i64) -> i64 {
        self.v.fetch_xor(i, Ordering::SeqCst)
    }

    /// `atomic64_fetch_xor_relaxed(i, v)`: xors in `i`; returns the old value. Unordered.
    #[doc(alias = "atomic64_fetch_xor_relaxed")]
    #[doc(alias = "atomic_long_fetch_xor_relaxed")]
    #[inline]
    pub fn fetch_xor_relaxed(&self, i: i64) -> i64 {
        self.v.fetch_xor(i, Ordering::Relaxed)
    }

    /// `atomic64_fetch_xor_acquire(i, v)`: xors in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_fetch_xor_acquire")]
    #[doc(alias = "atomic_long_fetch_xor_acquire")]
    #[inline]
    pub fn fetch_xor_acquire(&self, i: i64) -> i64 {
        self.v.fetch_xor(i, Ordering::Acquire)
    }

    /// `atomic64_fetch_xor_release(i, v)`: xors in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_fetch_xor_release")]
    #[doc(alias = "atomic_long_fetch_xor_release")]
    #[inline]
    pub fn fetch_xor_release(&self, i: i64) -> i64 {
        self.v.fetch_xor(i, Ordering::Release)
    }

    /// `atomic64_fetch_andnot(i, v)`: clears the bits of `i`; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_fetch_andnot")]
    #[doc(alias = "atomic_long_fetch_andnot")]
    #[inline]
    pub fn fetch_andnot(&self, i: i64) -> i64 {
        self.v.fetch_and(!i, Ordering::SeqCst)
    }

    /// `atomic64_fetch_andnot_relaxed(i, v)`: clears the bits of `i`; returns the old value. Unordered.
    #[doc(alias = "atomic64_fetch_andnot_relaxed")]
    #[doc(alias = "atomic_long_fetch_andnot_relaxed")]
    #[inline]
    pub fn fetch_andnot_relaxed(&self, i: i64) -> i64 {
        self.v.fetch_and(!i, Ordering::Relaxed)
    }

    /// `atomic64_fetch_andnot_acquire(i, v)`: clears the bits of `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_fetch_andnot_acquire")]
    #[doc(alias = "atomic_long_fetch_andnot_acquire")]
    #[inline]
    pub fn fetch_andnot_acquire(&self, i: i64) -> i64 {
        self.v.fetch_and(!i, Ordering::Acquire)
    }

    /// `atomic64_fetch_andnot_release(i, v)`: clears the bits of `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_fetch_andnot_release")]
    #[doc(alias = "atomic_long_fetch_andnot_release")]
    #[inline]
    pub fn fetch_andnot_release(&self, i: i64) -> i64 {
        self.v.fetch_and(!i, Ordering::Release)
    }

    /// `atomic64_xchg(v, new)`: stores `new`; returns the old value. Fully ordered.
    #[doc(alias = "atomic64_xchg")]
    #[doc(alias = "atomic_long_xchg")]
    #[inline]
    pub fn xchg(&self, new: i64) -> i64 {
        self.v.swap(new, Ordering::SeqCst)
    }

    /// `atomic64_xchg_relaxed(v, new)`: stores `new`; returns the old value. Unordered.
    #[doc(alias = "atomic64_xchg_relaxed")]
    #[doc(alias = "atomic_long_xchg_relaxed")]
    #[inline]
    pub fn xchg_relaxed(&self, new: i64) -> i64 {
        self.v.swap(new, Ordering::Relaxed)
    }

    /// `atomic64_xchg_acquire(v, new)`: stores `new`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_xchg_acquire")]
    #[doc(alias = "atomic_long_xchg_acquire")]
    #[inline]
    pub fn xchg_acquire(&self, new: i64) -> i64 {
        self.v.swap(new, Ordering::Acquire)
    }

    /// `atomic64_xchg_release(v, new)`: stores `new`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_xchg_release")]
    #[doc(alias = "atomic_long_xchg_release")]
    #[inline]
    pub fn xchg_release(&self, new: i64) -> i64 {
        self.v.swap(new, Ordering::Release)
    }

    /// `atomic64_cmpxchg(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Fully ordered.
    #[doc(alias = "atomic64_cmpxchg")]
    #[doc(alias = "atomic_long_cmpxchg")]
    #[inline]
    pub fn cmpxchg(&self, old: i64, new: i64) -> i64 {
        match self
            .v
            .compare_exchange(old, new, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// `atomic64_cmpxchg_relaxed(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Unordered.
    #[doc(alias = "atomic64_cmpxchg_relaxed")]
    #[doc(alias = "atomic_long_cmpxchg_relaxed")]
    #[inline]
    pub fn cmpxchg_relaxed(&self, old: i64, new: i64) -> i64 {
        match self
            .v
            .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// `atomic64_cmpxchg_acquire(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_cmpxchg_acquire")]
    #[doc(alias = "atomic_long_cmpxchg_acquire")]
    #[inline]
    pub fn cmpxchg_acquire(&self, old: i64, new: i64) -> i64 {
        match self
            .v
            .compare_exchange(old, new, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// `atomic64_cmpxchg_release(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_cmpxchg_release")]
    #[doc(alias = "atomic_long_cmpxchg_release")]
    #[inline]
    pub fn cmpxchg_release(&self, old: i64, new: i64) -> i64 {
        match self
            .v
            .compare_exchange(old, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// `atomic64_try_cmpxchg(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Fully ordered.
    #[doc(alias = "atomic64_try_cmpxchg")]
    #[doc(alias = "atomic_long_try_cmpxchg")]
    #[inline]
    pub fn try_cmpxchg(&self, old: &mut i64, new: i64) -> bool {
        match self
            .v
            .compare_exchange(*old, new, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => {
                *old = now;
                false
            }
        }
    }

    /// `atomic64_try_cmpxchg_relaxed(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Unordered.
    #[doc(alias = "atomic64_try_cmpxchg_relaxed")]
    #[doc(alias = "atomic_long_try_cmpxchg_relaxed")]
    #[inline]
    pub fn try_cmpxchg_relaxed(&self, old: &mut i64, new: i64) -> bool {
        match self
            .v
            .compare_exchange(*old, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => {
                *old = now;
                false
            }
        }
    }

    /// `atomic64_try_cmpxchg_acquire(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.
    #[doc(alias = "atomic64_try_cmpxchg_acquire")]
    #[doc(alias = "atomic_long_try_cmpxchg_acquire")]
    #[inline]
    pub fn try_cmpxchg_acquire(&self, old: &mut i64, new: i64) -> bool {
        match self
            .v
            .compare_exchange(*old, new, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => {
                *old = now;
                false
            }
        }
    }

    /// `atomic64_try_cmpxchg_release(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.
    #[doc(alias = "atomic64_try_cmpxchg_release")]
    #[doc(alias = "atomic_long_try_cmpxchg_release")]
    #[inline]
    pub fn try_cmpxchg_release(&self, old: &mut i64, new: i64) -> bool {
        match self
            .v
            .compare_exchange(*old, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => {
                *old = now;
                false
            }
        }
    }

    /// `atomic64_sub_and_test(i, v)`: subtracts `i`; returns whether the result is zero.
    /// Fully ordered.
    #[doc(alias = "atomic64_sub_and_test")]
    #[doc(alias = "atomic_long_sub_and_test")]
    #[inline]
    pub fn sub_and_test(&self, i: i64) -> bool {
        self.v.fetch_sub(i, Ordering::SeqCst) == i
    }

    /// `atomic64_dec_and_test(v)`: decrements; returns whether the result is zero.
    /// Fully ordered.
    #[doc(alias = "atomic64_dec_and_test")]
    #[doc(alias = "atomic_long_dec_and_test")]
    #[inline]
    pub fn dec_and_test(&self) -> bool {
        self.v.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// `atomic64_inc_and_test(v)`: increments; returns whether the result is zero.
    /// Fully ordered.
    #[doc(alias = "atomic64_inc_and_test")]
    #[doc(alias = "atomic_long_inc_and_test")]
    #[inline]
    pub fn inc_and_test(&self) -> bool {
        self.v.fetch_add(1, Ordering::SeqCst) == -1
    }

    /// `atomic64_add_negative(i, v)`: adds `i`; returns whether the result is negative.
    /// Fully ordered.
    #[doc(alias = "atomic64_add_negative")]
    #[doc(alias = "atomic_long_add_negative")]
    #[inline]
    pub fn add_negative(&self, i: i64) -> bool {
        self.v.fetch_add(i, Ordering::SeqCst).wrapping_add(i) < 0
    }

    /// `atomic64_add_negative_relaxed(i, v)`: [`add_negative`](Self::add_negative),
    /// unordered.
    #[doc(alias = "atomic64_add_negative_relaxed")]
    #[doc(alias = "atomic_long_add_negative_relaxed")]
    #[inline]
    pub fn add_negative_relaxed(&self, i: i64) -> bool {
        self.v.fetch_add(i, Ordering::Relaxed).wrapping_add(i) < 0
    }

    /// Updates the value with `f` in a compare-and-swap loop until `f` declines
    /// (returns `None`) or the swap succeeds; returns the value `f` last saw.
    /// A successful swap is fully ordered; a declined one is an unordered read.
    #[inline]
    fn update_if(&self, mut f: impl FnMut(i64) -> Option<i64>) -> Result<i64, i64> {
        let backoff = Backoff::new();
        let mut cur = self.v.load(Ordering::Relaxed);
        loop {
            let Some(new) = f(cur) else { return Err(cur) };
            // SeqCst on success: the kernel's conditional RMWs are fully ordered
            // when they store. Relaxed on failure: we only learn the new value.
            match self
                .v
                .compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(old) => return Ok(old),
                Err(now) => cur = now,
            }
            backoff.spin();
        }
    }

    /// `atomic64_fetch_add_unless(v, a, u)`: adds `a` unless the value is `u`; returns
    /// the old value. Fully ordered when it adds.
    #[doc(alias = "atomic64_fetch_add_unless")]
    #[doc(alias = "atomic_long_fetch_add_unless")]
    #[inline]
    pub fn fetch_add_unless(&self, a: i64, u: i64) -> i64 {
        match self.update_if(|c| (c != u).then(|| c.wrapping_add(a))) {
            Ok(old) | Err(old) => old,
        }
    }

    /// `atomic64_add_unless(v, a, u)`: adds `a` unless the value is `u`; returns
    /// whether it added. Fully ordered when it adds.
    #[doc(alias = "atomic64_add_unless")]
    #[doc(alias = "atomic_long_add_unless")]
    #[inline]
    pub fn add_unless(&self, a: i64, u: i64) -> bool {
        self.update_if(|c| (c != u).then(|| c.wrapping_add(a)))
            .is_ok()
    }

    /// `atomic64_inc_not_zero(v)`: increments unless the value is zero; returns whether
    /// it incremented (the lookup-side "get a reference unless it is dying").
    /// Fully ordered when it increments.
    #[doc(alias = "atomic64_inc_not_zero")]
    #[doc(alias = "atomic_long_inc_not_zero")]
    #[inline]
    pub fn inc_not_zero(&self) -> bool {
        self.add_unless(1, 0)
    }

    /// `atomic64_inc_unless_negative(v)`: increments unless the value is negative;
    /// returns whether it incremented. Fully ordered when it increments.
    #[doc(alias = "atomic64_inc_unless_negative")]
    #[doc(alias = "atomic_long_inc_unless_negative")]
    #[inline]
    pub fn inc_unless_negative(&self) -> bool {
        self.update_if(|c| (c >= 0).then(|| c.wrapping_add(1)))
            .is_ok()
    }

    /// `atomic64_dec_unless_positive(v)`: decrements unless the value is positive;
    /// returns whether it decremented. Fully ordered when it decrements.
    #[doc(alias = "atomic64_dec_unless_positive")]
    #[doc(alias = "atomic_long_dec_unless_positive")]
    #[inline]
    pub fn dec_unless_positive(&self) -> bool {
        self.update_if(|c| (c <= 0).then(|| c.wrapping_sub(1)))
            .is_ok()
    }

    /// `atomic64_dec_if_positive(v)`: decrements if the result stays `>= 0`; returns
    /// the old value minus one either way (negative: nothing was done). Fully
    /// ordered when it decrements.
    #[doc(alias = "atomic64_dec_if_positive")]
    #[doc(alias = "atomic_long_dec_if_positive")]
    #[inline]
    pub fn dec_if_positive(&self) -> i64 {
        match self.update_if(|c| {
            let d = c.wrapping_sub(1);
            (d >= 0).then_some(d)
        }) {
            Ok(old) | Err(old) => old.wrapping_sub(1),
        }
    }
}

impl Default for Atomic64 {
    /// Zero.
    fn default() -> Self {
        Self::new(0)
    }
}

impl From<i64> for Atomic64 {
    fn from(i: i64) -> Self {
        Self::new(i)
    }
}

impl fmt::Debug for Atomic64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Atomic64").field(&self.read()).finish()
    }
}

/// `atomic_long_t`: the kernel's word-sized atomic. ksync targets 64-bit Linux,
/// where `long` is 64 bits, so it is [`Atomic64`]; the `atomic_long_*` names are
/// doc aliases on its methods.
#[doc(alias = "atomic_long_t")]
pub type AtomicLong = Atomic64;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("ksync::atomic::AtomicLong assumes a 64-bit target (long = i64)");
