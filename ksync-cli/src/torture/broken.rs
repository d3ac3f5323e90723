//! A deliberately broken lock, hidden from the default run: it proves the harness
//! catches a lock that does not exclude (`ksync torture --type broken_lock` must
//! print FAILURE).

use super::{Config, Monitor, Report, TortureLock, TortureType, lock_torture};

/// A "lock" that excludes nobody.
struct NoLock;

impl TortureLock for NoLock {
    fn write(&self, cs: &mut dyn FnMut()) {
        cs()
    }
    fn write_from_irq(&self, cs: &mut dyn FnMut()) -> bool {
        cs();
        true
    }
    fn sibling(&self) -> Option<Box<dyn TortureLock>> {
        Some(Box::new(NoLock))
    }
}

fn run(cfg: &Config, mon: &Monitor) -> Report {
    lock_torture(&NoLock, cfg, mon)
}

pub fn types() -> Vec<TortureType> {
    vec![TortureType {
        name: "broken_lock",
        about: "test-only: a lock that does not exclude; must FAIL",
        writers: 4,
        readers: 2,
        hidden: true,
        run,
    }]
}
