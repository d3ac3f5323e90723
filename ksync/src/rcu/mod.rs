//! Read-copy-update: readers that never wait, updaters that copy, publish, and
//! reclaim after a grace period.
//!
//! The design is liburcu's membarrier flavour (urcu/userspace-rcu: `src/urcu.c`,
//! `include/urcu/static/urcu-memb.h`, `src/urcu-call-rcu-impl.h`) with the
//! kernel's classic SRCU counter pair as the reader record
//! (`kernel/rcu/srcutree.c`), and the kernel's API
//! (`Documentation/RCU/whatisRCU.rst`):
//!
//! - **Readers**: [`rcu_read_lock`] returns a `!Send` [`RcuReadGuard`]; dropping
//!   it is `rcu_read_unlock`. The read side adds 1 to one of two counters in the
//!   calling thread's own cache-padded record (the one for the current phase,
//!   which a thread-local pointer names and each grace period re-points), reads
//!   the cache-padded global futex word, and issues a compiler barrier — a full
//!   fence, out of line, only where `membarrier(PRIVATE_EXPEDITED)` is
//!   unavailable. The guard holds the counter its drop subtracts 1 from.
//!   Inlined, a lock+unlock pair is 8 x86-64 instructions (liburcu's
//!   `_urcu_memb_read_lock`/`unlock`: 22), with one TLS access, no atomic
//!   read-modify-write and no call. Threads register on
//!   their first `rcu_read_lock` and unregister at exit; [`rcu_register_thread`]
//!   and [`rcu_unregister_thread`] do it early. Readers must not sleep.
//! - **Grace periods**: [`synchronize_rcu`] waits until every thread's counter
//!   of the non-current phase is 0, flips the phase (re-pointing every
//!   reader's thread-local pointer), and waits the same for the old phase
//!   (spinning briefly, then sleeping on a futex that a reader's
//!   `rcu_read_unlock` wakes). Concurrent callers share one grace period.
//!   [`synchronize_rcu_expedited`] spins longer. [`completed_grace_periods`]
//!   counts them (`rcu_get_gp_seq`), and the polled API waits for one without
//!   blocking: [`get_state_synchronize_rcu`] takes a cookie,
//!   [`poll_state_synchronize_rcu`] says whether its grace period has passed,
//!   [`cond_synchronize_rcu`] waits only if not.
//! - **Callbacks**: [`call_rcu`], [`defer_drop`] / [`kfree_rcu`] queue without
//!   locks to one worker thread that runs a whole batch after one grace period;
//!   [`rcu_barrier`] waits for all of them. Callbacks still queued when the
//!   process exits are not run: call [`rcu_barrier`] at shutdown.
//! - **Data structures**: [`RcuPtr`] (`rcu_dereference`, `rcu_assign_pointer`),
//!   [`RcuList`] (`list_*_rcu`, `hlist_*_rcu`), [`RcuHashMap`].
//! - **SRCU**: [`SrcuStruct`], domains whose readers may sleep.
//! - **Fork without exec** (liburcu's calls): [`rcu_before_fork`], then
//!   [`rcu_after_fork_parent`] and [`rcu_after_fork_child`], so that the
//!   child's grace periods do not wait for the parent's other threads and its
//!   callbacks still run.
//!
//! ```
//! use ksync::rcu::{rcu_read_lock, synchronize_rcu, RcuPtr};
//! use std::sync::Arc;
//!
//! let table = Arc::new(RcuPtr::new(Some(Box::new(vec![1, 2, 3]))));
//! let t = table.clone();
//! let reader = std::thread::spawn(move || {
//!     let g = rcu_read_lock();
//!     t.read(&g).map_or(0, |v| v.len())   // never blocks, never sees freed memory
//! });
//! // Copy, update, publish; the old vector is freed after a grace period.
//! table.update(|old| old.map(|v| { let mut v = v.clone(); v.push(4); Box::new(v) }));
//! let n = reader.join().unwrap();
//! assert!(n == 3 || n == 4);
//! synchronize_rcu();
//! ```

#[cfg(not(loom))]
mod hash;
#[cfg(not(loom))]
mod list;
#[cfg(not(loom))]
mod ptr;
#[cfg(not(loom))]
mod reader;
#[cfg(not(loom))]
mod srcu;
#[cfg(not(loom))]
mod sync;

mod callback;
#[cfg(not(loom))]
mod fork;
mod gp;

#[cfg(not(loom))]
pub use callback::{
    GATHER, call_rcu, call_rcu_throttled, callback_panics, defer_drop, kfree_rcu, rcu_barrier,
};
#[cfg(not(loom))]
pub use fork::{rcu_after_fork_child, rcu_after_fork_parent, rcu_before_fork};
#[cfg(not(loom))]
pub use hash::RcuHashMap;
#[cfg(not(loom))]
pub use list::{Iter, ListWriter, RcuList};
#[cfg(not(loom))]
pub use ptr::{RcuPtr, Retired};
#[cfg(not(loom))]
pub use reader::{
    RcuReadGuard, rcu_read_lock, rcu_read_lock_held, rcu_read_unlock, rcu_register_thread,
    rcu_unregister_thread,
};
#[cfg(not(loom))]
pub use srcu::{
    SrcuReadGuard, SrcuStruct, cleanup_srcu_struct, init_srcu_struct, srcu_down_read,
    srcu_read_lock, srcu_up_read, synchronize_srcu,
};
#[cfg(not(loom))]
pub use sync::{
    GpCookie, completed_grace_periods, cond_synchronize_rcu, get_completed_synchronize_rcu,
    get_state_synchronize_rcu, poll_state_synchronize_rcu, start_poll_synchronize_rcu,
    synchronize_rcu, synchronize_rcu_expedited,
};
