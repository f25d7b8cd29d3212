//! Steps in flight: the same step (same cache key) in two stages of one build runs once.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use crate::cache::{CacheKey, OpRecord};

/// Steps running now, by cache key, so that a duplicate waits for the first instead of running again.
#[derive(Default)]
pub(crate) struct InFlight {
    slots: Mutex<HashMap<CacheKey, Arc<Slot>>>,
}

/// The outcome of a running step: `None` while it runs, then its record (`None` inside when it failed).
#[derive(Default)]
pub(crate) struct Slot {
    outcome: Mutex<Option<Option<OpRecord>>>,
    finished: Condvar,
}

pub(crate) enum Claim {
    /// Run it, then [`Slot::finish`].
    Leader(Arc<Slot>),
    /// Someone else runs it: [`Slot::wait`].
    Follower(Arc<Slot>),
}

impl InFlight {
    pub(crate) fn claim(&self, key: CacheKey) -> Claim {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(&key) {
            Some(slot) => Claim::Follower(Arc::clone(slot)),
            None => {
                let slot = Arc::new(Slot::default());
                slots.insert(key, Arc::clone(&slot));
                Claim::Leader(slot)
            }
        }
    }
}

impl Slot {
    pub(crate) fn finish(&self, record: Option<OpRecord>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(record);
        self.finished.notify_all();
    }

    pub(crate) fn wait(&self) -> Option<OpRecord> {
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(record) = outcome.as_ref() {
                return record.clone();
            }
            outcome = self
                .finished
                .wait(outcome)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}
