//! Which CPU the calling thread is on, and how many there can be.
//!
//! glibc (2.35 and later) registers a restartable-sequences area for every thread
//! and exports its offset from the thread pointer as `__rseq_offset`. The kernel
//! writes the current CPU number into that area's `cpu_id` field whenever it
//! schedules the thread, so reading it is one load from thread-local memory. Where
//! rseq is not registered (older glibc, `GLIBC_TUNABLES=glibc.pthread.rseq=0`) the
//! `getcpu` vDSO call is used instead.

use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Offset of the `cpu_id` field of glibc's `struct rseq` from the thread
/// pointer (`__rseq_offset + 4`); 0 until looked up and where rseq is not in use
/// (0 cannot be a real offset: the thread pointer's own word is there).
static RSEQ_CPU: AtomicIsize = AtomicIsize::new(0);
/// Whether the lookup has run (so that a process without rseq looks up once).
static RSEQ_LOOKED_UP: AtomicBool = AtomicBool::new(false);
/// Byte offset of `cpu_id` within `struct rseq` (after `cpu_id_start`).
const RSEQ_CPU_ID: isize = 4;

#[inline(always)]
fn thread_pointer() -> Option<*const u8> {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: *const u8;
        // SAFETY: on x86-64 Linux `fs:0` holds the thread control block's own address
        // (the TLS ABI's self pointer); reading it has no side effects.
        unsafe {
            core::arch::asm!("mov {}, qword ptr fs:0", out(reg) tp, options(nostack, readonly, preserves_flags));
        }
        Some(tp)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: *const u8;
        // SAFETY: reading the EL0 thread-pointer register has no side effects.
        unsafe {
            core::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nostack, nomem, preserves_flags));
        }
        Some(tp)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

/// Reads the 32-bit word at `off` bytes from the thread pointer.
///
/// # Safety
///
/// `off` must be the offset of a 4-byte-aligned word of this thread's
/// thread-control area that is only ever accessed atomically (here: the rseq
/// area's `cpu_id`, which the kernel writes while the thread is not running).
#[inline(always)]
unsafe fn tp_load_u32(off: isize) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let v: u32;
        // SAFETY: per the contract, `fs:[off]` is a valid aligned word of this
        // thread's TCB; a 4-byte aligned load is single-copy atomic, like a
        // relaxed atomic load. One instruction: no separate thread-pointer load.
        unsafe {
            core::arch::asm!("mov {0:e}, dword ptr fs:[{1}]", out(reg) v, in(reg) off, options(nostack, readonly, preserves_flags));
        }
        v
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        match thread_pointer() {
            // SAFETY: per the contract the word is valid, aligned and accessed
            // only atomically.
            Some(tp) => unsafe {
                (*(tp.offset(off) as *const core::sync::atomic::AtomicU32)).load(Ordering::Relaxed)
            },
            None => u32::MAX,
        }
    }
}

#[cold]
#[inline(never)]
fn rseq_lookup() {
    let mut off = 0;
    if thread_pointer().is_some() {
        // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names only looks symbols up.
        let (offp, sizep) = unsafe {
            (
                libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()) as *const isize,
                libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()) as *const u32,
            )
        };
        if !offp.is_null() && !sizep.is_null() {
            // SAFETY: glibc defines both as initialised, read-only data objects of these types.
            let (o, size) = unsafe { (offp.read(), sizep.read()) };
            // A zero size means glibc did not register rseq (disabled by tunable).
            if size >= 8 {
                off = o + RSEQ_CPU_ID;
            }
        }
    }
    RSEQ_CPU.store(off, Ordering::Relaxed);
    RSEQ_LOOKED_UP.store(true, Ordering::Relaxed);
}

/// [`cpu_id`] when the fast path could not answer: rseq offset not looked up
/// yet, rseq not in use, or not registered for this thread.
#[cold]
#[inline(never)]
fn cpu_id_slow() -> usize {
    if !RSEQ_LOOKED_UP.load(Ordering::Relaxed) {
        rseq_lookup();
    }
    let off = RSEQ_CPU.load(Ordering::Relaxed);
    if off != 0 {
        // SAFETY: as in `cpu_id`.
        let cpu = unsafe { tp_load_u32(off) };
        if (cpu as i32) >= 0 {
            return cpu as usize;
        }
    }
    cpu_id_syscall()
}

/// The kernel's number for the CPU the calling thread is running on
/// (`smp_processor_id()`, `raw_smp_processor_id()`).
///
/// The answer can be stale by the time it is used: the OS may migrate the thread
/// at any instruction. Per-CPU data built on it (see [`crate::percpu`]) must stay
/// correct when that happens. Costs one load of a static and one thread-local
/// load (`mov eax, fs:[off]`) where glibc registered rseq, a vDSO call otherwise.
#[doc(alias = "smp_processor_id")]
#[doc(alias = "raw_smp_processor_id")]
#[inline(always)]
pub fn cpu_id() -> usize {
    match cpu_id_fast() {
        Some(cpu) => cpu,
        None => cpu_id_slow(),
    }
}

/// [`cpu_id`]'s fast path alone: `None` where it would take the slow path
/// (for callers that want their own slow path to be a tail call).
#[inline(always)]
pub(crate) fn cpu_id_fast() -> Option<usize> {
    let off = RSEQ_CPU.load(Ordering::Relaxed);
    if off != 0 {
        // SAFETY: a nonzero `RSEQ_CPU` is `__rseq_offset + 4`: glibc's rseq area
        // lives at tp + __rseq_offset for every thread for the thread's whole
        // life, is 32-byte aligned, and the kernel updates `cpu_id` only while
        // this thread is not running user code, so the load is not a data race.
        let cpu = unsafe { tp_load_u32(off) };
        // Negative values mean "not registered for this thread".
        if (cpu as i32) >= 0 {
            return Some(cpu as usize);
        }
    }
    None
}

/// [`cpu_id`] through `getcpu(2)` (vDSO), never through rseq: for comparison in
/// benchmarks and as the fallback.
#[inline]
pub fn cpu_id_syscall() -> usize {
    rustix::thread::sched_getcpu()
}

/// The number of possible CPU ids (`nr_cpu_ids`): every [`cpu_id`] is below it.
///
/// Read once from `/sys/devices/system/cpu/possible` (as the kernel exposes
/// `cpu_possible_mask`), falling back to the configured processor count.
pub fn nr_cpu_ids() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.load(Ordering::Relaxed);
    if n != 0 {
        return n;
    }
    let n = possible_from_sysfs().unwrap_or_else(|| {
        // SAFETY: sysconf has no preconditions.
        let c = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
        if c > 0 { c as usize } else { 1 }
    });
    N.store(n, Ordering::Relaxed);
    n
}

/// The number of CPUs online now (`num_online_cpus()`).
#[doc(alias = "num_online_cpus")]
pub fn online_cpus() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Parses a cpulist such as `0-3,8-11` and returns highest id + 1.
fn possible_from_sysfs() -> Option<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    parse_cpulist_max(text.trim()).map(|m| m + 1)
}

fn parse_cpulist_max(s: &str) -> Option<usize> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|part| {
            part.rsplit('-')
                .next()
                .and_then(|n| n.trim().parse::<usize>().ok())
        })
        .try_fold(0usize, |m, v| v.map(|v| m.max(v)))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cpulist_parsing() {
        assert_eq!(parse_cpulist_max("0"), Some(0));
        assert_eq!(parse_cpulist_max("0-3"), Some(3));
        assert_eq!(parse_cpulist_max("0-3,8-11"), Some(11));
        assert_eq!(parse_cpulist_max("x"), None);
    }

    #[test]
    fn cpu_id_is_a_possible_cpu_and_agrees_with_getcpu() {
        let n = nr_cpu_ids();
        assert!(n >= 1);
        for _ in 0..1000 {
            let a = cpu_id();
            assert!(a < n, "cpu {a} >= nr_cpu_ids {n}");
        }
        // Pinned to one CPU, both sources must name it.
        // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
        let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
        // SAFETY: the set and the size describe valid memory.
        let got = unsafe { libc::sched_getaffinity(0, core::mem::size_of_val(&set), &mut set) };
        assert_eq!(got, 0);
        let first = (0..n)
            .find(|&c| {
                // SAFETY: `c` < nr_cpu_ids <= CPU_SETSIZE and `set` is initialised.
                unsafe { libc::CPU_ISSET(c, &set) }
            })
            .unwrap();
        std::thread::spawn(move || {
            // SAFETY: as above.
            let mut one: libc::cpu_set_t = unsafe { core::mem::zeroed() };
            // SAFETY: `first` < CPU_SETSIZE; the set is valid memory.
            unsafe {
                libc::CPU_SET(first, &mut one);
                assert_eq!(
                    libc::sched_setaffinity(0, core::mem::size_of_val(&one), &one),
                    0
                );
            }
            std::thread::yield_now();
            assert_eq!(cpu_id(), first);
            assert_eq!(cpu_id_syscall(), first);
        })
        .join()
        .unwrap();
    }
}
