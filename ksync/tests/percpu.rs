//! Stress tests for `ksync::percpu`: per-CPU data stays exact while the OS (and
//! the test itself, with `sched_setaffinity`) migrates threads mid-operation.

use ksync::percpu::{LocalLock, PerCpu, PercpuCounter};
use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::AtomicU64;

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most `size_of::<cpu_set_t>()` bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Moves the calling thread to `cpu` (best effort: the call may be refused in a
/// restricted container; the OS still migrates threads on its own).
fn pin_to(cpu: usize) {
    // SAFETY: as above; sched_setaffinity only reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

/// Restores the thread's affinity to every allowed CPU.
fn unpin(cpus: &[usize]) {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

const THREADS: usize = 8;
const OPS: u64 = 20_000;

#[test]
fn this_cpu_add_is_exact_while_threads_migrate() {
    let cpus = allowed_cpus();
    let counts: PerCpu<AtomicU64> = PerCpu::new();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (counts, cpus) = (&counts, &cpus);
            s.spawn(move || {
                for i in 0..OPS {
                    if i % 256 == 0 {
                        // Migrate between operations, round robin over the CPUs.
                        pin_to(cpus[(t + i as usize / 256) % cpus.len()]);
                    }
                    counts.this_cpu_add(3);
                    counts.this_cpu_dec();
                }
                unpin(cpus);
            });
        }
    });
    assert_eq!(counts.sum(), THREADS as u64 * OPS * 2);
    // Updates landed on the slots of the CPUs the threads were pinned to.
    let used = counts
        .iter()
        .filter(|(_, c)| ksync::percpu::PerCpuInt::read(*c) > 0)
        .count();
    assert!(used >= 1);
    if cpus.len() > 1 {
        assert!(
            used > 1,
            "migration never moved an update to another CPU's slot"
        );
    }
}

#[test]
fn get_cpu_var_element_is_never_torn_and_no_update_is_lost() {
    let cpus = allowed_cpus();
    // Two plain (non-atomic) fields that every update changes together.
    let vars: PerCpu<LocalLock<[u64; 2]>> = PerCpu::new();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (vars, cpus) = (&vars, &cpus);
            s.spawn(move || {
                for i in 0..OPS / 4 {
                    let mut v = vars.get_cpu_var();
                    assert_eq!(v[0], v[1], "torn per-CPU element");
                    v[0] += 1;
                    if i % 64 == 0 {
                        // Migrate while holding the element: it stays ours.
                        pin_to(cpus[(t + i as usize) % cpus.len()]);
                    }
                    v[1] += 1;
                    v.put();
                }
                unpin(cpus);
            });
        }
    });
    let mut total = 0;
    for (_, slot) in vars.iter() {
        let v = slot.lock();
        assert_eq!(v[0], v[1]);
        total += v[0];
    }
    assert_eq!(total, THREADS as u64 * (OPS / 4));
}

#[test]
fn percpu_counter_sum_is_exact_after_16_threads_add_and_exit() {
    let c = PercpuCounter::new(7);
    let rounds = 3;
    for _ in 0..rounds {
        std::thread::scope(|s| {
            for t in 0..16i64 {
                let c = &c;
                s.spawn(move || {
                    for i in 0..10_000i64 {
                        // Mixed signs and sizes, crossing the batch both ways.
                        c.add(if i % 3 == 0 { -t } else { t + 1 });
                    }
                });
            }
        });
    }
    let per_thread = |t: i64| {
        (0..10_000i64)
            .map(|i| if i % 3 == 0 { -t } else { t + 1 })
            .sum::<i64>()
    };
    let expected = 7 + rounds * (0..16).map(per_thread).sum::<i64>();
    assert_eq!(c.sum(), expected);
    assert_eq!(c.sum_positive(), expected.max(0));
    // After the threads are joined and their exit folds ran, the fast read is exact
    // too; exit folds may still be running right after the scope, so wait for
    // them (the bound only turns a hang into a failure).
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.read() != expected && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(c.read(), expected);
}

#[test]
fn percpu_counter_compare_is_correct_near_and_far() {
    let c = PercpuCounter::with_batch(0, 64);
    let done = std::sync::Barrier::new(5);
    let checked = std::sync::Barrier::new(5);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    c.inc();
                }
                c.add(30);
                // Keep the delta in this thread's slot while the main thread compares.
                done.wait();
                checked.wait();
            });
        }
        done.wait();
        // With deltas in the slots, read() lags; compare() is still exact.
        let exact = 4 * 1030;
        assert!((c.read() - exact).abs() < 4 * 64);
        for rhs in [
            0,
            exact - 200,
            exact - 1,
            exact,
            exact + 1,
            exact + 200,
            1 << 40,
        ] {
            assert_eq!(c.compare(rhs), exact.cmp(&rhs), "compare({rhs})");
        }
        assert_eq!(c.compare(-5), CmpOrdering::Greater);
        checked.wait();
    });
    assert_eq!(c.sum(), 4 * 1030);
}

#[test]
fn percpu_counter_sum_never_sees_a_fold_half_done() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    // One thread adds 1 at a time, folding every 8th add into the shared count
    // with no lock, and publishes how many adds it has made. A sum that saw a
    // fold half done — the amount in the count and still in the slot, or in
    // neither — would exceed the adds made, or go backwards.
    let c = PercpuCounter::with_batch(0, 8);
    let made = AtomicI64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                c.add(1);
                n += 1;
                // Release: the add above happens-before a reader that sees `n`.
                made.store(n, Ordering::Release);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let (mut last, mut sums) = (0, 0u64);
        let mut bad = None;
        while std::time::Instant::now() < deadline || sums < 10_000 {
            // Acquire pairs with the Release store above.
            let before = made.load(Ordering::Acquire);
            let v = c.sum();
            let after = made.load(Ordering::Acquire);
            // The sum may include the one add whose count is not published yet.
            if v < before || v > after + 1 || v < last {
                bad = Some(format!(
                    "sum {v}: adds made {before}..={after}, last sum {last}"
                ));
                break;
            }
            last = v;
            sums += 1;
        }
        // Stop the adder before failing, or the scope would wait for it forever.
        stop.store(true, Ordering::Relaxed);
        assert_eq!(bad, None);
    });
    assert_eq!(c.sum(), made.load(Ordering::Relaxed));
}
