//! [`SeqData`]: a `T` that readers copy and writers overwrite with atomic word
//! accesses only, so that a reader racing a writer is not a data race.
//!
//! # Implementation details
//!
//! The value is copied in chunks: as many 8-byte words as fit, then one 4-, one
//! 2- and one 1-byte tail as needed. The storage is aligned to 8 bytes, so every
//! chunk is naturally aligned, and writers and readers use the very same chunks
//! (same address, same size): there are no mixed-size atomic accesses. All
//! accesses are `Relaxed`; the ordering comes from the [`SeqCount`] around them
//! (the reader's acquire fence in `read_retry`, the writer's release fence in
//! `write_begin`).
//!
//! Under loom the storage is an array of loom `AtomicU64`s holding the bytes of
//! `T` (the tail word zero-padded), so that the model sees every access.
//!
//! [`SeqCount`]: super::SeqCount

use bytemuck::{AnyBitPattern, NoUninit};
use core::fmt;
use core::mem::{MaybeUninit, size_of};

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Plain data a seqlock can protect: no padding or other uninitialised bytes
/// ([`NoUninit`]) and every bit pattern a valid value ([`AnyBitPattern`]).
///
/// Both halves are needed for soundness, not style:
///
/// - **No uninitialised bytes.** Readers copy the value with atomic loads of whole
///   words. An atomic load of a word that contains a padding byte reads
///   uninitialised memory into an integer, which is undefined behaviour; a plain
///   `memcpy` would be a data race with the writer instead. Only a type without
///   padding can be copied word by word through atomics.
/// - **Every bit pattern valid.** A reader that races a writer copies a mix of
///   old and new words — a *torn* value. The copy is assembled in a
///   `MaybeUninit<T>`, and the sequence count later tells the reader to throw it
///   away; but the explicit `read_begin`/`read_retry` API hands the copy to the
///   caller *before* it is validated, so even a torn copy must be a valid `T`.
///   A `bool`, an enum or a reference inside `T` could take an invalid value by
///   tearing; integers, floats and arrays of them cannot.
///
/// Derive it with `#[derive(Clone, Copy, Pod, Zeroable)]` and `#[repr(C)]`
/// (bytemuck's derives check the absence of padding at compile time).
///
/// **Addresses inside `T` are the reader's hazard.** `T` may hold an address as a
/// `usize`, but a reader must not dereference it before the read is validated
/// (it may be torn: half of one pointer, half of another), and even a validated
/// address may have been freed by a writer right after the validation. Objects
/// that readers reach through a seqlock-protected address need another way to be
/// kept alive, such as RCU ([`crate::rcu`]).
pub trait SeqPod: NoUninit + AnyBitPattern + Send {}

impl<T: NoUninit + AnyBitPattern + Send> SeqPod for T {}

/// A value that can be read while it is being written: every access is an atomic
/// word access, so a racing read returns a possibly torn but valid `T` and is
/// never undefined behaviour.
///
/// This is the storage of [`SeqLock`](super::SeqLock) and
/// [`SeqLatch`](super::SeqLatch); use it directly with a [`SeqCount`](super::SeqCount)
/// where the writer is serialized by a lock of your own (the kernel's
/// `seqcount_spinlock_t` pattern).
///
/// ```
/// use ksync::seqlock::SeqData;
/// let d = SeqData::new([1u32, 2, 3]);
/// d.store(&[4, 5, 6]);
/// assert_eq!(d.load(), [4, 5, 6]);
/// ```
#[cfg_attr(not(loom), repr(C, align(8)))]
pub struct SeqData<T> {
    #[cfg(not(loom))]
    cell: core::cell::UnsafeCell<T>,
    #[cfg(loom)]
    words: Box<[AtomicU64]>,
    #[cfg(loom)]
    _t: core::marker::PhantomData<T>,
}

// SAFETY: every access through `&SeqData` is an atomic load or store of a chunk
// of the value, so sharing it between threads is free of data races; `T: Send`
// because values stored by one thread are read out on another.
unsafe impl<T: SeqPod> Sync for SeqData<T> {}

#[cfg(not(loom))]
impl<T: SeqPod> SeqData<T> {
    /// Wraps `value`.
    #[inline]
    pub const fn new(value: T) -> Self {
        SeqData {
            cell: core::cell::UnsafeCell::new(value),
        }
    }

    /// A copy of the value, made with atomic loads. Racing a [`store`](Self::store)
    /// it may be torn (some words old, some new) — still a valid `T`, since `T`
    /// accepts any bit pattern; a [`SeqCount`](super::SeqCount) tells whether it was.
    ///
    /// Always inlined: a copy made out of line is returned through memory,
    /// and a reader that merges it with an inline copy (as
    /// [`SeqLock::read`](super::SeqLock::read)'s locked fallback does) would
    /// then build its fast-path result in memory too.
    #[inline(always)]
    pub fn load(&self) -> T {
        let mut out = MaybeUninit::<T>::uninit();
        let src = self.cell.get() as *mut u8;
        let dst = out.as_mut_ptr() as *mut u8;
        let size = size_of::<T>();
        let mut off = 0;
        // SAFETY: `src` is 8-aligned (repr(align(8))) so every chunk below is
        // naturally aligned and lies inside the value; all concurrent accesses to
        // these bytes are atomic accesses of the same chunk size (see `store`), or
        // need `&mut self`. `dst` is the same size as the value.
        unsafe {
            while off + 8 <= size {
                let w = AtomicU64::from_ptr(src.add(off) as *mut u64).load(Relaxed);
                (dst.add(off) as *mut u64).write_unaligned(w);
                off += 8;
            }
            if off + 4 <= size {
                let w = AtomicU32::from_ptr(src.add(off) as *mut u32).load(Relaxed);
                (dst.add(off) as *mut u32).write_unaligned(w);
                off += 4;
            }
            if off + 2 <= size {
                let w = AtomicU16::from_ptr(src.add(off) as *mut u16).load(Relaxed);
                (dst.add(off) as *mut u16).write_unaligned(w);
                off += 2;
            }
            if off < size {
                let w = AtomicU8::from_ptr(src.add(off)).load(Relaxed);
                dst.add(off).write(w);
            }
            // SAFETY: every byte of `out` was written above with initialised bytes
            // (the stored value has no uninitialised bytes: `T: NoUninit`), and any
            // bit pattern is a valid `T` (`T: AnyBitPattern`), torn or not.
            out.assume_init()
        }
    }

    /// Overwrites the value with atomic stores. Writers must be serialized (a
    /// lock, or [`SeqCount::write_begin`](super::SeqCount::write_begin)) for
    /// readers to make sense of the result, but no misuse is undefined behaviour.
    #[inline]
    pub fn store(&self, value: &T) {
        let src = bytemuck::bytes_of(value).as_ptr();
        let dst = self.cell.get() as *mut u8;
        let size = size_of::<T>();
        let mut off = 0;
        // SAFETY: as in `load`: aligned chunks inside the value, accessed only
        // atomically with the same chunk sizes; `src` covers `size` initialised bytes.
        unsafe {
            while off + 8 <= size {
                let w = (src.add(off) as *const u64).read_unaligned();
                AtomicU64::from_ptr(dst.add(off) as *mut u64).store(w, Relaxed);
                off += 8;
            }
            if off + 4 <= size {
                let w = (src.add(off) as *const u32).read_unaligned();
                AtomicU32::from_ptr(dst.add(off) as *mut u32).store(w, Relaxed);
                off += 4;
            }
            if off + 2 <= size {
                let w = (src.add(off) as *const u16).read_unaligned();
                AtomicU16::from_ptr(dst.add(off) as *mut u16).store(w, Relaxed);
                off += 2;
            }
            if off < size {
                AtomicU8::from_ptr(dst.add(off)).store(src.add(off).read(), Relaxed);
            }
        }
    }

    /// The value, for an owner with exclusive access (no atomics needed).
    #[inline]
    pub fn get_mut(&mut self) -> &mut T {
        self.cell.get_mut()
    }

    /// Unwraps the value.
    #[inline]
    pub fn into_inner(self) -> T {
        self.cell.into_inner()
    }
}

#[cfg(loom)]
impl<T: SeqPod> SeqData<T> {
    /// Wraps `value` (loom model: an array of loom atomics).
    pub fn new(value: T) -> Self {
        let n = size_of::<T>().div_ceil(8);
        let words: Box<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        let d = SeqData {
            words,
            _t: core::marker::PhantomData,
        };
        d.store(&value);
        d
    }

    /// A copy made with atomic loads (loom model).
    pub fn load(&self) -> T {
        let mut out = MaybeUninit::<T>::uninit();
        let dst = out.as_mut_ptr() as *mut u8;
        let size = size_of::<T>();
        for (i, w) in self.words.iter().enumerate() {
            let bytes = w.load(Relaxed).to_ne_bytes();
            let n = (size - i * 8).min(8);
            // SAFETY: `dst + i*8 .. + n` lies inside `out`.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.add(i * 8), n) };
        }
        // SAFETY: all `size` bytes written above; `T: AnyBitPattern`.
        unsafe { out.assume_init() }
    }

    /// Overwrites the value with atomic stores (loom model).
    pub fn store(&self, value: &T) {
        let src = bytemuck::bytes_of(value);
        for (i, w) in self.words.iter().enumerate() {
            let mut bytes = [0u8; 8];
            let chunk = &src[i * 8..src.len().min(i * 8 + 8)];
            bytes[..chunk.len()].copy_from_slice(chunk);
            w.store(u64::from_ne_bytes(bytes), Relaxed);
        }
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.load()
    }
}

impl<T: SeqPod + fmt::Debug> fmt::Debug for SeqData<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SeqData").field(&self.load()).finish()
    }
}

impl<T: SeqPod + Default> Default for SeqData<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Odd {
        a: [u8; 7],
        b: [u8; 8],
    }

    fn round_trip<const N: usize>() {
        let mut v = [0u8; N];
        for (i, b) in v.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        let d = SeqData::new([0u8; N]);
        d.store(&v);
        assert_eq!(d.load(), v, "size {N}");
    }

    #[test]
    fn round_trips_every_tail_size() {
        // Sizes 1..=15 exercise every combination of the 8/4/2/1-byte chunks.
        round_trip::<1>();
        round_trip::<2>();
        round_trip::<3>();
        round_trip::<4>();
        round_trip::<5>();
        round_trip::<6>();
        round_trip::<7>();
        round_trip::<8>();
        round_trip::<9>();
        round_trip::<11>();
        round_trip::<13>();
        round_trip::<14>();
        round_trip::<15>();
        round_trip::<64>();
        let d = SeqData::new(Odd {
            a: [1; 7],
            b: [2; 8],
        });
        d.store(&Odd {
            a: [3; 7],
            b: [4; 8],
        });
        assert_eq!(
            d.load(),
            Odd {
                a: [3; 7],
                b: [4; 8]
            }
        );
        assert_eq!(SeqData::new(()).load(), ());
    }
}
