//! Lockdep reports: what was found, the run-time mode, the collection that tests
//! read, and (feature `lockdep`) the pieces of text every report shares.

#[cfg(all(feature = "lockdep", not(loom)))]
use std::backtrace::{Backtrace, BacktraceStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

/// What a [`Report`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReportKind {
    /// "possible circular locking dependency detected": a lock order that closes a
    /// cycle in the dependency graph (AB-BA, or longer).
    CircularDependency,
    /// "possible recursive locking detected": a class taken while already held,
    /// without a distinct subclass and not as a recursive read.
    RecursiveLocking,
    /// "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage": one class taken in an
    /// irq (or softirq) and also with that irq enabled.
    InconsistentIrqUsage,
    /// "HARDIRQ-safe -> HARDIRQ-unsafe lock order detected" (or SOFTIRQ-): a new
    /// dependency makes an irq-safe class held while an irq-unsafe one is taken,
    /// directly or through a chain (`print_bad_irq_dependency`).
    IrqSafeToUnsafe,
    /// "possible irq lock inversion dependency detected": a class just became
    /// irq-safe (or irq-unsafe) and the graph already connects it to an
    /// irq-unsafe (irq-safe) class (`print_irq_inversion_bug`).
    IrqLockInversion,
    /// "bad unlock balance detected": a release of a lock this thread does not hold.
    BadUnlockBalance,
    /// "lock held when returning to user space": locks still held at thread exit.
    HeldAtExit,
    /// "BUG: sleeping function called from invalid context".
    SleepInAtomic,
    /// "Illegal synchronize_rcu() in RCU read-side critical section".
    RcuSyncInReader,
    /// `lockdep_assert_held` failed.
    NotHeld,
    /// The validator ran out of room (lock depth or classes); it turned itself off
    /// for the thread or the process.
    TooDeep,
}

impl ReportKind {
    /// The report's heading, as the kernel prints it.
    pub fn title(self) -> &'static str {
        match self {
            ReportKind::CircularDependency => {
                "WARNING: possible circular locking dependency detected"
            }
            ReportKind::RecursiveLocking => "WARNING: possible recursive locking detected",
            ReportKind::InconsistentIrqUsage => "WARNING: inconsistent lock state",
            ReportKind::IrqSafeToUnsafe => "WARNING: irq-safe -> irq-unsafe lock order detected",
            ReportKind::IrqLockInversion => {
                "WARNING: possible irq lock inversion dependency detected"
            }
            ReportKind::BadUnlockBalance => "WARNING: bad unlock balance detected!",
            ReportKind::HeldAtExit => {
                "WARNING: lock held when returning to user space (thread exit)!"
            }
            ReportKind::SleepInAtomic => "BUG: sleeping function called from invalid context",
            ReportKind::RcuSyncInReader => "WARNING: suspicious RCU usage",
            ReportKind::NotHeld => "WARNING: lockdep_assert_held() failed: lock not held",
            ReportKind::TooDeep => "BUG: lockdep ran out of room",
        }
    }
}

/// One lockdep report: its kind, the lock classes it names, and the text printed.
#[derive(Clone, Debug)]
pub struct Report {
    /// What was found.
    pub kind: ReportKind,
    /// The names of the lock classes involved (for a cycle: in cycle order,
    /// starting with the lock being acquired).
    pub classes: Vec<&'static str>,
    /// The full text, as printed to stderr.
    pub text: String,
    /// The thread (kernel: task) id that raised it.
    pub tid: i32,
}

impl Report {
    /// Whether the report names the class `name`.
    pub fn involves(&self, name: &str) -> bool {
        self.classes.contains(&name)
    }
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What lockdep does when it finds something (`KSYNC_LOCKDEP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Validate nothing (`KSYNC_LOCKDEP=off`).
    Off,
    /// Print the report to stderr and collect it (`KSYNC_LOCKDEP=warn`, the default).
    Warn,
    /// Print, collect, then panic (`KSYNC_LOCKDEP=panic`).
    Panic,
}

const MODE_UNSET: u8 = 0;
const MODE_OFF: u8 = 1;
const MODE_WARN: u8 = 2;
const MODE_PANIC: u8 = 3;

/// The run-time mode; 0 until first read from `KSYNC_LOCKDEP`.
static MODE: AtomicU8 = AtomicU8::new(MODE_UNSET);

/// The current mode: [`set_mode`]'s, else `KSYNC_LOCKDEP`'s (`off`, `warn`, `panic`;
/// anything else is `warn`). Always [`Mode::Off`] without the `lockdep` feature.
#[inline]
pub fn mode() -> Mode {
    if !cfg!(all(feature = "lockdep", not(loom))) {
        return Mode::Off;
    }
    // Relaxed: the mode is a switch with no data behind it.
    match MODE.load(Ordering::Relaxed) {
        MODE_OFF => Mode::Off,
        MODE_WARN => Mode::Warn,
        MODE_PANIC => Mode::Panic,
        _ => mode_from_env(),
    }
}

#[cold]
fn mode_from_env() -> Mode {
    let m = match std::env::var("KSYNC_LOCKDEP").as_deref() {
        Ok("off") | Ok("0") => Mode::Off,
        Ok("panic") => Mode::Panic,
        _ => Mode::Warn,
    };
    // A racing set_mode wins: only replace "unset".
    let _ = MODE.compare_exchange(MODE_UNSET, encode(m), Ordering::Relaxed, Ordering::Relaxed);
    mode()
}

fn encode(m: Mode) -> u8 {
    match m {
        Mode::Off => MODE_OFF,
        Mode::Warn => MODE_WARN,
        Mode::Panic => MODE_PANIC,
    }
}

/// Sets the mode for the whole process, overriding `KSYNC_LOCKDEP`. Turning it
/// off and on again is allowed but loses what was held meanwhile: only switch it
/// where no lock is held.
pub fn set_mode(m: Mode) {
    MODE.store(encode(m), Ordering::Relaxed);
}

/// At most this many reports wait in the collection; older ones are dropped.
const MAX_KEPT: usize = 1024;

static REPORTS: Mutex<Vec<Report>> = Mutex::new(Vec::new());

fn reports() -> std::sync::MutexGuard<'static, Vec<Report>> {
    REPORTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes and returns the reports raised by the current thread (empty without the
/// `lockdep` feature). Tests run in parallel threads, so each sees its own.
pub fn take_reports() -> Vec<Report> {
    let tid = crate::arch::gettid();
    take_where(|r| r.tid == tid)
}

/// Removes and returns the reports, raised by any thread, that name the class
/// `name` (for reports raised on another thread, such as locks held at its exit).
pub fn take_reports_involving(name: &str) -> Vec<Report> {
    take_where(|r| r.involves(name))
}

fn take_where(mut pred: impl FnMut(&Report) -> bool) -> Vec<Report> {
    let mut all = reports();
    let mut taken = Vec::new();
    let mut i = 0;
    while i < all.len() {
        if pred(&all[i]) {
            taken.push(all.remove(i));
        } else {
            i += 1;
        }
    }
    taken
}

/// Prints, collects and (in panic mode) panics on `r`. Called with no lockdep
/// lock held.
#[cfg_attr(not(all(feature = "lockdep", not(loom))), allow(dead_code))]
#[cold]
pub(super) fn emit(r: Report) {
    let m = mode();
    if m == Mode::Off {
        return;
    }
    eprint!("{}", r.text);
    let title = r.kind.title();
    {
        let mut all = reports();
        if all.len() >= MAX_KEPT {
            all.remove(0);
        }
        all.push(r);
    }
    if m == Mode::Panic {
        panic!("ksync lockdep: {title}");
    }
}

// The pieces of text every report shares. Each check writes its own report
// beside the check (`graph`: cycles and recursion; `usage`: the irq rules;
// `wait`: sleeping in atomic context; `held`: unlock balance, depth, exit).

/// The report's heading, underlined, as the kernel prints it.
#[cfg(all(feature = "lockdep", not(loom)))]
pub(super) fn banner(kind: ReportKind) -> String {
    banner_titled(kind.title())
}

/// A report's heading `title`, underlined, for the kinds whose heading names
/// more than the kind ("HARDIRQ-safe -> HARDIRQ-unsafe …").
#[cfg(all(feature = "lockdep", not(loom)))]
pub(super) fn banner_titled(title: &str) -> String {
    let rule = "=".repeat(title.len().max(20));
    let dash = "-".repeat(title.len().max(20));
    format!("\n{rule}\n{title}\n{dash}\n")
}

/// The current thread's name, as reports print it beside its id (`comm`).
#[cfg(all(feature = "lockdep", not(loom)))]
pub(super) fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned()
}

/// `bt` as a report prints it; empty if backtraces are disabled.
#[cfg(all(feature = "lockdep", not(loom)))]
pub(super) fn trace_text(bt: &Backtrace) -> String {
    if bt.status() == BacktraceStatus::Captured {
        format!("stack backtrace:\n{bt}\n")
    } else {
        String::new()
    }
}

/// The current stack, as a report prints it (`dump_stack`).
#[cfg(all(feature = "lockdep", not(loom)))]
pub(super) fn current_trace() -> String {
    trace_text(&Backtrace::capture())
}
