//! The error numbers: `crate::error` spells the kernel's values out, this file
//! checks them against the C library's at compile time and converts `rustix`'s
//! error type.

use crate::error::{Error, errno};

const _: () = {
    assert!(errno::EPERM == libc::EPERM);
    assert!(errno::ENOENT == libc::ENOENT);
    assert!(errno::EINTR == libc::EINTR);
    assert!(errno::EAGAIN == libc::EAGAIN);
    assert!(errno::EBUSY == libc::EBUSY);
    assert!(errno::EINVAL == libc::EINVAL);
    assert!(errno::EDEADLK == libc::EDEADLK);
    assert!(errno::ENOSYS == libc::ENOSYS);
    assert!(errno::ENOMEM == libc::ENOMEM);
    assert!(errno::ETIME == libc::ETIME);
    assert!(errno::EALREADY == libc::EALREADY);
};

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Os(e.raw_os_error())
    }
}
