//! The grace-period core: the global phase counter, the per-thread reader record,
//! and the wait for pre-existing readers — liburcu's membarrier flavour
//! (`src/urcu.c`, `include/urcu/static/urcu-memb.h` in urcu/userspace-rcu).
//!
//! This file holds only the algorithm, on explicit state, so the loom models run it
//! exactly as the library does; `reader.rs` and `sync.rs` bind it to the global
//! state, the thread registry and the thread-local record.
//!
//! ## State words
//!
//! | word | bits | meaning |
//! |------|------|---------|
//! | [`GpState::ctr`] | bit 63 ([`FENCE`]) | set once, before the first reader's first section, when membarrier is unavailable: the read side must use `fence(SeqCst)` |
//! |                  | bit 32 ([`PHASE`]) | the current grace-period phase; flipped twice per grace period |
//! |                  | bits 0..32 | always 1 ([`NEST_ONE`]): a reader copies the whole word as "nesting 1, this phase" |
//! | [`GpState::futex`] | `u32` | 0: the updater is not sleeping; `u32::MAX` (liburcu's -1): the updater sleeps or is about to, the outermost `rcu_read_unlock` wakes it |
//! | [`Record::ctr`] | bits 0..32 ([`NEST_MASK`]) | the reader's nesting depth (0: quiescent) |
//! |                 | bit 32 | the phase the reader saw at its outermost `rcu_read_lock` |
//! |                 | bit 63 | copied with the phase: this section's barriers are full fences |
//!
//! ## Why two flips
//!
//! A reader reads `GpState::ctr` and then stores it into its record: between the
//! two it may be preempted, so the updater can see a record that says "quiescent"
//! although the reader is about to enter with the phase it read long ago. Waiting,
//! after one flip, for every active reader to carry the new phase is not enough for
//! such a reader (it carries the *old* phase it read before the flip, and would be
//! waited for — but one whose load happened before the previous flip would carry
//! the *current* one). Flipping twice and waiting after each flip bounds that
//! window: any reader that entered before the grace period began has either
//! finished or been observed with the phase of the first flip, and is then waited
//! for in the second wait (the argument of liburcu's `synchronize_rcu`).
//!
//! ## Memory ordering
//!
//! Readers pair a compiler barrier with the updater's
//! `membarrier(PRIVATE_EXPEDITED)` ([`heavy_barrier`]); without membarrier both are
//! `fence(SeqCst)` (the pair `arch::membarrier::light_barrier`/`heavy_barrier`).
//! The reader's choice between the two is not a load of the global membarrier
//! mode (as `light_barrier` and liburcu's `smp_mb_slave` do) but the [`FENCE`] bit
//! of the phase word it has just loaded or copied, already in a register: the
//! read side reads no global word but the phase and the updater's futex. Each
//! barrier below names its partner.
//!
//! ## Generated code
//!
//! An outermost `rcu_read_lock` + drop, inlined into a loop on x86-64, is one TLS
//! load and its null test (the registration check), a load of the record and the
//! nesting test, a load of the phase word and its store into the record, a sign
//! test (the [`FENCE`] bit); the drop loads the record, tests for the outermost
//! level, stores the decremented word, tests the sign bit again and compares the
//! futex word: about 20 instructions, no atomic read-modify-write, no fence, no
//! call (liburcu's `_urcu_memb_read_lock`/`_urcu_memb_read_unlock`: 22, with
//! three loads of its `has_sys_membarrier` flag).

use crate::arch::membarrier::{heavy_barrier, is_expedited};
use crate::loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering, compiler_fence, fence};

/// The phase bit of [`GpState::ctr`] and [`Record::ctr`].
#[cfg(target_pointer_width = "64")]
pub(crate) const PHASE: usize = 1 << 32;
#[cfg(not(target_pointer_width = "64"))]
pub(crate) const PHASE: usize = 1 << 16;
/// The fence-mode bit of [`GpState::ctr`] and [`Record::ctr`]: the top bit, so
/// the reader tests it with the sign flag.
pub(crate) const FENCE: usize = 1 << (usize::BITS - 1);
/// The nesting field of [`Record::ctr`].
pub(crate) const NEST_MASK: usize = PHASE - 1;
/// One level of nesting.
pub(crate) const NEST_ONE: usize = 1;
/// [`GpState::futex`] value meaning "the updater sleeps; wake it".
pub(crate) const GP_SLEEPING: u32 = u32::MAX;

#[cfg(not(loom))]
/// How many scans `synchronize_rcu` spins before it sleeps on the futex
/// (liburcu's `RCU_QS_ACTIVE_ATTEMPTS`).
pub(crate) const ACTIVE_ATTEMPTS: u32 = 100;
#[cfg(not(loom))]
/// The same for `synchronize_rcu_expedited`: spin ten times longer.
pub(crate) const EXPEDITED_ATTEMPTS: u32 = 1000;

/// [`FENCE`] where the read side must fence (membarrier unavailable), else 0.
/// Constant once decided (the membarrier mode is chosen once, at start-up).
#[inline]
fn fence_bit() -> usize {
    if is_expedited() { 0 } else { FENCE }
}

/// The read side's barrier after the store that enters or ends a section, chosen
/// by the [`FENCE`] bit of the word the reader has in hand: a compiler barrier
/// when membarrier is in use (its partner is the updater's [`heavy_barrier`]),
/// else `fence(SeqCst)` (partner: the `fence(SeqCst)` that `heavy_barrier`
/// degrades to).
#[inline(always)]
fn reader_barrier(word: usize) {
    if word & FENCE != 0 {
        full_fence();
    } else {
        compiler_fence(Ordering::SeqCst);
    }
}

/// The fallback's fence, out of line so the membarrier path falls through.
#[cold]
#[inline(never)]
fn full_fence() {
    fence(Ordering::SeqCst);
}

/// The global grace-period state (liburcu's `rcu_gp`). Only the grace-period
/// leader writes it (and each new reader's registration, once, for [`FENCE`]);
/// readers only read it, so its cache line stays shared between them. The
/// static holding it is cache-padded so no other written data shares the line.
pub(crate) struct GpState {
    /// The phase word readers copy; written only by the grace-period leader.
    pub(crate) ctr: AtomicUsize,
    /// The updater's futex word: 0 or [`GP_SLEEPING`].
    pub(crate) futex: AtomicU32,
}

impl GpState {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        GpState {
            ctr: AtomicUsize::new(NEST_ONE),
            futex: AtomicU32::new(0),
        }
    }
    /// Under loom the read side always takes the fence path (membarrier cannot
    /// be modelled), as with `KSYNC_NO_MEMBARRIER=1`.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        GpState {
            ctr: AtomicUsize::new(NEST_ONE | FENCE),
            futex: AtomicU32::new(0),
        }
    }

    /// Prepares the phase word for a new reader: sets [`FENCE`] where the read
    /// side must fence. Called by every reader registration, before the reader's
    /// first section; the grace-period flip ORs the same bit in, so a flip that
    /// races with this read-modify-write cannot lose it (both write the same
    /// process-wide constant).
    #[cfg(not(loom))]
    pub(crate) fn prepare_reader(&self) {
        let f = fence_bit();
        // Relaxed: the bit only has to reach this thread's own later loads of
        // the word (coherence); every later store to it carries the bit too.
        if f != 0 && self.ctr.load(Ordering::Relaxed) & f == 0 {
            self.ctr.fetch_or(f, Ordering::Relaxed);
        }
    }
}

/// What the updater sees in one reader's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReaderState {
    /// Nesting 0: not in a read-side critical section.
    Inactive,
    /// In a section that began in the current phase.
    ActiveCurrent,
    /// In a section that began in the previous phase: wait for it.
    ActiveOld,
}

/// One thread's reader record (liburcu's `struct urcu_reader`). Only its own
/// thread writes `ctr`; the updater reads it.
pub(crate) struct Record {
    pub(crate) ctr: AtomicUsize,
}

impl Record {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Record {
            ctr: AtomicUsize::new(0),
        }
    }
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Record {
            ctr: AtomicUsize::new(0),
        }
    }

    /// `rcu_read_lock` on this record: on the outermost entry copy the phase, then
    /// a light barrier; nested entries only count.
    #[inline(always)]
    pub(crate) fn lock(&self, gp: &GpState) {
        // Relaxed: only this thread writes its own ctr.
        let c = self.ctr.load(Ordering::Relaxed);
        if c & NEST_MASK == 0 {
            // Relaxed: the phase may be stale; the two-flip wait tolerates that.
            let g = gp.ctr.load(Ordering::Relaxed);
            self.ctr.store(g, Ordering::Relaxed);
            // Orders the ctr store before the section's loads; pairs with the
            // heavy_barrier that `wait_for_readers`/`synchronize` issue before they
            // scan the records (urcu-memb.h: smp_mb_slave + smp_mb_master).
            reader_barrier(g);
        } else {
            debug_assert!(c & NEST_MASK != NEST_MASK, "rcu_read_lock nesting overflow");
            self.ctr.store(c + NEST_ONE, Ordering::Relaxed);
        }
    }

    /// `rcu_read_unlock` on this record. Returns nothing; wakes a sleeping
    /// updater when it leaves the outermost section.
    #[inline(always)]
    pub(crate) fn unlock(&self, gp: &GpState) {
        let c = self.ctr.load(Ordering::Relaxed);
        debug_assert!(c & NEST_MASK != 0, "rcu_read_unlock without rcu_read_lock");
        if c & NEST_MASK == NEST_ONE {
            // Release: orders the section's accesses before the store that ends
            // it (load→store and store→store need no fence: a plain store on
            // x86-64); pairs with the updater's Relaxed scan load followed by
            // heavy_barrier (a SeqCst fence: fence-acquire synchronization).
            self.ctr.store(c - NEST_ONE, Ordering::Release);
            // Orders the ctr store before the futex load (store→load); pairs with
            // the heavy_barrier between the updater's futex store and its scan.
            // `c` carries the FENCE bit copied at the outermost lock.
            reader_barrier(c);
            // Relaxed: a stale 0 is excluded by the barrier pair above.
            if gp.futex.load(Ordering::Relaxed) == GP_SLEEPING {
                wake_up_gp(&gp.futex);
            }
        } else {
            self.ctr.store(c - NEST_ONE, Ordering::Relaxed);
        }
    }

    /// The nesting depth (only meaningful on the owning thread).
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn nesting(&self) -> usize {
        self.ctr.load(Ordering::Relaxed) & NEST_MASK
    }

    /// The state the updater sees (liburcu's `urcu_common_reader_state`).
    #[inline]
    pub(crate) fn state(&self, gp: &GpState) -> ReaderState {
        // Relaxed: ordered by the heavy barriers around the scan.
        let v = self.ctr.load(Ordering::Relaxed);
        if v & NEST_MASK == 0 {
            ReaderState::Inactive
        } else if (v ^ gp.ctr.load(Ordering::Relaxed)) & PHASE == 0 {
            ReaderState::ActiveCurrent
        } else {
            ReaderState::ActiveOld
        }
    }
}

/// The outermost unlock saw the updater sleeping on `futex` ([`GP_SLEEPING`]):
/// wake it (liburcu's `wake_up_gp`). Also the SRCU read side's.
#[cold]
#[inline(never)]
pub(crate) fn wake_up_gp(futex: &AtomicU32) {
    futex.store(0, Ordering::Relaxed);
    crate::arch::futex::wake_one(futex);
}

/// Waits until `scan` reports that no reader is in [`ReaderState::ActiveOld`]:
/// spins `attempts` scans, then announces itself on `futex` and sleeps until an
/// outermost `rcu_read_unlock` wakes it (liburcu's `wait_for_readers`/`wait_gp`).
///
/// `scan` takes whatever lock protects the record set, checks every record, and
/// drops the lock before returning, so readers may register and unregister while
/// the updater sleeps. The readers' side of the protocol: after the store that
/// ends their section, a reader barrier (light, paired with the `heavy_barrier`s
/// here), then if `futex` is [`GP_SLEEPING`], [`wake_up_gp`]. RCU uses
/// [`GpState::futex`]; each SRCU domain has its own word.
pub(crate) fn wait_for_readers(futex: &AtomicU32, attempts: u32, mut scan: impl FnMut() -> bool) {
    let mut loops = 0u32;
    loop {
        if loops < attempts {
            loops += 1;
        }
        let sleeping = loops >= attempts;
        if sleeping {
            futex.store(GP_SLEEPING, Ordering::Relaxed);
            // Orders the futex store before the record loads of the scan; pairs
            // with the readers' reader_barrier between their ctr store and futex load.
            heavy_barrier();
        }
        if scan() {
            if sleeping {
                // Orders the scan's loads before the futex reset (liburcu: "read
                // reader_gp before write futex").
                heavy_barrier();
                futex.store(0, Ordering::Relaxed);
            }
            return;
        }
        if sleeping {
            // Orders the scan before the futex load below.
            heavy_barrier();
            if futex.load(Ordering::Relaxed) == GP_SLEEPING {
                let _ = crate::arch::futex::wait(futex, GP_SLEEPING, None);
            }
        } else {
            crate::arch::cpu_relax();
        }
    }
}

/// One complete grace period over the record set that `scan` checks
/// (`scan(gp)` returns true when no record is [`ReaderState::ActiveOld`]):
/// barrier, wait, flip, wait, barrier. The caller serializes grace periods (only
/// one runs at a time: the phase is flipped with a plain load and store).
pub(crate) fn grace_period(gp: &GpState, attempts: u32, scan: impl Fn(&GpState) -> bool) {
    // Orders the updater's earlier stores (the unpublished pointer) before the
    // scans; pairs with the readers' reader_barrier after their ctr store.
    heavy_barrier();
    wait_for_readers(&gp.futex, attempts, || scan(gp));
    // Finish reading the records of the first wait before the flip (liburcu keeps
    // a full barrier here although only compiler order is required).
    fence(Ordering::SeqCst);
    let c = gp.ctr.load(Ordering::Relaxed);
    // The FENCE bit is ORed in so a reader registration racing with this
    // load/store pair cannot lose it (see `GpState::prepare_reader`).
    gp.ctr.store((c ^ PHASE) | fence_bit(), Ordering::Relaxed);
    // Commit the flip before the second wait's loads (same reasoning).
    fence(Ordering::SeqCst);
    wait_for_readers(&gp.futex, attempts, || scan(gp));
    // Orders the scans before the caller's frees; with the scan's Relaxed load of
    // a record it is the acquire half of the readers' Release store that ends
    // their section (fence-acquire synchronization).
    heavy_barrier();
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::sync::atomic::AtomicBool;

    /// A reader that is inside its section when the updater unpublishes the
    /// object must have finished before the grace period ends: the updater then
    /// "frees" it (sets `freed`), and the reader asserts it never sees that.
    #[test]
    fn loom_reader_before_gp_finishes_before_it_returns() {
        loom::model(|| {
            let gp = Arc::new(GpState::new());
            let rec = Arc::new(Record::new());
            // The protected "pointer": 1 = old object, 2 = new object.
            let ptr = Arc::new(AtomicUsize::new(1));
            let freed = Arc::new(AtomicBool::new(false));
            let r = {
                let (gp, rec, ptr, freed) = (gp.clone(), rec.clone(), ptr.clone(), freed.clone());
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        rec.lock(&gp);
                        if ptr.load(Ordering::Acquire) == 1 {
                            assert!(!freed.load(Ordering::Relaxed), "reader saw a freed object");
                        }
                        rec.unlock(&gp);
                    }
                })
            };
            ptr.store(2, Ordering::Release);
            grace_period(&gp, 1, |g| rec.state(g) != ReaderState::ActiveOld);
            freed.store(true, Ordering::Relaxed);
            r.join().unwrap();
        });
    }

    /// Nesting: an inner unlock does not end the section, so the updater still
    /// waits for the outer one.
    #[test]
    fn loom_nested_reader_is_waited_for() {
        loom::model(|| {
            let gp = Arc::new(GpState::new());
            let rec = Arc::new(Record::new());
            let ptr = Arc::new(AtomicUsize::new(1));
            let freed = Arc::new(AtomicBool::new(false));
            let r = {
                let (gp, rec, ptr, freed) = (gp.clone(), rec.clone(), ptr.clone(), freed.clone());
                loom::thread::spawn(move || {
                    rec.lock(&gp);
                    rec.lock(&gp);
                    let p = ptr.load(Ordering::Acquire);
                    rec.unlock(&gp);
                    if p == 1 {
                        assert!(!freed.load(Ordering::Relaxed), "reader saw a freed object");
                    }
                    rec.unlock(&gp);
                })
            };
            ptr.store(2, Ordering::Release);
            grace_period(&gp, 1, |g| rec.state(g) != ReaderState::ActiveOld);
            freed.store(true, Ordering::Relaxed);
            r.join().unwrap();
        });
    }
}
