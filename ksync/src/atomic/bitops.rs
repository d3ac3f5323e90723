//! Bit operations (SPEC §3, Documentation/atomic_bitops.txt): on a [`Bitmap`] of
//! any number of bits, and on single atomic words through [`BitOps`].
//!
//! # The word layout
//!
//! Bit `nr` of a bitmap lives in word `nr / BITS_PER_LONG`, at position
//! `nr % BITS_PER_LONG` (bit 0 is the least significant), as in the kernel's
//! `unsigned long` arrays. Bits at or past [`Bitmap::nbits`] in the last word are
//! always zero: every operation that could set them checks the index first.
//!
//! | operation | ordering | x86-64 |
//! |---|---|---|
//! | `test_bit` | unordered (`READ_ONCE`) | `mov` + `bt` |
//! | `set_bit`, `clear_bit`, `change_bit` | unordered (void RMW) | `lock or`/`and`/`xor` |
//! | `test_and_set_bit`, `test_and_clear_bit`, `test_and_change_bit` | fully ordered when they change the bit | `lock bts`-like RMW |
//! | `test_and_set_bit_lock` | acquire when it sets the bit | `lock or` |
//! | `clear_bit_unlock` | release | `lock and` |
//! | `__set_bit` … (`*_nonatomic`, on `&mut`) | none needed: exclusive access | plain `or` |
//! | `find_*_bit`, iteration | unordered reads, word at a time | `mov` + `tzcnt` |
//!
//! `test_and_set_bit` and `test_and_clear_bit` first read the word and return at
//! once when the bit already has the wanted value, as the kernel's generic
//! version does (asm-generic/bitops/atomic.h): a failed test-and-set does not
//! take the cache line exclusive, which makes spinning on it cheap. Such a failed
//! operation is unordered, which Documentation/atomic_bitops.txt allows.
//!
//! # Static or heap
//!
//! [`Bitmap`] owns its words on the heap (`bitmap_zalloc`). [`StaticBitmap`] holds
//! them inline in an array and has a `const fn` constructor, for `static`s
//! (`DECLARE_BITMAP`, see [`declare_bitmap!`](crate::declare_bitmap)). Both are
//! the same generic type, so every operation exists on both.

use crate::Backoff;
use crate::loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::fmt;
use core::marker::PhantomData;

/// Bits in one bitmap word (`BITS_PER_LONG`).
pub const BITS_PER_LONG: usize = usize::BITS as usize;

/// `BITS_TO_LONGS(nbits)`: how many words hold `nbits` bits.
#[doc(alias = "BITS_TO_LONGS")]
pub const fn bits_to_longs(nbits: usize) -> usize {
    nbits.div_ceil(BITS_PER_LONG)
}

/// `BIT_WORD(nr)` and `BIT_MASK(nr)`: the word index and in-word mask of bit `nr`.
#[inline(always)]
const fn word_and_mask(nr: usize) -> (usize, usize) {
    (nr / BITS_PER_LONG, 1 << (nr % BITS_PER_LONG))
}

#[cold]
#[inline(never)]
#[track_caller]
fn out_of_range(nr: usize, nbits: usize) -> ! {
    panic!("bit index {nr} out of range for a bitmap of {nbits} bits")
}

/// Exclusive access to an atomic word's value, for the non-atomic `__` forms.
#[inline(always)]
fn with_word_mut<R>(w: &mut AtomicUsize, f: impl FnOnce(&mut usize) -> R) -> R {
    #[cfg(not(loom))]
    {
        f(w.get_mut())
    }
    #[cfg(loom)]
    {
        w.with_mut(f)
    }
}

/// A bitmap of any number of bits, each settable, clearable and testable
/// atomically (`DECLARE_BITMAP`, `unsigned long *` with the kernel's bitops).
///
/// `S` is the word storage: `Box<[AtomicUsize]>` for [`Bitmap::new`] (the
/// default), `[AtomicUsize; WORDS]` for [`StaticBitmap`]. A bit index at or past
/// [`nbits`](Self::nbits) panics with the index and the length — never a write
/// out of bounds.
///
/// The `find_*` functions return `Option<usize>` where the kernel returns the
/// bitmap's size for "none".
///
/// ```
/// use ksync::atomic::Bitmap;
///
/// let map = Bitmap::new(200);                 // bitmap_zalloc(200)
/// assert!(!map.test_and_set_bit(3));          // was clear
/// assert!(map.test_and_set_bit(3));           // now set
/// map.set_bit(130);
/// assert_eq!(map.find_first_bit(), Some(3));
/// assert_eq!(map.find_next_bit(4), Some(130));
/// assert_eq!(map.find_next_bit(131), None);
/// assert_eq!(map.find_first_zero_bit(), Some(0));
/// assert_eq!(map.iter_set().collect::<Vec<_>>(), [3, 130]); // for_each_set_bit
/// assert!(map.test_and_clear_bit(3));
/// assert_eq!(map.weight(), 1);
/// ```
///
/// An index out of range panics:
///
/// ```should_panic
/// let map = ksync::atomic::Bitmap::new(10);
/// map.set_bit(10); // panics: "bit index 10 out of range for a bitmap of 10 bits"
/// ```
pub struct Bitmap<S = Box<[AtomicUsize]>> {
    nbits: usize,
    words: S,
}

/// A bitmap whose `WORDS` words are stored inline, constructible in a `const`
/// context so that it can be a `static` (`DECLARE_BITMAP(name, bits)`).
///
/// ```
/// use ksync::atomic::{StaticBitmap, bits_to_longs};
///
/// static IRQS_IN_USE: StaticBitmap<{ bits_to_longs(100) }> = StaticBitmap::new_static(100);
///
/// IRQS_IN_USE.set_bit(99);
/// assert!(IRQS_IN_USE.test_bit(99));
/// assert_eq!(IRQS_IN_USE.nbits(), 100);
/// ```
#[doc(alias = "DECLARE_BITMAP")]
pub type StaticBitmap<const WORDS: usize> = Bitmap<[AtomicUsize; WORDS]>;

/// `DECLARE_BITMAP(name, bits)`: declares a `static` [`StaticBitmap`] of `bits`
/// bits, all clear.
///
/// ```
/// ksync::declare_bitmap!(static CPUS_SEEN, 300);
/// CPUS_SEEN.set_bit(299);
/// assert_eq!(CPUS_SEEN.find_first_bit(), Some(299));
/// ```
#[macro_export]
macro_rules! declare_bitmap {
    ($vis:vis static $name:ident, $bits:expr) => {
        $vis static $name: $crate::atomic::StaticBitmap<{ $crate::atomic::bits_to_longs($bits) }> =
            $crate::atomic::StaticBitmap::new_static($bits);
    };
}

impl Bitmap {
    /// `bitmap_zalloc(nbits)`: a heap bitmap of `nbits` bits, all clear.
    ///
    /// # Panics
    /// If the words cannot be allocated ("cannot allocate a bitmap of N bits"),
    /// e.g. for `usize::MAX` bits; [`try_new`](Self::try_new) returns the error
    /// instead.
    #[doc(alias = "bitmap_zalloc")]
    #[track_caller]
    pub fn new(nbits: usize) -> Self {
        match Self::try_new(nbits) {
            Ok(map) => map,
            Err(_) => alloc_failed(nbits),
        }
    }

    /// [`new`](Self::new), returning [`Error::NoMemory`](crate::Error::NoMemory)
    /// (`-ENOMEM`, as `bitmap_zalloc` returns NULL) when the words cannot be
    /// allocated, instead of aborting the process.
    ///
    /// ```
    /// use ksync::atomic::Bitmap;
    /// assert_eq!(Bitmap::try_new(usize::MAX).unwrap_err(), ksync::Error::NoMemory);
    /// assert_eq!(Bitmap::try_new(100).unwrap().nbits(), 100);
    /// ```
    pub fn try_new(nbits: usize) -> crate::Result<Self> {
        let n = bits_to_longs(nbits);
        let mut words = Vec::new();
        words
            .try_reserve_exact(n)
            .map_err(|_| crate::Error::NoMemory)?;
        words.extend((0..n).map(|_| AtomicUsize::new(0)));
        Ok(Bitmap {
            nbits,
            words: words.into_boxed_slice(),
        })
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn alloc_failed(nbits: usize) -> ! {
    panic!(
        "cannot allocate a bitmap of {nbits} bits ({} bytes): out of memory (Bitmap::try_new returns -ENOMEM instead)",
        (bits_to_longs(nbits) as u128) * core::mem::size_of::<usize>() as u128
    )
}

impl<const WORDS: usize> Bitmap<[AtomicUsize; WORDS]> {
    /// A bitmap of `nbits` bits, all clear, stored inline; `const`, for statics.
    /// Panics (at compile time in a `static`) if `WORDS` words cannot hold
    /// `nbits` bits.
    #[cfg(not(loom))]
    pub const fn new_static(nbits: usize) -> Self {
        assert!(
            nbits <= WORDS * BITS_PER_LONG,
            "StaticBitmap: too few words for nbits"
        );
        Bitmap {
            nbits,
            words: [const { AtomicUsize::new(0) }; WORDS],
        }
    }

    /// A bitmap of `nbits` bits stored inline (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new_static(nbits: usize) -> Self {
        assert!(nbits <= WORDS * BITS_PER_LONG);
        Bitmap {
            nbits,
            words: core::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }
}

impl<S: AsRef<[AtomicUsize]>> Bitmap<S> {
    /// The number of bits.
    #[inline]
    pub fn nbits(&self) -> usize {
        self.nbits
    }

    /// The words in use (`bits_to_longs(nbits)` of them).
    #[inline(always)]
    fn words(&self) -> &[AtomicUsize] {
        &self.words.as_ref()[..bits_to_longs(self.nbits)]
    }

    /// The word holding bit `nr` and the bit's mask; panics when out of range.
    #[inline(always)]
    #[track_caller]
    fn word(&self, nr: usize) -> (&AtomicUsize, usize) {
        if nr >= self.nbits {
            out_of_range(nr, self.nbits);
        }
        let (w, mask) = word_and_mask(nr);
        (&self.words.as_ref()[w], mask)
    }

    /// `test_bit(nr, addr)`: whether bit `nr` is set; an unordered read.
    #[inline]
    #[track_caller]
    pub fn test_bit(&self, nr: usize) -> bool {
        let (w, m) = self.word(nr);
        // Relaxed: test_bit() is a READ_ONCE of the word.
        w.load(Ordering::Relaxed) & m != 0
    }

    /// `test_bit_acquire(nr, addr)`: whether bit `nr` is set, with acquire
    /// ordering (pairs with [`clear_bit_unlock`](Self::clear_bit_unlock) or a
    /// release store of the word).
    #[inline]
    #[track_caller]
    pub fn test_bit_acquire(&self, nr: usize) -> bool {
        let (w, m) = self.word(nr);
        w.load(Ordering::Acquire) & m != 0
    }

    /// `set_bit(nr, addr)`: sets bit `nr` atomically; unordered.
    #[inline]
    #[track_caller]
    pub fn set_bit(&self, nr: usize) {
        let (w, m) = self.word(nr);
        w.set_mask(m)
    }

    /// `clear_bit(nr, addr)`: clears bit `nr` atomically; unordered (use
    /// [`clear_bit_unlock`](Self::clear_bit_unlock) to release a lock bit).
    #[inline]
    #[track_caller]
    pub fn clear_bit(&self, nr: usize) {
        let (w, m) = self.word(nr);
        w.clear_mask(m)
    }

    /// `change_bit(nr, addr)`: flips bit `nr` atomically; unordered.
    #[inline]
    #[track_caller]
    pub fn change_bit(&self, nr: usize) {
        let (w, m) = self.word(nr);
        // Relaxed: a void bitop is unordered.
        w.fetch_xor(m, Ordering::Relaxed);
    }

    /// `test_and_set_bit(nr, addr)`: sets bit `nr`; returns whether it was
    /// already set. Fully ordered when it sets the bit.
    #[inline]
    #[track_caller]
    pub fn test_and_set_bit(&self, nr: usize) -> bool {
        let (w, m) = self.word(nr);
        test_and_set_mask(w, m, Ordering::SeqCst)
    }

    /// `test_and_clear_bit(nr, addr)`: clears bit `nr`; returns whether it was
    /// set. Fully ordered when it clears the bit.
    #[inline]
    #[track_caller]
    pub fn test_and_clear_bit(&self, nr: usize) -> bool {
        let (w, m) = self.word(nr);
        test_and_clear_mask(w, m)
    }

    /// `test_and_change_bit(nr, addr)`: flips bit `nr`; returns whether it was
    /// set before. Fully ordered.
    #[inline]
    #[track_caller]
    pub fn test_and_change_bit(&self, nr: usize) -> bool {
        let (w, m) = self.word(nr);
        w.fetch_xor(m, Ordering::SeqCst) & m != 0
    }

    /// `test_and_set_bit_lock(nr, addr)`: sets bit `nr` with acquire ordering;
    /// returns whether it was already set (`false`: the caller now holds the
    /// bit lock). Pairs with [`clear_bit_unlock`](Self::clear_bit_unlock).
    #[inline]
    #[track_caller]
    pub fn test_and_set_bit_lock(&self, nr: usize) -> bool {
        let (w, m) = self.word(nr);
        test_and_set_mask(w, m, Ordering::Acquire)
    }

    /// `clear_bit_unlock(nr, addr)`: clears bit `nr` with release ordering,
    /// publishing the critical section to the next
    /// [`test_and_set_bit_lock`](Self::test_and_set_bit_lock) that sets it.
    #[inline]
    #[track_caller]
    pub fn clear_bit_unlock(&self, nr: usize) {
        let (w, m) = self.word(nr);
        // Release: pairs with the Acquire RMW of the next test_and_set_bit_lock.
        w.fetch_and(!m, Ordering::Release);
    }

    /// `bit_spin_lock(nr, addr)`: spins until it owns bit `nr` as a lock; the
    /// guard clears it (`bit_spin_unlock`) on drop. See [`BitSpinGuard`].
    ///
    /// ```
    /// let flags = ksync::atomic::Bitmap::new(64);
    /// {
    ///     let _g = flags.bit_spin_lock(7);
    ///     assert!(flags.bit_spin_is_locked(7));
    ///     assert!(flags.bit_spin_trylock(7).is_none());
    /// }
    /// assert!(!flags.bit_spin_is_locked(7));
    /// ```
    #[inline]
    #[track_caller]
    pub fn bit_spin_lock(&self, nr: usize) -> BitSpinGuard<'_> {
        let (w, m) = self.word(nr);
        w.bit_spin_lock_mask(m)
    }

    /// `bit_spin_trylock(nr, addr)`: takes bit `nr` as a lock if it is free.
    #[inline]
    #[track_caller]
    pub fn bit_spin_trylock(&self, nr: usize) -> Option<BitSpinGuard<'_>> {
        let (w, m) = self.word(nr);
        (!test_and_set_mask(w, m, Ordering::Acquire)).then(|| BitSpinGuard::new(w, m))
    }

    /// `bit_spin_is_locked(nr, addr)`: whether bit `nr` is held as a lock.
    #[inline]
    #[track_caller]
    pub fn bit_spin_is_locked(&self, nr: usize) -> bool {
        self.test_bit(nr)
    }

    /// Finds the first bit at or after `offset` whose value, xored with
    /// `invert` (0: set bits, !0: clear bits), is one.
    #[inline]
    fn find_next(&self, offset: usize, invert: usize) -> Option<usize> {
        if offset >= self.nbits {
            return None;
        }
        let words = self.words();
        let mut i = offset / BITS_PER_LONG;
        // Relaxed throughout: the find functions are unordered reads, as the
        // kernel's (which read the words with plain loads).
        let mut w = (words[i].load(Ordering::Relaxed) ^ invert) & (!0 << (offset % BITS_PER_LONG));
        if w == 0 {
            i += 1;
            // Skip four words per branch while nothing is found: one test for
            // 256 bits instead of four.
            while i + 4 <= words.len() {
                let (a, b, c, d) = (
                    words[i].load(Ordering::Relaxed) ^ invert,
                    words[i + 1].load(Ordering::Relaxed) ^ invert,
                    words[i + 2].load(Ordering::Relaxed) ^ invert,
                    words[i + 3].load(Ordering::Relaxed) ^ invert,
                );
                if a | b | c | d != 0 {
                    break;
                }
                i += 4;
            }
            loop {
                if i >= words.len() {
                    return None;
                }
                w = words[i].load(Ordering::Relaxed) ^ invert;
                if w != 0 {
                    break;
                }
                i += 1;
            }
        }
        let bit = i * BITS_PER_LONG + w.trailing_zeros() as usize;
        // A clear bit past nbits in the last word is not part of the bitmap.
        (bit < self.nbits).then_some(bit)
    }

    /// `find_first_bit(addr, size)`: the lowest set bit, or `None`.
    #[inline]
    pub fn find_first_bit(&self) -> Option<usize> {
        self.find_next(0, 0)
    }

    /// `find_next_bit(addr, size, offset)`: the lowest set bit at or after
    /// `offset`, or `None` (also when `offset >= nbits`).
    #[inline]
    pub fn find_next_bit(&self, offset: usize) -> Option<usize> {
        self.find_next(offset, 0)
    }

    /// `find_first_zero_bit(addr, size)`: the lowest clear bit, or `None`.
    #[inline]
    pub fn find_first_zero_bit(&self) -> Option<usize> {
        self.find_next(0, !0)
    }

    /// `find_next_zero_bit(addr, size, offset)`: the lowest clear bit at or after
    /// `offset`, or `None`.
    #[inline]
    pub fn find_next_zero_bit(&self, offset: usize) -> Option<usize> {
        self.find_next(offset, !0)
    }

    /// `find_last_bit(addr, size)`: the highest set bit, or `None`.
    pub fn find_last_bit(&self) -> Option<usize> {
        let words = self.words();
        (0..words.len()).rev().find_map(|i| {
            let w = words[i].load(Ordering::Relaxed);
            (w != 0).then(|| i * BITS_PER_LONG + (BITS_PER_LONG - 1 - w.leading_zeros() as usize))
        })
    }

    /// `for_each_set_bit(bit, addr, size)`: the set bits in increasing order.
    /// Each step is a [`find_next_bit`](Self::find_next_bit), so bits set or
    /// cleared concurrently may or may not be seen.
    #[doc(alias = "for_each_set_bit")]
    pub fn iter_set(&self) -> impl Iterator<Item = usize> + '_ {
        let mut next = 0;
        core::iter::from_fn(move || {
            let bit = self.find_next_bit(next)?;
            next = bit + 1;
            Some(bit)
        })
    }

    /// `for_each_clear_bit(bit, addr, size)`: the clear bits in increasing order.
    #[doc(alias = "for_each_clear_bit")]
    pub fn iter_clear(&self) -> impl Iterator<Item = usize> + '_ {
        let mut next = 0;
        core::iter::from_fn(move || {
            let bit = self.find_next_zero_bit(next)?;
            next = bit + 1;
            Some(bit)
        })
    }

    /// `bitmap_weight(addr, size)`: how many bits are set.
    #[doc(alias = "bitmap_weight")]
    pub fn weight(&self) -> usize {
        self.words()
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// `bitmap_empty(addr, size)`: whether no bit is set.
    #[doc(alias = "bitmap_empty")]
    pub fn is_clear(&self) -> bool {
        self.find_first_bit().is_none()
    }
}

impl<S: AsRef<[AtomicUsize]> + AsMut<[AtomicUsize]>> Bitmap<S> {
    /// The word holding bit `nr`, exclusively, and the bit's mask.
    #[inline(always)]
    #[track_caller]
    fn word_mut(&mut self, nr: usize) -> (&mut AtomicUsize, usize) {
        if nr >= self.nbits {
            out_of_range(nr, self.nbits);
        }
        let (w, mask) = word_and_mask(nr);
        (&mut self.words.as_mut()[w], mask)
    }

    /// `__set_bit(nr, addr)`: sets bit `nr` without an atomic instruction; the
    /// `&mut` proves no other thread can see the bitmap.
    #[doc(alias = "__set_bit")]
    #[inline]
    #[track_caller]
    pub fn set_bit_nonatomic(&mut self, nr: usize) {
        let (w, m) = self.word_mut(nr);
        with_word_mut(w, |v| *v |= m)
    }

    /// `__clear_bit(nr, addr)`: clears bit `nr` without an atomic instruction.
    #[doc(alias = "__clear_bit")]
    #[inline]
    #[track_caller]
    pub fn clear_bit_nonatomic(&mut self, nr: usize) {
        let (w, m) = self.word_mut(nr);
        with_word_mut(w, |v| *v &= !m)
    }

    /// `__change_bit(nr, addr)`: flips bit `nr` without an atomic instruction.
    #[doc(alias = "__change_bit")]
    #[inline]
    #[track_caller]
    pub fn change_bit_nonatomic(&mut self, nr: usize) {
        let (w, m) = self.word_mut(nr);
        with_word_mut(w, |v| *v ^= m)
    }

    /// `__test_and_set_bit(nr, addr)`: sets bit `nr`; returns whether it was set.
    #[doc(alias = "__test_and_set_bit")]
    #[inline]
    #[track_caller]
    pub fn test_and_set_bit_nonatomic(&mut self, nr: usize) -> bool {
        let (w, m) = self.word_mut(nr);
        with_word_mut(w, |v| {
            let old = *v & m != 0;
            *v |= m;
            old
        })
    }

    /// `__test_and_clear_bit(nr, addr)`: clears bit `nr`; returns whether it was
    /// set.
    #[doc(alias = "__test_and_clear_bit")]
    #[inline]
    #[track_caller]
    pub fn test_and_clear_bit_nonatomic(&mut self, nr: usize) -> bool {
        let (w, m) = self.word_mut(nr);
        with_word_mut(w, |v| {
            let old = *v & m != 0;
            *v &= !m;
            old
        })
    }

    /// `__test_and_change_bit(nr, addr)`: flips bit `nr`; returns whether it was
    /// set.
    #[doc(alias = "__test_and_change_bit")]
    #[inline]
    #[track_caller]
    pub fn test_and_change_bit_nonatomic(&mut self, nr: usize) -> bool {
        let (w, m) = self.word_mut(nr);
        with_word_mut(w, |v| {
            let old = *v & m != 0;
            *v ^= m;
            old
        })
    }

    /// `bitmap_zero(dst, nbits)`: clears every bit.
    #[doc(alias = "bitmap_zero")]
    pub fn zero(&mut self) {
        for w in self.words.as_mut() {
            with_word_mut(w, |v| *v = 0);
        }
    }

    /// `bitmap_fill(dst, nbits)`: sets every bit (and none past `nbits`).
    #[doc(alias = "bitmap_fill")]
    pub fn fill(&mut self) {
        let nbits = self.nbits;
        for (i, w) in self.words.as_mut().iter_mut().enumerate() {
            let first = i * BITS_PER_LONG;
            let v = if first + BITS_PER_LONG <= nbits {
                !0
            } else if first < nbits {
                (1usize << (nbits - first)) - 1
            } else {
                0
            };
            with_word_mut(w, |x| *x = v);
        }
    }
}

impl<S: AsRef<[AtomicUsize]>> fmt::Debug for Bitmap<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bitmap")
            .field("nbits", &self.nbits)
            .field("set", &SetBits(self))
            .finish()
    }
}

/// Formats the set bits of a bitmap as a list.
struct SetBits<'a, S>(&'a Bitmap<S>);

impl<S: AsRef<[AtomicUsize]>> fmt::Debug for SetBits<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter_set()).finish()
    }
}

/// Sets `m` in `w` with `order` if it is not already set; returns whether it was.
#[inline(always)]
fn test_and_set_mask(w: &AtomicUsize, m: usize, order: Ordering) -> bool {
    // Relaxed read first, as asm-generic/bitops/atomic.h: a bit already set
    // returns without taking the line exclusive (unordered, as a failed
    // test_and_set_bit may be).
    if w.load(Ordering::Relaxed) & m != 0 {
        return true;
    }
    w.fetch_or(m, order) & m != 0
}

/// Clears `m` in `w` (fully ordered) if it is set; returns whether it was.
#[inline(always)]
fn test_and_clear_mask(w: &AtomicUsize, m: usize) -> bool {
    if w.load(Ordering::Relaxed) & m == 0 {
        return false;
    }
    w.fetch_and(!m, Ordering::SeqCst) & m != 0
}

/// Bit operations on one atomic word: the kernel's bitops where `addr` points
/// at a single `unsigned long` (or a `u32`/`u64` flags word). `nr` must be below
/// the word's width; a larger one panics.
///
/// ```
/// use ksync::atomic::BitOps;
/// use std::sync::atomic::AtomicUsize;
///
/// const PG_LOCKED: usize = 0;
/// const PG_DIRTY: usize = 4;
/// let flags = AtomicUsize::new(0);
/// flags.set_bit(PG_DIRTY);
/// assert!(!flags.test_and_set_bit_lock(PG_LOCKED)); // got the lock bit
/// assert!(flags.test_and_set_bit_lock(PG_LOCKED));  // taken
/// flags.clear_bit_unlock(PG_LOCKED);
/// assert!(flags.test_and_clear_bit(PG_DIRTY));
/// flags.set_mask(0b1010);                           // atomic_set_mask
/// flags.clear_mask(0b0010);                         // atomic_clear_mask
/// assert!(flags.test_bit(3) && !flags.test_bit(1));
/// ```
pub trait BitOps {
    /// The word's plain value type.
    type Word: Copy;

    /// `test_bit(nr, addr)`: whether bit `nr` is set; unordered.
    fn test_bit(&self, nr: usize) -> bool;
    /// `set_bit(nr, addr)`: sets bit `nr`; unordered.
    fn set_bit(&self, nr: usize);
    /// `clear_bit(nr, addr)`: clears bit `nr`; unordered.
    fn clear_bit(&self, nr: usize);
    /// `change_bit(nr, addr)`: flips bit `nr`; unordered.
    fn change_bit(&self, nr: usize);
    /// `test_and_set_bit(nr, addr)`: sets bit `nr`, returns whether it was set;
    /// fully ordered when it sets it.
    fn test_and_set_bit(&self, nr: usize) -> bool;
    /// `test_and_clear_bit(nr, addr)`: clears bit `nr`, returns whether it was
    /// set; fully ordered when it clears it.
    fn test_and_clear_bit(&self, nr: usize) -> bool;
    /// `test_and_change_bit(nr, addr)`: flips bit `nr`, returns whether it was
    /// set; fully ordered.
    fn test_and_change_bit(&self, nr: usize) -> bool;
    /// `test_and_set_bit_lock(nr, addr)`: sets bit `nr` with acquire ordering,
    /// returns whether it was set (`false`: locked by the caller).
    fn test_and_set_bit_lock(&self, nr: usize) -> bool;
    /// `clear_bit_unlock(nr, addr)`: clears bit `nr` with release ordering.
    fn clear_bit_unlock(&self, nr: usize);
    /// `atomic_set_mask(mask, v)`: sets the bits of `mask`; unordered.
    fn set_mask(&self, mask: Self::Word);
    /// `atomic_clear_mask(mask, v)`: clears the bits of `mask`; unordered.
    fn clear_mask(&self, mask: Self::Word);
}

macro_rules! word_bitops {
    ($($A:ty, $W:ty);*) => {$(
        impl BitOps for $A {
            type Word = $W;

            #[inline]
            #[track_caller]
            fn test_bit(&self, nr: usize) -> bool {
                self.load(Ordering::Relaxed) & word_mask::<$W>(nr) != 0
            }
            #[inline]
            #[track_caller]
            fn set_bit(&self, nr: usize) {
                self.set_mask(word_mask::<$W>(nr))
            }
            #[inline]
            #[track_caller]
            fn clear_bit(&self, nr: usize) {
                self.clear_mask(word_mask::<$W>(nr))
            }
            #[inline]
            #[track_caller]
            fn change_bit(&self, nr: usize) {
                // Relaxed: a void bitop is unordered.
                self.fetch_xor(word_mask::<$W>(nr), Ordering::Relaxed);
            }
            #[inline]
            #[track_caller]
            fn test_and_set_bit(&self, nr: usize) -> bool {
                let m = word_mask::<$W>(nr);
                if self.load(Ordering::Relaxed) & m != 0 {
                    return true;
                }
                self.fetch_or(m, Ordering::SeqCst) & m != 0
            }
            #[inline]
            #[track_caller]
            fn test_and_clear_bit(&self, nr: usize) -> bool {
                let m = word_mask::<$W>(nr);
                if self.load(Ordering::Relaxed) & m == 0 {
                    return false;
                }
                self.fetch_and(!m, Ordering::SeqCst) & m != 0
            }
            #[inline]
            #[track_caller]
            fn test_and_change_bit(&self, nr: usize) -> bool {
                let m = word_mask::<$W>(nr);
                self.fetch_xor(m, Ordering::SeqCst) & m != 0
            }
            #[inline]
            #[track_caller]
            fn test_and_set_bit_lock(&self, nr: usize) -> bool {
                let m = word_mask::<$W>(nr);
                if self.load(Ordering::Relaxed) & m != 0 {
                    return true;
                }
                // Acquire: pairs with the Release of clear_bit_unlock.
                self.fetch_or(m, Ordering::Acquire) & m != 0
            }
            #[inline]
            #[track_caller]
            fn clear_bit_unlock(&self, nr: usize) {
                // Release: pairs with the Acquire of test_and_set_bit_lock.
                self.fetch_and(!word_mask::<$W>(nr), Ordering::Release);
            }
            #[inline]
            fn set_mask(&self, mask: $W) {
                // Relaxed: atomic_set_mask is a void RMW, unordered.
                self.fetch_or(mask, Ordering::Relaxed);
            }
            #[inline]
            fn clear_mask(&self, mask: $W) {
                // Relaxed: atomic_clear_mask is a void RMW, unordered.
                self.fetch_and(!mask, Ordering::Relaxed);
            }
        }
    )*};
}

/// The mask of bit `nr` in a word of type `W`; panics when `nr` is too large.
#[inline(always)]
#[track_caller]
fn word_mask<W: Word>(nr: usize) -> W {
    if nr >= W::BITS {
        out_of_range(nr, W::BITS);
    }
    W::bit(nr)
}

/// Word types with a bit mask constructor.
trait Word: Copy {
    const BITS: usize;
    fn bit(nr: usize) -> Self;
}

impl Word for usize {
    const BITS: usize = usize::BITS as usize;
    #[inline(always)]
    fn bit(nr: usize) -> Self {
        1 << nr
    }
}
impl Word for u32 {
    const BITS: usize = 32;
    #[inline(always)]
    fn bit(nr: usize) -> Self {
        1 << nr
    }
}
impl Word for u64 {
    const BITS: usize = 64;
    #[inline(always)]
    fn bit(nr: usize) -> Self {
        1 << nr
    }
}

word_bitops!(AtomicUsize, usize; AtomicU32, u32; AtomicU64, u64);

/// Bit spinlocks on a single atomic word (`bit_spin_lock(bitnum, addr)`).
pub trait BitSpinLock {
    /// `bit_spin_lock(nr, addr)`: spins (with [`Backoff`]) until it owns bit
    /// `nr` as a lock; the guard releases it on drop (`bit_spin_unlock`).
    fn bit_spin_lock(&self, nr: usize) -> BitSpinGuard<'_>;
    /// `bit_spin_trylock(nr, addr)`: takes bit `nr` if it is free.
    fn bit_spin_trylock(&self, nr: usize) -> Option<BitSpinGuard<'_>>;
    /// `bit_spin_is_locked(nr, addr)`: whether bit `nr` is held.
    fn bit_spin_is_locked(&self, nr: usize) -> bool;
}

impl BitSpinLock for AtomicUsize {
    #[inline]
    #[track_caller]
    fn bit_spin_lock(&self, nr: usize) -> BitSpinGuard<'_> {
        self.bit_spin_lock_mask(word_mask::<usize>(nr))
    }
    #[inline]
    #[track_caller]
    fn bit_spin_trylock(&self, nr: usize) -> Option<BitSpinGuard<'_>> {
        let m = word_mask::<usize>(nr);
        (!test_and_set_mask(self, m, Ordering::Acquire)).then(|| BitSpinGuard::new(self, m))
    }
    #[inline]
    #[track_caller]
    fn bit_spin_is_locked(&self, nr: usize) -> bool {
        self.test_bit(nr)
    }
}

trait BitSpinMask {
    fn bit_spin_lock_mask(&self, m: usize) -> BitSpinGuard<'_>;
}

impl BitSpinMask for AtomicUsize {
    #[inline]
    fn bit_spin_lock_mask(&self, m: usize) -> BitSpinGuard<'_> {
        if test_and_set_mask(self, m, Ordering::Acquire) {
            bit_spin_lock_slow(self, m);
        }
        BitSpinGuard::new(self, m)
    }
}

/// The contended path of `bit_spin_lock`: wait with loads only (the line stays
/// shared) until the bit looks free, then try again — the kernel's loop, with
/// randomized backoff that yields the CPU after a while (user-space holders can
/// be preempted).
#[cold]
#[inline(never)]
fn bit_spin_lock_slow(w: &AtomicUsize, m: usize) {
    let backoff = Backoff::new();
    loop {
        while w.load(Ordering::Relaxed) & m != 0 {
            backoff.snooze();
        }
        // Acquire: pairs with the Release in BitSpinGuard::drop.
        if w.fetch_or(m, Ordering::Acquire) & m == 0 {
            return;
        }
    }
}

/// A held bit spinlock; dropping it clears the bit with release ordering
/// (`bit_spin_unlock`).
///
/// The guard is `!Send`: as for every ksync lock guard, the lock is released by
/// the thread that took it (in the kernel, the holder runs with preemption
/// disabled; ksync's bit spinlocks live below the scheduler layer and do not
/// touch the preempt count — use [`SpinLock`](crate::spinlock) where context
/// checks matter).
///
/// ```compile_fail
/// let map = ksync::atomic::Bitmap::new(8);
/// let g = map.bit_spin_lock(0);
/// std::thread::scope(|s| {
///     s.spawn(move || drop(g)); // error: the guard is !Send
/// });
/// ```
#[must_use = "the bit lock is released as soon as the guard is dropped"]
#[doc(alias = "bit_spin_unlock")]
pub struct BitSpinGuard<'a> {
    word: &'a AtomicUsize,
    mask: usize,
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: the guard only holds a shared reference to an atomic word; sharing
// `&BitSpinGuard` between threads gives access to nothing but that.
unsafe impl Sync for BitSpinGuard<'_> {}

impl<'a> BitSpinGuard<'a> {
    #[inline]
    fn new(word: &'a AtomicUsize, mask: usize) -> Self {
        BitSpinGuard {
            word,
            mask,
            _not_send: PhantomData,
        }
    }
}

impl Drop for BitSpinGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release: pairs with the Acquire of the next bit_spin_lock.
        self.word.fetch_and(!self.mask, Ordering::Release);
    }
}

impl fmt::Debug for BitSpinGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitSpinGuard")
            .field("bit", &self.mask.trailing_zeros())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// An impossible size is a clear panic naming it (it aborted the process
    /// in the allocator), and `try_new` returns -ENOMEM.
    #[test]
    #[should_panic(expected = "cannot allocate a bitmap of 18446744073709551615 bits")]
    fn new_of_an_impossible_size_panics_naming_it() {
        let _ = Bitmap::new(usize::MAX);
    }

    #[test]
    fn try_new_of_an_impossible_size_is_enomem() {
        let e = Bitmap::try_new(usize::MAX).unwrap_err();
        assert_eq!(e, crate::Error::NoMemory);
        assert_eq!(e.errno(), -12, "-ENOMEM");
    }
    use std::sync::atomic::{AtomicU32, AtomicU64};

    #[test]
    fn atomic_ops_change_the_bit_and_return_the_old_value() {
        let m = Bitmap::new(130);
        assert!(!m.test_bit(129));
        m.set_bit(129);
        assert!(m.test_bit(129));
        m.set_bit(129); // idempotent
        assert_eq!(m.weight(), 1);
        m.clear_bit(129);
        assert!(!m.test_bit(129));
        m.change_bit(64);
        assert!(m.test_bit(64));
        m.change_bit(64);
        assert!(!m.test_bit(64));

        assert!(!m.test_and_set_bit(0));
        assert!(m.test_and_set_bit(0));
        assert!(m.test_bit(0));
        assert!(m.test_and_clear_bit(0));
        assert!(!m.test_and_clear_bit(0));
        assert!(!m.test_bit(0));
        assert!(!m.test_and_change_bit(63));
        assert!(m.test_bit(63));
        assert!(m.test_and_change_bit(63));
        assert!(!m.test_bit(63));
        assert!(m.is_clear());
    }

    #[test]
    fn bits_do_not_disturb_their_neighbours() {
        let m = Bitmap::new(192);
        for nr in (0..192).step_by(3) {
            m.set_bit(nr);
        }
        for nr in 0..192 {
            assert_eq!(m.test_bit(nr), nr % 3 == 0, "bit {nr}");
        }
        assert_eq!(m.weight(), 64);
    }

    #[test]
    fn lock_forms() {
        let m = Bitmap::new(8);
        assert!(!m.test_and_set_bit_lock(5));
        assert!(m.test_and_set_bit_lock(5));
        assert!(m.test_bit_acquire(5));
        m.clear_bit_unlock(5);
        assert!(!m.test_bit(5));
        {
            let _g = m.bit_spin_lock(2);
            assert!(m.bit_spin_is_locked(2));
            assert!(m.bit_spin_trylock(2).is_none());
            let g3 = m.bit_spin_trylock(3).expect("bit 3 is free");
            assert!(m.test_bit(3));
            drop(g3);
            assert!(!m.test_bit(3));
        }
        assert!(!m.bit_spin_is_locked(2));
    }

    #[test]
    fn bit_spin_lock_excludes() {
        let m = Bitmap::new(64);
        let counter = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..500 {
                        let _g = m.bit_spin_lock(17);
                        // A non-atomic read-modify-write made of two atomic
                        // accesses: an interleaving would lose increments.
                        let v = counter.load(std::sync::atomic::Ordering::Relaxed);
                        std::hint::spin_loop();
                        counter.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(counter.into_inner(), 4_000);
        assert!(!m.test_bit(17));
    }

    #[test]
    fn nonatomic_forms() {
        let mut m = Bitmap::new(100);
        m.set_bit_nonatomic(99);
        assert!(m.test_bit(99));
        m.clear_bit_nonatomic(99);
        assert!(!m.test_bit(99));
        m.change_bit_nonatomic(1);
        assert!(m.test_bit(1));
        assert!(!m.test_and_set_bit_nonatomic(2));
        assert!(m.test_and_set_bit_nonatomic(2));
        assert!(m.test_and_clear_bit_nonatomic(2));
        assert!(!m.test_and_clear_bit_nonatomic(2));
        assert!(m.test_and_change_bit_nonatomic(1));
        assert!(!m.test_and_change_bit_nonatomic(1));
        assert!(m.test_bit(1));
        m.fill();
        assert_eq!(m.weight(), 100);
        assert_eq!(m.find_first_zero_bit(), None);
        m.zero();
        assert!(m.is_clear());
    }

    #[test]
    fn find_functions() {
        let m = Bitmap::new(300);
        assert_eq!(m.find_first_bit(), None);
        assert_eq!(m.find_next_bit(0), None);
        assert_eq!(m.find_last_bit(), None);
        assert_eq!(m.find_first_zero_bit(), Some(0));
        m.set_bit(0);
        m.set_bit(63);
        m.set_bit(64);
        m.set_bit(299);
        assert_eq!(m.find_first_bit(), Some(0));
        assert_eq!(m.find_next_bit(1), Some(63));
        assert_eq!(m.find_next_bit(63), Some(63));
        assert_eq!(m.find_next_bit(64), Some(64));
        assert_eq!(m.find_next_bit(65), Some(299)); // crosses the 4-word skip
        assert_eq!(m.find_next_bit(299), Some(299));
        assert_eq!(m.find_next_bit(300), None); // offset == nbits
        assert_eq!(m.find_next_bit(10_000), None);
        assert_eq!(m.find_last_bit(), Some(299));
        assert_eq!(m.find_first_zero_bit(), Some(1));
        assert_eq!(m.find_next_zero_bit(63), Some(65));
        assert_eq!(m.find_next_zero_bit(299), None);
        assert_eq!(m.find_next_zero_bit(298), Some(298));
        assert_eq!(m.iter_set().collect::<Vec<_>>(), [0, 63, 64, 299]);
        assert_eq!(m.iter_clear().count(), 296);
        assert_eq!(
            format!("{m:?}"),
            "Bitmap { nbits: 300, set: [0, 63, 64, 299] }"
        );
    }

    #[test]
    fn find_zero_stops_at_nbits() {
        // 70 bits: the last word's bits 70..128 are outside the bitmap.
        let mut m = Bitmap::new(70);
        m.fill();
        assert_eq!(m.find_first_zero_bit(), None);
        m.clear_bit(69);
        assert_eq!(m.find_first_zero_bit(), Some(69));
        assert_eq!(m.find_next_zero_bit(0), Some(69));
        let empty = Bitmap::new(0);
        assert_eq!(empty.find_first_bit(), None);
        assert_eq!(empty.find_first_zero_bit(), None);
        assert_eq!(empty.iter_set().count(), 0);
    }

    #[test]
    fn find_agrees_with_a_naive_scan() {
        let m = Bitmap::new(1000);
        let mut x = 12345u32;
        for _ in 0..60 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            m.set_bit(x as usize % 1000);
        }
        for off in 0..1001 {
            let want = (off..1000).find(|&i| m.test_bit(i));
            assert_eq!(m.find_next_bit(off), want, "offset {off}");
            let want0 = (off..1000).find(|&i| !m.test_bit(i));
            assert_eq!(m.find_next_zero_bit(off), want0, "offset {off}");
        }
    }

    #[test]
    fn static_bitmaps() {
        static S: StaticBitmap<{ bits_to_longs(65) }> = StaticBitmap::new_static(65);
        crate::declare_bitmap!(static D, 10);
        S.set_bit(64);
        assert_eq!(S.find_first_bit(), Some(64));
        assert_eq!(S.nbits(), 65);
        D.set_bit(9);
        assert!(D.test_and_clear_bit(9));
        assert_eq!(bits_to_longs(0), 0);
        assert_eq!(bits_to_longs(64), 1);
        assert_eq!(bits_to_longs(65), 2);
    }

    #[test]
    #[should_panic(expected = "bit index 100 out of range for a bitmap of 100 bits")]
    fn out_of_range_panics_with_index_and_length() {
        Bitmap::new(100).test_and_set_bit(100);
    }

    #[test]
    #[should_panic(expected = "bit index 64 out of range for a bitmap of 64 bits")]
    fn out_of_range_nonatomic_panics() {
        Bitmap::new(64).set_bit_nonatomic(64);
    }

    #[test]
    #[should_panic(expected = "bit index 32 out of range for a bitmap of 32 bits")]
    fn word_out_of_range_panics() {
        AtomicU32::new(0).set_bit(32);
    }

    #[test]
    fn word_bitops() {
        let w = AtomicU64::new(0);
        w.set_bit(63);
        assert!(w.test_bit(63));
        assert!(!w.test_and_set_bit(1));
        assert!(w.test_and_set_bit(1));
        assert!(w.test_and_clear_bit(1));
        assert!(!w.test_and_clear_bit(1));
        assert!(!w.test_and_change_bit(2));
        assert!(w.test_and_change_bit(2));
        w.change_bit(3);
        w.clear_bit(63);
        assert_eq!(w.load(std::sync::atomic::Ordering::Relaxed), 0b1000);
        w.set_mask(0b0110);
        w.clear_mask(0b1100);
        assert_eq!(w.load(std::sync::atomic::Ordering::Relaxed), 0b0010);
        assert!(!w.test_and_set_bit_lock(0));
        assert!(w.test_and_set_bit_lock(0));
        w.clear_bit_unlock(0);
        assert!(!w.test_bit(0));

        let u = AtomicUsize::new(0);
        {
            let _g = u.bit_spin_lock(3);
            assert!(u.bit_spin_is_locked(3));
            assert!(u.bit_spin_trylock(3).is_none());
        }
        assert!(!u.bit_spin_is_locked(3));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::UnsafeCell;
    use loom::sync::Arc;

    /// test_and_set_bit_lock / clear_bit_unlock give mutual exclusion and
    /// publish the critical section: loom reports a data race on the cell if
    /// the acquire/release pairing were missing.
    #[test]
    fn loom_bit_lock_excludes() {
        loom::model(|| {
            let m = Arc::new((Bitmap::new(8), UnsafeCell::new(0u32)));
            let ths: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    loom::thread::spawn(move || {
                        while m.0.test_and_set_bit_lock(3) {
                            loom::thread::yield_now();
                        }
                        // SAFETY: bit 3 is held: no other thread is in here.
                        m.1.with_mut(|p| unsafe { *p += 1 });
                        m.0.clear_bit_unlock(3);
                    })
                })
                .collect();
            for t in ths {
                t.join().unwrap();
            }
            // SAFETY: both threads joined.
            assert_eq!(m.1.with(|p| unsafe { *p }), 2);
            assert!(!m.0.test_bit(3));
        });
    }

    /// The bit spinlock guard: same property through bit_spin_lock's slow path.
    #[test]
    fn loom_bit_spin_lock_excludes() {
        loom::model(|| {
            let m = Arc::new((AtomicUsize::new(0), UnsafeCell::new(0u32)));
            let ths: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    loom::thread::spawn(move || {
                        let _g = m.0.bit_spin_lock(0);
                        // SAFETY: the bit lock is held.
                        m.1.with_mut(|p| unsafe { *p += 1 });
                    })
                })
                .collect();
            for t in ths {
                t.join().unwrap();
            }
            // SAFETY: both threads joined.
            assert_eq!(m.1.with(|p| unsafe { *p }), 2);
        });
    }
}
