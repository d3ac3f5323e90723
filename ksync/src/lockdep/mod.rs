//! Lockdep: the kernel's lock validator, and the other `CONFIG_DEBUG_*` checks.
//!
//! Every ksync lock embeds a [`LockdepMap`] and calls [`acquire`] and [`release`]
//! from its shared acquire and release paths; the sleep path calls
//! [`might_sleep`]. Without the `lockdep` feature the map is zero-sized and the
//! hooks are empty `#[inline(always)]` functions: they compile to nothing.
//!
//! # What it finds
//!
//! With the feature on (and `KSYNC_LOCKDEP` not `off`), lockdep reports, the first
//! time the pattern is *seen* — not when it hangs:
//!
//! | report | kernel heading |
//! |---|---|
//! | [`ReportKind::CircularDependency`] | possible circular locking dependency detected |
//! | [`ReportKind::RecursiveLocking`] | possible recursive locking detected |
//! | [`ReportKind::InconsistentIrqUsage`] | inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage |
//! | [`ReportKind::IrqSafeToUnsafe`] | HARDIRQ-safe -> HARDIRQ-unsafe lock order detected |
//! | [`ReportKind::IrqLockInversion`] | possible irq lock inversion dependency detected |
//! | [`ReportKind::BadUnlockBalance`] | bad unlock balance detected |
//! | [`ReportKind::HeldAtExit`] | lock held when returning to user space (here: at thread exit) |
//! | [`ReportKind::SleepInAtomic`] | BUG: sleeping function called from invalid context |
//! | [`ReportKind::InvalidWaitContext`] | BUG: Invalid wait context (a `SpinLock` inside a `RawSpinLock` or a hardirq handler not threaded; a sleeping lock inside a spinning one) |
//! | [`ReportKind::RcuSyncInReader`] | Illegal synchronize_rcu() in RCU read-side critical section |
//! | [`ReportKind::HeldLockFreed`] | held lock freed! (a lock dropped or re-initialised while held) |
//! | [`ReportKind::NotHeld`] | `lockdep_assert_held` failed |
//! | [`ReportKind::NestLockNotHeld`] | Nested lock was not taken |
//! | [`ReportKind::TooDeep`] | BUG: MAX_LOCK_DEPTH too low / too many lock classes |
//! | [`ReportKind::IrqRestoreOutOfOrder`] | raw_local_irq_restore() called with IRQs enabled (`CONFIG_DEBUG_IRQFLAGS`): guards dropped out of order |
//!
//! Each report is printed to stderr in the kernel's format and collected, so tests
//! can assert it: [`take_reports`] (this thread's) and [`take_reports_involving`]
//! (any thread's, by class name). `KSYNC_LOCKDEP=warn` (the default) prints and
//! collects, `panic` also panics after printing, `off` disables the validator;
//! [`set_mode`] does the same from code.
//!
//! # Example: an AB-BA inversion, found without a hang
//!
//! ```
//! use ksync::lockdep::{self, AcquireKind::Exclusive, LockdepMap, Mode, ReportKind};
//!
//! let a = LockdepMap::new("a"); // two classes: two creation sites
//! let b = LockdepMap::new("b");
//! lockdep::acquire(&a, Exclusive, false, 0); // a, then b
//! lockdep::acquire(&b, Exclusive, false, 0);
//! lockdep::release(&b);
//! lockdep::release(&a);
//! lockdep::acquire(&b, Exclusive, false, 0); // b, then a: reported here
//! lockdep::acquire(&a, Exclusive, false, 0);
//! lockdep::release(&a);
//! lockdep::release(&b);
//!
//! let reports = lockdep::take_reports();
//! if lockdep::mode() == Mode::Off {
//!     assert!(reports.is_empty()); // built without the feature, or KSYNC_LOCKDEP=off
//! } else {
//!     assert_eq!(reports[0].kind, ReportKind::CircularDependency);
//!     assert!(reports[0].involves("a") && reports[0].involves("b"));
//! }
//! ```
//!
//! # The model (kernel/locking/lockdep.c, Documentation/locking/lockdep-design.rst)
//!
//! - **Classes.** Lockdep reasons about classes of locks, not instances. A lock's
//!   class is the place that created it (`#[track_caller]`: a `static` is its own
//!   class; every lock made at run time by one line of code shares that line's class)
//!   or an explicit [`LockClassKey`] ([`LockdepMap::with_key`], `lockdep_set_class`).
//!   Taking two locks of one class nested needs distinct `subclass` numbers
//!   (`spin_lock_nested`, `mutex_lock_nested`), else it is reported as recursive
//!   locking. The class id is cached in the map, so only the first acquisition of a
//!   lock looks it up.
//! - **Held locks.** Each thread keeps a stack of the locks it holds (at most
//!   [`MAX_LOCK_DEPTH`]), with the irq context each was taken in.
//! - **Dependencies.** Acquiring B while holding A records the edge A → B in one
//!   global graph. Before an edge is added, the graph is searched for a path
//!   B → … → A; if one exists, the two orders can deadlock, and both are printed.
//!   Read locks follow the kernel's rules: an edge remembers whether its source was
//!   held shared and whether its target was taken as a recursive read, and a cycle
//!   is only reported when it is *strong* (no lock in it is entered as a recursive
//!   read and left as a shared hold). Taking a [`AcquireKind::RecursiveRead`] of a
//!   class already held for read is fine; an [`AcquireKind::Read`] (rwsem-style)
//!   recursion is reported, because a waiting writer would deadlock it.
//! - **Chains.** The sequence of held classes plus the new one hashes to a chain
//!   key; a global lock-free table remembers validated chains, so an acquisition
//!   pattern seen before costs one lookup and no lock.
//! - **Irq states.** Each class collects usage bits from the context of every
//!   acquisition (in hardirq, in softirq, with hardirqs enabled, with softirqs
//!   enabled; read or write), and the locks a thread holds when it enables irqs
//!   or bottom halves gain the enabled usage then (`mark_held_locks`, run by
//!   `ctx` as deferred work only when a lock taken with them off may gain it).
//!   A class used in an irq and also taken with that irq enabled is reported
//!   (a read in the irq conflicts only with a write with it enabled, and the
//!   reverse); so is a dependency, along a strong path, from an irq-safe class
//!   to an irq-unsafe one: [`ReportKind::IrqSafeToUnsafe`] when the dependency
//!   is new, [`ReportKind::IrqLockInversion`] when the usage is.
//! - **Trylocks** never wait, so they add no dependencies to the lock they take
//!   (but locks taken while holding them do).
//! - **Wait types.** Each map has the kernel's inner and outer [`WaitType`]:
//!   [`LockdepMap::raw_spinning`] (`raw_spinlock_t`), [`LockdepMap::spinning`]
//!   (`spinlock_t`, `rwlock_t`), [`LockdepMap::sleeping`] (mutexes, rwsems),
//!   or any pair ([`LockdepMap::with_waits`]). A spinning map must not be held
//!   across a sleep; maps named `rcu_read_lock*` are RCU read sections. Both
//!   make [`might_sleep`] report, and RCU maps make
//!   [`assert_not_in_rcu_read_section`] report. A sleeping map's (non-try)
//!   acquisition is itself a sleep point (`mutex_lock`'s `might_sleep()`).
//!   Every acquisition is checked against the wait context
//!   (`check_wait_context`): a lock whose waiters could not wait where it is
//!   taken is [`ReportKind::InvalidWaitContext`] (see [`WaitType`]).
//!
//! # Rules for the locks that call the hooks
//!
//! - A blocking or spinning acquisition calls [`acquire`] *before* it waits (so
//!   recursion and inversions are reported before the thread hangs); a trylock calls
//!   it (with `trylock = true`) only after it succeeded. A blocking acquisition
//!   that fails (interrupted, killed, timed out) calls [`release`] to undo it.
//! - [`release`] is called once per acquisition, after the lock is released.
//! - Spinning waits must not go through `sched::sleep` (it calls [`might_sleep`]).
//!
//! # What feeds it
//!
//! | ksync lock | lockdep sees |
//! |---|---|
//! | [`SpinLock`](crate::spinlock::SpinLock), raw spinlocks, and the writer lock of a [`SeqLock`](crate::seqlock::SeqLock) | exclusive acquisitions; the `_irq`/`_irqsave`/`_bh` forms by the irq state they set |
//! | [`RwLock`](crate::spinlock::RwLock) (`rwlock_t`) | `write_lock` exclusive; `read_lock` a recursive read in irq context (and on the unfair lock), a plain read in process context on the queued (fair) lock, which makes a waiting writer block new readers (the kernel's `read_lock_is_recursive`) |
//! | [`Mutex`](crate::mutex::Mutex) | a sleeping lock: `mutex_lock` in atomic context is reported even uncontended; [`lock_nested`](crate::mutex::Mutex::lock_nested) gives the subclass |
//! | [`RwSemaphore`](crate::rwsem::RwSemaphore) | `down_write` exclusive, `down_read` a plain (non-recursive) read |
//! | [`RtMutex`](crate::rtmutex::RtMutex) | a sleeping lock, as `Mutex` |
//! | [`PercpuRwSemaphore`](crate::percpu_rwsem::PercpuRwSemaphore) | a sleeping lock: `percpu_down_write` exclusive, `percpu_down_read` a recursive read (read holds nest past a waiting writer) |
//! | [`WwMutex`](crate::ww_mutex::WwMutex) and its [`WwAcquireCtx`](crate::ww_mutex::WwAcquireCtx) | the context is a held lock of the class's acquire class while it lives, and the nest lock of the class's mutexes, so any number of them held under one context is not recursion |
//! | [`LocalLock`](crate::percpu::LocalLock) (`local_lock_t`, `get_cpu_var`) | exclusive acquisitions of a per-CPU lock: wait type `CONFIG`, passed over by the irq-dependency searches (`LD_LOCK_PERCPU`) |
//! | [`rcu_read_lock`](crate::rcu::rcu_read_lock) | a recursive-read pseudo-lock named `rcu_read_lock`: sleeping and waiting for a grace period inside it are reported |
//! | [`Semaphore`](crate::semaphore::Semaphore), [`Completion`](crate::completion::Completion), [`WaitQueue`](crate::sched::WaitQueue), [`CondVar`](crate::condvar::CondVar) waits | [`might_sleep`] only: no owner, so no lock order (as in the kernel); a condvar wait is its mutex's unlock and relock |
//!
//! Tests on the real locks (every report kind, a real irq): `ksync/tests/lockdep_real.rs`.
//!
//! # Lock statistics (`CONFIG_LOCK_STAT`)
//!
//! With `KSYNC_LOCKSTAT=1` or [`lock_stat_enable`]`(true)`, lockdep also
//! counts, per class, contentions and acquisitions, wait and hold times (read
//! and write holds apart) and the call sites that contended; [`lock_stats`]
//! returns them and [`LockStatTable`] prints them as `/proc/lock_stat` does
//! (`ksync lockdep-demo --stat`, `ksync lockstat`). The generic lock calls
//! [`lock_acquired`] after each acquisition and the backends call
//! [`lock_contended`] from their slow paths; off, they cost one relaxed load.
//! Details: the `stat` module's source, `ksync/tests/lock_stat.rs`.
//!
//! # Limits
//!
//! New dependencies capture a `std::backtrace::Backtrace` (printed in the report
//! as the "existing dependency chain") when `RUST_BACKTRACE`/`RUST_LIB_BACKTRACE`
//! enable it; set `RUST_LIB_BACKTRACE=0` to skip that cost. Reports print
//! each stack as the kernel does, from the call into ksync outward (the
//! validator's own frames and std's thread start left out, one short line per
//! frame); `KSYNC_LOCKDEP_TRACE=raw` prints std's whole trace instead.
//!
//! The first acquisition of a new chain takes a `std` mutex and may allocate, so an
//! irq handler (a signal handler) that takes a lock in a chain never seen before is
//! not async-signal-safe with the feature on; the hooks disable ksync irqs while
//! they run so a handler never interrupts the validator itself.

#[cfg(feature = "lockdep")]
use core::panic::Location;
#[cfg(feature = "lockdep")]
use core::sync::atomic::AtomicU32;
#[cfg(all(feature = "lockdep", not(loom)))]
use core::sync::atomic::{AtomicPtr, AtomicUsize};

mod report;
mod stat;

// The validator (feature `lockdep`), split by concern. `hooks` holds the entry
// points that the functions below call, and uses the rest; below it, each file
// uses only the ones after it in this list:
// - `graph`: validating a new chain: recursion, new dependencies, cycles;
// - `wait_context`: locks taken where their waiters could not wait;
// - `wait`: sleeping in atomic context, grace-period waits in RCU readers;
// - `usage`: irq context, usage bits set per acquisition, the irq rules;
// - `held`: the per-thread held-lock stack; unlock balance, depth, thread exit;
// - `classes`: the class table, usage bit layout, per-map cache, registration;
// - `chains`: chain keys and the cache of validated chains;
// - `state`: the global state behind the validator's one `std` mutex;
// - `report`: report kinds, mode, collection, and the text every report shares.
#[cfg(all(feature = "lockdep", not(loom)))]
mod chains;
#[cfg(all(feature = "lockdep", not(loom)))]
mod classes;
#[cfg(all(feature = "lockdep", not(loom)))]
mod graph;
#[cfg(all(feature = "lockdep", not(loom)))]
mod held;
#[cfg(all(feature = "lockdep", not(loom)))]
mod hooks;
#[cfg(all(feature = "lockdep", not(loom)))]
mod state;
#[cfg(all(feature = "lockdep", not(loom)))]
mod usage;
#[cfg(all(feature = "lockdep", not(loom)))]
mod wait;
#[cfg(all(feature = "lockdep", not(loom)))]
mod wait_context;

pub use report::{Mode, Report, ReportKind, mode, set_mode, take_reports, take_reports_involving};
pub(crate) use stat::on as lock_stat_on;
pub use stat::{
    ClassStats, HoldStats, LockPoint, LockStatTable, LockTime, lock_stat_enable, lock_stat_enabled,
    lock_stat_reset, lock_stat_table, lock_stats,
};

/// The most locks one thread can hold at once (`MAX_LOCK_DEPTH`).
pub const MAX_LOCK_DEPTH: usize = 48;

/// An explicit lock class (`struct lock_class_key`): locks made with the same key
/// share a class, wherever they are created.
///
/// ```
/// use ksync::lockdep::{LockClassKey, LockdepMap};
/// static INODE_KEY: LockClassKey = LockClassKey::new("inode_lock");
/// let a = LockdepMap::with_key("inode_lock", &INODE_KEY);
/// let b = LockdepMap::with_key("inode_lock", &INODE_KEY); // the same class as `a`
/// # let _ = (a, b);
/// ```
#[doc(alias = "lock_class_key")]
pub struct LockClassKey {
    name: &'static str,
}

impl LockClassKey {
    /// A class key named `name`; declare it as a `static` (its address is the class).
    pub const fn new(name: &'static str) -> Self {
        LockClassKey { name }
    }

    /// The class's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

/// The key of every map that is not validated (`__lockdep_no_validate__`).
#[cfg(feature = "lockdep")]
static NOVALIDATE_KEY: LockClassKey = LockClassKey::new("");

/// How a lock is being acquired, for the dependency rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireKind {
    /// Exclusive (spin_lock, mutex_lock, down_write, down).
    Exclusive,
    /// Shared, not recursive: a read that can block behind a waiting writer (down_read).
    Read,
    /// Shared and recursive: a read that never blocks behind a writer while another
    /// read is held (read_lock on rwlock_t, rcu_read_lock).
    RecursiveRead,
}

/// Where a lock may be taken, by how its waiters wait (`enum
/// lockdep_wait_type`, `LD_WAIT_*`), ordered from the strictest context to the
/// loosest.
///
/// Each class has an *inner* type (the context its holders are in: what may be
/// taken inside it) and an *outer* type (the context needed to take it; the
/// inner one unless set apart, as for RCU readers). Taking a lock whose outer
/// type is looser than the strictest inner type of the locks held in the same
/// irq context, or of the context itself (a hardirq handler not threaded:
/// [`Spin`](Self::Spin); a threaded one or a softirq: [`Config`](Self::Config)),
/// is reported as [`ReportKind::InvalidWaitContext`].
///
/// ksync checks as the kernel does with `CONFIG_PROVE_RAW_LOCK_NESTING`, its
/// default since 6.13 on the architectures that support PREEMPT_RT:
/// [`Config`](Self::Config) is stricter than [`Sleep`](Self::Sleep) and looser
/// than [`Spin`](Self::Spin), so a `SpinLock` (`spinlock_t`, a sleeping lock on
/// PREEMPT_RT) inside a `RawSpinLock` is reported even though it spins here.
/// A raised preempt count alone lowers no wait type (as in the kernel: every
/// spinlock raises it), but a sleeping lock's acquisition there is still a
/// sleep in atomic context ([`ReportKind::SleepInAtomic`]).
#[doc(alias = "lockdep_wait_type")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum WaitType {
    /// Not checked (`LD_WAIT_INV`): the map takes no part in wait contexts.
    #[doc(alias = "LD_WAIT_INV")]
    Inv = 0,
    /// Wait-free (`LD_WAIT_FREE`): may be taken anywhere; the outer type of the
    /// RCU read-side pseudo-locks.
    #[doc(alias = "LD_WAIT_FREE")]
    Free = 1,
    /// Spins with preemption off on every kernel (`LD_WAIT_SPIN`):
    /// `raw_spinlock_t` ([`RawSpinLock`](crate::spinlock::RawSpinLock)), the
    /// inner type of `rcu_read_lock_sched` and of a hardirq handler that is
    /// not threaded.
    #[doc(alias = "LD_WAIT_SPIN")]
    Spin = 2,
    /// Spins here but sleeps on PREEMPT_RT (`LD_WAIT_CONFIG`): `spinlock_t`
    /// ([`SpinLock`](crate::spinlock::SpinLock)), `rwlock_t`, `local_lock_t`,
    /// the inner type of `rcu_read_lock`, softirqs and threaded hardirqs.
    #[doc(alias = "LD_WAIT_CONFIG")]
    Config = 3,
    /// Sleeps (`LD_WAIT_SLEEP`): mutexes, rw-semaphores, rt-mutexes.
    #[doc(alias = "LD_WAIT_SLEEP")]
    Sleep = 4,
}

/// The packed wait byte's mark of a per-CPU lock (`LD_LOCK_PERCPU`,
/// `local_lock_t`): the irq-dependency searches pass over it.
#[cfg(feature = "lockdep")]
pub(crate) const WAITS_PERCPU: u8 = 1 << 6;

/// The wait types of a map packed in one byte: inner in bits 0..3, outer in
/// bits 3..6 (outer defaulted to inner when not set apart); bit 6 is
/// [`WAITS_PERCPU`].
#[cfg(feature = "lockdep")]
pub(crate) const fn pack_waits(inner: WaitType, outer: WaitType) -> u8 {
    let outer = if matches!(outer, WaitType::Inv) {
        inner
    } else {
        outer
    };
    inner as u8 | (outer as u8) << 3
}

/// The lockdep state embedded in every lock (`struct lockdep_map`). Zero-sized
/// without the `lockdep` feature.
///
/// With the feature it holds the lock's name, creation site, optional class key,
/// wait types ([`WaitType`]) and a cache of its class ids for subclasses 0 and 1.
pub struct LockdepMap {
    #[cfg(feature = "lockdep")]
    pub(crate) name: &'static str,
    #[cfg(feature = "lockdep")]
    pub(crate) site: &'static Location<'static>,
    #[cfg(feature = "lockdep")]
    pub(crate) key: Option<&'static LockClassKey>,
    /// Inner and outer [`WaitType`], packed by [`pack_waits`].
    #[cfg(feature = "lockdep")]
    pub(crate) waits: u8,
    /// The subclass of plain acquisitions (`lockdep_set_subclass`), 0 normally.
    #[cfg(feature = "lockdep")]
    pub(crate) subclass: u32,
    /// Class id per subclass 0 and 1 (`class_cache`); 0 = not looked up yet.
    #[cfg(feature = "lockdep")]
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) class_cache: [AtomicU32; 2],
    /// Lock statistics: the thread that acquired the lock last (the address
    /// of its held-lock stack; 0 none), for bounces (the kernel's `cpu`).
    #[cfg(all(feature = "lockdep", not(loom)))]
    pub(crate) stat_owner: AtomicUsize,
    /// Lock statistics: where the last acquirer took the lock (a `&'static
    /// Location`, or null), the contending point of whoever waits for it
    /// (the kernel's `ip`).
    #[cfg(all(feature = "lockdep", not(loom)))]
    pub(crate) stat_ip: AtomicPtr<Location<'static>>,
}

impl LockdepMap {
    /// A map whose class is the caller's source location (`file:line:column`).
    /// Call it from your lock's `#[track_caller] const fn new`, so the class is
    /// the place that created the lock.
    #[track_caller]
    pub const fn new(name: &'static str) -> Self {
        Self::with_class(name, None)
    }

    /// A map whose class is `key` (`lockdep_set_class`, `__mutex_init(.., key)`).
    #[doc(alias = "lockdep_set_class")]
    #[track_caller]
    pub const fn with_key(name: &'static str, key: &'static LockClassKey) -> Self {
        Self::with_class(name, Some(key))
    }

    /// A map named `name` whose class is `key`, or without one the caller's
    /// source location (`#[track_caller]` passes on the caller of `new`).
    #[track_caller]
    const fn with_class(name: &'static str, key: Option<&'static LockClassKey>) -> Self {
        let _ = (name, key);
        LockdepMap {
            #[cfg(feature = "lockdep")]
            name,
            #[cfg(feature = "lockdep")]
            site: Location::caller(),
            #[cfg(feature = "lockdep")]
            key,
            #[cfg(feature = "lockdep")]
            waits: 0,
            #[cfg(feature = "lockdep")]
            subclass: 0,
            #[cfg(feature = "lockdep")]
            class_cache: [AtomicU32::new(0), AtomicU32::new(0)],
            #[cfg(all(feature = "lockdep", not(loom)))]
            stat_owner: AtomicUsize::new(0),
            #[cfg(all(feature = "lockdep", not(loom)))]
            stat_ip: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// [`new`](Self::new) for a spinning lock (`spinlock_t`,
    /// [`WaitType::Config`]): sleeping while it is held is reported by
    /// [`might_sleep`].
    #[track_caller]
    pub const fn new_spinning(name: &'static str) -> Self {
        Self::new(name).spinning()
    }

    /// [`new`](Self::new) for a sleeping lock (`LD_WAIT_SLEEP`): a blocking
    /// acquisition of it in atomic context is reported, as `mutex_lock`'s
    /// `might_sleep()` does.
    #[track_caller]
    pub const fn new_sleeping(name: &'static str) -> Self {
        Self::new(name).sleeping()
    }

    /// Marks the map as a spinning lock that PREEMPT_RT turns into a sleeping
    /// one (`spinlock_t`, `rwlock_t`: [`WaitType::Config`]): no sleeping while
    /// it is held, and not to be taken inside a [`raw_spinning`](Self::raw_spinning)
    /// lock or a hardirq handler that is not threaded.
    #[must_use]
    pub const fn spinning(self) -> Self {
        self.with_waits(WaitType::Config, WaitType::Inv)
    }

    /// Marks the map as a spinning lock on every kernel (`raw_spinlock_t`:
    /// [`WaitType::Spin`]): no sleeping while it is held, and only raw
    /// spinning locks inside it.
    #[doc(alias = "raw_spinlock")]
    #[must_use]
    pub const fn raw_spinning(self) -> Self {
        self.with_waits(WaitType::Spin, WaitType::Inv)
    }

    /// Marks the map as a sleeping lock ([`WaitType::Sleep`]).
    #[must_use]
    pub const fn sleeping(self) -> Self {
        self.with_waits(WaitType::Sleep, WaitType::Inv)
    }

    /// Marks the map as a per-CPU lock (`local_lock_t`: `LD_LOCK_PERCPU`,
    /// [`WaitType::Config`]): a spinning lock for the wait and sleep checks,
    /// but passed over by the irq-dependency searches, as the kernel passes
    /// over local locks there (two CPUs never contend on one CPU's lock, so
    /// an irq-safe lock held around it cannot deadlock through it).
    #[must_use]
    pub(crate) const fn local_lock(self) -> Self {
        let m = self.spinning();
        #[cfg(feature = "lockdep")]
        {
            let mut m = m;
            m.waits |= WAITS_PERCPU;
            m
        }
        #[cfg(not(feature = "lockdep"))]
        m
    }

    /// The map with wait types `inner` and `outer` (`lockdep_init_map_waits`;
    /// [`WaitType::Inv`] as `outer`: the same as `inner`). A map whose inner
    /// type is [`Spin`](WaitType::Spin) or [`Config`](WaitType::Config) is a
    /// spinning lock (no sleeping while held), one whose inner type is
    /// [`Sleep`](WaitType::Sleep) a sleeping lock (its blocking acquisition
    /// is a sleep point), except the RCU read-side maps (named
    /// `rcu_read_lock*`), which are neither.
    ///
    /// ```
    /// use ksync::lockdep::{LockdepMap, WaitType};
    /// // The kernel's rcu_read_lock_sched map: taken anywhere, and inside it
    /// // only what may be taken with preemption off.
    /// static RCU_SCHED: LockdepMap =
    ///     LockdepMap::new("rcu_read_lock_sched").with_waits(WaitType::Spin, WaitType::Free);
    /// # let _ = &RCU_SCHED;
    /// ```
    #[doc(alias = "lockdep_init_map_waits")]
    #[doc(alias = "lockdep_init_map_wait")]
    #[must_use]
    pub const fn with_waits(self, inner: WaitType, outer: WaitType) -> Self {
        #[cfg(feature = "lockdep")]
        {
            let mut m = self;
            m.waits = pack_waits(inner, outer);
            m
        }
        #[cfg(not(feature = "lockdep"))]
        {
            let _ = (inner, outer);
            self
        }
    }

    /// Gives the map the class `key`, named `name`, from now on
    /// (`lockdep_set_class_and_name`): for a lock made at one place whose
    /// instances must be told apart (each inode type's lock, say). Call it
    /// before the lock is first taken; a class already used stays in the graph.
    #[doc(alias = "lockdep_set_class")]
    #[doc(alias = "lockdep_set_class_and_name")]
    pub fn set_class(&mut self, name: &'static str, key: &'static LockClassKey) {
        #[cfg(feature = "lockdep")]
        {
            self.name = name;
            self.key = Some(key);
            self.forget_class();
        }
        #[cfg(not(feature = "lockdep"))]
        let _ = (name, key);
    }

    /// Makes `subclass` the subclass of this map's plain acquisitions
    /// (`lockdep_set_subclass`): a lock always taken inside another of its
    /// class gets its own class once, instead of `_nested` at every call.
    #[doc(alias = "lockdep_set_subclass")]
    pub fn set_subclass(&mut self, subclass: u32) {
        #[cfg(feature = "lockdep")]
        {
            self.subclass = subclass;
            self.forget_class();
        }
        #[cfg(not(feature = "lockdep"))]
        let _ = subclass;
    }

    /// Turns validation off for this map (`lockdep_set_novalidate_class`): it
    /// is still tracked as held ([`lock_is_held`], held-lock lists), but gains
    /// no irq usage and no dependencies, in either direction. For locks whose
    /// nesting lockdep cannot express (the kernel's `device` mutex).
    #[doc(alias = "lockdep_set_novalidate_class")]
    pub fn set_novalidate_class(&mut self) {
        #[cfg(feature = "lockdep")]
        {
            self.key = Some(&NOVALIDATE_KEY);
            self.forget_class();
        }
    }

    /// Drops the cached class ids, so the next acquisition looks the class up
    /// again with the map's new key or subclass.
    #[cfg(feature = "lockdep")]
    fn forget_class(&mut self) {
        for c in &mut self.class_cache {
            *c.get_mut() = 0;
        }
    }

    /// The lock's name (`""` without the `lockdep` feature).
    pub const fn name(&self) -> &'static str {
        #[cfg(feature = "lockdep")]
        {
            match self.key {
                // The no-validate key has no name: the lock keeps its own.
                Some(k) if !k.name.is_empty() => k.name,
                _ => self.name,
            }
        }
        #[cfg(not(feature = "lockdep"))]
        ""
    }
}

/// A map dropped (the lock freed, or re-initialised by assignment) while the
/// current thread still holds it — a guard leaked with `mem::forget` — is
/// reported at once ("held lock freed", `debug_check_no_locks_freed`) and
/// leaves the held-lock stack. A map never acquired costs two loads. Lockdep
/// knows a held lock by its address, so a lock moved while held (possible
/// once its guard is forgotten) is not recognised when it is dropped.
#[cfg(all(feature = "lockdep", not(loom)))]
impl Drop for LockdepMap {
    fn drop(&mut self) {
        hooks::map_freed(self);
    }
}

impl core::fmt::Debug for LockdepMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        #[cfg(feature = "lockdep")]
        {
            write!(f, "LockdepMap({} at {})", self.name(), self.site)
        }
        #[cfg(not(feature = "lockdep"))]
        f.write_str("LockdepMap")
    }
}

#[cfg(all(feature = "lockdep", not(loom)))]
std::thread_local! {
    /// The class site that [`with_class_site`] lends to the local locks made
    /// on this thread meanwhile; `None` outside it.
    static CLASS_SITE: core::cell::Cell<Option<&'static Location<'static>>> =
        const { core::cell::Cell::new(None) };
}

/// Runs `make`, and gives every map that asks with
/// [`take_class_site`](LockdepMap::take_class_site) meanwhile (on this thread)
/// the class of source location `site`: how a per-CPU variable makes the
/// instances of its slots one class of their own, as the kernel's
/// per-variable static key does (`DEFINE_PER_CPU(local_lock_t, …)`), where
/// each would otherwise be of the one place, deep in the library, that called
/// `T::default` for it. Nests: the outer site is back when `make` returns or
/// unwinds.
#[cfg(feature = "lockdep")]
#[inline]
pub(crate) fn with_class_site<R>(site: &'static Location<'static>, make: impl FnOnce() -> R) -> R {
    #[cfg(all(feature = "lockdep", not(loom)))]
    {
        struct Restore(Option<&'static Location<'static>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = CLASS_SITE.try_with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(
            CLASS_SITE
                .try_with(|c| c.replace(Some(site)))
                .ok()
                .flatten(),
        );
        make()
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    {
        let _ = site;
        make()
    }
}

impl LockdepMap {
    /// Takes the class site that an enclosing [`with_class_site`] lends, if
    /// any: for a lock whose `new` a caller reached through a function
    /// pointer (`T::default`), where `#[track_caller]` sees no useful site.
    /// Only before the map's first acquisition (its class is looked up then).
    #[inline]
    pub(crate) fn take_class_site(&mut self) {
        #[cfg(all(feature = "lockdep", not(loom)))]
        if let Ok(Some(site)) = CLASS_SITE.try_with(|c| c.get()) {
            self.site = site;
        }
    }
}

/// Records that the current task acquires `map` (`lock_acquire`).
///
/// `trylock`: the lock was taken without waiting (call after success). `subclass`:
/// the nesting level for two locks of one class (`spin_lock_nested`), 0 normally.
#[doc(alias = "lock_acquire")]
#[doc(alias = "spin_acquire")]
#[doc(alias = "mutex_acquire")]
#[inline(always)]
#[track_caller]
pub fn acquire(map: &LockdepMap, kind: AcquireKind, trylock: bool, subclass: u32) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    hooks::acquire(map, kind, trylock, subclass);
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = (map, kind, trylock, subclass);
}

/// Records that the current task acquires `map` under the nest lock `nest`,
/// which it holds (`lock_acquire` with a `nest_lock`; the kernel's
/// `mutex_lock_nest_lock`, `spin_lock_nest_lock`): for many locks of one class
/// taken together under an outer lock that serializes whoever does so (all the
/// inodes of a rename under the filesystem's rename lock). Locks of the class
/// taken one after another share one entry of the held-lock stack, so any
/// number fit, and none counts as recursive locking; each is released with
/// [`release`]. Reports [`ReportKind::NestLockNotHeld`] if `nest` is not held.
///
/// ```
/// use ksync::lockdep::{self, AcquireKind::Exclusive, LockdepMap};
/// let outer = LockdepMap::new("rename_lock");
/// let inodes: Vec<LockdepMap> = (0..100).map(|_| LockdepMap::new("inode")).collect();
/// lockdep::acquire(&outer, Exclusive, false, 0);
/// for i in &inodes {
///     lockdep::acquire_nest(i, Exclusive, false, &outer); // 100 of one class
/// }
/// for i in &inodes {
///     lockdep::release(i);
/// }
/// lockdep::release(&outer);
/// assert!(lockdep::take_reports().is_empty());
/// ```
#[doc(alias = "lock_nest_lock")]
#[doc(alias = "mutex_lock_nest_lock")]
#[doc(alias = "spin_lock_nest_lock")]
#[inline]
#[track_caller]
pub fn acquire_nest(map: &LockdepMap, kind: AcquireKind, trylock: bool, nest: &LockdepMap) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    hooks::acquire_nest(map, kind, trylock, nest);
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = (map, kind, trylock, nest);
}

/// Lock statistics: the acquisition of `map` that this thread began with
/// [`acquire`] must wait (`lock_contended`). A lock calls it from its slow
/// path only, before it waits, so the uncontended fast path pays nothing; it
/// returns at once (one relaxed load) while statistics are off
/// ([`lock_stat_enable`]), and is empty without the feature.
#[inline(always)]
pub fn lock_contended(map: &LockdepMap) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    if stat::on() {
        held::stat_contended(map);
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = map;
}

/// Lock statistics: this thread now holds `map`, whose acquisition it began
/// with [`acquire`] (`lock_acquired`): the wait, if [`lock_contended`] began
/// one, ends and the hold time starts. The generic lock calls it after every
/// successful acquisition; it costs one relaxed load while statistics are
/// off, and nothing without the feature.
#[inline(always)]
pub fn lock_acquired(map: &LockdepMap) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    if stat::on() {
        held::stat_acquired(map);
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = map;
}

/// Records that the current task releases `map` (`lock_release`). Releasing a map
/// this thread does not hold is reported ("bad unlock balance").
#[doc(alias = "lock_release")]
#[doc(alias = "spin_release")]
#[doc(alias = "mutex_release")]
#[inline(always)]
pub fn release(map: &LockdepMap) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    hooks::release(map);
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = map;
}

/// Acquires the pseudo-lock `map` exclusively (`lock_map_acquire`): for
/// synchronization that is not a lock but can deadlock like one (waiting for a
/// work item, a completion that only one context signals). Pair it with
/// [`lock_map_release`].
///
/// ```
/// use ksync::lockdep::{self, LockdepMap};
/// static FLUSH: LockdepMap = LockdepMap::new("flush_work");
/// lockdep::lock_map_acquire(&FLUSH); // "holding" the work while it runs
/// lockdep::lock_map_release(&FLUSH);
/// # assert!(lockdep::take_reports().is_empty());
/// ```
#[inline(always)]
pub fn lock_map_acquire(map: &LockdepMap) {
    acquire(map, AcquireKind::Exclusive, false, 0);
}

/// Acquires the pseudo-lock `map` as a recursive read (`lock_map_acquire_read`).
#[inline(always)]
pub fn lock_map_acquire_read(map: &LockdepMap) {
    acquire(map, AcquireKind::RecursiveRead, false, 0);
}

/// Releases the pseudo-lock `map` (`lock_map_release`).
#[inline(always)]
pub fn lock_map_release(map: &LockdepMap) {
    release(map);
}

/// Validates taking `map` here without taking it (`might_lock`): the
/// dependencies and irq usage it would add are checked and recorded now, so a
/// path that only rarely takes the lock is validated on every run.
#[inline]
pub fn might_lock(map: &LockdepMap) {
    acquire(map, AcquireKind::Exclusive, false, 0);
    release(map);
}

/// [`might_lock`] for a read (`might_lock_read`).
#[inline]
pub fn might_lock_read(map: &LockdepMap) {
    acquire(map, AcquireKind::Read, false, 0);
    release(map);
}

/// Forgets everything lockdep learnt: the dependency graph, every class's irq
/// usage, the validated chains and the reports already given; and empties this
/// thread's held-lock stack (turning its validator back on if it had run out of
/// room). For tests (the kernel's self-test resets between cases): other
/// threads' held locks are kept, but what they taught the graph is gone, so
/// call it where no other thread's verdict matters. Does nothing without the
/// feature.
#[doc(alias = "lockdep_reset")]
pub fn reset() {
    #[cfg(all(feature = "lockdep", not(loom)))]
    hooks::reset();
}

/// Reports a sleep in atomic context (`might_sleep()`): with a raised preempt
/// count, irqs disabled, a spinning lock held or inside an RCU read section.
#[doc(alias = "might_sleep_if")]
#[doc(alias = "__might_sleep")]
#[inline(always)]
pub fn might_sleep() {
    #[cfg(all(feature = "lockdep", not(loom)))]
    hooks::might_sleep();
}

/// Whether the current thread holds `map` (`lock_is_held`). Without the feature,
/// or with lockdep off, this is `true`, as in the kernel, so assertions pass.
#[doc(alias = "lockdep_is_held")]
#[inline]
pub fn lock_is_held(map: &LockdepMap) -> bool {
    #[cfg(all(feature = "lockdep", not(loom)))]
    {
        hooks::lock_is_held(map)
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    {
        let _ = map;
        true
    }
}

/// Reports ([`ReportKind::NotHeld`]) unless the current thread holds `map`
/// (`lockdep_assert_held`). For a lock, [`assert_held`] takes the lock itself.
#[inline]
pub fn lockdep_assert_held(map: &LockdepMap) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    hooks::assert_held(map, None);
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = map;
}

/// A lock that lockdep tracks (anything with a [`LockdepMap`]): what
/// [`assert_held`], [`assert_held_write`], [`assert_held_read`] and
/// [`is_held`] take. Every ksync lock built on the generic
/// [`Lock`](crate::lock::Lock) implements it (`SpinLock`, `RawSpinLock`,
/// `RwLock`, `Mutex`, `RwSemaphore`, `RtMutex`, `PercpuRwSemaphore`,
/// `LocalLock`), and so do [`SeqLock`](crate::seqlock::SeqLock) (its writer
/// lock) and a bare [`LockdepMap`] (a pseudo-lock). A counting
/// [`Semaphore`](crate::semaphore::Semaphore) has no owner and no map, in the
/// kernel as here: it cannot be asserted held.
pub trait LockdepTracked {
    /// The lock's map; `None` for a lock lockdep does not track.
    fn lockdep_map(&self) -> Option<&LockdepMap>;
}

impl LockdepTracked for LockdepMap {
    #[inline]
    fn lockdep_map(&self) -> Option<&LockdepMap> {
        Some(self)
    }
}

impl<L: LockdepTracked + ?Sized> LockdepTracked for &L {
    #[inline]
    fn lockdep_map(&self) -> Option<&LockdepMap> {
        (**self).lockdep_map()
    }
}

/// Reports ([`ReportKind::NotHeld`]) unless the current thread holds `lock`,
/// in any mode (`lockdep_assert_held`). Without the feature, or with lockdep
/// off, it checks nothing, as in the kernel.
///
/// ```
/// use ksync::lockdep;
/// use ksync::mutex::Mutex;
/// use ksync::spinlock::SpinLock;
///
/// struct Dev { lock: SpinLock<()>, state: Mutex<u32> }
/// fn update_locked(d: &Dev) {
///     lockdep::assert_held(&d.lock); // callers must hold d.lock
///     lockdep::assert_held(&d.state);
/// }
/// let d = Dev { lock: SpinLock::new(()), state: Mutex::new(0) };
/// let s = d.state.lock();
/// let g = d.lock.lock();
/// update_locked(&d);
/// drop(g);
/// drop(s);
/// assert!(lockdep::take_reports().is_empty());
/// ```
#[doc(alias = "lockdep_assert")]
#[inline]
pub fn assert_held<L: LockdepTracked + ?Sized>(lock: &L) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    if let Some(map) = lock.lockdep_map() {
        hooks::assert_held(map, None);
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = lock;
}

/// Reports ([`ReportKind::NotHeld`]) unless the current thread holds `lock`
/// exclusively (`lockdep_assert_held_write`): a writer of an `RwLock` or an
/// `RwSemaphore`, the holder of any exclusive lock.
///
/// ```
/// use ksync::lockdep::{self, ReportKind};
/// use ksync::rwsem::RwSemaphore;
/// let sem = RwSemaphore::new(0);
/// {
///     let _w = sem.write();
///     lockdep::assert_held_write(&sem); // fine
/// }
/// {
///     let _r = sem.read();
///     lockdep::assert_held_write(&sem); // held, but only for read
/// }
/// let reports = lockdep::take_reports();
/// if lockdep::mode() != lockdep::Mode::Off {
///     assert_eq!(reports.len(), 1);
///     assert_eq!(reports[0].kind, ReportKind::NotHeld);
/// }
/// ```
#[doc(alias = "lockdep_assert_held_write")]
#[doc(alias = "lockdep_assert_held_exclusive")]
#[inline]
pub fn assert_held_write<L: LockdepTracked + ?Sized>(lock: &L) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    if let Some(map) = lock.lockdep_map() {
        hooks::assert_held(map, Some(false));
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = lock;
}

/// Reports ([`ReportKind::NotHeld`]) unless the current thread holds `lock`
/// shared (`lockdep_assert_held_read`): a reader of an `RwLock`, an
/// `RwSemaphore` or an RCU-like pseudo-lock.
#[doc(alias = "lockdep_assert_held_read")]
#[inline]
pub fn assert_held_read<L: LockdepTracked + ?Sized>(lock: &L) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    if let Some(map) = lock.lockdep_map() {
        hooks::assert_held(map, Some(true));
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = lock;
}

/// Whether the current thread holds `lock` (`lockdep_is_held`): [`lock_is_held`]
/// for any [`LockdepTracked`] lock. `true` without the feature, with lockdep
/// off, or for a lock lockdep does not track, as in the kernel.
#[inline]
pub fn is_held<L: LockdepTracked + ?Sized>(lock: &L) -> bool {
    lock.lockdep_map().is_none_or(lock_is_held)
}

/// Whether the current thread is inside an RCU read section, as lockdep sees it
/// (holds a map named `rcu_read_lock*`) (`rcu_read_lock_held`). `false` without
/// the feature.
#[inline]
pub fn rcu_read_lock_held() -> bool {
    #[cfg(all(feature = "lockdep", not(loom)))]
    {
        hooks::rcu_depth() > 0
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    false
}

/// Reports [`ReportKind::RcuSyncInReader`] if the current thread is inside an RCU
/// read section: `synchronize_rcu` (and anything else that waits for a grace
/// period) calls this first, naming itself in `what`.
#[doc(alias = "RCU_LOCKDEP_WARN")]
#[inline]
pub fn assert_not_in_rcu_read_section(what: &'static str) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    hooks::assert_not_in_rcu(what);
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = what;
}

/// Prints the locks the current thread holds to stderr (`lockdep_print_held_locks`,
/// `debug_show_held_locks`). Does nothing without the feature.
#[doc(alias = "lockdep_print_held_locks")]
pub fn debug_show_held_locks() {
    #[cfg(all(feature = "lockdep", not(loom)))]
    eprint!("{}", hooks::held_locks_text());
}

/// The number of locks the current thread holds, as lockdep tracks them
/// (`lockdep_depth`); 0 without the feature.
#[doc(alias = "lockdep_depth")]
pub fn held_lock_count() -> usize {
    #[cfg(all(feature = "lockdep", not(loom)))]
    {
        hooks::depth()
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    0
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[cfg(not(feature = "lockdep"))]
    #[test]
    fn map_is_zero_sized_without_the_feature() {
        assert_eq!(core::mem::size_of::<LockdepMap>(), 0);
        let m = LockdepMap::new("x");
        acquire(&m, AcquireKind::Exclusive, false, 0);
        release(&m);
        assert!(lock_is_held(&m));
        assert!(take_reports().is_empty());
    }

    #[cfg(feature = "lockdep")]
    #[test]
    fn class_site_is_the_caller() {
        let (m, line) = (LockdepMap::new("x"), line!());
        assert_eq!((m.site.file(), m.site.line()), (file!(), line));
        assert_eq!(m.name(), "x");
        static K: LockClassKey = LockClassKey::new("keyed");
        let (k, line) = (LockdepMap::with_key("y", &K), line!());
        assert_eq!((k.name(), k.site.line()), ("keyed", line));
        static S: LockdepMap = LockdepMap::new_spinning("s");
        let config = pack_waits(WaitType::Config, WaitType::Config);
        assert_eq!((S.site.line(), S.waits), (line!() - 2, config));
        let sleep = pack_waits(WaitType::Sleep, WaitType::Inv);
        assert_eq!(LockdepMap::new_sleeping("z").waits, sleep);
        let rcu = LockdepMap::new("r").with_waits(WaitType::Config, WaitType::Free);
        assert_eq!(
            rcu.waits,
            WaitType::Config as u8 | (WaitType::Free as u8) << 3
        );
    }
}
