//! Tests of the generic lock: guard sizes, do_unlocked, mapped guards, Debug
//! output, covariance, over every lock type.
use crate::ctx::irqs_disabled;
use crate::ctx::preempt_count;
use crate::mutex::{Mutex, MutexGuard};
use crate::spinlock::{SpinLock, SpinLockGuard};

/// The plain variants' guards carry no state: one pointer, so their drop
/// has nothing to match.
#[test]
fn plain_guards_are_one_pointer() {
    assert_eq!(size_of::<SpinLockGuard<'_, u64>>(), size_of::<usize>());
    assert_eq!(size_of::<MutexGuard<'_, u64>>(), size_of::<usize>());
}

/// `do_unlocked` releases the lock and restores the context for the
/// closure, then retakes both.
#[test]
fn do_unlocked_releases_and_retakes_with_the_context() {
    let l = SpinLock::new(1);
    let mut g = l.lock_irqsave();
    assert!(irqs_disabled() && preempt_count() == 1);
    let inside = g.do_unlocked(|| {
        let free = l.try_lock().map(|v| *v);
        (free, irqs_disabled(), preempt_count())
    });
    assert_eq!(inside, (Some(1), false, 0));
    assert!(irqs_disabled() && preempt_count() == 1);
    assert!(l.is_locked());
    *g += 1;
    drop(g);
    assert!(!irqs_disabled() && preempt_count() == 0);
    assert_eq!(*l.lock(), 2);
}

/// A panic in the closure retakes the lock before unwinding on, so the
/// guard's drop releases it once.
#[test]
fn do_unlocked_relocks_when_the_closure_panics() {
    let m = Mutex::new(0);
    let mut g = m.lock();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        g.do_unlocked(|| panic!("in the closure"));
    }));
    assert!(r.is_err());
    assert!(m.raw().is_owned_by_current());
    *g += 1;
    drop(g);
    assert!(!m.is_locked());
    assert_eq!(*m.lock(), 1);
}

/// A mapped guard keeps the lock and the variant's context, and its drop
/// releases both.
#[test]
fn mapped_guard_unlocks_and_restores_on_drop() {
    use super::Guard;
    let l = SpinLock::new((1u32, [0u8; 4]));
    let mut part = Guard::map(l.lock_irqsave(), |v| &mut v.1[2]);
    *part = 7;
    assert!(l.is_locked() && irqs_disabled() && preempt_count() == 1);
    assert!(part.saved_flags().is_some());
    let mut narrower = super::MappedGuard::map(part, |b| b);
    *narrower += 1;
    drop(narrower);
    assert!(!l.is_locked() && !irqs_disabled() && preempt_count() == 0);
    assert_eq!(l.lock().1, [0, 0, 8, 0]);

    let m = Mutex::new(vec![1, 2]);
    let g = Guard::try_map(m.lock(), |v| v.get_mut(9)).expect_err("absent");
    assert!(m.raw().is_owned_by_current()); // Err: still held, by the guard
    let g = Guard::try_map(g, |v| v.first_mut()).expect("present");
    assert!(m.is_locked());
    g.unlock();
    assert!(!m.is_locked());
}

/// A mapped read guard keeps the read lock (writers excluded, readers not)
/// until its drop.
#[test]
fn mapped_read_guard_keeps_the_read_lock_until_drop() {
    use super::ReadGuard;
    let l = crate::spinlock::RwLock::new((3u32, String::from("eth0")));
    let name = ReadGuard::map(l.read(), |v| v.1.as_str());
    assert!(l.try_write().is_none());
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(l.try_read().map(|g| g.0), Some(3)));
    });
    assert_eq!(&*name, "eth0");
    drop(name);
    assert!(l.try_write().is_some());
    assert_eq!(preempt_count(), 0);

    let sem = crate::rwsem::RwSemaphore::new([1, 2]);
    let g = ReadGuard::try_map(sem.read(), |v| v.get(4)).expect_err("absent");
    let second = ReadGuard::try_map(g, |v| v.get(1)).expect("present");
    assert!(sem.try_write().is_none());
    assert_eq!(*second, 2);
    drop(second);
    assert!(sem.try_write().is_some());
}

/// Read guards are covariant in `T`: this function compiles only if a
/// guard of `&'static str` is a subtype of one of `&'a str`.
#[test]
fn read_guards_are_covariant() {
    use crate::rwsem::{RwSemReadGuard, RwSemaphore};
    use crate::spinlock::{RwLock, RwLockReadGuard};
    fn spin<'a, 'g>(g: RwLockReadGuard<'g, &'static str>) -> RwLockReadGuard<'g, &'a str> {
        g
    }
    fn sem<'a, 'g>(g: RwSemReadGuard<'g, &'static str>) -> RwSemReadGuard<'g, &'a str> {
        g
    }
    let l = RwLock::new("a");
    let s = RwSemaphore::new("b");
    assert_eq!((*spin(l.read()), *sem(s.read())), ("a", "b"));
}

/// `Debug` shows the data of a free lock under the lock's own name, and
/// `<locked>` for a held one, for every lock type.
#[test]
fn debug_shows_the_data_or_locked() {
    fn check<L: core::fmt::Debug>(
        name: &str,
        free: &L,
        hold: impl FnOnce(&L) -> Box<dyn FnOnce() + '_>,
    ) {
        assert_eq!(format!("{free:?}"), format!("{name} {{ data: 5, .. }}"));
        let release = hold(free);
        assert_eq!(
            format!("{free:?}"),
            format!("{name} {{ data: <locked>, .. }}")
        );
        release();
        assert_eq!(format!("{free:?}"), format!("{name} {{ data: 5, .. }}"));
    }
    check("SpinLock", &SpinLock::new(5), |l| {
        let g = l.lock();
        Box::new(move || drop(g))
    });
    check("RawSpinLock", &crate::spinlock::RawSpinLock::new(5), |l| {
        let g = l.lock();
        Box::new(move || drop(g))
    });
    check("SpinLock", &crate::spinlock::TicketSpinLock::new(5), |l| {
        let g = l.lock();
        Box::new(move || drop(g))
    });
    check("RwLock", &crate::spinlock::RwLock::new(5), |l| {
        let g = l.read(); // held by a reader: shown as locked too
        Box::new(move || drop(g))
    });
    check("RwLock", &crate::spinlock::ReaderPrefRwLock::new(5), |l| {
        let g = l.write();
        Box::new(move || drop(g))
    });
    check("Mutex", &Mutex::new(5), |l| {
        let g = l.lock();
        Box::new(move || drop(g))
    });
    check("RwSemaphore", &crate::rwsem::RwSemaphore::new(5), |l| {
        let g = l.write();
        Box::new(move || drop(g))
    });
    check("LocalLock", &crate::percpu::LocalLock::new(5), |l| {
        let g = l.lock();
        Box::new(move || drop(g))
    });
    // A guard shows its data.
    let m = Mutex::new(5);
    assert_eq!(format!("{:?}", m.lock()), "5");
}

/// No poisoning: a panic that unwinds through a guard releases the lock,
/// and the next `lock()` returns the data as the panicking thread left it.
#[test]
fn a_panic_releases_the_lock_without_poisoning_it() {
    let m = std::sync::Arc::new(Mutex::new(0));
    let m2 = m.clone();
    let r = std::thread::spawn(move || {
        let mut g = m2.lock();
        *g = 1;
        panic!("while holding the mutex");
    })
    .join();
    assert!(r.is_err());
    assert!(!m.is_locked());
    assert_eq!(*m.lock(), 1); // no PoisonError: the guard itself

    let s = SpinLock::new(0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut g = s.lock_irqsave();
        *g = 2;
        panic!("while holding the spinlock");
    }));
    assert!(r.is_err());
    assert!(!s.is_locked() && !irqs_disabled() && preempt_count() == 0);
    assert_eq!(*s.lock(), 2);
}

/// The lock_api adapters of the sleeping locks: data exclusion across threads,
/// readers sharing, a refused try while held, and no lockdep report on the way.
#[cfg(feature = "lock_api")]
#[test]
fn lock_api_adapters_for_the_sleeping_locks() {
    use crate::mutex::RawMutex;
    use crate::rwsem::RawRwSemaphore;
    let m: lock_api::Mutex<RawMutex, u64> = lock_api::Mutex::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    *m.lock() += 1;
                }
            });
        }
    });
    assert_eq!(*m.lock(), 4000);
    let g = m.lock();
    std::thread::scope(|s| {
        s.spawn(|| assert!(m.try_lock().is_none()));
    });
    drop(g);
    assert!(m.try_lock().is_some());

    let rw: lock_api::RwLock<RawRwSemaphore, u32> = lock_api::RwLock::new(5);
    let r = rw.read();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(*rw.read(), 5); // readers share
            assert!(rw.try_write().is_none());
        });
    });
    drop(r);
    *rw.write() = 6;
    assert_eq!(*rw.read(), 6);
    assert!(!rw.is_locked());
    #[cfg(feature = "lockdep")]
    assert!(crate::lockdep::take_reports().is_empty());
}

/// `lock_nest_lock`: many spinlocks (and mutexes) of one class held together
/// under an outer lock are no recursion; the same without the nest lock is.
#[cfg(feature = "lockdep")]
#[test]
fn lock_nest_lock_holds_one_class_many_times() {
    use crate::lockdep::{ReportKind, take_reports};
    let outer = Mutex::new(());
    let spins: Vec<SpinLock<u32>> = (0..4).map(SpinLock::new).collect();
    let o = outer.lock();
    let held: Vec<_> = spins.iter().map(|s| s.lock_nest_lock(&o)).collect();
    assert_eq!(held.iter().map(|g| **g).sum::<u32>(), 6);
    drop(held);
    let ms: Vec<Mutex<u32>> = (0..2).map(Mutex::new).collect();
    let a = ms[0].lock_nest_lock(&o);
    let b = ms[1].lock_nest_lock(&o);
    drop((b, a));
    drop(o);
    assert!(take_reports().is_empty());
    let a = ms[0].lock();
    let b = ms[1].lock();
    drop((b, a));
    let kinds: Vec<_> = take_reports().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ReportKind::RecursiveLocking]);
}
