//! A whole `hoist build` as one library call: [`BuildRequest`] (the command line as plain data) → plan → solve →
//! export, with progress through a [`BuildReporter`] and every failure as a [`BuildFailure`] the caller renders.
//!
//! [`BuildRequest::prepare`] does what needs no store: reads a context or Dockerfile from standard input (`-`),
//! loads and checks the Dockerfile, and parses every option (outputs, tags, secrets, `--allow`, `--ssh`,
//! `SOURCE_DATE_EPOCH`, the platform, labels, `--build-context`). [`PreparedBuild::run`] then plans against the store
//! (pulling missing base images as vertices), runs the build checks, reports BuildKit's two `[internal]` vertices,
//! solves, exports to the store and every output, and writes `--iidfile` and `--metadata-file`. [`build`] does both.
//! The CLI draws progress between the two and renders the failure; nothing here prints.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hoist_context::{ContextError, find_ignore_file};
use hoist_dockerfile::Span;
use hoist_lint::{Finding, RuleSet};
use hoist_oci::{Reference, Store};
use hoist_plan::{
    BuildPlan, NamedContext, NamedContextKind, NoCache, PlanError, PlanRequest, Platform,
};
use hoist_registry::Client;

use crate::Entitlements;
use crate::definition::{CheckedDockerfile, DockerfileInput, LoadError, Located};
use crate::error::EngineError;
use crate::exec::SandboxExecutor;
use crate::export::{ExportRequest, Exported, OutputSpec, export};
use crate::inputs::{SOURCE_DATE_EPOCH, read_secrets, source_date_epoch, unpack_stdin_context};
use crate::pull::RegistryPuller;
use crate::reporter::{LOAD_DEFINITION_SLOT, LOAD_IGNORE_SLOT, Reporter, Vertex, VertexStatus};
use crate::resolver::StoreResolver;
use crate::solver::{SolveRequest, Solver};
use crate::ssh::SshAgents;

/// How many ops a build runs at once, at least (more on machines with more cores).
const BUILD_PARALLELISM: usize = 16;

/// Makes the registry client, on the first pull or push only.
pub type RegistryClientFn<'a> = dyn Fn() -> hoist_registry::Result<Client> + Sync + 'a;

/// `hoist build`'s inputs as plain data: each option as the command line gives it (`docker build`'s meanings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The Dockerfile, target, build arguments and context.
    pub input: DockerfileInput,
    /// `-t NAME[:TAG]` values.
    pub tags: Vec<String>,
    /// `--platform OS/ARCH[/VARIANT]`; `None` is the host's.
    pub platform: Option<String>,
    /// `--no-cache`: run every step again.
    pub no_cache: bool,
    /// `--no-cache-filter` stages.
    pub no_cache_filter: Vec<String>,
    /// `--label KEY=VALUE` values (`KEY` alone is an empty value).
    pub labels: Vec<String>,
    /// `--output` specs (see [`OutputSpec::parse`]).
    pub outputs: Vec<String>,
    /// `--load`: `--output type=docker`.
    pub load: bool,
    /// `--push`: `--output type=registry`, or `push=true` on every `type=image` output.
    pub push: bool,
    /// `--iidfile`: where to write the image ID.
    pub iidfile: Option<PathBuf>,
    /// `--metadata-file`: where to write buildx's result metadata (JSON).
    pub metadata_file: Option<PathBuf>,
    /// `--build-context NAME=DIR|docker-image://REF|oci-layout://PATH[:TAG]` values.
    pub build_contexts: Vec<String>,
    /// `--secret` specs (see [`read_secrets`]).
    pub secrets: Vec<String>,
    /// `--ssh` specs (see [`SshAgents::from_specs`]).
    pub ssh: Vec<String>,
    /// `--allow` entitlements (see [`Entitlements::parse`]).
    pub allow: Vec<String>,
    /// The environment: `KEY`-only build arguments, `env=` secrets and `SOURCE_DATE_EPOCH` read it.
    pub env: BTreeMap<String, String>,
    /// Scratch space for staging, snapshots and SSH sockets.
    pub scratch: PathBuf,
}

impl BuildRequest {
    /// A build of `input` with no other options, an empty environment and scratch space under the system's
    /// temporary directory.
    pub fn new(input: DockerfileInput) -> BuildRequest {
        BuildRequest {
            input,
            tags: Vec::new(),
            platform: None,
            no_cache: false,
            no_cache_filter: Vec::new(),
            labels: Vec::new(),
            outputs: Vec::new(),
            load: false,
            push: false,
            iidfile: None,
            metadata_file: None,
            build_contexts: Vec::new(),
            secrets: Vec::new(),
            ssh: Vec::new(),
            allow: Vec::new(),
            env: BTreeMap::new(),
            scratch: std::env::temp_dir().join("hoist-build"),
        }
    }

    /// Everything that needs no store: the context and Dockerfile (from standard input for `-`), loaded and
    /// checked, and every option parsed, in the order `docker build` reports their errors.
    pub fn prepare(&self) -> Result<PreparedBuild, BuildFailure> {
        if self.input.context != Path::new("-") {
            return self.prepare_with(&self.input, None);
        }
        // `hoist build - < Dockerfile` or `hoist build - < context.tar`, as docker reads standard input.
        if self.input.file.as_deref() == Some(Path::new("-")) {
            return Err(BuildFailure::StdinTwice);
        }
        let dir = StdinDir(
            std::env::temp_dir().join(format!("hoist-build-stdin-{}", std::process::id())),
        );
        let mut bytes = Vec::new();
        let unpacked = io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                unpack_stdin_context(&bytes, &dir.0).map_err(|e| hoist_oci::error_chain(&e))
            })
            .map_err(|reason| BuildFailure::StdinContext { reason })?;
        let input = DockerfileInput {
            file: unpacked
                .dockerfile
                .or_else(|| self.input.file.as_ref().map(|f| unpacked.context.join(f))),
            target: self.input.target.clone(),
            build_args: self.input.build_args.clone(),
            context: unpacked.context,
        };
        self.prepare_with(&input, Some(dir))
    }

    fn prepare_with(
        &self,
        input: &DockerfileInput,
        stdin_dir: Option<StdinDir>,
    ) -> Result<PreparedBuild, BuildFailure> {
        let checked = input.load(&self.env).map_err(BuildFailure::Load)?;
        let mut outputs = self
            .outputs
            .iter()
            .map(|spec| OutputSpec::parse(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BuildFailure::InvalidOption(Box::new(e)))?;
        if self.load {
            // buildx: `--load` is `--output type=docker`.
            outputs.push(OutputSpec::Load { names: Vec::new() });
        }
        if self.push {
            // buildx: `--push` is `--output type=registry`, or sets `push=true` on a `type=image` output.
            let mut found = false;
            for output in &mut outputs {
                if let OutputSpec::Image { push, .. } = output {
                    *push = true;
                    found = true;
                }
            }
            if !found {
                outputs.push(OutputSpec::Image {
                    names: Vec::new(),
                    push: true,
                    compression: Default::default(),
                });
            }
        }
        let tags = self
            .tags
            .iter()
            .map(|tag| {
                tag.parse::<Reference>()
                    .map_err(|reason| BuildFailure::Tag {
                        tag: tag.clone(),
                        reason,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let secrets = read_secrets(&self.secrets, &|name| self.env.get(name).cloned())
            .map_err(|e| BuildFailure::InvalidOption(Box::new(e)))?;
        let allow = Entitlements::parse(&self.allow)
            .map_err(|e| BuildFailure::InvalidOption(Box::new(e)))?;
        let ssh = SshAgents::from_specs(&self.ssh, &self.scratch)
            .map_err(|e| BuildFailure::InvalidOption(Box::new(e)))?;

        let mut request = PlanRequest::new(checked.file.clone());
        request.target = input.target.clone();
        request.build_args = checked.build_args.clone();
        // As buildx does: SOURCE_DATE_EPOCH from the environment is the build argument unless one is given.
        let source_date_epoch = source_date_epoch(
            &mut request.build_args,
            self.env.get(SOURCE_DATE_EPOCH).cloned(),
        )
        .map_err(|e| BuildFailure::InvalidOption(Box::new(e)))?;
        if let Some(platform) = &self.platform {
            request.target_platform =
                Some(
                    Platform::parse(platform).map_err(|reason| BuildFailure::Platform {
                        platform: platform.clone(),
                        reason,
                    })?,
                );
        }
        request.labels = key_values(&self.labels);
        let mut named_dirs = BTreeMap::new();
        for spec in &self.build_contexts {
            let (context, dir) = named_context(spec)?;
            if let Some(dir) = dir {
                named_dirs.insert(context.name.clone(), dir);
            }
            request.named_contexts.push(context);
        }
        request.no_cache = if self.no_cache {
            NoCache::All
        } else if self.no_cache_filter.is_empty() {
            NoCache::Off
        } else {
            NoCache::Stages(self.no_cache_filter.clone())
        };
        Ok(PreparedBuild {
            checked,
            context: input.context.clone(),
            plan_request: request,
            tags,
            outputs,
            secrets,
            allow,
            ssh,
            named_dirs,
            source_date_epoch,
            iidfile: self.iidfile.clone(),
            metadata_file: self.metadata_file.clone(),
            scratch: self.scratch.clone(),
            _stdin_dir: stdin_dir,
        })
    }
}

/// The directory a context from standard input was unpacked into, removed with the build.
#[derive(Debug)]
struct StdinDir(PathBuf);

impl Drop for StdinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A build whose inputs are read and checked, ready to run against a store.
#[derive(Debug)]
pub struct PreparedBuild {
    checked: CheckedDockerfile,
    context: PathBuf,
    plan_request: PlanRequest,
    tags: Vec<Reference>,
    outputs: Vec<OutputSpec>,
    secrets: BTreeMap<String, Vec<u8>>,
    allow: Entitlements,
    ssh: SshAgents,
    named_dirs: BTreeMap<String, PathBuf>,
    source_date_epoch: Option<i64>,
    iidfile: Option<PathBuf>,
    metadata_file: Option<PathBuf>,
    scratch: PathBuf,
    _stdin_dir: Option<StdinDir>,
}

impl PreparedBuild {
    /// The Dockerfile being built (for locating failures).
    pub fn dockerfile(&self) -> &CheckedDockerfile {
        &self.checked
    }

    /// Plans, checks, solves and exports. Missing base images are pulled with the client `registry` makes;
    /// `--output -` writes to `stdout`. Progress goes to `reporter`; the caller finishes its display after this
    /// returns, then reports the outcome.
    pub fn run(
        &self,
        store: &Store,
        registry: &RegistryClientFn<'_>,
        reporter: Arc<dyn BuildReporter + Send>,
        stdout: &mut (dyn Write + Send),
    ) -> Result<BuildOutcome, BuildFailure> {
        let events: Arc<dyn Reporter + Send> = reporter.clone();
        let puller = RegistryPuller::new(store.root().to_owned(), registry, Arc::clone(&events));
        let resolver = StoreResolver {
            store,
            puller: Some(&puller),
        };
        let dockerfile = &self.checked.source;
        let plan = hoist_plan::plan(&self.plan_request, &resolver).map_err(|error| {
            BuildFailure::Plan {
                file: dockerfile.name.clone(),
                error,
            }
        })?;
        for warning in &plan.warnings {
            reporter.on_plan_warning(&warning.message);
        }
        reporter.on_graph(
            plan.ops
                .iter()
                .enumerate()
                .map(|(op, planned)| (op, planned.inputs.iter().map(|input| input.0).collect()))
                .collect(),
        );
        // The build checks run with every build, as with `docker build`: reported at the end, or fatal with
        // `# check=error=true`.
        let findings = self.checked.lint(Some(store), RuleSet::BuildKit);
        let failing = self.checked.failing_rules(&findings);
        if !failing.is_empty() {
            return Err(BuildFailure::Checks {
                rules: failing,
                findings,
            });
        }

        let ignore_patterns = find_ignore_file(&self.context, dockerfile.path.as_deref())
            .map_err(BuildFailure::IgnoreFile)?
            .map(|f| f.patterns)
            .unwrap_or_default();
        // BuildKit's first two vertices: the Dockerfile and the ignore file as the builder received them.
        let definition = match &dockerfile.path {
            Some(path) => path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            None => "<stdin>".to_owned(),
        };
        let definition_vertex = Vertex::internal(
            LOAD_DEFINITION_SLOT,
            format!("[internal] load build definition from {definition}"),
        );
        internal_step(
            &*reporter,
            &definition_vertex,
            format!("transferring dockerfile: {}B", dockerfile.text.len()),
        );
        internal_step(
            &*reporter,
            &Vertex::internal(LOAD_IGNORE_SLOT, "[internal] load .dockerignore"),
            format!(
                "transferring context: {}B",
                ignore_patterns.iter().map(|p| p.len() + 1).sum::<usize>()
            ),
        );
        let solver = Solver {
            store,
            executor: &SandboxExecutor,
            reporter: &*events,
            // Not capped at the core count: BuildKit runs every ready vertex at once (no max-parallelism by
            // default), and independent stages mostly wait on their own processes, which schedule themselves on
            // the cores.
            parallelism: BUILD_PARALLELISM
                .max(std::thread::available_parallelism().map_or(1, usize::from)),
            scratch: self.scratch.clone(),
        };
        let solve = SolveRequest {
            plan: &plan,
            dockerfile: &dockerfile.text,
            context_dir: &self.context,
            ignore_patterns: &ignore_patterns,
            secrets: &self.secrets,
            named_contexts: &self.named_dirs,
            ssh: &self.ssh,
            allow: self.allow,
        };
        let solution = solver.solve(&solve).map_err(|error| {
            let span = match &error {
                EngineError::Step { op, .. } => plan.ops.get(*op).and_then(|o| o.span),
                _ => None,
            };
            BuildFailure::Solve {
                span,
                error: Box::new(error),
            }
        })?;
        let request = ExportRequest {
            tags: &self.tags,
            outputs: &self.outputs,
            source_date_epoch: self.source_date_epoch,
            registry,
            scratch: &solver.scratch,
        };
        let exported = export(store, &plan, &solution, &request, &events, stdout);
        reporter.on_check_findings(&definition_vertex, &findings);
        let exported = exported.map_err(|e| BuildFailure::Export(Box::new(e)))?;
        if let Some(path) = &self.iidfile {
            std::fs::write(path, exported.image.id.to_string()).map_err(|reason| {
                BuildFailure::WriteFile {
                    path: path.clone(),
                    reason,
                }
            })?;
        }
        if let Some(path) = &self.metadata_file {
            let text = serde_json::to_string_pretty(&exported.metadata())
                .expect("a JSON value always serializes");
            std::fs::write(path, text).map_err(|reason| BuildFailure::WriteFile {
                path: path.clone(),
                reason,
            })?;
        }
        Ok(BuildOutcome {
            exported,
            findings,
            plan,
        })
    }
}

/// Runs the build `request` describes against `store`: [`BuildRequest::prepare`], then [`PreparedBuild::run`].
pub fn build(
    store: &Store,
    request: &BuildRequest,
    registry: &RegistryClientFn<'_>,
    reporter: Arc<dyn BuildReporter + Send>,
    stdout: &mut (dyn Write + Send),
) -> Result<BuildOutcome, BuildFailure> {
    request.prepare()?.run(store, registry, reporter, stdout)
}

/// What a successful build made.
#[derive(Debug)]
pub struct BuildOutcome {
    /// The image in the store, its names and pushes.
    pub exported: Exported,
    /// The build checks' findings (warnings: with `# check=error=true` they fail the build instead).
    pub findings: Vec<Finding>,
    /// The plan that was solved: the stages the target needs, and their ops.
    pub plan: BuildPlan,
}

/// A build's progress: the solver's [`Reporter`] events, plus what a build says around them. Every method has a
/// default that ignores the event.
pub trait BuildReporter: Reporter {
    /// A planner warning outside any vertex (`[Warning] One or more build-args [FOO] were not consumed`).
    fn on_plan_warning(&self, _message: &str) {}
    /// The plan's edges, once known: each op's inputs by op index.
    fn on_graph(&self, _inputs: HashMap<usize, Vec<usize>>) {}
    /// The build checks' findings, belonging to the Dockerfile's vertex; sent after the export, successful or not.
    fn on_check_findings(&self, _vertex: &Vertex, _findings: &[Finding]) {}
}

impl BuildReporter for crate::Silent {}

/// A vertex of the build's own (loading the Dockerfile, the ignore file): started, one finished status, done.
fn internal_step(reporter: &dyn BuildReporter, vertex: &Vertex, status: String) {
    reporter.on_vertex_start(vertex);
    reporter.on_vertex_status(
        vertex,
        &VertexStatus {
            id: status,
            current: 0,
            total: 0,
            elapsed: Duration::ZERO,
            done: true,
        },
    );
    reporter.on_vertex_done(vertex, Duration::ZERO);
}

/// `KEY=VALUE` pairs (`KEY` alone is an empty value, as docker's `--label`).
fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (item.clone(), String::new()),
        })
        .collect()
}

/// A `--build-context NAME=VALUE`, and the directory when it is a local one.
fn named_context(spec: &str) -> Result<(NamedContext, Option<PathBuf>), BuildFailure> {
    let Some((name, value)) = spec.split_once('=') else {
        return Err(BuildFailure::BuildContext {
            spec: spec.to_owned(),
        });
    };
    let mut dir = None;
    let kind = if let Some(reference) = value.strip_prefix("docker-image://") {
        NamedContextKind::Image(reference.to_owned())
    } else if let Some(layout) = value.strip_prefix("oci-layout://") {
        NamedContextKind::OciLayout(layout.to_owned())
    } else if value.ends_with(".git") || value.starts_with("git@") || value.contains(".git#") {
        NamedContextKind::Git
    } else if value.starts_with("http://") || value.starts_with("https://") {
        NamedContextKind::Url
    } else {
        dir = Some(PathBuf::from(value));
        NamedContextKind::Local
    };
    let context = NamedContext {
        name: name.to_owned(),
        kind,
    };
    Ok((context, dir))
}

/// Why a build failed. Messages are docker's; variants about the Dockerfile carry what locates them.
#[derive(Debug, thiserror::Error)]
pub enum BuildFailure {
    /// `-f -` with a context on standard input.
    #[error("-f - and a context on standard input cannot both read standard input")]
    StdinTwice,
    /// The context or Dockerfile on standard input could not be read or unpacked.
    #[error("failed to read the context from standard input: {reason}")]
    StdinContext {
        /// Why, with its causes.
        reason: String,
    },
    /// The Dockerfile could not be read, parsed or checked.
    #[error(transparent)]
    Load(LoadError),
    /// An option's value is invalid: `--output`, `--secret`, `--allow`, `--ssh`, `SOURCE_DATE_EPOCH`.
    #[error(transparent)]
    InvalidOption(Box<EngineError>),
    /// A `-t` name is invalid.
    #[error("invalid tag {tag:?}: {reason}")]
    Tag {
        /// The name given.
        tag: String,
        /// Why it is invalid.
        reason: hoist_oci::Error,
    },
    /// `--platform` is invalid.
    #[error("invalid platform {platform:?}: {reason}")]
    Platform {
        /// The value given.
        platform: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A `--build-context` is not `NAME=VALUE`.
    #[error("invalid build context {spec:?}: expected NAME=VALUE")]
    BuildContext {
        /// The value given.
        spec: String,
    },
    /// Planning failed (a base image, an ARG, a `--from`…), at the instruction when it has a span.
    #[error("{}", Located { file, span: error.span, message: error })]
    Plan {
        /// The Dockerfile's name.
        file: String,
        /// The planner's error.
        error: PlanError,
    },
    /// The build checks found problems and `# check=error=true` makes them fatal.
    #[error("lint violation found for rules: {}", rules.join(", "))]
    Checks {
        /// The rules that fired, each once.
        rules: Vec<String>,
        /// Every finding.
        findings: Vec<Finding>,
    },
    /// The ignore file could not be read for the solve.
    #[error(transparent)]
    IgnoreFile(ContextError),
    /// Solving failed; a failed step is an [`EngineError::Step`].
    #[error("failed to solve")]
    Solve {
        /// The failed step's instruction in the Dockerfile.
        span: Option<Span>,
        /// What failed.
        #[source]
        error: Box<EngineError>,
    },
    /// Exporting (the store, an output, a push) failed.
    #[error(transparent)]
    Export(Box<EngineError>),
    /// `--iidfile` or `--metadata-file` could not be written.
    #[error("failed to write {}: {reason}", .path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: io::Error,
    },
}
