//! Lockdep: the kernel's lock validator, and the other CONFIG_DEBUG_* checks.
//!
//! Every ksync lock embeds a [`LockdepMap`] and calls [`acquire`] and [`release`]
//! from its shared acquire and release paths; the sleep path calls
//! [`might_sleep`]. Without the `lockdep` feature the map is zero-sized and the
//! hooks compile to nothing.

use core::marker::PhantomData;
use core::panic::Location;

/// An explicit lock class (`struct lock_class_key`): locks made with the same key
/// share a class, wherever they are created.
pub struct LockClassKey {
    name: &'static str,
}

impl LockClassKey {
    /// A class key named `name`; declare it as a `static`.
    pub const fn new(name: &'static str) -> Self {
        LockClassKey { name }
    }

    /// The class's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

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

/// The lockdep state embedded in every lock (`struct lockdep_map`). Zero-sized
/// without the `lockdep` feature.
pub struct LockdepMap {
    #[cfg(feature = "lockdep")]
    pub(crate) name: &'static str,
    #[cfg(feature = "lockdep")]
    pub(crate) site: &'static Location<'static>,
    #[cfg(feature = "lockdep")]
    pub(crate) key: Option<&'static LockClassKey>,
    _p: PhantomData<()>,
}

impl LockdepMap {
    /// A map whose class is the caller's source location (`file:line`).
    #[track_caller]
    pub const fn new(name: &'static str) -> Self {
        let _ = name;
        LockdepMap {
            #[cfg(feature = "lockdep")]
            name,
            #[cfg(feature = "lockdep")]
            site: Location::caller(),
            #[cfg(feature = "lockdep")]
            key: None,
            _p: PhantomData,
        }
    }

    /// A map whose class is `key` (`lockdep_set_class`).
    #[track_caller]
    pub const fn with_key(name: &'static str, key: &'static LockClassKey) -> Self {
        let _ = (name, key);
        LockdepMap {
            #[cfg(feature = "lockdep")]
            name,
            #[cfg(feature = "lockdep")]
            site: Location::caller(),
            #[cfg(feature = "lockdep")]
            key: Some(key),
            _p: PhantomData,
        }
    }
}

impl core::fmt::Debug for LockdepMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LockdepMap")
    }
}

/// Records that the current task acquires `map` (`lock_acquire`).
#[inline(always)]
pub fn acquire(map: &LockdepMap, kind: AcquireKind, trylock: bool, subclass: u32) {
    let _ = (map, kind, trylock, subclass);
}

/// Records that the current task releases `map` (`lock_release`).
#[inline(always)]
pub fn release(map: &LockdepMap) {
    let _ = map;
}

/// Reports a sleep in atomic context (`might_sleep()`).
#[inline(always)]
pub fn might_sleep() {}

#[allow(dead_code)]
fn _location_is_used(_: &'static Location<'static>) {}
