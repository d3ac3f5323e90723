//! Torture types for spinlocks and rwlocks: every raw algorithm behind the one
//! generic `Lock<T, B>`, every context variant of `SpinLock`, both rwlocks with
//! readers, and the queued lock through lock_api's adapter.

use super::{Config, Monitor, Report, TortureLock, TortureType, lock_torture};
use ksync::lockdep::LockClassKey;
use ksync::spinlock::raw::{Mcs, Queued, RawRwSpin, RawSpin, ReaderPref, Tas, Ticket, Ttas};
use ksync::spinlock::{Lock, RwLockOf};

/// How a torture type takes its exclusive lock.
#[derive(Clone, Copy)]
enum Variant {
    Plain,
    Irq,
    IrqSave,
    Bh,
}

struct SpinT<B: RawSpin> {
    lock: Lock<(), B>,
    variant: Variant,
}

impl<B: RawSpin + 'static> TortureLock for SpinT<B> {
    fn write(&self, cs: &mut dyn FnMut()) {
        let _g = match self.variant {
            Variant::Plain => self.lock.lock().into_any(),
            Variant::Irq => self.lock.lock_irq().into_any(),
            Variant::IrqSave => self.lock.lock_irqsave().into_any(),
            Variant::Bh => self.lock.lock_bh().into_any(),
        };
        cs();
    }
    /// The irq variants' locks are irq-safe: their handlers take them with
    /// `lock_irqsave` (never `lock_irq`, whose unlock would enable irqs inside
    /// the handler).
    fn write_from_irq(&self, cs: &mut dyn FnMut()) -> bool {
        if !matches!(self.variant, Variant::Irq | Variant::IrqSave) {
            return false;
        }
        let _g = self.lock.lock_irqsave();
        cs();
        true
    }
    /// The bh variant's lock is taken in softirq context with a plain `lock`
    /// (bhs are off there already), as the kernel's softirq side does.
    fn write_from_softirq(&self, cs: &mut dyn FnMut()) -> bool {
        if !matches!(self.variant, Variant::Bh) {
            return false;
        }
        let _g = self.lock.lock();
        cs();
        true
    }
    fn sibling(&self, depth: usize) -> Option<Box<dyn TortureLock>> {
        static NESTED_KEYS: [LockClassKey; super::NESTED] = [
            LockClassKey::new("torture_spin_nested[0]"),
            LockClassKey::new("torture_spin_nested[1]"),
        ];
        let key = NESTED_KEYS.get(depth)?;
        Some(Box::new(SpinT::<B> {
            lock: Lock::with_class((), key.name(), key),
            variant: self.variant,
        }))
    }
}

struct RwT<B: RawRwSpin> {
    lock: RwLockOf<(), B>,
    /// Read-locked by irq handlers too: then writers take it with
    /// `write_irq` (the kernel's `tasklist_lock` pattern; readers keep a plain
    /// `read`, since an irq reader passes the readers it interrupts).
    irq_readers: bool,
}

impl<B: RawRwSpin + 'static> TortureLock for RwT<B> {
    fn write(&self, cs: &mut dyn FnMut()) {
        let _g = if self.irq_readers {
            self.lock.write_irq().into_any()
        } else {
            self.lock.write().into_any()
        };
        cs();
    }
    /// A handler takes the read side with a plain `read`: a writer holds
    /// the lock only with irqs off, so the handler never interrupts one
    /// on its own thread, and a waiting writer lets irq readers pass.
    fn read_from_irq(&self, cs: &mut dyn FnMut()) -> bool {
        if !self.irq_readers {
            return false;
        }
        let _g = self.lock.read();
        cs();
        true
    }
    fn sibling(&self, depth: usize) -> Option<Box<dyn TortureLock>> {
        // rwlocks take no explicit key: one creation site per position gives
        // each its own class.
        let lock = match depth {
            0 => RwLockOf::new(()),
            1 => RwLockOf::new(()),
            _ => return None,
        };
        Some(Box::new(RwT::<B> {
            lock,
            irq_readers: self.irq_readers,
        }))
    }
    fn read(&self, cs: &mut dyn FnMut()) {
        let _g = self.lock.read();
        cs();
    }
}

/// One lockdep class per variant: a lock taken in irq handlers (the `irqs`
/// fault's) must not share a class with locks taken with irqs enabled, or
/// lockdep rightly reports an inconsistent lock state.
static VARIANT_KEYS: [LockClassKey; 4] = [
    LockClassKey::new("torture_spin"),
    LockClassKey::new("torture_spin_irq"),
    LockClassKey::new("torture_spin_irqsave"),
    LockClassKey::new("torture_spin_bh"),
];

fn spin<B: RawSpin + 'static>(variant: Variant) -> impl Fn(&Config, &Monitor) -> Report {
    move |cfg, mon| {
        let key = &VARIANT_KEYS[variant as usize];
        let t = SpinT::<B> {
            lock: Lock::with_class((), key.name(), key),
            variant,
        };
        lock_torture(&t, cfg, mon)
    }
}

fn rw<B: RawRwSpin + 'static>(cfg: &Config, mon: &Monitor) -> Report {
    let t = RwT::<B> {
        lock: RwLockOf::new(()),
        irq_readers: false,
    };
    lock_torture(&t, cfg, mon)
}

/// The rwlock read-locked by irq handlers too; a lockdep class of its own
/// (this creation site), apart from the plain types' lock, whose writers
/// keep irqs on.
fn rw_irq<B: RawRwSpin + 'static>(cfg: &Config, mon: &Monitor) -> Report {
    let t = RwT::<B> {
        lock: RwLockOf::new(()),
        irq_readers: true,
    };
    lock_torture(&t, cfg, mon)
}

fn spin_lock(cfg: &Config, mon: &Monitor) -> Report {
    spin::<Queued>(Variant::Plain)(cfg, mon)
}
fn spin_lock_irq(cfg: &Config, mon: &Monitor) -> Report {
    spin::<Queued>(Variant::Irq)(cfg, mon)
}
fn spin_lock_irqsave(cfg: &Config, mon: &Monitor) -> Report {
    spin::<Queued>(Variant::IrqSave)(cfg, mon)
}
fn spin_lock_bh(cfg: &Config, mon: &Monitor) -> Report {
    spin::<Queued>(Variant::Bh)(cfg, mon)
}
fn raw_spin_lock(cfg: &Config, mon: &Monitor) -> Report {
    spin::<ksync::spinlock::raw::RawQueued>(Variant::Plain)(cfg, mon)
}
fn mcs(cfg: &Config, mon: &Monitor) -> Report {
    spin::<Mcs>(Variant::Plain)(cfg, mon)
}
fn tas(cfg: &Config, mon: &Monitor) -> Report {
    spin::<Tas>(Variant::Plain)(cfg, mon)
}
fn ttas(cfg: &Config, mon: &Monitor) -> Report {
    spin::<Ttas>(Variant::Plain)(cfg, mon)
}
fn ticket(cfg: &Config, mon: &Monitor) -> Report {
    spin::<Ticket>(Variant::IrqSave)(cfg, mon)
}
fn rw_lock(cfg: &Config, mon: &Monitor) -> Report {
    rw::<ReaderPref>(cfg, mon)
}
fn qrw_lock(cfg: &Config, mon: &Monitor) -> Report {
    rw::<ksync::spinlock::raw::QueuedRw>(cfg, mon)
}
fn rw_lock_irq(cfg: &Config, mon: &Monitor) -> Report {
    rw_irq::<ReaderPref>(cfg, mon)
}
fn qrw_lock_irq(cfg: &Config, mon: &Monitor) -> Report {
    rw_irq::<ksync::spinlock::raw::QueuedRw>(cfg, mon)
}

pub fn types() -> Vec<TortureType> {
    let t = |name, about, readers, run| TortureType {
        name,
        about,
        writers: 4,
        readers,
        hidden: false,
        run,
    };
    vec![
        t(
            "spin_lock",
            "SpinLock (queued, paravirt slow path): lock",
            0,
            spin_lock,
        ),
        t("spin_lock_irq", "SpinLock: lock_irq", 0, spin_lock_irq),
        t(
            "spin_lock_irqsave",
            "SpinLock: lock_irqsave",
            0,
            spin_lock_irqsave,
        ),
        t("spin_lock_bh", "SpinLock: lock_bh", 0, spin_lock_bh),
        t("raw_spin_lock", "RawSpinLock: lock", 0, raw_spin_lock),
        t("ticket", "Lock<_, Ticket>: lock_irqsave", 0, ticket),
        t("mcs", "Lock<_, Mcs>: MCS queue lock", 0, mcs),
        t("tas", "Lock<_, Tas>: test-and-set", 0, tas),
        t("ttas", "Lock<_, Ttas>: test-and-test-and-set", 0, ttas),
        t(
            "rw_lock",
            "ReaderPrefRwLock: classic reader-preferring rwlock_t",
            2,
            rw_lock,
        ),
        t(
            "qrw_lock",
            "RwLock (qrwlock, fair): readers and writers",
            2,
            qrw_lock,
        ),
        t(
            "rw_lock_irq",
            "ReaderPrefRwLock: write_irq, read, and read in irq handlers",
            2,
            rw_lock_irq,
        ),
        t(
            "qrw_lock_irq",
            "RwLock (qrwlock): write_irq, read, and read in irq handlers",
            2,
            qrw_lock_irq,
        ),
    ]
}
