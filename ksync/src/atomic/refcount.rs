//! `refcount_t` and `kref`: reference counts that saturate instead of wrapping.
//!
//! # The state word (an `i32`, as the kernel's `atomic_t`)
//!
//! | value | meaning | allowed transitions |
//! |---|---|---|
//! | `1 ..= i32::MAX` | live, that many references | `+i` (get), `-i` (put) |
//! | `0` | dead: the last reference was put, the object is being freed | none: an increment warns "addition on 0; use-after-free" and saturates |
//! | `< 0` | saturated ([`REFCOUNT_SATURATED`] after any misuse) | none: operations keep it saturated; the object is leaked, never freed |
//!
//! Overflow (the count passing `i32::MAX`), an increment from zero, an underflow
//! and a plain `dec` to zero all *saturate*: the count is set to
//! [`REFCOUNT_SATURATED`] (`INT_MIN / 2`) and a warning is printed once per kind
//! (the kernel's `WARN_ONCE` in `refcount_warn_saturate`). A saturated object
//! leaks instead of being freed while still referenced: a bug becomes a leak, not
//! a use-after-free (lib/refcount.c). Half the negative range separates the
//! saturation value from both ends, so racing increments and decrements cannot
//! bring a saturated count back to a valid one.
//!
//! # Ordering (Documentation/core-api/refcount-vs-atomic.rst)
//!
//! Increments are unordered (`Relaxed`): taking a reference needs an existing one,
//! which already orders everything. The decrement that may free is a release
//! (every earlier access to the object happens before the count drops), and the
//! one that reaches zero adds an acquire fence, so the freeing thread sees every
//! other thread's last accesses.

use crate::Backoff;
use crate::loom::sync::atomic::{AtomicI32, Ordering, fence};
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize};

/// `REFCOUNT_SATURATED`: the value a count is pinned at after misuse.
pub const REFCOUNT_SATURATED: i32 = i32::MIN / 2;

/// `REFCOUNT_MAX`: the largest valid count.
pub const REFCOUNT_MAX: i32 = i32::MAX;

/// The misuses a [`Refcount`] detects (`enum refcount_saturation_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefcountWarning {
    /// The count overflowed (or was already saturated): "saturated; leaking
    /// memory".
    Saturated,
    /// An increment found zero: "addition on 0; use-after-free".
    AdditionOnZero,
    /// A decrement went below zero: "underflow; use-after-free".
    Underflow,
    /// [`Refcount::dec`] reached zero, which only `dec_and_test` may: "decrement
    /// hit 0; leaking memory".
    DecrementHitZero,
}

impl RefcountWarning {
    const ALL: [RefcountWarning; 4] = [
        RefcountWarning::Saturated,
        RefcountWarning::AdditionOnZero,
        RefcountWarning::Underflow,
        RefcountWarning::DecrementHitZero,
    ];

    /// The kernel's warning text.
    pub fn message(self) -> &'static str {
        match self {
            RefcountWarning::Saturated => "refcount_t: saturated; leaking memory.",
            RefcountWarning::AdditionOnZero => "refcount_t: addition on 0; use-after-free.",
            RefcountWarning::Underflow => "refcount_t: underflow; use-after-free.",
            RefcountWarning::DecrementHitZero => "refcount_t: decrement hit 0; leaking memory.",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// How many times this misuse has been detected in this process (all
    /// refcounts together). Only the first is printed.
    pub fn count(self) -> usize {
        WARN_COUNT[self.index()].load(core::sync::atomic::Ordering::Relaxed)
    }
}

impl fmt::Display for RefcountWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

// Process-wide WARN_ONCE state: plain std atomics (statistics, not part of any
// modelled algorithm), one per kind.
static WARNED: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];
static WARN_COUNT: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

/// `refcount_t`: a reference count that saturates instead of wrapping and warns
/// (once per kind of misuse) when it is used wrongly. See the
/// [module docs](self) for the states and the ordering.
///
/// ```
/// use ksync::atomic::{Refcount, RefcountWarning};
///
/// let r = Refcount::new(1);        // REFCOUNT_INIT(1)
/// r.inc();                         // refcount_inc: 2
/// assert!(!r.dec_and_test());      // 1 left
/// assert!(r.dec_and_test());       // the last reference: free the object
/// assert!(!r.inc_not_zero());      // a lookup must not revive it
///
/// let before = RefcountWarning::AdditionOnZero.count();
/// r.inc();                         // use-after-free: warns and saturates
/// assert_eq!(RefcountWarning::AdditionOnZero.count(), before + 1);
/// assert!(r.is_saturated());
/// assert!(!r.dec_and_test());      // a saturated object is never freed
/// ```
#[doc(alias = "refcount_t")]
#[repr(transparent)]
pub struct Refcount {
    refs: AtomicI32,
}

impl Refcount {
    /// `REFCOUNT_INIT(n)`: a count of `n`.
    #[doc(alias = "REFCOUNT_INIT")]
    #[doc(alias = "refcount_init")]
    #[cfg(not(loom))]
    pub const fn new(n: i32) -> Self {
        Refcount {
            refs: AtomicI32::new(n),
        }
    }

    /// `REFCOUNT_INIT(n)` (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new(n: i32) -> Self {
        Refcount {
            refs: AtomicI32::new(n),
        }
    }

    /// Pins the count at [`REFCOUNT_SATURATED`] and warns once for `kind`
    /// (`refcount_warn_saturate`).
    #[cold]
    #[inline(never)]
    fn saturate(&self, kind: RefcountWarning) {
        // Relaxed: the count is now meaningless and never leaves saturation.
        self.refs.store(REFCOUNT_SATURATED, Ordering::Relaxed);
        warn(kind);
    }

    /// `refcount_read(r)`: the current count (unordered). A saturated count
    /// reads as a large value (`0xc000_0000`), as in the kernel.
    #[doc(alias = "refcount_read")]
    #[inline]
    pub fn read(&self) -> u32 {
        self.refs.load(Ordering::Relaxed) as u32
    }

    /// Whether the count is saturated (negative).
    #[inline]
    pub fn is_saturated(&self) -> bool {
        self.refs.load(Ordering::Relaxed) < 0
    }

    /// `refcount_set(r, n)`: sets the count (unordered); for initialization.
    #[doc(alias = "refcount_set")]
    #[inline]
    pub fn set(&self, n: i32) {
        self.refs.store(n, Ordering::Relaxed)
    }

    /// `refcount_add(i, r)`: adds `i` references. Unordered. Warns and
    /// saturates on an addition to zero or an overflow.
    #[doc(alias = "refcount_add")]
    #[inline]
    pub fn add(&self, i: i32) {
        // Relaxed: the caller holds a reference, which orders the object.
        let old = self.refs.fetch_add(i, Ordering::Relaxed);
        if old == 0 {
            self.saturate(RefcountWarning::AdditionOnZero);
        } else if old < 0 || old.wrapping_add(i) < 0 {
            self.saturate(RefcountWarning::Saturated);
        }
    }

    /// `refcount_inc(r)`: takes one more reference. See [`add`](Self::add).
    #[doc(alias = "refcount_inc")]
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    /// `refcount_add_not_zero(i, r)`: adds `i` unless the count is zero; returns
    /// whether it added. Unordered (the caller keeps the object's memory stable,
    /// e.g. under RCU); saturates on overflow.
    #[doc(alias = "refcount_add_not_zero")]
    #[inline]
    pub fn add_not_zero(&self, i: i32) -> bool {
        let backoff = Backoff::new();
        let mut old = self.refs.load(Ordering::Relaxed);
        loop {
            if old == 0 {
                return false;
            }
            // Relaxed: as refcount_add_not_zero, no ordering; the success
            // carries a control dependency to the caller's later stores.
            match self.refs.compare_exchange_weak(
                old,
                old.wrapping_add(i),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => old = now,
            }
            backoff.spin();
        }
        if old < 0 || old.wrapping_add(i) < 0 {
            self.saturate(RefcountWarning::Saturated);
        }
        true
    }

    /// `refcount_inc_not_zero(r)`: takes a reference unless the object is dying
    /// (the count is zero); returns whether it did.
    #[doc(alias = "refcount_inc_not_zero")]
    #[inline]
    pub fn inc_not_zero(&self) -> bool {
        self.add_not_zero(1)
    }

    /// `refcount_sub_and_test(i, r)`: drops `i` references; returns whether the
    /// count reached zero, in which case the caller frees the object.
    ///
    /// Release ordering on the decrement, and an acquire fence when it reaches
    /// zero: every access by every earlier holder happens before the caller's
    /// free. Underflow warns and saturates (and returns `false`).
    #[doc(alias = "refcount_sub_and_test")]
    #[inline]
    pub fn sub_and_test(&self, i: i32) -> bool {
        // Release: pairs with the Acquire fence of whichever thread drops the
        // count to zero, publishing this holder's accesses to the freer.
        let old = self.refs.fetch_sub(i, Ordering::Release);
        if old == i {
            // Acquire: pairs with the Release decrements of every other holder
            // (smp_acquire__after_ctrl_dep in the kernel).
            fence(Ordering::Acquire);
            return true;
        }
        if old < 0 || old.wrapping_sub(i) < 0 {
            self.saturate(RefcountWarning::Underflow);
        }
        false
    }

    /// `refcount_dec_and_test(r)`: drops one reference; returns whether it was
    /// the last. See [`sub_and_test`](Self::sub_and_test).
    #[doc(alias = "refcount_dec_and_test")]
    #[inline]
    pub fn dec_and_test(&self) -> bool {
        self.sub_and_test(1)
    }

    /// `refcount_dec(r)`: drops a reference that is known not to be the last.
    /// Release ordering. Reaching zero here is a bug ("decrement hit 0; leaking
    /// memory"): it warns and saturates.
    #[doc(alias = "refcount_dec")]
    #[inline]
    pub fn dec(&self) {
        // Release: as in sub_and_test, this holder's accesses are done.
        let old = self.refs.fetch_sub(1, Ordering::Release);
        if old <= 1 {
            self.saturate(if old == 1 {
                RefcountWarning::DecrementHitZero
            } else {
                RefcountWarning::Underflow
            });
        }
    }

    /// `refcount_dec_if_one(r)`: drops the count from 1 to 0 and returns `true`;
    /// any other count is left alone (`false`). Release ordering on success.
    #[doc(alias = "refcount_dec_if_one")]
    #[inline]
    pub fn dec_if_one(&self) -> bool {
        // Release: as any final decrement. Relaxed on failure: nothing changed.
        self.refs
            .compare_exchange(1, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// `refcount_dec_not_one(r)`: decrements unless the count is 1 (the caller
    /// would then take a lock and use `dec_and_test`); returns whether it
    /// decremented. A saturated count stays saturated and returns `true`.
    #[doc(alias = "refcount_dec_not_one")]
    pub fn dec_not_one(&self) -> bool {
        let backoff = Backoff::new();
        let mut val = self.refs.load(Ordering::Relaxed);
        loop {
            if val == REFCOUNT_SATURATED {
                return true;
            }
            if val == 1 {
                return false;
            }
            let new = val.wrapping_sub(1);
            if new < 0 {
                self.saturate(RefcountWarning::Underflow);
                return true;
            }
            // Release: this holder's accesses happen before the count drops.
            match self
                .refs
                .compare_exchange_weak(val, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => val = now,
            }
            backoff.spin();
        }
    }
}

#[cold]
fn warn(kind: RefcountWarning) {
    use core::sync::atomic::Ordering::Relaxed;
    WARN_COUNT[kind.index()].fetch_add(1, Relaxed);
    if !WARNED[kind.index()].swap(true, Relaxed) {
        // The backtrace is there with RUST_BACKTRACE=1, as the kernel's WARN
        // prints the call chain.
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("ksync: WARNING: {} (reported once)\n{bt}", kind.message());
        } else {
            eprintln!("ksync: WARNING: {} (reported once)", kind.message());
        }
    }
    debug_assert!(RefcountWarning::ALL.contains(&kind));
}

impl fmt::Debug for Refcount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.refs.load(Ordering::Relaxed);
        if v < 0 {
            f.write_str("Refcount(saturated)")
        } else {
            f.debug_tuple("Refcount").field(&v).finish()
        }
    }
}

/// `struct kref`: a reference-counted object released by a callback when its
/// last reference is put.
///
/// A `Kref<T>` is one reference (a handle): [`get`](Kref::get) (`kref_get`)
/// makes another, [`put`](Kref::put) (`kref_put(kref, release)`) gives one up
/// and runs `release` with the object if it was the last. Dropping a handle
/// without `put` is a put whose release simply drops the object. The count is a
/// [`Refcount`], so it saturates (the object then leaks) instead of wrapping.
///
/// ```
/// use ksync::atomic::Kref;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// static FREED: AtomicUsize = AtomicUsize::new(0);
/// struct Device { id: u32 }
/// fn device_release(dev: Device) {
///     FREED.fetch_add(dev.id as usize, Ordering::Relaxed);
/// }
///
/// let dev = Kref::new(Device { id: 7 });   // kref_init
/// let other = dev.get();                   // kref_get
/// assert_eq!(Kref::read(&dev), 2);         // kref_read
/// assert!(!other.put(device_release));     // not the last
/// assert!(dev.put(device_release));        // the last: device_release runs
/// assert_eq!(FREED.load(Ordering::Relaxed), 7);
/// ```
#[doc(alias = "kref")]
pub struct Kref<T> {
    ptr: NonNull<KrefInner<T>>,
    _owns: PhantomData<KrefInner<T>>,
}

struct KrefInner<T> {
    refcount: Refcount,
    data: T,
}

// SAFETY: a Kref hands out `&T` on any thread holding a handle (so T: Sync)
// and the last put may run on any thread, moving T there (so T: Send), as Arc.
unsafe impl<T: Send + Sync> Send for Kref<T> {}
// SAFETY: as above; `&Kref<T>` gives `&T` and can make new handles.
unsafe impl<T: Send + Sync> Sync for Kref<T> {}

impl<T> Kref<T> {
    /// `kref_init`: a new object with one reference, the returned handle.
    #[doc(alias = "kref_init")]
    pub fn new(data: T) -> Self {
        let inner = Box::new(KrefInner {
            refcount: Refcount::new(1),
            data,
        });
        Kref {
            ptr: NonNull::from(Box::leak(inner)),
            _owns: PhantomData,
        }
    }

    #[inline]
    fn inner(&self) -> &KrefInner<T> {
        // SAFETY: INVARIANT of Kref: a live handle holds one reference, so the
        // count is not zero and the box is not freed while `self` exists.
        unsafe { self.ptr.as_ref() }
    }

    /// `kref_get(kref)`: one more reference to the same object.
    #[doc(alias = "kref_get")]
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn get(&self) -> Self {
        self.inner().refcount.inc();
        Kref {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }

    /// `kref_read(kref)`: the number of references (unordered; for
    /// diagnostics).
    #[doc(alias = "kref_read")]
    #[inline]
    pub fn read(this: &Self) -> u32 {
        this.inner().refcount.read()
    }

    /// `kref_put(kref, release)`: gives up this reference; if it was the last,
    /// runs `release` with the object and returns `true`.
    #[doc(alias = "kref_put")]
    #[inline]
    pub fn put(self, release: impl FnOnce(T)) -> bool {
        let this = ManuallyDrop::new(self);
        if this.inner().refcount.dec_and_test() {
            // SAFETY: the count reached zero, so this was the last handle: no
            // other handle exists to reach the box, and dec_and_test's acquire
            // fence ordered their accesses before this point. The box came from
            // Box::leak in `new`.
            let inner = unsafe { Box::from_raw(this.ptr.as_ptr()) };
            release(inner.data);
            true
        } else {
            false
        }
    }
}

impl<T> Clone for Kref<T> {
    /// `kref_get`.
    fn clone(&self) -> Self {
        self.get()
    }
}

impl<T> Deref for Kref<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.inner().data
    }
}

impl<T> Drop for Kref<T> {
    fn drop(&mut self) {
        if self.inner().refcount.dec_and_test() {
            // SAFETY: as in `put`: the last handle, the box from `new`.
            drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Kref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kref")
            .field("refcount", &self.inner().refcount)
            .field("data", &self.inner().data)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdUsize;

    #[test]
    fn counting() {
        let r = Refcount::new(1);
        r.inc();
        r.add(3);
        assert_eq!(r.read(), 5);
        r.dec();
        assert_eq!(r.read(), 4);
        assert!(!r.sub_and_test(2));
        assert_eq!(r.read(), 2);
        assert!(r.sub_and_test(2));
        assert_eq!(r.read(), 0);
        r.set(1);
        assert!(r.inc_not_zero());
        assert!(r.add_not_zero(2));
        assert_eq!(r.read(), 4);
        assert!(r.dec_not_one());
        assert!(r.dec_not_one());
        assert!(r.dec_not_one());
        assert!(!r.dec_not_one());
        assert!(!Refcount::new(2).dec_if_one());
        assert!(r.dec_if_one());
        assert_eq!(r.read(), 0);
        assert!(!r.inc_not_zero());
        assert!(!r.add_not_zero(5));
        assert_eq!(r.read(), 0);
        assert_eq!(format!("{:?}", Refcount::new(3)), "Refcount(3)");
    }

    #[test]
    fn overflow_saturates_and_warns() {
        let before = RefcountWarning::Saturated.count();
        let r = Refcount::new(REFCOUNT_MAX);
        r.inc();
        assert!(r.is_saturated());
        assert_eq!(r.read(), REFCOUNT_SATURATED as u32);
        assert!(RefcountWarning::Saturated.count() > before);
        // Saturated stays saturated: neither an increment nor a decrement
        // brings it back, and the object is never freed.
        r.inc();
        assert!(!r.dec_and_test());
        assert!(r.is_saturated());
        assert!(r.dec_not_one());
        assert!(r.is_saturated());
        assert_eq!(format!("{r:?}"), "Refcount(saturated)");

        let r = Refcount::new(REFCOUNT_MAX - 1);
        assert!(r.add_not_zero(10));
        assert!(r.is_saturated());
    }

    #[test]
    fn increment_from_zero_warns() {
        let before = RefcountWarning::AdditionOnZero.count();
        let r = Refcount::new(0);
        r.inc();
        assert!(r.is_saturated());
        assert!(RefcountWarning::AdditionOnZero.count() > before);
    }

    #[test]
    fn underflow_and_dec_to_zero_warn() {
        let before = RefcountWarning::Underflow.count();
        let r = Refcount::new(1);
        assert!(!r.sub_and_test(2));
        assert!(r.is_saturated());
        assert!(RefcountWarning::Underflow.count() > before);

        let before = RefcountWarning::DecrementHitZero.count();
        let r = Refcount::new(1);
        r.dec();
        assert!(r.is_saturated());
        assert!(RefcountWarning::DecrementHitZero.count() > before);
        assert_eq!(
            RefcountWarning::DecrementHitZero.to_string(),
            "refcount_t: decrement hit 0; leaking memory."
        );
    }

    #[test]
    fn exactly_one_thread_sees_zero() {
        for _ in 0..20 {
            let r = Refcount::new(8);
            let zeros = StdUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        if r.dec_and_test() {
                            zeros.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                        }
                    });
                }
            });
            assert_eq!(zeros.into_inner(), 1);
        }
    }

    #[test]
    fn kref_releases_once_with_the_value() {
        static RELEASED: StdUsize = StdUsize::new(0);
        let k = Kref::new(vec![1, 2, 3]);
        let handles: Vec<_> = (0..8).map(|_| k.get()).collect();
        assert_eq!(Kref::read(&k), 9);
        std::thread::scope(|s| {
            for h in handles {
                s.spawn(move || {
                    assert_eq!(h.len(), 3);
                    h.put(|v| {
                        RELEASED.fetch_add(v.len(), core::sync::atomic::Ordering::Relaxed);
                    });
                });
            }
        });
        assert_eq!(Kref::read(&k), 1);
        assert_eq!(RELEASED.load(core::sync::atomic::Ordering::Relaxed), 0);
        assert!(k.put(|v| {
            RELEASED.fetch_add(v.len(), core::sync::atomic::Ordering::Relaxed);
        }));
        assert_eq!(RELEASED.load(core::sync::atomic::Ordering::Relaxed), 3);
    }

    #[test]
    fn kref_drop_is_a_put() {
        struct D<'a>(&'a StdUsize);
        impl Drop for D<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            }
        }
        let dropped = StdUsize::new(0);
        let a = Kref::new(D(&dropped));
        let b = a.clone();
        drop(a);
        assert_eq!(dropped.load(core::sync::atomic::Ordering::Relaxed), 0);
        drop(b);
        assert_eq!(dropped.load(core::sync::atomic::Ordering::Relaxed), 1);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::UnsafeCell;
    use loom::sync::Arc;

    /// Of two threads dropping the last two references, exactly one sees zero,
    /// and it sees the other thread's write to the object (release on the
    /// decrement, acquire fence at zero): loom flags the read as a data race
    /// otherwise.
    #[test]
    fn loom_dec_and_test_publishes_to_the_freer() {
        loom::model(|| {
            let obj = Arc::new((
                Refcount::new(2),
                [UnsafeCell::new(0u32), UnsafeCell::new(0u32)],
            ));
            let ths: Vec<_> = (0..2usize)
                .map(|i| {
                    let obj = obj.clone();
                    loom::thread::spawn(move || {
                        // This holder's last write to the object (its own field)...
                        // SAFETY: only thread i writes field i, and only before
                        // its decrement; the freer reads after zero.
                        obj.1[i].with_mut(|p| unsafe { *p = i as u32 + 1 });
                        if obj.0.dec_and_test() {
                            // ...is visible to whoever frees it, whichever
                            // thread that is.
                            // SAFETY: the count is zero: no holder is left.
                            Some(obj.1.iter().map(|c| c.with(|p| unsafe { *p })).sum::<u32>())
                        } else {
                            None
                        }
                    })
                })
                .collect();
            let seen: Vec<_> = ths.into_iter().map(|t| t.join().unwrap()).collect();
            let zeros: Vec<_> = seen.into_iter().flatten().collect();
            assert_eq!(zeros, [3], "exactly one thread frees, seeing both writes");
        });
    }

    /// inc_not_zero never revives a count that reached zero.
    #[test]
    fn loom_inc_not_zero_does_not_revive() {
        loom::model(|| {
            let r = Arc::new(Refcount::new(1));
            let r2 = r.clone();
            let t = loom::thread::spawn(move || r2.inc_not_zero());
            let freed = r.dec_and_test();
            let got = t.join().unwrap();
            if got {
                // The lookup won: the count went 1 -> 2 -> 1, nobody freed.
                assert!(!freed);
                assert_eq!(r.read(), 1);
            } else {
                assert!(freed);
                assert_eq!(r.read(), 0);
            }
        });
    }
}
