//! Per-CPU data: `DEFINE_PER_CPU`, `per_cpu`, `this_cpu_*`, `get_cpu_var`, and
//! `percpu_counter`.
//!
//! A [`PerCpu<T>`] holds one `T` per possible CPU (`nr_cpu_ids`), each on a cache
//! line of its own, and indexes them by the CPU the calling thread is running on
//! ([`arch::cpu_id`]: glibc's rseq area, one load). Threads on
//! different CPUs touch different cache lines, so per-CPU counters and caches
//! scale where one shared word does not.
//!
//! | kernel                                 | ksync                                        |
//! |----------------------------------------|----------------------------------------------|
//! | `DEFINE_PER_CPU(type, name)`           | `static NAME: PerCpu<T> = PerCpu::new();`     |
//! | `alloc_percpu` / `free_percpu`         | [`PerCpu::new`] / drop ([`PerCpu::free`])     |
//! | `per_cpu(var, cpu)`, `per_cpu_ptr`     | [`PerCpu::get`]                               |
//! | `this_cpu_ptr`, `__get_cpu_var`        | [`PerCpu::this_cpu`]                          |
//! | `get_cpu_var` / `put_cpu_var`          | [`PerCpu::get_cpu_var`] on `PerCpu<LocalLock<T>>` / drop |
//! | `this_cpu_{read,write,add,inc,dec}`    | [`PerCpu::this_cpu_read`] … on `PerCpu<AtomicU64>` etc. |
//! | `for_each_possible_cpu`                | [`PerCpu::iter`], [`for_each_possible_cpu`]   |
//! | `nr_cpu_ids`                           | [`nr_cpu_ids`]                                |
//! | `struct percpu_counter`                | [`PercpuCounter`]                             |
//!
//! # Migration
//!
//! In the kernel, `this_cpu_add` is one instruction that cannot be split by a
//! migration, and `get_cpu_var` disables preemption so the task stays on its CPU.
//! In user space the OS may migrate a thread between any two instructions, and
//! ksync cannot stop it. So every operation here is correct whichever slot it
//! lands on and whenever the thread moves:
//!
//! - `this_cpu_add`/`inc`/`dec`/`write` are one relaxed atomic operation on the
//!   slot of the CPU the thread was on when it looked. If it has moved since, the
//!   update still lands whole in that slot (at worst a cross-CPU cache miss); the
//!   sum over all slots is exact. Nothing is torn and nothing is lost.
//! - `get_cpu_var` locks the slot it picked ([`LocalLock`], the kernel's
//!   `local_lock_t`, which on PREEMPT_RT is also a real per-CPU lock): a thread
//!   that migrated keeps exclusive use of its slot until `put_cpu_var`, and a thread
//!   that now runs on that CPU waits briefly for it.

mod counter;

pub use counter::PercpuCounter;

use core::fmt;
use core::marker::PhantomData;
#[cfg(feature = "lockdep")]
use core::panic::Location;
use core::sync::atomic::{
    AtomicI32, AtomicI64, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Once, OnceLock};

use crate::arch::{self, CachePadded};
use crate::lock::{Guard, IrqOff, IrqSave, Lock, Preempt};
#[cfg(feature = "lockdep")]
use crate::lockdep;

/// The number of possible CPU ids (`nr_cpu_ids`): the number of slots of every
/// [`PerCpu`].
#[inline]
pub fn nr_cpu_ids() -> usize {
    arch::nr_cpu_ids()
}

/// Every possible CPU id, `0..nr_cpu_ids()` (`for_each_possible_cpu`).
pub fn for_each_possible_cpu() -> core::ops::Range<usize> {
    0..nr_cpu_ids()
}

/// How a [`PerCpu`]'s slots are made.
enum Init<T> {
    /// Lazily, on first use, with this function for every slot.
    Lazy(fn() -> T),
    /// Already made by [`PerCpu::from_fn`].
    Eager,
}

/// One `T` per possible CPU, each cache-line padded (`DEFINE_PER_CPU`,
/// `alloc_percpu`).
///
/// Access is shared (`&T`): other threads may run on (or have just left) the same
/// CPU, so elements are usually atomics ([`this_cpu_add`](Self::this_cpu_add) and
/// friends) or [`LocalLock`]s ([`get_cpu_var`](Self::get_cpu_var)).
///
/// A `static` cannot know `nr_cpu_ids` at compile time, so [`PerCpu::new`] is a
/// `const fn` that allocates the slots on first use (one allocation, one
/// well-predicted null check per access afterwards).
///
/// ```
/// use ksync::percpu::PerCpu;
/// use std::sync::atomic::AtomicU64;
///
/// static EVENTS: PerCpu<AtomicU64> = PerCpu::new();
///
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..1000 {
///                 EVENTS.this_cpu_inc();
///             }
///         });
///     }
/// });
/// assert_eq!(EVENTS.sum(), 4000);
/// ```
#[doc(alias = "DEFINE_PER_CPU")]
#[doc(alias = "DECLARE_PER_CPU")]
pub struct PerCpu<T> {
    /// The slots, `len` of them; null until allocated. Written once (under
    /// `once`, or by `from_fn` before the value exists), freed by `drop`.
    ptr: AtomicPtr<CachePadded<T>>,
    /// The number of slots, `nr_cpu_ids()`: stored before `ptr` is published.
    len: AtomicUsize,
    once: Once,
    init: Init<T>,
    /// Where the variable was defined: the lockdep class of the local locks
    /// its slots make through `T::default` (`with_class_site`), one per
    /// variable as the kernel's per-variable static key. Only with lockdep:
    /// nothing else reads it.
    #[cfg(feature = "lockdep")]
    site: &'static Location<'static>,
    /// Owns the slots, and is `Sync` only where `T: Send + Sync`, as a
    /// lazily-initialised shared value must be (the slots are made on whichever
    /// thread comes first and dropped by the owner).
    _owns: PhantomData<OnceLock<Box<[CachePadded<T>]>>>,
}

impl<T: Default> PerCpu<T> {
    /// A per-CPU variable whose slots start as `T::default()`, allocated on first
    /// use (`DEFINE_PER_CPU`, `alloc_percpu`).
    #[doc(alias = "alloc_percpu")]
    #[track_caller]
    pub const fn new() -> Self {
        Self::with_init(T::default)
    }
}

impl<T: Default> Default for PerCpu<T> {
    #[track_caller]
    fn default() -> Self {
        Self::new()
    }
}

impl<T> PerCpu<T> {
    /// A per-CPU variable whose slots start as `init()`, allocated on first use;
    /// usable in a `static`.
    /// Lockdep: a [`LocalLock`] that `init` makes through `Default` (as
    /// [`new`](Self::new)'s `T::default` does) takes the class of the caller
    /// of this function (or of `new`): one class per per-CPU variable, shared
    /// by its slots, as the kernel's per-variable static key. One that `init`
    /// makes with `LocalLock::new` is of that call's place, also one per
    /// variable.
    #[track_caller]
    pub const fn with_init(init: fn() -> T) -> Self {
        PerCpu {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
            once: Once::new(),
            init: Init::Lazy(init),
            #[cfg(feature = "lockdep")]
            site: Location::caller(),
            _owns: PhantomData,
        }
    }

    /// A per-CPU variable with slot `cpu` set to `f(cpu)`, allocated now
    /// (`alloc_percpu` followed by a `for_each_possible_cpu` initialisation).
    #[track_caller]
    pub fn from_fn(f: impl FnMut(usize) -> T) -> Self {
        let slots: Box<[CachePadded<T>]> = for_each_possible_cpu()
            .map(f)
            .map(CachePadded::new)
            .collect();
        let len = slots.len();
        PerCpu {
            ptr: AtomicPtr::new(Box::into_raw(slots) as *mut CachePadded<T>),
            len: AtomicUsize::new(len),
            once: Once::new(),
            init: Init::Eager,
            #[cfg(feature = "lockdep")]
            site: Location::caller(),
            _owns: PhantomData,
        }
    }

    /// The slots' address and number, allocating them on first use: one
    /// well-predicted branch once allocated.
    #[inline(always)]
    fn raw(&self) -> (*mut CachePadded<T>, usize) {
        // Acquire pairs with the Release store in `alloc`: the slots' contents
        // and `len` are visible once the pointer is.
        let p = self.ptr.load(Ordering::Acquire);
        if p.is_null() {
            return self.alloc();
        }
        (p, self.len.load(Ordering::Relaxed))
    }

    #[inline]
    fn slots(&self) -> &[CachePadded<T>] {
        let (p, n) = self.raw();
        // SAFETY: `p` points to `n` initialised slots that live until `drop`
        // (which needs `&mut self`); only shared references are handed out here.
        unsafe { core::slice::from_raw_parts(p, n) }
    }

    #[cold]
    #[inline(never)]
    fn alloc(&self) -> (*mut CachePadded<T>, usize) {
        self.once.call_once(|| {
            let slots: Box<[CachePadded<T>]> = match self.init {
                Init::Lazy(f) => {
                    let make = || {
                        for_each_possible_cpu()
                            .map(|_| CachePadded::new(f()))
                            .collect()
                    };
                    #[cfg(feature = "lockdep")]
                    let slots = lockdep::with_class_site(self.site, make);
                    #[cfg(not(feature = "lockdep"))]
                    let slots = make();
                    slots
                }
                // `from_fn` fills `ptr` before the value exists, so it is never
                // null for it.
                Init::Eager => unreachable!("ksync: PerCpu::from_fn slots missing"),
            };
            self.len.store(slots.len(), Ordering::Relaxed);
            // Release pairs with the Acquire load in `raw`.
            self.ptr.store(
                Box::into_raw(slots) as *mut CachePadded<T>,
                Ordering::Release,
            );
        });
        // `call_once` returning orders the store above before this load.
        (
            self.ptr.load(Ordering::Acquire),
            self.len.load(Ordering::Relaxed),
        )
    }

    /// CPU `cpu`'s element (`per_cpu(var, cpu)`, `per_cpu_ptr(ptr, cpu)`).
    ///
    /// # Panics
    ///
    /// If `cpu >= nr_cpu_ids()`.
    #[doc(alias = "per_cpu")]
    #[doc(alias = "per_cpu_ptr")]
    #[inline]
    pub fn get(&self, cpu: usize) -> &T {
        let slots = self.slots();
        match slots.get(cpu) {
            Some(s) => s,
            None => bad_cpu(cpu, slots.len()),
        }
    }

    /// The element of the CPU the calling thread is running on
    /// (`this_cpu_ptr`, `__get_cpu_var`, `raw_cpu_ptr`). The thread may migrate
    /// right after the lookup; the reference stays valid (elements live as long as
    /// the `PerCpu`), only no longer local.
    ///
    /// The cost: [`arch::cpu_id`] (a static and one thread-local load), the
    /// slots' address and number, a clamp (`cmov`) and an index.
    #[doc(alias = "this_cpu_ptr")]
    #[doc(alias = "__get_cpu_var")]
    #[doc(alias = "raw_cpu_ptr")]
    #[doc(alias = "__this_cpu_ptr")]
    #[inline]
    pub fn this_cpu(&self) -> &T {
        // Acquire: as in `raw`.
        let p = self.ptr.load(Ordering::Acquire);
        if let (false, Some(cpu)) = (p.is_null(), arch::cpu_id_fast()) {
            let n = self.len.load(Ordering::Relaxed);
            // A CPU id at or above nr_cpu_ids (a hot-added CPU) shares the last
            // slot: a branch-free clamp instead of a bounds check.
            let i = cpu.min(n - 1);
            // SAFETY: `p` is non-null, so it points to `n` initialised slots
            // that live as long as `self` (see `slots`), and `i < n`.
            return unsafe { &*p.add(i) };
        }
        self.this_cpu_slow()
    }

    /// [`this_cpu`](Self::this_cpu) before the first allocation, or where the
    /// CPU id needs its slow path: a tail call, so the fast path saves no
    /// registers.
    #[cold]
    #[inline(never)]
    fn this_cpu_slow(&self) -> &T {
        let slots = self.slots();
        &slots[arch::cpu_id().min(slots.len() - 1)]
    }

    /// Every CPU's element with its CPU id (`for_each_possible_cpu(cpu)
    /// per_cpu(var, cpu)`).
    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (usize, &T)> + '_ {
        self.slots().iter().map(|s| &**s).enumerate()
    }

    /// Every CPU's element, for an owner with exclusive access.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (usize, &mut T)> + '_ {
        self.alloc_mut().iter_mut().map(|s| &mut **s).enumerate()
    }

    /// CPU `cpu`'s element, for an owner with exclusive access.
    ///
    /// # Panics
    ///
    /// If `cpu >= nr_cpu_ids()`.
    pub fn get_mut(&mut self, cpu: usize) -> &mut T {
        let slots = self.alloc_mut();
        let n = slots.len();
        match slots.get_mut(cpu) {
            Some(s) => s,
            None => bad_cpu(cpu, n),
        }
    }

    fn alloc_mut(&mut self) -> &mut [CachePadded<T>] {
        let (p, n) = self.raw();
        // SAFETY: `p` points to `n` initialised slots owned by `self`, and
        // `&mut self` excludes every other reference to them.
        unsafe { core::slice::from_raw_parts_mut(p, n) }
    }

    /// The number of elements, `nr_cpu_ids()`.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// Always `false`: there is at least one CPU.
    pub fn is_empty(&self) -> bool {
        self.slots().is_empty()
    }

    /// Frees the elements (`free_percpu`); the same as dropping.
    #[doc(alias = "free_percpu")]
    pub fn free(self) {}
}

impl<T> Drop for PerCpu<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            let n = *self.len.get_mut();
            // SAFETY: `p` and `n` came from `Box::into_raw` of a boxed slice of
            // `n` slots (`alloc` or `from_fn`), freed nowhere else.
            drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(p, n)) });
        }
    }
}

#[cold]
#[inline(never)]
fn bad_cpu(cpu: usize, n: usize) -> ! {
    panic!("ksync: per-CPU access to cpu {cpu}, but nr_cpu_ids is {n}");
}

impl<T: fmt::Debug> fmt::Debug for PerCpu<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Integer atomics usable as per-CPU counters: the `this_cpu_*` operations of
/// [`PerCpu`] are defined for `PerCpu<A>` where `A` is one of these.
pub trait PerCpuInt: Sync + Default {
    /// The integer type.
    type Int: Copy + core::iter::Sum + fmt::Debug;
    /// One, for `inc`/`dec`.
    const ONE: Self::Int;
    /// A relaxed atomic add (wrapping).
    fn add(&self, v: Self::Int);
    /// A relaxed atomic subtract (wrapping).
    fn sub(&self, v: Self::Int);
    /// A relaxed load.
    fn read(&self) -> Self::Int;
    /// A relaxed store.
    fn write(&self, v: Self::Int);
    /// Wrapping sum of two values.
    fn wrapping_sum(a: Self::Int, b: Self::Int) -> Self::Int;
}

macro_rules! per_cpu_int {
    ($($a:ty => $i:ty),* $(,)?) => {$(
        impl PerCpuInt for $a {
            type Int = $i;
            const ONE: $i = 1;
            // Relaxed everywhere: per-CPU statistics order nothing; sums are exact
            // once the updaters are done (their joins order the updates).
            #[inline]
            fn add(&self, v: $i) {
                self.fetch_add(v, Ordering::Relaxed);
            }
            #[inline]
            fn sub(&self, v: $i) {
                self.fetch_sub(v, Ordering::Relaxed);
            }
            #[inline]
            fn read(&self) -> $i {
                self.load(Ordering::Relaxed)
            }
            #[inline]
            fn write(&self, v: $i) {
                self.store(v, Ordering::Relaxed);
            }
            #[inline]
            fn wrapping_sum(a: $i, b: $i) -> $i {
                a.wrapping_add(b)
            }
        }
    )*};
}

per_cpu_int!(
    AtomicU64 => u64,
    AtomicI64 => i64,
    AtomicU32 => u32,
    AtomicI32 => i32,
    AtomicUsize => usize,
    AtomicIsize => isize,
);

impl<A: PerCpuInt> PerCpu<A> {
    /// Adds `v` to this CPU's element (`this_cpu_add`): one relaxed atomic add on
    /// the slot of the CPU the thread is on, correct even if it has just migrated.
    #[doc(alias = "__this_cpu_add")]
    #[doc(alias = "raw_cpu_add")]
    #[inline]
    pub fn this_cpu_add(&self, v: A::Int) {
        self.this_cpu().add(v);
    }

    /// Subtracts `v` from this CPU's element (`this_cpu_sub`).
    #[inline]
    pub fn this_cpu_sub(&self, v: A::Int) {
        self.this_cpu().sub(v);
    }

    /// Adds one to this CPU's element (`this_cpu_inc`).
    #[doc(alias = "__this_cpu_inc")]
    #[inline]
    pub fn this_cpu_inc(&self) {
        self.this_cpu().add(A::ONE);
    }

    /// Subtracts one from this CPU's element (`this_cpu_dec`).
    #[doc(alias = "__this_cpu_dec")]
    #[inline]
    pub fn this_cpu_dec(&self) {
        self.this_cpu().sub(A::ONE);
    }

    /// This CPU's element (`this_cpu_read`).
    #[doc(alias = "__this_cpu_read")]
    #[inline]
    pub fn this_cpu_read(&self) -> A::Int {
        self.this_cpu().read()
    }

    /// Sets this CPU's element (`this_cpu_write`).
    #[doc(alias = "__this_cpu_write")]
    #[inline]
    pub fn this_cpu_write(&self, v: A::Int) {
        self.this_cpu().write(v);
    }

    /// The wrapping sum of every CPU's element: exact once concurrent updates
    /// have finished, a snapshot of moving values otherwise.
    pub fn sum(&self) -> A::Int {
        let mut it = self.iter().map(|(_, a)| a.read());
        let first = it.next().expect("ksync: at least one CPU");
        it.fold(first, A::wrapping_sum)
    }
}

/// The raw lock of a [`LocalLock`]: ksync's one internal lock
/// (`rawlock::RawLock`, a three-state futex word). Contention is rare
/// (only threads that are or were on the same CPU meet here), so its bounded
/// poll nearly always wins before it would sleep. Lockdep tracks it as the
/// kernel's `local_lock_t` (its `dep_map`): a spinning lock of wait type
/// [`Config`](crate::lockdep::WaitType::Config) that the irq-dependency
/// searches pass over (`LD_LOCK_PERCPU`); its class is the place that created
/// it.
pub struct RawLocalLock {
    lock: crate::rawlock::RawLock,
    dep_map: crate::lockdep::LockdepMap,
}

impl RawLocalLock {
    /// A free lock; its lockdep class is the caller's source location.
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new() -> Self {
        RawLocalLock {
            lock: crate::rawlock::RawLock::new(),
            dep_map: crate::lockdep::LockdepMap::new("local_lock_t").local_lock(),
        }
    }

    /// A free lock (loom build: loom's atomics have no `const fn new`).
    #[cfg(loom)]
    #[track_caller]
    pub fn new() -> Self {
        RawLocalLock {
            lock: crate::rawlock::RawLock::new(),
            dep_map: crate::lockdep::LockdepMap::new("local_lock_t").local_lock(),
        }
    }
}

impl Default for RawLocalLock {
    #[track_caller]
    fn default() -> Self {
        <Self as crate::lock::Backend>::new()
    }
}

// SAFETY: `RawLock` is a mutual-exclusion lock (one holder at a time, its
// Acquire lock pairing with the previous holder's Release unlock). Exclusive
// only: `Concurrent` is `()`.
unsafe impl crate::lock::Backend for RawLocalLock {
    type GuardState = Preempt;
    type Concurrent<T: ?Sized> = ();
    const NAME: &'static str = "local_lock";

    #[track_caller]
    fn new() -> Self {
        // Reached through `Lock::default`, maybe as a `PerCpu`'s `T::default`:
        // the variable's class if it lends one.
        let mut raw = RawLocalLock::new();
        raw.dep_map.take_class_site();
        raw
    }

    #[inline(always)]
    fn dep_map(&self) -> Option<&crate::lockdep::LockdepMap> {
        Some(&self.dep_map)
    }

    #[inline(always)]
    fn lock(&self) {
        self.lock.lock();
    }

    #[inline(always)]
    fn try_lock(&self) -> bool {
        self.lock.try_lock()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (the trait's contract).
        unsafe { self.lock.unlock() }
    }

    #[inline(always)]
    fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }
}

/// A lock around one per-CPU element (`local_lock_t`): what
/// [`PerCpu::get_cpu_var`] takes so that a thread keeps exclusive use of "its"
/// CPU's element even if the OS migrates it before `put_cpu_var`. The generic
/// [`Lock`] over [`RawLocalLock`]; the guard disables preemption while held.
#[doc(alias = "local_lock_t")]
pub type LocalLock<T> = Lock<T, RawLocalLock>;

impl<T> LocalLock<T> {
    /// Wraps `value` (`local_lock_init`); the lockdep class is the caller's
    /// source location.
    #[doc(alias = "local_lock_init")]
    #[cfg(not(loom))]
    #[track_caller]
    pub const fn new(value: T) -> Self {
        Lock::from_raw(RawLocalLock::new(), value)
    }

    /// Wraps `value` (loom build).
    #[cfg(loom)]
    #[track_caller]
    pub fn new(value: T) -> Self {
        Lock::from_raw(RawLocalLock::new(), value)
    }
}

impl<T: ?Sized> LocalLock<T> {
    /// Saves the irq state, disables irqs, then takes the lock
    /// (`local_lock_irqsave`); the guard restores the saved state after the
    /// unlock (`local_unlock_irqrestore`). For per-CPU data that an interrupt
    /// handler on this thread also touches: the handler cannot run in the
    /// middle, and lockdep-free code still reads as the kernel's.
    ///
    /// ```
    /// use ksync::irq::irqs_disabled;
    /// use ksync::percpu::LocalLock;
    /// let l = LocalLock::new(0u32);
    /// {
    ///     let mut g = l.lock_irqsave();
    ///     assert!(irqs_disabled() && g.saved_flags().is_some());
    ///     *g += 1;
    /// } // local_unlock_irqrestore
    /// assert!(!irqs_disabled());
    /// ```
    #[doc(alias = "local_lock_irqsave")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_irqsave(&self) -> LocalLockIrqSaveGuard<'_, T> {
        self.lock_in(0)
    }

    /// Disables irqs, then takes the lock (`local_lock_irq`); the guard
    /// re-enables them after the unlock (`local_unlock_irq`).
    #[doc(alias = "local_lock_irq")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_irq(&self) -> Guard<'_, T, RawLocalLock, IrqOff> {
        self.lock_in(0)
    }
}

/// The guard of [`LocalLock::lock_irqsave`]: dropping it unlocks, then
/// restores the saved irq state (`local_unlock_irqrestore`).
#[doc(alias = "local_unlock_irqrestore")]
#[doc(alias = "local_unlock_irq")]
pub type LocalLockIrqSaveGuard<'a, T> = Guard<'a, T, RawLocalLock, IrqSave>;

impl<T: Send> PerCpu<LocalLock<T>> {
    /// Exclusive use of this CPU's element until the guard is dropped
    /// (`get_cpu_var` … `put_cpu_var`, `local_lock(&var.lock)`).
    ///
    /// ```
    /// use ksync::percpu::{LocalLock, PerCpu};
    ///
    /// let hist: PerCpu<LocalLock<[u64; 4]>> = PerCpu::new();
    /// std::thread::scope(|s| {
    ///     for t in 0..4usize {
    ///         let hist = &hist;
    ///         s.spawn(move || {
    ///             for _ in 0..100 {
    ///                 let mut h = hist.get_cpu_var();
    ///                 h[t] += 1; // never torn, never lost, even across a migration
    ///             }
    ///         });
    ///     }
    /// });
    /// let mut total = [0u64; 4];
    /// for (_, slot) in hist.iter() {
    ///     let h = slot.lock();
    ///     for i in 0..4 {
    ///         total[i] += h[i];
    ///     }
    /// }
    /// assert_eq!(total, [100; 4]);
    /// ```
    #[doc(alias = "get_cpu_ptr")]
    #[inline]
    pub fn get_cpu_var(&self) -> CpuVarGuard<'_, T> {
        self.this_cpu().lock()
    }
}

/// Exclusive use of one per-CPU element, from [`PerCpu::get_cpu_var`] or
/// [`LocalLock::lock`](Lock::lock); dropping it is `put_cpu_var`.
///
/// `!Send`: it re-enables preemption, a per-thread count, on drop.
///
/// ```compile_fail
/// use ksync::percpu::{LocalLock, PerCpu};
/// static V: PerCpu<LocalLock<u64>> = PerCpu::new();
/// let g = V.get_cpu_var();
/// std::thread::spawn(move || drop(g)); // error: the guard is not `Send`
/// ```
pub type CpuVarGuard<'a, T> = Guard<'a, T, RawLocalLock>;

impl<T: ?Sized> CpuVarGuard<'_, T> {
    /// Releases the element (`put_cpu_var`, `local_unlock`); the same as dropping.
    #[doc(alias = "put_cpu_var")]
    #[doc(alias = "put_cpu_ptr")]
    #[doc(alias = "local_unlock")]
    #[inline]
    pub fn put(self) {}
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `local_lock_irqsave` nests inside irqs-off code and restores the state
    /// it found: still off after the inner unlock, on after the outer.
    #[test]
    fn local_lock_irqsave_restores_the_saved_state() {
        use crate::ctx::{irqs_disabled, local_irq_disable, local_irq_enable, preempt_count};
        let l = LocalLock::new(1u32);
        local_irq_disable();
        {
            let mut g = l.lock_irqsave();
            assert!(irqs_disabled() && preempt_count() == 1);
            *g += 1;
        }
        assert!(irqs_disabled() && preempt_count() == 0);
        local_irq_enable();
        drop(l.lock_irq());
        assert!(!irqs_disabled());
        assert_eq!(*l.lock_irqsave(), 2);
        assert!(!irqs_disabled());
    }

    #[test]
    fn slots_are_padded_and_indexed_by_cpu() {
        let p: PerCpu<AtomicU64> = PerCpu::new();
        assert_eq!(p.len(), nr_cpu_ids());
        assert!(!p.is_empty());
        let a = p.get(0) as *const _ as usize;
        if p.len() > 1 {
            let b = p.get(1) as *const _ as usize;
            assert!(b - a >= 64, "slots share a cache line");
        }
        p.this_cpu_add(5);
        p.this_cpu_inc();
        p.this_cpu_dec();
        p.this_cpu_sub(1);
        assert_eq!(p.sum(), 4);
        let q: PerCpu<AtomicI32> = PerCpu::new();
        q.this_cpu_write(-10);
        // Only one slot was written, whichever CPU the thread was on.
        assert_eq!(q.sum(), -10);
    }

    #[test]
    fn from_fn_sets_each_cpu() {
        let mut p = PerCpu::from_fn(|cpu| cpu * 2);
        for (cpu, v) in p.iter() {
            assert_eq!(*v, cpu * 2);
        }
        *p.get_mut(0) = 7;
        assert_eq!(*p.get(0), 7);
        assert_eq!(p.iter_mut().count(), nr_cpu_ids());
        assert_eq!(for_each_possible_cpu().len(), nr_cpu_ids());
        p.free();
    }

    #[test]
    #[should_panic(expected = "nr_cpu_ids")]
    fn get_beyond_nr_cpu_ids_panics() {
        let p: PerCpu<u8> = PerCpu::new();
        p.get(nr_cpu_ids());
    }

    #[test]
    fn get_cpu_var_disables_preemption_until_put() {
        let p: PerCpu<LocalLock<u32>> = PerCpu::new();
        assert!(crate::ctx::preemptible());
        let mut g = p.get_cpu_var();
        assert!(!crate::ctx::preemptible());
        *g += 1;
        g.put();
        assert!(crate::ctx::preemptible());
        assert_eq!(p.iter().map(|(_, l)| *l.lock()).sum::<u32>(), 1);
    }
}
