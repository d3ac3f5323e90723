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
    /// "BUG: Invalid wait context": a lock taken where its waiters could not
    /// wait ([`WaitType`](super::WaitType)): a `SpinLock` (`spinlock_t`, a
    /// sleeping lock on PREEMPT_RT) inside a `RawSpinLock`, inside
    /// `rcu_read_lock_sched` or in a hardirq handler that is not threaded; a
    /// sleeping lock inside a spinning lock, an RCU reader or an irq
    /// (`check_wait_context`).
    InvalidWaitContext,
    /// "Illegal synchronize_rcu() in RCU read-side critical section".
    RcuSyncInReader,
    /// "held lock freed!": a lock dropped or re-initialised while this thread
    /// holds it (its guard leaked with `mem::forget`).
    HeldLockFreed,
    /// `lockdep_assert_held` failed.
    NotHeld,
    /// "Nested lock was not taken": an acquisition under a nest lock
    /// ([`acquire_nest`](super::acquire_nest)) whose nest lock is not held.
    NestLockNotHeld,
    /// The validator ran out of room (lock depth or classes); it turned itself off
    /// for the thread or the process.
    TooDeep,
    /// "local_irq_restore() called with irqs enabled": irq flags restored out of
    /// order, leaving irqs disabled (guards dropped in another order than
    /// taken). Beyond lockdep: the kernel's CONFIG_DEBUG_IRQFLAGS check.
    IrqRestoreOutOfOrder,
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
            ReportKind::InvalidWaitContext => "[ BUG: Invalid wait context ]",
            ReportKind::RcuSyncInReader => "WARNING: suspicious RCU usage",
            ReportKind::NotHeld => "WARNING: lockdep_assert_held() failed: lock not held",
            ReportKind::HeldLockFreed => "WARNING: held lock freed!",
            ReportKind::NestLockNotHeld => "WARNING: Nested lock was not taken",
            ReportKind::TooDeep => "BUG: lockdep ran out of room",
            ReportKind::IrqRestoreOutOfOrder => {
                "WARNING: local_irq_restore() called with irqs enabled (irq flags restored out of order)"
            }
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

/// Whether the validator is on (mode warn or panic): the hooks' first test,
/// one load and one compare while the mode is set (`MODE_WARN` and
/// `MODE_PANIC` are the two codes at or above `MODE_WARN`); the first call
/// reads `KSYNC_LOCKDEP`.
#[cfg(all(feature = "lockdep", not(loom)))]
#[inline(always)]
pub(super) fn enabled() -> bool {
    // Relaxed: as in `mode`, a switch with no data behind it.
    MODE.load(Ordering::Relaxed) >= MODE_WARN || enabled_slow()
}

#[cfg(all(feature = "lockdep", not(loom)))]
#[cold]
#[inline(never)]
fn enabled_slow() -> bool {
    mode() != Mode::Off
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

pub(super) static REPORTS: Mutex<Vec<Report>> = Mutex::new(Vec::new());

/// The reports' lock, with the fork mark (see
/// [`ForkLockMark`](crate::arch::ForkLockMark)): a `fork` from a signal
/// handler that interrupted this thread here does not wait for it.
pub(super) fn reports() -> crate::arch::MarkedGuard<'static, Vec<Report>> {
    crate::arch::lock_marked(&REPORTS)
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
///
/// As the kernel's stack traces skip lockdep, the trace starts at the call
/// into ksync (the lock call) and goes outward: the validator's own frames, and
/// std's thread-start tail after the program's first frame, are left out, and
/// each frame is one line, its name without generic arguments.
/// `KSYNC_LOCKDEP_TRACE=raw` prints std's trace as captured instead.
#[cfg(all(feature = "lockdep", not(loom)))]
pub(super) fn trace_text(bt: &Backtrace) -> String {
    if bt.status() != BacktraceStatus::Captured {
        return String::new();
    }
    let raw = bt.to_string();
    if std::env::var_os("KSYNC_LOCKDEP_TRACE").is_some_and(|v| v == "raw") {
        return format!("stack backtrace:\n{raw}\n");
    }
    format!("stack backtrace:\n{}\n", readable_trace(&raw, own_src()))
}

/// This crate's source directory as backtraces name it (`ksync/src/` in the
/// workspace, the registry's unpacked copy elsewhere): `file!()` of this file,
/// less its path inside `src/`.
#[cfg(all(feature = "lockdep", not(loom)))]
fn own_src() -> &'static str {
    let f = file!();
    f.strip_suffix("lockdep/report.rs").unwrap_or(f)
}

/// One frame of a std backtrace: the symbol, and `file:line:col` if known.
#[cfg_attr(not(all(feature = "lockdep", not(loom))), allow(dead_code))]
struct Frame<'a> {
    symbol: &'a str,
    at: Option<&'a str>,
}

/// The frames of a std backtrace's text (`  N: symbol` lines, each followed
/// by an optional `at file:line:col` line).
#[cfg_attr(not(all(feature = "lockdep", not(loom))), allow(dead_code))]
fn frames(raw: &str) -> Vec<Frame<'_>> {
    let mut out: Vec<Frame<'_>> = Vec::new();
    for line in raw.lines() {
        let t = line.trim_start();
        if let Some(at) = t.strip_prefix("at ") {
            if let Some(f) = out.last_mut() {
                f.at = Some(at);
            }
        } else if let Some((n, sym)) = t.split_once(": ")
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            out.push(Frame {
                symbol: sym,
                at: None,
            });
        }
    }
    out
}

/// Whether `sym` is std's, core's or alloc's (a closure shim, a thread-local
/// access, the thread start …), or the C library's thread start.
#[cfg_attr(not(all(feature = "lockdep", not(loom))), allow(dead_code))]
fn is_std(sym: &str) -> bool {
    let s = sym.trim_start_matches('<');
    [
        "std::",
        "core::",
        "alloc::",
        "__rust",
        "start_thread",
        "clone",
        "__libc",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// `sym` without generic arguments, `<T as Trait>::f` as `T::f`, and closures
/// as `{closure}`: `<ksync::lock::Lock<T,B>>::lock` reads `ksync::lock::Lock::lock`.
#[cfg_attr(not(all(feature = "lockdep", not(loom))), allow(dead_code))]
fn short_name(sym: &str) -> String {
    let mut s = sym;
    let mut rest = "";
    if let Some(inner) = s.strip_prefix('<') {
        // `<T as Trait>::f` or `<T>::f`: find the '>' that closes the opening '<'.
        let mut depth = 1;
        let mut close = None;
        for (i, c) in inner.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        if let Some(i) = close {
            let ty = &inner[..i];
            s = ty.split(" as ").next().unwrap_or(ty);
            rest = &inner[i + 1..];
        }
    }
    let mut out = String::new();
    let mut depth = 0;
    for c in s.chars().chain(rest.chars()) {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.replace("{{closure}}", "{closure}")
}

/// The readable form of a std backtrace's text `raw` (see [`trace_text`]):
/// from the outermost frame of the crate whose sources are under `own` (the
/// call the program made into ksync) to the program's first frame, one line
/// per frame. Falls back to leaving out only lockdep's frames when every frame
/// is the crate's own (ksync's unit tests).
#[cfg_attr(not(all(feature = "lockdep", not(loom))), allow(dead_code))]
fn readable_trace(raw: &str, own: &str) -> String {
    let fs = frames(raw);
    let own_frame = |f: &Frame<'_>| f.at.is_some_and(|a| a.contains(own));
    let lockdep = format!("{own}lockdep/");
    let in_lockdep = |f: &Frame<'_>| f.at.is_some_and(|a| a.contains(&lockdep));
    // The head: lockdep, ksync and std frames up to the program's first.
    let first_user = fs.iter().position(|f| !own_frame(f) && !is_std(f.symbol));
    let start = match first_user {
        // Keep the call into ksync (the outermost of ksync's frames).
        Some(u) if u > 0 && own_frame(&fs[u - 1]) => u - 1,
        Some(u) => u,
        None => fs
            .iter()
            .position(|f| !in_lockdep(f) && !is_std(f.symbol))
            .unwrap_or(0),
    };
    // The tail: std's thread (or main) start, from the frame that begins the
    // program's code, and the std shims just above it.
    let mut end = fs[start..]
        .iter()
        .position(|f| f.symbol.contains("__rust_begin_short_backtrace"))
        .map_or(fs.len(), |i| start + i);
    while end > start + 1 && is_std(fs[end - 1].symbol) {
        end -= 1;
    }
    let mut out = String::new();
    for f in &fs[start..end] {
        out.push(' ');
        out.push_str(&short_name(f.symbol));
        if let Some(at) = f.at {
            out.push_str(" at ");
            out.push_str(at);
        }
        out.push('\n');
    }
    out
}

/// The current stack, as a report prints it (`dump_stack`).
#[cfg(all(feature = "lockdep", not(loom)))]
pub(super) fn current_trace() -> String {
    trace_text(&Backtrace::capture())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A std backtrace as a report captured it, abridged: lockdep's frames,
    /// std's with_tls plumbing, ksync's lock, the program, the thread start.
    const RAW: &str = "   0: ksync::lockdep::graph::add_edge
             at ./ksync/src/lockdep/graph.rs:147:24
   1: core::option::Option<T>::map
             at /rustc/x/library/core/src/option.rs:1165:29
   2: std::thread::local::LocalKey<T>::try_with
             at /rustc/x/library/std/src/thread/local.rs:513:12
   3: ksync::lockdep::acquire
             at ./ksync/src/lockdep/mod.rs:347:5
   4: ksync::lock::Lock<T,B>::acquire
             at ./ksync/src/lock/mod.rs:238:13
   5: ksync::lock::Lock<T,B>::lock
             at ./ksync/src/lock/mod.rs:351:14
   6: ksync::lockdep_demo::imp::abba::{{closure}}
             at ./ksync-cli/src/lockdep_demo.rs:155:25
   7: <alloc::boxed::Box<F,A> as core::ops::function::FnOnce<Args>>::call_once
             at /rustc/x/library/alloc/src/boxed.rs:2240:9
   8: ksync::lockdep_demo::imp::main
             at ./ksync-cli/src/lockdep_demo.rs:300:5
   9: core::ops::function::FnOnce::call_once
             at /rustc/x/library/core/src/ops/function.rs:250:5
  10: std::sys::backtrace::__rust_begin_short_backtrace
             at /rustc/x/library/std/src/sys/backtrace.rs:166:18
  11: std::thread::lifecycle::spawn_unchecked::{{closure}}::{{closure}}
  12: start_thread
             at ./nptl/pthread_create.c:442:8
";

    #[test]
    fn readable_trace_starts_at_the_lock_call_and_ends_at_the_program() {
        let t = readable_trace(RAW, "ksync/src/");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                " ksync::lock::Lock::lock at ./ksync/src/lock/mod.rs:351:14",
                " ksync::lockdep_demo::imp::abba::{closure} at ./ksync-cli/src/lockdep_demo.rs:155:25",
                " alloc::boxed::Box::call_once at /rustc/x/library/alloc/src/boxed.rs:2240:9",
                " ksync::lockdep_demo::imp::main at ./ksync-cli/src/lockdep_demo.rs:300:5",
            ],
            "{t}"
        );
    }

    #[test]
    fn readable_trace_of_ksyncs_own_code_leaves_out_lockdep_only() {
        let raw = RAW.replace("./ksync-cli/src/", "./ksync/src/");
        let t = readable_trace(&raw, "ksync/src/");
        assert!(t.starts_with(" ksync::lock::Lock::acquire at"), "{t}");
        assert!(!t.contains("lockdep/") && !t.contains("begin_short"), "{t}");
    }

    #[test]
    fn short_names() {
        assert_eq!(
            short_name(
                "<core::panic::unwind_safe::AssertUnwindSafe<F> as core::ops::function::FnOnce<()>>::call_once"
            ),
            "core::panic::unwind_safe::AssertUnwindSafe::call_once"
        );
        assert_eq!(
            short_name("<std::sys::thread::unix::Thread>::new::thread_start"),
            "std::sys::thread::unix::Thread::new::thread_start"
        );
        assert_eq!(
            short_name("ksync::lock::Lock<T,B>::lock"),
            "ksync::lock::Lock::lock"
        );
    }
}
