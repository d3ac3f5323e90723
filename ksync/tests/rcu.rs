//! RCU integration and stress tests (bounded to a few seconds).

use ksync::rcu::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn nesting_and_held() {
    assert!(!rcu_read_lock_held());
    let a = rcu_read_lock();
    let b = rcu_read_lock();
    assert!(rcu_read_lock_held());
    drop(b);
    assert!(rcu_read_lock_held());
    rcu_read_unlock(a);
    assert!(!rcu_read_lock_held());
}

#[test]
#[should_panic(expected = "synchronize_rcu() called inside an RCU read-side critical section")]
fn synchronize_inside_reader_panics() {
    let _g = rcu_read_lock();
    synchronize_rcu();
}

#[test]
#[should_panic(expected = "rcu_barrier() called inside an RCU read-side critical section")]
fn barrier_inside_reader_panics() {
    let _g = rcu_read_lock();
    rcu_barrier();
}

/// A reader that is inside its section when synchronize_rcu starts keeps it
/// waiting until the section ends.
#[test]
fn synchronize_waits_for_preexisting_reader() {
    let entered = Arc::new(AtomicBool::new(false));
    let left = Arc::new(AtomicBool::new(false));
    let (e, l) = (entered.clone(), left.clone());
    let reader = std::thread::spawn(move || {
        let g = rcu_read_lock();
        e.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        l.store(true, Ordering::SeqCst);
        drop(g);
    });
    while !entered.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    synchronize_rcu();
    assert!(
        left.load(Ordering::SeqCst),
        "synchronize_rcu returned before the reader left"
    );
    reader.join().unwrap();
}

/// Same, with the futex sleep path: the reader stays long enough for the updater
/// to go to sleep, and its unlock must wake it.
#[test]
fn expedited_and_futex_wakeup() {
    for _ in 0..3 {
        let left = Arc::new(AtomicBool::new(false));
        let entered = Arc::new(AtomicBool::new(false));
        let (e, l) = (entered.clone(), left.clone());
        let reader = std::thread::spawn(move || {
            let g = rcu_read_lock();
            e.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            l.store(true, Ordering::SeqCst);
            drop(g);
        });
        while !entered.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        synchronize_rcu_expedited();
        assert!(left.load(Ordering::SeqCst));
        reader.join().unwrap();
    }
}

/// Many concurrent synchronize_rcu callers all return, and each still waits for
/// a reader that started before it.
#[test]
fn concurrent_synchronize_callers_share_grace_periods() {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _g = rcu_read_lock();
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let updaters: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..50 {
                    synchronize_rcu();
                }
            })
        })
        .collect();
    for u in updaters {
        u.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}

#[test]
fn call_rcu_runs_everything_and_barrier_waits() {
    let n = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let n = n.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    let n = n.clone();
                    call_rcu(move || {
                        n.fetch_add(1, Ordering::Relaxed);
                    });
                }
                rcu_barrier();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    rcu_barrier();
    assert_eq!(n.load(Ordering::Relaxed), 40_000);
}

#[test]
fn call_rcu_waits_for_reader() {
    let freed = Arc::new(AtomicBool::new(false));
    let g = rcu_read_lock();
    let f = freed.clone();
    call_rcu(move || f.store(true, Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !freed.load(Ordering::SeqCst),
        "callback ran inside a pre-existing reader"
    );
    drop(g);
    rcu_barrier();
    assert!(freed.load(Ordering::SeqCst));
}

#[test]
fn panicking_callback_does_not_lose_others() {
    let before = callback_panics();
    let ran = Arc::new(AtomicUsize::new(0));
    let r1 = ran.clone();
    call_rcu(move || {
        r1.fetch_add(1, Ordering::SeqCst);
    });
    call_rcu(|| panic!("deliberate test panic in a call_rcu callback"));
    let r2 = ran.clone();
    call_rcu(move || {
        r2.fetch_add(1, Ordering::SeqCst);
    });
    rcu_barrier();
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    assert!(callback_panics() > before);
}

/// rcu_barrier inside a callback would wait for itself: it panics (caught and
/// counted by the worker), and the worker goes on.
#[test]
fn barrier_inside_callback_is_reported() {
    let before = callback_panics();
    let after_panic = Arc::new(AtomicBool::new(false));
    call_rcu(rcu_barrier);
    let a = after_panic.clone();
    call_rcu(move || a.store(true, Ordering::SeqCst));
    rcu_barrier();
    assert!(after_panic.load(Ordering::SeqCst));
    assert!(callback_panics() > before);
}

struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn rcu_ptr_frees_old_values_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let p = RcuPtr::new(Some(Box::new(DropCount(drops.clone()))));
    for _ in 0..100 {
        p.store(Some(Box::new(DropCount(drops.clone()))));
    }
    let old = p.swap(None).unwrap().into_box_after_gp();
    drop(old);
    rcu_barrier();
    assert_eq!(drops.load(Ordering::SeqCst), 101);
    assert!(p.is_null());
}

#[test]
fn rcu_ptr_update_is_atomic_across_updaters() {
    let p = Arc::new(RcuPtr::new(Some(Box::new(0u64))));
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    p.update(|old| Some(Box::new(old.copied().unwrap_or(0) + 1)));
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(p.read(&rcu_read_lock()), Some(&4000));
    rcu_barrier();
}

/// Readers check that what they read was not freed: values carry a `live` flag
/// that their Drop clears just before the memory is freed, so a reader that sees
/// `live == false` has found an object being reclaimed under it.
#[test]
fn stress_rcu_ptr_no_use_after_free() {
    struct Obj {
        live: AtomicBool,
        v: u64,
    }
    impl Drop for Obj {
        fn drop(&mut self) {
            self.live.store(false, Ordering::SeqCst);
        }
    }
    let p = Arc::new(RcuPtr::new(Some(Box::new(Obj {
        live: AtomicBool::new(true),
        v: 0,
    }))));
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (p, stop, bad) = (p.clone(), stop.clone(), bad.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let g = rcu_read_lock();
                    if let Some(o) = p.read(&g) {
                        for _ in 0..50 {
                            std::hint::spin_loop();
                        }
                        if !o.live.load(Ordering::SeqCst) {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        // Values only grow.
                        if o.v < last {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        last = o.v;
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut v = 1;
    // Run for the time, and at least 20 replacements however loaded the machine.
    while Instant::now() < deadline || v <= 20 {
        let new = Some(Box::new(Obj {
            live: AtomicBool::new(true),
            v,
        }));
        if v % 2 == 0 {
            p.store(new);
        } else if let Some(old) = p.swap(new) {
            drop(old.into_box_after_gp());
        }
        v += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    rcu_barrier();
    assert_eq!(bad.load(Ordering::Relaxed), 0);
}

#[test]
fn list_operations_and_concurrent_readers() {
    let list = Arc::new(RcuList::new());
    for i in 0..10 {
        list.add_tail(i);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (list, stop, total) = (list.clone(), stop.clone(), total.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let g = rcu_read_lock();
                    // Entries 0..10 are only ever replaced by equal values, so
                    // every walk sees all ten, in order.
                    let fixed: Vec<i32> = list.iter(&g).copied().filter(|&x| x < 10).collect();
                    assert_eq!(fixed, (0..10).collect::<Vec<_>>());
                    total.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut round = 0;
    // Keep updating until the readers have walked the list many times.
    while round < 2000 || total.load(Ordering::Relaxed) < 200 {
        round += 1;
        let x = 100 + round % 7;
        list.add(x);
        list.replace(|&v| v == round % 10, round % 10);
        assert!(list.del(|&v| v == x));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let g = rcu_read_lock();
    assert_eq!(list.iter(&g).count(), 10);
    drop(g);
    let mut w = list.writer();
    w.retain(|&v| v % 2 == 0);
    assert_eq!(w.iter().copied().collect::<Vec<_>>(), [0, 2, 4, 6, 8]);
    drop(w);
    rcu_barrier();
}

#[test]
fn hash_map_lookups_during_updates() {
    let map: Arc<RcuHashMap<u64, u64>> = Arc::new(RcuHashMap::with_buckets(16));
    for k in 0..100 {
        map.insert(k, k * 10);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (map, stop) = (map.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let g = rcu_read_lock();
                    for k in 0..100 {
                        // Keys below 100 are always present with a multiple of 10.
                        let v = *map.get(&k, &g).expect("stable key vanished");
                        assert_eq!(v % 10, 0);
                        assert_eq!(v / 10 % 100, k);
                    }
                }
            })
        })
        .collect();
    for i in 0..3000u64 {
        let k = i % 100;
        assert!(map.insert(k, (k + 100 * (i % 5)) * 10));
        assert!(!map.insert(1000 + i, 0));
        assert!(map.remove(&(1000 + i)));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(map.contains_key(&5));
    assert!(!map.contains_key(&1005));
    assert_eq!(map.iter(&rcu_read_lock()).count(), 100);
    rcu_barrier();
}

#[test]
fn srcu_waits_for_sleeping_reader() {
    let s = Arc::new(SrcuStruct::new());
    let left = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let (s2, l, e) = (s.clone(), left.clone(), entered.clone());
    let reader = std::thread::spawn(move || {
        let g = srcu_read_lock(&s2);
        e.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30)); // SRCU readers may sleep
        l.store(true, Ordering::SeqCst);
        drop(g);
    });
    while !entered.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    synchronize_srcu(&s);
    assert!(left.load(Ordering::SeqCst));
    reader.join().unwrap();
    // Explicit unlock by index.
    let idx = s.read_lock().into_index();
    // SAFETY: idx is the index of the section just entered on this thread.
    unsafe { s.read_unlock(idx) };
    s.synchronize();
    // A domain's long reader does not block another domain.
    let other = SrcuStruct::new();
    let _g = s.read_lock();
    other.synchronize();
    drop(_g);
    let owned = Arc::try_unwrap(s).unwrap();
    cleanup_srcu_struct(owned);
}

#[test]
fn srcu_down_read_is_ended_by_another_thread() {
    let s = Arc::new(SrcuStruct::new());
    // The section begins here and ends on another thread (srcu_down_read's
    // use: a section handed over with the work it protects).
    let idx = srcu_down_read(&s);
    let done = Arc::new(AtomicBool::new(false));
    let (s2, d) = (s.clone(), done.clone());
    let updater = std::thread::spawn(move || {
        synchronize_srcu(&s2);
        d.store(true, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(30));
    // The section is still open: the grace period cannot have ended.
    assert!(!done.load(Ordering::SeqCst));
    let s3 = s.clone();
    std::thread::spawn(move || {
        // SAFETY: idx is the index of the section srcu_down_read began above,
        // which nothing else ends.
        unsafe { srcu_up_read(&s3, idx) };
    })
    .join()
    .unwrap();
    updater.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    // The method forms, on one thread.
    let idx = s.down_read();
    // SAFETY: the section just begun, ended once.
    unsafe { s.up_read(idx) };
    s.synchronize();
}

#[test]
fn thread_exit_unregisters() {
    for _ in 0..20 {
        std::thread::spawn(|| {
            let _g = rcu_read_lock();
        })
        .join()
        .unwrap();
    }
    // Exited threads are not waited for.
    synchronize_rcu();
    rcu_register_thread();
    rcu_unregister_thread();
    let g = rcu_read_lock(); // registers again
    assert!(rcu_read_lock_held());
    drop(g);
    synchronize_rcu();
}

/// A guard kept in a thread-local that is destroyed after the thread's RCU
/// registration (thread-local destructors run in reverse order of first use)
/// still holds its section open: the registration leaves the record registered
/// instead of freeing it, so a grace period waits for the guard's drop.
#[test]
fn guard_outliving_thread_registration_is_waited_for() {
    use std::cell::RefCell;
    static SECTION_ENDED: AtomicBool = AtomicBool::new(false);
    struct Late(Option<ksync::rcu::RcuReadGuard>);
    impl Drop for Late {
        fn drop(&mut self) {
            // Runs after the registration's destructor: hold the section a while.
            std::thread::sleep(std::time::Duration::from_millis(50));
            SECTION_ENDED.store(true, Ordering::Relaxed);
            drop(self.0.take()); // rcu_read_unlock
        }
    }
    thread_local! {
        static LATE: RefCell<Late> = const { RefCell::new(Late(None)) };
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        // First use of LATE before the first rcu_read_lock: its destructor is
        // registered first, so it runs after the registration's.
        LATE.with(|_| {});
        let g = rcu_read_lock();
        LATE.with(|l| l.borrow_mut().0 = Some(g));
        tx.send(()).unwrap();
    });
    rx.recv().unwrap();
    synchronize_rcu();
    // The grace period ends only after the section, which set the flag first
    // (its unlock is a Release store; the grace period's barriers order it).
    assert!(SECTION_ENDED.load(Ordering::Relaxed));
    t.join().unwrap();
    synchronize_rcu();
}

/// SRCU under load: 8 readers whose sections sometimes sleep, one updater
/// running grace periods (so it sleeps on the domain's futex and the readers'
/// unlocks wake it; a lost wake-up hangs the test). A reader that saw
/// generation `g` inside a section must never see `g` reclaimed before the
/// section ends.
#[test]
fn srcu_stress_sleeping_readers_wake_the_updater() {
    static S: SrcuStruct = SrcuStruct::new();
    let cur = Arc::new(AtomicUsize::new(0));
    let freed_below = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|t| {
            let (cur, freed_below, stop) = (cur.clone(), freed_below.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = S.read_lock();
                    let seen = cur.load(Ordering::SeqCst);
                    if (n + t).is_multiple_of(4) {
                        std::thread::sleep(Duration::from_micros(50));
                    } else {
                        std::thread::yield_now();
                    }
                    assert!(
                        seen >= freed_below.load(Ordering::SeqCst),
                        "generation {seen} reclaimed inside an SRCU section"
                    );
                    drop(g);
                    n += 1;
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    let mut gps = 0;
    while gps < 300 && (gps < 20 || t0.elapsed() < Duration::from_secs(2)) {
        gps += 1;
        cur.store(gps, Ordering::SeqCst);
        S.synchronize();
        // Every section that could have seen generation < gps has ended.
        freed_below.store(gps, Ordering::SeqCst);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}

/// Callback nodes small enough for the recycled pool and larger ones (boxed):
/// every callback runs once and its captures are dropped exactly once, also
/// from producer threads that exit (handing their cached blocks back) while the
/// worker recycles the blocks of earlier batches.
#[test]
fn call_rcu_small_and_large_nodes_run_and_drop_once() {
    let token = Arc::new(());
    let ran = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..8)
        .map(|t| {
            let (token, ran) = (token.clone(), ran.clone());
            std::thread::spawn(move || {
                for i in 0..5_000usize {
                    let (tk, r) = (token.clone(), ran.clone());
                    if (i + t) % 3 == 0 {
                        // Large: 128 bytes of captures, boxed.
                        let big = [i as u64; 16];
                        call_rcu(move || {
                            assert_eq!(big[15], i as u64);
                            drop(tk);
                            r.fetch_add(1, Ordering::Relaxed);
                        });
                    } else {
                        // Small: two pointers, a pool block.
                        call_rcu(move || {
                            drop(tk);
                            r.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                    if i % 1_000 == 999 {
                        rcu_barrier();
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    rcu_barrier();
    assert_eq!(ran.load(Ordering::Relaxed), 8 * 5_000);
    // Every capture was dropped exactly once: only our reference is left.
    assert_eq!(Arc::strong_count(&token), 1);
    // A second round reuses the recycled blocks.
    for _ in 0..10_000 {
        let tk = token.clone();
        call_rcu(move || drop(tk));
    }
    rcu_barrier();
    assert_eq!(Arc::strong_count(&token), 1);
}

/// The BKL is the only lock held across a sleep, and only by being dropped for
/// it (SPEC §15). A BKL holder that calls `synchronize_rcu` while a reader needs
/// the BKL to end its read-side section must not deadlock: the grace period's
/// sleep releases the BKL, the reader takes it, ends its section and wakes the
/// updater, which retakes the BKL before it returns. (The updater once parked on
/// the grace period's futex directly, holding the BKL: this hung.)
#[test]
fn synchronize_rcu_drops_the_bkl_while_it_sleeps() {
    use ksync::bkl;
    use ksync::sched::{self, Task, TaskState};
    use std::sync::mpsc;

    let (in_section_tx, in_section_rx) = mpsc::channel::<()>();
    let (updater_tx, updater_rx) = mpsc::channel::<Task>();
    let reader = std::thread::spawn(move || {
        let section = rcu_read_lock();
        in_section_tx.send(()).unwrap();
        let updater = updater_rx.recv().unwrap();
        // Wait for the state, not for time: the updater is asleep in its grace
        // period (or queued behind another test's) — holding the BKL or not.
        while updater.state() != TaskState::Uninterruptible {
            std::thread::yield_now();
        }
        bkl::lock_kernel();
        bkl::unlock_kernel();
        drop(section);
    });
    let updater = std::thread::spawn(move || {
        in_section_rx.recv().unwrap();
        bkl::lock_kernel();
        updater_tx.send(sched::current()).unwrap();
        synchronize_rcu();
        let held = bkl::kernel_locked();
        bkl::unlock_kernel();
        held
    });
    // A hang guard, not a speed check: a deadlock never ends, so any bound
    // tells it apart; the threads are joined on a helper so the test can fail.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        reader.join().unwrap();
        done_tx.send(updater.join().unwrap()).unwrap();
    });
    let retook = done_rx.recv_timeout(Duration::from_secs(60)).expect(
        "deadlock: synchronize_rcu slept holding the BKL, so the reader could not end its section",
    );
    assert!(retook, "synchronize_rcu must return with the BKL retaken");
}

#[test]
fn grace_period_count_moves_past_every_kind_of_wait() {
    let before = completed_grace_periods();
    synchronize_rcu();
    let after_sync = completed_grace_periods();
    assert!(
        after_sync > before,
        "synchronize_rcu: {before} -> {after_sync}"
    );
    synchronize_rcu_expedited();
    let after_exp = completed_grace_periods();
    assert!(
        after_exp > after_sync,
        "expedited: {after_sync} -> {after_exp}"
    );
    // A call_rcu batch waits for one too.
    call_rcu(|| {});
    rcu_barrier();
    assert!(completed_grace_periods() > after_exp);
}

/// The polled API: a cookie taken inside a read-side section cannot complete
/// while that section lasts, whatever other grace periods run meanwhile (one
/// waits for it here; others may come from concurrent tests), and completes
/// once a grace period after it has passed.
#[test]
fn polled_cookie_waits_for_the_sections_before_it() {
    let g = rcu_read_lock();
    let cookie = get_state_synchronize_rcu();
    assert!(!poll_state_synchronize_rcu(cookie));
    let synced = Arc::new(AtomicBool::new(false));
    let updater = {
        let synced = synced.clone();
        std::thread::spawn(move || {
            synchronize_rcu();
            synced.store(true, Ordering::Release);
        })
    };
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(1));
        assert!(
            !poll_state_synchronize_rcu(cookie),
            "completed during our section"
        );
        assert!(
            !synced.load(Ordering::Acquire),
            "a grace period ended during our section"
        );
    }
    drop(g);
    updater.join().unwrap();
    // The updater's grace period began after the cookie (it waited for our
    // section, which began before the cookie) and has ended.
    assert!(poll_state_synchronize_rcu(cookie));
    // A cookie whose grace period has passed makes cond_synchronize_rcu return
    // at once; a fresh one makes it wait for one.
    cond_synchronize_rcu(cookie);
    let fresh = get_state_synchronize_rcu();
    let n = completed_grace_periods();
    cond_synchronize_rcu(fresh);
    assert!(poll_state_synchronize_rcu(fresh));
    assert!(completed_grace_periods() > n);
    assert!(poll_state_synchronize_rcu(get_completed_synchronize_rcu()));
    let started = start_poll_synchronize_rcu();
    rcu_barrier();
    assert!(poll_state_synchronize_rcu(started));
}
