//! Atomics, bit operations and reference counts (SPEC §2, §3).
//!
//! | kernel | ksync | file |
//! |---|---|---|
//! | `atomic_t`, `ATOMIC_INIT`, `atomic_*()` | [`Atomic`] (`i32`), [`Atomic::new`] and its methods | `atomic.rs` |
//! | `atomic64_t`, `atomic_long_t`, `atomic64_*()`, `atomic_long_*()` | [`Atomic64`] = [`AtomicLong`] (`i64`) | `atomic.rs` |
//! | `DECLARE_BITMAP`, `bitmap_zalloc`, `set_bit` … `find_next_bit`, `for_each_set_bit` | [`StaticBitmap`] / [`declare_bitmap!`](crate::declare_bitmap), [`Bitmap`] | `bitops.rs` |
//! | bitops on one `unsigned long`, `atomic_set_mask`/`atomic_clear_mask` | [`BitOps`] on `AtomicUsize`/`AtomicU32`/`AtomicU64` | `bitops.rs` |
//! | `bit_spin_lock`/`bit_spin_unlock` | [`Bitmap::bit_spin_lock`], [`BitSpinLock`] → [`BitSpinGuard`] | `bitops.rs` |
//! | `refcount_t`, `refcount_*()` | [`Refcount`] | `refcount.rs` |
//! | `struct kref`, `kref_get`, `kref_put` | [`Kref`] | `refcount.rs` |
//!
//! The ordering of every operation follows the kernel (Documentation/atomic_t.txt,
//! Documentation/atomic_bitops.txt, Documentation/core-api/refcount-vs-atomic.rst):
//! value-returning read-modify-writes are fully ordered, void ones unordered,
//! and the `_relaxed`/`_acquire`/`_release` forms are what they say. Each type
//! admits only atomic operations through `&self`; the non-atomic `__` forms take
//! `&mut self`, so they cannot race. The barriers that go with them live in
//! [`crate::barrier`].

#[allow(clippy::module_inception)]
mod atomic;
mod bitops;
mod refcount;

pub use atomic::{Atomic, Atomic64, AtomicLong};
pub use bitops::{
    BITS_PER_LONG, BitOps, BitSpinGuard, BitSpinLock, Bitmap, StaticBitmap, bits_to_longs,
};
pub use refcount::{Kref, REFCOUNT_MAX, REFCOUNT_SATURATED, Refcount, RefcountWarning};

#[cfg(all(test, not(loom)))]
mod atomic_tests;
