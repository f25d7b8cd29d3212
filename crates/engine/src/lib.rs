//! hoist-engine: the solver of `hoist build`. A [`BuildPlan`](hoist_plan::BuildPlan) becomes an image: every op
//! gets a cache key, hits come from the store's cache index, misses run (in parallel where the DAG allows), and
//! the target stage is exported.
//!
//! The one idea: **an op's result is named by what went into it.** A key is SHA-256 over the op's
//! [`cache_key_material`](hoist_plan::Op::cache_key_material) and its inputs' keys in input order (plus, for
//! sources, what they stand for: an image's ID, the bytes of the context files a COPY uses). The cache index maps
//! keys to results (the op's layer, or none, and when it ran), so an unchanged step is never repeated and a
//! fully cached rebuild gives the same image ID. Every filesystem is a list of layers; RUN steps execute through an
//! [`Executor`] (hoist-sandbox's overlay snapshots by default), COPY/ADD/WORKDIR stage exactly their files in an
//! empty directory, and each op that changes something yields one gzip layer in the store.
//!
//! ```no_run
//! use hoist_engine::{SandboxExecutor, Silent, SolveRequest, Solver, StoreResolver, export_image};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = hoist_oci::Store::open("/var/lib/hoist")?;
//! let dockerfile = "FROM busybox\nRUN echo hi > /greeting\n";
//! let request = hoist_plan::PlanRequest::new(hoist_dockerfile::parse(dockerfile)?);
//! let resolver = StoreResolver { store: &store, puller: None };
//! let plan = hoist_plan::plan(&request, &resolver)?;
//! let solver = Solver {
//!     store: &store,
//!     executor: &SandboxExecutor,
//!     reporter: &Silent,
//!     parallelism: 2,
//!     scratch: store.root().join("tmp"),
//! };
//! let request = SolveRequest {
//!     plan: &plan,
//!     dockerfile,
//!     context_dir: ".".as_ref(),
//!     ignore_patterns: &[],
//!     secrets: &Default::default(),
//!     named_contexts: &Default::default(),
//!     ssh: &Default::default(),
//!     allow: Default::default(),
//! };
//! let solution = solver.solve(&request)?;
//! let image = export_image(&store, &plan, &solution, hoist_oci::ManifestFormat::Oci)?;
//! println!("{}", image.id);
//! # Ok(()) }
//! ```
//!
//! Contents: [`build`] with [`BuildRequest`], [`PreparedBuild`], [`BuildOutcome`], [`BuildFailure`] and
//! [`BuildReporter`] (a whole `hoist build`), [`DockerfileInput`], [`CheckedDockerfile`] and [`LoadError`] (the
//! Dockerfile loaded and checked, for builds, `--check` and `hoist lint`), [`Solver`], [`SolveRequest`] and
//! [`Solution`] (solving), [`CacheKey`], [`OpRecord`], [`Layer`], [`LayerRef`] and [`PendingLayer`] (the cache;
//! [`materialize`] writes the tars of pending layers), [`Executor`], [`ExecRequest`], [`Diff`], [`RunMount`] and
//! [`SandboxExecutor`] (RUN),
//! [`SshAgents`] and [`Entitlements`] (`--ssh` and `--allow`), [`Reporter`], [`Vertex`] and [`VertexStatus`]
//! (progress), [`StoreResolver`] and [`ImagePuller`] (base images
//! for the planner; [`RIE_IMAGE`] is provided locally, see [`locate_rie`]), [`export_image`], [`OutputSpec`],
//! [`export_local`], [`export_tar`], [`export`] with [`ExportRequest`] and [`Exported`] (outputs, `--load`, pushes;
//! [`export_image_at`] for `SOURCE_DATE_EPOCH`), [`read_secrets`], [`source_date_epoch`] and
//! [`unpack_stdin_context`] (command-line inputs),
//! [`EngineError`] and [`DownloadError`] (`ADD <URL>`). How it all works, and what is missing: `docs/engine.md`.

mod build;
mod cache;
mod checksum;
mod contexts;
mod copy;
mod definition;
mod entitlements;
mod error;
mod exec;
mod export;
mod inflight;
mod ingest;
mod inputs;
mod mounts;
mod names;
mod pending;
mod pull;
mod remote;
mod reporter;
mod resolver;
mod rie;
mod solver;
mod ssh;
mod transfer;
mod view;

pub use build::{
    BuildFailure, BuildOutcome, BuildReporter, BuildRequest, PreparedBuild, RegistryClientFn, build,
};
pub use cache::{CacheCheck, CacheKey, Layer, LayerRef, OpRecord, PendingLayer, check_cache};
pub use contexts::LayoutError;
pub use definition::{
    CheckedDockerfile, DockerfileInput, DockerfileSource, InputError, LoadError, existing_store,
};
pub use entitlements::Entitlements;
pub use error::{EngineError, Result};
pub use exec::{Diff, ExecOutcome, ExecRequest, Executor, RunMount, SandboxExecutor};
pub use export::{
    BuiltImage, Destination, ExportRequest, Exported, OutputSpec, export, export_image,
    export_image_at, export_local, export_tar,
};
pub use hoist_oci::error_chain;
pub use inputs::{
    SOURCE_DATE_EPOCH, StdinContext, read_secrets, source_date_epoch, unpack_stdin_context,
};
pub use pending::materialize;
pub use pull::RegistryPuller;
pub use remote::DownloadError;
pub use reporter::{
    EXPORT_SLOT, LOAD_DEFINITION_SLOT, LOAD_IGNORE_SLOT, Reporter, Silent, Vertex, VertexStatus,
};
pub use resolver::{ImagePuller, StoreResolver};
pub use rie::{RIE_ENV, RIE_IMAGE, RieError, locate_rie};
pub use solver::{OpResult, Output, Solution, SolveRequest, Solver};
pub use ssh::{DEFAULT_SSH_ID, SshAgents};
