//! RCU across a fork without exec: `rcu_before_fork`, `rcu_after_fork_parent`
//! and `rcu_after_fork_child`. Alone in its test binary, so that the only
//! threads at the fork are the ones the test made (another test's thread
//! could hold a lock the child needs, lockdep's included).

use ksync::rcu::{
    call_rcu, rcu_after_fork_child, rcu_after_fork_parent, rcu_barrier, rcu_before_fork,
    rcu_read_lock, synchronize_rcu,
};
use ksync::sched::{TaskState, current};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

static CHILD_CB_RAN: AtomicBool = AtomicBool::new(false);

/// Forks after `rcu_before_fork` while another thread sits in a read-side
/// section, a third waits in `synchronize_rcu` (its entry queued, blocked
/// on the grace-period lock) and a callback is queued: the child's grace
/// periods, callbacks and barrier all complete (each of the three would
/// hang it otherwise: the reader's record, the queued caller, the missing
/// worker; an alarm turns a hang into a failure), and the
/// parent's go on once it lets go.
#[test]
fn a_forked_child_has_working_rcu_and_the_parent_goes_on() {
    CHILD_CB_RAN.store(false, Ordering::Relaxed);
    // A registered reader, which enters its section once the fork is prepared.
    let (registered_tx, registered_rx) = mpsc::channel::<()>();
    let (enter_tx, enter_rx) = mpsc::channel::<()>();
    let (inside_tx, inside_rx) = mpsc::channel::<()>();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        ksync::rcu::rcu_register_thread();
        registered_tx.send(()).unwrap();
        enter_rx.recv().unwrap();
        let g = rcu_read_lock();
        inside_tx.send(()).unwrap();
        leave_rx.recv().unwrap();
        drop(g);
    });
    // The callback worker exists before the fork (so it is paused, not absent).
    call_rcu(|| {});
    rcu_barrier();
    // Registered before the fork is prepared: from `rcu_before_fork` to
    // `rcu_after_fork_parent` no thread can register, and a reader that got
    // there first would wait for a fork that waits for it.
    registered_rx.recv().unwrap();

    rcu_before_fork();
    enter_tx.send(()).unwrap();
    inside_rx.recv().unwrap();
    let (task_tx, task_rx) = mpsc::channel();
    let updater = std::thread::spawn(move || {
        task_tx.send(current()).unwrap();
        synchronize_rcu();
    });
    // Wait for a state: the updater asleep on the grace-period lock.
    let task = task_rx.recv().unwrap();
    while task.state() != TaskState::Uninterruptible {
        std::thread::yield_now();
    }
    call_rcu(|| CHILD_CB_RAN.store(true, Ordering::Relaxed));

    // SAFETY: the child calls only RCU (prepared for this) and leaves with
    // `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: a hang becomes SIGALRM's death: a failure, not a stuck test.
        unsafe { libc::alarm(30) };
        // SAFETY: the child of the fork above, its only thread (this test is
        // alone in its binary).
        unsafe { rcu_after_fork_child() };
        synchronize_rcu();
        rcu_barrier();
        let ran = CHILD_CB_RAN.load(Ordering::Relaxed);
        let g = rcu_read_lock();
        drop(g);
        synchronize_rcu();
        let ok = ran;
        // SAFETY: leaves without the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    rcu_after_fork_parent();
    leave_tx.send(()).unwrap();
    reader.join().unwrap();
    updater.join().unwrap();
    rcu_barrier();
    assert!(CHILD_CB_RAN.load(Ordering::Relaxed));
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed (status {status:#x})"
    );
}
