//! Lock classes: the class table, each class's usage bits, the per-map class
//! cache and the registration of a class on its first use (`register_lock_class`).
//!
//! Classes live in a static array indexed by class id (1-based; 0 = none). A
//! class's description is written once, before its id is published in the map's
//! `class_cache` (Release, paired with the Acquire load in [`cached`]); its usage
//! bits are an atomic word read without a lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::Location;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::report::{self, Mode, Report, ReportKind, banner};
use super::state::{Ident, irqs_held_back, state};
use super::{LockdepMap, NOVALIDATE_KEY, WAITS_PERCPU, WaitType};

/// The most lock classes (`MAX_LOCKDEP_KEYS`).
pub(super) const MAX_CLASSES: usize = 4096;

/// Class flag: an RCU read section pseudo-lock (no dependencies; no sleeping).
pub(super) const F_RCU: u8 = 1;
/// Class flag: a spinning lock (no sleeping while held).
pub(super) const F_SPIN: u8 = 2;
/// Class flag: a sleeping lock (acquiring it is a sleep point).
pub(super) const F_SLEEP: u8 = 4;
/// Class flag: not validated (`lockdep_set_novalidate_class`): held, but no
/// usage and no dependencies.
pub(super) const F_NOVALIDATE: u8 = 8;
/// Class flag: a per-CPU lock (`LD_LOCK_PERCPU`, `local_lock_t`): the irq
/// dependency searches pass over it (`usage_skip`).
pub(super) const F_PERCPU: u8 = 16;
/// Class flags of the pseudo-locks that take no part in usage, dependencies
/// or chain keys (`check = 0`).
pub(super) const F_NOCHECK: u8 = F_RCU | F_NOVALIDATE;

// Usage bits: bit = irq * 4 + dir * 2 + read, as the kernel's LOCK_USAGE_* order.
pub(super) const HARD: u32 = 0;
pub(super) const SOFT: u32 = 1;
pub(super) const USED_IN: u32 = 0;
pub(super) const ENABLED: u32 = 1;
pub(super) const fn ubit(irq: u32, dir: u32, read: bool) -> u32 {
    1 << (irq * 4 + dir * 2 + read as u32)
}
pub(super) const USAGE_NAMES: [&str; 8] = [
    "IN-HARDIRQ-W",
    "IN-HARDIRQ-R",
    "HARDIRQ-ON-W",
    "HARDIRQ-ON-R",
    "IN-SOFTIRQ-W",
    "IN-SOFTIRQ-R",
    "SOFTIRQ-ON-W",
    "SOFTIRQ-ON-R",
];

pub(super) struct ClassInfo {
    pub(super) name: &'static str,
    pub(super) subclass: u32,
    pub(super) site: &'static Location<'static>,
    pub(super) flags: u8,
    /// Inner and outer wait types, packed (`pack_waits`).
    pub(super) waits: u8,
}

struct ClassSlot {
    /// Usage bits (`usage_mask`), set under the state lock, read without it.
    usage: AtomicU32,
    info: OnceLock<ClassInfo>,
}

static CLASSES: [ClassSlot; MAX_CLASSES] = [const {
    ClassSlot {
        usage: AtomicU32::new(0),
        info: OnceLock::new(),
    }
}; MAX_CLASSES];

/// The description of class `id` (registered: its id was published).
pub(super) fn class(id: u32) -> &'static ClassInfo {
    CLASSES[id as usize]
        .info
        .get()
        .expect("ksync lockdep: class id published before its description")
}

/// The usage bits of class `id`.
#[inline]
pub(super) fn usage(id: u32) -> u32 {
    // Relaxed: a set bit only says that this usage was seen and checked; a
    // reader that misses a new bit takes the slow path, which sets it again
    // (`add_usage`) under the state lock.
    CLASSES[id as usize].usage.load(Ordering::Relaxed)
}

/// Clears the usage bits of classes `1..=n` (under the state lock: `reset`).
pub(super) fn clear_usage(n: u32) {
    for slot in &CLASSES[1..=n as usize] {
        // Relaxed: as in `add_usage`; a reader that still sees an old bit
        // skips a check the reset asked for, which only a test calls.
        slot.usage.store(0, Ordering::Relaxed);
    }
}

/// Sets usage bits `bits` of class `id` (under the state lock); returns the old bits.
pub(super) fn add_usage(id: u32, bits: u32) -> u32 {
    // Relaxed: the state lock orders the writers, and a reader without it only
    // skips work that a set bit says was done (see `usage`).
    CLASSES[id as usize].usage.fetch_or(bits, Ordering::Relaxed)
}

/// Class `id` as reports print it: name, subclass, creation site and usage bits.
pub(super) fn cdesc(id: u32) -> String {
    let c = class(id);
    let mut s = String::from(c.name);
    if c.subclass != 0 {
        let _ = write!(s, "/{}", c.subclass);
    }
    let _ = write!(s, " (class {}", c.site);
    let usage = usage(id);
    if usage != 0 {
        s.push_str(", usage {");
        let mut first = true;
        for (i, n) in USAGE_NAMES.iter().enumerate() {
            if usage & (1 << i) != 0 {
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str(n);
            }
        }
        s.push('}');
    }
    s.push(')');
    s
}

/// A map's `class_cache` word: the class id in the low bits, its flags above,
/// its packed wait types in the top byte.
const CACHE_ID_MASK: u32 = 0xffff;
const CACHE_FLAGS_SHIFT: u32 = 16;
const CACHE_WAITS_SHIFT: u32 = 24;

/// The inner wait type of packed wait types `waits` (`wait_type_inner`).
#[inline]
pub(super) const fn inner(waits: u8) -> u8 {
    waits & 7
}

/// The outer wait type of packed wait types `waits` (`wait_type_outer`).
#[inline]
pub(super) const fn outer(waits: u8) -> u8 {
    (waits >> 3) & 7
}

/// The class id, flags and packed wait types that `map` caches for
/// `subclass`; id 0 if it has none (not looked up yet, or a subclass past the
/// cache).
#[inline]
pub(super) fn cached(map: &LockdepMap, subclass: u32) -> (u32, u8, u8) {
    // Acquire: pairs with the Release store in `register_locked`, after the
    // class's description was written.
    let word = map
        .class_cache
        .get(subclass as usize)
        .map_or(0, |c| c.load(Ordering::Acquire));
    (
        word & CACHE_ID_MASK,
        (word >> CACHE_FLAGS_SHIFT) as u8,
        (word >> CACHE_WAITS_SHIFT) as u8,
    )
}

/// The class id of `map` at `subclass`, registering it on first use; 0 if the
/// validator ran out of classes (it is then off).
#[inline]
pub(super) fn class_of(map: &LockdepMap, subclass: u32) -> u32 {
    match cached(map, subclass) {
        (0, _, _) => register(map, subclass),
        (id, _, _) => id,
    }
}

#[cold]
fn register(map: &LockdepMap, subclass: u32) -> u32 {
    irqs_held_back(|| register_locked(map, subclass))
}

fn register_locked(map: &LockdepMap, cache_slot: u32) -> u32 {
    // A map's default subclass (`lockdep_set_subclass`) is the class of its
    // plain acquisitions, cached in slot 0 as the kernel does.
    let subclass = if cache_slot == 0 {
        map.subclass
    } else {
        cache_slot
    };
    let ident = match map.key {
        Some(k) => Ident::Key(k as *const _ as usize),
        None => Ident::Site(map.site.file(), map.site.line(), map.site.column()),
    };
    let mut st = state();
    let found = st
        .registry
        .get_or_insert_with(HashMap::new)
        .get(&(ident, subclass))
        .copied();
    let id = match found {
        Some(id) => id,
        None => {
            if st.nclasses as usize + 1 >= MAX_CLASSES {
                drop(st);
                report::emit(Report {
                    kind: ReportKind::TooDeep,
                    classes: vec![map.name()],
                    text: format!(
                        "{}BUG: MAX_LOCKDEP_KEYS too low! ({MAX_CLASSES} classes)\nturning off the locking correctness validator.\n",
                        banner(ReportKind::TooDeep)
                    ),
                    tid: crate::arch::gettid(),
                });
                report::set_mode(Mode::Off);
                return 0;
            }
            let id = st.nclasses + 1;
            let name = map.name();
            let mut flags = 0;
            let inner = inner(map.waits);
            if name.starts_with("rcu_read_lock") {
                flags |= F_RCU;
            } else if inner == WaitType::Spin as u8 || inner == WaitType::Config as u8 {
                flags |= F_SPIN;
            } else if inner == WaitType::Sleep as u8 {
                flags |= F_SLEEP;
            }
            if map.waits & WAITS_PERCPU != 0 {
                flags |= F_PERCPU;
            }
            if map.key.is_some_and(|k| core::ptr::eq(k, &NOVALIDATE_KEY)) {
                flags |= F_NOVALIDATE;
            }
            let _ = CLASSES[id as usize].info.set(ClassInfo {
                name,
                subclass,
                site: map.site,
                flags,
                waits: map.waits,
            });
            st.nclasses = id;
            st.fwd.resize_with(id as usize + 1, Vec::new);
            st.back.resize_with(id as usize + 1, Vec::new);
            st.usage_traces
                .resize_with(id as usize + 1, || std::array::from_fn(|_| None));
            if let Some(r) = st.registry.as_mut() {
                r.insert((ident, subclass), id);
            }
            id
        }
    };
    if let Some(c) = map.class_cache.get(cache_slot as usize) {
        // Release: pairs with the Acquire load in `cached`.
        let c_ = class(id);
        c.store(
            id | u32::from(c_.flags) << CACHE_FLAGS_SHIFT
                | u32::from(c_.waits) << CACHE_WAITS_SHIFT,
            Ordering::Release,
        );
    }
    id
}
