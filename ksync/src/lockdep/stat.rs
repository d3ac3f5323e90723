//! Lock statistics (`CONFIG_LOCK_STAT`, the kernel's
//! `Documentation/locking/lockstat.rst`): per lock class, how often it was
//! contended and acquired, how long acquisitions waited and how long the lock
//! was held, read and write holds apart, and the call sites that contended.
//!
//! What each column counts: [`LockStatTable`].
//!
//! Under each class the table lists where it was contended
//! (`contention_point`: the call site of the waiting acquisition) and where
//! the holder it waited for had taken it (`contending_point`), four of each,
//! the most frequent first. Call sites are `#[track_caller]` locations, as
//! lockdep's classes are: the place in the user's code that called `lock`.
//!
//! # Hooks (kernel/locking/lockdep.c: `lock_contended`, `lock_acquired`)
//!
//! The generic lock calls [`lock_acquired`](super::lock_acquired) after every
//! successful acquisition, behind one relaxed load of the switch; a backend
//! calls [`lock_contended`](super::lock_contended) from its slow path only,
//! once it knows it must wait. Both find the acquisition on the thread's
//! held-lock stack (lockdep pushed it before the wait), which keeps the stamps:
//! the contention's time, then the acquisition's; the release adds the hold
//! time. So the uncontended fast path pays nothing for contention tracking,
//! and nothing at all while statistics are off.
//!
//! # Off unless asked for
//!
//! Statistics are off until `KSYNC_LOCKSTAT=1` (read at the first lockdep slow
//! path, or the first call of this API) or [`lock_stat_enable`]`(true)`. Off,
//! the acquire path pays one relaxed load and a branch (`lock_acquired`), and a
//! spinning lock a second of the same word: its slow path is inside the raw
//! algorithm, which knows no lockdep map, so with statistics on the backend
//! tries once first and reports a failed try as the contention (the kernel's
//! `LOCK_CONTENDED`). The per-class tables are not allocated until statistics
//! are first enabled. Without the `lockdep` feature nothing is compiled in and
//! [`lock_stats`] is empty.
//!
//! A contention is the backend's slow path being taken: for a mutex or an
//! rwsem that includes waits that end in the optimistic spin (the kernel
//! counts only those that queue), for a spinlock a failed first try.
//!
//! Counters are atomics on the class (not a lock): a contended class's
//! counters are a shared cache line, but only while statistics are on. The
//! clock is `CLOCK_MONOTONIC` through the vDSO ([`now_ns`](crate::arch::time::now_ns)),
//! read only while statistics are on.

use core::fmt;
use core::panic::Location;

/// A time statistic in nanoseconds (`struct lock_time`): how many samples,
/// their minimum, maximum and total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockTime {
    /// Number of samples.
    pub nr: u64,
    /// Shortest sample (0 with no samples).
    pub min: u64,
    /// Longest sample.
    pub max: u64,
    /// Sum of the samples.
    pub total: u64,
}

impl LockTime {
    /// The mean sample, 0 with none.
    pub fn avg(&self) -> u64 {
        self.total.checked_div(self.nr).unwrap_or(0)
    }
}

/// The statistics of one kind of hold of a class, write (exclusive) or read
/// (shared): one row of `/proc/lock_stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldStats {
    /// Contentions while another thread acquired the lock last (`con-bounces`).
    pub con_bounces: u64,
    /// Waits from contention to acquisition; `nr` is the `contentions` column.
    pub waittime: LockTime,
    /// Acquisitions by another thread than the last acquirer (`acq-bounces`).
    pub acq_bounces: u64,
    /// Holds from acquisition to release; `nr` is the `acquisitions` column.
    pub holdtime: LockTime,
}

/// A call site and how often it was counted there (`contention_point`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockPoint {
    /// The caller of the lock method.
    pub site: &'static Location<'static>,
    /// How many contentions it accounts for.
    pub count: u64,
}

/// The lock statistics of one lock class (`struct lock_class_stats`), as
/// [`lock_stats`] returns them.
#[derive(Clone, Debug)]
pub struct ClassStats {
    /// The class's name (the lock type's, or the key's).
    pub name: &'static str,
    /// The lockdep subclass (`spin_lock_nested`), 0 normally.
    pub subclass: u32,
    /// Where the class was created (its first lock's creation site).
    pub site: &'static Location<'static>,
    /// Exclusive holds.
    pub write: HoldStats,
    /// Shared holds.
    pub read: HoldStats,
    /// Where acquisitions of the class waited, the most frequent first (at most 4).
    pub contention_points: Vec<LockPoint>,
    /// Where the holders those acquisitions waited for had taken the lock, the
    /// most frequent first (at most 4).
    pub contending_points: Vec<LockPoint>,
}

impl ClassStats {
    /// Acquisitions that waited, read and write (the column the table sorts by).
    pub fn contentions(&self) -> u64 {
        self.write.waittime.nr + self.read.waittime.nr
    }

    /// Acquisitions released, read and write.
    pub fn acquisitions(&self) -> u64 {
        self.write.holdtime.nr + self.read.holdtime.nr
    }

    /// The class as the table names it: `name[/subclass]@file:line`, its
    /// creation site (every `SpinLock` class is named `spinlock_t`; the site
    /// tells them apart). The file is its last path component.
    pub fn label(&self) -> String {
        let file = self.site.file().rsplit('/').next().unwrap_or("");
        if self.subclass == 0 {
            format!("{}@{file}:{}", self.name, self.site.line())
        } else {
            format!(
                "{}/{}@{file}:{}",
                self.name,
                self.subclass,
                self.site.line()
            )
        }
    }
}

/// The width of `/proc/lock_stat`'s columns: the class name, then 12 numbers.
const NAME_W: usize = 40;
const NUM_W: usize = 14;

/// A time in nanoseconds as the kernel prints it: microseconds, two decimals.
struct Us(u64);

impl fmt::Display for Us {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{}.{:02}", self.0 / 1000, (self.0 % 1000) / 10);
        f.pad(&s)
    }
}

/// `width` copies of `c` after `indent` spaces, and a newline (`seq_line`).
fn line(f: &mut fmt::Formatter<'_>, c: char, indent: usize, width: usize) -> fmt::Result {
    writeln!(f, "{:indent$}{}", "", c.to_string().repeat(width))
}

fn row(f: &mut fmt::Formatter<'_>, name: &str, h: &HoldStats) -> fmt::Result {
    let times = |f: &mut fmt::Formatter<'_>, t: &LockTime| {
        write!(
            f,
            " {:>NUM_W$} {:>NUM_W$} {:>NUM_W$} {:>NUM_W$} {:>NUM_W$}",
            t.nr,
            Us(t.min),
            Us(t.max),
            Us(t.total),
            Us(t.avg())
        )
    };
    write!(f, "{name:>NAME_W$} {:>NUM_W$}", h.con_bounces)?;
    times(f, &h.waittime)?;
    write!(f, " {:>NUM_W$}", h.acq_bounces)?;
    times(f, &h.holdtime)?;
    writeln!(f)
}

/// One class's block of `/proc/lock_stat` (`seq_stats`): a `-W` and a `-R`
/// row when it was held both ways (one unsuffixed row otherwise), then, if it
/// was contended, its contention points and its contending points.
impl fmt::Display for ClassStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = self.label();
        let both = self.write.holdtime.nr != 0 && self.read.holdtime.nr != 0;
        if self.write.holdtime.nr != 0 || self.read.holdtime.nr == 0 {
            let name = if both {
                format!("{label}-W:")
            } else {
                format!("{label}:")
            };
            row(f, &name, &self.write)?;
        }
        if self.read.holdtime.nr != 0 {
            row(f, &format!("{label}-R:"), &self.read)?;
        }
        if self.contention_points.is_empty() && self.contending_points.is_empty() {
            return Ok(());
        }
        let shown = label.len() + 1 + 2 * usize::from(both);
        let indent = NAME_W.saturating_sub(shown);
        for points in [&self.contention_points, &self.contending_points] {
            if points.is_empty() {
                continue;
            }
            line(f, '-', indent, shown)?;
            for p in points {
                writeln!(f, "{label:>NAME_W$} {:>NUM_W$} {:>29}", p.count, p.site)?;
            }
        }
        writeln!(f)?;
        line(f, '.', 0, NAME_W + 1 + 12 * (NUM_W + 1))?;
        writeln!(f)
    }
}

/// Lock statistics printed as `/proc/lock_stat` prints them: a version line,
/// the column headings, then every class, the most contended first, each with
/// its contention points beneath it. Times are in microseconds.
///
/// # The columns (`struct lock_class_stats`)
///
/// | column | counted |
/// |---|---|
/// | `con-bounces` | contentions while the lock's last acquirer was another thread |
/// | `contentions` | acquisitions that had to wait (the backend took its slow path) |
/// | `waittime-*` | from the contention to the acquisition: min, max, total, average |
/// | `acq-bounces` | acquisitions by another thread than the lock's last acquirer |
/// | `acquisitions` | acquisitions released (trylocks included), counted at the release |
/// | `holdtime-*` | from the acquisition to the release: min, max, total, average |
///
/// A *bounce*, in the kernel, is the lock's cache line moving to another CPU:
/// the acquiring CPU is not the one that acquired it last. ksync counts threads
/// instead of CPUs (the thread's identity is the address of its held-lock
/// stack): a bounce is an acquisition (or contention) by another thread than
/// the lock's last acquirer. A thread migrated between CPUs is no bounce here,
/// and two threads on one CPU are. The last acquirer is recorded when its
/// acquisition completes (`lock_acquired`, as the kernel records `lock->cpu`),
/// so a lock handed over to a waiter that has not run yet still names the
/// thread before it: `con-bounces` can be well below `contentions`.
///
/// ```
/// use ksync::lockdep::{self, LockStatTable};
/// let table = LockStatTable(lockdep::lock_stats());
/// assert!(table.to_string().starts_with("lock_stat version 0.4\n"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct LockStatTable(pub Vec<ClassStats>);

impl fmt::Display for LockStatTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = NAME_W + 1 + 12 * (NUM_W + 1);
        writeln!(f, "lock_stat version 0.4")?;
        line(f, '-', 0, width)?;
        write!(f, "{:>NAME_W$}", "class name")?;
        for h in [
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
            "holdtime-avg",
        ] {
            write!(f, " {h:>NUM_W$}")?;
        }
        writeln!(f)?;
        line(f, '-', 0, width)?;
        writeln!(f)?;
        for c in &self.0 {
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// The lock statistics of every class that was acquired or contended since
/// statistics were enabled (or last reset), the most contended first (then
/// the most acquired). Empty while statistics were never enabled, and without
/// the `lockdep` feature.
///
/// ```
/// use ksync::lockdep;
/// use ksync::spinlock::SpinLock;
/// lockdep::lock_stat_enable(true);
/// static L: SpinLock<u32> = SpinLock::new(0); let line = line!();
/// *L.lock() += 1;
/// let stats = lockdep::lock_stats();
/// if cfg!(feature = "lockdep") && lockdep::mode() != lockdep::Mode::Off {
///     let l = stats.iter().find(|c| c.site.line() == line).expect("counted");
///     assert_eq!((l.acquisitions(), l.contentions()), (1, 0));
/// }
/// # lockdep::lock_stat_enable(false);
/// ```
#[doc(alias = "lock_stat")]
pub fn lock_stats() -> Vec<ClassStats> {
    #[cfg(all(feature = "lockdep", not(loom)))]
    {
        imp::snapshot()
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    Vec::new()
}

/// [`lock_stats`] as a printable [`LockStatTable`] (`cat /proc/lock_stat`).
pub fn lock_stat_table() -> LockStatTable {
    LockStatTable(lock_stats())
}

/// Turns lock statistics on or off (`echo 1 > /proc/sys/kernel/lock_stat`).
/// Counts gathered so far are kept; [`lock_stat_reset`] clears them. Does
/// nothing without the `lockdep` feature.
#[doc(alias = "lock_stat")]
pub fn lock_stat_enable(on: bool) {
    #[cfg(all(feature = "lockdep", not(loom)))]
    imp::enable(on);
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    let _ = on;
}

/// Whether lock statistics are being gathered: [`lock_stat_enable`]'s
/// setting, else `KSYNC_LOCKSTAT` (`1`, `on`, `yes`, `true`); always `false`
/// without the `lockdep` feature.
pub fn lock_stat_enabled() -> bool {
    #[cfg(all(feature = "lockdep", not(loom)))]
    {
        imp::init_from_env();
        imp::on()
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    false
}

/// Clears every class's statistics (`echo 0 > /proc/lock_stat`). Counts
/// being recorded by other threads while it runs may survive in part.
#[doc(alias = "clear_lock_stats")]
pub fn lock_stat_reset() {
    #[cfg(all(feature = "lockdep", not(loom)))]
    imp::reset();
}

/// Whether lock statistics are on: one relaxed load (`false`, a constant,
/// without the feature). For a backend that must choose its contention-aware
/// path before taking the lock.
#[inline(always)]
pub(crate) fn on() -> bool {
    #[cfg(all(feature = "lockdep", not(loom)))]
    {
        imp::on()
    }
    #[cfg(not(all(feature = "lockdep", not(loom))))]
    false
}

#[cfg(all(feature = "lockdep", not(loom)))]
pub(super) use imp::{count_acquired, count_contended, count_hold, init_from_env};

/// The recording side (feature `lockdep`).
#[cfg(all(feature = "lockdep", not(loom)))]
mod imp {
    use core::panic::Location;
    use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
    use std::sync::{Once, OnceLock};

    use super::super::classes::{MAX_CLASSES, class};
    use super::super::state::{irqs_held_back, state};
    use super::super::{AcquireKind, LockdepMap};
    use super::{ClassStats, HoldStats, LockPoint, LockTime};

    /// Call sites remembered per class and kind of point; the table shows the
    /// 4 most frequent (the kernel keeps the first 4: `LOCKSTAT_POINTS`).
    const POINT_SLOTS: usize = 8;
    /// Call sites shown per class and kind of point.
    const POINTS_SHOWN: usize = 4;

    /// The switch. Relaxed everywhere: it guards no data (the tables are
    /// published by their `OnceLock`), and a thread that sees a change late
    /// only records, or skips, a few more samples.
    static ON: AtomicBool = AtomicBool::new(false);
    /// `KSYNC_LOCKSTAT` is read once, before the first explicit setting.
    static ENV: Once = Once::new();
    /// Per class id, its statistics; allocated when statistics are first enabled.
    static STATS: OnceLock<Box<[ClassStat]>> = OnceLock::new();

    #[inline(always)]
    pub(super) fn on() -> bool {
        ON.load(Ordering::Relaxed)
    }

    /// Applies `KSYNC_LOCKSTAT` (once; lockdep's first slow path calls it).
    pub(in super::super) fn init_from_env() {
        ENV.call_once(|| {
            let v = std::env::var("KSYNC_LOCKSTAT").unwrap_or_default();
            if matches!(v.as_str(), "1" | "on" | "yes" | "true") {
                set(true);
            }
        });
    }

    pub(super) fn enable(on: bool) {
        init_from_env();
        set(on);
    }

    fn set(on: bool) {
        if on {
            tables();
        }
        ON.store(on, Ordering::Relaxed);
    }

    fn tables() -> &'static [ClassStat] {
        STATS.get_or_init(|| (0..MAX_CLASSES).map(|_| ClassStat::default()).collect())
    }

    /// A [`LockTime`] of atomics. `min` is kept inverted (`!min`, raised with
    /// `fetch_max`) so that all-zero is the empty statistic.
    #[derive(Default)]
    struct AtomicTime {
        nr: AtomicU64,
        min_inv: AtomicU64,
        max: AtomicU64,
        total: AtomicU64,
    }

    // Relaxed, every counter: each is a statistic on its own, read by a
    // snapshot that orders nothing; a snapshot taken while others record may
    // see `nr` and `total` of different moments.
    impl AtomicTime {
        fn add(&self, t: u64) {
            self.nr.fetch_add(1, Ordering::Relaxed);
            self.total.fetch_add(t, Ordering::Relaxed);
            self.max.fetch_max(t, Ordering::Relaxed);
            self.min_inv.fetch_max(!t, Ordering::Relaxed);
        }

        fn get(&self) -> LockTime {
            let nr = self.nr.load(Ordering::Relaxed);
            LockTime {
                nr,
                min: if nr == 0 {
                    0
                } else {
                    !self.min_inv.load(Ordering::Relaxed)
                },
                max: self.max.load(Ordering::Relaxed),
                total: self.total.load(Ordering::Relaxed),
            }
        }

        fn clear(&self) {
            for a in [&self.nr, &self.min_inv, &self.max, &self.total] {
                a.store(0, Ordering::Relaxed);
            }
        }
    }

    #[derive(Default)]
    struct AtomicHold {
        con_bounces: AtomicU64,
        wait: AtomicTime,
        acq_bounces: AtomicU64,
        hold: AtomicTime,
    }

    impl AtomicHold {
        fn get(&self) -> HoldStats {
            HoldStats {
                con_bounces: self.con_bounces.load(Ordering::Relaxed),
                waittime: self.wait.get(),
                acq_bounces: self.acq_bounces.load(Ordering::Relaxed),
                holdtime: self.hold.get(),
            }
        }

        fn clear(&self) {
            self.con_bounces.store(0, Ordering::Relaxed);
            self.acq_bounces.store(0, Ordering::Relaxed);
            self.wait.clear();
            self.hold.clear();
        }
    }

    /// A call-site slot: null until claimed by a CAS, then counted.
    #[derive(Default)]
    struct Point {
        site: AtomicPtr<Location<'static>>,
        count: AtomicU64,
    }

    #[derive(Default)]
    struct ClassStat {
        /// Index 0: write (exclusive) holds, 1: read (shared) holds.
        rw: [AtomicHold; 2],
        contention: [Point; POINT_SLOTS],
        contending: [Point; POINT_SLOTS],
    }

    /// Counts `site` in `points` (`lock_point`): its slot, or the first free
    /// one; a site arriving when every slot is taken is not counted.
    fn count_point(points: &[Point; POINT_SLOTS], site: &'static Location<'static>) {
        let want = site as *const Location<'static> as *mut Location<'static>;
        for p in points {
            // Acquire: pairs with the Release CAS that claimed the slot, so
            // the `Location` it points to is seen initialised (it is a
            // static: this only keeps the argument local).
            let mut cur = p.site.load(Ordering::Acquire);
            if cur.is_null() {
                // Release: publishes the claim for the Acquire loads above.
                match p.site.compare_exchange(
                    core::ptr::null_mut(),
                    want,
                    Ordering::Release,
                    Ordering::Acquire,
                ) {
                    Ok(_) => cur = want,
                    Err(other) => cur = other,
                }
            }
            // SAFETY: only `&'static Location` pointers are stored in a slot
            // (`want` above); a non-null one stays valid for the program.
            // One call site may have several `Location` statics (one per
            // codegen unit), hence the comparison by value.
            if cur == want || unsafe { *cur == *site } {
                p.count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }

    fn top_points(points: &[Point; POINT_SLOTS]) -> Vec<LockPoint> {
        let mut v: Vec<LockPoint> = points
            .iter()
            .filter_map(|p| {
                // Acquire: pairs with the Release CAS that claimed the slot.
                let site = p.site.load(Ordering::Acquire);
                let count = p.count.load(Ordering::Relaxed);
                if site.is_null() || count == 0 {
                    return None;
                }
                // SAFETY: a non-null slot holds a `&'static Location`, stored
                // by `count_point` only.
                let site = unsafe { &*site };
                Some(LockPoint { site, count })
            })
            .collect();
        v.sort_by_key(|p| core::cmp::Reverse(p.count));
        v.truncate(POINTS_SHOWN);
        v
    }

    /// The statistics of class `id`, if statistics were ever enabled.
    #[inline]
    fn stat(id: u32) -> Option<&'static ClassStat> {
        STATS.get().and_then(|s| s.get(id as usize))
    }

    fn rw(kind: AcquireKind) -> usize {
        usize::from(kind != AcquireKind::Exclusive)
    }

    /// `lock_contended`, counted: an acquisition of `map` (class `class`,
    /// `kind`, made at `ip`) by the thread `me` must wait. The held-lock side
    /// (`held::stat_contended`) stamps the wait's start on the thread's entry.
    #[cold]
    #[inline(never)]
    pub(in super::super) fn count_contended(
        map: &LockdepMap,
        class: u32,
        kind: AcquireKind,
        ip: Option<&'static Location<'static>>,
        me: usize,
    ) {
        let Some(s) = stat(class) else { return };
        if let Some(ip) = ip {
            count_point(&s.contention, ip);
        }
        // Relaxed, both: statistics; an owner and site of different
        // acquisitions only misattribute one count.
        let owner_ip = map.stat_ip.load(Ordering::Relaxed);
        if !owner_ip.is_null() {
            // SAFETY: `stat_ip` holds only `&'static Location`s (`count_acquired`).
            count_point(&s.contending, unsafe { &*owner_ip });
        }
        if map.stat_owner.load(Ordering::Relaxed) != me {
            s.rw[rw(kind)].con_bounces.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `lock_acquired`, counted: the thread `me` now holds `map` (class
    /// `class`, `kind`, taken at `ip`), after waiting `wait` nanoseconds if its
    /// acquisition contended.
    #[cold]
    #[inline(never)]
    pub(in super::super) fn count_acquired(
        map: &LockdepMap,
        class: u32,
        kind: AcquireKind,
        ip: Option<&'static Location<'static>>,
        wait: Option<u64>,
        me: usize,
    ) {
        let Some(s) = stat(class) else { return };
        let rw = &s.rw[rw(kind)];
        if let Some(wait) = wait {
            rw.wait.add(wait);
        }
        // Relaxed: statistics (see `count_contended`).
        if map.stat_owner.swap(me, Ordering::Relaxed) != me {
            rw.acq_bounces.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(ip) = ip {
            let ip = ip as *const Location<'static> as *mut Location<'static>;
            map.stat_ip.store(ip, Ordering::Relaxed);
        }
    }

    /// A hold of class `class` (`kind`) that lasted `hold` nanoseconds ended.
    #[cold]
    #[inline(never)]
    pub(in super::super) fn count_hold(class: u32, kind: AcquireKind, hold: u64) {
        if let Some(s) = stat(class) {
            s.rw[rw(kind)].hold.add(hold);
        }
    }

    pub(super) fn reset() {
        let Some(all) = STATS.get() else { return };
        for s in all.iter() {
            s.rw.iter().for_each(AtomicHold::clear);
            for p in s.contention.iter().chain(&s.contending) {
                p.count.store(0, Ordering::Relaxed);
                // Relaxed: a slot emptied is claimed again by CAS.
                p.site.store(core::ptr::null_mut(), Ordering::Relaxed);
            }
        }
    }

    pub(super) fn snapshot() -> Vec<ClassStats> {
        init_from_env();
        let Some(all) = STATS.get() else {
            return Vec::new();
        };
        let n = irqs_held_back(|| state().nclasses);
        let mut v: Vec<ClassStats> = (1..=n)
            .filter_map(|id| {
                let s = &all[id as usize];
                let c = class(id);
                let stats = ClassStats {
                    name: c.name,
                    subclass: c.subclass,
                    site: c.site,
                    write: s.rw[0].get(),
                    read: s.rw[1].get(),
                    contention_points: top_points(&s.contention),
                    contending_points: top_points(&s.contending),
                };
                let used = stats.acquisitions() != 0
                    || stats.contentions() != 0
                    || !stats.contention_points.is_empty();
                used.then_some(stats)
            })
            .collect();
        v.sort_by(|a, b| {
            (b.contentions(), b.acquisitions())
                .cmp(&(a.contentions(), a.acquisitions()))
                .then_with(|| a.label().cmp(&b.label()))
        });
        v
    }
}
