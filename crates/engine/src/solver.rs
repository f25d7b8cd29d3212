//! The solver: cache keys for every op the target needs, cache lookups, and the ops that miss run on a bounded
//! pool of threads as soon as their inputs are ready (BuildKit's scheduler). Steps' mounts, layer ingestion,
//! context checksums, in-flight merging and vertex names live in their own modules.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Instant, SystemTime};

use hoist_context::{ContextError, ContextFilter};
use hoist_oci::{Area, Store};
use hoist_plan::NamedContextKind;
use hoist_plan::op::{CopySource, Source};
use hoist_plan::{BuildPlan, Op, OpId, PlannedOp};

use crate::cache::{self, CacheKey, Layer, LayerRef, OpRecord};
use crate::checksum::{CONTEXT_SUMS_DIR, ChecksumCache, hash_context};
use crate::copy::{self, Tree};
use crate::entitlements::{self, Entitlements};
use crate::error::{EngineError, Result};
use crate::exec::{Diff, ExecRequest, Executor};
use crate::inflight::{Claim, InFlight};
use crate::ingest::ingest;
use crate::names::vertex_names;
use crate::reporter::{Reporter, Vertex};
use crate::ssh::SshAgents;
use crate::view::{self, LayerView};

/// What the solver needs besides the plan.
#[derive(Debug, Clone)]
pub struct SolveRequest<'a> {
    /// The plan to solve.
    pub plan: &'a BuildPlan,
    /// The Dockerfile's text, for vertex names.
    pub dockerfile: &'a str,
    /// The build context directory.
    pub context_dir: &'a Path,
    /// The `.dockerignore` patterns that apply.
    pub ignore_patterns: &'a [String],
    /// `--secret`s by id, for `RUN --mount=type=secret` (never part of a cache key).
    pub secrets: &'a BTreeMap<String, Vec<u8>>,
    /// Local `--build-context NAME=DIR` directories by name.
    pub named_contexts: &'a BTreeMap<String, PathBuf>,
    /// `--ssh` agents, for `RUN --mount=type=ssh` (never part of a cache key).
    pub ssh: &'a SshAgents,
    /// `--allow`: what `RUN --network=host` and `--security=insecure` need.
    pub allow: Entitlements,
}

/// The solver's collaborators: the store, the executor of RUN steps, the progress reporter.
pub struct Solver<'a> {
    /// The image store (layers, snapshots, cache index).
    pub store: &'a Store,
    /// Runs RUN steps.
    pub executor: &'a dyn Executor,
    /// Receives progress.
    pub reporter: &'a dyn Reporter,
    /// How many ops may run at once (at least 1).
    pub parallelism: usize,
    /// Scratch space for staging directories and snapshots (a local filesystem that supports overlayfs).
    pub scratch: PathBuf,
}

/// An op's filesystem result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A filesystem made of these layers, bottom first.
    Layers(Vec<Layer>),
    /// A local context directory (read straight from the host by COPY), with its `.dockerignore` patterns.
    Context {
        /// The directory.
        root: PathBuf,
        /// The ignore patterns that apply to it.
        ignore: Vec<String>,
    },
}

/// The result of one op.
#[derive(Debug, Clone)]
pub struct OpResult {
    /// Its cache key.
    pub key: CacheKey,
    /// Its filesystem.
    pub output: Output,
    /// What it produced (`None` for sources).
    pub record: Option<OpRecord>,
    /// For an image source: the image's config JSON.
    pub base_config: Option<serde_json::Value>,
    /// The result came from the cache.
    pub cached: bool,
}

impl OpResult {
    /// The layers of its filesystem (none for the context).
    pub fn layers(&self) -> &[Layer] {
        match &self.output {
            Output::Layers(layers) => layers,
            Output::Context { .. } => &[],
        }
    }
}

/// What running an op left.
enum Made {
    /// No change.
    Nothing,
    /// A layer tar in the store.
    Blob(LayerRef),
    /// A RUN step's changes kept as a directory: the snapshot-area entry ([`Layer::Pending`]).
    Kept(String),
}

/// Every solved op's result, indexed like the plan's ops (`None` for ops the target does not need).
#[derive(Debug, Clone)]
pub struct Solution {
    /// The results.
    pub results: Vec<Option<OpResult>>,
}

impl Solution {
    /// The result of op `id`.
    pub fn get(&self, id: OpId) -> Option<&OpResult> {
        self.results.get(id.0).and_then(Option::as_ref)
    }
}

struct Schedule {
    ready: VecDeque<usize>,
    waiting_on: Vec<usize>,
    results: Vec<Option<OpResult>>,
    remaining: usize,
    error: Option<EngineError>,
}

impl Solver<'_> {
    /// Solves every op the target stage needs; returns at the first failure (running ops finish first).
    pub fn solve(&self, request: &SolveRequest<'_>) -> Result<Solution> {
        let plan = request.plan;
        fs::create_dir_all(&self.scratch)
            .map_err(|e| EngineError::io("create", &self.scratch, e))?;
        // Snapshots a killed build left behind (the sandbox knows which ones nobody holds).
        hoist_sandbox::Snapshot::remove_stale(&self.scratch);
        // And the changes a killed RUN step was keeping in the store. Best effort, as above: what cannot be removed
        // now (a directory a rootless step made unreadable) is left to `hoist prune`, and the build goes on.
        let _ = self.store.remove_abandoned_entries(Area::Snapshots);
        let needed = needed_ops(plan);
        let names = vertex_names(plan, request.dockerfile);
        entitlements::check(plan, &needed, &names, request.allow)?;
        let mut dependents = vec![Vec::new(); plan.ops.len()];
        let mut waiting_on = vec![0; plan.ops.len()];
        let mut ready = VecDeque::new();
        for op in plan.ops.iter().filter(|op| needed[op.id.0]) {
            let mut inputs: Vec<usize> = op.inputs.iter().map(|i| i.0).collect();
            inputs.sort_unstable();
            inputs.dedup();
            for input in &inputs {
                dependents[*input].push(op.id.0);
            }
            waiting_on[op.id.0] = inputs.len();
            if inputs.is_empty() {
                ready.push_back(op.id.0);
            }
        }
        let schedule = Mutex::new(Schedule {
            ready,
            waiting_on,
            results: vec![None; plan.ops.len()],
            remaining: needed.iter().filter(|n| **n).count(),
            error: None,
        });
        let wake = Condvar::new();
        let in_flight = InFlight::default();
        let workers = self.parallelism.max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    self.work(request, &names, &dependents, &schedule, &wake, &in_flight);
                });
            }
        });
        let schedule = schedule
            .into_inner()
            .expect("a worker never panics while holding the schedule");
        match schedule.error {
            Some(error) => Err(error),
            None => Ok(Solution {
                results: schedule.results,
            }),
        }
    }

    fn work(
        &self,
        request: &SolveRequest<'_>,
        names: &HashMap<usize, String>,
        dependents: &[Vec<usize>],
        schedule: &Mutex<Schedule>,
        wake: &Condvar,
        in_flight: &InFlight,
    ) {
        loop {
            let (id, inputs) = {
                let mut guard = schedule
                    .lock()
                    .expect("a worker never panics while holding the schedule");
                loop {
                    if guard.error.is_some() || guard.remaining == 0 {
                        return;
                    }
                    if let Some(id) = guard.ready.pop_front() {
                        let inputs: Vec<OpResult> = request.plan.ops[id]
                            .inputs
                            .iter()
                            .map(|i| {
                                guard.results[i.0]
                                    .clone()
                                    .expect("an op is ready only once its inputs are solved")
                            })
                            .collect();
                        break (id, inputs);
                    }
                    guard = wake
                        .wait(guard)
                        .expect("a worker never panics while holding the schedule");
                }
            };
            let op = &request.plan.ops[id];
            let vertex = names.get(&id).map(|name| Vertex {
                op: id,
                name: name.clone(),
            });
            let result = self.solve_op(request, op, &inputs, vertex.as_ref(), in_flight);
            let mut guard = schedule
                .lock()
                .expect("a worker never panics while holding the schedule");
            match result {
                Ok(result) => {
                    guard.results[id] = Some(result);
                    guard.remaining -= 1;
                    for &dependent in &dependents[id] {
                        guard.waiting_on[dependent] -= 1;
                        if guard.waiting_on[dependent] == 0 {
                            guard.ready.push_back(dependent);
                        }
                    }
                }
                Err(error) => {
                    let error = match vertex {
                        Some(vertex) => {
                            self.reporter.on_vertex_error(&vertex, &error.to_string());
                            EngineError::Step {
                                op: id,
                                vertex: vertex.name,
                                source: Box::new(error),
                            }
                        }
                        None => error,
                    };
                    guard.error.get_or_insert(error);
                }
            }
            wake.notify_all();
        }
    }

    fn solve_op(
        &self,
        request: &SolveRequest<'_>,
        op: &PlannedOp,
        inputs: &[OpResult],
        vertex: Option<&Vertex>,
        in_flight: &InFlight,
    ) -> Result<OpResult> {
        let material = op.op.cache_key_material();
        let input_keys: Vec<CacheKey> = inputs.iter().map(|i| i.key).collect();
        let started = Instant::now();
        if let Op::Source(source) = &op.op {
            if let Some(vertex) = vertex {
                self.reporter.on_vertex_start(vertex);
            }
            let result = self.source(request, source, &material, &input_keys)?;
            if let Some(vertex) = vertex {
                self.reporter.on_vertex_done(vertex, started.elapsed());
            }
            return Ok(result);
        }
        // `COPY --link` does not read its destination: its key leaves the base out, so a new base reuses the
        // layer (BuildKit's rebase).
        // What depends on the op still sees the base in its key: its result is the base plus the layer.
        let mut layer_inputs = input_keys.clone();
        let mut linked = false;
        if let Op::Copy(c) | Op::Add(c) = &op.op
            && c.link
            && c.chown
                .as_deref()
                .is_none_or(|spec| spec.split(':').all(|id| id.parse::<u32>().is_ok()))
            && let Some(first) = layer_inputs.first_mut()
        {
            *first = CacheKey::compute(b"link", &[], None);
            linked = true;
        }
        let layer_key = CacheKey::compute(&material, &layer_inputs, None);
        let key = match input_keys.first() {
            Some(base) if linked => CacheKey::compute(b"link-merge", &[layer_key, *base], None),
            _ => layer_key,
        };
        let base = inputs
            .first()
            .map(|i| i.layers().to_vec())
            .unwrap_or_default();
        let with_layer = |record: &OpRecord| {
            let mut layers = base.clone();
            layers.extend(record.added_layer(layer_key));
            layers
        };
        if !op.ignore_cache
            && let Some(record) = cache::lookup(self.store, &layer_key)?
        {
            if let Some(vertex) = vertex {
                self.reporter.on_vertex_cached(vertex);
            }
            return Ok(OpResult {
                key,
                output: Output::Layers(with_layer(&record)),
                record: Some(record),
                base_config: None,
                cached: true,
            });
        }
        // The same step in two stages (same key) runs once; the second waits for it (BuildKit merges edges).
        let slot = match in_flight.claim(layer_key) {
            Claim::Leader(slot) => slot,
            Claim::Follower(slot) => {
                let record = slot
                    .wait()
                    .ok_or_else(|| EngineError::invalid("the same step failed in another stage"))?;
                if let Some(vertex) = vertex {
                    self.reporter.on_vertex_cached(vertex);
                }
                return Ok(OpResult {
                    key,
                    output: Output::Layers(with_layer(&record)),
                    record: Some(record),
                    base_config: None,
                    cached: true,
                });
            }
        };
        if let Some(vertex) = vertex {
            self.reporter.on_vertex_start(vertex);
        }
        let ran = self
            .run_op(request, op, inputs, vertex, layer_key)
            .and_then(|made| {
                let (layer, pending) = match made {
                    Made::Nothing => (None, None),
                    Made::Blob(layer) => (Some(layer), None),
                    Made::Kept(snapshot) => (None, Some(snapshot)),
                };
                let record = OpRecord {
                    layer,
                    pending,
                    created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                };
                cache::record(self.store, &layer_key, &record)?;
                Ok(record)
            });
        slot.finish(ran.as_ref().ok().cloned());
        let record = ran?;
        if let Some(vertex) = vertex {
            self.reporter.on_vertex_done(vertex, started.elapsed());
        }
        Ok(OpResult {
            key,
            output: Output::Layers(with_layer(&record)),
            record: Some(record),
            base_config: None,
            cached: false,
        })
    }

    fn source(
        &self,
        request: &SolveRequest<'_>,
        source: &Source,
        material: &[u8],
        input_keys: &[CacheKey],
    ) -> Result<OpResult> {
        let result = |content: &[u8], output, base_config| OpResult {
            key: CacheKey::compute(material, input_keys, Some(content)),
            output,
            record: None,
            base_config,
            cached: false,
        };
        match source {
            Source::Scratch => Ok(result(b"", Output::Layers(Vec::new()), None)),
            Source::Image { reference, .. }
            | Source::NamedContext {
                kind: NamedContextKind::Image(reference),
                ..
            } => {
                let (id, layers, config) = self.image_source(reference)?;
                let layers = layers.into_iter().map(Layer::Blob).collect();
                Ok(result(id.as_bytes(), Output::Layers(layers), Some(config)))
            }
            Source::Context {
                name,
                include,
                exclude: _,
            } => {
                let (root, ignore) = if name == "context" {
                    (
                        request.context_dir.to_path_buf(),
                        request.ignore_patterns.to_vec(),
                    )
                } else {
                    let root = request.named_contexts.get(name).ok_or_else(|| {
                        EngineError::Unsupported {
                            what: format!("the build context {name:?}"),
                        }
                    })?;
                    // A named directory has its own `.dockerignore` (BuildKit's named local context).
                    let ignore = hoist_context::find_ignore_file(root, None)?
                        .map(|file| file.patterns)
                        .unwrap_or_default();
                    (root.clone(), ignore)
                };
                // Kept with the store (as BuildKit keeps its checksum cache in its state directory), so a new
                // store starts cold and a store moved elsewhere keeps its sums.
                let sums = ChecksumCache {
                    dir: self.store.root().join(CONTEXT_SUMS_DIR),
                };
                let content = hash_context(&root, &ignore, include, &sums)?;
                Ok(result(&content, Output::Context { root, ignore }, None))
            }
            Source::NamedContext {
                kind: NamedContextKind::OciLayout(layout),
                ..
            } => {
                let image = crate::contexts::load(self.store, layout)?;
                let config = serde_json::from_slice(&image.config_bytes).unwrap_or_default();
                let layers = image.layers.into_iter().map(Layer::Blob).collect();
                Ok(result(
                    image.id.as_bytes(),
                    Output::Layers(layers),
                    Some(config),
                ))
            }
            Source::NamedContext { name, .. } => Err(EngineError::Unsupported {
                what: format!("the build context {name:?}"),
            }),
            Source::Http {
                url,
                checksum,
                filename,
            } => {
                let downloads = self.scratch.join("downloads");
                let fetched = crate::remote::fetch(
                    &downloads,
                    url,
                    checksum.as_deref(),
                    filename,
                    request.secrets,
                )?;
                let content = fetched.key_content(filename, checksum.as_deref());
                let output = Output::Context {
                    root: fetched.dir,
                    ignore: Vec::new(),
                };
                Ok(result(&content, output, None))
            }
            Source::Git { url, .. } => Err(EngineError::Unsupported {
                what: format!("ADD from {url}"),
            }),
        }
    }

    /// An image from the store: its ID, its layers and its config.
    fn image_source(&self, reference: &str) -> Result<(String, Vec<LayerRef>, serde_json::Value)> {
        let image = crate::resolver::read_image(self.store, reference).map_err(|e| {
            EngineError::ImageNotFound {
                reference: reference.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let diff_ids = image.config.rootfs().diff_ids();
        let mut layers = Vec::new();
        for (i, layer) in image.layers.iter().enumerate() {
            let digest = hoist_oci::digest_from_oci(layer.descriptor.digest()).map_err(|e| {
                EngineError::Layer {
                    what: format!("image {reference} has a bad layer digest"),
                    source: Box::new(e),
                }
            })?;
            let diff_id = match (&layer.info, diff_ids.get(i)) {
                (Some(info), _) => info.diff_id,
                (None, Some(id)) => id.parse().map_err(|e| EngineError::Layer {
                    what: format!("bad diffID in image {reference}"),
                    source: Box::new(e),
                })?,
                (None, None) => {
                    return Err(EngineError::invalid(format!(
                        "image {reference} lists more layers than diffIDs"
                    )));
                }
            };
            layers.push(LayerRef {
                digest,
                diff_id,
                size: layer.descriptor.size(),
                media_type: layer.descriptor.media_type().to_string(),
            });
        }
        let config = serde_json::from_slice(&image.config_bytes).unwrap_or_default();
        Ok((image.id.to_string(), layers, config))
    }

    /// Runs an op that makes a layer (`layer_key` is the key its record goes under).
    fn run_op(
        &self,
        request: &SolveRequest<'_>,
        op: &PlannedOp,
        inputs: &[OpResult],
        vertex: Option<&Vertex>,
        layer_key: CacheKey,
    ) -> Result<Made> {
        let base = inputs
            .first()
            .map(|i| i.layers().to_vec())
            .unwrap_or_default();
        let lower = view::unpack(self.store, &base)?;
        match &op.op {
            Op::Exec(exec) => {
                let prepared = self.prepare_mounts(request, exec, inputs)?;
                let logs = |data: &[u8]| {
                    if let Some(vertex) = vertex {
                        self.reporter.on_log(vertex, data);
                    }
                };
                let request = |scratch| ExecRequest {
                    exec,
                    lower: &lower,
                    scratch,
                    mounts: &prepared.mounts,
                    secret_env: &prepared.secret_env,
                };
                let snapshots = self.store.area_dir(Area::Snapshots);
                if self.executor.keeps_directories() && hoist_sandbox::can_hold_upper(&snapshots) {
                    // The step's scratch space (its overlay upper and work directories) goes inside the entry, so
                    // the upper directory moves into place with a rename.
                    let key = crate::pending::kept_entry_key(layer_key);
                    let entry = self
                        .store
                        .begin_entry(Area::Snapshots, &key)
                        .map_err(|e| EngineError::store("failed to keep a step's changes", e))?;
                    let dest = hoist_sandbox::kept_dir(entry.path());
                    let outcome = self.executor.execute(
                        &request(entry.path()),
                        &logs,
                        Diff::Directory(&dest),
                    )?;
                    if outcome.entries == 0 {
                        return Ok(Made::Nothing);
                    }
                    entry
                        .commit()
                        .map_err(|e| EngineError::store("failed to keep a step's changes", e))?;
                    return Ok(Made::Kept(key));
                }
                let layer = ingest(self.store, |out| {
                    Ok(self
                        .executor
                        .execute(&request(&self.scratch), &logs, Diff::Tar(out))?
                        .entries)
                })?;
                Ok(layer.map_or(Made::Nothing, Made::Blob))
            }
            Op::Copy(file_copy) | Op::Add(file_copy) => {
                let dest_view = LayerView::new(lower);
                let mut trees = Vec::with_capacity(inputs.len());
                for (i, input) in inputs.iter().enumerate() {
                    let tree = match &input.output {
                        _ if !uses_input(file_copy, i) => None,
                        Output::Context { root, ignore } => Some(context_tree(root, ignore)?),
                        Output::Layers(layers) => Some(Tree::Layers {
                            view: LayerView::new(view::unpack(self.store, layers)?),
                        }),
                    };
                    trees.push(tree);
                }
                // `--link`: the files land on an empty filesystem, so the layer does not depend on the base.
                let linked = LayerView::default();
                let layer = copy::plan(
                    file_copy,
                    matches!(op.op, Op::Add(_)),
                    &trees,
                    if file_copy.link { &linked } else { &dest_view },
                    &dest_view,
                    &self.scratch,
                )?;
                if layer.is_empty() {
                    return Ok(Made::Nothing);
                }
                Ok(ingest(self.store, |out| layer.write(out))?.map_or(Made::Nothing, Made::Blob))
            }
            Op::Mkdir(mkdir) => {
                let dest_view = LayerView::new(lower);
                let layer = copy::mkdir(mkdir, &dest_view, &self.scratch)?;
                if layer.is_empty() {
                    return Ok(Made::Nothing);
                }
                Ok(ingest(self.store, |out| layer.write(out))?.map_or(Made::Nothing, Made::Blob))
            }
            Op::Source(_) => unreachable!("sources are solved without running"),
        }
    }

    pub(crate) fn staging(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("staging-")
            .tempdir_in(&self.scratch)
            .map_err(|e| EngineError::io("create a directory in", &self.scratch, e))
    }
}

/// A context directory as COPY reads it: through its ignore patterns.
pub(crate) fn context_tree(root: &Path, ignore: &[String]) -> Result<Tree> {
    Ok(Tree::Context {
        root: root.to_path_buf(),
        filters: vec![ContextFilter::new(&[] as &[String], ignore).map_err(EngineError::Context)?],
    })
}

/// Whether a COPY reads files from its input `index`.
fn uses_input(copy: &hoist_plan::op::FileCopy, index: usize) -> bool {
    copy.sources.iter().any(|s| match s {
        CopySource::Path { input, .. } | CopySource::Remote { input, .. } => *input == index,
        CopySource::Heredoc(_) => false,
    })
}

/// The ops the target stage's root depends on.
fn needed_ops(plan: &BuildPlan) -> Vec<bool> {
    let mut needed = vec![false; plan.ops.len()];
    let mut stack = vec![plan.target_stage().root.0];
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut needed[id], true) {
            continue;
        }
        stack.extend(plan.ops[id].inputs.iter().map(|i| i.0));
    }
    needed
}

impl From<ContextError> for EngineError {
    fn from(error: ContextError) -> Self {
        EngineError::Context(error)
    }
}
