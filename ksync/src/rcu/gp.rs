//! The grace-period core: the global phase, the per-thread reader counters, and
//! the wait for pre-existing readers.
//!
//! Each reader thread owns two counters of read-side sections, one per phase,
//! as the kernel's classic SRCU keeps two per CPU (`srcu_lock_count[2]`,
//! `kernel/rcu/srcutree.c`); the updater's side, the futex sleep and the
//! membarrier pairing are liburcu's membarrier flavour (`src/urcu.c`,
//! `include/urcu/static/urcu-memb.h` in urcu/userspace-rcu). Unlike SRCU's
//! counters, a thread's are written only by that thread, so entering and leaving
//! a section are plain load-add-store sequences, not atomic read-modify-writes.
//!
//! Where membarrier is in use, a reader does not even read the global phase:
//! each thread keeps a pointer to its counter for the current phase in a
//! thread-local (`FAST` in `reader.rs`), and the grace-period leader's flip
//! rewrites every registered thread's pointer along with the phase word. The
//! read side is then one thread-local load and one increment.
//!
//! This file holds only the algorithm, on explicit state, so the loom models run it
//! exactly as the library does; `reader.rs` and `sync.rs` bind it to the global
//! state, the thread registry and the thread-local record.
//!
//! ## State words
//!
//! | word | values |
//! |------|--------|
//! | [`GpState::ctr`] | the current phase, as the byte offset of its counter in a [`Record`]: 0 or [`STRIDE`]; no other bits. Flipped once per grace period, only by the grace-period leader |
//! | [`GpState::futex`] | [`GP_IDLE`] (0): no updater sleeps, membarrier in use; [`GP_FENCED`]: no updater sleeps, no membarrier (set before the first reader's first section, and the idle value from then on); [`GP_SLEEPING`] (`u32::MAX`, liburcu's -1): the updater sleeps or is about to, and `rcu_read_unlock` wakes it |
//! | `Record::cnt[i]` | how many of this thread's sections that entered in phase `i` are still open; written only by the owning thread |
//! | `FAST` (per thread, `reader.rs`) | null: the fast path is off (not registered, or fence mode); else `&cnt[i]` of the thread's record for the phase `i` of the last flip. Written by the thread when it registers or unregisters and by the leader at each flip, all under the registry lock |
//!
//! A section adds 1 to the counter of the phase it read at `rcu_read_lock` (from
//! `FAST`, or from [`GpState::ctr`] on the out-of-line path) and
//! its guard subtracts 1 from that same counter, so nesting needs no test: an
//! inner section counts on whichever counter is current then, and guards may be
//! dropped in any order.
//!
//! ## Why the grace period is correct
//!
//! [`grace_period`] issues a [`heavy_barrier`], then waits until every record's
//! counter of the non-current phase is 0, flips the phase, and waits until every
//! record's counter of the old phase is 0 (liburcu's `synchronize_rcu`; SRCU's
//! scan-flip-scan). The updater unpublished the object before the call.
//!
//! *Safety.* Take a section S of reader R, on counter `i`, and the last load of
//! R's `cnt[i]` in the wait for phase `i`, which returned 0. Only R writes
//! `cnt[i]`, so that load returned R's value after some prefix of R's own
//! increments and decrements of it, and the value is the number of R's sections
//! on `i` open at that point. Either S's increment is in the prefix: then S's
//! decrement is too (else the value would be at least 1), and the decrement's
//! Release with the updater's final [`heavy_barrier`] (a SeqCst fence after the
//! load) orders all of S before the free. Or S's increment is not in the
//! prefix: the updater's load follows its first [`heavy_barrier`] and misses
//! the increment, which R's reader barrier (after the increment, before the
//! section's loads) pairs with, so S's loads come after that barrier and see the
//! object unpublished — S cannot reach it. Both phases are waited for, so every
//! section is one of the two cases. This argument needs no flip at all; the flip
//! is for progress.
//!
//! *Progress.* Both counters are waited for because a section that began
//! before the call may be open on either. New sections enter the current
//! phase, and each wait is on a phase that is not current at the time — the
//! non-current one first, then, after the flip, the one that was current — so a
//! stream of new readers cannot keep it from draining, with one flip per grace
//! period (as liburcu and the kernel's SRCU flip once). What can still increment
//! a waited counter is a *late increment*: a reader that loaded the phase before
//! a flip and increments after it (after the scan that the safety argument lets
//! miss it). A thread has at most one in flight once the flip is visible to it,
//! and the flip is stores (the phase word and every registered thread's `FAST`,
//! under the registry lock, so a registering thread reads the phase either
//! before or after all of them) followed by a fence; in the sleeping wait each
//! [`heavy_barrier`] makes it visible to every reader (membarrier runs a full
//! barrier on each; in fence mode the fence after each reader's increment pairs
//! with it). So each wait ends once the sections open on its phase end.
//!
//! ## Memory ordering
//!
//! Readers pair a compiler barrier with the updater's
//! `membarrier(PRIVATE_EXPEDITED)` ([`heavy_barrier`]); without membarrier both
//! are `fence(SeqCst)` (the pair `arch::membarrier::light_barrier`/`heavy_barrier`).
//! The read side does not read the global membarrier mode, as `light_barrier`
//! and liburcu's `smp_mb_slave` do: the mode is decided once, at start-up, and
//! the fence fallback is reached through words the fast path reads anyway. In
//! fence mode the thread-local fast pointer (`FAST`) is never set, so
//! every `rcu_read_lock` takes its out-of-line path, which ends with
//! [`read_lock_fenced`]; and [`GpState::futex`] is never 0 ([`GP_FENCED`]), so
//! every [`read_unlock`] takes its out-of-line path, which fences before it
//! looks at the futex again. Each barrier below names its partner.
//!
//! ## Generated code
//!
//! With membarrier, an `rcu_read_lock` + drop inlined into a loop on x86-64
//! (`let g = rcu_read_lock(); black_box(&g);`, the `rcu` bench) is 8
//! instructions besides the loop and `black_box`'s own stores:
//!
//! ```text
//! mov %fs:FAST,%rax ; test %rax,%rax ; je <register/fence path> ; incq (%rax)
//! decq (%rax)       ; mov GP.futex,%eax ; test %eax,%eax ; jne <wake/fence path>
//! ```
//!
//! No atomic read-modify-write (no `lock` prefix), no fence and no call; the
//! previous nesting-and-phase word needed 21, as liburcu's
//! `_urcu_memb_read_lock`/`_urcu_memb_read_unlock` do 22, with three loads of
//! its `has_sys_membarrier` flag; reading the phase word instead of keeping
//! `FAST` costs a load and an address computation more (10). In a tight loop of
//! empty sections what bounds the pair is memory operations, not instructions:
//! two loads and two load-add-stores, plus `black_box`'s two stores and one
//! reload in the bench — four stores an iteration, two cycles on a core that
//! retires two stores a cycle (Zen 3). The `incq`/`decq` of one counter do not
//! form a slow chain through memory there (a loop of `incq (m); decq (m)` runs
//! as fast as one of two plain stores). The price is paid by the grace period:
//! its flip writes one pointer into each registered reader thread's
//! thread-local storage, a cache miss per reader on top of the two scans.

use crate::arch::membarrier::{heavy_barrier, is_expedited};
use crate::loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering, compiler_fence, fence};

/// The distance in bytes between a [`Record`]'s two counters, and so the value
/// of [`GpState::ctr`] in phase 1 (0 in phase 0).
pub(crate) const STRIDE: usize = size_of::<AtomicUsize>();
/// [`GpState::futex`]: no updater sleeps (membarrier in use).
pub(crate) const GP_IDLE: u32 = 0;
/// [`GpState::futex`]: no updater sleeps, and the read side must fence
/// (membarrier unavailable). Non-zero, so [`read_unlock`] goes out of line.
pub(crate) const GP_FENCED: u32 = 1;
/// [`GpState::futex`] value meaning "the updater sleeps; wake it".
pub(crate) const GP_SLEEPING: u32 = u32::MAX;

#[cfg(not(loom))]
/// How many scans `synchronize_rcu` spins before it sleeps on the futex
/// (liburcu's `RCU_QS_ACTIVE_ATTEMPTS`).
pub(crate) const ACTIVE_ATTEMPTS: u32 = 100;
#[cfg(not(loom))]
/// The same for `synchronize_rcu_expedited`: spin ten times longer.
pub(crate) const EXPEDITED_ATTEMPTS: u32 = 1000;

/// The idle value of [`GpState::futex`]: [`GP_IDLE`] where membarrier is in
/// use, else [`GP_FENCED`]. Constant once decided (the membarrier mode is chosen
/// once, at start-up; under loom it is always the fence mode).
#[inline]
pub(crate) fn futex_idle() -> u32 {
    if is_expedited() { GP_IDLE } else { GP_FENCED }
}

/// The global grace-period state (liburcu's `rcu_gp`). Only the grace-period
/// leader writes `ctr`; readers only read both words (a reader's wake-up and
/// its thread's registration store to `futex`, rarely), so the cache line stays
/// shared between them. The static holding it is cache-padded so no other
/// written data shares the line.
pub(crate) struct GpState {
    /// The current phase: the byte offset of its counter in a [`Record`], 0 or
    /// [`STRIDE`].
    pub(crate) ctr: AtomicUsize,
    /// The updater's futex word: [`GP_IDLE`], [`GP_FENCED`] or [`GP_SLEEPING`].
    pub(crate) futex: AtomicU32,
}

impl GpState {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        GpState {
            ctr: AtomicUsize::new(0),
            futex: AtomicU32::new(GP_IDLE),
        }
    }
    /// Under loom the read side always takes the fence path (membarrier cannot
    /// be modelled), as with `KSYNC_NO_MEMBARRIER=1`.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        GpState {
            ctr: AtomicUsize::new(0),
            futex: AtomicU32::new(GP_FENCED),
        }
    }

    /// Makes `off` the current phase (the whole flip where readers keep no fast
    /// pointer). Only the grace-period leader calls it.
    #[inline]
    pub(crate) fn set_phase(&self, off: usize) {
        // Relaxed: readers tolerate a stale phase (late increments); the
        // fences around the flip in `grace_period` bound how long.
        self.ctr.store(off, Ordering::Relaxed);
    }

    /// Prepares the futex word for a new reader: where the read side must fence,
    /// replaces the initial [`GP_IDLE`] by [`GP_FENCED`]. Called by every reader
    /// registration, before the reader's first section.
    #[cfg(not(loom))]
    pub(crate) fn prepare_reader(&self) {
        let idle = futex_idle();
        // Relaxed: the word only has to be non-zero in this thread's own later
        // loads (coherence). The CAS fails only where the word is already
        // non-zero (GP_FENCED, or GP_SLEEPING from an updater), and every later
        // store to it is GP_SLEEPING or futex_idle(), both non-zero in this mode.
        if idle != GP_IDLE && self.futex.load(Ordering::Relaxed) == GP_IDLE {
            let _ =
                self.futex
                    .compare_exchange(GP_IDLE, idle, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// One thread's reader record: its two section counters (liburcu's
/// `struct urcu_reader`, with SRCU's counter pair instead of a nesting-and-phase
/// word). Only its own thread writes the counters; the updater reads them.
#[repr(C)]
pub(crate) struct Record {
    /// `cnt[i]`: this thread's open sections that entered in phase `i`.
    cnt: [AtomicUsize; 2],
}

impl Record {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Record {
            cnt: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Record {
            cnt: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }

    /// The counter of the phase whose [`GpState::ctr`] value is `off`.
    #[inline(always)]
    pub(crate) fn counter(&self, off: usize) -> &AtomicUsize {
        debug_assert!(off == 0 || off == STRIDE, "bad phase offset {off}");
        // SAFETY: `off` is 0 or STRIDE (GpState::ctr holds nothing else), the
        // byte offset of `cnt[0]` or `cnt[1]` in this repr(C) struct whose only
        // field is the array; the reference borrows `self`.
        unsafe {
            &*(self as *const Self)
                .cast::<u8>()
                .add(off)
                .cast::<AtomicUsize>()
        }
    }

    /// Opens a section on the counter at `off`: adds 1 to it, with no barrier.
    #[inline(always)]
    pub(crate) fn enter_at(&self, off: usize) -> &AtomicUsize {
        let c = self.counter(off);
        enter(c);
        c
    }

    /// Opens a section in the current phase, with no barrier.
    #[inline(always)]
    pub(crate) fn enter(&self, gp: &GpState) -> &AtomicUsize {
        // Relaxed: a stale phase is a late increment, which the grace period
        // tolerates (module docs).
        self.enter_at(gp.ctr.load(Ordering::Relaxed))
    }

    /// The number of this thread's open sections (only meaningful on the
    /// owning thread).
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn depth(&self) -> usize {
        // Relaxed: only this thread writes them.
        self.cnt[0]
            .load(Ordering::Relaxed)
            .wrapping_add(self.cnt[1].load(Ordering::Relaxed))
    }

    /// Whether no section of this record is open on the counter at `off`, as
    /// the updater sees it.
    #[inline]
    pub(crate) fn quiescent_at(&self, off: usize) -> bool {
        // Relaxed: ordered by the heavy barriers around the scan.
        self.counter(off).load(Ordering::Relaxed) == 0
    }
}

/// Opens a section on counter `c` of the calling thread's record: adds 1 to
/// it, with no barrier.
#[inline(always)]
pub(crate) fn enter(c: &AtomicUsize) {
    // Relaxed load and store, not fetch_add: only the owning thread writes its
    // counters, so no increment can be lost, and the pair compiles to one
    // `incq` without a `lock` prefix. The updater may read the counter at any
    // time; it sees the old or the new value.
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// `rcu_read_lock`'s fast path where membarrier is in use: opens a section on
/// `c`, the counter that the thread's fast pointer names (its counter for the
/// phase of the last flip it has seen).
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn read_lock_on(c: &AtomicUsize) {
    enter(c);
    // Orders the increment before the section's loads; pairs with the
    // heavy_barrier that `grace_period` issues before it scans the counters
    // (urcu-memb.h: smp_mb_slave + smp_mb_master).
    compiler_fence(Ordering::SeqCst);
}

/// `rcu_read_lock` on `rec` where membarrier is in use: opens a section in the
/// current phase and returns the counter that its unlock decrements. (Not under
/// loom, which has no compiler fence to pair with membarrier: the models use
/// [`read_lock_fenced`].)
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn read_lock<'r>(rec: &'r Record, gp: &GpState) -> &'r AtomicUsize {
    let c = rec.enter(gp);
    // Orders the increment before the section's loads; pairs with the
    // heavy_barrier that `grace_period` issues before it scans the counters
    // (urcu-memb.h: smp_mb_slave + smp_mb_master).
    compiler_fence(Ordering::SeqCst);
    c
}

/// `rcu_read_lock` on `rec` where membarrier is unavailable.
#[inline]
pub(crate) fn read_lock_fenced<'r>(rec: &'r Record, gp: &GpState) -> &'r AtomicUsize {
    let c = rec.enter(gp);
    // Orders the increment before the section's loads; pairs with the
    // fence(SeqCst) that heavy_barrier degrades to.
    fence(Ordering::SeqCst);
    c
}

/// `rcu_read_unlock`: closes the section that [`read_lock`] or
/// [`read_lock_fenced`] opened on counter `c`, and wakes a sleeping updater.
#[inline(always)]
pub(crate) fn read_unlock(c: &AtomicUsize, gp: &GpState) {
    // Release: orders the section's accesses before the store that ends it
    // (load→store and store→store need no fence: a plain `decq` on x86-64);
    // pairs with the updater's Relaxed scan load followed by heavy_barrier (a
    // SeqCst fence: fence-acquire synchronization).
    c.store(c.load(Ordering::Relaxed).wrapping_sub(1), Ordering::Release);
    // Orders the counter store before the futex load (store→load); pairs with
    // the heavy_barrier between the updater's futex store and its scan. In fence
    // mode the word is never GP_IDLE, and the slow path fences before it loads
    // the word again.
    compiler_fence(Ordering::SeqCst);
    // Relaxed: a stale GP_IDLE is excluded by the barrier pair above.
    if gp.futex.load(Ordering::Relaxed) != GP_IDLE {
        read_unlock_slow(gp);
    }
}

/// The futex word was not [`GP_IDLE`]: fence mode, or an updater sleeps.
#[cold]
#[inline(never)]
fn read_unlock_slow(gp: &GpState) {
    // Orders the counter store before the futex load below (store→load); pairs
    // with the heavy_barrier between the updater's futex store and its scan,
    // whether that is a fence (fence mode) or membarrier (where this fence is
    // redundant, and cheap next to the wake-up).
    fence(Ordering::SeqCst);
    if gp.futex.load(Ordering::Relaxed) == GP_SLEEPING {
        wake_up_gp(&gp.futex, futex_idle());
    }
}

/// A reader saw the updater sleeping on `futex` ([`GP_SLEEPING`]): reset the
/// word to `idle` and wake it (liburcu's `wake_up_gp`). Also the SRCU read
/// side's (whose idle value is always 0).
#[cold]
#[inline(never)]
pub(crate) fn wake_up_gp(futex: &AtomicU32, idle: u32) {
    futex.store(idle, Ordering::Relaxed);
    crate::arch::futex::wake_one(futex);
}

/// Waits until `scan` reports that no reader it waits for is left: spins
/// `attempts` scans, then announces itself on `futex` and sleeps until a
/// reader's unlock wakes it (liburcu's `wait_for_readers`/`wait_gp`). `idle` is
/// the value the word holds while no updater sleeps; it is restored on return.
///
/// `scan` takes whatever lock protects the record set, checks every record, and
/// drops the lock before returning, so readers may register and unregister while
/// the updater sleeps. The readers' side of the protocol: after the store that
/// ends their section, a reader barrier (light, paired with the `heavy_barrier`s
/// here), then if `futex` is [`GP_SLEEPING`], [`wake_up_gp`]. RCU uses
/// [`GpState::futex`]; each SRCU domain has its own word.
pub(crate) fn wait_for_readers(
    futex: &AtomicU32,
    idle: u32,
    attempts: u32,
    mut scan: impl FnMut() -> bool,
) {
    let mut loops = 0u32;
    loop {
        if loops < attempts {
            loops += 1;
        }
        let sleeping = loops >= attempts;
        if sleeping {
            futex.store(GP_SLEEPING, Ordering::Relaxed);
            // Orders the futex store before the record loads of the scan; pairs
            // with the readers' barrier between their counter store and futex load.
            heavy_barrier();
        }
        if scan() {
            if sleeping {
                // Orders the scan's loads before the futex reset (liburcu: "read
                // reader_gp before write futex").
                heavy_barrier();
                futex.store(idle, Ordering::Relaxed);
            }
            return;
        }
        if sleeping {
            // Orders the scan before the futex load below.
            heavy_barrier();
            if futex.load(Ordering::Relaxed) == GP_SLEEPING {
                // Through the one sleep path: a BKL holder drops the BKL while
                // it waits, so a reader that needs the BKL to finish its section
                // can (SPEC §15).
                crate::sched::sleep_on_word(futex, GP_SLEEPING);
            }
        } else {
            crate::arch::cpu_relax();
        }
    }
}

/// One complete grace period over the record set that `quiescent` checks
/// (`quiescent(off)` returns true when every record's counter at `off` is 0):
/// barrier, wait for the non-current phase, flip, wait for the old phase,
/// barrier (module docs). `flip(off)` makes `off` the current phase: it stores
/// it to [`GpState::ctr`] and points every reader's fast pointer at its
/// counter for it ([`GpState::set_phase`] where readers have none). The caller
/// serializes grace periods (only one runs at a time: the phase is flipped with
/// a plain load and store).
pub(crate) fn grace_period(
    gp: &GpState,
    attempts: u32,
    flip: impl FnOnce(usize),
    quiescent: impl Fn(usize) -> bool,
) {
    let idle = futex_idle();
    // Orders the updater's earlier stores (the unpublished pointer) before the
    // scans; pairs with the readers' barrier after their increment.
    heavy_barrier();
    let cur = gp.ctr.load(Ordering::Relaxed);
    let other = cur ^ STRIDE;
    // Sections still open on the other phase (entered before the previous
    // flip, or late increments from it) drain first, so that after the flip
    // only the old current phase's sections remain to wait for.
    wait_for_readers(&gp.futex, idle, attempts, || quiescent(other));
    // Finish reading the counters of the first wait before the flip: were the
    // flip visible earlier, new readers could keep the counter just waited for
    // from reaching 0 (liburcu keeps a full barrier here; load→store order is
    // what it needs).
    fence(Ordering::SeqCst);
    flip(other);
    // Commit the flip before the second wait's loads (same reasoning: new
    // readers must stop entering the phase waited for).
    fence(Ordering::SeqCst);
    wait_for_readers(&gp.futex, idle, attempts, || quiescent(cur));
    // Orders the scans before the caller's frees; with the scan's Relaxed load of
    // a counter it is the acquire half of the readers' Release store that ends
    // their section (fence-acquire synchronization).
    heavy_barrier();
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::sync::atomic::{AtomicBool, AtomicPtr};

    /// One reader thread's state and the grace-period state, as `reader.rs`
    /// and `sync.rs` keep them: the record, and the thread's fast pointer
    /// (`FAST`), which each flip rewrites.
    struct Rcu {
        gp: GpState,
        rec: Record,
        fast: AtomicPtr<AtomicUsize>,
    }

    impl Rcu {
        fn new() -> Arc<Self> {
            let r = Arc::new(Rcu {
                gp: GpState::new(),
                rec: Record::new(),
                fast: AtomicPtr::new(core::ptr::null_mut()),
            });
            // Registration: the fast pointer names the current phase's counter.
            r.flip(r.gp.ctr.load(Ordering::Relaxed));
            r
        }

        /// `sync.rs`'s flip: the phase word and every fast pointer.
        fn flip(&self, off: usize) {
            self.gp.set_phase(off);
            let c: *const AtomicUsize = self.rec.counter(off);
            self.fast.store(c as *mut AtomicUsize, Ordering::Relaxed);
        }

        /// The fast path, `read_lock_on`, with the fence that stands in for the
        /// compiler barrier + membarrier pair (loom cannot model membarrier).
        fn lock_fast(&self) -> &AtomicUsize {
            // SAFETY: the fast pointer always names one of `rec`'s counters,
            // which live as long as `self`.
            let c = unsafe { &*self.fast.load(Ordering::Relaxed) };
            enter(c);
            fence(Ordering::SeqCst);
            c
        }

        /// The out-of-line path of fence mode: the phase from the phase word.
        fn lock_fenced(&self) -> &AtomicUsize {
            read_lock_fenced(&self.rec, &self.gp)
        }

        fn unlock(&self, c: &AtomicUsize) {
            read_unlock(c, &self.gp);
        }

        /// The updater's grace period over this one reader.
        fn synchronize(&self) {
            grace_period(
                &self.gp,
                1,
                |off| self.flip(off),
                |off| self.rec.quiescent_at(off),
            );
        }
    }

    /// The updater's side of the single-grace-period models: unpublish the
    /// object (the protected "pointer" goes from 1, the old object, to 2), run
    /// one grace period, then "free" the old object.
    fn update(rcu: &Rcu, ptr: &AtomicUsize, freed: &AtomicBool) {
        ptr.store(2, Ordering::Release);
        rcu.synchronize();
        freed.store(true, Ordering::Relaxed);
    }

    /// A reader that is inside its section when the updater unpublishes the
    /// object must have finished before the grace period ends: the updater then
    /// "frees" it (sets `freed`), and the reader asserts it never sees that.
    /// Two sections on the fast path, so one may straddle the flip.
    #[test]
    fn loom_reader_before_gp_finishes_before_it_returns() {
        loom::model(|| {
            let rcu = Rcu::new();
            let ptr = Arc::new(AtomicUsize::new(1));
            let freed = Arc::new(AtomicBool::new(false));
            let r = {
                let (rcu, ptr, freed) = (rcu.clone(), ptr.clone(), freed.clone());
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        let c = rcu.lock_fast();
                        if ptr.load(Ordering::Acquire) == 1 {
                            assert!(!freed.load(Ordering::Relaxed), "reader saw a freed object");
                        }
                        rcu.unlock(c);
                    }
                })
            };
            update(&rcu, &ptr, &freed);
            r.join().unwrap();
        });
    }

    /// Nesting: the inner section's unlock does not end the outer one, though
    /// both count on the record's counters, so the updater still waits for the
    /// outer one. The outer section takes the fence-mode path, the inner one
    /// the fast path, and either may enter in either phase.
    #[test]
    fn loom_nested_reader_is_waited_for() {
        loom::model(|| {
            let rcu = Rcu::new();
            let ptr = Arc::new(AtomicUsize::new(1));
            let freed = Arc::new(AtomicBool::new(false));
            let r = {
                let (rcu, ptr, freed) = (rcu.clone(), ptr.clone(), freed.clone());
                loom::thread::spawn(move || {
                    let outer = rcu.lock_fenced();
                    let inner = rcu.lock_fast();
                    let p = ptr.load(Ordering::Acquire);
                    rcu.unlock(inner);
                    if p == 1 {
                        assert!(!freed.load(Ordering::Relaxed), "reader saw a freed object");
                    }
                    rcu.unlock(outer);
                })
            };
            update(&rcu, &ptr, &freed);
            r.join().unwrap();
        });
    }

    /// The late increment: a reader loads its fast pointer, and only after the
    /// updater has flipped it (or finished) increments the counter it loaded,
    /// which the updater's scan of that counter may already have passed. Such a
    /// section began after the grace period's first barrier, so it must see the
    /// object unpublished; and the updater must not wait for it forever (a hang
    /// shows as a deadlock in the model).
    #[test]
    fn loom_late_increment_sees_the_removal() {
        loom::model(|| {
            let rcu = Rcu::new();
            let ptr = Arc::new(AtomicUsize::new(1));
            let freed = Arc::new(AtomicBool::new(false));
            let done = Arc::new(AtomicBool::new(false));
            let r = {
                let (rcu, ptr, freed, done) =
                    (rcu.clone(), ptr.clone(), freed.clone(), done.clone());
                loom::thread::spawn(move || {
                    // `lock_fast`, cut in two around the wait for the flip.
                    let c = rcu.fast.load(Ordering::Relaxed);
                    while rcu.fast.load(Ordering::Relaxed) == c && !done.load(Ordering::Relaxed) {
                        loom::thread::yield_now();
                    }
                    // SAFETY: one of the record's counters, alive with `rcu`.
                    let c = unsafe { &*c };
                    enter(c);
                    fence(Ordering::SeqCst);
                    if ptr.load(Ordering::Acquire) == 1 {
                        assert!(!freed.load(Ordering::Relaxed), "reader saw a freed object");
                    }
                    rcu.unlock(c);
                })
            };
            update(&rcu, &ptr, &freed);
            done.store(true, Ordering::Relaxed);
            r.join().unwrap();
        });
    }

    /// A late increment from one grace period must be waited for by the next:
    /// the reader loads the phase before the first grace period's flip and
    /// increments that phase's counter only after the first grace period has
    /// returned — after its scans, but before the second grace period begins —
    /// so its section may hold the object the second one frees. Only the
    /// second grace period's wait for the non-current phase sees it.
    #[test]
    fn loom_late_increment_is_waited_for_by_the_next_gp() {
        loom::model(|| {
            let rcu = Rcu::new();
            let ptr = Arc::new(AtomicUsize::new(1));
            let freed = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
            let first_done = Arc::new(AtomicBool::new(false));
            let r = {
                let (rcu, ptr, freed, first_done) =
                    (rcu.clone(), ptr.clone(), freed.clone(), first_done.clone());
                loom::thread::spawn(move || {
                    // `read_lock_fenced`, cut in two around the first grace period.
                    let off = rcu.gp.ctr.load(Ordering::Relaxed);
                    while !first_done.load(Ordering::Acquire) {
                        loom::thread::yield_now();
                    }
                    let c = rcu.rec.enter_at(off);
                    fence(Ordering::SeqCst);
                    // 1 and 2 are freed by the first and second grace period;
                    // 3 is never freed.
                    let p = ptr.load(Ordering::Acquire);
                    if p < 3 {
                        assert!(
                            !freed[p - 1].load(Ordering::Relaxed),
                            "reader saw a freed object"
                        );
                    }
                    rcu.unlock(c);
                })
            };
            ptr.store(2, Ordering::Release);
            rcu.synchronize();
            freed[0].store(true, Ordering::Relaxed);
            first_done.store(true, Ordering::Release);
            ptr.store(3, Ordering::Release);
            rcu.synchronize();
            freed[1].store(true, Ordering::Relaxed);
            r.join().unwrap();
        });
    }
}
