//! `hoist pull`: fetch an image from a registry into the store, like `docker pull`. Also what the registry
//! commands share: the registry flags, the client, the async runtime and the line-based progress rendering.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Args;
use hoist_oci::{DigestExt, units};
use hoist_registry::{
    Client, DockerConfig, Event, ImageReference, Platform, PullOptions, RegistryConfig, Reporter,
};

use super::images::{emit, fail, open_store};

/// Registry flags shared by pull, push, login and logout.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Allow plain HTTP for this registry (HOST[:PORT]); may be repeated. localhost and 127.0.0.1 always are.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,

    /// Read registry configuration (mirrors, insecure registries, CA files) from this file only, instead of
    /// /etc/containers/registries.conf(.d), /etc/hoist/registries.conf and ~/.config/hoist/registries.conf.
    #[arg(long, env = "HOIST_REGISTRIES_CONF", value_name = "FILE")]
    registries_conf: Option<PathBuf>,
}

impl RegistryArgs {
    /// The registry client these flags describe.
    pub(crate) fn client(&self) -> hoist_registry::Result<Client> {
        let mut config = match &self.registries_conf {
            Some(path) => RegistryConfig::load(std::slice::from_ref(path))?,
            None => RegistryConfig::load_default()?,
        };
        config
            .insecure_registries
            .extend(self.insecure_registries.iter().cloned());
        Ok(Client::new(config, DockerConfig::default_location()))
    }
}

/// The async runtime the registry client runs on.
pub(crate) fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Download an image from a registry.
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// The image: `NAME[:TAG|@DIGEST]`, as Docker reads it (`golang` is `docker.io/library/golang:latest`).
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    reference: String,

    /// The platform to pull from a multi-platform image, `os/arch[/variant]` (default: the host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Suppress progress output.
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(root: Option<&Path>, args: &PullArgs) -> ExitCode {
    let reference: ImageReference = match args.reference.parse() {
        Ok(reference) => reference,
        Err(error) => return fail(&error),
    };
    let platform = match args.platform.as_deref().map(str::parse::<Platform>) {
        None => Platform::host(),
        Some(Ok(platform)) => platform,
        Some(Err(error)) => return fail(&error),
    };
    let store = match open_store(root) {
        Ok(store) => Arc::new(store),
        Err(error) => return fail(&error),
    };
    let client = match args.registry.client() {
        Ok(client) => client,
        Err(error) => return fail(&error),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    let reporter: Arc<dyn Reporter> = Arc::new(LineReporter::pulling(args.quiet));
    if !args.quiet {
        let what = reference
            .tag()
            .map_or_else(|| reference.manifest_reference(), str::to_owned);
        let _ = writeln!(
            io::stderr().lock(),
            "{what}: Pulling from {}",
            reference.repository()
        );
    }
    let options = PullOptions {
        platform,
        require_platform: args.platform.is_some(),
        ..PullOptions::default()
    };
    let pulled = match runtime.block_on(client.pull(store, &reference, &options, reporter)) {
        Ok(pulled) => pulled,
        Err(error) => return fail(&error),
    };
    if !args.quiet {
        let status = if pulled.downloaded == 0 {
            format!("Image is up to date for {}", reference.familiar())
        } else {
            format!("Downloaded newer image for {}", reference.familiar())
        };
        let _ = writeln!(
            io::stderr().lock(),
            "Digest: {}\nStatus: {status}",
            pulled.resolved
        );
        if pulled.tagged.is_none() {
            let _ = writeln!(
                io::stderr().lock(),
                "Note: pulled by digest only, so no reference points at it yet (write NAME:TAG@DIGEST to tag it)"
            );
        }
    }
    emit(&format!("{reference}\n"))
}

/// Renders registry events as lines on stderr, Docker-style: `<short digest>: <status>`.
pub(crate) struct LineReporter {
    quiet: bool,
    pushing: bool,
    started: Mutex<HashMap<String, Instant>>,
}

impl LineReporter {
    /// Docker's pull wording.
    pub(crate) fn pulling(quiet: bool) -> Self {
        Self {
            quiet,
            pushing: false,
            started: Mutex::new(HashMap::new()),
        }
    }

    /// Docker's push wording.
    pub(crate) fn pushing(quiet: bool) -> Self {
        Self {
            pushing: true,
            ..Self::pulling(quiet)
        }
    }

    fn line(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(io::stderr().lock(), "{text}");
        }
    }
}

impl Reporter for LineReporter {
    fn report(&self, event: Event) {
        let mut started = self
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::Resolved { .. } => {}
            Event::EndpointFailed { registry, error } => {
                self.line(&format!(
                    "{registry}: failed, trying the next endpoint: {error}"
                ));
            }
            Event::BlobExists { digest, .. } => {
                let what = if self.pushing {
                    "Layer already exists"
                } else {
                    "Already exists"
                };
                self.line(&format!("{}: {what}", digest.short_id()));
            }
            Event::CompressStarted { digest, size } => {
                self.line(&format!(
                    "{}: Compressing {}",
                    digest.short_id(),
                    units::human_size_short(size)
                ));
            }
            Event::CompressProgress { digest, read, size } => {
                self.line(&format!(
                    "{}: Compressing {}/{}",
                    digest.short_id(),
                    units::human_size_short(read),
                    units::human_size_short(size)
                ));
            }
            Event::CompressDone {
                digest,
                compressed,
                compressed_size,
                seconds,
                ..
            } => {
                self.line(&format!(
                    "{}: Compressed to {} ({} in {seconds:.1}s)",
                    digest.short_id(),
                    compressed.short_id(),
                    units::human_size_short(compressed_size)
                ));
            }
            Event::BlobStarted { digest, size } => {
                started.insert(digest.to_string(), Instant::now());
                let verb = if self.pushing {
                    "Pushing"
                } else {
                    "Downloading"
                };
                self.line(&format!(
                    "{}: {verb} {}",
                    digest.short_id(),
                    units::human_size_short(size)
                ));
            }
            Event::BlobProgress {
                digest,
                transferred,
                size,
            } => {
                let elapsed = started
                    .get(&digest.to_string())
                    .map_or(0.0, |s| s.elapsed().as_secs_f64());
                let speed = if elapsed > 0.0 {
                    transferred as f64 / elapsed
                } else {
                    0.0
                };
                self.line(&format!(
                    "{}: {}/{} ({}/s)",
                    digest.short_id(),
                    units::human_size_short(transferred),
                    units::human_size_short(size),
                    units::human_size_short(speed as u64)
                ));
            }
            Event::BlobRetry {
                digest,
                attempt,
                error,
            } => {
                self.line(&format!(
                    "{}: Retrying ({attempt}): {error}",
                    digest.short_id()
                ));
            }
            Event::BlobMounted { digest, from } => {
                self.line(&format!("{}: Mounted from {from}", digest.short_id()));
            }
            Event::BlobDone {
                digest,
                size,
                seconds,
            } => {
                self.line(&format!(
                    "{}: Complete ({} in {seconds:.1}s)",
                    digest.short_id(),
                    units::human_size_short(size)
                ));
            }
            Event::BlobSkipped { digest, media_type } => {
                self.line(&format!(
                    "{}: Skipped foreign layer ({media_type})",
                    digest.short_id()
                ));
            }
            Event::ManifestPushed {
                reference,
                digest,
                size,
            } => {
                self.line(&format!("{reference}: digest: {digest} size: {size}"));
            }
        }
    }
}
