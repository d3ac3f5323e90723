//! The two-word reader–writer handshake: the fast paths of the spinning
//! rwlocks ([`QueuedRw`](crate::spinlock::raw::QueuedRw),
//! [`ReaderPref`](crate::spinlock::raw::ReaderPref)) and of
//! [`RwSemaphore`](crate::rwsem::RwSemaphore), written once.
//!
//! Readers count themselves in one word (`cnts`, in units of a reader's bias,
//! with the lock's flags in the bits below it); a writer claims a word of its
//! own (`writer`) by a CAS from 0, and only the claimer writes it until it
//! stores 0 again, so the write release is a plain store. (The kernel keeps
//! the writer in a byte of the readers' word and releases it with a byte
//! store; Rust forbids racing mixed-size atomics on one word.)
//!
//! A reader adds its bias and then loads the writer's word; a writer claims
//! its word and then loads the readers'. Both pairs are SeqCst — the
//! store-buffering pattern, a locked RMW on x86, so no fence instruction —
//! so at least one of the two sees the other: a reader that sees a writer
//! backs off (or waits), and a writer that sees a reader gives its word back.
//! A writer holds the lock exactly when it owns its word and saw no reader
//! after claiming it.
//!
//! # Claims an irq handler can see through
//!
//! The spinning rwlocks' readers may run in irq handlers (the kernel's
//! `read_lock` in an interrupt), on the very thread whose writer they
//! interrupted between its claim and its check of the readers. Such a writer
//! cannot decide until the handler returns, so a handler that waited for the
//! claim would wait for ever. Those writers claim with [`my_claim`] —
//! [`CLAIMING`] and the thread's id — and mark the claim held ([`decide`])
//! once they have seen no reader; a reader that finds its *own* thread's
//! undecided claim enters ([`reader_passes_claim`]) and is gone before that
//! writer checks the readers. Any other claim is a writer running on another
//! thread, which decides in a few instructions. [`RwSemaphore`]'s readers
//! never run in interrupt context, so its claim is its held value.
//!
//! [`RwSemaphore`]: crate::rwsem::RwSemaphore

use crate::ctx::current_id;
use crate::loom::sb_fence;
use crate::loom::sync::atomic::{AtomicU32, Ordering, compiler_fence};

/// The top bit of a writer's word that holds an undecided claim: the rest is
/// the claiming thread's id ([`current_id`], below 2^30), so a reader in an
/// irq handler can tell its own thread's claim from another's.
pub(crate) const CLAIMING: u32 = 1 << 31;

/// The value this thread claims a spinning rwlock's writer word with.
#[inline(always)]
pub(crate) fn my_claim() -> u32 {
    CLAIMING | current_id()
}

/// Whether a reader that found `w` in a spinning rwlock's writer word may
/// enter past it: no writer (0), or this thread's own undecided claim, which
/// only an irq handler can see (the writer it interrupted cannot resume, and
/// will check the readers only after the handler has left).
#[inline(always)]
pub(crate) fn reader_passes_claim(w: u32) -> bool {
    w == 0 || (w & CLAIMING != 0 && w == my_claim())
}

/// Whether `w`, a spinning rwlock's writer word, is another thread's undecided
/// claim (a writer that may be about to hold the lock).
#[inline(always)]
pub(crate) fn others_claim(w: u32) -> bool {
    w & CLAIMING != 0 && w != my_claim()
}

/// Marks a claim decided: the caller claimed `writer` and saw no reader after
/// it, so it holds the lock. A plain store (nobody else writes the word), and
/// a compiler barrier so that none of the critical section's accesses move
/// above it, where an irq handler on this thread would still read the claim
/// as undecided and enter.
#[inline(always)]
pub(crate) fn decide(writer: &AtomicU32, held: u32) {
    writer.store(held, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
}

/// The reader's half: adds `bias` to `cnts`, then returns the writer's word
/// as it saw it after.
#[inline(always)]
pub(crate) fn reader_enter(cnts: &AtomicU32, writer: &AtomicU32, bias: u32) -> u32 {
    // SeqCst: the reader's half of the handshake with a writer's claim and
    // its load of `cnts`. The load is also the Acquire that pairs with the
    // writer's Release store when it lets go.
    cnts.fetch_add(bias, Ordering::SeqCst);
    sb_fence();
    writer.load(Ordering::SeqCst)
}

/// A reader's one try: enters if the writer's word `passes`, before and after
/// its bias is in; otherwise takes the bias back with `unbias` (the lock's
/// own, which wakes a writer waiting for the readers) and fails.
#[inline(always)]
pub(crate) fn reader_try(
    cnts: &AtomicU32,
    writer: &AtomicU32,
    bias: u32,
    passes: impl Fn(u32) -> bool,
    unbias: impl FnOnce(),
) -> bool {
    // Relaxed: only a hint that spares the readers' line; the handshake
    // below decides.
    if !passes(writer.load(Ordering::Relaxed)) {
        return false;
    }
    if passes(reader_enter(cnts, writer, bias)) {
        return true;
    }
    unbias();
    false
}

/// A writer's one try: claims `writer` from 0 as `claim()` and checks `cnts`
/// for readers (a count of `bias` or more). With none, it holds the lock
/// (and stores `decided` over its claim, if given: [`decide`]); with one, it
/// gives the word back with `give_back` (the lock's release of the word,
/// which wakes its sleepers) and fails. It does not claim while readers are
/// in: the claim would only bounce them.
#[inline(always)]
pub(crate) fn writer_try(
    writer: &AtomicU32,
    cnts: &AtomicU32,
    bias: u32,
    claim: impl FnOnce() -> u32,
    decided: Option<u32>,
    give_back: impl FnOnce(),
) -> bool {
    if cnts.load(Ordering::Relaxed) >= bias {
        return false;
    }
    // SeqCst: the writer's half of the handshake with the readers'
    // `fetch_add` and load; Acquire pairs with the last writer's Release
    // store.
    if writer
        .compare_exchange(0, claim(), Ordering::SeqCst, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    sb_fence();
    // SeqCst: as above; Acquire pairs with the last reader's Release
    // `fetch_sub`.
    if cnts.load(Ordering::SeqCst) >= bias {
        give_back();
        return false;
    }
    if let Some(held) = decided {
        decide(writer, held);
    }
    true
}
