use super::*;
use crate::sched::{Signal, flush_signals};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::mpsc::channel;

static WW: WwClass = WwClass::new("test_ww_acquire", "test_ww_mutex");
static WD: WwClass = WwClass::new_wait_die("test_wd_acquire", "test_wd_mutex");

/// Waits until `t` sleeps in `state` (a wait for a state, not for time).
fn wait_asleep(t: &Task, state: TaskState) {
    while t.state() != state {
        std::thread::yield_now();
    }
}

/// Waits until `m` has a waiter (its WAITERS bit).
fn wait_queued<T: ?Sized>(m: &WwMutex<T>) {
    while m.owner.load(Ordering::Relaxed) & WAITERS == 0 {
        std::thread::yield_now();
    }
}

#[test]
fn stamps_order_contexts_and_acquired_counts_guards() {
    let first = WwAcquireCtx::new(&WW).stamp();
    let a = WwAcquireCtx::new(&WW);
    assert!(a.stamp() > first);
    let ms: Vec<WwMutex<u32>> = (0..3).map(|i| WwMutex::new(&WW, i)).collect();
    let g0 = ms[0].lock(&a).unwrap();
    let g2 = ms[2].lock(&a).unwrap();
    assert_eq!(a.acquired(), 2);
    assert!(ms[0].is_locked() && !ms[1].is_locked());
    drop(g0);
    assert_eq!(a.acquired(), 1);
    g2.unlock();
    assert_eq!(a.acquired(), 0);
    assert!(!ms[2].is_locked());
    // Many mutexes of one class under their context: no recursion report.
    #[cfg(feature = "lockdep")]
    assert!(crate::lockdep::take_reports().is_empty());
}

/// Two contexts of one class open on one thread is what lockdep reports
/// (the kernel's `ww_test_two_contexts`): its locks could deadlock between them.
#[cfg(feature = "lockdep")]
#[test]
fn two_contexts_on_one_thread_are_reported() {
    // A class of its own: lockdep reports a pair of classes once.
    static TWO: WwClass = WwClass::new("two_ctx_acquire", "two_ctx_mutex");
    let a = WwAcquireCtx::new(&TWO);
    let b = WwAcquireCtx::new(&TWO);
    let kinds: Vec<_> = crate::lockdep::take_reports()
        .iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, [crate::lockdep::ReportKind::RecursiveLocking]);
    drop((b, a));
    crate::lockdep::take_reports();
}

#[test]
fn already_held_and_wait_die_deadlock() {
    let m1 = Arc::new(WwMutex::new(&WD, ()));
    let m2 = WwMutex::new(&WD, ());
    let (tx, rx) = channel();
    let (go_tx, go_rx) = channel::<()>();
    let a = m1.clone();
    // The older transaction holds m1.
    let old = std::thread::spawn(move || {
        let ctx = WwAcquireCtx::new(&WD);
        let _g = a.lock(&ctx).unwrap();
        tx.send(ctx.stamp()).unwrap();
        go_rx.recv().unwrap();
    });
    let old_stamp = rx.recv().unwrap();
    let young = WwAcquireCtx::new(&WD);
    assert!(young.stamp() > old_stamp);
    let _g2 = m2.lock(&young).unwrap();
    // -EALREADY: the context holds it.
    assert_eq!(m2.lock(&young).unwrap_err(), Error::AlreadyHeld);
    assert_eq!(m2.lock(&young).unwrap_err().errno(), -114);
    // Wait-die: younger, holding a lock, meets an older holder: dies at once.
    assert_eq!(m1.lock(&young).unwrap_err(), Error::Deadlock);
    assert_eq!(young.acquired(), 1);
    // The failed calls left no waiter behind.
    assert_eq!(m1.owner.load(Ordering::Relaxed) & WAITERS, 0);
    go_tx.send(()).unwrap();
    old.join().unwrap();
    #[cfg(feature = "lockdep")]
    assert!(crate::lockdep::take_reports().is_empty());
}

#[test]
fn wait_die_older_waiter_kills_younger_sleeping_waiter() {
    let m = Arc::new(WwMutex::new(&WD, 0u32));
    let holder = m.lock_noctx(); // no context: nobody dies for it
    let (stamp_tx, stamp_rx) = channel();
    let (go_tx, go_rx) = channel::<()>();
    let m_old = m.clone();
    // The older transaction: its context made first, it waits for the go.
    let older = std::thread::spawn(move || {
        let other = WwMutex::new(&WD, ());
        let ctx = WwAcquireCtx::new(&WD);
        stamp_tx.send(ctx.stamp()).unwrap();
        go_rx.recv().unwrap();
        let _o = other.lock(&ctx).unwrap(); // holds a lock too
        m_old.lock(&ctx).map(|g| *g)
    });
    let old_stamp = stamp_rx.recv().unwrap();
    let (tx, rx) = channel();
    let m_young = m.clone();
    // The younger holds a lock and sleeps on `m`.
    let young = std::thread::spawn(move || {
        let other = WwMutex::new(&WD, ());
        let ctx = WwAcquireCtx::new(&WD);
        assert!(ctx.stamp() > old_stamp);
        let _g = other.lock(&ctx).unwrap();
        tx.send(current()).unwrap();
        m_young.lock(&ctx).map(|_| ())
    });
    let t = rx.recv().unwrap();
    wait_asleep(&t, TaskState::Uninterruptible);
    wait_queued(&m);
    // The older one queues ahead of it: the younger, holding a lock, dies.
    go_tx.send(()).unwrap();
    assert_eq!(young.join().unwrap(), Err(Error::Deadlock));
    drop(holder);
    assert_eq!(older.join().unwrap(), Ok(0));
    assert_eq!(m.owner.load(Ordering::Relaxed), 0);
}

#[test]
fn wound_wakes_a_sleeping_holder_which_backs_off() {
    let m1 = Arc::new(WwMutex::new(&WW, 0u32));
    let m2 = Arc::new(WwMutex::new(&WW, ()));
    let m0 = WwMutex::new(&WW, ());
    let old = WwAcquireCtx::new(&WW); // older than the thread's context
    let blocker = m2.lock_noctx(); // keeps the younger asleep on m2
    let (tx, rx) = channel();
    let (a, b) = (m1.clone(), m2.clone());
    let young = std::thread::spawn(move || {
        let ctx = WwAcquireCtx::new(&WW);
        let mut g1 = a.lock(&ctx).unwrap();
        *g1 += 1;
        tx.send(current()).unwrap();
        let r = b.lock(&ctx).map(|_| ());
        let wounded = ctx.is_wounded();
        drop(g1); // back off: the older one gets m1
        (r, wounded)
    });
    let t = rx.recv().unwrap();
    wait_asleep(&t, TaskState::Uninterruptible);
    let _g0 = m0.lock(&old).unwrap(); // hold something: only then do we wound
    let g1 = m1.lock(&old).unwrap(); // wounds the younger holder, waits
    assert_eq!(*g1, 1);
    assert_eq!(young.join().unwrap(), (Err(Error::Deadlock), true));
    drop(blocker);
    assert!(!m2.is_locked());
}

#[test]
fn wounded_context_backs_off_at_its_next_lock_and_starts_clean() {
    let m = WwMutex::new(&WW, ());
    let n = WwMutex::new(&WW, ());
    let ctx = WwAcquireCtx::new(&WW);
    let g = m.lock(&ctx).unwrap();
    ctx.inner().wounded.store(true, Ordering::Relaxed);
    assert_eq!(n.lock(&ctx).unwrap_err(), Error::Deadlock);
    drop(g);
    // Holding nothing, the wound is spent: lock_slow and lock succeed.
    let g = n.lock_slow(&ctx);
    assert!(!ctx.is_wounded());
    let g2 = m.lock(&ctx).unwrap();
    drop((g, g2));
}

#[test]
fn lock_slow_after_back_off_waits_for_the_older_holder() {
    for class in [&WW, &WD] {
        let m1 = Arc::new(WwMutex::new(class, 0u32));
        let m2 = WwMutex::new(class, ());
        let (tx, rx) = channel();
        let (go_tx, go_rx) = channel::<()>();
        let a = m1.clone();
        // The older transaction (its context made first) holds m1.
        let older = std::thread::spawn(move || {
            let ctx = WwAcquireCtx::new(class);
            let mut g = a.lock(&ctx).unwrap();
            tx.send(ctx.stamp()).unwrap();
            go_rx.recv().unwrap();
            *g = 7;
        });
        let old_stamp = rx.recv().unwrap();
        let ctx = WwAcquireCtx::new(class);
        assert!(ctx.stamp() > old_stamp);
        let g2 = m2.lock(&ctx).unwrap();
        if class.is_wait_die() {
            // Younger and holding m2: dies at once.
            assert_eq!(m1.lock(&ctx).unwrap_err(), Error::Deadlock);
        }
        drop(g2); // back off
        go_tx.send(()).unwrap();
        // Sleeps until the older one is done: `lock_slow` after the
        // `Err(Deadlock)` of wait-die; wound-wait got none, so a plain lock.
        let g1 = if class.is_wait_die() {
            m1.lock_slow(&ctx)
        } else {
            m1.lock(&ctx).unwrap()
        };
        assert_eq!(*g1, 7);
        let g2 = m2.lock(&ctx).unwrap();
        ctx.done();
        drop((g1, g2));
        older.join().unwrap();
    }
}

#[test]
#[should_panic(expected = "back off")]
fn lock_slow_while_holding_panics() {
    let m = WwMutex::new(&WW, ());
    let n = WwMutex::new(&WW, ());
    let ctx = WwAcquireCtx::new(&WW);
    let _g = m.lock(&ctx).unwrap();
    let _h = n.lock_slow(&ctx);
}

#[test]
#[should_panic(expected = "no -EDEADLK to back off from")]
fn lock_slow_without_a_deadlock_panics() {
    let m = WwMutex::new(&WW, ());
    let ctx = WwAcquireCtx::new(&WW);
    let _g = m.lock_slow(&ctx);
}

/// A context told to back off by `n` (a wound, here set by hand), that has
/// backed off: the state `ww_mutex_lock_acquired` checks.
fn backed_off_from<'a>(m: &'a WwMutex<()>, n: &WwMutex<()>, ctx: &'a WwAcquireCtx) {
    let g = m.lock(ctx).unwrap();
    ctx.inner().wounded.store(true, Ordering::Relaxed);
    assert_eq!(n.lock(ctx).unwrap_err(), Error::Deadlock);
    drop(g);
}

#[test]
#[should_panic(expected = "after another ww_mutex returned -EDEADLK")]
fn locking_another_mutex_than_the_contended_one_panics() {
    let (m, n) = (WwMutex::new(&WW, ()), WwMutex::new(&WW, ()));
    let ctx = WwAcquireCtx::new(&WW);
    backed_off_from(&m, &n, &ctx);
    let _g = m.lock(&ctx);
}

#[test]
#[should_panic(expected = "after another ww_mutex returned -EDEADLK")]
fn try_locking_another_mutex_than_the_contended_one_panics() {
    let (m, n) = (WwMutex::new(&WW, ()), WwMutex::new(&WW, ()));
    let ctx = WwAcquireCtx::new(&WW);
    backed_off_from(&m, &n, &ctx);
    let _g = m.try_lock(Some(&ctx));
}

#[test]
#[should_panic(expected = "still held")]
fn locking_the_contended_mutex_without_backing_off_panics() {
    let (m, n) = (WwMutex::new(&WW, ()), WwMutex::new(&WW, ()));
    let ctx = WwAcquireCtx::new(&WW);
    let _g = m.lock(&ctx).unwrap();
    ctx.inner().wounded.store(true, Ordering::Relaxed);
    assert_eq!(n.lock(&ctx).unwrap_err(), Error::Deadlock);
    let _h = n.lock(&ctx);
}

#[test]
fn the_contended_mutex_taken_clears_it_whichever_way() {
    let (m, n) = (WwMutex::new(&WW, ()), WwMutex::new(&WW, ()));
    let ctx = WwAcquireCtx::new(&WW);
    // By lock_slow: then any lock may follow.
    backed_off_from(&m, &n, &ctx);
    let g = n.lock_slow(&ctx);
    let h = m.lock(&ctx).unwrap();
    drop((h, g));
    // By a plain lock (the kernel allows ww_mutex_lock as the retry too).
    backed_off_from(&m, &n, &ctx);
    let g = n.lock(&ctx).unwrap();
    let h = m.lock(&ctx).unwrap();
    drop((h, g));
    // By a trylock.
    backed_off_from(&m, &n, &ctx);
    let g = n.try_lock(Some(&ctx)).unwrap();
    let h = m.try_lock(Some(&ctx)).unwrap();
    drop((h, g));
    assert_eq!(ctx.inner().contending.get(), 0);
}

#[test]
#[should_panic(expected = "after ww_acquire_done")]
fn lock_after_done_panics() {
    let m = WwMutex::new(&WW, ());
    let ctx = WwAcquireCtx::new(&WW);
    ctx.done();
    let _g = m.lock(&ctx);
}

#[test]
#[should_panic(expected = "locked with a context of class")]
fn lock_with_a_context_of_another_class_panics() {
    let m = WwMutex::new(&WW, ());
    let ctx = WwAcquireCtx::new(&WD);
    let _g = m.lock(&ctx);
}

#[test]
#[should_panic(expected = "still holds 1")]
fn dropping_a_context_with_a_leaked_guard_panics() {
    static M: WwMutex<()> = WwMutex::new(&WW, ());
    let ctx = WwAcquireCtx::new(&WW);
    core::mem::forget(M.lock(&ctx).unwrap());
    drop(ctx);
}

#[test]
fn interrupted_wait_leaves_the_mutex_as_before() {
    let m = Arc::new(WwMutex::new(&WW, 3u32));
    let holder = m.lock_noctx();
    let (tx, rx) = channel();
    let m2 = m.clone();
    let (rtx, rrx) = channel();
    let t = std::thread::spawn(move || {
        let ctx = WwAcquireCtx::new(&WW);
        tx.send(current()).unwrap();
        let r = m2.lock_interruptible(&ctx).map(|_| ());
        flush_signals();
        rtx.send((r, ctx.acquired())).unwrap();
        // A plain lock again: a signal is no -EDEADLK, so there is no
        // contended lock for `lock_slow`.
        m2.lock_interruptible(&ctx).map(|g| *g)
    });
    let task = rx.recv().unwrap();
    wait_asleep(&task, TaskState::Interruptible);
    wait_queued(&m);
    task.send_signal(Signal::SIGUSR1);
    // The first wait ends with -EINTR and leaves no trace: still ours, no
    // waiter left.
    assert_eq!(rrx.recv().unwrap(), (Err(Error::Interrupted), 0));
    // The second takes the lock once we let go.
    wait_asleep(&task, TaskState::Interruptible);
    wait_queued(&m);
    assert!(m.is_locked());
    drop(holder);
    assert_eq!(t.join().unwrap(), Ok(3));
    assert!(!m.is_locked());
    assert_eq!(m.owner.load(Ordering::Relaxed), 0);
}

#[test]
fn try_lock_never_waits() {
    let m = WwMutex::new(&WW, 1u32);
    let ctx = WwAcquireCtx::new(&WW);
    let g = m.try_lock(Some(&ctx)).unwrap();
    assert_eq!(ctx.acquired(), 1);
    assert_eq!(m.try_lock(Some(&ctx)).unwrap_err(), Error::AlreadyHeld);
    std::thread::scope(|s| {
        s.spawn(|| {
            let other = WwAcquireCtx::new(&WW);
            assert_eq!(m.try_lock(Some(&other)).unwrap_err(), Error::WouldBlock);
        });
    });
    assert_eq!(m.try_lock(None).unwrap_err(), Error::WouldBlock);
    drop(g);
    let g = m.try_lock(None).unwrap();
    assert_eq!(*g, 1);
    assert_eq!(ctx.acquired(), 0);
}

#[test]
fn waiters_queue_in_stamp_order_and_noctx_in_arrival_order() {
    let m = Arc::new(WwMutex::new(&WW, Vec::new()));
    let holder = m.lock_noctx();
    let (stamp_tx, stamp_rx) = channel();
    let (go_tx, go_rx) = channel::<()>();
    let m_old = m.clone();
    let (ttx, trx) = channel();
    // The oldest context is made first but queues last.
    let old = std::thread::spawn(move || {
        let ctx = WwAcquireCtx::new(&WW);
        stamp_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        ttx.send(current()).unwrap();
        m_old.lock(&ctx).unwrap().push("old");
    });
    stamp_rx.recv().unwrap();
    let mut threads = Vec::new();
    for with_ctx in [true, false] {
        let m2 = m.clone();
        let (tx, rx) = channel();
        threads.push(std::thread::spawn(move || {
            tx.send(current()).unwrap();
            if with_ctx {
                let ctx = WwAcquireCtx::new(&WW);
                m2.lock(&ctx).unwrap().push("young");
            } else {
                m2.lock_noctx().push("noctx");
            }
        }));
        let t = rx.recv().unwrap();
        wait_asleep(&t, TaskState::Uninterruptible);
    }
    go_tx.send(()).unwrap();
    let t = trx.recv().unwrap();
    wait_asleep(&t, TaskState::Uninterruptible);
    drop(holder);
    old.join().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    // As the kernel's `__ww_mutex_add_waiter`: a context goes ahead of the
    // younger contexts; a waiter without one queues at the tail when it comes.
    assert_eq!(*m.lock_noctx(), ["old", "young", "noctx"]);
}

/// Runs `threads` transactions over `locks` mutexes, each taking a random
/// subset in random order and backing off on -EDEADLK; every lock carries two
/// words the holder keeps equal (the exclusion check) and a count.
fn stress(class: &'static WwClass, threads: usize, locks: usize, rounds: usize) -> u64 {
    let ms: Arc<Vec<WwMutex<(u64, u64)>>> =
        Arc::new((0..locks).map(|_| WwMutex::new(class, (0, 0))).collect());
    let backoffs = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (ms, backoffs, done) = (ms.clone(), backoffs.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let mut rng = move |n: usize| {
                    // xorshift64: enough to vary the subsets and orders.
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % n as u64) as usize
                };
                for _ in 0..rounds {
                    let mut order: Vec<usize> = (0..ms.len()).collect();
                    for i in (1..order.len()).rev() {
                        order.swap(i, rng(i + 1));
                    }
                    order.truncate(1 + rng(4.min(ms.len())));
                    let ctx = WwAcquireCtx::new(class);
                    let (mut held, n) = acquire_all(&ctx, &ms, &order);
                    backoffs.fetch_add(n, Ordering::Relaxed);
                    ctx.done();
                    for g in &mut held {
                        assert_eq!(g.0, g.1, "two holders at once");
                        g.0 += 1;
                        std::thread::yield_now();
                        g.1 += 1;
                    }
                    done.fetch_add(held.len(), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let total: u64 = ms.iter().map(|m| m.lock_noctx().0).sum();
    assert_eq!(total, done.load(Ordering::Relaxed) as u64);
    for m in ms.iter() {
        assert_eq!(m.owner.load(Ordering::Relaxed), 0);
    }
    backoffs.load(Ordering::Relaxed)
}

#[test]
fn stress_16_threads_random_subsets_wound_wait() {
    stress(&WW, 16, 6, 150);
}

#[test]
fn stress_16_threads_random_subsets_wait_die() {
    stress(&WD, 16, 6, 150);
}
