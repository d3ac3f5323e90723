//! Sleepable RCU: [`SrcuStruct`] domains whose readers may block.
//!
//! The kernel's classic SRCU (`kernel/rcu/srcutiny.c`/`srcutree.c`, the
//! `srcu_lock_count[2]`/`srcu_unlock_count[2]` scheme): each domain has a current
//! index (0 or 1) and, per CPU, a lock count and an unlock count for each index.
//! A reader increments the lock count of the current index on its CPU and, when it
//! leaves (possibly on another CPU after sleeping), the unlock count of the same
//! index. `synchronize_srcu` flips the index and waits until, summed over all
//! CPUs, the old index's unlocks equal its locks — twice, as the kernel does, so
//! a reader that read the index just before a flip is caught by the second pass.
//!
//! | word | values |
//! |------|--------|
//! | `SrcuStruct::idx` | the counter a new reader uses is `idx & 1`; incremented per flip |
//! | per-CPU `lock[i]` / `unlock[i]` | wrapping counts of entries / exits on index `i` |
//! | `SrcuStruct::futex` | 0: no updater sleeps; `u32::MAX`: `synchronize_srcu` sleeps or is about to, the next `srcu_read_unlock` wakes it |
//!
//! `synchronize_srcu` waits as `synchronize_rcu` does (the shared
//! `gp::wait_for_readers`): a few scans of the sums, then it announces itself on
//! the domain's futex word and sleeps; every `srcu_read_unlock` checks that word
//! after its exit count (one load of a line that only the updater writes,
//! ordered by the membarrier pair) and wakes the updater. So the grace period
//! ends within a wake-up of the last old reader's exit, instead of polling with
//! sleeps of up to a millisecond, and burns no CPU while readers sleep.
//!
//! Unlike RCU readers, SRCU readers cost an atomic RMW on a per-CPU counter:
//! SRCU suits read sides that must sleep, RCU everything else. Domains are
//! independent: a long reader of one domain does not delay another's grace
//! periods.

use super::gp::{self, GP_SLEEPING};
use crate::arch::membarrier::{heavy_barrier, light_barrier};
use crate::arch::{CachePadded, cpu_id, nr_cpu_ids};
use crate::semaphore::Semaphore;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

#[derive(Default)]
struct Counts {
    lock: [AtomicUsize; 2],
    unlock: [AtomicUsize; 2],
}

/// A sleepable-RCU domain (`struct srcu_struct`).
///
/// ```
/// use ksync::rcu::SrcuStruct;
/// static DOMAIN: SrcuStruct = SrcuStruct::new(); // DEFINE_STATIC_SRCU
/// let g = DOMAIN.read_lock();
/// std::thread::sleep(std::time::Duration::from_millis(1)); // SRCU readers may sleep
/// drop(g);
/// DOMAIN.synchronize();
/// ```
pub struct SrcuStruct {
    idx: AtomicUsize,
    /// The sleeping updater's futex word (0 or [`GP_SLEEPING`]).
    futex: AtomicU32,
    counts: OnceLock<Box<[CachePadded<Counts>]>>,
    /// Serializes this domain's grace periods; a ksync semaphore so that an
    /// updater waiting for another one sleeps through `sched::sleep` (and drops
    /// the BKL meanwhile).
    gp_lock: Semaphore,
}

/// An SRCU read-side section (`srcu_read_lock`'s index); `srcu_read_unlock` on drop.
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// let s = ksync::rcu::SrcuStruct::new();
/// needs_send(s.read_lock());
/// ```
#[must_use = "the SRCU read-side section ends when the guard is dropped"]
pub struct SrcuReadGuard<'a> {
    srcu: &'a SrcuStruct,
    idx: usize,
    _not_send: PhantomData<*mut ()>,
}

impl SrcuStruct {
    /// A new domain (`init_srcu_struct`, `DEFINE_SRCU`, `DEFINE_STATIC_SRCU`).
    /// The per-CPU counters are allocated at first use.
    #[doc(alias = "init_srcu_struct")]
    #[doc(alias = "DEFINE_SRCU")]
    #[doc(alias = "DEFINE_STATIC_SRCU")]
    pub const fn new() -> Self {
        SrcuStruct {
            idx: AtomicUsize::new(0),
            futex: AtomicU32::new(0),
            counts: OnceLock::new(),
            gp_lock: Semaphore::new(1),
        }
    }

    #[inline]
    fn counts(&self) -> &[CachePadded<Counts>] {
        self.counts.get_or_init(|| {
            (0..nr_cpu_ids().max(1))
                .map(|_| CachePadded::new(Counts::default()))
                .collect()
        })
    }

    #[inline]
    fn this_cpu(&self) -> &Counts {
        let c = self.counts();
        &c[cpu_id() % c.len()]
    }

    /// Enters a read-side section of this domain (`srcu_read_lock`). The section
    /// may sleep; dropping the guard leaves it.
    #[doc(alias = "srcu_read_lock")]
    #[inline]
    pub fn read_lock(&self) -> SrcuReadGuard<'_> {
        // Relaxed: a stale index is tolerated by the two-pass wait.
        let idx = self.idx.load(Ordering::Relaxed) & 1;
        // Relaxed RMW + light barrier: orders the increment before the section's
        // loads; pairs with the heavy_barrier between synchronize's sums (the
        // kernel's smp_mb() B in srcu_read_lock).
        self.this_cpu().lock[idx].fetch_add(1, Ordering::Relaxed);
        light_barrier();
        SrcuReadGuard {
            srcu: self,
            idx,
            _not_send: PhantomData,
        }
    }

    /// Leaves a section by its index (`srcu_read_unlock(ssp, idx)`), for a section
    /// whose guard was turned into its index with [`SrcuReadGuard::into_index`].
    ///
    /// # Safety
    /// `idx` is the index of a section of this domain entered on this thread and
    /// not yet left; leaving one twice would end a later reader's protection.
    #[doc(alias = "srcu_read_unlock")]
    #[inline]
    pub unsafe fn read_unlock(&self, idx: usize) {
        // SAFETY: the caller's contract, which is `exit`'s and more.
        unsafe { self.exit(idx) }
    }

    /// Leaves a section of index `idx`, on whichever CPU runs it.
    ///
    /// # Safety
    /// `idx` is the index of a section of this domain that has not been left
    /// yet (entered on any thread: the counts are summed over every CPU).
    #[inline]
    unsafe fn exit(&self, idx: usize) {
        // Orders the section's loads before the exit count; pairs with the
        // heavy_barrier in synchronize (the kernel's smp_mb() C).
        light_barrier();
        self.this_cpu().unlock[idx & 1].fetch_add(1, Ordering::Relaxed);
        // Orders the exit count before the futex load (store→load); pairs with
        // the heavy_barrier between the updater's futex store and its sums.
        light_barrier();
        // Relaxed: a stale 0 is excluded by the barrier pair above.
        if self.futex.load(Ordering::Relaxed) == GP_SLEEPING {
            gp::wake_up_gp(&self.futex, 0);
        }
    }

    /// Enters a read-side section that another thread may end
    /// (`srcu_down_read`): the semaphore-like form, for a section handed from
    /// one task to another (an I/O started here, completed by a worker). It
    /// returns the index that [`up_read`](Self::up_read) takes. Ordered as
    /// [`read_lock`](Self::read_lock) is: the counts are summed over every CPU,
    /// so the CPU that ends the section need not be the one that began it.
    #[doc(alias = "srcu_down_read")]
    #[inline]
    pub fn down_read(&self) -> usize {
        self.read_lock().into_index()
    }

    /// Ends a section begun by [`down_read`](Self::down_read), on any thread
    /// (`srcu_up_read(ssp, idx)`).
    ///
    /// # Safety
    /// `idx` was returned by `down_read` of this domain and that section has
    /// not been ended yet; ending one twice would end a later reader's
    /// protection.
    #[doc(alias = "srcu_up_read")]
    #[inline]
    pub unsafe fn up_read(&self, idx: usize) {
        // SAFETY: the caller's contract is `exit`'s.
        unsafe { self.exit(idx) }
    }

    /// Whether every reader that used index `i` has left.
    fn readers_gone(&self, i: usize) -> bool {
        let c = self.counts();
        let unlocks: usize = c
            .iter()
            .map(|x| x.unlock[i].load(Ordering::Relaxed))
            .fold(0, usize::wrapping_add);
        // Orders the unlock sum before the lock sum (the kernel's smp_mb() A):
        // a reader counted as unlocked is then also counted as locked.
        heavy_barrier();
        let locks: usize = c
            .iter()
            .map(|x| x.lock[i].load(Ordering::Relaxed))
            .fold(0, usize::wrapping_add);
        locks == unlocks
    }

    /// Waits until every reader on index `i` has left: a few scans, then sleeps
    /// on the domain's futex until a `srcu_read_unlock` wakes it.
    fn wait_gone(&self, i: usize) {
        gp::wait_for_readers(&self.futex, 0, gp::ACTIVE_ATTEMPTS, || self.readers_gone(i));
    }

    /// Waits until every read-side section of this domain that began before the
    /// call has ended (`synchronize_srcu`). Blocks: scans briefly, then sleeps
    /// until a reader's unlock wakes it. Calling it inside a section of the same
    /// domain deadlocks, as in the kernel.
    #[doc(alias = "synchronize_srcu")]
    #[doc(alias = "synchronize_srcu_expedited")]
    pub fn synchronize(&self) {
        crate::lockdep::might_sleep();
        let _g = self.gp_lock.down_guard();
        // Orders the caller's unpublish before the sums; pairs with readers'
        // light_barrier after their lock increment.
        heavy_barrier();
        // Readers still on the other index (from before the previous flip) are
        // drained first, so the flip leaves only our index's readers to wait for.
        let cur = self.idx.load(Ordering::Relaxed);
        self.wait_gone((cur + 1) & 1);
        self.idx.store(cur.wrapping_add(1), Ordering::Relaxed);
        heavy_barrier();
        self.wait_gone(cur & 1);
        // Orders the sums before the caller's frees.
        heavy_barrier();
    }

    /// Frees the domain (`cleanup_srcu_struct`): the same as dropping it. No
    /// reader can still be inside one of its sections: guards borrow the domain.
    #[doc(alias = "cleanup_srcu_struct")]
    pub fn cleanup(self) {
        drop(self);
    }
}

impl Default for SrcuStruct {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for SrcuStruct {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrcuStruct")
            .field("idx", &self.idx.load(Ordering::Relaxed))
            .finish()
    }
}

/// `init_srcu_struct`: a new domain.
pub fn init_srcu_struct() -> SrcuStruct {
    SrcuStruct::new()
}

/// `cleanup_srcu_struct`: frees a domain.
pub fn cleanup_srcu_struct(s: SrcuStruct) {
    s.cleanup();
}

/// `srcu_read_lock(ssp)`.
#[inline]
pub fn srcu_read_lock(s: &SrcuStruct) -> SrcuReadGuard<'_> {
    s.read_lock()
}

/// `srcu_down_read(ssp)`: see [`SrcuStruct::down_read`].
#[inline]
pub fn srcu_down_read(s: &SrcuStruct) -> usize {
    s.down_read()
}

/// `srcu_up_read(ssp, idx)`: see [`SrcuStruct::up_read`].
///
/// # Safety
/// As for [`SrcuStruct::up_read`].
#[inline]
pub unsafe fn srcu_up_read(s: &SrcuStruct, idx: usize) {
    // SAFETY: the caller's contract is up_read's.
    unsafe { s.up_read(idx) }
}

/// `synchronize_srcu(ssp)`.
pub fn synchronize_srcu(s: &SrcuStruct) {
    s.synchronize();
}

impl SrcuReadGuard<'_> {
    /// The counter index of this section (`srcu_read_lock`'s return value).
    pub fn index(&self) -> usize {
        self.idx
    }

    /// Ends the guard's ownership of the section without leaving it: the section
    /// must later be left with [`SrcuStruct::read_unlock`] and this index.
    pub fn into_index(self) -> usize {
        let i = self.idx;
        core::mem::forget(self);
        i
    }
}

impl Drop for SrcuReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard owns a section of this domain with this index.
        unsafe { self.srcu.read_unlock(self.idx) };
    }
}

impl core::fmt::Debug for SrcuReadGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrcuReadGuard")
            .field("idx", &self.idx)
            .finish()
    }
}
