//! A fork while another thread is inside the validator's locked state: the
//! child's lockdep must not wait for that thread, which the child has not
//! got. Alone in its binary (another test's thread could hold some other lock
//! the child needs). Needs the `lockdep` feature.
#![cfg(feature = "lockdep")]

use ksync::spinlock::SpinLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// One thread keeps taking both of the validator's `std` locks (`reset`
/// takes the state's, `take_reports` the reports'), while the main thread
/// forks again and again; each child registers a new lock class, takes the
/// lock (the state's lock) and collects its reports (the reports' lock). With
/// the locks left as the fork found them, a child that forked while the
/// other thread held one would wait for ever; an alarm turns that into a
/// failure.
#[test]
fn a_forked_child_finds_lockdep_free() {
    let stop = AtomicBool::new(false);
    /// Stops the other thread however the loop below ends (a failed
    /// assertion too: the scope waits for it before the panic goes on).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                ksync::lockdep::reset();
                let _ = ksync::lockdep::take_reports();
            }
        });
        let _stop = Stop(&stop);
        for _ in 0..100 {
            // SAFETY: the child uses only ksync (prepared for the fork by its
            // handlers) and leaves with `_exit`.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                // SAFETY: a hang becomes SIGALRM's death: a failure.
                unsafe { libc::alarm(10) };
                let l = SpinLock::new(0u32); // a class of its own (this site)
                *l.lock() += 1;
                let none = ksync::lockdep::take_reports().is_empty();
                // SAFETY: leaves without the parent's destructors.
                unsafe { libc::_exit(if none { 0 } else { 1 }) };
            }
            let mut status = 0;
            // SAFETY: waits for the child forked above.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "a child failed (status {status:#x})"
            );
        }
    });
}
