//! Pulling: reference → manifest (through an index, choosing the platform) → config, then layers, into the store.
//!
//! Layers download in parallel, each streamed straight into [`Store::ingest_pulled_layer`], which hashes, verifies
//! and measures it in the same pass and records the diff ID the config announces, unverified: the tar is hashed
//! when the layer is first unpacked (containerd's model), not here. A connection fault mid-blob resumes with a `Range` request (or, if the registry
//! ignores ranges, by re-reading and discarding what was already stored); a blob already in the store is never
//! requested. Mirrors are tried before the origin, and any failure on a mirror falls through to the next endpoint.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_layer::Digest;
use hoist_oci::media_type::{MediaKind, classify_str};
use hoist_oci::oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageIndex, ImageManifest, MediaType,
};
use hoist_oci::{DigestExt, Expected, Store, digest_from_oci};
use tokio::runtime::Handle;

use crate::client::{Client, FetchedManifest, SpeedCheck, error_chain};
use crate::config::Endpoint;
use crate::progress::{Event, Reporter};
use crate::{Error, ImageReference, Platform, Result};

/// How often progress is reported per blob.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// What to pull and how.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to choose from an index (default: the host's).
    pub platform: Platform,
    /// Layers downloaded at once.
    pub concurrency: usize,
    /// Whether to point the reference's familiar name at the pulled image in the store (as `docker pull` does).
    pub tag: bool,
    /// Whether a single-platform image must match `platform` (Docker refuses a mismatch when `--platform` is
    /// given, and accepts it otherwise).
    pub require_platform: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            platform: Platform::host(),
            // dockerd's max-concurrent-downloads default.
            concurrency: 3,
            tag: true,
            require_platform: false,
        }
    }
}

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The reference pulled, fully qualified.
    pub reference: ImageReference,
    /// The digest the reference resolved to (an index's digest when it was one): `Digest:` in `docker pull`.
    pub resolved: Digest,
    /// The platform manifest's descriptor, as stored.
    pub manifest: Descriptor,
    /// The image ID (the config's digest).
    pub id: Digest,
    /// The endpoint (mirror or origin host) that served it.
    pub served_by: String,
    /// Blobs downloaded (config and layers not already in the store).
    pub downloaded: usize,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// The store reference it was tagged as, if any (`golang:1.24`).
    pub tagged: Option<hoist_oci::Reference>,
}

impl Client {
    /// Pulls `reference` into `store`, through mirrors then the origin.
    pub async fn pull(
        &self,
        store: Arc<Store>,
        reference: &ImageReference,
        options: &PullOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Result<PulledImage> {
        if self
            .config()
            .is_blocked(reference.registry(), reference.repository())
        {
            return Err(Error::Blocked {
                reference: reference.to_string(),
            });
        }
        let endpoints = self
            .config()
            .pull_endpoints(reference.registry(), reference.repository());
        let mut last_error = None;
        for endpoint in endpoints {
            match self
                .pull_from(&endpoint, &store, reference, options, &reporter)
                .await
            {
                Ok(pulled) => return Ok(pulled),
                Err(error) if endpoint.mirror => {
                    reporter.report(Event::EndpointFailed {
                        registry: endpoint.host.clone(),
                        error: error.to_string(),
                    });
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.expect("pull_endpoints always returns the origin, which returns above"))
    }

    async fn pull_from(
        &self,
        endpoint: &Endpoint,
        store: &Arc<Store>,
        reference: &ImageReference,
        options: &PullOptions,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<PulledImage> {
        let display = reference.to_string();
        let top = self
            .get_manifest(endpoint, &reference.manifest_reference(), &display)
            .await?;
        reporter.report(Event::Resolved {
            reference: display.clone(),
            digest: top.digest,
            registry: endpoint.host.clone(),
        });
        let mut stored_index = None;
        let manifest_fetched = match classify_str(&top.media_type) {
            MediaKind::Manifest => top.clone(),
            MediaKind::Index => {
                let index: ImageIndex = parse_json(&top.bytes, endpoint, "image index")?;
                let chosen = choose_platform(&index, &options.platform, &display)?;
                let digest = digest_from_oci(chosen.digest())
                    .map_err(|e| invalid(endpoint, "image index", e))?;
                let child = self
                    .get_manifest(endpoint, &digest.to_string(), &display)
                    .await?;
                stored_index = Some(top.clone());
                child
            }
            _ => {
                return Err(Error::UnsupportedManifest {
                    reference: display,
                    media_type: top.media_type,
                });
            }
        };
        if classify_str(&manifest_fetched.media_type) != MediaKind::Manifest {
            return Err(Error::UnsupportedManifest {
                reference: display,
                media_type: manifest_fetched.media_type,
            });
        }
        let manifest: ImageManifest =
            parse_json(&manifest_fetched.bytes, endpoint, "image manifest")?;

        // The config first (small, and it names the diffIDs the layers are recorded with), then every layer in
        // parallel.
        let config_job = BlobJob {
            client: self.clone(),
            endpoint: endpoint.clone(),
            store: Arc::clone(store),
            reporter: Arc::clone(reporter),
            digest: digest_from_oci(manifest.config().digest())
                .map_err(|e| invalid(endpoint, "manifest", e))?,
            size: manifest.config().size(),
            kind: BlobKind::Config,
        };
        let handle = Handle::current();
        let config_fetched = tokio::task::spawn_blocking(move || config_job.run(&handle))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let config_id = digest_from_oci(manifest.config().digest())
            .map_err(|e| invalid(endpoint, "manifest", e))?;
        let diff_ids = announced_diff_ids(&store.read_blob(&config_id)?, manifest.layers().len());
        let mut blobs: Vec<(Descriptor, Option<Digest>)> = Vec::new();
        for (position, layer) in manifest.layers().iter().enumerate() {
            let media_type = layer.media_type().to_string();
            if crate::push::is_foreign(&media_type) {
                reporter.report(Event::BlobSkipped {
                    digest: digest_from_oci(layer.digest())
                        .map_err(|e| invalid(endpoint, "layer", e))?,
                    media_type,
                });
                continue;
            }
            let announced = diff_ids.as_ref().and_then(|ids| ids[position]);
            // A layer listed twice (it happens: `RUN true` layers, identical COPYs) is fetched once; if the
            // config gives it two diffIDs, one of them is wrong, so it is hashed rather than trusted.
            match blobs.iter_mut().find(|(d, _)| d.digest() == layer.digest()) {
                Some((_, seen)) if *seen != announced => *seen = None,
                Some(_) => {}
                None => blobs.push((layer.clone(), announced)),
            }
        }
        let semaphore = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (descriptor, announced) in blobs {
            let digest = digest_from_oci(descriptor.digest())
                .map_err(|e| invalid(endpoint, "manifest", e))?;
            let size = descriptor.size();
            let job = BlobJob {
                client: self.clone(),
                endpoint: endpoint.clone(),
                store: Arc::clone(store),
                reporter: Arc::clone(reporter),
                digest,
                size,
                kind: BlobKind::Layer { announced },
            };
            let semaphore = Arc::clone(&semaphore);
            tasks.spawn(async move {
                let _permit = semaphore
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::Task(e.to_string()))?;
                let handle = Handle::current();
                tokio::task::spawn_blocking(move || job.run(&handle))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))?
            });
        }
        let (mut downloaded, mut downloaded_bytes) = match config_fetched {
            Some(bytes) => (1, bytes),
            None => (0, 0),
        };
        while let Some(joined) = tasks.join_next().await {
            let fetched = joined.map_err(|e| Error::Task(e.to_string()))??;
            if let Some(bytes) = fetched {
                downloaded += 1;
                downloaded_bytes += bytes;
            }
        }

        let id = digest_from_oci(manifest.config().digest())
            .map_err(|e| invalid(endpoint, "manifest", e))?;
        if stored_index.is_none() && options.require_platform {
            let config: hoist_oci::oci_spec::image::ImageConfiguration =
                parse_json(&store.read_blob(&id)?, endpoint, "image config")?;
            let (os, arch) = (config.os().to_string(), config.architecture().to_string());
            if !options
                .platform
                .matches(&os, &arch, config.variant().as_deref())
            {
                return Err(Error::NoMatchingPlatform {
                    reference: display,
                    wanted: options.platform.to_string(),
                    available: vec![
                        Platform::new(&os, &arch, config.variant().as_deref()).to_string(),
                    ],
                });
            }
        }
        if let Some(index) = &stored_index {
            store.ingest_bytes(&index.bytes)?;
        }
        store.ingest_bytes(&manifest_fetched.bytes)?;
        let descriptor = DescriptorBuilder::default()
            .media_type(MediaType::from(manifest_fetched.media_type.as_str()))
            .digest(manifest_fetched.digest.to_oci())
            .size(manifest_fetched.bytes.len() as u64)
            .build()
            .expect("media type, digest and size are all a descriptor requires");
        let tagged = match (options.tag, reference.tag()) {
            (true, Some(tag)) => {
                let name = hoist_oci::Reference::new(&reference.familiar_name(), tag)?;
                store.tag(&name, &descriptor)?;
                Some(name)
            }
            _ => None,
        };
        Ok(PulledImage {
            reference: reference.clone(),
            resolved: top.digest,
            manifest: descriptor,
            id: digest_from_oci(manifest.config().digest())
                .map_err(|e| invalid(endpoint, "manifest", e))?,
            served_by: endpoint.host.clone(),
            downloaded,
            downloaded_bytes,
            tagged,
        })
    }

    /// Resolves a reference to its manifest (or index) without downloading blobs: digest, media type, bytes.
    pub async fn resolve(&self, reference: &ImageReference) -> Result<FetchedManifest> {
        let endpoints = self
            .config()
            .pull_endpoints(reference.registry(), reference.repository());
        let mut last_error = None;
        for endpoint in endpoints {
            match self
                .get_manifest(
                    &endpoint,
                    &reference.manifest_reference(),
                    &reference.to_string(),
                )
                .await
            {
                Ok(fetched) => return Ok(fetched),
                Err(error) if endpoint.mirror => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.expect("pull_endpoints always returns the origin, which returns above"))
    }
}

/// The index entry for `platform`, or an error listing what the index offers (attestations left out).
pub fn choose_platform(
    index: &ImageIndex,
    platform: &Platform,
    reference: &str,
) -> Result<Descriptor> {
    let mut available = Vec::new();
    for entry in index.manifests() {
        if classify_str(entry.media_type().as_ref()) != MediaKind::Manifest {
            continue;
        }
        let Some(p) = entry.platform() else {
            continue;
        };
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        if os == "unknown" && arch == "unknown" {
            // BuildKit's attestation manifests.
            continue;
        }
        if platform.matches(&os, &arch, p.variant().as_deref()) {
            return Ok(entry.clone());
        }
        available.push(Platform::new(&os, &arch, p.variant().as_deref()).to_string());
    }
    Err(Error::NoMatchingPlatform {
        reference: reference.to_owned(),
        wanted: platform.to_string(),
        available,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    endpoint: &Endpoint,
    what: &str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| invalid(endpoint, what, e))
}

fn invalid(endpoint: &Endpoint, what: &str, error: impl std::fmt::Display) -> Error {
    Error::InvalidResponse {
        registry: endpoint.host.clone(),
        what: what.to_owned(),
        detail: error.to_string(),
    }
}

/// The diffIDs an image config announces for its `layers` layers, by position (`None` for one that is not a
/// `sha256:` digest), or `None` if the config does not parse or lists another number of layers: then every layer's
/// tar is hashed at pull as for any other ingest, and a wrong config is caught by the store when the image is
/// written or used.
fn announced_diff_ids(config: &[u8], layers: usize) -> Option<Vec<Option<Digest>>> {
    let config: hoist_oci::oci_spec::image::ImageConfiguration =
        serde_json::from_slice(config).ok()?;
    let diff_ids = config.rootfs().diff_ids();
    (diff_ids.len() == layers).then(|| diff_ids.iter().map(|id| id.parse().ok()).collect())
}

/// What a [`BlobJob`] fetches.
#[derive(Debug, Clone, Copy)]
enum BlobKind {
    /// The image config: stored as it is.
    Config,
    /// A layer, with the diffID its config announces (recorded unverified, see [`Store::ingest_pulled_layer`]).
    Layer { announced: Option<Digest> },
}

/// One blob to bring into the store (runs on a blocking thread: the store's I/O is synchronous).
struct BlobJob {
    client: Client,
    endpoint: Endpoint,
    store: Arc<Store>,
    reporter: Arc<dyn Reporter>,
    digest: Digest,
    size: u64,
    kind: BlobKind,
}

impl BlobJob {
    /// Returns the bytes downloaded, or `None` when the store had the blob.
    fn run(self, handle: &Handle) -> Result<Option<u64>> {
        let expected = Expected::digest(self.digest).with_size(self.size);
        if self.store.has_blob(&self.digest) && self.store.blob_size(&self.digest)? == self.size {
            // Nothing is read from the empty source: the store reuses (and protects) the blob it has.
            match self.kind {
                BlobKind::Layer { .. } => {
                    self.store.ingest_layer(io::empty(), &expected)?;
                }
                BlobKind::Config => {
                    self.store.ingest(io::empty(), &expected)?;
                }
            }
            self.reporter.report(Event::BlobExists {
                digest: self.digest,
                size: self.size,
            });
            return Ok(None);
        }
        self.reporter.report(Event::BlobStarted {
            digest: self.digest,
            size: self.size,
        });
        let started = Instant::now();
        let mut body = BlobBody {
            handle,
            job: &self,
            response: None,
            offset: 0,
            skip: 0,
            buffer: bytes::Bytes::new(),
            retries: 0,
            fatal: None,
            last_report: Instant::now(),
            speed: SpeedCheck::new(self.client.limits()),
        };
        let stored = match self.kind {
            BlobKind::Layer {
                announced: Some(diff_id),
            } => self
                .store
                .ingest_pulled_layer(&mut body, &expected, diff_id)
                .map(drop),
            BlobKind::Layer { announced: None } => {
                self.store.ingest_layer(&mut body, &expected).map(drop)
            }
            BlobKind::Config => self.store.ingest(&mut body, &expected).map(drop),
        };
        if let Some(fatal) = body.fatal.take() {
            return Err(fatal);
        }
        match stored {
            Ok(()) => {}
            Err(hoist_oci::Error::DigestMismatch { expected, actual }) => {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "blob from {}/{}",
                        self.endpoint.host, self.endpoint.repository
                    ),
                    expected,
                    actual,
                });
            }
            Err(error) => return Err(error.into()),
        }
        self.reporter.report(Event::BlobDone {
            digest: self.digest,
            size: self.size,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(Some(self.size))
    }
}

/// A blob's HTTP body as a blocking reader that resumes after connection faults.
struct BlobBody<'a> {
    handle: &'a Handle,
    job: &'a BlobJob,
    response: Option<reqwest::Response>,
    /// Bytes handed to the store so far.
    offset: u64,
    /// Bytes still to discard from the current response (a restart the registry did not let us range).
    skip: u64,
    buffer: bytes::Bytes,
    retries: u32,
    /// A failure that is not worth retrying (404, 401), or the last fault once retries ran out: returned instead
    /// of the store's read error.
    fatal: Option<Error>,
    last_report: Instant,
    /// The current response's speed (a registry dripping bytes is a fault, like a dropped connection).
    speed: SpeedCheck,
}

impl BlobBody<'_> {
    fn fault(&mut self, error: String) -> io::Result<()> {
        self.response = None;
        self.retries += 1;
        let limits = *self.job.client.limits();
        if self.retries > limits.blob_retries {
            return Err(self.fail(Error::Download {
                registry: self.job.endpoint.host.clone(),
                digest: self.job.digest,
                attempts: self.retries,
                detail: error,
            }));
        }
        self.job.reporter.report(Event::BlobRetry {
            digest: self.job.digest,
            attempt: self.retries,
            error,
        });
        std::thread::sleep(limits.backoff(self.retries));
        Ok(())
    }

    /// Ends the download with `error` (the store sees a read error; the pull reports this one).
    fn fail(&mut self, error: Error) -> io::Error {
        let message = error.to_string();
        self.fatal = Some(error);
        io::Error::other(message)
    }

    fn open(&mut self) -> io::Result<()> {
        let job = self.job;
        match self
            .handle
            .block_on(job.client.get_blob(&job.endpoint, &job.digest, self.offset))
        {
            Ok((response, ranged)) => {
                self.skip = if ranged { 0 } else { self.offset };
                self.response = Some(response);
                self.speed = SpeedCheck::new(job.client.limits());
                Ok(())
            }
            Err(Error::Connect { source, .. }) => self.fault(error_chain(&source)),
            Err(error) => Err(self.fail(error)),
        }
    }

    fn progress(&mut self) {
        if self.last_report.elapsed() >= PROGRESS_INTERVAL || self.offset == self.job.size {
            self.last_report = Instant::now();
            self.job.reporter.report(Event::BlobProgress {
                digest: self.job.digest,
                transferred: self.offset,
                size: self.job.size,
            });
        }
    }
}

impl Read for BlobBody<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.buffer.is_empty() {
                let n = out.len().min(self.buffer.len());
                let chunk = self.buffer.split_to(n);
                out[..n].copy_from_slice(&chunk);
                self.offset += n as u64;
                self.progress();
                return Ok(n);
            }
            let Some(response) = self.response.as_mut() else {
                self.open()?;
                continue;
            };
            let wait = self.speed.remaining();
            let next = self
                .handle
                .block_on(async { tokio::time::timeout(wait, response.chunk()).await });
            let Ok(next) = next else {
                // Nothing arrived for the rest of the window: judge it.
                if let Err(slow) = self.speed.record(0) {
                    self.fault(format!("stalled: {slow}"))?;
                }
                continue;
            };
            match next {
                Ok(Some(mut chunk)) => {
                    if let Err(slow) = self.speed.record(chunk.len()) {
                        self.fault(format!("stalled: {slow}"))?;
                        continue;
                    }
                    if self.skip > 0 {
                        let drop_now = (self.skip as usize).min(chunk.len());
                        let _ = chunk.split_to(drop_now);
                        self.skip -= drop_now as u64;
                    }
                    if self.offset + chunk.len() as u64 > self.job.size {
                        // An endless (or just longer) body: never read past what the descriptor announces.
                        return Err(self.fail(Error::InvalidResponse {
                            registry: self.job.endpoint.host.clone(),
                            what: format!("blob {}", self.job.digest),
                            detail: format!(
                                "more than the {} bytes its descriptor announces",
                                self.job.size
                            ),
                        }));
                    }
                    self.buffer = chunk;
                }
                Ok(None) if self.offset < self.job.size => {
                    self.fault(format!(
                        "connection closed after {} of {} bytes",
                        self.offset, self.job.size
                    ))?;
                }
                Ok(None) => return Ok(0),
                // The status was fine: any error now is the transport failing mid-body.
                Err(error) => self.fault(error_chain(&error))?,
            }
        }
    }
}
