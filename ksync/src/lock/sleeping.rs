//! The sleeping side of the generic lock: a backend whose waits go through
//! `sched::sleep` ([`SleepingBackend`], and [`SleepingSharedBackend`] for its
//! readers) can be taken interruptibly or killably, and every such lock gets
//! the kernel's `_interruptible`/`_killable` entry points from here, once:
//! [`Mutex`](crate::mutex::Mutex) (`mutex_lock_interruptible`) and
//! [`RwSemaphore`](crate::rwsem::RwSemaphore) (`down_read_killable`, …) alike.
//!
//! Each entry point is the shared acquire path of [`Lock`] (lockdep `acquire`
//! before the wait, lockdep `release` again if the wait fails) around the
//! backend's fallible sleep, so an interrupted or killed wait leaves the lock
//! and lockdep's held-lock stack as if the call never happened.

use super::{Guard, Lock, ReadGuard, SharedBackend};
use crate::error::Result;
use crate::sched::TaskState;

/// A [`Backend`](super::Backend) whose waits sleep through `sched::sleep` in a
/// chosen [`TaskState`], so a signal can end them.
///
/// # Safety
/// Besides [`Backend`](super::Backend)'s contract: `lock_sleeping` returning
/// `Ok` has acquired the lock exactly as [`Backend::lock`](super::Backend::lock)
/// does; returning `Err` has left the lock as if the call never happened (no
/// unit, hand-off or waiter bit lost or left behind).
pub unsafe trait SleepingBackend: super::Backend {
    /// Acquires the lock, sleeping in `state` while it waits.
    ///
    /// # Errors
    /// [`Error::Interrupted`](crate::Error::Interrupted) or
    /// [`Error::Killed`](crate::Error::Killed) when a signal ends the sleep, as
    /// `state` allows (`sched::sleep`'s rules).
    fn lock_sleeping(&self, state: TaskState) -> Result<()>;
}

/// A [`SharedBackend`] whose shared (reader) waits also sleep through
/// `sched::sleep`.
///
/// # Safety
/// As [`SleepingBackend`], for `lock_shared_sleeping` and
/// [`SharedBackend::lock_shared`].
pub unsafe trait SleepingSharedBackend: SharedBackend + SleepingBackend {
    /// Acquires a shared lock, sleeping in `state` while it waits.
    ///
    /// # Errors
    /// As [`SleepingBackend::lock_sleeping`].
    fn lock_shared_sleeping(&self, state: TaskState) -> Result<()>;
}

impl<T: ?Sized, B: SleepingBackend> Lock<T, B> {
    /// Locks, or returns [`Error::Interrupted`](crate::Error::Interrupted)
    /// (`-EINTR`) if a signal is sent to the task while it sleeps; the lock is
    /// then left untouched (`mutex_lock_interruptible`; on a rw-semaphore the
    /// write side, `down_write_interruptible`).
    ///
    /// # Errors
    /// [`Error::Interrupted`](crate::Error::Interrupted), or
    /// [`Error::Killed`](crate::Error::Killed) for SIGKILL.
    ///
    /// ```
    /// use ksync::mutex::Mutex;
    /// let m = Mutex::new(1);
    /// assert_eq!(*m.lock_interruptible().unwrap(), 1);
    /// ```
    #[doc(alias = "mutex_lock_interruptible")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_interruptible(&self) -> Result<Guard<'_, T, B>> {
        self.lock_with(|b| b.lock_sleeping(TaskState::Interruptible))
    }

    /// Locks, or returns [`Error::Killed`](crate::Error::Killed) if SIGKILL is
    /// sent while it sleeps (`mutex_lock_killable`; on a rw-semaphore the write
    /// side, `down_write_killable`).
    ///
    /// # Errors
    /// [`Error::Killed`](crate::Error::Killed).
    #[doc(alias = "mutex_lock_killable")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock_killable(&self) -> Result<Guard<'_, T, B>> {
        self.lock_with(|b| b.lock_sleeping(TaskState::Killable))
    }
}

impl<T: ?Sized, B: SharedBackend> Lock<T, B> {
    /// [`read`](Lock::read) with a lockdep subclass (`down_read_nested`), for two
    /// locks of one lock class taken nested; ignored without the feature.
    #[doc(alias = "down_read_nested")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn read_nested(&self, subclass: u32) -> ReadGuard<'_, T, B> {
        self.read_in(subclass)
    }

    /// [`write`](Lock::write) with a lockdep subclass (`down_write_nested`), for
    /// two locks of one lock class taken nested; ignored without the feature.
    #[doc(alias = "down_write_nested")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn write_nested(&self, subclass: u32) -> Guard<'_, T, B> {
        self.lock_in(subclass)
    }
}

impl<T: ?Sized, B: SleepingSharedBackend> Lock<T, B> {
    /// Takes it for reading, or returns
    /// [`Error::Interrupted`](crate::Error::Interrupted) if a signal arrives while
    /// it sleeps (`down_read_interruptible`).
    ///
    /// # Errors
    /// [`Error::Interrupted`](crate::Error::Interrupted),
    /// [`Error::Killed`](crate::Error::Killed).
    ///
    /// ```
    /// use ksync::rwsem::RwSemaphore;
    /// let s = RwSemaphore::new(3);
    /// assert_eq!(*s.read_interruptible().unwrap(), 3);
    /// ```
    #[doc(alias = "down_read_interruptible")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn read_interruptible(&self) -> Result<ReadGuard<'_, T, B>> {
        self.read_with(|b| b.lock_shared_sleeping(TaskState::Interruptible))
    }

    /// Takes it for reading, or returns [`Error::Killed`](crate::Error::Killed)
    /// on SIGKILL (`down_read_killable`).
    ///
    /// # Errors
    /// [`Error::Killed`](crate::Error::Killed).
    #[doc(alias = "down_read_killable")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn read_killable(&self) -> Result<ReadGuard<'_, T, B>> {
        self.read_with(|b| b.lock_shared_sleeping(TaskState::Killable))
    }

    /// [`lock_interruptible`](Lock::lock_interruptible) under the writer's name
    /// (`down_write_interruptible`).
    ///
    /// # Errors
    /// As `lock_interruptible`.
    #[doc(alias = "down_write_interruptible")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn write_interruptible(&self) -> Result<Guard<'_, T, B>> {
        self.lock_interruptible()
    }

    /// [`lock_killable`](Lock::lock_killable) under the writer's name
    /// (`down_write_killable`).
    ///
    /// # Errors
    /// As `lock_killable`.
    #[doc(alias = "down_write_killable")]
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn write_killable(&self) -> Result<Guard<'_, T, B>> {
        self.lock_killable()
    }
}
