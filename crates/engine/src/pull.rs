//! Pulling base images that are missing from the store, through `hoist-registry`, with per-layer progress reported
//! as statuses of a vertex of the build (BuildKit shows a pull the same way).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hoist_oci::Store;
use hoist_plan::Platform;
use hoist_registry::{Client, Event, ImageReference, PullOptions};

use crate::reporter::{Reporter, Vertex};
use crate::resolver::ImagePuller;
use crate::transfer::BlobStatuses;
use hoist_oci::error_chain;

/// An [`ImagePuller`] over a registry client: each pull is a vertex of its own (`[internal] pull REF`), numbered
/// down from `usize::MAX` so it never collides with the plan's ops, which count up from 0.
pub struct RegistryPuller<'a> {
    store_root: PathBuf,
    /// Makes the client on the first pull, so a registry configuration error only fails builds that pull.
    client: &'a (dyn Fn() -> hoist_registry::Result<Client> + Sync),
    reporter: Arc<dyn Reporter + Send>,
    pulls: AtomicUsize,
}

impl<'a> RegistryPuller<'a> {
    /// A puller into the store at `store_root`, reporting to `reporter`.
    pub fn new(
        store_root: PathBuf,
        client: &'a (dyn Fn() -> hoist_registry::Result<Client> + Sync),
        reporter: Arc<dyn Reporter + Send>,
    ) -> Self {
        Self {
            store_root,
            client,
            reporter,
            pulls: AtomicUsize::new(0),
        }
    }
}

impl ImagePuller for RegistryPuller<'_> {
    fn pull(&self, reference: &str, platform: &Platform) -> Result<(), String> {
        let parsed: ImageReference = reference.parse().map_err(|e| format!("{e}"))?;
        let store = Store::open(&self.store_root).map_err(|e| error_chain(&e))?;
        let client = (self.client)().map_err(|e| error_chain(&e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("failed to start the registry client's runtime: {e}"))?;
        let options = PullOptions {
            platform: platform.to_string().parse().map_err(|e| format!("{e}"))?,
            ..PullOptions::default()
        };
        let vertex = Vertex {
            op: usize::MAX - self.pulls.fetch_add(1, Ordering::Relaxed),
            name: format!("[internal] pull {reference}"),
        };
        let started = Instant::now();
        self.reporter.on_vertex_start(&vertex);
        let status = PullStatus {
            reporter: Arc::clone(&self.reporter),
            vertex: vertex.clone(),
            layers: BlobStatuses::default(),
        };
        let pulled = runtime
            .block_on(client.pull(Arc::new(store), &parsed, &options, Arc::new(status)))
            .map(|_| ())
            .map_err(|e| error_chain(&e));
        match &pulled {
            Ok(()) => self.reporter.on_vertex_done(&vertex, started.elapsed()),
            Err(error) => self.reporter.on_vertex_error(&vertex, error),
        }
        pulled
    }
}

/// Forwards a pull's per-layer events (hoist-registry's reporter) into the build's progress as vertex statuses.
struct PullStatus {
    reporter: Arc<dyn Reporter + Send>,
    vertex: Vertex,
    layers: BlobStatuses,
}

impl hoist_registry::Reporter for PullStatus {
    fn report(&self, event: Event) {
        let (digest, current, total, done) = match event {
            Event::BlobStarted { digest, size } => (digest, 0, size, false),
            Event::BlobProgress {
                digest,
                transferred,
                size,
            } => (digest, transferred, size, false),
            Event::BlobDone { digest, size, .. } => (digest, size, size, true),
            _ => return,
        };
        self.layers
            .report(&*self.reporter, &self.vertex, digest, current, total, done);
    }
}
