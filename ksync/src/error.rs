//! [`Error`]: why a ksync operation did not do what was asked.
//!
//! Operations that can be interrupted, killed or time out return
//! `Result<_, Error>`. [`Error::errno`] gives the value the kernel would have
//! returned (negative, as in `return -EINTR;`), so code ported from the kernel
//! can keep its checks.

use core::fmt;

/// Why an operation failed. Each variant maps to the kernel's errno value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// A signal arrived during an interruptible sleep (`-EINTR`). The primitive is
    /// left as if the call never happened.
    #[doc(alias = "EINTR")]
    Interrupted,
    /// A fatal signal (SIGKILL) arrived during a killable sleep. The kernel reports
    /// this as `-EINTR` too; ksync keeps it apart so callers can tell.
    Killed,
    /// The call would have had to restart after a signal (`-ERESTARTSYS`).
    #[doc(alias = "ERESTARTSYS")]
    RestartSys,
    /// The deadline passed before the operation could complete (`-ETIME`).
    #[doc(alias = "ETIME")]
    TimedOut,
    /// The resource is busy and the caller asked not to wait (`-EAGAIN`).
    #[doc(alias = "EAGAIN")]
    WouldBlock,
    /// Taking the lock would deadlock, as lockdep or an owner check found (`-EDEADLK`).
    #[doc(alias = "EDEADLK")]
    Deadlock,
    /// The lock is already held by this acquire context: a `ww_mutex` taken
    /// twice in one transaction (`-EALREADY`).
    #[doc(alias = "EALREADY")]
    AlreadyHeld,
    /// An argument is out of range (`-EINVAL`).
    #[doc(alias = "EINVAL")]
    InvalidArgument,
    /// The resource is already in use, e.g. an irq line already requested (`-EBUSY`).
    #[doc(alias = "EBUSY")]
    Busy,
    /// No such entry, e.g. freeing an irq that was never requested (`-ENOENT`).
    #[doc(alias = "ENOENT")]
    NotFound,
    /// The operation is not supported on this system (`-ENOSYS`).
    #[doc(alias = "ENOSYS")]
    Unsupported,
    /// Memory could not be allocated, e.g. a bitmap too large for the address
    /// space (`-ENOMEM`).
    #[doc(alias = "ENOMEM")]
    NoMemory,
    /// A system call failed with this errno (positive value as the OS reports it).
    Os(i32),
}

impl Error {
    /// The kernel's (negative) errno value for this error, e.g. `-4` for
    /// [`Error::Interrupted`] (`-EINTR`).
    ///
    /// ```
    /// assert_eq!(ksync::Error::Interrupted.errno(), -4); // -EINTR
    /// assert_eq!(ksync::Error::TimedOut.errno(), -62); // -ETIME
    /// ```
    pub const fn errno(self) -> i32 {
        match self {
            Error::Interrupted | Error::Killed => -errno::EINTR,
            Error::RestartSys => -512, // ERESTARTSYS: kernel-internal, never seen by user space.
            Error::TimedOut => -errno::ETIME,
            Error::WouldBlock => -errno::EAGAIN,
            Error::Deadlock => -errno::EDEADLK,
            Error::AlreadyHeld => -errno::EALREADY,
            Error::InvalidArgument => -errno::EINVAL,
            Error::Busy => -errno::EBUSY,
            Error::NotFound => -errno::ENOENT,
            Error::Unsupported => -errno::ENOSYS,
            Error::NoMemory => -errno::ENOMEM,
            Error::Os(e) => -e,
        }
    }

    /// The kernel's name for the errno, e.g. `"EINTR"`.
    pub const fn name(self) -> &'static str {
        match self {
            Error::Interrupted | Error::Killed => "EINTR",
            Error::RestartSys => "ERESTARTSYS",
            Error::TimedOut => "ETIME",
            Error::WouldBlock => "EAGAIN",
            Error::Deadlock => "EDEADLK",
            Error::AlreadyHeld => "EALREADY",
            Error::InvalidArgument => "EINVAL",
            Error::Busy => "EBUSY",
            Error::NotFound => "ENOENT",
            Error::Unsupported => "ENOSYS",
            Error::NoMemory => "ENOMEM",
            Error::Os(_) => "errno",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Error::Interrupted => "interrupted by a signal",
            Error::Killed => "interrupted by a fatal signal",
            Error::RestartSys => "interrupted by a signal; the call should be restarted",
            Error::TimedOut => "timed out",
            Error::WouldBlock => "resource busy; the call would block",
            Error::Deadlock => "resource deadlock would occur",
            Error::AlreadyHeld => "operation already in progress",
            Error::InvalidArgument => "invalid argument",
            Error::Busy => "device or resource busy",
            Error::NotFound => "no such entry",
            Error::Unsupported => "not supported on this system",
            Error::NoMemory => "out of memory",
            Error::Os(e) => {
                return write!(
                    f,
                    "system call failed: {} (errno {e})",
                    std::io::Error::from_raw_os_error(*e)
                );
            }
        };
        write!(f, "{what} (-{})", self.name())
    }
}

impl std::error::Error for Error {}

/// The kernel's error numbers (`include/uapi/asm-generic/errno-base.h` and
/// `errno.h`), which Linux uses on every architecture ksync builds for; `arch`
/// checks them against the C library's at compile time.
pub(crate) mod errno {
    /// Operation not permitted.
    pub(crate) const EPERM: i32 = 1;
    /// No such file or directory (no such entry).
    pub(crate) const ENOENT: i32 = 2;
    /// Interrupted system call.
    pub(crate) const EINTR: i32 = 4;
    /// Try again.
    pub(crate) const EAGAIN: i32 = 11;
    /// Device or resource busy.
    pub(crate) const EBUSY: i32 = 16;
    /// Invalid argument.
    pub(crate) const EINVAL: i32 = 22;
    /// Resource deadlock would occur.
    pub(crate) const EDEADLK: i32 = 35;
    /// Out of memory.
    pub(crate) const ENOMEM: i32 = 12;
    /// Function not implemented.
    pub(crate) const ENOSYS: i32 = 38;
    /// Timer expired.
    pub(crate) const ETIME: i32 = 62;
    /// Operation already in progress.
    pub(crate) const EALREADY: i32 = 114;
}

/// `Result<T, ksync::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn errno_values_are_the_kernels() {
        assert_eq!(Error::Interrupted.errno(), -4);
        assert_eq!(Error::Killed.errno(), -4);
        assert_eq!(Error::TimedOut.errno(), -62);
        assert_eq!(Error::WouldBlock.errno(), -11);
        assert_eq!(Error::Deadlock.errno(), -35);
        assert_eq!(Error::AlreadyHeld.errno(), -114);
        assert_eq!(Error::RestartSys.errno(), -512);
        assert_eq!(Error::Os(errno::EPERM).errno(), -1);
    }

    #[test]
    fn display_names_the_errno() {
        assert_eq!(
            Error::Interrupted.to_string(),
            "interrupted by a signal (-EINTR)"
        );
        assert_eq!(Error::TimedOut.to_string(), "timed out (-ETIME)");
        assert!(Error::Os(errno::EPERM).to_string().contains("errno 1"));
    }
}
