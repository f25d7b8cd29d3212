//! Pushing: the image's layers compressed as the options ask (built layers are stored uncompressed; their gzip
//! variants are made once and remembered by the store, [`hoist_oci::Store::compressed_image_with`]), then blobs
//! (each checked with `HEAD`, mounted from a sibling repository when the store knows one, else uploaded
//! monolithically or in chunks, several at once), then manifests, then the index, then the tags.
//!
//! Compression and upload overlap: a layer's upload to the first destination starts as soon as its compressed blob
//! is stored, while the next layers are still compressing; the manifest, which names every layer's digest, waits
//! for all of them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hoist_layer::Digest;
use hoist_oci::media_type::{MediaKind, classify_str};
use hoist_oci::oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use hoist_oci::{BlobInfo, CompressProgress, LayerCompression, Store, digest_from_oci};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::client::{Client, pull_scope, push_scope};
use crate::config::Endpoint;
use crate::progress::{Event, Reporter};
use crate::{Error, ImageReference, Result};

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blobs uploaded at once.
    pub concurrency: usize,
    /// Blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks of `chunk_size`.
    pub monolithic_limit: u64,
    /// Chunk size for chunked uploads.
    pub chunk_size: u64,
    /// How layers are compressed on the way (default: gzip for uncompressed layers, compressed ones as they are).
    /// The pushed manifest is written to the store too; the store's own reference keeps the uncompressed one.
    pub compression: LayerCompression,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            // dockerd's max-concurrent-uploads default.
            concurrency: 5,
            // Each upload holds one chunk in memory: 5 × 8 MiB keeps a push's peak RSS well under 100 MB, and on
            // loopback 8 MiB chunks are as fast as 16 MiB ones (bench/registry-vs-skopeo.sh).
            monolithic_limit: 8 * 1024 * 1024,
            chunk_size: 8 * 1024 * 1024,
            compression: LayerCompression::default(),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The pushed target's digest (the manifest, or the index): `digest:` in `docker push`. For an image built
    /// here this is the manifest over the compressed layers, not the one the store's reference names.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// The references written, fully qualified.
    pub references: Vec<String>,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blobs the registry had already.
    pub existing: usize,
}

/// What happened to one blob.
enum BlobOutcome {
    Existing,
    Mounted,
    Uploaded,
}

impl Client {
    /// Pushes the store image `source` (a reference or image ID) to every destination. Destinations in one
    /// repository share the blob uploads; each gets its tag (or digest).
    pub async fn push(
        &self,
        store: Arc<Store>,
        source: &str,
        destinations: &[ImageReference],
        options: &PushOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Result<PushedImage> {
        if let Some(blocked) = destinations
            .iter()
            .find(|d| self.config().is_blocked(d.registry(), d.repository()))
        {
            return Err(Error::Blocked {
                reference: blocked.to_string(),
            });
        }
        let found = store.find_image(source)?;
        let stored = found.record.target.to_descriptor();
        let compression = options.compression;
        let converting = Arc::clone(&store);
        let (ready, mut ready_blobs) = unbounded_channel();
        let forward = CompressStatus {
            reporter: Arc::clone(&reporter),
            ready,
            started: Mutex::new(HashMap::new()),
        };
        let compressing = tokio::task::spawn_blocking(move || {
            converting.compressed_image_with(&stored, &compression, &|event| forward.forward(event))
        });
        // The first destination's uploads start while the layers compress.
        let mut first_uploads = Uploads::new(options.concurrency);
        if let Some(first) = destinations.first() {
            let endpoint = self
                .config()
                .push_endpoint(first.registry(), first.repository());
            let mount_from = mount_sources(&found.references, first);
            self.upload_while_compressing(
                &mut ready_blobs,
                &mut first_uploads,
                (&endpoint, &mount_from),
                &store,
                options,
                &reporter,
            )
            .await?;
        }
        let target = compressing
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let target_digest = digest_from_oci(target.digest()).map_err(hoist_oci::Error::from)?;
        // Manifests to push (children of an index first), and every blob they need.
        let mut manifests: Vec<Descriptor> = Vec::new();
        let mut blobs: Vec<Descriptor> = Vec::new();
        match classify_str(target.media_type().as_ref()) {
            MediaKind::Index => {
                let index: ImageIndex = store.read_index(&target_digest)?;
                for child in index.manifests() {
                    let digest = digest_from_oci(child.digest()).map_err(hoist_oci::Error::from)?;
                    if classify_str(child.media_type().as_ref()) == MediaKind::Manifest
                        && store.has_blob(&digest)
                    {
                        let manifest = store.read_manifest(&digest)?;
                        if manifest_blobs_present(&store, &manifest) {
                            collect_blobs(&manifest, &mut blobs);
                            manifests.push(child.clone());
                        }
                    }
                }
            }
            _ => {
                let manifest = store.read_manifest(&target_digest)?;
                collect_blobs(&manifest, &mut blobs);
            }
        }
        let mut seen = BTreeSet::new();
        blobs.retain(|b| seen.insert(b.digest().to_string()));

        let mut pushed = PushedImage {
            digest: target_digest,
            size: target.size(),
            references: Vec::new(),
            uploaded: 0,
            mounted: 0,
            existing: 0,
        };
        let mut done_repositories: BTreeSet<String> = BTreeSet::new();
        let mut first_uploads = Some(first_uploads);
        for destination in destinations {
            let endpoint = self
                .config()
                .push_endpoint(destination.registry(), destination.repository());
            let mount_from = mount_sources(&found.references, destination);
            if done_repositories.insert(destination.name()) {
                let uploads = first_uploads
                    .take()
                    .unwrap_or_else(|| Uploads::new(options.concurrency));
                let outcomes = self
                    .push_blobs(
                        uploads,
                        (&endpoint, &mount_from),
                        &store,
                        &blobs,
                        options,
                        &reporter,
                    )
                    .await?;
                for outcome in outcomes {
                    match outcome {
                        BlobOutcome::Existing => pushed.existing += 1,
                        BlobOutcome::Mounted => pushed.mounted += 1,
                        BlobOutcome::Uploaded => pushed.uploaded += 1,
                    }
                }
                for child in &manifests {
                    let digest = digest_from_oci(child.digest()).map_err(hoist_oci::Error::from)?;
                    self.push_manifest(
                        &endpoint,
                        &store,
                        child,
                        &digest.to_string(),
                        &reporter,
                        destination,
                    )
                    .await?;
                }
            }
            let tag = destination.manifest_reference();
            self.push_manifest(&endpoint, &store, &target, &tag, &reporter, destination)
                .await?;
            pushed.references.push(destination.to_string());
        }
        Ok(pushed)
    }

    async fn push_manifest(
        &self,
        endpoint: &Endpoint,
        store: &Store,
        descriptor: &Descriptor,
        reference: &str,
        reporter: &Arc<dyn Reporter>,
        destination: &ImageReference,
    ) -> Result<()> {
        let digest = digest_from_oci(descriptor.digest()).map_err(hoist_oci::Error::from)?;
        let bytes = store.read_blob(&digest)?;
        let returned = self
            .put_manifest(
                endpoint,
                reference,
                descriptor.media_type().as_ref(),
                &bytes,
            )
            .await?;
        if let Some(returned) = returned
            && let Ok(actual) = returned.parse::<Digest>()
            && actual != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest pushed to {}", destination.name()),
                expected: digest,
                actual,
            });
        }
        let shown = if reference.starts_with("sha256:") {
            format!("{}@{reference}", destination.name())
        } else {
            format!("{}:{reference}", destination.name())
        };
        reporter.report(Event::ManifestPushed {
            reference: shown,
            digest,
            size: bytes.len() as u64,
        });
        Ok(())
    }

    /// Starts the upload of each layer blob `ready` sends (to `to`: an endpoint and the repositories to mount
    /// from) until the compression ends and drops its sender; an upload that failed meanwhile fails the push.
    async fn upload_while_compressing(
        &self,
        ready: &mut UnboundedReceiver<BlobInfo>,
        uploads: &mut Uploads,
        to: (&Endpoint, &[String]),
        store: &Arc<Store>,
        options: &PushOptions,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<()> {
        while let Some(blob) = ready.recv().await {
            uploads.start(self, to, store, blob.digest, blob.size, options, reporter);
            // Uploads that ended meanwhile: a failed one fails the push now.
            while let Some(joined) = uploads.tasks.try_join_next() {
                uploads
                    .outcomes
                    .push(joined.map_err(|e| Error::Task(e.to_string()))??);
            }
        }
        Ok(())
    }

    /// Uploads each of `blobs` that `uploads` has not started, then waits for all of them.
    async fn push_blobs(
        &self,
        mut uploads: Uploads,
        to: (&Endpoint, &[String]),
        store: &Arc<Store>,
        blobs: &[Descriptor],
        options: &PushOptions,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<Vec<BlobOutcome>> {
        for blob in blobs {
            let digest = digest_from_oci(blob.digest()).map_err(hoist_oci::Error::from)?;
            uploads.start(self, to, store, digest, blob.size(), options, reporter);
        }
        while let Some(joined) = uploads.tasks.join_next().await {
            uploads
                .outcomes
                .push(joined.map_err(|e| Error::Task(e.to_string()))??);
        }
        Ok(uploads.outcomes)
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_blob(
        &self,
        endpoint: &Endpoint,
        store: &Arc<Store>,
        digest: Digest,
        size: u64,
        mount_from: &[String],
        options: &PushOptions,
        reporter: &dyn Reporter,
    ) -> Result<BlobOutcome> {
        let scopes = [push_scope(&endpoint.repository)];
        if self
            .blob_exists(endpoint, &digest, &scopes)
            .await?
            .is_some()
        {
            reporter.report(Event::BlobExists { digest, size });
            return Ok(BlobOutcome::Existing);
        }
        // One mount attempt, from the first sibling repository: a registry that cannot mount starts a normal
        // upload instead (202), which is then used.
        let mut upload = None;
        if let Some(from) = mount_from.first() {
            let scopes = [push_scope(&endpoint.repository), pull_scope(from)];
            match self
                .start_upload(endpoint, &scopes, Some((&digest, from)))
                .await?
            {
                None => {
                    reporter.report(Event::BlobMounted {
                        digest,
                        from: from.clone(),
                    });
                    return Ok(BlobOutcome::Mounted);
                }
                Some(location) => upload = Some(location),
            }
        }
        let mut location = match upload {
            Some(location) => location,
            None => self
                .start_upload(endpoint, &scopes, None)
                .await?
                .expect("an upload without mount always returns a location"),
        };
        reporter.report(Event::BlobStarted { digest, size });
        let started = Instant::now();
        let file = Arc::new(store.open_blob(&digest)?);
        if size <= options.monolithic_limit {
            let bytes = read_range(&file, &digest, 0, size).await?;
            self.finish_upload(endpoint, &scopes, &location, &digest, bytes)
                .await?;
        } else {
            let mut offset = 0;
            while offset < size {
                let length = options.chunk_size.max(1).min(size - offset);
                let chunk = read_range(&file, &digest, offset, length).await?;
                location = self
                    .upload_chunk(endpoint, &scopes, &location, offset, chunk)
                    .await?;
                offset += length;
                reporter.report(Event::BlobProgress {
                    digest,
                    transferred: offset,
                    size,
                });
            }
            self.finish_upload(endpoint, &scopes, &location, &digest, Vec::new())
                .await?;
        }
        reporter.report(Event::BlobDone {
            digest,
            size,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(BlobOutcome::Uploaded)
    }
}

/// Blob uploads to one repository, up to a number at once, each blob once.
struct Uploads {
    semaphore: Arc<tokio::sync::Semaphore>,
    tasks: tokio::task::JoinSet<Result<BlobOutcome>>,
    started: HashSet<Digest>,
    outcomes: Vec<BlobOutcome>,
}

impl Uploads {
    fn new(concurrency: usize) -> Self {
        Self {
            semaphore: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            tasks: tokio::task::JoinSet::new(),
            started: HashSet::new(),
            outcomes: Vec::new(),
        }
    }

    /// Starts uploading `digest` (`size` bytes) to `to` unless it was started already.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        client: &Client,
        to: (&Endpoint, &[String]),
        store: &Arc<Store>,
        digest: Digest,
        size: u64,
        options: &PushOptions,
        reporter: &Arc<dyn Reporter>,
    ) {
        if !self.started.insert(digest) {
            return;
        }
        let (client, endpoint, store, reporter, options) = (
            client.clone(),
            to.0.clone(),
            Arc::clone(store),
            Arc::clone(reporter),
            options.clone(),
        );
        let mount_from = to.1.to_vec();
        let semaphore = Arc::clone(&self.semaphore);
        self.tasks.spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
            client
                .push_blob(
                    &endpoint,
                    &store,
                    digest,
                    size,
                    &mount_from,
                    &options,
                    &*reporter,
                )
                .await
        });
    }
}

/// Turns the store's compression progress into [`Event`]s and hands each ready layer blob to the uploads.
struct CompressStatus {
    reporter: Arc<dyn Reporter>,
    ready: UnboundedSender<BlobInfo>,
    /// When each layer being compressed started, and its stored size.
    started: Mutex<HashMap<Digest, (Instant, u64)>>,
}

impl CompressStatus {
    fn forward(&self, progress: CompressProgress) {
        match progress {
            CompressProgress::Started { source, size } => {
                self.started
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(source, (Instant::now(), size));
                self.reporter.report(Event::CompressStarted {
                    digest: source,
                    size,
                });
            }
            CompressProgress::Progress { source, read, size } => {
                self.reporter.report(Event::CompressProgress {
                    digest: source,
                    read,
                    size,
                });
            }
            CompressProgress::Ready { source, blob } => {
                let started = self
                    .started
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&source);
                if let Some((started, size)) = started {
                    self.reporter.report(Event::CompressDone {
                        digest: source,
                        size,
                        compressed: blob.digest,
                        compressed_size: blob.size,
                        seconds: started.elapsed().as_secs_f64(),
                    });
                }
                // The receiver is gone only when the push already failed.
                let _ = self.ready.send(blob);
            }
        }
    }
}

/// Sibling repositories on `destination`'s registry that reference this image (`references`, the store's names
/// for it): candidates for mounting.
fn mount_sources(references: &[hoist_oci::Reference], destination: &ImageReference) -> Vec<String> {
    references
        .iter()
        .filter_map(|r| r.to_string().parse::<ImageReference>().ok())
        .filter(|r| {
            r.registry() == destination.registry() && r.repository() != destination.repository()
        })
        .map(|r| r.repository().to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Whether every non-foreign layer and the config of a manifest are in the store (an index child pulled for
/// another platform is not, and is left out of the push).
fn manifest_blobs_present(store: &Store, manifest: &ImageManifest) -> bool {
    std::iter::once(manifest.config())
        .chain(
            manifest
                .layers()
                .iter()
                .filter(|l| !is_foreign(l.media_type().as_ref())),
        )
        .all(|d| digest_from_oci(d.digest()).is_ok_and(|digest| store.has_blob(&digest)))
}

/// The config and the distributable layers (foreign layers are not pushed, as Docker does not push them).
fn collect_blobs(manifest: &ImageManifest, blobs: &mut Vec<Descriptor>) {
    blobs.push(manifest.config().clone());
    blobs.extend(
        manifest
            .layers()
            .iter()
            .filter(|l| !is_foreign(l.media_type().as_ref()))
            .cloned(),
    );
}

/// Docker's foreign layers and OCI non-distributable layers.
pub(crate) fn is_foreign(media_type: &str) -> bool {
    media_type == hoist_oci::media_type::DOCKER_FOREIGN_LAYER_GZIP
        || media_type.contains("nondistributable")
}

async fn read_range(
    file: &Arc<std::fs::File>,
    digest: &Digest,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>> {
    let file = Arc::clone(file);
    let digest = *digest;
    tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0; usize::try_from(length).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buffer, offset)
            .map_err(|source| hoist_oci::Error::ReadBlob { digest, source })?;
        Ok(buffer)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}
