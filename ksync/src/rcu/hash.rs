//! [`RcuHashMap<K, V>`]: a fixed-size RCU hash table — lock-free lookups, one
//! writer lock per bucket (the kernel's `hashtable.h` with `hash_add_rcu` /
//! `hash_for_each_possible_rcu`; the route-table and dcache pattern).
//!
//! Each bucket is an [`RcuList`] of `(K, V)` entries. The bucket count is fixed
//! at construction (a power of two), as with `DEFINE_HASHTABLE`; size it for the
//! expected number of entries.
//!
//! | word | values |
//! |------|--------|
//! | a bucket's head / an entry's `next` | as in [`RcuList`] |

use super::{RcuList, RcuReadGuard};
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};

/// A hash table whose readers take no lock.
///
/// ```
/// use ksync::rcu::{rcu_read_lock, RcuHashMap};
/// let routes: RcuHashMap<u32, &str> = RcuHashMap::with_buckets(64);
/// routes.insert(10, "eth0");
/// routes.insert(20, "eth1");
/// {
///     let g = rcu_read_lock();
///     assert_eq!(routes.get(&10, &g), Some(&"eth0"));
/// }
/// assert_eq!(routes.insert(10, "eth2"), true); // replaced; old entry freed after a grace period
/// assert!(routes.remove(&20));
/// let g = rcu_read_lock();
/// assert_eq!(routes.get(&10, &g), Some(&"eth2"));
/// assert_eq!(routes.get(&20, &g), None);
/// ```
pub struct RcuHashMap<K, V, S = RandomState> {
    buckets: Box<[RcuList<(K, V)>]>,
    mask: usize,
    hasher: S,
}

impl<K, V> RcuHashMap<K, V, RandomState> {
    /// A table with 64 buckets.
    pub fn new() -> Self {
        Self::with_buckets(64)
    }

    /// A table with `n` buckets, rounded up to a power of two (`DEFINE_HASHTABLE`).
    #[doc(alias = "DEFINE_HASHTABLE")]
    #[doc(alias = "hash_init")]
    pub fn with_buckets(n: usize) -> Self {
        Self::with_buckets_and_hasher(n, RandomState::new())
    }
}

impl<K, V> Default for RcuHashMap<K, V, RandomState> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> RcuHashMap<K, V, S> {
    /// A table with `n` buckets (rounded up to a power of two) and `hasher`.
    pub fn with_buckets_and_hasher(n: usize, hasher: S) -> Self {
        let n = n.max(1).next_power_of_two();
        RcuHashMap {
            buckets: (0..n).map(|_| RcuList::new()).collect(),
            mask: n - 1,
            hasher,
        }
    }

    /// The number of buckets.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> RcuHashMap<K, V, S> {
    fn bucket<Q: Hash + ?Sized>(&self, k: &Q) -> &RcuList<(K, V)> {
        let h = self.hasher.hash_one(k) as usize;
        &self.buckets[h & self.mask]
    }

    /// Looks `k` up without locks (`hash_for_each_possible_rcu`); the value stays
    /// valid while the guard lives.
    #[doc(alias = "hash_for_each_possible_rcu")]
    pub fn get<'a, Q>(&'a self, k: &Q, guard: &'a RcuReadGuard) -> Option<&'a V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.bucket(k)
            .iter(guard)
            .find(|(key, _)| key.borrow() == k)
            .map(|(_, v)| v)
    }

    /// Whether `k` is present now.
    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let g = super::rcu_read_lock();
        self.get(k, &g).is_some()
    }

    /// Walks every entry inside a read-side section (`hash_for_each_rcu`).
    #[doc(alias = "hash_for_each_rcu")]
    pub fn iter<'a>(&'a self, guard: &'a RcuReadGuard) -> impl Iterator<Item = (&'a K, &'a V)> {
        self.buckets
            .iter()
            .flat_map(move |b| b.iter(guard).map(|(k, v)| (k, v)))
    }
}

impl<K, V, S> RcuHashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher,
{
    /// Inserts or replaces `k` under the bucket's writer lock (`hash_add_rcu`);
    /// a replaced entry is freed after a grace period. Returns whether `k` was
    /// already present.
    #[doc(alias = "hash_add_rcu")]
    pub fn insert(&self, k: K, v: V) -> bool {
        let bucket = self.bucket(&k);
        let mut w = bucket.writer();
        match w.iter().position(|(key, _)| *key == k) {
            Some(pos) => {
                let mut i = 0;
                let replaced = w.replace(
                    |_| {
                        i += 1;
                        i - 1 == pos
                    },
                    (k, v),
                );
                debug_assert!(replaced.is_ok());
                true
            }
            None => {
                w.add((k, v));
                false
            }
        }
    }

    /// Removes `k` (`hash_del_rcu`); the entry is freed after a grace period.
    /// Returns whether it was present.
    #[doc(alias = "hash_del_rcu")]
    pub fn remove<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.bucket(k).writer().del(|(key, _)| key.borrow() == k)
    }
}

impl<K, V, S> core::fmt::Debug for RcuHashMap<K, V, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RcuHashMap")
            .field("buckets", &self.buckets.len())
            .finish()
    }
}
