//! POSIX signals: install a handler (`sigaction`), queue a signal with a value
//! to one thread (`rt_tgsigqueueinfo`), unblock one (`pthread_sigmask`), the
//! thread handle (`pthread_self`), an errno guard for handlers, and a write to
//! stderr that a handler may do.
//!
//! `irq` carries interrupts on a real-time signal queued with a value; `sched`
//! turns UNIX signals into pending ksync signals. Both install their handlers
//! here. Everything a signal handler calls here is async-signal-safe
//! (`signal-safety(7)`): `getpid`, `pthread_sigmask`, `write`, errno access.

use core::ffi::c_void;

use crate::error::{Error, Result};

/// A thread's pthread handle (`pthread_t`), for delivering real signals to it
/// with `pthread_kill`.
pub type Pthread = libc::pthread_t;

/// The handle of the calling thread (`pthread_self()`).
#[inline]
pub fn pthread_self() -> Pthread {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}

/// The kernel's `siginfo_t`, as a handler installed with
/// [`install_info_handler`] receives it.
pub(crate) type SigInfo = libc::siginfo_t;

/// A handler that receives the signal's `siginfo_t` (`SA_SIGINFO`).
pub(crate) type InfoHandler = extern "C" fn(i32, *mut SigInfo, *mut c_void);

/// The lowest real-time signal number (`SIGRTMIN`, after glibc's reserved ones).
pub(crate) fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

/// The highest real-time signal number (`SIGRTMAX`).
pub(crate) fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// The error of the system call that just failed (`errno`).
fn last_os_error() -> Error {
    Error::Os(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// A signal's disposition as `sigaction` returned it, to put back later with
/// [`restore_action`].
#[cfg(not(loom))]
#[derive(Clone, Copy)]
pub(crate) struct SavedAction(libc::sigaction);

/// Whether the program installed a handler for `signo` (its disposition is
/// neither `SIG_DFL` nor `SIG_IGN`).
///
/// # Errors
/// The error of `sigaction` (an invalid signal number).
pub(crate) fn has_handler(signo: i32) -> Result<bool> {
    // SAFETY: a zeroed sigaction is a valid out-parameter; sigaction with a
    // null new action only reads the old one into it.
    let old = unsafe {
        let mut old: libc::sigaction = core::mem::zeroed();
        if libc::sigaction(signo, core::ptr::null(), &mut old) != 0 {
            return Err(last_os_error());
        }
        old
    };
    Ok(old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN)
}

/// Installs `handler` for `signo` with `SA_SIGINFO | SA_RESTART`, every other
/// signal blocked while it runs except the synchronous faults (`SIGSEGV`,
/// `SIGBUS`, `SIGFPE`, `SIGILL`, `SIGTRAP`, `SIGABRT`: blocking them would turn
/// a crash into a hang). Without `SA_NODEFER`, so `signo` itself is blocked
/// while the handler starts.
///
/// # Errors
/// The error of `sigaction`.
pub(crate) fn install_info_handler(signo: i32, handler: InfoHandler) -> Result<()> {
    // SAFETY: the action is fully initialised (zeroed, then every field used
    // set, the mask by sigfillset/sigdelset); the handler is an `extern "C"` fn
    // of the SA_SIGINFO signature.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigfillset(&mut sa.sa_mask);
        for s in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGABRT,
        ] {
            libc::sigdelset(&mut sa.sa_mask, s);
        }
        if libc::sigaction(signo, &sa, core::ptr::null_mut()) != 0 {
            return Err(last_os_error());
        }
    }
    Ok(())
}

/// Installs `handler` for `signo` without `SA_RESTART` (a thread parked in
/// `futex_wait` returns with `EINTR`) and with an empty mask; returns the
/// disposition it replaced.
///
/// # Errors
/// The error of `sigaction` (an invalid number, SIGKILL, SIGSTOP).
#[cfg(not(loom))]
pub(crate) fn install_handler(signo: i32, handler: extern "C" fn(i32)) -> Result<SavedAction> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the
    // mask is initialised by sigemptyset, the handler set; `old` is a valid
    // out-parameter.
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = handler as usize;
        act.sa_flags = 0;
        libc::sigemptyset(&mut act.sa_mask);
        let mut old: libc::sigaction = core::mem::zeroed();
        if libc::sigaction(signo, &act, &mut old) != 0 {
            return Err(last_os_error());
        }
        Ok(SavedAction(old))
    }
}

/// Puts back a disposition that [`install_handler`] replaced.
///
/// # Errors
/// The error of `sigaction`.
#[cfg(not(loom))]
pub(crate) fn restore_action(signo: i32, old: &SavedAction) -> Result<()> {
    // SAFETY: `old` was returned by sigaction (for this signal), so it is a
    // valid action.
    if unsafe { libc::sigaction(signo, &old.0, core::ptr::null_mut()) } != 0 {
        return Err(last_os_error());
    }
    Ok(())
}

/// `si_code` of a signal sent with `sigqueue`/`rt_tgsigqueueinfo`.
const SI_QUEUE: i32 = -1;

/// `siginfo_t` as the kernel lays it out for `SI_QUEUE` on 64-bit Linux.
#[repr(C)]
struct QueueInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u64; 12],
}
const _: () = assert!(core::mem::size_of::<QueueInfo>() == 128);
const _: () = assert!(core::mem::size_of::<SigInfo>() == 128);

/// Queues `signo` with the value `value` (`si_value`) to thread `tid` of this
/// process (`rt_tgsigqueueinfo(2)`, `si_code` `SI_QUEUE`). Real-time signals
/// queue one entry per send. Async-signal-safe.
///
/// (A raw system call because `pthread_sigqueue` would dereference a pthread
/// handle, which is freed once the thread is joined; a tid is just a number.)
///
/// # Errors
/// - [`Error::WouldBlock`]: the kernel's queue of pending signals is full
///   (`EAGAIN`, `RLIMIT_SIGPENDING`);
/// - [`Error::NotFound`]: no such thread (`ESRCH`);
/// - [`Error::Os`] otherwise.
pub(crate) fn queue_to_thread(tid: i32, signo: i32, value: u64) -> Result<()> {
    // SAFETY: getpid/getuid have no preconditions and are async-signal-safe.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    let info = QueueInfo {
        signo,
        errno: 0,
        code: SI_QUEUE,
        _pad: 0,
        pid,
        uid,
        value,
        _rest: [0; 12],
    };
    // SAFETY: rt_tgsigqueueinfo reads a 128-byte siginfo from a valid pointer;
    // the thread group is ours, so only a thread of this process can be
    // signalled.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            tid,
            signo,
            &info as *const QueueInfo,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // SAFETY: errno is thread-local; reading it is always sound.
    match unsafe { *libc::__errno_location() } {
        libc::EAGAIN => Err(Error::WouldBlock),
        libc::ESRCH => Err(Error::NotFound),
        e => Err(Error::Os(e)),
    }
}

/// The value a signal carries if this process queued it with
/// [`queue_to_thread`] (`si_code` `SI_QUEUE`, `si_pid` ours); `None` for any
/// other sender. Async-signal-safe.
///
/// # Safety
/// `info` points to a valid `siginfo_t`, as the kernel passes it to an
/// `SA_SIGINFO` handler.
pub(crate) unsafe fn queued_value(info: *const SigInfo) -> Option<u64> {
    // SAFETY: the caller passes a valid 128-byte siginfo; `QueueInfo` is its
    // SI_QUEUE layout, of the same size.
    let q = unsafe { &*(info as *const QueueInfo) };
    // SAFETY: getpid has no preconditions.
    let ours = q.code == SI_QUEUE && q.pid == unsafe { libc::getpid() };
    ours.then_some(q.value)
}

/// Unblocks `signo` for the calling thread (`pthread_sigmask(SIG_UNBLOCK)`).
/// In a handler, `sigreturn` restores the interrupted code's mask afterwards.
/// Async-signal-safe.
pub(crate) fn unblock(signo: i32) {
    // SAFETY: the set is initialised by sigemptyset before use; pthread_sigmask
    // is async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
    }
}

/// Adds `signo` to the signal mask that the code a handler interrupted gets
/// back when the handler returns (the `uc_sigmask` that `rt_sigreturn`
/// restores), so the signal stays blocked there until that code unblocks it.
/// Async-signal-safe (a store into the handler's own frame).
///
/// # Safety
/// `uc` is the `ucontext_t` pointer the kernel passed to the running
/// `SA_SIGINFO` handler, and the handler has not returned.
pub(crate) unsafe fn block_on_return(uc: *mut c_void, signo: i32) {
    // SAFETY: the caller passes the live ucontext of the running handler; the
    // kernel reads its `uc_sigmask` back at sigreturn. sigaddset writes one bit
    // of that initialised set.
    unsafe {
        let uc = uc as *mut libc::ucontext_t;
        libc::sigaddset(&mut (*uc).uc_sigmask, signo);
    }
}

/// Sends `signo` to thread `tid` of this process (`tgkill(2)`).
///
/// # Errors
/// [`Error::NotFound`] for a thread that does not exist (`ESRCH`),
/// [`Error::InvalidArgument`] for a bad signal number; [`Error::Os`] otherwise.
pub fn tgkill(tid: i32, signo: i32) -> Result<()> {
    // SAFETY: tgkill takes plain numbers; the thread group is ours, so only a
    // thread of this process can be signalled.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, signo) };
    if r == 0 {
        return Ok(());
    }
    // SAFETY: errno is thread-local; reading it is always sound.
    match unsafe { *libc::__errno_location() } {
        libc::ESRCH => Err(Error::NotFound),
        libc::EINVAL => Err(Error::InvalidArgument),
        e => Err(Error::Os(e)),
    }
}

/// Saves the calling thread's `errno` and puts it back when dropped, so that
/// a signal handler's system calls never change what the interrupted code
/// sees. Async-signal-safe.
pub(crate) struct ErrnoGuard {
    saved: i32,
    /// `!Send`: errno is per thread.
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl ErrnoGuard {
    /// Saves errno now.
    #[inline]
    pub(crate) fn save() -> ErrnoGuard {
        // SAFETY: __errno_location returns this thread's errno slot; always valid.
        let saved = unsafe { *libc::__errno_location() };
        ErrnoGuard {
            saved,
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for ErrnoGuard {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: __errno_location returns this thread's errno slot; always valid.
        unsafe { *libc::__errno_location() = self.saved };
    }
}

/// Writes `msg` to standard error with one `write(2)`, ignoring errors.
/// Async-signal-safe, unlike `eprintln!` (which takes a lock and may allocate).
pub(crate) fn write_stderr(msg: &[u8]) {
    // SAFETY: `msg` is a valid buffer of `msg.len()` bytes; fd 2 may be closed,
    // in which case write fails harmlessly.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn errno_guard_restores() {
        // SAFETY: this thread's errno slot.
        unsafe { *libc::__errno_location() = 7 };
        {
            let _g = ErrnoGuard::save();
            // SAFETY: as above.
            unsafe { *libc::__errno_location() = 99 };
        }
        // SAFETY: as above.
        assert_eq!(unsafe { *libc::__errno_location() }, 7);
    }

    #[test]
    fn real_time_range_is_sane() {
        assert!(sigrtmin() >= 32 && sigrtmin() < sigrtmax());
    }

    #[test]
    fn tgkill_to_a_missing_thread_is_not_found() {
        // Signal 0 checks existence only; tid i32::MAX is never a thread of ours.
        assert_eq!(tgkill(i32::MAX, 0), Err(Error::NotFound));
        assert_eq!(tgkill(crate::arch::gettid(), 0), Ok(()));
    }
}
