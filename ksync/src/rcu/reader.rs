//! The read side: the thread's record, its registration, and [`RcuReadGuard`].
//!
//! Each thread that reads owns one cache-padded [`Record`] (see `gp.rs` for its
//! two counters). A const-initialised thread-local `AtomicPtr` with no
//! destructor, `FAST`, points at the record's counter for the current phase, so
//! `FAST.with` compiles to one direct TLS load (no lazy-initialisation or
//! destroyed-state check) and `rcu_read_lock` is that load, a null test, an
//! increment of the counter on the thread's own cache line, and a compiler
//! barrier. Grace periods keep `FAST` current: their flip rewrites it in every
//! registered thread (`Reader::set_phase`). The guard keeps the counter's
//! address, so the drop needs no TLS access and no phase.
//!
//! `FAST` is null whenever the fast path must not run: before the thread's first
//! `rcu_read_lock`, after [`rcu_unregister_thread`], and always where membarrier
//! is unavailable (the fence mode, decided once at start-up). Then
//! `rcu_read_lock` takes the `#[cold]` path, which registers the thread if it
//! must (allocates the record and adds it to the registry) and enters on the
//! counter that the global phase selects, in fence mode with a full fence.
//! `RECORD` holds the registered record in either mode; a third thread-local,
//! with a destructor, removes the record from the registry when the thread
//! exits — and with it the registry's pointer to `FAST`, before the thread's
//! thread-locals go away.
//!
//! A record is freed only with both counters 0 (no guard points into it): a
//! thread that exits while a guard lives on (in another thread-local's
//! destructor) leaves its record registered and leaked, so the guard's drop still
//! writes valid memory and grace periods keep waiting for that section until it
//! ends.
//!
//! The registry is a list of record pointers under a mutex that the grace-period
//! code holds while it scans; a record is freed only after it has been removed
//! from the list under that mutex, so the updater never reads a freed record.

use super::gp::{self, GpState, Record};
use crate::arch::CachePadded;
use crate::arch::membarrier::is_expedited;
use crate::lockdep::{self, AcquireKind, LockdepMap, WaitType};
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The global grace-period state, alone in its cache line(s): readers load it on
/// every lock and unlock, so no other written data may share it (the registry
/// mutex next to it did before).
pub(crate) static GP: CachePadded<GpState> = CachePadded::new(GpState::new());

/// The lockdep map of `rcu_read_lock` (the kernel's `rcu_lock_map`), with its
/// wait types: taken anywhere (outer `FREE`), and no sleeping lock inside it
/// (inner `CONFIG`: PREEMPT_RT implies preemptible RCU, where a `spinlock_t`
/// inside a reader sleeps).
pub(crate) static RCU_LOCK_MAP: LockdepMap =
    LockdepMap::new("rcu_read_lock").with_waits(WaitType::Config, WaitType::Free);

/// A registered reader: its record, and where its thread keeps the fast
/// path's counter pointer (`FAST`), which a grace period's flip rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reader {
    /// The thread's record.
    pub(crate) rec: *const Record,
    /// The thread's `FAST` slot, or null where the fast path is off (fence
    /// mode; a record registered during thread exit; a record left registered
    /// by an exiting thread with a live guard).
    pub(crate) fast: *const AtomicPtr<AtomicUsize>,
}
// SAFETY: both pointers are only used while the registry lock is held; a record
// is freed only after its entry was removed under that lock, and `fast` is
// cleared under that lock before its thread's thread-locals go away (in the
// Registration destructor, or by rcu_unregister_thread, on that thread).
unsafe impl Send for Reader {}

impl Reader {
    /// Points the reader's fast path at its counter for phase `off`.
    ///
    /// # Safety
    /// The registry lock is held and the entry is in the registry.
    pub(crate) unsafe fn set_phase(&self, off: usize) {
        if !self.fast.is_null() {
            // SAFETY: per the contract, `fast` is a live thread's FAST slot and
            // `rec` a live record (see the Send impl).
            let c: *const AtomicUsize = unsafe { (*self.rec).counter(off) };
            // Relaxed: the reader may load its old counter a little longer (a
            // late increment, which the grace period tolerates); the fences
            // around the flip bound that (gp.rs, "Progress").
            // SAFETY: as above.
            unsafe { (*self.fast).store(c as *mut AtomicUsize, Ordering::Relaxed) };
        }
    }
}

/// The registered readers (liburcu's `registry`, under `rcu_registry_lock`).
pub(crate) static REGISTRY: Mutex<Vec<Reader>> = Mutex::new(Vec::new());

pub(crate) fn registry() -> std::sync::MutexGuard<'static, Vec<Reader>> {
    // A panic cannot leave the list inconsistent (every update is one push, one
    // swap_remove or one field store), so a poisoned lock is taken over.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// The fast path's counter: this thread's counter for the current phase,
    /// where membarrier is in use and the thread is registered; else null (so
    /// every `rcu_read_lock` goes out of line: to register, or to fence). The
    /// thread writes it when it registers or unregisters, and the grace-period
    /// leader at each flip (`Reader::set_phase`), all under the registry lock.
    static FAST: AtomicPtr<AtomicUsize> = const { AtomicPtr::new(ptr::null_mut()) };
    /// This thread's registered record (either mode), or null before
    /// registration / after unregistration.
    static RECORD: Cell<*const Record> = const { Cell::new(ptr::null()) };
    /// Owns the record; its destructor unregisters it at thread exit.
    static REGISTRATION: Registration = Registration::new();
}

/// Owns one thread's record; unregisters and frees it on drop (thread exit).
struct Registration {
    record: *const Record,
}

impl Registration {
    fn new() -> Self {
        let record = alloc_record();
        register(record, true);
        Registration { record }
    }
}

/// Adds `record` to the registry as this thread's and makes it RECORD; with
/// `fast` (and membarrier in use), also turns the fast path on.
fn register(record: *const Record, fast: bool) {
    let slot = if fast && is_expedited() {
        FAST.with(|f| f as *const AtomicPtr<AtomicUsize>)
    } else {
        ptr::null()
    };
    let entry = Reader {
        rec: record,
        fast: slot,
    };
    let mut reg = registry();
    // Under the registry lock, so no flip can come between reading the phase
    // and publishing the entry that the next flip rewrites.
    // SAFETY: the lock is held; the entry's record is live and `fast` is this
    // (live) thread's slot.
    unsafe { entry.set_phase(GP.ctr.load(Ordering::Relaxed)) };
    reg.push(entry);
    drop(reg);
    RECORD.with(|c| c.set(record));
}

/// Removes `record`'s entry from the registry (if there) and turns this
/// thread's fast path off.
fn unregister(record: *const Record) {
    let mut reg = registry();
    if let Some(i) = reg.iter().position(|r| r.rec == record) {
        reg.swap_remove(i);
    }
    // Under the lock: a flip cannot store into the slot after this.
    FAST.with(|f| f.store(ptr::null_mut(), Ordering::Relaxed));
}

fn alloc_record() -> *const Record {
    // Before the record exists, so before this thread's first section.
    GP.prepare_reader();
    let b: Box<CachePadded<Record>> = Box::new(CachePadded::new(Record::new()));
    let p: *const CachePadded<Record> = Box::into_raw(b);
    // CachePadded<T> derefs to its T; keep the pointer to the padded box so the
    // record is aligned to its own cache line(s).
    // SAFETY: `p` comes from Box::into_raw just above and is valid.
    let r: &Record = unsafe { &*p };
    r as *const Record
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: our own live record; only this thread writes it.
        if unsafe { (*self.record).depth() } != 0 {
            // A guard outlives the registration (it lives in a thread-local that
            // is destroyed later) and points into the record: leave the record
            // registered, so grace periods still wait for that section, and leak
            // it, so the guard's drop writes valid memory. Its entry forgets this
            // thread's FAST slot (thread-locals go away with the thread; a flip
            // must not store there after that) and the fast path is turned off;
            // RECORD keeps pointing at the record, so sections opened by later
            // destructors use it too, through the out-of-line path (it is now an
            // orphan, see `rcu_unregister_thread`). Afterwards it stays quiescent
            // in the registry: one cache line per such thread.
            let mut reg = registry();
            if let Some(r) = reg.iter_mut().find(|r| r.rec == self.record) {
                r.fast = ptr::null();
            }
            FAST.with(|f| f.store(ptr::null_mut(), Ordering::Relaxed));
            return;
        }
        unregister(self.record);
        RECORD.with(|c| c.set(ptr::null()));
        // SAFETY: the record came from `alloc_record` and was removed from the
        // registry under its lock above, so no updater reads it any more; RECORD
        // and FAST no longer point into it and its counters are 0, so no guard
        // points into it (each live guard holds one count of its record).
        unsafe { free_record(self.record) };
    }
}

/// In the child of a fork: removes every registered reader but the calling
/// thread's own (the child has none of the parent's other threads, and a
/// grace period must not wait for sections they were in at the fork), and
/// frees their records — liburcu's `urcu_bp_prune_registry`.
///
/// # Safety
/// The caller is the process's only thread, and `reg` is the registry, locked.
pub(super) unsafe fn prune_after_fork(reg: &mut Vec<Reader>) {
    let own = RECORD.with(|c| c.get());
    reg.retain(|r| {
        if r.rec == own {
            return true;
        }
        // SAFETY: the record's thread is not in this process: no guard of it
        // will ever drop, its thread-locals never run again, and the registry
        // entry removed here (under the lock, `reg`) was the only other
        // pointer to it.
        unsafe { free_record(r.rec) };
        false
    });
}

/// # Safety
/// `r` came from [`alloc_record`], is not in the registry and is not used again.
unsafe fn free_record(r: *const Record) {
    // SAFETY: per the contract, `r` is the address of the value inside a leaked
    // Box<CachePadded<Record>>; CachePadded stores the value at offset 0.
    drop(unsafe { Box::from_raw(r as *mut CachePadded<Record>) });
}

#[cold]
#[inline(never)]
fn register_slow() -> *const Record {
    match REGISTRATION.try_with(|r| r.record) {
        Ok(r) => r,
        // The thread is exiting and its registration is gone (an RCU reader in
        // another thread-local's destructor): register a record that is never
        // freed, without the fast path (no destructor is left to take the
        // thread's FAST slot out of the registry). It stays quiescent after
        // this section, so grace periods do not wait for it; it costs one
        // cache line per such thread.
        Err(_) => {
            let record = alloc_record();
            register(record, false);
            record
        }
    }
}

/// Registers the calling thread as an RCU reader now rather than at its first
/// [`rcu_read_lock`] (optional: registration is automatic).
///
/// ```
/// ksync::rcu::rcu_register_thread();
/// let g = ksync::rcu::rcu_read_lock();
/// drop(g);
/// ```
pub fn rcu_register_thread() {
    if RECORD.with(|c| c.get()).is_null() {
        let _ = register_now();
    }
}

/// Unregisters the calling thread now rather than at its exit (optional). A later
/// [`rcu_read_lock`] on this thread registers it again.
///
/// # Panics
/// Inside a read-side critical section.
pub fn rcu_unregister_thread() {
    let r = RECORD.with(|c| c.get());
    if r.is_null() {
        return;
    }
    // SAFETY: a non-null RECORD points at this thread's live record.
    let depth = unsafe { (*r).depth() };
    assert!(
        depth == 0,
        "rcu_unregister_thread() called inside an RCU read-side critical section"
    );
    unregister(r);
    RECORD.with(|c| c.set(ptr::null()));
    // The record stays owned by REGISTRATION (freed at thread exit, where the
    // registry search finds nothing to remove); re-register it on next use.
    match REGISTRATION.try_with(|reg| reg.record) {
        Ok(owned) if owned == r => {
            REREGISTER.with(|f| f.set(true));
        }
        _ => {
            // An orphan record made during thread exit: it is not in the registry
            // any more, so it can be freed.
            // SAFETY: removed from the registry above; RECORD and FAST cleared,
            // and no guard points into it (its counters are 0).
            unsafe { free_record(r) };
        }
    }
}

thread_local! {
    /// Set by `rcu_unregister_thread`: the owned record must be pushed again.
    static REREGISTER: Cell<bool> = const { Cell::new(false) };
}

/// Re-registration after `rcu_unregister_thread` (the registration exists but
/// RECORD was cleared): handled by `register_slow` through this hook.
#[cold]
fn reregister(owned: *const Record) -> *const Record {
    register(owned, true);
    REREGISTER.with(|f| f.set(false));
    owned
}

/// A read-side critical section (`rcu_read_lock` … `rcu_read_unlock`): while it
/// lives, nothing an updater removed after it began is reclaimed. Dropping it is
/// `rcu_read_unlock`.
///
/// Readers must not sleep or block on anything an updater may wait for. Guards
/// nest. The guard is `!Send`: the section belongs to its thread.
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// needs_send(ksync::rcu::rcu_read_lock());
/// ```
#[must_use = "the read-side critical section ends when the guard is dropped"]
pub struct RcuReadGuard {
    /// The counter of this thread's record that the lock incremented and the
    /// drop decrements. A raw pointer, so the guard is neither `Send` nor
    /// `Sync`. Valid for the guard's life: a record is freed only with both
    /// counters 0, and the guard holds one count of this one.
    cnt: *const AtomicUsize,
}

impl core::fmt::Debug for RcuReadGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RcuReadGuard")
    }
}

/// Enters a read-side critical section; the returned guard leaves it on drop.
///
/// Costs a thread-local load and an increment of a counter in this thread's
/// own record, and a compiler barrier (a full fence, out of line, where
/// membarrier is unavailable); no atomic read-modify-write and no call.
/// Nestable; guards may be dropped in any order.
///
/// ```
/// use ksync::rcu::{rcu_read_lock, RcuPtr};
/// let p = RcuPtr::new(Some(Box::new(7)));
/// let g = rcu_read_lock();
/// assert_eq!(p.read(&g), Some(&7));
/// drop(g); // rcu_read_unlock
/// ```
#[inline(always)]
pub fn rcu_read_lock() -> RcuReadGuard {
    // Relaxed: a stale counter is a late increment, which grace periods
    // tolerate (gp.rs); this thread's own stores to FAST it always sees.
    let c = FAST.with(|f| f.load(Ordering::Relaxed));
    let cnt = if c.is_null() {
        lock_slow()
    } else {
        // SAFETY: a non-null FAST is a counter of this thread's live, registered
        // record: FAST is cleared before the record is unregistered or freed,
        // and only this thread writes its counters.
        gp::read_lock_on(unsafe { &*c });
        c
    };
    lockdep::acquire(&RCU_LOCK_MAP, AcquireKind::RecursiveRead, false, 0);
    RcuReadGuard { cnt }
}

/// `rcu_read_lock` off the fast path: registers the thread if it is not, and
/// in fence mode enters with a full fence.
#[cold]
#[inline(never)]
fn lock_slow() -> *const AtomicUsize {
    let mut r = RECORD.with(|c| c.get());
    if r.is_null() {
        r = register_now();
    }
    // SAFETY: `r` is this thread's live, registered record (RECORD is cleared
    // before the record is freed); only this thread writes its counters.
    let rec = unsafe { &*r };
    if is_expedited() {
        gp::read_lock(rec, &GP)
    } else {
        gp::read_lock_fenced(rec, &GP)
    }
}

/// Registers the calling thread's record (again, after
/// [`rcu_unregister_thread`]) and returns it.
#[cold]
fn register_now() -> *const Record {
    if REREGISTER.with(|f| f.get())
        && let Ok(owned) = REGISTRATION.try_with(|reg| reg.record)
    {
        return reregister(owned);
    }
    register_slow()
}

impl Drop for RcuReadGuard {
    #[inline(always)]
    fn drop(&mut self) {
        lockdep::release(&RCU_LOCK_MAP);
        // SAFETY: `cnt` is the counter this guard's lock incremented, in this
        // thread's record (the guard is !Send); the record is not freed while a
        // counter is non-zero (Registration::drop leaks it,
        // rcu_unregister_thread panics), and only this thread writes it.
        gp::read_unlock(unsafe { &*self.cnt }, &GP);
    }
}

/// Leaves a read-side critical section: the same as dropping the guard.
#[inline(always)]
pub fn rcu_read_unlock(guard: RcuReadGuard) {
    drop(guard);
}

/// Whether the calling thread is inside a read-side critical section.
///
/// ```
/// use ksync::rcu::{rcu_read_lock, rcu_read_lock_held};
/// assert!(!rcu_read_lock_held());
/// let g = rcu_read_lock();
/// assert!(rcu_read_lock_held());
/// drop(g);
/// assert!(!rcu_read_lock_held());
/// ```
#[inline]
pub fn rcu_read_lock_held() -> bool {
    let r = RECORD.with(|c| c.get());
    // SAFETY: non-null RECORD is this thread's live record.
    !r.is_null() && unsafe { (*r).depth() } > 0
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::loom::sync::atomic::Ordering;

    /// Registration takes the fast path exactly when membarrier is in use, and
    /// sets the fence mode's futex value otherwise; each guard holds the counter
    /// of the phase current at its lock, and nested guards dropped out of order
    /// leave the record quiescent.
    #[test]
    fn fast_path_and_fence_mode_and_guard_counters() {
        std::thread::spawn(|| {
            let g = rcu_read_lock();
            let r = RECORD.with(|c| c.get());
            let fast = FAST.with(|f| f.load(Ordering::Relaxed)) as *const AtomicUsize;
            assert_eq!(fast.is_null(), !is_expedited());
            if !is_expedited() {
                assert_ne!(GP.futex.load(Ordering::Relaxed), gp::GP_IDLE);
            }
            // SAFETY: this thread's live record.
            let rec = unsafe { &*r };
            // The guard's counter and the fast pointer are counters of this
            // record (which of the two depends on grace periods that other
            // tests may be running).
            let counters = [
                rec.counter(0) as *const AtomicUsize,
                rec.counter(gp::STRIDE),
            ];
            assert!(counters.contains(&g.cnt));
            assert!(fast.is_null() || counters.contains(&fast));
            assert_eq!(rec.depth(), 1);
            let inner = rcu_read_lock();
            assert_eq!(rec.depth(), 2);
            drop(g);
            assert!(rcu_read_lock_held());
            drop(inner);
            assert_eq!(rec.depth(), 0);
            assert!(!rcu_read_lock_held());
        })
        .join()
        .unwrap();
    }

    /// A grace period run by another thread points this thread's fast path at
    /// its counter for the new phase: read under the registry lock, which every
    /// flip holds, FAST always names the counter that the phase word selects.
    #[test]
    fn flips_rewrite_the_fast_pointer() {
        std::thread::spawn(|| {
            rcu_register_thread();
            let rec = RECORD.with(|c| c.get());
            let consistent = || {
                let _reg = registry();
                let fast = FAST.with(|f| f.load(Ordering::Relaxed)) as *const AtomicUsize;
                // SAFETY: this thread's live record.
                let want = unsafe { (*rec).counter(GP.ctr.load(Ordering::Relaxed)) };
                (!is_expedited() && fast.is_null()) || core::ptr::eq(fast, want)
            };
            assert!(consistent());
            for _ in 0..3 {
                std::thread::spawn(crate::rcu::synchronize_rcu)
                    .join()
                    .unwrap();
                assert!(consistent());
            }
        })
        .join()
        .unwrap();
    }
}
