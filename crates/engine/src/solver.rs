//! The solver: cache keys for every op the target needs, cache lookups, and the ops that miss run on a bounded
//! pool of threads as soon as their inputs are ready (BuildKit's scheduler, without edges merging across builds).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Instant, SystemTime};

use hoist_context::{ContextError, ContextFilter, ContextWalker, EntryKind, WalkOptions};
use hoist_instructions::{MountType, Sharing};
use hoist_layer::{CompressOptions, Compression, LayerBlobWriter, WriteOptions};
use hoist_oci::{Area, Expected, LayerInfo, ManifestFormat, Store};
use hoist_plan::NamedContextKind;
use hoist_plan::op::{CopySource, Source};
use hoist_plan::{BuildPlan, Op, OpId, PlannedOp};
use rustix::fs::FlockOperation;
use sha2::{Digest as _, Sha256};

use crate::cache::{self, CacheKey, LayerRef, OpRecord};
use crate::copy::{self, Tree};
use crate::error::{EngineError, Result};
use crate::exec::{ExecRequest, Executor, RunMount};
use crate::reporter::{Reporter, Vertex};
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
    Layers(Vec<LayerRef>),
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
    pub fn layers(&self) -> &[LayerRef] {
        match &self.output {
            Output::Layers(layers) => layers,
            Output::Context { .. } => &[],
        }
    }
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

/// A step's mounts as host paths, with the temporary directories that hold them (deleted when this is dropped,
/// after the step).
struct PreparedMounts {
    mounts: Vec<RunMount>,
    secret_env: Vec<String>,
    _holders: Vec<Option<tempfile::TempDir>>,
    /// `sharing=locked|private` cache locks, released after the step.
    _locks: Vec<fs::File>,
}

/// Steps running now, by cache key, so that a duplicate waits for the first instead of running again.
#[derive(Default)]
struct InFlight {
    slots: Mutex<HashMap<CacheKey, Arc<Slot>>>,
}

/// The outcome of a running step: `None` while it runs, then its record (`None` inside when it failed).
#[derive(Default)]
struct Slot {
    outcome: Mutex<Option<Option<OpRecord>>>,
    finished: Condvar,
}

enum Claim {
    /// Run it, then [`Slot::finish`].
    Leader(Arc<Slot>),
    /// Someone else runs it: [`Slot::wait`].
    Follower(Arc<Slot>),
}

impl InFlight {
    fn claim(&self, key: CacheKey) -> Claim {
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
    fn finish(&self, record: Option<OpRecord>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(record);
        self.finished.notify_all();
    }

    fn wait(&self) -> Option<OpRecord> {
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
        let needed = needed_ops(plan);
        let names = vertex_names(plan, request.dockerfile);
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
            layers.extend(record.layer.clone());
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
        let ran = self.run_op(request, op, inputs, vertex).and_then(|layer| {
            let record = OpRecord {
                layer,
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
                    (root.clone(), Vec::new())
                };
                let sums = ChecksumCache {
                    dir: self.scratch.join("context-sums"),
                };
                let content = hash_context(&root, &ignore, include, &sums)?;
                Ok(result(&content, Output::Context { root, ignore }, None))
            }
            Source::NamedContext { name, .. } => Err(EngineError::Unsupported {
                what: format!("the build context {name:?}"),
            }),
            Source::Http { url, .. } | Source::Git { url, .. } => Err(EngineError::Unsupported {
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

    /// Runs an op that makes a layer; `None` when it changed nothing.
    fn run_op(
        &self,
        request: &SolveRequest<'_>,
        op: &PlannedOp,
        inputs: &[OpResult],
        vertex: Option<&Vertex>,
    ) -> Result<Option<LayerRef>> {
        let base = inputs
            .first()
            .map(|i| i.layers().to_vec())
            .unwrap_or_default();
        let lower = view::unpack(self.store, &base)?;
        match &op.op {
            Op::Exec(exec) => {
                let prepared = self.prepare_mounts(request, exec, inputs)?;
                self.ingest(|out| {
                    let request = ExecRequest {
                        exec,
                        lower: &lower,
                        scratch: &self.scratch,
                        mounts: &prepared.mounts,
                        secret_env: &prepared.secret_env,
                    };
                    let logs = |data: &[u8]| {
                        if let Some(vertex) = vertex {
                            self.reporter.on_log(vertex, data);
                        }
                    };
                    Ok(self.executor.execute(&request, &logs, out)?.entries)
                })
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
                let staging = self.staging()?;
                // `--link`: the files land on an empty filesystem, so the layer does not depend on the base.
                let linked = LayerView::default();
                if !copy::copy(
                    file_copy,
                    matches!(op.op, Op::Add(_)),
                    &trees,
                    if file_copy.link { &linked } else { &dest_view },
                    &dest_view,
                    staging.path(),
                )? {
                    return Ok(None);
                }
                self.ingest_dir(staging.path())
            }
            Op::Mkdir(mkdir) => {
                let dest_view = LayerView::new(lower);
                let staging = self.staging()?;
                if !copy::mkdir(mkdir, &dest_view, staging.path())? {
                    return Ok(None);
                }
                self.ingest_dir(staging.path())
            }
            Op::Source(_) => unreachable!("sources are solved without running"),
        }
    }

    /// Host directories for a step's `--mount`s; each comes with the temporary directory it lives in, if any,
    /// which must outlive the step.
    fn prepare_mounts(
        &self,
        request: &SolveRequest<'_>,
        exec: &hoist_plan::op::Exec,
        inputs: &[OpResult],
    ) -> Result<PreparedMounts> {
        let mut prepared = Vec::new();
        let mut secret_env = Vec::new();
        let mut held = Vec::new();
        for planned in &exec.mounts {
            let mount = &planned.mount;
            let (source, holder, read_only) = match mount.kind {
                MountType::Cache => {
                    let id = if mount.id.is_empty() {
                        &mount.target
                    } else {
                        &mount.id
                    };
                    let key = format!(
                        "mount-{}",
                        CacheKey::compute(id.as_bytes(), &[], None).hex()
                    );
                    let dir = match self
                        .store
                        .use_entry(Area::Cache, &key)
                        .map_err(|e| EngineError::store("failed to open a cache mount", e))?
                    {
                        Some(dir) => dir,
                        None => {
                            let entry = self.store.begin_entry(Area::Cache, &key).map_err(|e| {
                                EngineError::store("failed to create a cache mount", e)
                            })?;
                            let path = entry.path().to_path_buf();
                            let mode = mount.mode.unwrap_or(0o755);
                            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                                .map_err(|e| EngineError::io("set the mode of", &path, e))?;
                            std::os::unix::fs::chown(
                                &path,
                                Some(mount.uid.unwrap_or(0)),
                                Some(mount.gid.unwrap_or(0)),
                            )
                            .map_err(|e| EngineError::io("change the owner of", &path, e))?;
                            entry.commit().map_err(|e| {
                                EngineError::store("failed to create a cache mount", e)
                            })?
                        }
                    };
                    // `sharing=locked` waits for other users of the cache; `private` takes a fresh directory
                    // when it is in use. The lock files live in the scratch directory, beside no store data.
                    let sharing = mount.sharing.unwrap_or(Sharing::Shared);
                    if sharing == Sharing::Shared {
                        (dir, None, mount.read_only)
                    } else {
                        let locks = self.scratch.join("cache-locks");
                        fs::create_dir_all(&locks)
                            .map_err(|e| EngineError::io("create", &locks, e))?;
                        let path = locks.join(format!("{key}.lock"));
                        let file = fs::File::create(&path)
                            .map_err(|e| EngineError::io("create", &path, e))?;
                        let operation = if sharing == Sharing::Locked {
                            FlockOperation::LockExclusive
                        } else {
                            FlockOperation::NonBlockingLockExclusive
                        };
                        match rustix::fs::flock(&file, operation) {
                            Ok(()) => {
                                held.push(file);
                                (dir, None, mount.read_only)
                            }
                            Err(_) if sharing == Sharing::Private => {
                                let fresh = self.staging()?;
                                (fresh.path().to_path_buf(), Some(fresh), mount.read_only)
                            }
                            Err(e) => return Err(EngineError::io("lock", &path, e.into())),
                        }
                    }
                }
                MountType::Tmpfs => {
                    let dir = self.staging()?;
                    (dir.path().to_path_buf(), Some(dir), false)
                }
                MountType::Bind => {
                    let input = planned.input.and_then(|i| inputs.get(i)).ok_or_else(|| {
                        EngineError::invalid(format!(
                            "RUN --mount target {} has no source",
                            mount.target
                        ))
                    })?;
                    match &input.output {
                        Output::Context { root, .. } if mount.read_only => {
                            let source = root.join(view::clean(Path::new(&mount.source)));
                            (source, None, true)
                        }
                        output => {
                            // A copy: a writable bind's changes are discarded, and a stage's files need merging.
                            let tree = match output {
                                Output::Context { root, ignore } => context_tree(root, ignore)?,
                                Output::Layers(layers) => Tree::Layers {
                                    view: LayerView::new(view::unpack(self.store, layers)?),
                                },
                            };
                            let dir = self.staging()?;
                            let selection = hoist_plan::op::FileCopy {
                                from: hoist_plan::op::CopyFrom::Context("mount".to_owned()),
                                sources: vec![CopySource::Path {
                                    path: format!("/{}", mount.source.trim_start_matches('/')),
                                    input: 0,
                                }],
                                dest: "/".to_owned(),
                                chown: None,
                                chmod: None,
                                link: false,
                                parents: false,
                                exclude: Vec::new(),
                                unpack: Some(false),
                                checksum: None,
                                keep_git_dir: false,
                            };
                            copy::copy(
                                &selection,
                                false,
                                &[Some(tree)],
                                &LayerView::default(),
                                &LayerView::default(),
                                dir.path(),
                            )?;
                            (dir.path().to_path_buf(), Some(dir), mount.read_only)
                        }
                    }
                }
                MountType::Secret => {
                    // BuildKit: the id is `id`, else `source`, else the target's file name.
                    let id = [&mount.id, &mount.source]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .cloned()
                        .unwrap_or_else(|| {
                            Path::new(&mount.target)
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        });
                    let Some(value) = request.secrets.get(&id) else {
                        if mount.required {
                            return Err(EngineError::invalid(format!("secret {id} not found")));
                        }
                        continue;
                    };
                    if let Some(name) = &mount.env {
                        let name = if name.is_empty() { &id } else { name };
                        secret_env.push(format!("{name}={}", String::from_utf8_lossy(value)));
                        if mount.target.is_empty() {
                            continue;
                        }
                    }
                    let dir = self.staging()?;
                    let path = dir.path().join("secret");
                    fs::write(&path, value).map_err(|e| EngineError::io("write", &path, e))?;
                    fs::set_permissions(
                        &path,
                        fs::Permissions::from_mode(mount.mode.unwrap_or(0o400)),
                    )
                    .map_err(|e| EngineError::io("set the mode of", &path, e))?;
                    std::os::unix::fs::chown(
                        &path,
                        Some(mount.uid.unwrap_or(0)),
                        Some(mount.gid.unwrap_or(0)),
                    )
                    .map_err(|e| EngineError::io("change the owner of", &path, e))?;
                    let target = if mount.target.is_empty() {
                        format!("/run/secrets/{id}")
                    } else {
                        mount.target.clone()
                    };
                    prepared.push((
                        RunMount {
                            source: path,
                            target,
                            read_only: true,
                        },
                        Some(dir),
                    ));
                    continue;
                }
                MountType::Ssh => {
                    return Err(EngineError::Unsupported {
                        what: "RUN --mount=type=ssh".to_owned(),
                    });
                }
            };
            prepared.push((
                RunMount {
                    source,
                    target: mount.target.clone(),
                    read_only,
                },
                holder,
            ));
        }
        let (mounts, holders) = prepared.into_iter().unzip();
        Ok(PreparedMounts {
            mounts,
            secret_env,
            _holders: holders,
            _locks: held,
        })
    }

    fn staging(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("staging-")
            .tempdir_in(&self.scratch)
            .map_err(|e| EngineError::io("create a directory in", &self.scratch, e))
    }

    fn ingest_dir(&self, dir: &Path) -> Result<Option<LayerRef>> {
        self.ingest(|out| {
            hoist_layer::write_layer(dir, out, &WriteOptions::new())
                .map(|summary| summary.entries)
                .map_err(|e| EngineError::Layer {
                    what: format!("failed to write a layer from {}", dir.display()),
                    source: Box::new(e),
                })
        })
    }

    /// Compresses the tar `write` produces (gzip) straight into the store, with the layer's info, in one pass:
    /// the tar stream is hashed (diffID), compressed, hashed again (digest) and written, while a helper thread
    /// measures its content size from a copy. Returns `None` when `write` reports no entries.
    fn ingest(
        &self,
        write: impl FnOnce(&mut (dyn Write + Send)) -> Result<u64>,
    ) -> Result<Option<LayerRef>> {
        let store_error = |e| EngineError::store("failed to store a layer", e);
        let compress_error = |e| EngineError::io("compress a layer into", self.store.root(), e);
        let blob = self.store.blob_writer().map_err(store_error)?;
        let mut layer = LayerBlobWriter::new(blob, Compression::Gzip, &CompressOptions::default())
            .map_err(compress_error)?;
        let (mut reader, pipe) = std::io::pipe().map_err(compress_error)?;
        let (entries, content_size) = std::thread::scope(|scope| {
            let measure = scope.spawn(move || {
                let size = hoist_oci::tar_content_size(&mut reader);
                // Read to the end so the writer never blocks on a full pipe.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                size
            });
            let mut tee = Tee {
                main: &mut layer,
                copy: Some(pipe),
            };
            let entries = write(&mut tee);
            drop(tee);
            let size = measure
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the measuring thread panicked")));
            (entries, size)
        });
        let entries = entries?;
        if entries == 0 {
            return Ok(None);
        }
        let content_size = content_size.map_err(compress_error)?;
        let (blob, digests) = layer.finish().map_err(compress_error)?;
        let stored = blob
            .commit(&Expected::digest(digests.digest).with_size(digests.size))
            .map_err(store_error)?;
        let info = LayerInfo {
            diff_id: digests.diff_id,
            uncompressed_size: digests.uncompressed_size,
            content_size,
        };
        self.store
            .set_layer_info(&stored.digest, &info)
            .map_err(store_error)?;
        Ok(Some(LayerRef {
            digest: stored.digest,
            diff_id: digests.diff_id,
            size: stored.size,
            media_type: ManifestFormat::Oci
                .layer_media_type(Compression::Gzip)
                .to_owned(),
        }))
    }
}

/// Writes everything to `main`, and a copy to `copy` while it accepts it (the measuring thread may stop early on
/// a malformed stream; the layer itself must not fail because of that).
struct Tee<'a, W: Write> {
    main: &'a mut W,
    copy: Option<std::io::PipeWriter>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.main.write(buf)?;
        if let Some(copy) = &mut self.copy
            && copy.write_all(&buf[..n]).is_err()
        {
            self.copy = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.main.flush()
    }
}

/// A context directory as COPY reads it: through its ignore patterns.
fn context_tree(root: &Path, ignore: &[String]) -> Result<Tree> {
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

/// The content of a context source: every selected path with its type, mode, size, link target and the SHA-256
/// of its bytes (not its time or owner, as BuildKit's content checksums).
///
/// File digests are remembered in `sums` by (size, mtime, ctime, inode): an unchanged file is not read again
/// (BuildKit keeps the same metadata-keyed checksum cache). A write changes the ctime, so a stale digest is never
/// used.
fn hash_context(
    root: &Path,
    ignore: &[String],
    include: &[String],
    sums: &ChecksumCache,
) -> Result<Vec<u8>> {
    let options = WalkOptions {
        include_patterns: include.to_vec(),
        exclude_patterns: ignore.to_vec(),
        follow_paths: Vec::new(),
    };
    // `--exclude` is left out: hashing files a COPY skips only costs an unneeded rerun, never a stale hit.
    let walker = ContextWalker::new(root, &options).map_err(EngineError::Context)?;
    let root = walker.root().to_path_buf();
    let mut known = sums.load(&root);
    let mut hasher = Sha256::new();
    walker.walk(|entry| -> Result<()> {
        let path = entry.path().as_os_str().as_encoded_bytes();
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path);
        hasher.update(format!("{:?}:{:o}:{}", entry.kind(), entry.mode(), entry.size()).as_bytes());
        if let Some(target) = entry.link_target() {
            hasher.update(target.as_os_str().as_encoded_bytes());
        }
        if entry.kind() == EntryKind::File {
            use std::os::unix::fs::MetadataExt;
            let meta = entry.metadata();
            let stamp = format!(
                "{}:{}.{}:{}.{}:{}",
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                meta.ino()
            );
            let rel = entry.path().to_string_lossy().into_owned();
            let digest = match known.get(&rel) {
                Some((seen, digest)) if *seen == stamp => digest.clone(),
                _ => {
                    let abs = root.join(entry.path());
                    let digest = file_sha256(&abs)?;
                    known.insert(rel, (stamp, digest.clone()));
                    digest
                }
            };
            hasher.update(digest.as_bytes());
        }
        Ok(())
    })?;
    sums.store(&root, &known);
    Ok(hasher.finalize().to_vec())
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(|e| EngineError::io("read", path, e))?;
    let mut content = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| EngineError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        content.update(&buf[..n]);
    }
    Ok(hex::encode(content.finalize()))
}

/// Remembered file digests of context directories: one JSON file per directory under the scratch directory,
/// replaced whole by rename. Only a cache: unreadable or missing files mean "hash everything", and two writers
/// at once can only lose each other's new entries.
struct ChecksumCache {
    dir: PathBuf,
}

type Sums = BTreeMap<String, (String, String)>;

impl ChecksumCache {
    fn file(&self, root: &Path) -> PathBuf {
        let name = hex::encode(Sha256::digest(root.as_os_str().as_encoded_bytes()));
        self.dir.join(format!("{name}.json"))
    }

    fn load(&self, root: &Path) -> Sums {
        fs::read(self.file(root))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Merges `sums` into the stored ones (other COPYs of the same context keep theirs).
    fn store(&self, root: &Path, sums: &Sums) {
        let path = self.file(root);
        let mut all: Sums = fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        all.extend(sums.iter().map(|(k, v)| (k.clone(), v.clone())));
        let bytes = serde_json::to_vec(&all).expect("a map of strings always serializes");
        // A failure only means the next build hashes again.
        let written = fs::create_dir_all(&self.dir)
            .and_then(|()| tempfile::NamedTempFile::new_in(&self.dir))
            .and_then(|mut file| {
                file.write_all(&bytes)?;
                file.persist(&path).map_err(|e| e.error)
            });
        drop(written);
    }
}

impl From<ContextError> for EngineError {
    fn from(error: ContextError) -> Self {
        EngineError::Context(error)
    }
}

/// BuildKit's vertex names: `[builder 2/6] RUN go build`, `[internal] load build context`.
fn vertex_names(plan: &BuildPlan, dockerfile: &str) -> HashMap<usize, String> {
    let mut names = HashMap::new();
    for (position, stage) in plan.stages.iter().enumerate() {
        let prefix = match &stage.name {
            Some(name) => format!("{name} "),
            None if position == plan.target => String::new(),
            None => format!("stage-{} ", stage.index),
        };
        let steps: Vec<_> = stage
            .steps
            .iter()
            .filter_map(|s| s.op.map(|op| (s, op)))
            .collect();
        let total = steps.len() + 1;
        // The FROM source: follow the first input back until the op is no longer this stage's.
        let mut base = stage.root;
        while plan.op(base).stage == Some(stage.index) && !plan.op(base).inputs.is_empty() {
            base = plan.op(base).inputs[0];
        }
        if let Op::Source(Source::Image { reference, .. }) = &plan.op(base).op {
            names
                .entry(base.0)
                .or_insert_with(|| format!("[{prefix}1/{total}] FROM {reference}"));
        }
        for (k, (step, op)) in steps.iter().enumerate() {
            let text = instruction_text(dockerfile, step.span.start, step.span.end);
            names.insert(op.0, format!("[{prefix}{}/{total}] {text}", k + 2));
        }
    }
    for op in &plan.ops {
        if let Op::Source(Source::Context { .. }) = op.op {
            names.insert(op.id.0, "[internal] load build context".to_owned());
        }
    }
    names
}

/// An instruction's text on one line: continuation lines joined, heredoc bodies left out.
fn instruction_text(dockerfile: &str, start: usize, end: usize) -> String {
    let text = dockerfile
        .get(start..end.min(dockerfile.len()))
        .unwrap_or_default();
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body.trim_end(), true),
            None => (trimmed, false),
        };
        if !out.is_empty() && !body.is_empty() {
            out.push(' ');
        }
        out.push_str(body);
        if !continues {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::{ChecksumCache, Sums, hash_context};

    #[test]
    fn context_digests_are_reused_until_the_file_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ctx");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        let sums = ChecksumCache {
            dir: tmp.path().join("sums"),
        };
        let include = ["a.txt".to_owned()];
        let first = hash_context(&root, &[], &include, &sums).unwrap();
        let canonical = fs::canonicalize(&root).unwrap();
        let mut known: Sums = sums.load(&canonical);
        assert_eq!(known.len(), 1, "the file's digest is remembered");

        // A remembered digest is used as long as the file's metadata is unchanged...
        known.get_mut("a.txt").unwrap().1 = "0".repeat(64);
        fs::write(sums.file(&canonical), serde_json::to_vec(&known).unwrap()).unwrap();
        let from_cache = hash_context(&root, &[], &include, &sums).unwrap();
        assert_ne!(from_cache, first);

        // ...and a write (new ctime) makes it read the file again.
        fs::write(root.join("a.txt"), "a").unwrap();
        let reread = hash_context(&root, &[], &include, &sums).unwrap();
        assert_eq!(reread, first);
    }
}
