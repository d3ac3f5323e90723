//! `atomic_t` and `atomic64_t`/`atomic_long_t`: [`Atomic`] and [`Atomic64`].
//!
//! # One template, two widths
//!
//! Both types are stamped out of one template, the `define_atomic!` macro below,
//! much as the kernel generates its `atomic_*()`, `atomic64_*()` and
//! `atomic_long_*()` families from one table of operations
//! (`scripts/atomic/atomics.tbl`). The template holds the struct, every method
//! with its docs, and the `Default`, `From` and `Debug` impls, written once: the
//! same operations, orderings and `#[inline]`s for both widths. An invocation
//! gives the type's name, the std (or loom) atomic it wraps, its integer, and
//! for every method the kernel's names for that operation at this width, e.g.
//! `read: alias("atomic64_read", "atomic_long_read")`. The first name opens the
//! method's docs; every name becomes a `#[doc(alias)]`, so a search for any C
//! spelling finds the method.
//!
//! The names are listed, not derived from a prefix, because a doc alias must be
//! a string literal and `macro_rules!` cannot build one. The template matches
//! the rows in a fixed order, one per method, so a width that leaves a method
//! out, adds one, or misspells its name does not compile: the two types cannot
//! drift apart.
//!
//! The ordering rules and what each operation compiles to are in the
//! [module docs](crate::atomic).

use crate::Backoff;
use crate::loom::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use core::fmt;

/// The name that opens a method's docs: the first of the C names that a row of
/// `define_atomic!` lists for it.
macro_rules! c_name {
    ($name:literal $(, $also:literal)*) => {
        $name
    };
}

/// The template of [`Atomic`] and [`Atomic64`]; see the module docs.
///
/// `$Atomic` is the type, `$Std` the std (or loom) atomic it wraps and `$int`
/// its integer. Each `method: alias(...)` row lists the kernel's names for that
/// method at this width, its own spelling first.
macro_rules! define_atomic {
    (
        $(#[$attr:meta])*
        pub struct $Atomic:ident { v: $Std:ident } of $int:ident;

        new: alias $new:tt,
        read: alias $read:tt,
        read_acquire: alias $read_acquire:tt,
        set: alias $set:tt,
        set_release: alias $set_release:tt,
        add: alias $add:tt,
        sub: alias $sub:tt,
        inc: alias $inc:tt,
        dec: alias $dec:tt,
        and: alias $and:tt,
        or: alias $or:tt,
        xor: alias $xor:tt,
        andnot: alias $andnot:tt,
        add_return: alias $add_return:tt,
        add_return_relaxed: alias $add_return_relaxed:tt,
        add_return_acquire: alias $add_return_acquire:tt,
        add_return_release: alias $add_return_release:tt,
        sub_return: alias $sub_return:tt,
        sub_return_relaxed: alias $sub_return_relaxed:tt,
        sub_return_acquire: alias $sub_return_acquire:tt,
        sub_return_release: alias $sub_return_release:tt,
        inc_return: alias $inc_return:tt,
        inc_return_relaxed: alias $inc_return_relaxed:tt,
        inc_return_acquire: alias $inc_return_acquire:tt,
        inc_return_release: alias $inc_return_release:tt,
        dec_return: alias $dec_return:tt,
        dec_return_relaxed: alias $dec_return_relaxed:tt,
        dec_return_acquire: alias $dec_return_acquire:tt,
        dec_return_release: alias $dec_return_release:tt,
        fetch_add: alias $fetch_add:tt,
        fetch_add_relaxed: alias $fetch_add_relaxed:tt,
        fetch_add_acquire: alias $fetch_add_acquire:tt,
        fetch_add_release: alias $fetch_add_release:tt,
        fetch_sub: alias $fetch_sub:tt,
        fetch_sub_relaxed: alias $fetch_sub_relaxed:tt,
        fetch_sub_acquire: alias $fetch_sub_acquire:tt,
        fetch_sub_release: alias $fetch_sub_release:tt,
        fetch_inc: alias $fetch_inc:tt,
        fetch_inc_relaxed: alias $fetch_inc_relaxed:tt,
        fetch_inc_acquire: alias $fetch_inc_acquire:tt,
        fetch_inc_release: alias $fetch_inc_release:tt,
        fetch_dec: alias $fetch_dec:tt,
        fetch_dec_relaxed: alias $fetch_dec_relaxed:tt,
        fetch_dec_acquire: alias $fetch_dec_acquire:tt,
        fetch_dec_release: alias $fetch_dec_release:tt,
        fetch_and: alias $fetch_and:tt,
        fetch_and_relaxed: alias $fetch_and_relaxed:tt,
        fetch_and_acquire: alias $fetch_and_acquire:tt,
        fetch_and_release: alias $fetch_and_release:tt,
        fetch_or: alias $fetch_or:tt,
        fetch_or_relaxed: alias $fetch_or_relaxed:tt,
        fetch_or_acquire: alias $fetch_or_acquire:tt,
        fetch_or_release: alias $fetch_or_release:tt,
        fetch_xor: alias $fetch_xor:tt,
        fetch_xor_relaxed: alias $fetch_xor_relaxed:tt,
        fetch_xor_acquire: alias $fetch_xor_acquire:tt,
        fetch_xor_release: alias $fetch_xor_release:tt,
        fetch_andnot: alias $fetch_andnot:tt,
        fetch_andnot_relaxed: alias $fetch_andnot_relaxed:tt,
        fetch_andnot_acquire: alias $fetch_andnot_acquire:tt,
        fetch_andnot_release: alias $fetch_andnot_release:tt,
        xchg: alias $xchg:tt,
        xchg_relaxed: alias $xchg_relaxed:tt,
        xchg_acquire: alias $xchg_acquire:tt,
        xchg_release: alias $xchg_release:tt,
        cmpxchg: alias $cmpxchg:tt,
        cmpxchg_relaxed: alias $cmpxchg_relaxed:tt,
        cmpxchg_acquire: alias $cmpxchg_acquire:tt,
        cmpxchg_release: alias $cmpxchg_release:tt,
        try_cmpxchg: alias $try_cmpxchg:tt,
        try_cmpxchg_relaxed: alias $try_cmpxchg_relaxed:tt,
        try_cmpxchg_acquire: alias $try_cmpxchg_acquire:tt,
        try_cmpxchg_release: alias $try_cmpxchg_release:tt,
        sub_and_test: alias $sub_and_test:tt,
        dec_and_test: alias $dec_and_test:tt,
        inc_and_test: alias $inc_and_test:tt,
        add_negative: alias $add_negative:tt,
        add_negative_relaxed: alias $add_negative_relaxed:tt,
        fetch_add_unless: alias $fetch_add_unless:tt,
        add_unless: alias $add_unless:tt,
        inc_not_zero: alias $inc_not_zero:tt,
        inc_unless_negative: alias $inc_unless_negative:tt,
        dec_unless_positive: alias $dec_unless_positive:tt,
        dec_if_positive: alias $dec_if_positive:tt,
    ) => {
        $(#[$attr])*
        ///
        /// Value-returning read-modify-write operations are fully ordered, void ones are
        /// unordered, and each value-returning operation also comes in `_relaxed`,
        /// `_acquire` and `_release` forms — the kernel's rules, see the
        /// [module docs](crate::atomic). Every method is named after the kernel's
        /// operation, opens its docs with the kernel's call and carries the kernel's
        /// names for it as doc aliases:
        #[doc = concat!("[`add_return`](Self::add_return) is `", c_name!$add_return, "()`.")]
        ///
        /// ```
        #[doc = concat!("use ksync::atomic::", stringify!($Atomic), ";")]
        ///
        #[doc = concat!("static USERS: ", stringify!($Atomic), " = ", stringify!($Atomic), "::new(0); // ", c_name!$new, "(0)")]
        ///
        #[doc = concat!("USERS.inc();                            // ", c_name!$inc, "(&users)")]
        #[doc = concat!("assert_eq!(USERS.add_return(2), 3);     // ", c_name!$add_return, "(2, &users)")]
        #[doc = concat!("assert_eq!(USERS.fetch_sub(1), 3);      // ", c_name!$fetch_sub, "(1, &users)")]
        #[doc = concat!("assert!(!USERS.sub_and_test(1));        // ", c_name!$sub_and_test, "(1, &users): 1 left")]
        /// assert!(USERS.dec_and_test());          // the last one: true at zero
        /// assert!(!USERS.inc_not_zero());         // zero stays zero
        /// assert_eq!(USERS.cmpxchg(0, 7), 0);     // returns the old value
        /// assert_eq!(USERS.read(), 7);
        /// ```
        #[repr(transparent)]
        pub struct $Atomic {
            v: $Std,
        }

        impl $Atomic {
            #[doc = concat!("`", c_name!$new, "(i)`: a new atomic holding `i`; `const`, so it can initialize a")]
            /// `static`.
            #[doc(alias $new)]
            #[cfg(not(loom))]
            #[inline]
            pub const fn new(i: $int) -> Self {
                Self {
                    v: $Std::new(i),
                }
            }

            #[doc = concat!("`", c_name!$new, "(i)` (the loom model's atomics have no `const fn new`).")]
            #[cfg(loom)]
            pub fn new(i: $int) -> Self {
                Self {
                    v: $Std::new(i),
                }
            }

            /// Consumes the atomic and returns its value (no other thread can see it).
            #[inline]
            pub fn into_inner(self) -> $int {
                self.v.into_inner()
            }

            #[doc = concat!("`", c_name!$read, "(v)`: the value, read once (`READ_ONCE`); unordered.")]
            #[doc(alias $read)]
            #[inline]
            pub fn read(&self) -> $int {
                // Relaxed: atomic_read() is READ_ONCE, ordered by nothing.
                self.v.load(Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$read_acquire, "(v)`: the value, with acquire ordering: later memory")]
            /// accesses of this thread stay after it. Pairs with a release store
            /// ([`set_release`](Self::set_release) or any `_release` operation).
            #[doc(alias $read_acquire)]
            #[inline]
            pub fn read_acquire(&self) -> $int {
                self.v.load(Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$set, "(v, i)`: stores `i` once (`WRITE_ONCE`); unordered.")]
            #[doc(alias $set)]
            #[inline]
            pub fn set(&self, i: $int) {
                // Relaxed: atomic_set() is WRITE_ONCE, ordered by nothing.
                self.v.store(i, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$set_release, "(v, i)`: stores `i` with release ordering: earlier memory")]
            /// accesses of this thread are visible to a thread whose acquire load
            /// ([`read_acquire`](Self::read_acquire)) reads `i`.
            #[doc(alias $set_release)]
            #[inline]
            pub fn set_release(&self, i: $int) {
                self.v.store(i, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$add, "(i, v)`: adds `i`; unordered (a void RMW, see the module docs).")]
            #[doc(alias $add)]
            #[inline]
            pub fn add(&self, i: $int) {
                // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
                // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
                self.v.fetch_add(i, Ordering::Relaxed);
            }

            #[doc = concat!("`", c_name!$sub, "(i, v)`: subtracts `i`; unordered (a void RMW, see the module docs).")]
            #[doc(alias $sub)]
            #[inline]
            pub fn sub(&self, i: $int) {
                // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
                // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
                self.v.fetch_sub(i, Ordering::Relaxed);
            }

            #[doc = concat!("`", c_name!$inc, "(v)`: adds one; unordered (a void RMW, see the module docs).")]
            #[doc(alias $inc)]
            #[inline]
            pub fn inc(&self) {
                // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
                // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
                self.v.fetch_add(1, Ordering::Relaxed);
            }

            #[doc = concat!("`", c_name!$dec, "(v)`: subtracts one; unordered (a void RMW, see the module docs).")]
            #[doc(alias $dec)]
            #[inline]
            pub fn dec(&self) {
                // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
                // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
                self.v.fetch_sub(1, Ordering::Relaxed);
            }

            #[doc = concat!("`", c_name!$and, "(i, v)`: ands in `i`; unordered (a void RMW, see the module docs).")]
            #[doc(alias $and)]
            #[inline]
            pub fn and(&self, i: $int) {
                // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
                // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
                self.v.fetch_and(i, Ordering::Relaxed);
            }

            #[doc = concat!("`", c_name!$or, "(i, v)`: ors in `i` (the old `atomic_set_mask(i, v)`); unordered (a void RMW, see the module docs).")]
            #[doc(alias $or)]
            #[inline]
            pub fn or(&self, i: $int) {
                // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
                // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
                self.v.fetch_or(i, Ordering::Relaxed);
            }

            #[doc = concat!("`", c_name!$xor, "(i, v)`: xors in `i`; unordered (a void RMW, see the module docs).")]
            #[doc(alias $xor)]
            #[inline]
            pub fn xor(&self, i: $int) {
                // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
                // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
                self.v.fetch_xor(i, Ordering::Relaxed);
            }

            #[doc = concat!("`", c_name!$andnot, "(i, v)`: clears the bits of `i` (the old `atomic_clear_mask(i, v)`); unordered (a void RMW, see the module docs).")]
            #[doc(alias $andnot)]
            #[inline]
            pub fn andnot(&self, i: $int) {
                // Relaxed: void atomic RMWs are unordered in the kernel; pair them with
                // smp_mb__before_atomic()/smp_mb__after_atomic() when order is needed.
                self.v.fetch_and(!i, Ordering::Relaxed);
            }

            #[doc = concat!("`", c_name!$add_return, "(i, v)`: adds `i`; returns the new value. Fully ordered.")]
            #[doc(alias $add_return)]
            #[inline]
            pub fn add_return(&self, i: $int) -> $int {
                self.v.fetch_add(i, Ordering::SeqCst).wrapping_add(i)
            }

            #[doc = concat!("`", c_name!$add_return_relaxed, "(i, v)`: adds `i`; returns the new value. Unordered.")]
            #[doc(alias $add_return_relaxed)]
            #[inline]
            pub fn add_return_relaxed(&self, i: $int) -> $int {
                self.v.fetch_add(i, Ordering::Relaxed).wrapping_add(i)
            }

            #[doc = concat!("`", c_name!$add_return_acquire, "(i, v)`: adds `i`; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $add_return_acquire)]
            #[inline]
            pub fn add_return_acquire(&self, i: $int) -> $int {
                self.v.fetch_add(i, Ordering::Acquire).wrapping_add(i)
            }

            #[doc = concat!("`", c_name!$add_return_release, "(i, v)`: adds `i`; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $add_return_release)]
            #[inline]
            pub fn add_return_release(&self, i: $int) -> $int {
                self.v.fetch_add(i, Ordering::Release).wrapping_add(i)
            }

            #[doc = concat!("`", c_name!$sub_return, "(i, v)`: subtracts `i`; returns the new value. Fully ordered.")]
            #[doc(alias $sub_return)]
            #[inline]
            pub fn sub_return(&self, i: $int) -> $int {
                self.v.fetch_sub(i, Ordering::SeqCst).wrapping_sub(i)
            }

            #[doc = concat!("`", c_name!$sub_return_relaxed, "(i, v)`: subtracts `i`; returns the new value. Unordered.")]
            #[doc(alias $sub_return_relaxed)]
            #[inline]
            pub fn sub_return_relaxed(&self, i: $int) -> $int {
                self.v.fetch_sub(i, Ordering::Relaxed).wrapping_sub(i)
            }

            #[doc = concat!("`", c_name!$sub_return_acquire, "(i, v)`: subtracts `i`; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $sub_return_acquire)]
            #[inline]
            pub fn sub_return_acquire(&self, i: $int) -> $int {
                self.v.fetch_sub(i, Ordering::Acquire).wrapping_sub(i)
            }

            #[doc = concat!("`", c_name!$sub_return_release, "(i, v)`: subtracts `i`; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $sub_return_release)]
            #[inline]
            pub fn sub_return_release(&self, i: $int) -> $int {
                self.v.fetch_sub(i, Ordering::Release).wrapping_sub(i)
            }

            #[doc = concat!("`", c_name!$inc_return, "(v)`: adds one; returns the new value. Fully ordered.")]
            #[doc(alias $inc_return)]
            #[inline]
            pub fn inc_return(&self) -> $int {
                self.v.fetch_add(1, Ordering::SeqCst).wrapping_add(1)
            }

            #[doc = concat!("`", c_name!$inc_return_relaxed, "(v)`: adds one; returns the new value. Unordered.")]
            #[doc(alias $inc_return_relaxed)]
            #[inline]
            pub fn inc_return_relaxed(&self) -> $int {
                self.v.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
            }

            #[doc = concat!("`", c_name!$inc_return_acquire, "(v)`: adds one; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $inc_return_acquire)]
            #[inline]
            pub fn inc_return_acquire(&self) -> $int {
                self.v.fetch_add(1, Ordering::Acquire).wrapping_add(1)
            }

            #[doc = concat!("`", c_name!$inc_return_release, "(v)`: adds one; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $inc_return_release)]
            #[inline]
            pub fn inc_return_release(&self) -> $int {
                self.v.fetch_add(1, Ordering::Release).wrapping_add(1)
            }

            #[doc = concat!("`", c_name!$dec_return, "(v)`: subtracts one; returns the new value. Fully ordered.")]
            #[doc(alias $dec_return)]
            #[inline]
            pub fn dec_return(&self) -> $int {
                self.v.fetch_sub(1, Ordering::SeqCst).wrapping_sub(1)
            }

            #[doc = concat!("`", c_name!$dec_return_relaxed, "(v)`: subtracts one; returns the new value. Unordered.")]
            #[doc(alias $dec_return_relaxed)]
            #[inline]
            pub fn dec_return_relaxed(&self) -> $int {
                self.v.fetch_sub(1, Ordering::Relaxed).wrapping_sub(1)
            }

            #[doc = concat!("`", c_name!$dec_return_acquire, "(v)`: subtracts one; returns the new value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $dec_return_acquire)]
            #[inline]
            pub fn dec_return_acquire(&self) -> $int {
                self.v.fetch_sub(1, Ordering::Acquire).wrapping_sub(1)
            }

            #[doc = concat!("`", c_name!$dec_return_release, "(v)`: subtracts one; returns the new value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $dec_return_release)]
            #[inline]
            pub fn dec_return_release(&self) -> $int {
                self.v.fetch_sub(1, Ordering::Release).wrapping_sub(1)
            }

            #[doc = concat!("`", c_name!$fetch_add, "(i, v)`: adds `i`; returns the old value. Fully ordered.")]
            #[doc(alias $fetch_add)]
            #[inline]
            pub fn fetch_add(&self, i: $int) -> $int {
                self.v.fetch_add(i, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$fetch_add_relaxed, "(i, v)`: adds `i`; returns the old value. Unordered.")]
            #[doc(alias $fetch_add_relaxed)]
            #[inline]
            pub fn fetch_add_relaxed(&self, i: $int) -> $int {
                self.v.fetch_add(i, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$fetch_add_acquire, "(i, v)`: adds `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $fetch_add_acquire)]
            #[inline]
            pub fn fetch_add_acquire(&self, i: $int) -> $int {
                self.v.fetch_add(i, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$fetch_add_release, "(i, v)`: adds `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $fetch_add_release)]
            #[inline]
            pub fn fetch_add_release(&self, i: $int) -> $int {
                self.v.fetch_add(i, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$fetch_sub, "(i, v)`: subtracts `i`; returns the old value. Fully ordered.")]
            #[doc(alias $fetch_sub)]
            #[inline]
            pub fn fetch_sub(&self, i: $int) -> $int {
                self.v.fetch_sub(i, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$fetch_sub_relaxed, "(i, v)`: subtracts `i`; returns the old value. Unordered.")]
            #[doc(alias $fetch_sub_relaxed)]
            #[inline]
            pub fn fetch_sub_relaxed(&self, i: $int) -> $int {
                self.v.fetch_sub(i, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$fetch_sub_acquire, "(i, v)`: subtracts `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $fetch_sub_acquire)]
            #[inline]
            pub fn fetch_sub_acquire(&self, i: $int) -> $int {
                self.v.fetch_sub(i, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$fetch_sub_release, "(i, v)`: subtracts `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $fetch_sub_release)]
            #[inline]
            pub fn fetch_sub_release(&self, i: $int) -> $int {
                self.v.fetch_sub(i, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$fetch_inc, "(v)`: adds one; returns the old value. Fully ordered.")]
            #[doc(alias $fetch_inc)]
            #[inline]
            pub fn fetch_inc(&self) -> $int {
                self.v.fetch_add(1, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$fetch_inc_relaxed, "(v)`: adds one; returns the old value. Unordered.")]
            #[doc(alias $fetch_inc_relaxed)]
            #[inline]
            pub fn fetch_inc_relaxed(&self) -> $int {
                self.v.fetch_add(1, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$fetch_inc_acquire, "(v)`: adds one; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $fetch_inc_acquire)]
            #[inline]
            pub fn fetch_inc_acquire(&self) -> $int {
                self.v.fetch_add(1, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$fetch_inc_release, "(v)`: adds one; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $fetch_inc_release)]
            #[inline]
            pub fn fetch_inc_release(&self) -> $int {
                self.v.fetch_add(1, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$fetch_dec, "(v)`: subtracts one; returns the old value. Fully ordered.")]
            #[doc(alias $fetch_dec)]
            #[inline]
            pub fn fetch_dec(&self) -> $int {
                self.v.fetch_sub(1, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$fetch_dec_relaxed, "(v)`: subtracts one; returns the old value. Unordered.")]
            #[doc(alias $fetch_dec_relaxed)]
            #[inline]
            pub fn fetch_dec_relaxed(&self) -> $int {
                self.v.fetch_sub(1, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$fetch_dec_acquire, "(v)`: subtracts one; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $fetch_dec_acquire)]
            #[inline]
            pub fn fetch_dec_acquire(&self) -> $int {
                self.v.fetch_sub(1, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$fetch_dec_release, "(v)`: subtracts one; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $fetch_dec_release)]
            #[inline]
            pub fn fetch_dec_release(&self) -> $int {
                self.v.fetch_sub(1, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$fetch_and, "(i, v)`: ands in `i`; returns the old value. Fully ordered.")]
            #[doc(alias $fetch_and)]
            #[inline]
            pub fn fetch_and(&self, i: $int) -> $int {
                self.v.fetch_and(i, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$fetch_and_relaxed, "(i, v)`: ands in `i`; returns the old value. Unordered.")]
            #[doc(alias $fetch_and_relaxed)]
            #[inline]
            pub fn fetch_and_relaxed(&self, i: $int) -> $int {
                self.v.fetch_and(i, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$fetch_and_acquire, "(i, v)`: ands in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $fetch_and_acquire)]
            #[inline]
            pub fn fetch_and_acquire(&self, i: $int) -> $int {
                self.v.fetch_and(i, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$fetch_and_release, "(i, v)`: ands in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $fetch_and_release)]
            #[inline]
            pub fn fetch_and_release(&self, i: $int) -> $int {
                self.v.fetch_and(i, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$fetch_or, "(i, v)`: ors in `i`; returns the old value. Fully ordered.")]
            #[doc(alias $fetch_or)]
            #[inline]
            pub fn fetch_or(&self, i: $int) -> $int {
                self.v.fetch_or(i, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$fetch_or_relaxed, "(i, v)`: ors in `i`; returns the old value. Unordered.")]
            #[doc(alias $fetch_or_relaxed)]
            #[inline]
            pub fn fetch_or_relaxed(&self, i: $int) -> $int {
                self.v.fetch_or(i, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$fetch_or_acquire, "(i, v)`: ors in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $fetch_or_acquire)]
            #[inline]
            pub fn fetch_or_acquire(&self, i: $int) -> $int {
                self.v.fetch_or(i, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$fetch_or_release, "(i, v)`: ors in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $fetch_or_release)]
            #[inline]
            pub fn fetch_or_release(&self, i: $int) -> $int {
                self.v.fetch_or(i, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$fetch_xor, "(i, v)`: xors in `i`; returns the old value. Fully ordered.")]
            #[doc(alias $fetch_xor)]
            #[inline]
            pub fn fetch_xor(&self, i: $int) -> $int {
                self.v.fetch_xor(i, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$fetch_xor_relaxed, "(i, v)`: xors in `i`; returns the old value. Unordered.")]
            #[doc(alias $fetch_xor_relaxed)]
            #[inline]
            pub fn fetch_xor_relaxed(&self, i: $int) -> $int {
                self.v.fetch_xor(i, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$fetch_xor_acquire, "(i, v)`: xors in `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $fetch_xor_acquire)]
            #[inline]
            pub fn fetch_xor_acquire(&self, i: $int) -> $int {
                self.v.fetch_xor(i, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$fetch_xor_release, "(i, v)`: xors in `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $fetch_xor_release)]
            #[inline]
            pub fn fetch_xor_release(&self, i: $int) -> $int {
                self.v.fetch_xor(i, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$fetch_andnot, "(i, v)`: clears the bits of `i`; returns the old value. Fully ordered.")]
            #[doc(alias $fetch_andnot)]
            #[inline]
            pub fn fetch_andnot(&self, i: $int) -> $int {
                self.v.fetch_and(!i, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$fetch_andnot_relaxed, "(i, v)`: clears the bits of `i`; returns the old value. Unordered.")]
            #[doc(alias $fetch_andnot_relaxed)]
            #[inline]
            pub fn fetch_andnot_relaxed(&self, i: $int) -> $int {
                self.v.fetch_and(!i, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$fetch_andnot_acquire, "(i, v)`: clears the bits of `i`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $fetch_andnot_acquire)]
            #[inline]
            pub fn fetch_andnot_acquire(&self, i: $int) -> $int {
                self.v.fetch_and(!i, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$fetch_andnot_release, "(i, v)`: clears the bits of `i`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $fetch_andnot_release)]
            #[inline]
            pub fn fetch_andnot_release(&self, i: $int) -> $int {
                self.v.fetch_and(!i, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$xchg, "(v, new)`: stores `new`; returns the old value. Fully ordered.")]
            #[doc(alias $xchg)]
            #[inline]
            pub fn xchg(&self, new: $int) -> $int {
                self.v.swap(new, Ordering::SeqCst)
            }

            #[doc = concat!("`", c_name!$xchg_relaxed, "(v, new)`: stores `new`; returns the old value. Unordered.")]
            #[doc(alias $xchg_relaxed)]
            #[inline]
            pub fn xchg_relaxed(&self, new: $int) -> $int {
                self.v.swap(new, Ordering::Relaxed)
            }

            #[doc = concat!("`", c_name!$xchg_acquire, "(v, new)`: stores `new`; returns the old value. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $xchg_acquire)]
            #[inline]
            pub fn xchg_acquire(&self, new: $int) -> $int {
                self.v.swap(new, Ordering::Acquire)
            }

            #[doc = concat!("`", c_name!$xchg_release, "(v, new)`: stores `new`; returns the old value. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $xchg_release)]
            #[inline]
            pub fn xchg_release(&self, new: $int) -> $int {
                self.v.swap(new, Ordering::Release)
            }

            #[doc = concat!("`", c_name!$cmpxchg, "(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Fully ordered.")]
            #[doc(alias $cmpxchg)]
            #[inline]
            pub fn cmpxchg(&self, old: $int, new: $int) -> $int {
                match self
                    .v
                    .compare_exchange(old, new, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(v) | Err(v) => v,
                }
            }

            #[doc = concat!("`", c_name!$cmpxchg_relaxed, "(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Unordered.")]
            #[doc(alias $cmpxchg_relaxed)]
            #[inline]
            pub fn cmpxchg_relaxed(&self, old: $int, new: $int) -> $int {
                match self
                    .v
                    .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(v) | Err(v) => v,
                }
            }

            #[doc = concat!("`", c_name!$cmpxchg_acquire, "(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $cmpxchg_acquire)]
            #[inline]
            pub fn cmpxchg_acquire(&self, old: $int, new: $int) -> $int {
                match self
                    .v
                    .compare_exchange(old, new, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(v) | Err(v) => v,
                }
            }

            #[doc = concat!("`", c_name!$cmpxchg_release, "(v, old, new)`: stores `new` if the value is `old`; returns the value it found (equal to `old` on success). A failed compare is unordered. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $cmpxchg_release)]
            #[inline]
            pub fn cmpxchg_release(&self, old: $int, new: $int) -> $int {
                match self
                    .v
                    .compare_exchange(old, new, Ordering::Release, Ordering::Relaxed)
                {
                    Ok(v) | Err(v) => v,
                }
            }

            #[doc = concat!("`", c_name!$try_cmpxchg, "(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Fully ordered.")]
            #[doc(alias $try_cmpxchg)]
            #[inline]
            pub fn try_cmpxchg(&self, old: &mut $int, new: $int) -> bool {
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

            #[doc = concat!("`", c_name!$try_cmpxchg_relaxed, "(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Unordered.")]
            #[doc(alias $try_cmpxchg_relaxed)]
            #[inline]
            pub fn try_cmpxchg_relaxed(&self, old: &mut $int, new: $int) -> bool {
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

            #[doc = concat!("`", c_name!$try_cmpxchg_acquire, "(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Acquire ordering: later accesses stay after it; pairs with a release store of the value it reads.")]
            #[doc(alias $try_cmpxchg_acquire)]
            #[inline]
            pub fn try_cmpxchg_acquire(&self, old: &mut $int, new: $int) -> bool {
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

            #[doc = concat!("`", c_name!$try_cmpxchg_release, "(v, &old, new)`: stores `new` if the value is `*old` and returns `true`; otherwise writes the value it found to `*old` and returns `false` (the loop-friendly form). A failed compare is unordered. Release ordering: earlier accesses stay before it; pairs with an acquire load that reads its store.")]
            #[doc(alias $try_cmpxchg_release)]
            #[inline]
            pub fn try_cmpxchg_release(&self, old: &mut $int, new: $int) -> bool {
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

            #[doc = concat!("`", c_name!$sub_and_test, "(i, v)`: subtracts `i`; returns whether the result is zero.")]
            /// Fully ordered.
            #[doc(alias $sub_and_test)]
            #[inline]
            pub fn sub_and_test(&self, i: $int) -> bool {
                self.v.fetch_sub(i, Ordering::SeqCst) == i
            }

            #[doc = concat!("`", c_name!$dec_and_test, "(v)`: decrements; returns whether the result is zero.")]
            /// Fully ordered.
            #[doc(alias $dec_and_test)]
            #[inline]
            pub fn dec_and_test(&self) -> bool {
                self.v.fetch_sub(1, Ordering::SeqCst) == 1
            }

            #[doc = concat!("`", c_name!$inc_and_test, "(v)`: increments; returns whether the result is zero.")]
            /// Fully ordered.
            #[doc(alias $inc_and_test)]
            #[inline]
            pub fn inc_and_test(&self) -> bool {
                self.v.fetch_add(1, Ordering::SeqCst) == -1
            }

            #[doc = concat!("`", c_name!$add_negative, "(i, v)`: adds `i`; returns whether the result is negative.")]
            /// Fully ordered.
            #[doc(alias $add_negative)]
            #[inline]
            pub fn add_negative(&self, i: $int) -> bool {
                self.v.fetch_add(i, Ordering::SeqCst).wrapping_add(i) < 0
            }

            #[doc = concat!("`", c_name!$add_negative_relaxed, "(i, v)`: [`add_negative`](Self::add_negative),")]
            /// unordered.
            #[doc(alias $add_negative_relaxed)]
            #[inline]
            pub fn add_negative_relaxed(&self, i: $int) -> bool {
                self.v.fetch_add(i, Ordering::Relaxed).wrapping_add(i) < 0
            }

            /// Updates the value with `f` in a compare-and-swap loop until `f` declines
            /// (returns `None`) or the swap succeeds; returns the value `f` last saw.
            /// A successful swap is fully ordered; a declined one is an unordered read.
            #[inline]
            fn update_if(&self, mut f: impl FnMut($int) -> Option<$int>) -> Result<$int, $int> {
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

            #[doc = concat!("`", c_name!$fetch_add_unless, "(v, a, u)`: adds `a` unless the value is `u`; returns")]
            /// the old value. Fully ordered when it adds.
            #[doc(alias $fetch_add_unless)]
            #[inline]
            pub fn fetch_add_unless(&self, a: $int, u: $int) -> $int {
                match self.update_if(|c| (c != u).then(|| c.wrapping_add(a))) {
                    Ok(old) | Err(old) => old,
                }
            }

            #[doc = concat!("`", c_name!$add_unless, "(v, a, u)`: adds `a` unless the value is `u`; returns")]
            /// whether it added. Fully ordered when it adds.
            #[doc(alias $add_unless)]
            #[inline]
            pub fn add_unless(&self, a: $int, u: $int) -> bool {
                self.update_if(|c| (c != u).then(|| c.wrapping_add(a)))
                    .is_ok()
            }

            #[doc = concat!("`", c_name!$inc_not_zero, "(v)`: increments unless the value is zero; returns whether")]
            /// it incremented (the lookup-side "get a reference unless it is dying").
            /// Fully ordered when it increments.
            #[doc(alias $inc_not_zero)]
            #[inline]
            pub fn inc_not_zero(&self) -> bool {
                self.add_unless(1, 0)
            }

            #[doc = concat!("`", c_name!$inc_unless_negative, "(v)`: increments unless the value is negative;")]
            /// returns whether it incremented. Fully ordered when it increments.
            #[doc(alias $inc_unless_negative)]
            #[inline]
            pub fn inc_unless_negative(&self) -> bool {
                self.update_if(|c| (c >= 0).then(|| c.wrapping_add(1)))
                    .is_ok()
            }

            #[doc = concat!("`", c_name!$dec_unless_positive, "(v)`: decrements unless the value is positive;")]
            /// returns whether it decremented. Fully ordered when it decrements.
            #[doc(alias $dec_unless_positive)]
            #[inline]
            pub fn dec_unless_positive(&self) -> bool {
                self.update_if(|c| (c <= 0).then(|| c.wrapping_sub(1)))
                    .is_ok()
            }

            #[doc = concat!("`", c_name!$dec_if_positive, "(v)`: decrements if the result stays `>= 0`; returns")]
            /// the old value minus one either way (negative: nothing was done). Fully
            /// ordered when it decrements.
            #[doc(alias $dec_if_positive)]
            #[inline]
            pub fn dec_if_positive(&self) -> $int {
                match self.update_if(|c| {
                    let d = c.wrapping_sub(1);
                    (d >= 0).then_some(d)
                }) {
                    Ok(old) | Err(old) => old.wrapping_sub(1),
                }
            }
        }

        impl Default for $Atomic {
            /// Zero.
            fn default() -> Self {
                Self::new(0)
            }
        }

        impl From<$int> for $Atomic {
            fn from(i: $int) -> Self {
                Self::new(i)
            }
        }

        impl fmt::Debug for $Atomic {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($Atomic)).field(&self.read()).finish()
            }
        }
    };
}

define_atomic! {
    /// `atomic_t`: a 32-bit signed integer that admits only atomic operations.
    #[doc(alias = "atomic_t")]
    pub struct Atomic { v: AtomicI32 } of i32;

    new: alias("ATOMIC_INIT"),
    read: alias("atomic_read"),
    read_acquire: alias("atomic_read_acquire"),
    set: alias("atomic_set"),
    set_release: alias("atomic_set_release"),
    add: alias("atomic_add"),
    sub: alias("atomic_sub"),
    inc: alias("atomic_inc"),
    dec: alias("atomic_dec"),
    and: alias("atomic_and"),
    or: alias("atomic_or", "atomic_set_mask"),
    xor: alias("atomic_xor"),
    andnot: alias("atomic_andnot", "atomic_clear_mask"),
    add_return: alias("atomic_add_return"),
    add_return_relaxed: alias("atomic_add_return_relaxed"),
    add_return_acquire: alias("atomic_add_return_acquire"),
    add_return_release: alias("atomic_add_return_release"),
    sub_return: alias("atomic_sub_return"),
    sub_return_relaxed: alias("atomic_sub_return_relaxed"),
    sub_return_acquire: alias("atomic_sub_return_acquire"),
    sub_return_release: alias("atomic_sub_return_release"),
    inc_return: alias("atomic_inc_return"),
    inc_return_relaxed: alias("atomic_inc_return_relaxed"),
    inc_return_acquire: alias("atomic_inc_return_acquire"),
    inc_return_release: alias("atomic_inc_return_release"),
    dec_return: alias("atomic_dec_return"),
    dec_return_relaxed: alias("atomic_dec_return_relaxed"),
    dec_return_acquire: alias("atomic_dec_return_acquire"),
    dec_return_release: alias("atomic_dec_return_release"),
    fetch_add: alias("atomic_fetch_add"),
    fetch_add_relaxed: alias("atomic_fetch_add_relaxed"),
    fetch_add_acquire: alias("atomic_fetch_add_acquire"),
    fetch_add_release: alias("atomic_fetch_add_release"),
    fetch_sub: alias("atomic_fetch_sub"),
    fetch_sub_relaxed: alias("atomic_fetch_sub_relaxed"),
    fetch_sub_acquire: alias("atomic_fetch_sub_acquire"),
    fetch_sub_release: alias("atomic_fetch_sub_release"),
    fetch_inc: alias("atomic_fetch_inc"),
    fetch_inc_relaxed: alias("atomic_fetch_inc_relaxed"),
    fetch_inc_acquire: alias("atomic_fetch_inc_acquire"),
    fetch_inc_release: alias("atomic_fetch_inc_release"),
    fetch_dec: alias("atomic_fetch_dec"),
    fetch_dec_relaxed: alias("atomic_fetch_dec_relaxed"),
    fetch_dec_acquire: alias("atomic_fetch_dec_acquire"),
    fetch_dec_release: alias("atomic_fetch_dec_release"),
    fetch_and: alias("atomic_fetch_and"),
    fetch_and_relaxed: alias("atomic_fetch_and_relaxed"),
    fetch_and_acquire: alias("atomic_fetch_and_acquire"),
    fetch_and_release: alias("atomic_fetch_and_release"),
    fetch_or: alias("atomic_fetch_or"),
    fetch_or_relaxed: alias("atomic_fetch_or_relaxed"),
    fetch_or_acquire: alias("atomic_fetch_or_acquire"),
    fetch_or_release: alias("atomic_fetch_or_release"),
    fetch_xor: alias("atomic_fetch_xor"),
    fetch_xor_relaxed: alias("atomic_fetch_xor_relaxed"),
    fetch_xor_acquire: alias("atomic_fetch_xor_acquire"),
    fetch_xor_release: alias("atomic_fetch_xor_release"),
    fetch_andnot: alias("atomic_fetch_andnot"),
    fetch_andnot_relaxed: alias("atomic_fetch_andnot_relaxed"),
    fetch_andnot_acquire: alias("atomic_fetch_andnot_acquire"),
    fetch_andnot_release: alias("atomic_fetch_andnot_release"),
    xchg: alias("atomic_xchg"),
    xchg_relaxed: alias("atomic_xchg_relaxed"),
    xchg_acquire: alias("atomic_xchg_acquire"),
    xchg_release: alias("atomic_xchg_release"),
    cmpxchg: alias("atomic_cmpxchg"),
    cmpxchg_relaxed: alias("atomic_cmpxchg_relaxed"),
    cmpxchg_acquire: alias("atomic_cmpxchg_acquire"),
    cmpxchg_release: alias("atomic_cmpxchg_release"),
    try_cmpxchg: alias("atomic_try_cmpxchg"),
    try_cmpxchg_relaxed: alias("atomic_try_cmpxchg_relaxed"),
    try_cmpxchg_acquire: alias("atomic_try_cmpxchg_acquire"),
    try_cmpxchg_release: alias("atomic_try_cmpxchg_release"),
    sub_and_test: alias("atomic_sub_and_test"),
    dec_and_test: alias("atomic_dec_and_test"),
    inc_and_test: alias("atomic_inc_and_test"),
    add_negative: alias("atomic_add_negative"),
    add_negative_relaxed: alias("atomic_add_negative_relaxed"),
    fetch_add_unless: alias("atomic_fetch_add_unless"),
    add_unless: alias("atomic_add_unless"),
    inc_not_zero: alias("atomic_inc_not_zero"),
    inc_unless_negative: alias("atomic_inc_unless_negative"),
    dec_unless_positive: alias("atomic_dec_unless_positive"),
    dec_if_positive: alias("atomic_dec_if_positive"),
}

// `atomic64_t` and `atomic_long_t` are one type on 64-bit Linux (see
// `AtomicLong` below), so each row names the operation in both families.
define_atomic! {
    /// `atomic64_t`: a 64-bit signed integer that admits only atomic operations.
    #[doc(alias = "atomic64_t")]
    #[doc(alias = "atomic_long_t")]
    pub struct Atomic64 { v: AtomicI64 } of i64;

    new: alias("ATOMIC64_INIT", "ATOMIC_LONG_INIT"),
    read: alias("atomic64_read", "atomic_long_read"),
    read_acquire: alias("atomic64_read_acquire", "atomic_long_read_acquire"),
    set: alias("atomic64_set", "atomic_long_set"),
    set_release: alias("atomic64_set_release", "atomic_long_set_release"),
    add: alias("atomic64_add", "atomic_long_add"),
    sub: alias("atomic64_sub", "atomic_long_sub"),
    inc: alias("atomic64_inc", "atomic_long_inc"),
    dec: alias("atomic64_dec", "atomic_long_dec"),
    and: alias("atomic64_and", "atomic_long_and"),
    or: alias("atomic64_or", "atomic_long_or"),
    xor: alias("atomic64_xor", "atomic_long_xor"),
    andnot: alias("atomic64_andnot", "atomic_long_andnot"),
    add_return: alias("atomic64_add_return", "atomic_long_add_return"),
    add_return_relaxed: alias("atomic64_add_return_relaxed", "atomic_long_add_return_relaxed"),
    add_return_acquire: alias("atomic64_add_return_acquire", "atomic_long_add_return_acquire"),
    add_return_release: alias("atomic64_add_return_release", "atomic_long_add_return_release"),
    sub_return: alias("atomic64_sub_return", "atomic_long_sub_return"),
    sub_return_relaxed: alias("atomic64_sub_return_relaxed", "atomic_long_sub_return_relaxed"),
    sub_return_acquire: alias("atomic64_sub_return_acquire", "atomic_long_sub_return_acquire"),
    sub_return_release: alias("atomic64_sub_return_release", "atomic_long_sub_return_release"),
    inc_return: alias("atomic64_inc_return", "atomic_long_inc_return"),
    inc_return_relaxed: alias("atomic64_inc_return_relaxed", "atomic_long_inc_return_relaxed"),
    inc_return_acquire: alias("atomic64_inc_return_acquire", "atomic_long_inc_return_acquire"),
    inc_return_release: alias("atomic64_inc_return_release", "atomic_long_inc_return_release"),
    dec_return: alias("atomic64_dec_return", "atomic_long_dec_return"),
    dec_return_relaxed: alias("atomic64_dec_return_relaxed", "atomic_long_dec_return_relaxed"),
    dec_return_acquire: alias("atomic64_dec_return_acquire", "atomic_long_dec_return_acquire"),
    dec_return_release: alias("atomic64_dec_return_release", "atomic_long_dec_return_release"),
    fetch_add: alias("atomic64_fetch_add", "atomic_long_fetch_add"),
    fetch_add_relaxed: alias("atomic64_fetch_add_relaxed", "atomic_long_fetch_add_relaxed"),
    fetch_add_acquire: alias("atomic64_fetch_add_acquire", "atomic_long_fetch_add_acquire"),
    fetch_add_release: alias("atomic64_fetch_add_release", "atomic_long_fetch_add_release"),
    fetch_sub: alias("atomic64_fetch_sub", "atomic_long_fetch_sub"),
    fetch_sub_relaxed: alias("atomic64_fetch_sub_relaxed", "atomic_long_fetch_sub_relaxed"),
    fetch_sub_acquire: alias("atomic64_fetch_sub_acquire", "atomic_long_fetch_sub_acquire"),
    fetch_sub_release: alias("atomic64_fetch_sub_release", "atomic_long_fetch_sub_release"),
    fetch_inc: alias("atomic64_fetch_inc", "atomic_long_fetch_inc"),
    fetch_inc_relaxed: alias("atomic64_fetch_inc_relaxed", "atomic_long_fetch_inc_relaxed"),
    fetch_inc_acquire: alias("atomic64_fetch_inc_acquire", "atomic_long_fetch_inc_acquire"),
    fetch_inc_release: alias("atomic64_fetch_inc_release", "atomic_long_fetch_inc_release"),
    fetch_dec: alias("atomic64_fetch_dec", "atomic_long_fetch_dec"),
    fetch_dec_relaxed: alias("atomic64_fetch_dec_relaxed", "atomic_long_fetch_dec_relaxed"),
    fetch_dec_acquire: alias("atomic64_fetch_dec_acquire", "atomic_long_fetch_dec_acquire"),
    fetch_dec_release: alias("atomic64_fetch_dec_release", "atomic_long_fetch_dec_release"),
    fetch_and: alias("atomic64_fetch_and", "atomic_long_fetch_and"),
    fetch_and_relaxed: alias("atomic64_fetch_and_relaxed", "atomic_long_fetch_and_relaxed"),
    fetch_and_acquire: alias("atomic64_fetch_and_acquire", "atomic_long_fetch_and_acquire"),
    fetch_and_release: alias("atomic64_fetch_and_release", "atomic_long_fetch_and_release"),
    fetch_or: alias("atomic64_fetch_or", "atomic_long_fetch_or"),
    fetch_or_relaxed: alias("atomic64_fetch_or_relaxed", "atomic_long_fetch_or_relaxed"),
    fetch_or_acquire: alias("atomic64_fetch_or_acquire", "atomic_long_fetch_or_acquire"),
    fetch_or_release: alias("atomic64_fetch_or_release", "atomic_long_fetch_or_release"),
    fetch_xor: alias("atomic64_fetch_xor", "atomic_long_fetch_xor"),
    fetch_xor_relaxed: alias("atomic64_fetch_xor_relaxed", "atomic_long_fetch_xor_relaxed"),
    fetch_xor_acquire: alias("atomic64_fetch_xor_acquire", "atomic_long_fetch_xor_acquire"),
    fetch_xor_release: alias("atomic64_fetch_xor_release", "atomic_long_fetch_xor_release"),
    fetch_andnot: alias("atomic64_fetch_andnot", "atomic_long_fetch_andnot"),
    fetch_andnot_relaxed: alias(
        "atomic64_fetch_andnot_relaxed",
        "atomic_long_fetch_andnot_relaxed"
    ),
    fetch_andnot_acquire: alias(
        "atomic64_fetch_andnot_acquire",
        "atomic_long_fetch_andnot_acquire"
    ),
    fetch_andnot_release: alias(
        "atomic64_fetch_andnot_release",
        "atomic_long_fetch_andnot_release"
    ),
    xchg: alias("atomic64_xchg", "atomic_long_xchg"),
    xchg_relaxed: alias("atomic64_xchg_relaxed", "atomic_long_xchg_relaxed"),
    xchg_acquire: alias("atomic64_xchg_acquire", "atomic_long_xchg_acquire"),
    xchg_release: alias("atomic64_xchg_release", "atomic_long_xchg_release"),
    cmpxchg: alias("atomic64_cmpxchg", "atomic_long_cmpxchg"),
    cmpxchg_relaxed: alias("atomic64_cmpxchg_relaxed", "atomic_long_cmpxchg_relaxed"),
    cmpxchg_acquire: alias("atomic64_cmpxchg_acquire", "atomic_long_cmpxchg_acquire"),
    cmpxchg_release: alias("atomic64_cmpxchg_release", "atomic_long_cmpxchg_release"),
    try_cmpxchg: alias("atomic64_try_cmpxchg", "atomic_long_try_cmpxchg"),
    try_cmpxchg_relaxed: alias("atomic64_try_cmpxchg_relaxed", "atomic_long_try_cmpxchg_relaxed"),
    try_cmpxchg_acquire: alias("atomic64_try_cmpxchg_acquire", "atomic_long_try_cmpxchg_acquire"),
    try_cmpxchg_release: alias("atomic64_try_cmpxchg_release", "atomic_long_try_cmpxchg_release"),
    sub_and_test: alias("atomic64_sub_and_test", "atomic_long_sub_and_test"),
    dec_and_test: alias("atomic64_dec_and_test", "atomic_long_dec_and_test"),
    inc_and_test: alias("atomic64_inc_and_test", "atomic_long_inc_and_test"),
    add_negative: alias("atomic64_add_negative", "atomic_long_add_negative"),
    add_negative_relaxed: alias(
        "atomic64_add_negative_relaxed",
        "atomic_long_add_negative_relaxed"
    ),
    fetch_add_unless: alias("atomic64_fetch_add_unless", "atomic_long_fetch_add_unless"),
    add_unless: alias("atomic64_add_unless", "atomic_long_add_unless"),
    inc_not_zero: alias("atomic64_inc_not_zero", "atomic_long_inc_not_zero"),
    inc_unless_negative: alias("atomic64_inc_unless_negative", "atomic_long_inc_unless_negative"),
    dec_unless_positive: alias("atomic64_dec_unless_positive", "atomic_long_dec_unless_positive"),
    dec_if_positive: alias("atomic64_dec_if_positive", "atomic_long_dec_if_positive"),
}

/// `atomic_long_t`: the kernel's word-sized atomic. ksync targets 64-bit Linux,
/// where `long` is 64 bits, so it is [`Atomic64`]; the `atomic_long_*` names are
/// doc aliases on its methods.
#[doc(alias = "atomic_long_t")]
pub type AtomicLong = Atomic64;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("ksync::atomic::AtomicLong assumes a 64-bit target (long = i64)");
