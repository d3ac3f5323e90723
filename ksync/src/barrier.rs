//! Barriers and marked accesses (SPEC §4, Documentation/memory-barriers.txt).
//!
//! | kernel | ksync | orders | x86-64 | arm64 |
//! |---|---|---|---|---|
//! | `barrier()` | [`barrier`] | the compiler only | nothing | nothing |
//! | `smp_mb()`, `mb()` | [`smp_mb`], [`mb`] | all earlier accesses before all later ones, including store → load | `mfence` | `dmb ish` |
//! | `smp_rmb()`, `rmb()` | [`smp_rmb`], [`rmb`] | earlier loads before later loads (and stores) | nothing (TSO) | `dmb ishld` |
//! | `smp_wmb()`, `wmb()` | [`smp_wmb`], [`wmb`] | earlier stores (and loads) before later stores | nothing (TSO) | `dmb ish` |
//! | `smp_load_acquire(p)` | [`smp_load_acquire`] | this load before all later accesses | `mov` | `ldar` |
//! | `smp_store_release(p, v)` | [`smp_store_release`] | all earlier accesses before this store | `mov` | `stlr` |
//! | `READ_ONCE(x)` / `WRITE_ONCE(x, v)` | [`read_once`] / [`write_once`] | nothing; one untorn, un-elided access | `mov` | `ldr` / `str` |
//! | `smp_read_barrier_depends()` | [`smp_read_barrier_depends`] | address-dependent loads (a no-op) | nothing | nothing |
//! | `smp_mb__before_atomic()` / `smp_mb__after_atomic()` | [`smp_mb_before_atomic`] / [`smp_mb_after_atomic`] | upgrade a void atomic RMW to fully ordered | nothing (locked insns are full barriers) | `dmb ish` |
//! | `smp_mb__after_spinlock()` | [`smp_mb_after_spinlock`] | lock acquisition becomes a full barrier | nothing | `dmb ish` |
//! | `smp_store_mb(x, v)` | [`smp_store_mb`] | a store followed by `smp_mb()` | `mfence` | `dmb ish` |
//! | `smp_acquire__after_ctrl_dep()` | [`smp_acquire_after_ctrl_dep`] | a control dependency becomes an acquire | nothing | `dmb ishld` |
//!
//! Costs are for the instructions Rust emits on each CPU; a full fence is tens of
//! cycles on x86-64 (it drains the store buffer) and on arm64; the acquire and
//! release forms are free on x86-64 and cheap on arm64, which is why the kernel
//! prefers `smp_load_acquire`/`smp_store_release` to `smp_rmb`/`smp_wmb` pairs.
//!
//! # How they map to Rust's memory model
//!
//! The SMP barriers are fences: [`smp_mb`] is `fence(SeqCst)`, [`smp_rmb`] is
//! `fence(Acquire)` and [`smp_wmb`] is `fence(Release)` — each at least as strong
//! as the kernel's (an acquire fence orders earlier loads before later loads
//! *and* stores). A fence orders only atomic accesses, so the data the barriers
//! order is accessed through atomics ([`read_once`]/[`write_once`], the types
//! of [`crate::atomic`]), never through plain references shared between threads.
//!
//! There is no device memory in user space, so the mandatory barriers
//! ([`mb`], [`rmb`], [`wmb`]), which in the kernel also order MMIO and DMA, are
//! the SMP ones. ksync is always an SMP build: the barriers are real fences even
//! on a one-CPU machine (the kernel makes `smp_*` a `barrier()` only when built
//! with `CONFIG_SMP=n`).
//!
//! Every barrier's effect is shown on this CPU by `ksync litmus`: for example
//! `SB+poonceonces` (no barrier) shows the store-buffering outcome on x86-64, and
//! `SB+fencembonceonces` (with [`smp_mb`]) never does.
//!
//! # The volatile trap
//!
//! The kernel's `READ_ONCE`/`WRITE_ONCE` are volatile accesses: C in the kernel
//! relies on GCC not tearing or inventing aligned word accesses. In Rust two
//! threads touching the same non-atomic memory, one of them writing, is a data
//! race and undefined behaviour *even with* `read_volatile`/`write_volatile`:
//! volatile stops the compiler from eliding or merging the access, not from
//! racing. So ksync offers [`read_once`] and [`write_once`] only over atomic
//! types ([`OnceAccess`]): a `Relaxed` load or store, which compiles to the same
//! single `mov` as the kernel's volatile access, and cannot cause undefined
//! behaviour from safe code (SPEC §17).

use crate::loom::sync::atomic::{Ordering, compiler_fence, fence};
use core::sync::atomic as std_atomic;

/// `barrier()`: a compiler barrier. The compiler does not move memory accesses
/// across it; the CPU still may. Free at run time on every CPU. Use it to order
/// accesses against a signal handler on the same thread (ksync's interrupts),
/// as the kernel uses it against interrupts on the same CPU.
#[inline(always)]
pub fn barrier() {
    compiler_fence(Ordering::SeqCst);
}

/// `smp_mb()`: a full memory barrier. Every load and store before it is
/// ordered before every load and store after it, as seen by every other CPU,
/// including the store → load order that only a full barrier gives (the
/// store-buffering pattern, `SB+fencembonceonces`). Pairs with any barrier or
/// acquire/release on the other side.
///
/// Cost: `mfence` on x86-64 (it waits for the store buffer to drain, tens of
/// cycles), `dmb ish` on arm64.
///
/// ```
/// use ksync::barrier::{read_once, smp_mb, write_once};
/// use std::sync::atomic::AtomicU32;
///
/// // One side of the store-buffering (Dekker) pattern: with smp_mb() on both
/// // sides, at least one thread sees the other's flag.
/// let (me, other) = (AtomicU32::new(0), AtomicU32::new(0));
/// write_once(&me, 1);
/// smp_mb();
/// let seen = read_once(&other);
/// assert_eq!(seen, 0);
/// ```
#[inline(always)]
pub fn smp_mb() {
    fence(Ordering::SeqCst);
}

/// `smp_rmb()`: loads before it are ordered before loads after it (ksync's is
/// an acquire fence, which also orders them before later stores). Pairs with
/// [`smp_wmb`] or a release on the writing side (`MP+fencewmbonceonce+fencermbonceonce`).
///
/// Cost: nothing on x86-64 (TSO keeps loads in order; only the compiler is
/// stopped), `dmb ishld` on arm64.
#[inline(always)]
pub fn smp_rmb() {
    fence(Ordering::Acquire);
}

/// `smp_wmb()`: stores before it are ordered before stores after it (ksync's is
/// a release fence, which also orders earlier loads). Pairs with [`smp_rmb`] or
/// an acquire on the reading side.
///
/// Cost: nothing on x86-64 (TSO keeps stores in order), `dmb ish` on arm64
/// (the kernel's `dmb ishst` orders stores only; Rust has no store-store fence).
#[inline(always)]
pub fn smp_wmb() {
    fence(Ordering::Release);
}

/// `mb()`: the mandatory full barrier; in user space (no MMIO, no DMA) the same
/// as [`smp_mb`].
#[inline(always)]
pub fn mb() {
    smp_mb();
}

/// `rmb()`: the mandatory read barrier; in user space the same as [`smp_rmb`].
#[inline(always)]
pub fn rmb() {
    smp_rmb();
}

/// `wmb()`: the mandatory write barrier; in user space the same as [`smp_wmb`].
#[inline(always)]
pub fn wmb() {
    smp_wmb();
}

/// `smp_read_barrier_depends()`: orders a load before a later load whose address
/// depends on its value — a no-op.
///
/// Every CPU Rust targets keeps address-dependent loads in order (only Alpha did
/// not, and the kernel has folded the barrier into `READ_ONCE` since 4.15 and
/// removed it). What can break an address dependency is the *compiler*, and
/// Rust's memory model has no `memory_order_consume` to forbid that. So: to
/// read through a pointer that another thread published, load the pointer with
/// [`smp_load_acquire`] — free on x86-64, `ldar` on arm64 — or use RCU's
/// `rcu_dereference`, which ksync implements that way.
#[inline(always)]
pub fn smp_read_barrier_depends() {}

/// `smp_mb__before_atomic()`: makes the *void* atomic read-modify-write that
/// follows (`Atomic::inc`, `Bitmap::set_bit`, …) fully ordered with everything
/// before it.
///
/// Cost: nothing on x86-64, where every locked instruction is already a full
/// barrier (the kernel's is `barrier()`); there ksync's is a compiler barrier,
/// relying on that hardware guarantee. `fence(SeqCst)` (`dmb ish`) elsewhere and
/// under the loom model, where it is the language-level guarantee.
#[inline(always)]
#[doc(alias = "smp_mb__before_atomic")]
pub fn smp_mb_before_atomic() {
    rmw_full_barrier();
}

/// `smp_mb__after_atomic()`: makes the void atomic read-modify-write before it
/// fully ordered with everything after it (the usual `clear_bit();
/// smp_mb_after_atomic(); wake_up_bit()`). Costs as [`smp_mb_before_atomic`].
///
/// ```
/// use ksync::atomic::Bitmap;
/// use ksync::barrier::smp_mb_after_atomic;
///
/// let flags = Bitmap::new(8);
/// flags.set_bit(0);
/// flags.clear_bit(0);          // unordered on its own
/// smp_mb_after_atomic();      // now ordered before the waiter check below
/// assert!(!flags.test_bit(0));
/// ```
#[inline(always)]
#[doc(alias = "smp_mb__after_atomic")]
pub fn smp_mb_after_atomic() {
    rmw_full_barrier();
}

/// `smp_mb__after_spinlock()`: makes the lock acquisition just before it a full
/// barrier (acquisition alone is only an acquire). Nothing on x86-64 (every
/// ksync lock acquisition is a locked instruction), `dmb ish` elsewhere.
#[inline(always)]
#[doc(alias = "smp_mb__after_spinlock")]
pub fn smp_mb_after_spinlock() {
    rmw_full_barrier();
}

/// The barrier that upgrades an adjacent atomic RMW to a full barrier.
#[inline(always)]
fn rmw_full_barrier() {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        // A lock-prefixed instruction is a full barrier on x86-64 (SDM vol. 3,
        // 8.2.2); only the compiler must be kept from moving accesses across.
        compiler_fence(Ordering::SeqCst);
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    {
        fence(Ordering::SeqCst);
    }
}

/// `smp_acquire__after_ctrl_dep()`: turns the control dependency on a load
/// just before it into acquire ordering (as `refcount_dec_and_test` does on
/// reaching zero). Nothing on x86-64, `dmb ishld` on arm64.
#[inline(always)]
#[doc(alias = "smp_acquire__after_ctrl_dep")]
pub fn smp_acquire_after_ctrl_dep() {
    fence(Ordering::Acquire);
}

/// Atomic types that support the kernel's marked accesses: [`read_once`],
/// [`write_once`], [`smp_load_acquire`], [`smp_store_release`].
///
/// Implemented for every `core::sync::atomic` type and for
/// [`Atomic`](crate::atomic::Atomic)/[`Atomic64`](crate::atomic::Atomic64).
/// Plain data is not: see "the volatile trap" in the [module docs](self).
pub trait OnceAccess {
    /// The plain value.
    type Value: Copy;
    /// `READ_ONCE`: a `Relaxed` load.
    fn read_once(&self) -> Self::Value;
    /// `WRITE_ONCE`: a `Relaxed` store.
    fn write_once(&self, v: Self::Value);
    /// `smp_load_acquire`: an `Acquire` load.
    fn load_acquire(&self) -> Self::Value;
    /// `smp_store_release`: a `Release` store.
    fn store_release(&self, v: Self::Value);
}

macro_rules! once_access {
    ($($A:ty => $V:ty),* $(,)?) => {$(
        impl OnceAccess for $A {
            type Value = $V;
            #[inline(always)]
            fn read_once(&self) -> $V {
                self.load(std_atomic::Ordering::Relaxed)
            }
            #[inline(always)]
            fn write_once(&self, v: $V) {
                self.store(v, std_atomic::Ordering::Relaxed)
            }
            #[inline(always)]
            fn load_acquire(&self) -> $V {
                self.load(std_atomic::Ordering::Acquire)
            }
            #[inline(always)]
            fn store_release(&self, v: $V) {
                self.store(v, std_atomic::Ordering::Release)
            }
        }
    )*};
}

once_access! {
    std_atomic::AtomicBool => bool,
    std_atomic::AtomicU8 => u8,
    std_atomic::AtomicU16 => u16,
    std_atomic::AtomicU32 => u32,
    std_atomic::AtomicU64 => u64,
    std_atomic::AtomicUsize => usize,
    std_atomic::AtomicI8 => i8,
    std_atomic::AtomicI16 => i16,
    std_atomic::AtomicI32 => i32,
    std_atomic::AtomicI64 => i64,
    std_atomic::AtomicIsize => isize,
}

impl<T> OnceAccess for std_atomic::AtomicPtr<T> {
    type Value = *mut T;
    #[inline(always)]
    fn read_once(&self) -> *mut T {
        self.load(std_atomic::Ordering::Relaxed)
    }
    #[inline(always)]
    fn write_once(&self, v: *mut T) {
        self.store(v, std_atomic::Ordering::Relaxed)
    }
    #[inline(always)]
    fn load_acquire(&self) -> *mut T {
        self.load(std_atomic::Ordering::Acquire)
    }
    #[inline(always)]
    fn store_release(&self, v: *mut T) {
        self.store(v, std_atomic::Ordering::Release)
    }
}

macro_rules! once_access_ksync {
    ($($A:ty => $V:ty),*) => {$(
        impl OnceAccess for $A {
            type Value = $V;
            #[inline(always)]
            fn read_once(&self) -> $V {
                self.read()
            }
            #[inline(always)]
            fn write_once(&self, v: $V) {
                self.set(v)
            }
            #[inline(always)]
            fn load_acquire(&self) -> $V {
                self.read_acquire()
            }
            #[inline(always)]
            fn store_release(&self, v: $V) {
                self.set_release(v)
            }
        }
    )*};
}

once_access_ksync!(crate::atomic::Atomic => i32, crate::atomic::Atomic64 => i64);

/// `READ_ONCE(x)`: reads `x` exactly once, untorn, unordered (a `Relaxed`
/// load: one `mov` on x86-64, one `ldr` on arm64). The compiler may not elide,
/// repeat or merge it, which is what a polling loop needs.
///
/// ```
/// use ksync::barrier::{read_once, write_once};
/// use std::sync::atomic::AtomicBool;
///
/// let stop = AtomicBool::new(false);
/// std::thread::scope(|s| {
///     s.spawn(|| write_once(&stop, true));
///     while !read_once(&stop) {
///         ksync::arch::cpu_relax();
///     }
/// });
/// ```
#[doc(alias = "READ_ONCE")]
#[inline(always)]
pub fn read_once<A: OnceAccess + ?Sized>(x: &A) -> A::Value {
    x.read_once()
}

/// `WRITE_ONCE(x, v)`: stores `v` to `x` exactly once, untorn, unordered (a
/// `Relaxed` store).
#[doc(alias = "WRITE_ONCE")]
#[inline(always)]
pub fn write_once<A: OnceAccess + ?Sized>(x: &A, v: A::Value) {
    x.write_once(v)
}

/// `smp_load_acquire(p)`: loads `*p`; no later load or store of this thread is
/// done before it. Pairs with [`smp_store_release`] of the value read:
/// everything the releasing thread did before its store is visible after this
/// load (`MP+pooncerelease+poacquireonce`). Free on x86-64, `ldar` on arm64.
///
/// ```
/// use ksync::barrier::{read_once, smp_load_acquire, smp_store_release, write_once};
/// use std::sync::atomic::{AtomicBool, AtomicU64};
///
/// let (data, ready) = (AtomicU64::new(0), AtomicBool::new(false));
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         write_once(&data, 42);
///         smp_store_release(&ready, true); // publishes data
///     });
///     while !smp_load_acquire(&ready) {
///         ksync::arch::cpu_relax();
///     }
///     assert_eq!(read_once(&data), 42); // guaranteed by the pairing
/// });
/// ```
#[inline(always)]
pub fn smp_load_acquire<A: OnceAccess + ?Sized>(p: &A) -> A::Value {
    p.load_acquire()
}

/// `smp_store_release(p, v)`: stores `v` to `*p` after every earlier load and
/// store of this thread. Pairs with [`smp_load_acquire`]. A plain `mov` on
/// x86-64, `stlr` on arm64.
#[inline(always)]
pub fn smp_store_release<A: OnceAccess + ?Sized>(p: &A, v: A::Value) {
    p.store_release(v)
}

/// `smp_store_mb(x, v)`: `WRITE_ONCE(x, v)` followed by [`smp_mb`] — the
/// "publish my state, then look at yours" step of a sleep/wake-up handshake.
#[inline(always)]
pub fn smp_store_mb<A: OnceAccess + ?Sized>(x: &A, v: A::Value) {
    x.write_once(v);
    smp_mb();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::atomic::{Atomic, Atomic64};
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};

    #[test]
    fn marked_accesses_on_every_kind_of_atomic() {
        let a = Atomic::new(1);
        write_once(&a, 2);
        assert_eq!(read_once(&a), 2);
        smp_store_release(&a, 3);
        assert_eq!(smp_load_acquire(&a), 3);
        let b = Atomic64::new(0);
        smp_store_mb(&b, -5);
        assert_eq!(read_once(&b), -5);
        let f = AtomicBool::new(false);
        write_once(&f, true);
        assert!(smp_load_acquire(&f));
        let mut x = 7u32;
        let p = AtomicPtr::new(core::ptr::null_mut());
        smp_store_release(&p, &mut x as *mut u32);
        assert_eq!(read_once(&p), &mut x as *mut u32);
    }

    #[test]
    fn message_passing_with_every_barrier_pair() {
        // The writer publishes `data` then `flag` with each pairing; the reader
        // that sees the flag must see the data (the MP litmus test's Never).
        type Pair = (
            fn(&AtomicU64, &AtomicUsize, u64),
            fn(&AtomicUsize, &AtomicU64) -> Option<u64>,
        );
        let pairs: [Pair; 3] = [
            (
                |d, f, v| {
                    write_once(d, v);
                    smp_wmb();
                    write_once(f, 1);
                },
                |f, d| {
                    (read_once(f) == 1).then(|| {
                        smp_rmb();
                        read_once(d)
                    })
                },
            ),
            (
                |d, f, v| {
                    write_once(d, v);
                    smp_store_release(f, 1);
                },
                |f, d| (smp_load_acquire(f) == 1).then(|| read_once(d)),
            ),
            (
                |d, f, v| {
                    write_once(d, v);
                    smp_mb();
                    write_once(f, 1);
                },
                |f, d| {
                    (read_once(f) == 1).then(|| {
                        smp_mb();
                        read_once(d)
                    })
                },
            ),
        ];
        for (write, read) in pairs {
            for round in 1..50u64 {
                let (data, flag) = (AtomicU64::new(0), AtomicUsize::new(0));
                std::thread::scope(|s| {
                    s.spawn(|| write(&data, &flag, round));
                    loop {
                        if let Some(v) = read(&flag, &data) {
                            assert_eq!(v, round);
                            break;
                        }
                        crate::arch::cpu_relax();
                    }
                });
            }
        }
        // The remaining barriers compile and run (their ordering effect is
        // shown by `ksync litmus`).
        barrier();
        mb();
        rmb();
        wmb();
        smp_read_barrier_depends();
        smp_mb_before_atomic();
        smp_mb_after_atomic();
        smp_mb_after_spinlock();
        smp_acquire_after_ctrl_dep();
    }
}
