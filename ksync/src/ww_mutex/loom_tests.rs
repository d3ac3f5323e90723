//! Loom models of the wound and die decisions: two transactions take two
//! mutexes in opposite orders (the classic ABBA), backing off on `-EDEADLK`.
//! Loom reports a deadlock if both ever sleep for good, and its cell checks
//! catch two holders at once; the models also check who backed off.

use super::*;
use crate::loom::sync::Arc;

static WW: WwClass = WwClass::new("loom_ww_acquire", "loom_ww_mutex");
static WD: WwClass = WwClass::new_wait_die("loom_wd_acquire", "loom_wd_mutex");

/// Takes `ms[first]` then `ms[1 - first]` in one transaction, with the
/// kernel's back-off loop; increments both (non-atomically: loom's cell
/// checks catch overlap). Returns the context's stamp and its back-offs.
fn transaction(class: &'static WwClass, ms: &[WwMutex<u32>; 2], first: usize) -> (u64, u64) {
    let ctx = WwAcquireCtx::new(class);
    let (mut held, backoffs) = acquire_all(&ctx, ms, &[first, 1 - first]);
    for g in &mut held {
        **g += 1;
    }
    (ctx.stamp(), backoffs)
}

/// Runs the ABBA model on `class`; checks that some interleaving made the
/// younger transaction back off (the decision under test was reached).
fn abba(class: &'static WwClass) {
    // Outside the model (std, not loom): counts executions with a back-off.
    let backed_off = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = backed_off.clone();
    loom::model(move || {
        let ms = Arc::new([WwMutex::new(class, 0u32), WwMutex::new(class, 0u32)]);
        let ms2 = ms.clone();
        let t = loom::thread::spawn(move || transaction(class, &ms2, 1));
        let (s0, b0) = transaction(class, &ms, 0);
        let (s1, b1) = t.join().unwrap();
        // Only the younger transaction ever backs off.
        let younger_backoffs = if s0 > s1 { b0 } else { b1 };
        assert_eq!(b0 + b1, younger_backoffs);
        if b0 + b1 > 0 {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        for m in ms.iter() {
            assert_eq!(m.owner.load(Ordering::Relaxed), 0);
        }
        assert_eq!(*ms[0].lock_noctx() + *ms[1].lock_noctx(), 4);
    });
    assert!(
        backed_off.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no interleaving reached a back-off"
    );
}

/// Wound-wait: the older transaction wounds the younger holder (waking it
/// if it sleeps on the other mutex); the younger backs off; both finish.
#[test]
fn loom_ww_mutex_wound() {
    abba(&WW);
}

/// Wait-die: the younger transaction, meeting the older as holder or as a
/// waiter queued ahead, dies and retries; both finish.
#[test]
fn loom_ww_mutex_die() {
    abba(&WD);
}
