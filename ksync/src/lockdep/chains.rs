//! Lock chains: the key of a sequence of held classes, and the cache of chains
//! already validated (`lock_chains`, `chain_key`).
//!
//! Validated chains are keys in a lock-free open-addressing table of `AtomicU64`
//! (0 = empty). A hit means the same sequence of held classes (with their kinds
//! and trylock flags) followed by the same new class has been validated, so its
//! edges are in the graph already; a full table only means more slow paths.

use std::sync::atomic::{AtomicU64, Ordering};

use super::AcquireKind;

/// Slots of the chain-key table (a power of two).
const CHAIN_SLOTS: usize = 1 << 15;
/// How far an insert or lookup probes before giving up.
const CHAIN_PROBES: usize = 32;

/// The chain key after `prev` with class `id` taken as `kind` (`iterate_chain_key`).
#[inline]
pub(super) fn mix(prev: u64, id: u32, kind: AcquireKind, trylock: bool) -> u64 {
    let v = u64::from(id) | (kind as u64) << 32 | u64::from(trylock) << 34;
    let mut h = (prev ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 32)
}

/// The key of the empty chain in irq context `ctx` (a chain starts afresh in each).
#[inline]
pub(super) fn seed(ctx: u8) -> u64 {
    0x6a09_e667_f3bc_c908 ^ u64::from(ctx)
}

static CHAINS: [AtomicU64; CHAIN_SLOTS] = [const { AtomicU64::new(0) }; CHAIN_SLOTS];

/// Whether the chain `key` was validated (`lookup_chain_cache`).
#[inline(always)]
pub(super) fn chain_cached(key: u64) -> bool {
    let k = key.max(1);
    let mut i = k as usize & (CHAIN_SLOTS - 1);
    for _ in 0..CHAIN_PROBES {
        // Relaxed: a hit only says "validated"; the graph it refers to is read
        // only under the state lock.
        let v = CHAINS[i].load(Ordering::Relaxed);
        if v == k {
            return true;
        }
        if v == 0 {
            return false;
        }
        i = (i + 1) & (CHAIN_SLOTS - 1);
    }
    false
}

/// Forgets every validated chain (`reset`): each is validated again when next seen.
pub(super) fn clear_chains() {
    for c in &CHAINS {
        // Relaxed: as in `chain_cached`; a lookup racing the reset finds the
        // chain either way.
        c.store(0, Ordering::Relaxed);
    }
}

/// Records that the chain `key` was validated (`add_chain_cache`).
pub(super) fn chain_insert(key: u64) {
    let k = key.max(1);
    let mut i = k as usize & (CHAIN_SLOTS - 1);
    for _ in 0..CHAIN_PROBES {
        // Relaxed: as in `chain_cached`, the key carries no data.
        match CHAINS[i].compare_exchange(0, k, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(v) if v == k => return,
            Err(_) => i = (i + 1) & (CHAIN_SLOTS - 1),
        }
    }
}
