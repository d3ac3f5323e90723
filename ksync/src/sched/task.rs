//! The task: ksync's `struct task_struct` for one thread.
//!
//! [`current()`] returns a handle to the calling thread's task; handles can be
//! sent to other threads, which use them to wake the task ([`Task::wake_up`]) or
//! send it signals ([`Task::send_signal`]). The task's shared part is allocated
//! once, on the thread's first use of anything that needs it, and freed when the
//! thread has exited and the last handle is dropped.
//!
//! Hot per-thread state (the preempt count, irq flags, RCU nesting, held locks)
//! lives in const-initialised thread-locals of the modules that own it, which
//! signal handlers may read; this shared part is touched only on sleep, wake
//! and signal paths.

use super::signal_types::{Signal, SignalSet};
use crate::arch::signal::Pthread;
use crate::loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use core::cell::Cell;
use core::fmt;
use std::sync::Arc;

/// The state a sleeping task is in, as the kernel's `TASK_*` values: it decides
/// which events end the sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TaskState {
    /// Runnable (`TASK_RUNNING`).
    #[doc(alias = "TASK_RUNNING")]
    Running = 0,
    /// Sleeping; a pending signal ends the sleep with `-EINTR` (`TASK_INTERRUPTIBLE`).
    #[doc(alias = "TASK_INTERRUPTIBLE")]
    Interruptible = 1,
    /// Sleeping; signals do not end it (`TASK_UNINTERRUPTIBLE`).
    #[doc(alias = "TASK_UNINTERRUPTIBLE")]
    Uninterruptible = 2,
    /// Sleeping; only a fatal signal (SIGKILL) ends it (`TASK_KILLABLE`).
    #[doc(alias = "TASK_KILLABLE")]
    Killable = 3,
    /// The thread has exited (`TASK_DEAD`, `EXIT_DEAD`): reported by
    /// [`Task::state`] for a handle that outlived its thread. It is no state to
    /// sleep in; [`super::sleep`] given it sleeps as if `Uninterruptible`.
    #[doc(alias = "TASK_DEAD")]
    #[doc(alias = "EXIT_DEAD")]
    Dead = 4,
}

impl TaskState {
    fn from_u8(v: u8) -> TaskState {
        match v {
            1 => TaskState::Interruptible,
            2 => TaskState::Uninterruptible,
            3 => TaskState::Killable,
            4 => TaskState::Dead,
            _ => TaskState::Running,
        }
    }
}

/// Values of [`TaskInner::wake`], the word a sleeping task parks on.
pub(crate) mod wake_word {
    /// No wake-up pending and the task is not parked.
    pub(crate) const IDLE: u32 = 0;
    /// A wake-up arrived that the task has not yet consumed.
    pub(crate) const TOKEN: u32 = 1;
    /// The task is parked (or about to park) on the futex; a waker must call futex wake.
    pub(crate) const PARKED: u32 = 2;
}

pub(crate) struct TaskInner {
    /// The kernel thread id; set again in a forked child (its one thread is
    /// the forking thread's task, with a new id).
    pub(crate) tid: core::sync::atomic::AtomicI32,
    pub(crate) pthread: Pthread,
    pub(crate) name: Option<String>,
    /// The futex word the task sleeps on; see [`wake_word`].
    pub(crate) wake: AtomicU32,
    /// The [`TaskState`] while sleeping, `Running` otherwise.
    pub(crate) state: AtomicU8,
    /// Pending signals: bit `n` is signal number `n`.
    pub(crate) pending: AtomicU64,
    /// Set once the thread has exited.
    pub(crate) exited: AtomicBool,
}

/// A handle to a task (a thread), as `struct task_struct *`.
///
/// Cheap to clone and `Send + Sync`: any thread may wake the task or send it a
/// signal through it.
#[derive(Clone)]
pub struct Task {
    pub(crate) inner: Arc<TaskInner>,
}

struct CurrentSlot(Arc<TaskInner>);

impl Drop for CurrentSlot {
    fn drop(&mut self) {
        // try_with: under loom the pointer's slot may be destroyed first.
        let _ = CURRENT_PTR.try_with(|p| p.set(core::ptr::null()));
        self.0.exited.store(true, Ordering::Release);
    }
}

#[cfg(not(loom))]
thread_local! {
    static CURRENT: CurrentSlot = CurrentSlot(Arc::new(TaskInner::for_this_thread()));
    /// The same task as a raw pointer, const-initialised so that signal handlers can
    /// read it without lazy initialisation (not async-signal-safe). Null until the
    /// task is first created on this thread and after the thread began to exit.
    static CURRENT_PTR: Cell<*const TaskInner> = const { Cell::new(core::ptr::null()) };
}

// Under loom every model thread needs its own task: loom's thread-locals are per
// model thread, std's are per OS thread.
#[cfg(loom)]
loom::thread_local! {
    static CURRENT: CurrentSlot = CurrentSlot(Arc::new(TaskInner::for_this_thread()));
    static CURRENT_PTR: Cell<*const TaskInner> = Cell::new(core::ptr::null());
}

impl TaskInner {
    fn for_this_thread() -> TaskInner {
        let t = std::thread::current();
        TaskInner {
            tid: core::sync::atomic::AtomicI32::new(crate::arch::gettid()),
            pthread: crate::arch::signal::pthread_self(),
            name: t.name().map(str::to_owned),
            wake: AtomicU32::new(wake_word::IDLE),
            state: AtomicU8::new(TaskState::Running as u8),
            pending: AtomicU64::new(0),
            exited: AtomicBool::new(false),
        }
    }
}

// The child of every `fork` refreshes its task's id, before `main` runs.
crate::arch::at_fork_child!(refresh_tid);

/// The child of a `fork`: the task of its one thread (the forking thread's,
/// copied) takes the child's thread id, so that `raise_irq`, signals and
/// `Task::tid` name this thread and not the parent's.
#[cfg(not(loom))]
extern "C" fn refresh_tid() {
    if let Some(t) = current_from_handler() {
        t.tid.store(crate::arch::gettid(), Ordering::Relaxed);
    }
}

/// Runs `f` on the calling thread's task, creating it on first use.
///
/// # Panics
/// If called from a thread-local destructor after the task was torn down.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<TaskInner>) -> R) -> R {
    CURRENT.with(|slot| {
        if CURRENT_PTR.with(|p| p.get().is_null()) {
            CURRENT_PTR.with(|p| p.set(Arc::as_ptr(&slot.0)));
        }
        f(&slot.0)
    })
}

/// The current task as seen from a signal handler: `None` if the thread never
/// created its task (no ksync sleep or handle yet) or is exiting. Async-signal-safe.
#[cfg(not(loom))]
#[inline]
pub(crate) fn current_from_handler() -> Option<&'static TaskInner> {
    let p = CURRENT_PTR.try_with(|p| p.get()).ok()?;
    // SAFETY: CURRENT_PTR is non-null only while the thread's CURRENT slot holds the
    // Arc it points to; the slot is dropped (and the pointer cleared first) only at
    // thread exit, after which no handler runs on this thread's stack frames that
    // could still use the reference.
    unsafe { p.as_ref() }
}

/// The task of the calling thread (`current`).
///
/// ```
/// let me = ksync::sched::current();
/// assert_eq!(me.tid(), ksync::arch::gettid());
/// assert!(me.is_current());
/// ```
#[doc(alias = "get_current")]
pub fn current() -> Task {
    with_current(|t| Task { inner: t.clone() })
}

impl Task {
    /// The kernel thread id (`task_pid_nr`).
    pub fn tid(&self) -> i32 {
        self.inner.tid.load(Ordering::Relaxed)
    }

    /// The thread's name, if it has one (`comm`).
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The pthread handle, for delivering real signals to this thread.
    pub fn pthread(&self) -> Pthread {
        self.inner.pthread
    }

    /// Whether this is the calling thread's task.
    pub fn is_current(&self) -> bool {
        CURRENT_PTR.with(|p| p.get() == Arc::as_ptr(&self.inner))
    }

    /// Whether the thread has exited.
    pub fn has_exited(&self) -> bool {
        self.inner.exited.load(Ordering::Acquire)
    }

    /// The task's state: [`TaskState::Dead`] once the thread has exited,
    /// [`TaskState::Running`] unless it is in [`super::sleep`].
    pub fn state(&self) -> TaskState {
        if self.has_exited() {
            return TaskState::Dead;
        }
        TaskState::from_u8(self.inner.state.load(Ordering::Relaxed))
    }

    /// Wakes the task if it sleeps, or makes its next [`super::sleep`] return at
    /// once (`wake_up_process`). Returns whether it was parked.
    #[doc(alias = "wake_up_process")]
    #[inline]
    pub fn wake_up(&self) -> bool {
        self.inner.wake_up()
    }

    /// Makes `sig` pending for the task and wakes it from an interruptible sleep
    /// (from a killable one too, for SIGKILL) — `send_sig`.
    #[doc(alias = "send_sig")]
    #[doc(alias = "kill_pid")]
    pub fn send_signal(&self, sig: Signal) {
        self.inner.signal(sig);
    }

    /// The signals pending for the task.
    pub fn pending_signals(&self) -> SignalSet {
        SignalSet::from_bits(self.inner.pending.load(Ordering::SeqCst))
    }

    /// Whether two handles name the same task.
    pub fn same_as(&self, other: &Task) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl TaskInner {
    /// Makes `sig` pending and wakes the task if its sleep ends on it: the body of
    /// [`Task::send_signal`], also run by the real-signal handler
    /// (async-signal-safe: atomics and at most one futex wake).
    pub(crate) fn signal(&self, sig: Signal) {
        self.pending
            .fetch_or(1u64 << sig.number(), Ordering::SeqCst);
        // SeqCst fence, paired with the one after the state store in
        // `sched::sleep` (store-buffering): either we see its sleeping state here,
        // or it sees our bit.
        crate::loom::sync::atomic::fence(Ordering::SeqCst);
        let wakes = match TaskState::from_u8(self.state.load(Ordering::SeqCst)) {
            TaskState::Interruptible => true,
            TaskState::Killable => sig.is_fatal(),
            TaskState::Uninterruptible | TaskState::Running | TaskState::Dead => false,
        };
        if wakes {
            self.wake_up();
        }
    }

    #[inline]
    pub(crate) fn wake_up(&self) -> bool {
        // Release: what the waker did before waking is visible to the task after it
        // consumes the token (Acquire swap in `sleep`).
        if self.wake.swap(wake_word::TOKEN, Ordering::SeqCst) == wake_word::PARKED {
            crate::arch::futex::wake_one(&self.wake);
            true
        } else {
            false
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("tid", &self.tid())
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .field("pending", &self.pending_signals())
            .finish()
    }
}

impl PartialEq for Task {
    fn eq(&self, other: &Task) -> bool {
        self.same_as(other)
    }
}
impl Eq for Task {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A forked child's task is its own thread's: its id is the child's (the
    /// parent's is not in the child's thread group, so `raise_irq` and
    /// signals at the task would fail).
    #[test]
    fn a_forked_childs_current_task_has_the_childs_id() {
        static PARENT: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);
        PARENT.store(current().tid(), Ordering::Relaxed);
        // The child reads its task's id (`current` finds the task already
        // made, so it does not allocate) and `gettid`.
        assert!(crate::arch::forked_child_passes(|| {
            let t = current_from_handler().map(|t| t.tid.load(Ordering::Relaxed));
            t == Some(crate::arch::gettid()) && t != Some(PARENT.load(Ordering::Relaxed))
        }));
        assert_eq!(current().tid(), PARENT.load(Ordering::Relaxed));
    }

    #[test]
    fn an_exited_thread_reports_dead() {
        let t = std::thread::spawn(current).join().unwrap();
        assert!(t.has_exited());
        assert_eq!(t.state(), TaskState::Dead);
        assert_eq!(current().state(), TaskState::Running);
    }
}
