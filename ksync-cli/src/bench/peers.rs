//! The C peers of `ksync bench`, measured in the same run as ksync's rows:
//!
//! - glibc's `pthread_mutex_t` and `pthread_rwlock_t`, through `libc`: always
//!   built (the `mutex`, `spinlock`, `rwsem` and `rwlock` groups).
//! - liburcu's memb flavour (userspace-rcu, <https://liburcu.org/>): its inline
//!   read side, `synchronize_rcu`, and `call_rcu` + `rcu_barrier` (the `rcu`
//!   group).
//! - Concurrency Kit's fas, ticket and MCS spinlocks
//!   (<https://github.com/concurrencykit/ck>; the `spinlock` group).
//!
//! The last two are inline C functions that Rust cannot inline: `build.rs`
//! compiles a small shim of ours (`ksync-cli/csrc/`) that runs N iterations
//! inside C, when `pkg-config` finds `liburcu-dev` and `libck-dev`, and sets
//! the cfgs `ksync_urcu` and `ksync_ck`. Without them their rows are skipped
//! and [`print_skipped`] names the package that would add them; installing it
//! and building again adds them (build.rs watches pkg-config's directories).
//! `KSYNC_NO_C_PEERS=1 cargo build` builds as a machine without them would.
//! The shims' loops are ours; the locks and RCU they measure are liburcu's and
//! CK's own inline code, as a C user compiles it.

use std::cell::UnsafeCell;

/// glibc's default mutex with the counter it protects.
///
/// # Invariants
/// `lock` is an initialised `pthread_mutex_t` that is never moved once used:
/// it is built from `PTHREAD_MUTEX_INITIALIZER` (moving a mutex nobody has
/// locked yet is initialising it at its new place), and every use is through
/// `&self`. `value` is accessed only with `lock` held.
pub struct PthreadMutex {
    lock: UnsafeCell<libc::pthread_mutex_t>,
    value: UnsafeCell<u64>,
}

// SAFETY: `value` is only touched with `lock` held (the invariant), and a
// pthread mutex is made for use from several threads at once.
unsafe impl Sync for PthreadMutex {}
// SAFETY: a pthread mutex holds no thread-bound state while unlocked, and
// `&mut self` (needed to move it) proves nobody holds it.
unsafe impl Send for PthreadMutex {}

impl PthreadMutex {
    pub fn new(value: u64) -> Self {
        // INVARIANT: the static initializer; not used yet, so free to move.
        PthreadMutex {
            lock: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the value with the mutex held.
    #[inline]
    pub fn with(&self, f: impl FnOnce(&mut u64)) {
        // SAFETY: `lock` is an initialised mutex at a place it keeps while
        // borrowed (the invariant); a default mutex may be locked by any thread.
        let r = unsafe { libc::pthread_mutex_lock(self.lock.get()) };
        assert_eq!(r, 0, "pthread_mutex_lock failed");
        // SAFETY: the mutex is held, so this is the only access to `value`.
        f(unsafe { &mut *self.value.get() });
        // SAFETY: locked by this thread just above.
        unsafe { libc::pthread_mutex_unlock(self.lock.get()) };
    }
}

impl Drop for PthreadMutex {
    fn drop(&mut self) {
        // SAFETY: initialised (the invariant) and unlocked: `&mut self` proves
        // no `with` runs.
        unsafe { libc::pthread_mutex_destroy(self.lock.get()) };
    }
}

/// glibc's default reader-writer lock (reader-preferring) with the counter it
/// protects.
///
/// # Invariants
/// As [`PthreadMutex`]'s: `lock` is built from `PTHREAD_RWLOCK_INITIALIZER`,
/// never moved once used; `value` is read with `lock` held for reading or
/// written with it held for writing.
pub struct PthreadRwLock {
    lock: UnsafeCell<libc::pthread_rwlock_t>,
    value: UnsafeCell<u64>,
}

// SAFETY: `value` is only read under a read hold and written under the write
// hold (the invariant); a pthread rwlock is made for concurrent use.
unsafe impl Sync for PthreadRwLock {}
// SAFETY: no thread-bound state while unheld, and `&mut self` proves that.
unsafe impl Send for PthreadRwLock {}

impl PthreadRwLock {
    pub fn new(value: u64) -> Self {
        // INVARIANT: the static initializer; not used yet, so free to move.
        PthreadRwLock {
            lock: UnsafeCell::new(libc::PTHREAD_RWLOCK_INITIALIZER),
            value: UnsafeCell::new(value),
        }
    }

    /// Reads the value under a read hold.
    #[inline]
    pub fn read(&self) -> u64 {
        // SAFETY: `lock` is an initialised rwlock that stays put while borrowed.
        let r = unsafe { libc::pthread_rwlock_rdlock(self.lock.get()) };
        assert_eq!(r, 0, "pthread_rwlock_rdlock failed");
        // SAFETY: a read hold: writers are excluded, other readers only read.
        let v = unsafe { *self.value.get() };
        // SAFETY: read-locked by this thread just above.
        unsafe { libc::pthread_rwlock_unlock(self.lock.get()) };
        v
    }

    /// Increments the value under the write hold.
    #[inline]
    pub fn write(&self) {
        // SAFETY: `lock` is an initialised rwlock that stays put while borrowed.
        let r = unsafe { libc::pthread_rwlock_wrlock(self.lock.get()) };
        assert_eq!(r, 0, "pthread_rwlock_wrlock failed");
        // SAFETY: the write hold excludes every other access to `value`.
        unsafe { *self.value.get() += 1 };
        // SAFETY: write-locked by this thread just above.
        unsafe { libc::pthread_rwlock_unlock(self.lock.get()) };
    }
}

impl Drop for PthreadRwLock {
    fn drop(&mut self) {
        // SAFETY: initialised and unheld: `&mut self` proves no hold is live.
        unsafe { libc::pthread_rwlock_destroy(self.lock.get()) };
    }
}

/// liburcu's memb flavour, through `csrc/urcu_peer.c`.
#[cfg(ksync_urcu)]
pub mod urcu {
    use std::cell::Cell;
    use std::marker::PhantomData;

    unsafe extern "C" {
        fn ksync_urcu_register_thread();
        fn ksync_urcu_unregister_thread();
        fn ksync_urcu_read_loop(n: u64);
        fn ksync_urcu_synchronize_rcu();
        fn ksync_urcu_call_rcu_batch(n: u64) -> u64;
    }

    thread_local! {
        /// Whether this thread holds a [`Reader`] (liburcu forbids registering
        /// a thread twice).
        static REGISTERED: Cell<bool> = const { Cell::new(false) };
    }

    /// This thread registered as a liburcu reader, until dropped. liburcu's
    /// read side and `call_rcu` must run on a registered thread, and a thread
    /// must unregister before it exits (its record is in liburcu's registry).
    /// `!Send`: the registration is the thread's own.
    pub struct Reader {
        _not_send: PhantomData<*const ()>,
    }

    impl Reader {
        /// Registers this thread.
        ///
        /// # Panics
        /// If this thread already holds a `Reader`.
        pub fn register() -> Reader {
            assert!(
                !REGISTERED.replace(true),
                "this thread is already a liburcu reader"
            );
            // SAFETY: not registered yet (checked above); the Reader
            // unregisters on this same thread (it is !Send) before it exits.
            unsafe { ksync_urcu_register_thread() };
            Reader {
                _not_send: PhantomData,
            }
        }

        /// `n` empty read-side critical sections, with liburcu's inline fast
        /// paths, in one C loop.
        #[inline]
        pub fn read_loop(&self, n: u64) {
            // SAFETY: this thread is registered (`self` exists on it).
            unsafe { ksync_urcu_read_loop(n) }
        }

        /// `n` call_rcu callbacks (each counts itself; their rcu_heads are one
        /// allocation per batch), then rcu_barrier; returns how many ran
        /// meanwhile.
        pub fn call_rcu_batch(&self, n: u64) -> u64 {
            // SAFETY: this thread is registered and not in a read-side critical
            // section (read_loop leaves every one it enters).
            let ran = unsafe { ksync_urcu_call_rcu_batch(n) };
            assert_ne!(ran, u64::MAX, "out of memory in call_rcu_batch");
            ran
        }
    }

    impl Drop for Reader {
        fn drop(&mut self) {
            // SAFETY: registered by `register` on this thread (Reader is !Send)
            // and not in a read-side critical section.
            unsafe { ksync_urcu_unregister_thread() };
            REGISTERED.set(false);
        }
    }

    /// Waits for a grace period: every registered reader has left the
    /// critical section it was in. Must not run inside one; this module never
    /// leaves a thread inside one.
    pub fn synchronize_rcu() {
        // SAFETY: no thread of this process stays in a liburcu read-side
        // critical section (read_loop leaves each one), so this call cannot
        // wait for its own caller.
        unsafe { ksync_urcu_synchronize_rcu() }
    }
}

/// Concurrency Kit's spinlocks, through `csrc/ck_peer.c`.
#[cfg(ksync_ck)]
pub mod ck {
    use std::ffi::c_void;
    use std::ptr::NonNull;

    unsafe extern "C" {
        fn ksync_ck_new() -> *mut c_void;
        fn ksync_ck_free(s: *mut c_void);
        #[cfg(test)]
        fn ksync_ck_count(s: *const c_void) -> u64;
        fn ksync_ck_fas_loop(s: *mut c_void, n: u64);
        fn ksync_ck_ticket_loop(s: *mut c_void, n: u64);
        fn ksync_ck_mcs_loop(s: *mut c_void, n: u64);
    }

    /// Which of CK's spinlocks a loop takes.
    #[derive(Clone, Copy, Debug)]
    pub enum Kind {
        /// `ck_spinlock_fas`: test-and-set by atomic exchange.
        Fas,
        /// `ck_spinlock_ticket`: FIFO tickets.
        Ticket,
        /// `ck_spinlock_mcs`: a queue of per-waiter nodes.
        Mcs,
    }

    impl Kind {
        pub const ALL: [Kind; 3] = [Kind::Fas, Kind::Ticket, Kind::Mcs];

        /// The row's name.
        pub fn name(self) -> &'static str {
            match self {
                Kind::Fas => "ck_spinlock_fas",
                Kind::Ticket => "ck_spinlock_ticket",
                Kind::Mcs => "ck_spinlock_mcs",
            }
        }
    }

    /// A subject allocated by C: one lock of each kind and one counter, on
    /// 128-byte lines of their own.
    ///
    /// # Invariants
    /// `ptr` came from `ksync_ck_new` and is freed only in Drop. Threads that
    /// share a subject all loop with the same [`Kind`] (the locks share a
    /// union, so two kinds at once would not exclude each other).
    pub struct Subject {
        ptr: NonNull<c_void>,
        kind: Kind,
    }

    // SAFETY: the C subject is a plain heap object; every access to its counter
    // is under its lock (the loops) or through `&mut self`/after all loops.
    unsafe impl Send for Subject {}
    // SAFETY: concurrent `run`s take the one lock of `kind` around each
    // counter increment; the invariant keeps every thread on that lock.
    unsafe impl Sync for Subject {}

    impl Subject {
        /// A fresh, unlocked subject for `kind`.
        pub fn new(kind: Kind) -> Subject {
            // SAFETY: no precondition; returns a fresh subject or NULL.
            let ptr = NonNull::new(unsafe { ksync_ck_new() }).expect("ksync_ck_new: out of memory");
            // INVARIANT: from ksync_ck_new, with its kind fixed for its life.
            Subject { ptr, kind }
        }

        /// `n` times: lock, increment the counter, unlock.
        #[inline]
        pub fn run(&self, n: u64) {
            let p = self.ptr.as_ptr();
            // SAFETY: `p` is a live subject (the invariant), and every thread
            // on it takes the lock of `self.kind` (the invariant), so the
            // counter is incremented under mutual exclusion.
            unsafe {
                match self.kind {
                    Kind::Fas => ksync_ck_fas_loop(p, n),
                    Kind::Ticket => ksync_ck_ticket_loop(p, n),
                    Kind::Mcs => ksync_ck_mcs_loop(p, n),
                }
            }
        }

        /// The counter: every increment of every finished `run`.
        #[cfg(test)]
        pub fn count(&mut self) -> u64 {
            // SAFETY: a live subject; `&mut self` proves no `run` is going on.
            unsafe { ksync_ck_count(self.ptr.as_ptr()) }
        }
    }

    impl Drop for Subject {
        fn drop(&mut self) {
            // SAFETY: from ksync_ck_new, freed once, here; no `run` can be
            // going on (`&mut self`).
            unsafe { ksync_ck_free(self.ptr.as_ptr()) };
        }
    }
}

/// A C peer this build left out, and why.
struct Skipped {
    /// The group whose rows it would add.
    group: &'static str,
    /// Which rows.
    rows: &'static str,
    /// The Debian package that would add them.
    package: &'static str,
    /// What build.rs found (`KSYNC_URCU_SKIPPED` / `KSYNC_CK_SKIPPED`).
    why: &'static str,
}

/// The C peers this build left out.
fn skipped() -> Vec<Skipped> {
    [
        (!cfg!(ksync_urcu)).then(|| Skipped {
            group: "rcu",
            rows: "liburcu (memb) read lock+unlock, synchronize_rcu, call_rcu + rcu_barrier",
            package: "liburcu-dev",
            why: option_env!("KSYNC_URCU_SKIPPED").unwrap_or("not built"),
        }),
        (!cfg!(ksync_ck)).then(|| Skipped {
            group: "spinlock",
            rows: "Concurrency Kit ck_spinlock_fas, _ticket, _mcs",
            package: "libck-dev",
            why: option_env!("KSYNC_CK_SKIPPED").unwrap_or("not built"),
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Prints, after the table (to stderr with `--json`), one line for each C
/// peer that this build skipped in the groups that ran, naming the package
/// that would add it.
pub fn print_skipped(ran: &[&str], to_stderr: bool) {
    for s in skipped().iter().filter(|s| ran.contains(&s.group)) {
        let remedy = if s.why.contains("KSYNC_NO_C_PEERS") {
            "unset KSYNC_NO_C_PEERS and rebuild".to_string()
        } else {
            format!(
                "install {0} and pkg-config (apt-get install {0} pkg-config), then rebuild",
                s.package
            )
        };
        let line = format!("{}: skipped {} rows ({}): {remedy}", s.group, s.rows, s.why);
        if to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The glibc wrappers count every increment under contention.
    #[test]
    fn pthread_wrappers_exclude() {
        let (m, rw) = (PthreadMutex::new(0), PthreadRwLock::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        m.with(|v| *v += 1);
                        rw.write();
                        assert!(rw.read() > 0);
                    }
                });
            }
        });
        let mut total = 0;
        m.with(|v| total = *v);
        assert_eq!((total, rw.read()), (40_000, 40_000));
    }

    /// liburcu's callbacks all run by rcu_barrier, and a grace period
    /// completes with another registered reader idle.
    #[cfg(ksync_urcu)]
    #[test]
    fn urcu_callbacks_and_grace_period() {
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = urcu::Reader::register();
                r.read_loop(1000);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::yield_now();
                }
            });
            let r = urcu::Reader::register();
            r.read_loop(1000);
            assert_eq!(r.call_rcu_batch(1000), 1000);
            urcu::synchronize_rcu();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }

    /// Each CK lock keeps every increment of 2 threads that start together.
    /// (Not more threads than this machine's 2 CPUs: the FIFO locks then
    /// hand the lock to waiters that are not running, and 4 threads of
    /// 20 000 took two minutes.)
    #[cfg(ksync_ck)]
    #[test]
    fn ck_spinlocks_exclude() {
        for kind in ck::Kind::ALL {
            let mut s = ck::Subject::new(kind);
            let start = std::sync::Barrier::new(2);
            std::thread::scope(|sc| {
                for _ in 0..2 {
                    sc.spawn(|| {
                        start.wait();
                        s.run(20_000)
                    });
                }
            });
            assert_eq!(s.count(), 40_000, "{}", kind.name());
        }
    }
}
