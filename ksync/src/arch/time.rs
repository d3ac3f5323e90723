//! The monotonic clock (`CLOCK_MONOTONIC`).

/// `CLOCK_MONOTONIC` in nanoseconds: `clock_gettime`, a vDSO call (no system
/// call). Async-signal-safe.
#[inline]
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(all(test, not(loom)))]
mod tests {
    #[test]
    fn monotonic() {
        let a = super::now_ns();
        let b = super::now_ns();
        assert!(a > 0 && b >= a);
    }
}
