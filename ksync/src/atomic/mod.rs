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
//!
//! # The ordering rules (Documentation/atomic_t.txt)
//!
//! | operation | kernel | ksync | x86-64 | arm64 |
//! |---|---|---|---|---|
//! | `read`, `set` | unordered (`READ_ONCE`/`WRITE_ONCE`) | `Relaxed` load/store | `mov` | `ldr`/`str` |
//! | `read_acquire`, `set_release` | acquire / release | `Acquire` / `Release` | `mov` | `ldar` / `stlr` |
//! | void RMW: `add`, `sub`, `inc`, `dec`, `and`, `or`, `xor`, `andnot` | unordered | `Relaxed` RMW | `lock add` | `stadd` |
//! | value-returning RMW: `*_return`, `fetch_*`, `xchg`, `cmpxchg`, `*_and_test`, `add_negative`, `add_unless` … | fully ordered | `SeqCst` RMW | `lock xadd` | `ldaddal` |
//! | `*_relaxed` / `*_acquire` / `*_release` forms | as named | `Relaxed` / `Acquire` / `Release` | same as above | `ldadd` / `ldadda` / `ldaddl` |
//! | a failed `cmpxchg`/`try_cmpxchg`, a conditional op that does not store | unordered | `Relaxed` failure ordering | — | — |
//!
//! A fully ordered operation compiles to the same instruction the kernel uses on
//! x86-64 and arm64. In the Rust (C++20) memory model a `SeqCst` read-modify-write
//! is an acquire and a release that also takes part in the single total order of
//! `SeqCst` operations and fences; it is *not*, by itself, a full fence for the
//! `Relaxed` accesses to *other* locations around it (the store-buffering shape).
//! Code that needs that — the kernel's `smp_mb__before_atomic()` /
//! `smp_mb__after_atomic()` idiom — uses
//! [`smp_mb_before_atomic`](crate::barrier::smp_mb_before_atomic) and
//! [`smp_mb_after_atomic`](crate::barrier::smp_mb_after_atomic): a full fence
//! (`dmb ish`) on weakly ordered CPUs, and on x86-64 a compiler barrier, since
//! there the locked instruction itself is a full fence in hardware.
//!
//! The types admit only atomic operations: there is no `&self` access to the
//! plain value, so sharing one between threads is never a data race (SPEC §17:
//! the volatile trap). Arithmetic wraps, as the kernel's (built with
//! `-fno-strict-overflow`); use [`Refcount`] for counts that must not.

#[allow(clippy::module_inception)]
mod atomic;
pub mod bitops;
pub mod refcount;

pub use atomic::{Atomic, Atomic64, AtomicLong};
pub use bitops::{
    BITS_PER_LONG, BitOps, BitSpinGuard, BitSpinLock, Bitmap, StaticBitmap, bits_to_longs,
};
pub use refcount::{Kref, REFCOUNT_MAX, REFCOUNT_SATURATED, Refcount, RefcountWarning};

#[cfg(all(test, not(loom)))]
mod atomic_tests;
