//! Unit tests: one body over every algorithm and variant.

use super::raw::*;
use super::*;
use crate::ctx::{SOFTIRQ_DISABLE_OFFSET, preempt_count};
use crate::ctx::{irqs_disabled, local_irq_restore, local_irq_save};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn counter_under_contention<B: RawSpin + 'static>(threads: usize, iters: u64) {
    let lock = Arc::new(Lock::<u64, B>::new(0));
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let l = lock.clone();
            std::thread::spawn(move || {
                for _ in 0..iters {
                    *l.lock() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*lock.lock(), threads as u64 * iters);
    assert!(!lock.is_locked());
}

macro_rules! per_algorithm {
    ($($name:ident: $b:ty),*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn counter_is_exact_with_8_threads() {
                counter_under_contention::<$b>(8, 5_000);
            }
            #[test]
            fn try_lock_fails_while_held_and_preempt_count_tracks() {
                let l = Lock::<u32, $b>::new(1);
                let base = preempt_count();
                let g = l.lock();
                assert_eq!(preempt_count(), base + 1);
                assert!(l.is_locked());
                assert!(l.try_lock().is_none());
                assert_eq!(preempt_count(), base + 1, "failed try_lock restores the count");
                drop(g);
                assert_eq!(preempt_count(), base);
                assert!(!l.is_locked());
                assert_eq!(*l.try_lock().unwrap(), 1);
            }
        }
    )*};
}

per_algorithm!(queued: Queued, ticket: Ticket, mcs: Mcs, tas: Tas, ttas: Ttas);

#[test]
fn irqsave_guard_restores_the_saved_state() {
    let l = SpinLock::new(());
    assert!(!irqs_disabled());
    {
        let outer = l.lock_irqsave();
        assert!(irqs_disabled());
        assert_eq!(outer.saved_flags().map(|f| f.irqs_disabled()), Some(false));
        let l2 = RawSpinLock::new(());
        {
            let inner = l2.lock_irqsave();
            assert_eq!(inner.saved_flags().map(|f| f.irqs_disabled()), Some(true));
        }
        assert!(irqs_disabled(), "inner restore keeps irqs off");
    }
    assert!(!irqs_disabled());
}

#[test]
fn irq_and_bh_variants_change_and_restore_context() {
    let l = SpinLock::new(0);
    let base = preempt_count();
    {
        let _g = l.lock_irq();
        assert!(irqs_disabled());
    }
    assert!(!irqs_disabled());
    {
        let _g = l.lock_bh();
        assert_eq!(preempt_count(), base + SOFTIRQ_DISABLE_OFFSET + 1);
    }
    assert_eq!(preempt_count(), base);
    let g = l.lock();
    assert!(l.try_lock_irqsave().is_none());
    assert!(l.try_lock_irq().is_none());
    assert!(l.try_lock_bh().is_none());
    assert!(!irqs_disabled());
    assert_eq!(preempt_count(), base + 1);
    drop(g);
    assert!(l.try_lock_irqsave().is_some());
    assert!(l.try_lock_bh().is_some());
    assert_eq!(preempt_count(), base);
}

#[test]
fn is_contended_sees_a_queued_waiter_and_unlock_wait_waits() {
    let l = Arc::new(SpinLock::new(0u32));
    let g = l.lock();
    assert!(!l.is_contended());
    let l2 = l.clone();
    let t = std::thread::spawn(move || *l2.lock() += 1);
    let start = std::time::Instant::now();
    while !l.is_contended() {
        assert!(start.elapsed().as_secs() < 10, "waiter never queued");
        std::thread::yield_now();
    }
    drop(g);
    t.join().unwrap();
    l.unlock_wait();
    assert_eq!(*l.lock(), 1);
}

#[test]
fn waiter_sleeps_when_the_holder_is_slow_and_is_woken() {
    // A holder that keeps the lock for 50 ms: the waiter's spin budget runs out
    // and it must sleep on the futex and be woken by the unlock.
    let l = Arc::new(SpinLock::new(0u32));
    let g = l.lock();
    let hs: Vec<_> = (0..3)
        .map(|_| {
            let l2 = l.clone();
            std::thread::spawn(move || *l2.lock() += 1)
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(g);
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*l.lock(), 3);
}

#[test]
fn rwlock_sleeping_waiters_are_woken() {
    sleeping_rw_waiters::<QueuedRw>();
    sleeping_rw_waiters::<ReaderPref>();
}

fn sleeping_rw_waiters<B: RawRwSpin + 'static>() {
    // A reader held for 50 ms: the writer's spin budget runs out and it sleeps
    // until the last reader leaves; then the writer held for 50 ms: readers
    // waiting behind it sleep until its unlock.
    let l = Arc::new(RwLockOf::<u32, B>::new(0));
    let r = l.read();
    let l2 = l.clone();
    let w = std::thread::spawn(move || *l2.write() += 1);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(*r, 0);
    drop(r);
    w.join().unwrap();
    let g = l.write();
    let rs: Vec<_> = (0..3)
        .map(|_| {
            let l2 = l.clone();
            std::thread::spawn(move || *l2.read())
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(g);
    for h in rs {
        assert_eq!(h.join().unwrap(), 1);
    }
    assert!(!l.is_locked());
}

#[test]
fn get_mut_and_into_inner() {
    let mut l = SpinLock::new(vec![1]);
    l.get_mut().push(2);
    assert_eq!(l.into_inner(), [1, 2]);
    let mut r = RwLock::new(3);
    *r.get_mut() += 1;
    assert_eq!(r.into_inner(), 4);
}

#[test]
fn force_unlock_releases_a_forgotten_guard() {
    let l = SpinLock::new(());
    core::mem::forget(l.lock());
    assert!(l.is_locked());
    // SAFETY: this thread holds the lock through the forgotten guard.
    unsafe { l.force_unlock() };
    crate::ctx::preempt_enable(); // what the guard would have restored
    assert!(!l.is_locked());
}

#[test]
fn panic_in_critical_section_releases_the_lock() {
    let l = Arc::new(SpinLock::new(0));
    let l2 = l.clone();
    let r = std::thread::spawn(move || {
        let _g = l2.lock();
        panic!("boom");
    })
    .join();
    assert!(r.is_err());
    assert!(l.try_lock().is_some(), "no poisoning: the lock is free");
}

fn rw_body<B: RawRwSpin + 'static>() {
    let l = Arc::new(RwLockOf::<[u64; 2], B>::new([0, 0]));
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (l, stop, bad) = (l.clone(), stop.clone(), bad.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let g = l.read();
                    if g[0] != g[1] {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let l = l.clone();
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    let mut g = l.write();
                    g[0] += 1;
                    std::hint::spin_loop();
                    g[1] += 1;
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(bad.load(Ordering::Relaxed), 0);
    assert_eq!(*l.read(), [8_000, 8_000]);
}

#[test]
fn queued_rwlock_excludes_and_counts() {
    rw_body::<QueuedRw>();
}

#[test]
fn reader_pref_rwlock_excludes_and_counts() {
    rw_body::<ReaderPref>();
}

#[test]
fn rw_variants_and_trylocks() {
    fn body<B: RawRwSpin>() {
        let l = RwLockOf::<u32, B>::new(0);
        {
            let _r = l.read_irqsave();
            assert!(irqs_disabled());
            assert!(l.try_read().is_some());
            assert!(l.try_write().is_none());
            assert!(l.is_locked() && !l.is_write_locked());
        }
        assert!(!irqs_disabled());
        {
            let _w = l.write_bh();
            assert!(l.is_write_locked());
            assert!(l.try_read().is_none());
            assert!(l.try_write_irqsave().is_none());
            assert!(!irqs_disabled());
        }
        drop(l.read_irq());
        drop(l.read_bh());
        drop(l.write_irq());
        drop(l.write_irqsave());
        assert!(l.try_read_irqsave().is_some());
        assert!(!l.is_locked());
        assert_eq!(preempt_count(), 0);
    }
    body::<QueuedRw>();
    body::<ReaderPref>();
}

#[test]
fn reader_pref_lets_readers_pass_a_waiting_writer_and_queued_does_not() {
    /// Holds a read lock while a writer waits for it (it cannot get in while
    /// we read) and asks for more read locks during `window`: whether one was
    /// refused. Only a waiting writer can make a lock refuse one.
    fn refused_within<B: RawRwSpin + 'static>(window: std::time::Duration) -> bool {
        let l = Arc::new(RwLockOf::<(), B>::new(()));
        let r = l.read();
        let l2 = l.clone();
        let w = std::thread::spawn(move || drop(l2.write()));
        let end = std::time::Instant::now() + window;
        let refused = loop {
            if l.try_read().is_none() {
                break true;
            }
            if std::time::Instant::now() >= end {
                break false;
            }
            std::thread::yield_now();
        };
        drop(r);
        w.join().unwrap();
        refused
    }
    // Never refused, whether the writer waits yet or not: the window only
    // gives it the time to start waiting; no outcome depends on its length.
    assert!(
        !refused_within::<ReaderPref>(std::time::Duration::from_millis(30)),
        "classic rwlock: readers enter past a waiting writer"
    );
    // Refused once the writer waits, however long it takes to start: the
    // bound only turns a hang into a failure.
    assert!(
        refused_within::<QueuedRw>(std::time::Duration::from_secs(30)),
        "qrwlock: a waiting writer turns new readers away"
    );
}

#[cfg(feature = "lock_api")]
#[test]
fn lock_api_mutex_over_queued() {
    let m = lock_api::Mutex::<Queued, u32>::new(1);
    *m.lock() += 1;
    assert_eq!(*m.lock(), 2);
    let rw = lock_api::RwLock::<QueuedRw, u32>::new(1);
    assert_eq!(*rw.read(), 1);
    *rw.write() = 5;
    assert_eq!(*rw.read(), 5);
}

/// The two-word rwlocks' writers claim without touching the irq state (their
/// claims carry the thread's id instead of masking irqs): every write path
/// (taken, bounced by a reader, refused) leaves it as it found it, on or off.
fn claim_window_restores_irqs<R: RawRwSpin>(l: &R) {
    for off in [false, true] {
        let saved = off.then(local_irq_save);
        l.write();
        assert_eq!(irqs_disabled(), off);
        assert!(!l.try_write());
        assert_eq!(irqs_disabled(), off);
        // SAFETY: taken above, on this thread.
        unsafe { l.write_unlock() };
        l.read();
        assert!(!l.try_write());
        assert_eq!(irqs_disabled(), off);
        // SAFETY: taken above, on this thread.
        unsafe { l.read_unlock() };
        assert!(l.try_write());
        assert_eq!(irqs_disabled(), off);
        // SAFETY: taken just above.
        unsafe { l.write_unlock() };
        if let Some(f) = saved {
            local_irq_restore(f);
        }
        assert!(!irqs_disabled());
    }
}

#[test]
fn rw_write_paths_leave_the_irq_state_alone() {
    let (q, r) = (QueuedRw::INIT, ReaderPref::INIT);
    claim_window_restores_irqs(&q);
    claim_window_restores_irqs(&r);
}
