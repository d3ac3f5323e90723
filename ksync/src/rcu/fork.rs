//! RCU across `fork()` without `exec()`: liburcu's `rcu_before_fork`,
//! `rcu_after_fork_parent` and `rcu_after_fork_child` (`src/urcu.c`,
//! `src/urcu-bp.c`), with its `call_rcu_*_fork` handlers folded in
//! (`src/urcu-call-rcu-impl.h`).
//!
//! The user-facing story, and an example, are on [`rcu_before_fork`].

use super::reader::{self, Reader};
use super::{callback, sync};
use crate::semaphore::SemaphoreGuard;
use core::cell::RefCell;
use std::sync::{Mutex, MutexGuard};

/// What [`rcu_before_fork`] holds until the fork is over, on the forking
/// thread. Fields drop in order: the registry lock first, as taken last.
struct Held {
    registry: MutexGuard<'static, Vec<Reader>>,
    gp: SemaphoreGuard<'static>,
    /// Lets the worker go on when dropped: in the parent, or at the exit of
    /// a thread that never made the `rcu_after_fork_*` call.
    worker: PausedWorker,
    /// One fork at a time: a second thread's `rcu_before_fork` would ask the
    /// paused worker to pause again and the first one's parent call would
    /// let it run under the second's fork.
    _forking: MutexGuard<'static, ()>,
    /// The parent's process id, so a call on the wrong side of the fork is
    /// reported rather than run.
    pid: u32,
}

/// The callback worker, paused by `rcu_before_fork` until this is dropped.
struct PausedWorker;

impl Drop for PausedWorker {
    fn drop(&mut self) {
        callback::resume_after_fork();
    }
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
    /// Whether `HELD` holds something. A type without a destructor, so
    /// looking at it never registers one: `HELD` is first touched (and its
    /// destructor registered) only by `rcu_before_fork`, after the thread's
    /// reader registration (see there), whatever calls came before.
    static IN_WINDOW: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Taken first by [`rcu_before_fork`], let go last: see [`Held`].
static FORKING: Mutex<()> = Mutex::new(());

/// Prepares RCU for a `fork` that is not followed by `exec`
/// (`rcu_before_fork`, liburcu; also its `call_rcu_before_fork`). Call it on
/// the thread that will fork, right before `fork`, then
/// [`rcu_after_fork_parent`] in the parent — also if the fork failed: until
/// then no grace period ends and no callback runs — and
/// [`rcu_after_fork_child`] in the child.
///
/// A forked child has one thread, the one that called `fork`, and a copy of
/// everything else. Left alone, RCU's state in it would name the parent's
/// other threads:
/// - a reader that was inside a read-side section at the fork stays in the
///   registry with its count up, so every grace period in the child waits for
///   it for ever;
/// - a `synchronize_rcu` caller queued at the fork is awaited by every later
///   caller in the child, and a lock that another thread held stays held;
/// - the `call_rcu` worker thread is gone, so queued callbacks never run and
///   `rcu_barrier` never returns.
///
/// This call brings RCU to a point where none of that is half done:
/// it stops the callback worker between batches (holding no callback), takes
/// the grace-period lock (no grace period runs) and the registry lock (no
/// thread registers). [`rcu_after_fork_parent`] lets go of all three.
/// [`rcu_after_fork_child`] keeps only its own thread in the registry,
/// forgets the parent's other `synchronize_rcu` callers, frees the
/// grace-period lock, and starts a callback worker of its own for the
/// callbacks still queued: none is lost, and none runs twice in one process
/// (the parent runs its copy, the child its own).
///
/// The kernel has no such calls: its `fork` copies no other task. They are
/// not registered with `pthread_atfork` by ksync, as liburcu does not
/// register its own: the prepare step waits for grace periods and callbacks,
/// which would deadlock a `fork` from inside a read-side section or a
/// callback; called explicitly, those misuses panic instead. A program that
/// forks only to `exec` needs none of this.
///
/// Only RCU's own state is handled: an [`SrcuStruct`](super::SrcuStruct), a
/// lock or a wait queue of the program's that another thread holds or waits
/// on at the fork is as the fork left it, as with any lock (and `fork(2)`).
///
/// ```
/// use ksync::rcu::{call_rcu, rcu_after_fork_child, rcu_after_fork_parent, rcu_barrier,
///                  rcu_before_fork, synchronize_rcu};
///
/// rcu_before_fork();
/// // SAFETY: the child below calls only what a forked child may, and leaves
/// // with `_exit`.
/// let pid = unsafe { libc::fork() };
/// assert!(pid >= 0);
/// if pid == 0 {
///     // SAFETY: the child of a fork after `rcu_before_fork`, its only thread,
///     // before it starts any thread.
///     unsafe { rcu_after_fork_child() };
///     synchronize_rcu();          // grace periods work in the child
///     call_rcu(|| {});            // and callbacks run (its own worker)
///     rcu_barrier();
///     // SAFETY: leaves the child without running the parent's destructors.
///     unsafe { libc::_exit(0) };
/// }
/// rcu_after_fork_parent();
/// let mut status = 0;
/// // SAFETY: waits for the child forked above.
/// assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
/// assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
/// ```
///
/// It waits for the callback worker to finish the batch it runs (so for that
/// batch's grace period and callbacks) and for a grace period in progress to
/// end; meanwhile no grace period starts and no thread registers as a reader.
/// The calling thread is registered first, so a signal handler's
/// `rcu_read_lock` on it needs no registration.
///
/// # Panics
/// Inside a read-side critical section or a `call_rcu` callback (either
/// would deadlock), or if called again before the `rcu_after_fork_*` call.
#[doc(alias = "urcu_memb_before_fork")]
#[doc(alias = "call_rcu_before_fork")]
pub fn rcu_before_fork() {
    if super::rcu_read_lock_held() {
        panic!(
            "rcu_before_fork() called inside an RCU read-side critical section: this would \
             deadlock (it waits for grace periods to end)"
        );
    }
    // Before any lock: another fork's window may be waiting for this worker.
    callback::refuse_fork_in_callback();
    crate::lockdep::might_sleep();
    if IN_WINDOW.with(core::cell::Cell::get) {
        panic!("rcu_before_fork() called twice without rcu_after_fork_parent/child in between");
    }
    // Registered before `HELD` is first touched (no other path touches it
    // first: they look at `IN_WINDOW`), so that at the exit of a thread that
    // never ends its fork window `HELD`'s destructor (registered later, run
    // earlier) lets go of the registry lock before the registration's
    // destructor takes it.
    super::rcu_register_thread();
    // A poisoned lock guards no data: taken over.
    let forking = FORKING.lock().unwrap_or_else(|e| e.into_inner());
    callback::pause_for_fork();
    let worker = PausedWorker;
    let gp = sync::lock_for_fork();
    let registry = reader::registry();
    HELD.with(|h| {
        *h.borrow_mut() = Some(Held {
            registry,
            gp,
            worker,
            _forking: forking,
            pid: std::process::id(),
        })
    });
    IN_WINDOW.with(|w| w.set(true));
}

/// Takes what `rcu_before_fork` holds, checking the side of the fork.
#[track_caller]
fn take_held(what: &str, child: bool) -> Held {
    // `IN_WINDOW` first: a refused call must not be the first to touch `HELD`.
    let held = if IN_WINDOW.with(core::cell::Cell::get) {
        HELD.with(|h| h.borrow_mut().take())
    } else {
        None
    };
    let Some(held) = held else {
        panic!("{what}() called without rcu_before_fork() before the fork, on this thread");
    };
    if (std::process::id() != held.pid) != child {
        let side = if child { "parent" } else { "child" };
        // Keep holding: the right call may still come.
        HELD.with(|h| *h.borrow_mut() = Some(held));
        panic!("{what}() called in the {side} of the fork");
    }
    IN_WINDOW.with(|w| w.set(false));
    held
}

/// Ends [`rcu_before_fork`] in the parent (`rcu_after_fork_parent`,
/// liburcu; also its `call_rcu_after_fork_parent`): grace periods,
/// registrations and callbacks go on.
///
/// # Panics
/// Without an `rcu_before_fork` on this thread first, or in the child.
#[doc(alias = "urcu_memb_after_fork_parent")]
#[doc(alias = "call_rcu_after_fork_parent")]
pub fn rcu_after_fork_parent() {
    // Drops in order: the locks, then the worker goes on, and only then may
    // the next fork ask it to pause (`_forking` goes last).
    drop(take_held("rcu_after_fork_parent", false));
}

/// Ends [`rcu_before_fork`] in the child (`rcu_after_fork_child`, liburcu;
/// also its `call_rcu_after_fork_child`): only the calling thread stays a
/// registered reader, the parent's other `synchronize_rcu` callers are
/// forgotten, and a new callback worker runs the callbacks still queued.
///
/// # Safety
/// Call it in the child of a `fork` that followed [`rcu_before_fork`] on the
/// same thread, before the child starts any thread: it frees the records of
/// every other reader and forgets every other waiter, which is sound only
/// where no other thread exists.
///
/// # Panics
/// Without an `rcu_before_fork` on this thread first, or in the parent.
#[doc(alias = "urcu_memb_after_fork_child")]
#[doc(alias = "call_rcu_after_fork_child")]
pub unsafe fn rcu_after_fork_child() {
    let Held {
        mut registry,
        gp,
        worker,
        _forking,
        ..
    } = take_held("rcu_after_fork_child", true);
    // The child has no worker to let go on: it starts its own below.
    core::mem::forget(worker);
    // SAFETY: the caller's contract: the child's only thread; the registry
    // lock is `registry`.
    unsafe { reader::prune_after_fork(&mut registry) };
    drop(registry);
    // SAFETY: as above; `gp` is `lock_for_fork`'s guard from before the fork.
    unsafe { sync::reinit_after_fork(gp) };
    // SAFETY: as above; `pause_for_fork` ran in `rcu_before_fork`.
    unsafe { callback::restart_after_fork() };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rcu::{call_rcu, rcu_barrier, rcu_read_lock, synchronize_rcu};
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    #[should_panic(expected = "inside an RCU read-side critical section")]
    fn before_fork_in_a_reader_panics() {
        let _g = rcu_read_lock();
        rcu_before_fork();
    }

    /// From a callback it would wait for the worker that runs it: refused,
    /// and the worker goes on.
    #[test]
    fn before_fork_in_a_callback_is_refused() {
        static REFUSED: AtomicBool = AtomicBool::new(false);
        call_rcu(|| {
            let r = std::panic::catch_unwind(rcu_before_fork);
            REFUSED.store(r.is_err(), Ordering::Relaxed);
        });
        rcu_barrier();
        assert!(REFUSED.load(Ordering::Relaxed));
    }

    /// Two threads prepare and end forks at once while callbacks flow: each
    /// finds the worker paused for all of its window (one fork at a time; a
    /// second prepare used to ask the paused worker again, and the first
    /// one's parent call let it run under the second's window), and every
    /// callback runs.
    #[test]
    fn concurrent_forkers_each_find_the_worker_paused() {
        use std::sync::atomic::AtomicU64;
        static RAN: AtomicU64 = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut n = 0;
                // Bounded: while the worker is paused, callbacks pile up.
                while !stop.load(Ordering::Relaxed) && n < 100_000 {
                    call_rcu(|| {
                        RAN.fetch_add(1, Ordering::Relaxed);
                    });
                    n += 1;
                    if n % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            });
            let forkers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..10 {
                            rcu_before_fork();
                            let paused = callback::paused_for_fork();
                            rcu_after_fork_parent();
                            assert!(paused, "the worker ran inside a fork window");
                        }
                    })
                })
                .collect();
            for f in forkers {
                f.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        let before = RAN.load(Ordering::Relaxed);
        call_rcu(|| {
            RAN.fetch_add(1, Ordering::Relaxed);
        });
        rcu_barrier();
        assert!(RAN.load(Ordering::Relaxed) > before);
    }

    /// A thread that prepares a fork and exits without either after-call
    /// lets go of everything at its exit: grace periods, callbacks and the
    /// next fork go on.
    #[test]
    fn a_thread_that_exits_inside_its_fork_window_lets_go() {
        std::thread::spawn(rcu_before_fork).join().unwrap();
        static RAN: AtomicBool = AtomicBool::new(false);
        call_rcu(|| RAN.store(true, Ordering::Relaxed));
        rcu_barrier();
        assert!(RAN.load(Ordering::Relaxed));
        synchronize_rcu();
        std::thread::spawn(|| {
            rcu_before_fork();
            rcu_after_fork_parent();
        })
        .join()
        .unwrap();
    }

    /// A refused after-call on a thread not yet registered as a reader,
    /// then a window it never ends: its exit still lets go (the refused call
    /// must not be the first to touch the hold, or the hold's destructor
    /// would run after the registration's, which waits for the registry
    /// lock the hold has).
    #[test]
    fn a_refused_call_before_registering_does_not_hang_the_exit() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            std::thread::spawn(|| {
                let r = std::panic::catch_unwind(rcu_after_fork_parent);
                assert!(r.is_err(), "no rcu_before_fork: refused");
                rcu_before_fork();
            })
            .join()
            .unwrap();
            tx.send(()).unwrap();
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the exit of a thread inside its fork window waits for ever");
        synchronize_rcu();
    }

    #[test]
    fn after_fork_calls_check_their_side() {
        std::thread::spawn(|| {
            let r = std::panic::catch_unwind(rcu_after_fork_parent);
            assert!(r.is_err(), "no rcu_before_fork: refused");
            rcu_before_fork();
            // SAFETY: refused before it does anything: this is the parent.
            let r = std::panic::catch_unwind(|| unsafe { rcu_after_fork_child() });
            assert!(r.is_err(), "the parent's call to the child's end: refused");
            rcu_after_fork_parent();
            synchronize_rcu();
        })
        .join()
        .unwrap();
    }
}
