//! Lock statistics (`CONFIG_LOCK_STAT`) on ksync's real locks: exact counts
//! for a contention made deterministic (the waiter is known to wait before the
//! holder lets go: its contention is seen in the statistics, a state, not a
//! time), the read and write sides apart, the table's format, off and reset.
//!
//! Statistics are one global switch and one global table: the tests take
//! `SERIAL` so that one test's reset or switch does not hit another's counts.
//! Each test uses lock classes of its own (its own creation sites).
#![cfg(feature = "lockdep")]

use ksync::lockdep::{self, ClassStats, LockTime, Mode};
use ksync::mutex::Mutex;
use ksync::percpu_rwsem::PercpuRwSemaphore;
use ksync::rtmutex::RtMutex;
use ksync::rwsem::RwSemaphore;
use ksync::sched::{self, TaskState};
use ksync::spinlock::{RwLock, SpinLock};
use std::sync::{Mutex as StdMutex, MutexGuard};

static SERIAL: StdMutex<()> = StdMutex::new(());

/// Serializes the tests; `None` (skip) when lockdep is off (`KSYNC_LOCKDEP=off`).
fn serial() -> Option<MutexGuard<'static, ()>> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    (lockdep::mode() != Mode::Off).then_some(g)
}

/// The statistics of the class created at `line` of this file, if any.
fn class_at(line: u32) -> Option<ClassStats> {
    lockdep::lock_stats()
        .into_iter()
        .find(|c| c.site.line() == line && c.site.file().ends_with("lock_stat.rs"))
}

fn assert_ordered(t: &LockTime) {
    assert!(t.nr > 0, "{t:?}");
    assert!(t.min <= t.avg() && t.avg() <= t.max, "{t:?}");
    assert!(t.max <= t.total, "{t:?}");
}

/// Holds `hold` on this thread while `wait` runs on another, releasing it
/// only once that thread's contention on the class at `line` is counted: so
/// the other thread waits exactly once, whatever the scheduler does.
fn contend<G>(hold: impl FnOnce() -> G, wait: impl FnOnce() + Send, line: u32) {
    let guard = hold();
    std::thread::scope(|s| {
        let t = s.spawn(wait);
        while class_at(line).is_none_or(|c| c.contention_points.is_empty()) {
            std::thread::yield_now();
        }
        drop(guard);
        t.join().unwrap();
    });
}

#[test]
fn a_contended_mutex_is_counted_exactly() {
    let Some(_s) = serial() else { return };
    lockdep::lock_stat_enable(true);
    let (m, line) = (Mutex::new(0u32), line!());
    let (hold, hold_line) = (|| m.lock(), line!());
    let (wait, wait_line) = (|| *m.lock() += 1, line!());
    contend(hold, wait, line);
    let c = class_at(line).expect("the mutex's class is counted");
    assert_eq!((c.contentions(), c.acquisitions()), (1, 2), "{c:#?}");
    assert_eq!((c.read.holdtime.nr, c.read.waittime.nr), (0, 0));
    assert_ordered(&c.write.waittime);
    assert_ordered(&c.write.holdtime);
    // The waiter waited where it called `lock`, for the holder's `lock`.
    assert_eq!(c.contention_points.len(), 1, "{c:#?}");
    assert_eq!(c.contention_points[0].site.line(), wait_line);
    assert_eq!(c.contention_points[0].count, 1);
    assert_eq!(c.contending_points.len(), 1, "{c:#?}");
    assert_eq!(c.contending_points[0].site.line(), hold_line);
    // Bounces: each acquisition came from another thread than the last (the
    // first from none), and the contention met the other thread's hold.
    assert_eq!((c.write.acq_bounces, c.write.con_bounces), (2, 1));
    assert_eq!(*m.lock(), 1);
    lockdep::lock_stat_enable(false);
}

#[test]
fn a_contended_spinlock_is_counted_exactly() {
    let Some(_s) = serial() else { return };
    lockdep::lock_stat_enable(true);
    let (l, line) = (SpinLock::new(0u32), line!());
    contend(|| l.lock(), || *l.lock() += 1, line);
    let _ = l.try_lock().expect("free"); // a trylock is an acquisition too
    let c = class_at(line).expect("the spinlock's class is counted");
    assert_eq!((c.contentions(), c.acquisitions()), (1, 3), "{c:#?}");
    assert_ordered(&c.write.waittime);
    assert_ordered(&c.write.holdtime);
    assert_eq!(c.contention_points[0].count, 1);
    lockdep::lock_stat_enable(false);
}

#[test]
fn rt_mutex_and_percpu_rwsem_report_their_contention() {
    let Some(_s) = serial() else { return };
    lockdep::lock_stat_enable(true);
    let (rt, rline) = (RtMutex::new(0u32), line!());
    contend(|| rt.lock(), || *rt.lock() += 1, rline);
    let (p, pline) = (PercpuRwSemaphore::new(0u32), line!());
    // A writer waits for the writer (the claim).
    contend(|| p.write(), || *p.write() += 1, pline);
    lockdep::lock_stat_enable(false);
    for (line, n) in [(rline, 2), (pline, 2)] {
        let c = class_at(line).expect("counted");
        assert_eq!((c.contentions(), c.acquisitions()), (1, n), "{c:#?}");
        assert_ordered(&c.write.waittime);
    }
}

#[test]
fn read_and_write_holds_are_counted_apart() {
    let Some(_s) = serial() else { return };
    lockdep::lock_stat_enable(true);
    let (l, line) = (RwLock::new(0u32), line!());
    *l.write() += 1;
    assert_eq!(*l.read(), 1);
    assert_eq!(*l.read(), 1);
    let (s, sline) = (RwSemaphore::new(0u32), line!());
    // A reader waits for the writer: a read contention.
    contend(|| s.write(), || assert_eq!(*s.read(), 0), sline);
    lockdep::lock_stat_enable(false);

    let c = class_at(line).expect("the rwlock's class is counted");
    assert_eq!((c.write.holdtime.nr, c.read.holdtime.nr), (1, 2), "{c:#?}");
    assert_eq!(c.contentions(), 0);
    let text = c.to_string();
    assert!(text.contains(&format!("{}-W:", c.label())), "{text}");
    assert!(text.contains(&format!("{}-R:", c.label())), "{text}");

    let c = class_at(sline).expect("the rwsem's class is counted");
    assert_eq!((c.write.holdtime.nr, c.read.holdtime.nr), (1, 1), "{c:#?}");
    assert_eq!((c.write.waittime.nr, c.read.waittime.nr), (0, 1), "{c:#?}");
    assert_ordered(&c.read.waittime);
}

#[test]
fn off_counts_nothing_and_reset_clears() {
    let Some(_s) = serial() else { return };
    lockdep::lock_stat_enable(false);
    assert!(!lockdep::lock_stat_enabled());
    let (l, line) = (SpinLock::new(0u32), line!());
    *l.lock() += 1;
    drop(l.try_lock());
    // A contention too: the waiter is seen asleep before the holder lets go.
    let (m, mline) = (Mutex::new(0u32), line!());
    let g = m.lock();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let m = &m;
        let t = s.spawn(move || {
            tx.send(sched::current()).unwrap();
            *m.lock() += 1;
        });
        let task = rx.recv().unwrap();
        while task.state() == TaskState::Running {
            std::thread::yield_now();
        }
        drop(g);
        t.join().unwrap();
    });
    assert!(class_at(line).is_none(), "counted while off");
    assert!(class_at(mline).is_none(), "counted while off");

    lockdep::lock_stat_enable(true);
    assert!(lockdep::lock_stat_enabled());
    *l.lock() += 1;
    assert_eq!(class_at(line).map(|c| c.acquisitions()), Some(1));
    lockdep::lock_stat_reset();
    assert!(class_at(line).is_none(), "kept after a reset");
    *l.lock() += 1;
    assert_eq!(class_at(line).map(|c| c.acquisitions()), Some(1));
    lockdep::lock_stat_enable(false);
}

#[test]
fn the_table_reads_like_proc_lock_stat() {
    let Some(_s) = serial() else { return };
    lockdep::lock_stat_enable(true);
    let (quiet, qline) = (SpinLock::new(()), line!());
    let (busy, bline) = (Mutex::new(()), line!());
    drop(quiet.lock());
    let (wait, wline) = (|| drop(busy.lock()), line!());
    contend(|| busy.lock(), wait, bline);
    lockdep::lock_stat_enable(false);

    let table = lockdep::lock_stat_table();
    let pos = |line: u32| {
        table
            .0
            .iter()
            .position(|c| c.site.line() == line && c.site.file().ends_with("lock_stat.rs"))
    };
    let (q, b) = (pos(qline).unwrap(), pos(bline).unwrap());
    assert!(b < q, "the contended class comes first");
    let text = table.to_string();
    eprintln!("{text}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("lock_stat version 0.4"));
    assert!(lines.next().unwrap().starts_with("-----"));
    let head = lines.next().unwrap();
    let cols: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "class",
            "name",
            "con-bounces",
            "contentions",
            "waittime-min",
            "waittime-max",
            "waittime-total",
            "waittime-avg",
            "acq-bounces",
            "acquisitions",
            "holdtime-min",
            "holdtime-max",
            "holdtime-total",
            "holdtime-avg"
        ]
    );
    // The contended class: its row (13 fields), then its contention point.
    let busy = &table.0[b];
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{}:", busy.label())))
        .expect("a row for the mutex");
    assert_eq!(row.split_whitespace().count(), 13, "{row}");
    assert_eq!(
        row.split_whitespace().nth(2),
        Some("1"),
        "contentions: {row}"
    );
    let site = format!("lock_stat.rs:{wline}:");
    assert!(
        text.contains(&site),
        "the contention point {site} in\n{text}"
    );
}
