//! Synchronous entry points for callers without an async runtime (the build engine's worker threads): each call
//! runs the async client on a small runtime of its own.

use std::sync::Arc;

use hoist_oci::Store;

use crate::{
    Client, Error, ImageReference, PullOptions, PulledImage, PushOptions, PushedImage, Reporter,
    Result,
};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Task(format!("cannot start the async runtime: {e}")))
}

impl Client {
    /// [`Client::pull`], blocking the calling thread. Must not be called from inside an async runtime.
    pub fn pull_blocking(
        &self,
        store: Arc<Store>,
        reference: &ImageReference,
        options: &PullOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Result<PulledImage> {
        runtime()?.block_on(self.pull(store, reference, options, reporter))
    }

    /// [`Client::resolve`], blocking the calling thread. Must not be called from inside an async runtime.
    pub fn resolve_blocking(&self, reference: &ImageReference) -> Result<crate::FetchedManifest> {
        runtime()?.block_on(self.resolve(reference))
    }

    /// [`Client::push`], blocking the calling thread. Must not be called from inside an async runtime.
    pub fn push_blocking(
        &self,
        store: Arc<Store>,
        source: &str,
        destinations: &[ImageReference],
        options: &PushOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Result<PushedImage> {
        runtime()?.block_on(self.push(store, source, destinations, options, reporter))
    }
}
