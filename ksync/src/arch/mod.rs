//! The machine: the only module that issues system calls or inline assembly.
//!
//! Everything above `arch` asks it for what the hardware and the Linux kernel
//! provide:
//!
//! - [`cpu_relax`]: the spin-wait hint (`pause` on x86-64, `yield`/`isb` on arm64).
//! - [`CachePadded`]: a value on a cache line of its own (128 bytes on x86-64 and
//!   arm64, where the adjacent-line prefetcher pulls lines in pairs).
//! - [`cpu_id`] and [`nr_cpu_ids`]: the CPU the calling thread runs on, read from
//!   the restartable-sequences area glibc registered (`rseq`), else from
//!   `sched_getcpu`; and the number of possible CPUs.
//! - [`futex`]: wait on and wake a 32-bit word (`FUTEX_WAIT_PRIVATE`,
//!   `FUTEX_WAKE_PRIVATE`), and the priority-inheriting operations
//!   ([`futex::pi`]: `FUTEX_LOCK_PI`, `FUTEX_WAIT_REQUEUE_PI` …).
//! - [`membarrier`]: the asymmetric fence pair — a compiler-only
//!   [`light_barrier`](membarrier::light_barrier) on fast paths, paid for by a
//!   process-wide [`heavy_barrier`](membarrier::heavy_barrier)
//!   (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`) on slow paths.
//! - [`signal`]: install a handler (`sigaction`), queue a signal with a value to
//!   a thread (`rt_tgsigqueueinfo`), unblock one (`pthread_sigmask`),
//!   `pthread_self`, `tgkill`, an errno guard and a stderr write for handlers.
//! - [`time`]: the monotonic clock ([`now_ns`](time::now_ns), `clock_gettime`).
//! - Scheduling: [`yield_now`] (`sched_yield`), [`set_affinity`] and
//!   [`set_thread_affinity`] (`sched_setaffinity`), [`thread_affinity`]
//!   (`sched_getaffinity`), [`gettid`]; the policy ([`sched`]:
//!   `sched_setscheduler`, `SCHED_FIFO`).
//!
//! The error numbers `Error::errno` returns are spelled out in `crate::error`
//! and checked against the C library's here, at compile time.

mod cache;
mod cpu;
mod errno;
pub mod futex;
pub mod membarrier;
#[cfg(not(loom))]
pub mod sched;
pub mod signal;
pub mod time;

pub use cache::CachePadded;
pub(crate) use cpu::cpu_id_fast;
pub use cpu::{cpu_id, cpu_id_syscall, nr_cpu_ids, online_cpus};

/// Tells the CPU the caller is busy-waiting (`cpu_relax()`): `pause` on x86-64,
/// which lets the sibling hyper-thread run and avoids the memory-order
/// mis-speculation penalty when the awaited store arrives.
#[inline(always)]
pub fn cpu_relax() {
    crate::loom::spin_loop();
}

/// Gives the CPU to another runnable thread (`sched_yield(2)`).
#[doc(alias = "sched_yield")]
#[doc(alias = "cond_resched")]
#[inline]
pub fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    rustix::thread::sched_yield();
}

/// The kernel thread id of the calling thread (`gettid(2)`).
#[inline]
pub fn gettid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// `pthread_atfork(prepare, parent, child)`: `prepare` runs on the forking
/// thread before every later `fork`, `parent` and `child` after it on each
/// side, `child` on the child's one thread. A child handler alone is for
/// state cached per thread that names the parent's thread; the three
/// together, for a lock that no thread may hold across a fork (`prepare`
/// takes it, the other two let go of it). Use [`at_fork!`] or
/// [`at_fork_child!`], which register before `main`.
#[cfg(not(loom))]
pub(crate) fn register_at_fork(
    prepare: Option<unsafe extern "C" fn()>,
    parent: Option<unsafe extern "C" fn()>,
    child: Option<unsafe extern "C" fn()>,
) {
    // SAFETY: registers handlers; each stays valid (a function item) for the
    // life of the process. It fails only for lack of memory, which leaves
    // them unregistered: the state they keep then outlives a fork, as it did
    // before.
    let _ = unsafe { libc::pthread_atfork(prepare, parent, child) };
}

thread_local! {
    /// How many locks that a `prepare` fork handler takes this thread holds
    /// or is taking (see [`ForkLockMark`]).
    static FORK_LOCKS: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

/// Marks the calling thread, from before it takes a lock that one of
/// ksync's `prepare` fork handlers also takes until after it lets go
/// ([`fork_lock_enter`] and [`fork_lock_exit`] for a lock without a guard).
///
/// A `prepare` handler that runs on a marked thread (a `fork` from a signal
/// handler that interrupted the thread there) must take none of its locks:
/// it could wait for the very section it interrupted. It then behaves as
/// without handlers (the child may inherit a lock held), which is better
/// than a parent that waits for itself. See [`holds_fork_lock`].
pub(crate) struct ForkLockMark(core::marker::PhantomData<*const ()>);

impl ForkLockMark {
    pub(crate) fn new() -> Self {
        fork_lock_enter();
        ForkLockMark(core::marker::PhantomData)
    }
}

impl Drop for ForkLockMark {
    fn drop(&mut self) {
        fork_lock_exit();
    }
}

/// Marks the calling thread as taking a fork-guarded lock (see
/// [`ForkLockMark`]); [`fork_lock_exit`] ends it. Async-signal-safe.
#[inline]
pub(crate) fn fork_lock_enter() {
    FORK_LOCKS.with(|n| n.set(n.get() + 1));
    // A signal handler on this thread sees the mark before the lock is taken.
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// Ends one [`fork_lock_enter`], after the lock is let go.
#[inline]
pub(crate) fn fork_lock_exit() {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    FORK_LOCKS.with(|n| n.set(n.get() - 1));
}

/// Whether the calling thread holds or is taking a fork-guarded lock (see
/// [`ForkLockMark`]): what a `prepare` handler asks first. The handlers'
/// own takes are not marked.
#[cfg(not(loom))]
pub(crate) fn holds_fork_lock() -> bool {
    FORK_LOCKS.with(|n| n.get() != 0)
}

/// A `std` mutex's guard with the calling thread marked ([`ForkLockMark`])
/// from before the lock is taken until after it is let go: for the locks a
/// `prepare` fork handler takes. See [`lock_marked`].
pub(crate) struct MarkedGuard<'a, T> {
    // Field order: the guard goes first, then the mark.
    guard: std::sync::MutexGuard<'a, T>,
    _mark: ForkLockMark,
}

/// Locks `m` (ignoring poison: the data of ksync's internal locks stays
/// consistent across a panic) with the fork mark.
pub(crate) fn lock_marked<T>(m: &std::sync::Mutex<T>) -> MarkedGuard<'_, T> {
    let mark = ForkLockMark::new();
    MarkedGuard {
        guard: m.lock().unwrap_or_else(|e| e.into_inner()),
        _mark: mark,
    }
}

impl<T> core::ops::Deref for MarkedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> core::ops::DerefMut for MarkedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// Registers `extern "C" fn()`s as `prepare`, `parent` and `child` handlers
/// of every `fork` ([`register_at_fork`]), from a constructor in
/// `.init_array`: before `main`, while the process has one thread, so that
/// no fork comes first. Nothing under loom.
macro_rules! at_fork {
    ($prepare:path, $parent:path, $child:path) => {
        $crate::arch::at_fork!(@register Some($prepare), Some($parent), Some($child));
    };
    (@register $prepare:expr, $parent:expr, $child:expr) => {
        #[cfg(not(loom))]
        const _: () = {
            #[used]
            #[unsafe(link_section = ".init_array")]
            static REGISTER: extern "C" fn() = {
                extern "C" fn register() {
                    $crate::arch::register_at_fork($prepare, $parent, $child);
                }
                register
            };
        };
    };
}
pub(crate) use at_fork;

/// [`at_fork!`] with a `child` handler only.
macro_rules! at_fork_child {
    ($child:path) => {
        $crate::arch::at_fork!(@register None, None, Some($child));
    };
}
pub(crate) use at_fork_child;

/// Forks; the child runs `check` and leaves with its verdict (`_exit`),
/// which this returns. For tests of what a forked child sees: `check` must
/// do only what a fork of a multithreaded process allows (no locks another
/// thread may have held, no allocation).
#[cfg(all(test, not(loom)))]
pub(crate) fn forked_child_passes(check: fn() -> bool) -> bool {
    // SAFETY: the child runs `check` (restricted as documented) and leaves
    // with `_exit`, running no destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = check();
        // SAFETY: as above.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is ours.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Restricts thread `tid` of this process (0: the calling thread) to the CPUs in
/// `cpus` (`sched_setaffinity(tid, cpus)`), as the kernel's torture framework
/// moves its threads between CPUs.
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an empty set, a
/// CPU beyond `CPU_SETSIZE`, or a set with no CPU the thread may run on;
/// [`Error::NotFound`](crate::Error::NotFound) if the thread has exited; the
/// error of the system call otherwise.
pub fn set_thread_affinity(tid: i32, cpus: &[usize]) -> crate::error::Result<()> {
    if cpus.is_empty() || cpus.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
        return Err(crate::error::Error::InvalidArgument);
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes bits
    // inside it (each checked in range above); sched_setaffinity reads it.
    let r = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set)
    };
    if r == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::EINVAL => Err(crate::error::Error::InvalidArgument),
        libc::ESRCH => Err(crate::error::Error::NotFound),
        e => Err(crate::error::Error::Os(e)),
    }
}

/// The CPUs thread `tid` of this process (0: the calling thread) may run on
/// (`sched_getaffinity`), in increasing order.
///
/// # Errors
/// [`Error::NotFound`](crate::Error::NotFound) if the thread has exited; the
/// error of the system call otherwise.
pub fn thread_affinity(tid: i32) -> crate::error::Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set for sched_getaffinity to
    // fill; CPU_ISSET reads bits inside it (i < CPU_SETSIZE).
    let (r, set) = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        let r = libc::sched_getaffinity(tid, size_of::<libc::cpu_set_t>(), &mut set);
        (r, set)
    };
    if r != 0 {
        return match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
            libc::ESRCH => Err(crate::error::Error::NotFound),
            e => Err(crate::error::Error::Os(e)),
        };
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below CPU_SETSIZE; `set` is an initialised cpu_set_t.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect())
}

/// Pins the calling thread to CPU `cpu` (`sched_setaffinity(0, {cpu})`).
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a CPU outside
/// the set this thread may run on, or beyond `CPU_SETSIZE`; the error of the
/// system call otherwise.
pub fn set_affinity(cpu: usize) -> crate::error::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(crate::error::Error::InvalidArgument);
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes bit `cpu`
    // inside it (checked in range above); sched_setaffinity reads it.
    let r = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if r == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::EINVAL => Err(crate::error::Error::InvalidArgument),
        e => Err(crate::error::Error::Os(e)),
    }
}
