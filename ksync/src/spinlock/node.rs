//! Per-thread MCS queue nodes, shared by the MCS lock and the queued spinlock
//! (the kernel's per-CPU `qnodes[MAX_NODES]`, here per thread).
//!
//! Implementation details: nodes live in one static array, never freed, indexed
//! by a small per-thread index. A thread claims its index from a global bitmap
//! the first time it needs a node and returns it when it exits. Because the
//! memory is static, a predecessor that kicks (futex-wakes) a node after its
//! owner moved on, or even exited, touches valid memory: the worst case is a
//! spurious wake-up of the slot's next owner, which every waiter tolerates.
//!
//! Each thread has [`NODES_PER_THREAD`] nodes, one per nesting level: a thread
//! spinning on one lock can be interrupted by an irq handler (a signal) that
//! queues on another lock. The free nodes are a per-thread bitmask, so MCS locks
//! held across critical sections may be released in any order.
//!
//! A node is named by a `code`, the value stored in lock tails and `next`
//! links: `((thread index + 1) << 3 | node index) << CODE_SHIFT`, never 0.
//!
//! | `Node::wait` | meaning                                                   |
//! |--------------|-----------------------------------------------------------|
//! | `WAITING` 0  | queued, the predecessor has not handed over yet           |
//! | `GO` 1       | handed over: this node is the queue head (or holds MCS)   |
//! | `ASLEEP` 2   | queued and asleep on the futex; the hand-over must wake   |
//!
//! Transitions: 0→2 by the owner (CAS, then futex wait on 2); 0→1 or 2→1 by the
//! predecessor (swap, waking on 2); 1→0 by the owner when it reuses the node.

use crate::loom::sync::atomic::{AtomicU32, Ordering};

/// Nodes per thread (nesting levels); the kernel has 4 per CPU.
pub(crate) const NODES_PER_THREAD: u32 = 8;
/// Low bits of a code left free for lock flags.
pub(crate) const CODE_SHIFT: u32 = 3;

/// Queued, not yet handed over.
pub(crate) const WAITING: u32 = 0;
/// Handed over.
pub(crate) const GO: u32 = 1;
/// Asleep on the futex.
pub(crate) const ASLEEP: u32 = 2;

#[cfg(not(loom))]
const MAX_THREADS: usize = 4096;
#[cfg(loom)]
const MAX_THREADS: usize = 4;

/// One MCS queue node.
pub(crate) struct Node {
    /// Code of the successor, 0 while none has linked itself.
    pub(crate) next: AtomicU32,
    /// `WAITING`, `GO` or `ASLEEP` (table above); also the futex word.
    pub(crate) wait: AtomicU32,
    /// Set by the predecessor before it hands the queue over (published by
    /// `hand_over`'s Release): when it took the lock, as the low 32 bits of
    /// `backoff::now_ns` (enough for waits under 4 s; see [`Node::since_ns`]).
    /// The queued spinlock's new head counts its patience from there.
    pub(crate) since: AtomicU32,
    /// Set with `since`: the queued spinlock's release count when the
    /// predecessor took the lock, where the new head's turn starts.
    pub(crate) turn: AtomicU32,
}

impl Node {
    /// `since` as a full `backoff::now_ns` reading, given `now`, a later one:
    /// exact while less than 2^32 ns (4.3 s) separate them.
    #[inline]
    pub(crate) fn since_ns(&self, now: u64) -> u64 {
        // Relaxed: published by hand_over's Release, which the waiter's
        // Acquire in wait_for_handover read.
        let low = self.since.load(Ordering::Relaxed);
        now.wrapping_sub(u64::from((now as u32).wrapping_sub(low)))
    }

    #[cfg(not(loom))]
    const fn new() -> Self {
        Node {
            next: AtomicU32::new(0),
            wait: AtomicU32::new(WAITING),
            since: AtomicU32::new(0),
            turn: AtomicU32::new(0),
        }
    }
    #[cfg(loom)]
    fn new() -> Self {
        Node {
            next: AtomicU32::new(0),
            wait: AtomicU32::new(WAITING),
            since: AtomicU32::new(0),
            turn: AtomicU32::new(0),
        }
    }
}

/// One thread's nodes on cache lines of their own (8 × 16 bytes, padded to 128
/// so neighbouring threads' nodes do not share a line or its prefetch pair).
#[repr(align(128))]
struct Group([Node; NODES_PER_THREAD as usize]);

#[cfg(not(loom))]
static POOL: [Group; MAX_THREADS] =
    [const { Group([const { Node::new() }; NODES_PER_THREAD as usize]) }; MAX_THREADS];

#[cfg(not(loom))]
static IDS: [core::sync::atomic::AtomicU64; MAX_THREADS / 64] =
    [const { core::sync::atomic::AtomicU64::new(0) }; MAX_THREADS / 64];

#[cfg(loom)]
loom::lazy_static! {
    static ref POOL: Vec<Group> = (0..MAX_THREADS)
        .map(|_| Group(core::array::from_fn(|_| Node::new())))
        .collect();
    static ref NEXT_ID: AtomicU32 = AtomicU32::new(0);
}

/// `Cell<u32>`: 0 = no index yet, `DEAD` = released at thread exit, else index + 1.
#[cfg(not(loom))]
const DEAD: u32 = u32::MAX;

#[cfg(not(loom))]
std::thread_local! {
    static ID: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
    /// Bit i set: node i is free.
    static FREE: core::cell::Cell<u32> = const { core::cell::Cell::new((1 << NODES_PER_THREAD) - 1) };
    static RELEASE: Release = const { Release };
}

#[cfg(loom)]
loom::thread_local! {
    static ID: core::cell::Cell<u32> = core::cell::Cell::new(0);
    static FREE: core::cell::Cell<u32> = core::cell::Cell::new((1 << NODES_PER_THREAD) - 1);
}

/// Returns the thread's index to the bitmap when the thread exits.
#[cfg(not(loom))]
struct Release;

#[cfg(not(loom))]
impl Drop for Release {
    fn drop(&mut self) {
        let _ = ID.try_with(|id| {
            let v = id.get();
            id.set(DEAD);
            if v != 0 && v != DEAD {
                let i = (v - 1) as usize;
                // Relaxed: the slot's nodes are only reached through lock
                // tails, which carry their own Acquire/Release.
                IDS[i / 64].fetch_and(!(1u64 << (i % 64)), core::sync::atomic::Ordering::Relaxed);
            }
        });
    }
}

/// This thread's index + 1, claiming one if needed; `None` when none can be had
/// (every slot taken, the thread is exiting, or we are in an irq handler and
/// cannot register the exit hook async-signal-safely).
#[cfg(not(loom))]
#[inline]
fn thread_id() -> Option<u32> {
    let v = ID.try_with(|id| id.get()).ok()?;
    match v {
        0 => claim_id(),
        DEAD => None,
        v => Some(v),
    }
}

#[cfg(not(loom))]
#[cold]
fn claim_id() -> Option<u32> {
    if crate::ctx::in_interrupt() {
        return None;
    }
    // Register the exit hook first: if TLS is already being torn down, give up.
    RELEASE.try_with(|_| ()).ok()?;
    for (w, word) in IDS.iter().enumerate() {
        let mut cur = word.load(core::sync::atomic::Ordering::Relaxed);
        let backoff = crate::Backoff::new();
        while cur != u64::MAX {
            let bit = (!cur).trailing_zeros();
            match word.compare_exchange_weak(
                cur,
                cur | (1 << bit),
                core::sync::atomic::Ordering::Relaxed,
                core::sync::atomic::Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let v = (w * 64) as u32 + bit + 1;
                    ID.with(|id| id.set(v));
                    return Some(v);
                }
                Err(now) => {
                    cur = now;
                    backoff.spin();
                }
            }
        }
    }
    None
}

#[cfg(loom)]
fn thread_id() -> Option<u32> {
    let v = ID.with(|id| id.get());
    if v != 0 {
        return Some(v);
    }
    let v = NEXT_ID.fetch_add(1, Ordering::Relaxed) + 1;
    ID.with(|id| id.set(v));
    Some(v)
}

/// A node claimed by this thread; give it back with [`free`].
pub(crate) struct Claimed {
    pub(crate) code: u32,
    pub(crate) node: &'static Node,
}

/// Claims a free node of this thread, reset to `WAITING` with no successor.
/// `None` if the thread has no index or all its nodes are in use.
///
/// Async-signal-safe once the thread has an index: the free mask is changed with
/// a plain load and store, and an irq handler that interrupts in between claims
/// and frees its own node before returning, leaving the mask as it found it.
#[inline]
pub(crate) fn claim() -> Option<Claimed> {
    let tid = thread_id()?;
    let free = FREE.with(|f| f.get());
    if free == 0 {
        return None;
    }
    let idx = free.trailing_zeros();
    FREE.with(|f| f.set(free & !(1 << idx)));
    let code = ((tid << 3) | idx) << CODE_SHIFT;
    let node = get(code);
    // Relaxed: published to the successor/predecessor by the Release/AcqRel
    // tail exchange that enqueues this node.
    node.next.store(0, Ordering::Relaxed);
    node.wait.store(WAITING, Ordering::Relaxed);
    Some(Claimed { code, node })
}

/// Gives a node claimed with [`claim`] back to this thread's free mask.
#[inline]
pub(crate) fn free(c: &Claimed) {
    let idx = (c.code >> CODE_SHIFT) & (NODES_PER_THREAD - 1);
    FREE.with(|f| f.set(f.get() | (1 << idx)));
}

/// The node a code names.
#[inline]
pub(crate) fn get(code: u32) -> &'static Node {
    let c = code >> CODE_SHIFT;
    let tid = (c >> 3) - 1;
    let idx = c & (NODES_PER_THREAD - 1);
    &POOL[tid as usize].0[idx as usize]
}

/// Waits until the predecessor hands over (`wait` becomes `GO`): spins a bounded
/// time, then sleeps on the node's futex (the paravirtual `pv_wait_node`).
#[inline]
pub(crate) fn wait_for_handover(node: &Node) {
    let spin = super::raw::Spin::new();
    loop {
        // Acquire: pairs with the predecessor's Release swap in `hand_over`.
        if node.wait.load(Ordering::Acquire) == GO {
            return;
        }
        if spin.is_completed() {
            break;
        }
        spin.snooze();
    }
    sleep_until_go(node);
}

#[cold]
fn sleep_until_go(node: &Node) {
    loop {
        // The CAS and the predecessor's swap are RMWs on the same word, so one
        // of them sees the other: either we see GO, or the predecessor sees
        // ASLEEP and wakes us. No lost wake-up.
        match node
            .wait
            .compare_exchange(WAITING, ASLEEP, Ordering::Acquire, Ordering::Acquire)
        {
            Err(GO) => return,
            _ => {
                crate::arch::futex::wait(&node.wait, ASLEEP, None);
            }
        }
        if node.wait.load(Ordering::Acquire) == GO {
            return;
        }
    }
}

/// Hands the queue over to `next` (`arch_mcs_spin_unlock_contended` plus
/// `pv_kick_node`): marks it `GO` and wakes it if it sleeps.
#[inline]
pub(crate) fn hand_over(next: &Node) {
    // Release: the new head's Acquire load sees everything we did as head.
    if next.wait.swap(GO, Ordering::Release) == ASLEEP {
        crate::arch::futex::wake_one(&next.wait);
    }
}

/// Waits for the successor that swapped itself into the tail to link itself
/// into `node.next`; returns its code.
#[inline]
pub(crate) fn wait_for_next(node: &Node) -> u32 {
    let spin = super::raw::Spin::new();
    loop {
        // Acquire: pairs with the successor's Release store of its code.
        let n = node.next.load(Ordering::Acquire);
        if n != 0 {
            return n;
        }
        spin.snooze();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `since` keeps only the low 32 bits of a clock reading; `since_ns`
    /// rebuilds the full reading from any later one less than 2^32 ns on,
    /// also across a carry into the high bits.
    #[test]
    fn since_ns_rebuilds_the_full_reading() {
        let n = Node::new();
        for t in [0u64, 12_345, 0x1_ffff_fff0, 0xdead_beef_0000_0001] {
            n.since.store(t as u32, Ordering::Relaxed);
            for later in [0u64, 1, 0x20, 4_000_000_000, u64::from(u32::MAX)] {
                assert_eq!(n.since_ns(t + later), t, "t {t:#x}, later {later:#x}");
            }
        }
    }
}
