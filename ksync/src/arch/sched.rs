//! Scheduling policy of the calling thread (`sched_setscheduler(2)`,
//! `sched_getscheduler(2)`): what real-time programs set, and what the
//! priority-inheritance tests of [`RtMutex`](crate::rtmutex::RtMutex) need.

use crate::error::{Error, Result};

/// A thread's scheduling policy and its static priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_OTHER`: the default time-sharing policy (priority 0).
    Other,
    /// `SCHED_FIFO` at a priority in `1..=99`: runs until it blocks, yields or
    /// a higher priority preempts it.
    Fifo(u8),
    /// `SCHED_RR` at a priority in `1..=99`: `SCHED_FIFO` with a time slice.
    RoundRobin(u8),
    /// `SCHED_BATCH`, `SCHED_IDLE` or another policy, by number.
    OtherPolicy(i32),
}

/// Sets the calling thread's policy (`sched_setscheduler(0, …)`: on Linux the
/// calling thread, not the process).
///
/// # Errors
/// [`Error::Os`]`(EPERM)` when the caller may not use real-time scheduling
/// (no `CAP_SYS_NICE`, `RLIMIT_RTPRIO` 0, or a cgroup without real-time
/// runtime); [`Error::InvalidArgument`] for a priority out of range.
#[doc(alias = "sched_setscheduler")]
pub fn set_policy(policy: Policy) -> Result<()> {
    let (pol, prio) = match policy {
        Policy::Other => (libc::SCHED_OTHER, 0),
        Policy::Fifo(p) => (libc::SCHED_FIFO, p as i32),
        Policy::RoundRobin(p) => (libc::SCHED_RR, p as i32),
        Policy::OtherPolicy(p) => (p, 0),
    };
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: `param` is a valid sched_param that the call only reads; pid 0
    // names the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, pol, &param) };
    if r == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::EINVAL => Err(Error::InvalidArgument),
        e => Err(Error::Os(e)),
    }
}

/// The calling thread's policy and priority (`sched_getscheduler(0)`,
/// `sched_getparam(0)`).
#[doc(alias = "sched_getscheduler")]
pub fn policy() -> Policy {
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; sched_getparam writes the one
    // field of `param`, a valid, owned sched_param.
    let (pol, r) = unsafe {
        (
            libc::sched_getscheduler(0),
            libc::sched_getparam(0, &mut param),
        )
    };
    let prio = if r == 0 { param.sched_priority } else { 0 };
    match pol {
        libc::SCHED_OTHER => Policy::Other,
        libc::SCHED_FIFO => Policy::Fifo(prio as u8),
        libc::SCHED_RR => Policy::RoundRobin(prio as u8),
        p => Policy::OtherPolicy(p),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_round_trips() {
        std::thread::spawn(|| {
            assert!(matches!(policy(), Policy::Other | Policy::OtherPolicy(_)));
            assert_eq!(set_policy(Policy::Fifo(0)), Err(Error::InvalidArgument));
            set_policy(Policy::Other).unwrap();
            assert_eq!(policy(), Policy::Other);
        })
        .join()
        .unwrap();
    }
}

/// How many times thread `tid` of this process has gone to sleep so far (its
/// voluntary context switches, from `/proc/self/task/<tid>/status`). The
/// tests use it to check that a waiter sleeps through, woken by nothing.
#[cfg(all(test, not(loom)))]
pub(crate) fn voluntary_switches(tid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .expect("/proc/self/task/<tid>/status is readable");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("the status names the voluntary context switches")
}
