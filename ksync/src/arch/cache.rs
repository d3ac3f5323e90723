use core::fmt;
use core::ops::{Deref, DerefMut};

/// A value aligned and padded to a cache line of its own, so that stores to it do
/// not invalidate the line holding its neighbours (false sharing).
///
/// The alignment is 128 bytes on x86-64 and aarch64: their L2 prefetchers fetch
/// cache lines in adjacent pairs, so two hot words 64 bytes apart still bounce
/// between cores. Elsewhere it is 64 bytes.
///
/// ```
/// use ksync::arch::CachePadded;
/// let counters = [CachePadded::new(0u64), CachePadded::new(0u64)];
/// assert_eq!(core::mem::align_of_val(&counters[0]) % 64, 0);
/// assert_eq!(*counters[1], 0);
/// ```
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    repr(C, align(128))
)]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(C, align(64))
)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CachePadded<T> {
    value: T,
}

impl<T> CachePadded<T> {
    /// Pads `value` to a cache line.
    pub const fn new(value: T) -> Self {
        CachePadded { value }
    }

    /// Returns the padded value.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for CachePadded<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for CachePadded<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for CachePadded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CachePadded").field(&self.value).finish()
    }
}

impl<T> From<T> for CachePadded<T> {
    fn from(value: T) -> Self {
        CachePadded::new(value)
    }
}
