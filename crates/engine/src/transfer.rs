//! Blob transfers through hoist-registry (base-image pulls, `--push`) shown as statuses of a build vertex, the way
//! BuildKit prints per-layer byte counts: each blob's first and last event always, the ones between at most every
//! [`STATUS_INTERVAL`].

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::reporter::{Reporter, Vertex, VertexStatus};

/// Progress lines for one blob come at most this often.
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// Per-blob timers of one transfer vertex.
#[derive(Debug, Default)]
pub(crate) struct BlobStatuses {
    /// When each blob started, and when its last line was reported.
    blobs: Mutex<HashMap<String, (Instant, Instant)>>,
}

impl BlobStatuses {
    /// Reports `current` of `total` bytes of `digest` on `vertex`, unless a line for it went out less than
    /// [`STATUS_INTERVAL`] ago (a blob's start and end are always reported).
    pub(crate) fn report(
        &self,
        reporter: &dyn Reporter,
        vertex: &Vertex,
        digest: impl Display,
        current: u64,
        total: u64,
        done: bool,
    ) {
        let id = digest.to_string();
        let now = Instant::now();
        let elapsed = {
            let mut blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
            let (started, printed) = blobs.entry(id.clone()).or_insert((now, now));
            if current != 0 && !done && now.duration_since(*printed) < STATUS_INTERVAL {
                return;
            }
            *printed = now;
            now.duration_since(*started)
        };
        reporter.on_vertex_status(
            vertex,
            &VertexStatus {
                id,
                current,
                total,
                elapsed,
                done,
            },
        );
    }
}
