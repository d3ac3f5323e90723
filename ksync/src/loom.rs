//! The model-checking shim: std's atomics and cells normally, loom's under
//! `--cfg loom`, so the same algorithm code is model-checked.
//!
//! Lock algorithms import their atomics from here, never from `std` directly.
//! Loom has no `compiler_fence` and no futex, so this module supplies both:
//! a compiler fence is a no-op in the model (loom checks the hardware-level
//! orderings; a compiler fence only stops reordering within one thread), and a
//! futex is modelled with a loom mutex and condition variable, so that a lost
//! wake-up shows up as a deadlock the checker reports.

#![allow(unused_imports)]

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use core::sync::atomic::{
            AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64,
            AtomicUsize, Ordering, compiler_fence, fence,
        };
    }
    pub(crate) use std::sync::Arc;
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{
            AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64,
            AtomicUsize, Ordering, fence,
        };
        /// Loom models no compiler reordering; a compiler fence is a no-op there.
        #[inline]
        pub(crate) fn compiler_fence(_: Ordering) {}
    }
    pub(crate) use loom::sync::Arc;
}

/// Busy-wait hint. Under loom a spin loop must yield so the model can run the
/// thread it is waiting for.
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// The store-buffering handshake's fence: between an RMW (or store) on one word
/// and a load of another, where both sides use SeqCst so that at least one sees
/// the other (the two-word rwlocks and the rw-semaphore: a reader adds its bias
/// and loads the writer's word, a writer claims its word and loads the biases).
/// Natively the SeqCst accesses themselves forbid the store-buffering outcome
/// (on x86 the locked RMW is the full barrier), so this is nothing. Loom models
/// SeqCst accesses as AcqRel (its README) but `fence(SeqCst)` exactly, so the
/// models get the fence the hardware gives for free.
#[inline(always)]
pub(crate) fn sb_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
}

/// An `UnsafeCell` with loom's closure API (`with`, `with_mut`), so that loom can
/// check accesses to the protected data under `--cfg loom`.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    #[inline(always)]
    pub(crate) const fn new(data: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(data))
    }
    #[inline(always)]
    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

#[cfg(not(loom))]
impl<T: ?Sized> UnsafeCell<T> {
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// The futex model used under loom: a value check and a sleep that are atomic
/// with respect to wakers, as `FUTEX_WAIT` is, built on one global loom mutex and
/// condition variable. Spurious wake-ups are allowed, as with the real futex.
#[cfg(loom)]
pub(crate) mod futex {
    use loom::sync::atomic::{AtomicU32, Ordering};
    use loom::sync::{Condvar, Mutex};

    loom::lazy_static! {
        static ref PARK: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    pub(crate) fn wait(word: &AtomicU32, expected: u32) {
        let (m, cv) = &*PARK;
        let guard = m.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(cv.wait(guard).unwrap());
        }
    }

    pub(crate) fn wake(_word: &AtomicU32, _n: u32) -> usize {
        let (m, cv) = &*PARK;
        drop(m.lock().unwrap());
        cv.notify_all();
        0
    }
}
