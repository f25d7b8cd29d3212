//! Exporters: the target's image (config, history and manifest written to the store), and its filesystem or image
//! written elsewhere (`--output type=local|tar|docker|oci|image|registry`, `--load`, `--push`), as BuildKit's
//! exporters do after a solve. [`export`] runs them all as one `exporting to image` vertex.
//!
//! With `SOURCE_DATE_EPOCH` ([`ExportRequest::source_date_epoch`]) the image is reproducible, as BuildKit's
//! `rewrite-timestamp=true`: the config's `created`, the build's history entries and file times newer than it
//! are clamped to it (layers with newer files are rewritten, header by header, into new blobs).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use hoist_layer::{ApplyOptions, Decompressor, WriteOptions, apply_layer};
use hoist_oci::oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use hoist_oci::{Digest, DigestExt, LayerCompression, ManifestFormat, Reference, Store};
use hoist_plan::{BuildPlan, ImageConfig, Op, StageBase};
use hoist_registry::{Client, Event, ImageReference, PushOptions, PushedImage};
use serde_json::{Map, Value, json};

use crate::cache::LayerRef;
use crate::error::{EngineError, Result};
use crate::reporter::{EXPORT_SLOT, Reporter, Vertex, VertexStatus};
use crate::solver::Solution;
use crate::transfer::BlobStatuses;
use hoist_oci::error_chain;

/// The image a build produced, stored but not yet tagged.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image ID (the config's digest).
    pub id: Digest,
    /// The manifest's descriptor (tag this; its digest is `containerimage.digest`).
    pub manifest: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// The config as stored.
    pub config: Vec<u8>,
}

/// Writes the target stage's image to the store: its config (the plan's final config, the history with empty
/// layers marked, the layers' diffIDs), and a manifest in `format`.
pub fn export_image(
    store: &Store,
    plan: &BuildPlan,
    solution: &Solution,
    format: ManifestFormat,
) -> Result<BuiltImage> {
    export_image_at(store, plan, solution, format, None)
}

/// [`export_image`], reproducibly when `source_date_epoch` (seconds since 1970) is given: the config's `created`
/// and the build's history times are clamped to it (the base image's own history entries keep theirs), and
/// layers holding files newer than it are rewritten with those times clamped (BuildKit's `SOURCE_DATE_EPOCH` with
/// `rewrite-timestamp=true`).
pub fn export_image_at(
    store: &Store,
    plan: &BuildPlan,
    solution: &Solution,
    format: ManifestFormat,
    source_date_epoch: Option<i64>,
) -> Result<BuiltImage> {
    let stage = plan.target_stage();
    let root = solution
        .get(stage.root)
        .ok_or_else(|| EngineError::invalid("the target stage was not solved"))?;
    // Pending layers get their tars now: an image is made of blobs.
    let mut layers = crate::pending::materialize(store, root.layers())?;
    let (mut history, mut created) = stage_history(plan, solution, plan.target);
    if let Some(epoch) = source_date_epoch {
        let epoch = epoch.max(0);
        let stamp =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(epoch as u64))
                .to_string();
        let epoch_time = UNIX_EPOCH + Duration::from_secs(epoch as u64);
        let later = |value: Option<&Value>| {
            value
                .and_then(Value::as_str)
                .and_then(hoist_oci::units::parse_timestamp)
                .is_none_or(|t| t > epoch_time)
        };
        // The base image's own entries keep their times (BuildKit does, so the history still matches the base's
        // config); the build's entries are clamped, and get the epoch when they have no time.
        let base = base_history_len(plan, solution, plan.target).min(history.len());
        for entry in &mut history[base..] {
            if later(entry.get("created"))
                && let Some(object) = entry.as_object_mut()
            {
                object.insert("created".into(), json!(stamp));
            }
        }
        if created.as_ref().is_none_or(|c| later(Some(&json!(c)))) {
            created = Some(stamp);
        }
        for layer in &mut layers {
            *layer = clamp_layer_times(store, layer, epoch as u64)?;
        }
    }
    let mut config = Map::new();
    config.insert("architecture".into(), json!(stage.platform.architecture));
    config.insert("os".into(), json!(stage.platform.os));
    if !stage.platform.variant.is_empty() {
        config.insert("variant".into(), json!(stage.platform.variant));
    }
    if let Some(created) = &created {
        config.insert("created".into(), json!(created));
    }
    if !stage.config.author.is_empty() {
        config.insert("author".into(), json!(stage.config.author));
    }
    config.insert("config".into(), runtime_config(&stage.config));
    config.insert(
        "rootfs".into(),
        json!({
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
        }),
    );
    config.insert("history".into(), Value::Array(history));
    let bytes = serde_json::to_vec(&Value::Object(config)).expect("a JSON value always serializes");
    let descriptors: Vec<Descriptor> = layers
        .iter()
        .map(|l| {
            // The layer's own compression, in the manifest's family.
            let media_type = match hoist_oci::classify(&MediaType::from(l.media_type.as_str())) {
                hoist_oci::MediaKind::Layer(compression) => {
                    format.layer_media_type(compression).to_owned()
                }
                _ => l.media_type.clone(),
            };
            DescriptorBuilder::default()
                .media_type(MediaType::from(media_type.as_str()))
                .digest(l.digest.to_oci())
                .size(l.size)
                .build()
                .expect("media type, digest and size are all a descriptor requires")
        })
        .collect();
    let written = store
        .write_image(&bytes, &descriptors, format)
        .map_err(|e| EngineError::store("failed to write the image", e))?;
    let id =
        hoist_oci::digest_from_oci(written.config.digest()).map_err(|e| EngineError::Layer {
            what: "the stored config has a bad digest".to_owned(),
            source: Box::new(e),
        })?;
    Ok(BuiltImage {
        id,
        manifest: written.manifest,
        layers,
        config: bytes,
    })
}

/// How many leading entries of a stage's history are its base image's (through `FROM stage` chains).
fn base_history_len(plan: &BuildPlan, solution: &Solution, position: usize) -> usize {
    let stage = &plan.stages[position];
    match &stage.base {
        StageBase::Stage(index) => plan
            .stages
            .iter()
            .position(|s| s.index == *index)
            .map_or(0, |p| base_history_len(plan, solution, p)),
        StageBase::Image(_) => base_image_config(plan, solution, position)
            .as_ref()
            .and_then(|c| c.get("history"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        StageBase::Scratch | StageBase::NamedContext(_) => 0,
    }
}

/// The config of the image a stage starts from, as its source op read it.
fn base_image_config(plan: &BuildPlan, solution: &Solution, position: usize) -> Option<Value> {
    let stage = &plan.stages[position];
    let mut base = stage.root;
    while plan.op(base).stage == Some(stage.index) && !plan.op(base).inputs.is_empty() {
        base = plan.op(base).inputs[0];
    }
    match &plan.op(base).op {
        Op::Source(_) => solution.get(base).and_then(|r| r.base_config.clone()),
        _ => None,
    }
}

/// The history of a stage: its base's, then one entry per instruction, `empty_layer` where the step made no
/// layer; and the latest time a step of it (or its base) was created.
fn stage_history(
    plan: &BuildPlan,
    solution: &Solution,
    position: usize,
) -> (Vec<Value>, Option<String>) {
    let stage = &plan.stages[position];
    let (mut history, mut created) = match &stage.base {
        StageBase::Stage(index) => match plan.stages.iter().position(|s| s.index == *index) {
            Some(p) => stage_history(plan, solution, p),
            None => (Vec::new(), None),
        },
        StageBase::Image(_) => {
            let config = base_image_config(plan, solution, position);
            let history = config
                .as_ref()
                .and_then(|c| c.get("history"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let created = config
                .as_ref()
                .and_then(|c| c.get("created"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            (history, created)
        }
        StageBase::Scratch | StageBase::NamedContext(_) => (Vec::new(), None),
    };
    for step in &stage.steps {
        let record = step
            .op
            .and_then(|op| solution.get(op))
            .and_then(|r| r.record.as_ref());
        if let Some(record) = record
            && created
                .as_deref()
                .is_none_or(|c| record.created.as_str() > c)
        {
            created = Some(record.created.clone());
        }
        let Some(entry) = &step.history else { continue };
        let empty = record.is_none_or(|r| !r.changed());
        let mut value = Map::new();
        if let Some(created) = &created {
            value.insert("created".into(), json!(created));
        }
        value.insert("created_by".into(), json!(entry.created_by));
        if !entry.comment.is_empty() {
            value.insert("comment".into(), json!(entry.comment));
        }
        if empty {
            value.insert("empty_layer".into(), json!(true));
        }
        history.push(Value::Object(value));
    }
    (history, created)
}

/// The image config's `config` object, Docker's field names, empty fields left out.
fn runtime_config(config: &ImageConfig) -> Value {
    let mut out = Map::new();
    if !config.user.is_empty() {
        out.insert("User".into(), json!(config.user));
    }
    if !config.exposed_ports.is_empty() {
        let ports: Map<String, Value> = config
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        out.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if !config.env.is_empty() {
        out.insert("Env".into(), json!(config.env));
    }
    if let Some(entrypoint) = &config.entrypoint {
        out.insert("Entrypoint".into(), json!(entrypoint));
    }
    if let Some(cmd) = &config.cmd {
        out.insert("Cmd".into(), json!(cmd));
    }
    if !config.volumes.is_empty() {
        let volumes: Map<String, Value> = config
            .volumes
            .iter()
            .map(|v| (v.clone(), json!({})))
            .collect();
        out.insert("Volumes".into(), Value::Object(volumes));
    }
    if !config.working_dir.is_empty() {
        out.insert("WorkingDir".into(), json!(config.working_dir));
    }
    if !config.labels.is_empty() {
        out.insert("Labels".into(), json!(config.labels));
    }
    if !config.stop_signal.is_empty() {
        out.insert("StopSignal".into(), json!(config.stop_signal));
    }
    if config.args_escaped {
        out.insert("ArgsEscaped".into(), json!(true));
    }
    if let Some(health) = &config.healthcheck {
        let mut h = Map::new();
        h.insert("Test".into(), json!(health.test));
        for (name, d) in [
            ("Interval", health.interval),
            ("Timeout", health.timeout),
            ("StartPeriod", health.start_period),
            ("StartInterval", health.start_interval),
        ] {
            if !d.is_zero() {
                h.insert(name.into(), json!(d.as_nanos() as u64));
            }
        }
        if health.retries != 0 {
            h.insert("Retries".into(), json!(health.retries));
        }
        out.insert("Healthcheck".into(), Value::Object(h));
    }
    if !config.on_build.is_empty() {
        out.insert("OnBuild".into(), json!(config.on_build));
    }
    if !config.shell.is_empty() {
        out.insert("Shell".into(), json!(config.shell));
    }
    Value::Object(out)
}

/// Where `--output` sends the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `type=local,dest=DIR` (or `-o DIR`): the final filesystem as files.
    Local(PathBuf),
    /// `type=tar,dest=FILE` (or `-o -` for standard output): the final filesystem as one tar.
    Tar(Destination),
    /// `type=docker,dest=FILE[,name=N]`: a docker-archive `docker load` reads, its `RepoTags` the names (or the
    /// `-t` tags).
    Docker {
        /// Where it goes.
        dest: Destination,
        /// `name=`: the image's names in the archive.
        names: Vec<String>,
    },
    /// `type=docker` without `dest` (and `--load`): a docker-archive piped into `docker load`, as buildx loads
    /// it, its `RepoTags` the names (or the `-t` tags).
    Load {
        /// `name=`: the image's names in Docker.
        names: Vec<String>,
    },
    /// `type=oci,dest=FILE[,name=N]`: an OCI image layout tar, its layers compressed (gzip unless `compression=`
    /// says otherwise).
    Oci {
        /// Where it goes.
        dest: Destination,
        /// `name=`: the image's names in the layout's index.
        names: Vec<String>,
        /// `compression=`, `compression-level=`, `force-compression=`.
        compression: LayerCompression,
    },
    /// `type=image[,name=N][,push=true]` (the default), `type=registry[,name=N]` (= `type=image,push=true`): the
    /// store, under the names (or the `-t` tags), and with `push` their registries.
    Image {
        /// `name=`: names to tag (several comma-separated, in quotes: `"name=a,b"`).
        names: Vec<String>,
        /// `push=true`: push to each name's registry.
        push: bool,
        /// `compression=`, `compression-level=`, `force-compression=`: how layers are compressed for the push (the
        /// store keeps built layers uncompressed).
        compression: LayerCompression,
    },
}

/// A file or standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A file.
    File(PathBuf),
    /// `-`.
    Stdout,
}

impl OutputSpec {
    /// Parses docker's `--output` syntax: CSV fields `type=T,dest=D,name=N,push=B` (a field in double quotes may
    /// hold commas), a bare path (local) or `-` (tar to stdout). BuildKit's `compression=uncompressed|gzip|zstd`,
    /// `compression-level=N` and `force-compression=B` apply to `image`/`registry` pushes and `oci` tarballs.
    /// Unknown keys are ignored, as buildx passes them to exporters that may not use them.
    pub fn parse(spec: &str) -> Result<Self> {
        if !spec.contains('=') {
            return Ok(match spec {
                "-" => OutputSpec::Tar(Destination::Stdout),
                dir => OutputSpec::Local(PathBuf::from(dir)),
            });
        }
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        let mut push = None;
        let mut compression = LayerCompression::default();
        let boolean = |key: &str, value: &str| match value {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(EngineError::invalid(format!(
                "invalid value {other:?} for {key} in --output {spec}"
            ))),
        };
        for field in csv_fields(spec)? {
            let (k, v) = field.split_once('=').unwrap_or((&field, ""));
            match k.trim() {
                "type" => kind = Some(v.to_owned()),
                "dest" => dest = Some(v.to_owned()),
                "name" => names.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned),
                ),
                "push" => push = Some(boolean("push", v)?),
                "compression" => {
                    compression.compression = match v {
                        "uncompressed" => hoist_layer::Compression::None,
                        "gzip" => hoist_layer::Compression::Gzip,
                        "zstd" => hoist_layer::Compression::Zstd,
                        other => {
                            return Err(EngineError::Unsupported {
                                what: format!(
                                    "compression={other} (use uncompressed, gzip or zstd)"
                                ),
                            });
                        }
                    };
                }
                "compression-level" => {
                    compression.level = Some(v.parse().map_err(|_| {
                        EngineError::invalid(format!(
                            "invalid value {v:?} for compression-level in --output {spec}"
                        ))
                    })?);
                }
                "force-compression" => compression.force = boolean("force-compression", v)?,
                _ => {}
            }
        }
        let kind = kind.unwrap_or_else(|| "local".to_owned());
        if let Some(level) = compression.level {
            let range = match compression.compression {
                hoist_layer::Compression::Gzip => 0..=9,
                hoist_layer::Compression::Zstd => 1..=22,
                hoist_layer::Compression::None => i32::MIN..=i32::MAX,
            };
            if !range.contains(&level) {
                return Err(EngineError::invalid(format!(
                    "compression-level={level} is out of range for {} ({}..={}) in --output {spec}",
                    compression.compression,
                    range.start(),
                    range.end()
                )));
            }
        }
        let file = |dest: Option<String>| match dest.as_deref() {
            Some("-") => Ok(Destination::Stdout),
            Some(path) if !path.is_empty() => Ok(Destination::File(PathBuf::from(path))),
            _ => Err(EngineError::invalid(format!(
                "output type {kind} requires dest (--output type={kind},dest=FILE)"
            ))),
        };
        Ok(match kind.as_str() {
            "local" => match dest {
                Some(dest) if !dest.is_empty() && dest != "-" => {
                    OutputSpec::Local(PathBuf::from(dest))
                }
                _ => {
                    return Err(EngineError::invalid(
                        "output type local requires a dest directory",
                    ));
                }
            },
            "tar" => OutputSpec::Tar(file(dest)?),
            "docker" if dest.as_deref().is_none_or(str::is_empty) => OutputSpec::Load { names },
            "docker" => OutputSpec::Docker {
                dest: file(dest)?,
                names,
            },
            "oci" => OutputSpec::Oci {
                dest: file(dest)?,
                names,
                compression,
            },
            "image" | "registry" if dest.is_none() => OutputSpec::Image {
                names,
                push: kind == "registry" || push.unwrap_or(false),
                compression,
            },
            "image" | "registry" => {
                return Err(EngineError::invalid(format!(
                    "output type {kind} takes no dest (write name=REF)"
                )));
            }
            other => {
                return Err(EngineError::Unsupported {
                    what: format!("--output type={other}"),
                });
            }
        })
    }
}

/// Splits a `--output` value into its CSV fields, as buildx reads it: commas separate fields except inside double
/// quotes, `""` in quotes is a quote.
fn csv_fields(spec: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    if quoted {
        return Err(EngineError::invalid(format!(
            "unterminated quote in --output {spec}"
        )));
    }
    fields.push(field);
    Ok(fields)
}

/// Applies `layers` in order into `dir` (created if missing): `type=local`.
pub fn export_local(store: &Store, layers: &[LayerRef], dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| EngineError::io("create", dir, e))?;
    for layer in layers {
        let blob = store
            .open_blob(&layer.digest)
            .map_err(|e| EngineError::store(format!("failed to read layer {}", layer.digest), e))?;
        let reader = Decompressor::new(blob).map_err(|e| EngineError::io("read", dir, e))?;
        apply_layer(reader, dir, &ApplyOptions::new()).map_err(|e| EngineError::Export {
            dest: dir.display().to_string(),
            source: Box::new(e),
        })?;
    }
    Ok(())
}

/// Writes the final filesystem as one tar to `out`: `type=tar`. It is assembled in `scratch` first.
pub fn export_tar(
    store: &Store,
    layers: &[LayerRef],
    scratch: &Path,
    out: impl Write + Send,
) -> Result<()> {
    write_tar(store, layers, scratch, out, None)
}

/// [`export_tar`], with every time clamped to `source_date_epoch` when given (the assembly directory itself is
/// new, so without it the tar's root entry would carry the export's time).
fn write_tar(
    store: &Store,
    layers: &[LayerRef],
    scratch: &Path,
    out: impl Write + Send,
    source_date_epoch: Option<i64>,
) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(scratch)
        .map_err(|e| EngineError::io("create a directory in", scratch, e))?;
    export_local(store, layers, dir.path())?;
    let options = match source_date_epoch {
        Some(epoch) => WriteOptions::new().with_source_date_epoch(epoch),
        None => WriteOptions::new(),
    };
    hoist_layer::write_layer(dir.path(), out, &options).map_err(|e| EngineError::Export {
        dest: "tar".to_owned(),
        source: Box::new(e),
    })?;
    Ok(())
}

/// What [`export`] does with a solved build besides storing it.
pub struct ExportRequest<'a> {
    /// The `-t` names: tagged in the store, the names of archives and pushes that give none.
    pub tags: &'a [Reference],
    /// Every `--output`, sent in order (`--push` is an [`OutputSpec::Image`] with `push`, `--load` an
    /// [`OutputSpec::Load`]).
    pub outputs: &'a [OutputSpec],
    /// `SOURCE_DATE_EPOCH`: see [`export_image_at`].
    pub source_date_epoch: Option<i64>,
    /// Makes the registry client, on the first push only.
    pub registry: &'a (dyn Fn() -> hoist_registry::Result<Client> + Sync),
    /// Where the filesystem is assembled for `type=tar`.
    pub scratch: &'a Path,
}

/// What [`export`] did.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The image in the store.
    pub image: BuiltImage,
    /// Every name the image was given (tags, output names), as written.
    pub names: Vec<String>,
    /// Each push, one per pushing output.
    pub pushed: Vec<PushedImage>,
}

impl Exported {
    /// buildx's `--metadata-file` object: `containerimage.config.digest`, `containerimage.digest`,
    /// `containerimage.descriptor` and, when the image has names, `image.name` (comma-separated). After a push the
    /// digest is the pushed manifest's (over compressed layers), as BuildKit reports what it exported.
    pub fn metadata(&self) -> Value {
        let (manifest, size) = match self.pushed.first() {
            Some(pushed) => (pushed.digest.to_string(), pushed.size),
            None => (
                self.image.manifest.digest().to_string(),
                self.image.manifest.size(),
            ),
        };
        let mut metadata = Map::new();
        metadata.insert(
            "containerimage.config.digest".into(),
            json!(self.image.id.to_string()),
        );
        metadata.insert("containerimage.digest".into(), json!(manifest));
        metadata.insert(
            "containerimage.descriptor".into(),
            json!({
                "mediaType": self.image.manifest.media_type().to_string(),
                "digest": manifest,
                "size": size,
            }),
        );
        if !self.names.is_empty() {
            metadata.insert("image.name".into(), json!(self.names.join(",")));
        }
        Value::Object(metadata)
    }
}

/// Stores the target's image ([`export_image_at`]), tags it, and sends it to every output, `--load` and push,
/// reported as BuildKit's `exporting to image` vertex (`exporting layers`, `writing image …`, `naming to …`,
/// `pushing layers`, `pushing manifest for …` statuses). A destination `-` is `stdout`. An untagged image sent
/// to an archive or `docker load` is named `hoist-build/untagged:<id>` meanwhile (docker-archive `RepoTags`).
pub fn export(
    store: &Store,
    plan: &BuildPlan,
    solution: &Solution,
    request: &ExportRequest<'_>,
    reporter: &Arc<dyn Reporter + Send>,
    stdout: &mut (dyn Write + Send),
) -> Result<Exported> {
    let vertex = Vertex::internal(EXPORT_SLOT, "exporting to image");
    let started = Instant::now();
    reporter.on_vertex_start(&vertex);
    let exported = export_in_vertex(store, plan, solution, request, reporter, &vertex, stdout);
    match &exported {
        Ok(_) => reporter.on_vertex_done(&vertex, started.elapsed()),
        Err(error) => reporter.on_vertex_error(&vertex, &error_chain(error)),
    }
    exported
}

fn export_in_vertex(
    store: &Store,
    plan: &BuildPlan,
    solution: &Solution,
    request: &ExportRequest<'_>,
    reporter: &Arc<dyn Reporter + Send>,
    vertex: &Vertex,
    stdout: &mut (dyn Write + Send),
) -> Result<Exported> {
    let status = |id: String, started: Option<Instant>| {
        reporter.on_vertex_status(
            vertex,
            &VertexStatus {
                id,
                current: 0,
                total: 0,
                elapsed: started.map_or(Duration::ZERO, |s| s.elapsed()),
                done: true,
            },
        );
    };
    let started = Instant::now();
    let image = export_image_at(
        store,
        plan,
        solution,
        ManifestFormat::Oci,
        request.source_date_epoch,
    )?;
    status("exporting layers".to_owned(), Some(started));
    status(format!("writing image {}", image.id), None);

    // Names: the tags, then each output's own, once each.
    let tag_names: Vec<String> = request.tags.iter().map(ToString::to_string).collect();
    let mut names = tag_names.clone();
    for output in request.outputs {
        if let OutputSpec::Image { names: own, .. }
        | OutputSpec::Docker { names: own, .. }
        | OutputSpec::Load { names: own }
        | OutputSpec::Oci { names: own, .. } = output
        {
            for name in own {
                let reference: Reference = name.parse().map_err(|e| {
                    EngineError::invalid(format!("invalid image name {name:?}: {e}"))
                })?;
                let name = reference.to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    for name in &names {
        let reference: Reference = name
            .parse()
            .map_err(|e| EngineError::invalid(format!("invalid image name {name:?}: {e}")))?;
        store
            .tag(&reference, &image.manifest)
            .map_err(|e| EngineError::store(format!("failed to name the image {name}"), e))?;
        status(format!("naming to {name}"), None);
    }

    // The archive writers read the store by reference; an untagged image gets a temporary one.
    let needs_name = request.outputs.iter().any(|o| {
        matches!(
            o,
            OutputSpec::Docker { .. } | OutputSpec::Oci { .. } | OutputSpec::Load { .. }
        )
    });
    let temporary = (names.is_empty() && needs_name)
        .then(|| format!("hoist-build/untagged:{}", &image.id.encoded()[..12]));
    if let Some(name) = &temporary {
        let reference: Reference = name
            .parse()
            .map_err(|e| EngineError::invalid(format!("invalid image name {name:?}: {e}")))?;
        store
            .tag(&reference, &image.manifest)
            .map_err(|e| EngineError::store("failed to name the image", e))?;
    }
    let sent = send_outputs(
        store,
        &image,
        request,
        &names,
        &tag_names,
        temporary.as_deref(),
        reporter,
        vertex,
        stdout,
    );
    if let Some(name) = &temporary {
        let _ = store.remove_image(name, false);
    }
    let pushed = sent?;
    Ok(Exported {
        image,
        names,
        pushed,
    })
}

/// Sends the image to every output in order, then pushes; returns the pushes.
#[allow(
    clippy::too_many_arguments,
    reason = "the export's pieces, threaded from one caller"
)]
fn send_outputs(
    store: &Store,
    image: &BuiltImage,
    request: &ExportRequest<'_>,
    names: &[String],
    tag_names: &[String],
    temporary: Option<&str>,
    reporter: &Arc<dyn Reporter + Send>,
    vertex: &Vertex,
    stdout: &mut (dyn Write + Send),
) -> Result<Vec<PushedImage>> {
    let done = |id: String, started: Instant| {
        reporter.on_vertex_status(
            vertex,
            &VertexStatus {
                id,
                current: 0,
                total: 0,
                elapsed: started.elapsed(),
                done: true,
            },
        );
    };
    // An archive's names: its own, else the tags, else the temporary name.
    let archive_names = |own: &[String]| -> Vec<String> {
        if !own.is_empty() {
            own.iter()
                .filter_map(|n| n.parse::<Reference>().ok())
                .map(|r| r.to_string())
                .collect()
        } else if !tag_names.is_empty() {
            tag_names.to_vec()
        } else if let Some(name) = temporary {
            vec![name.to_owned()]
        } else {
            names.to_vec()
        }
    };
    let mut pushes: Vec<(Vec<String>, LayerCompression)> = Vec::new();
    for output in request.outputs {
        let started = Instant::now();
        match output {
            OutputSpec::Image {
                names: own,
                push,
                compression,
            } => {
                if *push {
                    let targets = if own.is_empty() {
                        tag_names.to_vec()
                    } else {
                        own.clone()
                    };
                    if targets.is_empty() {
                        return Err(EngineError::invalid(
                            "tag is needed when pushing to registry (-t NAME or --output type=registry,name=NAME)",
                        ));
                    }
                    pushes.push((targets, *compression));
                }
            }
            OutputSpec::Local(dir) => {
                export_local(store, &image.layers, dir)?;
                done(format!("copying files to {}", dir.display()), started);
            }
            OutputSpec::Tar(dest) => {
                with_destination(dest, stdout, |out| {
                    write_tar(
                        store,
                        &image.layers,
                        request.scratch,
                        out,
                        request.source_date_epoch,
                    )
                })?;
                done("sending tarball".to_owned(), started);
            }
            OutputSpec::Docker { dest, names: own } => {
                let specs = archive_names(own);
                with_destination(dest, stdout, |out| {
                    hoist_archive::save_archive(
                        store,
                        &specs,
                        hoist_archive::SaveFormat::Docker,
                        out,
                    )
                    .map(|_| ())
                    .map_err(|e| EngineError::Export {
                        dest: describe(dest),
                        source: Box::new(e),
                    })
                })?;
                done("sending tarball".to_owned(), started);
            }
            OutputSpec::Oci {
                dest,
                names: own,
                compression,
            } => {
                let specs = archive_names(own);
                with_destination(dest, stdout, |out| {
                    hoist_archive::save_oci_archive(store, &specs, compression, out)
                        .map(|_| ())
                        .map_err(|e| EngineError::Export {
                            dest: describe(dest),
                            source: Box::new(e),
                        })
                })?;
                done("sending tarball".to_owned(), started);
            }
            OutputSpec::Load { names: own } => {
                docker_load(store, &archive_names(own))?;
                done("loading image to docker".to_owned(), started);
            }
        }
    }
    let mut pushed = Vec::new();
    if !pushes.is_empty() {
        let client = (request.registry)().map_err(|e| EngineError::Export {
            dest: "a registry".to_owned(),
            source: Box::new(e),
        })?;
        for (targets, compression) in pushes {
            pushed.push(push_image(
                store,
                &client,
                &targets,
                &compression,
                reporter,
                vertex,
            )?);
        }
    }
    Ok(pushed)
}

fn describe(dest: &Destination) -> String {
    match dest {
        Destination::Stdout => "standard output".to_owned(),
        Destination::File(path) => path.display().to_string(),
    }
}

/// Runs `write` on the file `dest` names (written beside it, then renamed; a device or fifo in place) or on
/// `stdout`.
fn with_destination(
    dest: &Destination,
    stdout: &mut (dyn Write + Send),
    write: impl FnOnce(&mut (dyn Write + Send)) -> Result<()>,
) -> Result<()> {
    let path = match dest {
        Destination::Stdout => return write(stdout),
        Destination::File(path) => path,
    };
    let output =
        hoist_archive::OutputFile::for_path(path).map_err(|e| EngineError::io("write", path, e))?;
    let file = output
        .create()
        .map_err(|e| EngineError::io("create", output.write_path(), e))?;
    let mut out = io::BufWriter::new(file);
    let written = write(&mut out).and_then(|()| {
        let file = out
            .into_inner()
            .map_err(|e| EngineError::io("write", path, e.into_error()))?;
        output
            .commit(file)
            .map_err(|e| EngineError::io("write", path, e))
    });
    if written.is_err() {
        output.abandon();
    }
    written
}

/// `--load` (`type=docker` without `dest`): a docker-archive of `specs` piped into `docker load`.
fn docker_load(store: &Store, specs: &[String]) -> Result<()> {
    let fail = |message: String| EngineError::Export {
        dest: "docker".to_owned(),
        source: message.into(),
    };
    let mut child = std::process::Command::new("docker")
        .arg("load")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot run docker: {e}")))?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let saved = hoist_archive::save_archive(store, specs, hoist_archive::SaveFormat::Docker, stdin);
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    saved.map_err(|e| fail(error_chain(&e)))?;
    if !status.success() {
        return Err(fail(format!("docker load exited with {status}")));
    }
    Ok(())
}

/// Pushes the stored image to `targets` (one upload per repository) through hoist-registry, its layers compressed
/// as `compression` says, reported as statuses of `vertex`: `compressing layers`, `pushing layers`, each uploaded
/// blob's bytes, `pushing manifest for NAME@DIGEST`.
fn push_image(
    store: &Store,
    client: &Client,
    targets: &[String],
    compression: &LayerCompression,
    reporter: &Arc<dyn Reporter + Send>,
    vertex: &Vertex,
) -> Result<PushedImage> {
    let fail = |dest: String, source: Box<dyn std::error::Error + Send + Sync>| {
        EngineError::Export { dest, source }
    };
    let destinations = targets
        .iter()
        .map(|t| t.parse::<ImageReference>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail(targets.join(","), Box::new(e)))?;
    // The store knows the image by the first target's name (tagged before outputs run).
    let source: Reference = targets[0]
        .parse()
        .map_err(|e| EngineError::invalid(format!("invalid image name {:?}: {e}", targets[0])))?;
    let store = Store::open(store.root())
        .map_err(|e| EngineError::store("failed to open the store for a push", e))?;
    // Built layers are stored uncompressed: the push compresses them (`compressing sha256:…` statuses, one layer
    // at a time) and uploads each as soon as it is compressed.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| fail(targets.join(","), Box::new(e)))?;
    let started = Instant::now();
    let layers = |done: bool| VertexStatus {
        id: "pushing layers".to_owned(),
        current: 0,
        total: 0,
        elapsed: started.elapsed(),
        done,
    };
    reporter.on_vertex_status(vertex, &layers(false));
    let forward = Arc::new(PushStatus {
        reporter: Arc::clone(reporter),
        vertex: vertex.clone(),
        blobs: BlobStatuses::default(),
        layers_done: Mutex::new(None),
        started,
    });
    let pushed = runtime.block_on(client.push(
        Arc::new(store),
        &source.to_string(),
        &destinations,
        &PushOptions {
            compression: *compression,
            ..PushOptions::default()
        },
        Arc::clone(&forward) as Arc<dyn hoist_registry::Reporter>,
    ));
    let pushed =
        pushed.map_err(|e| fail(format!("registry {}", targets.join(",")), Box::new(e)))?;
    forward.finish_layers();
    Ok(pushed)
}

/// Forwards a push's events into the build's progress: per-blob bytes, and each manifest.
struct PushStatus {
    reporter: Arc<dyn Reporter + Send>,
    vertex: Vertex,
    blobs: BlobStatuses,
    /// When the blobs were all done (the first manifest), reported once.
    layers_done: Mutex<Option<Duration>>,
    started: Instant,
}

impl PushStatus {
    /// Reports `pushing layers … done` once, when the first manifest goes up (or the push ends).
    fn finish_layers(&self) {
        let mut done = self.layers_done.lock().unwrap_or_else(|p| p.into_inner());
        if done.is_none() {
            let elapsed = self.started.elapsed();
            *done = Some(elapsed);
            self.reporter.on_vertex_status(
                &self.vertex,
                &VertexStatus {
                    id: "pushing layers".to_owned(),
                    current: 0,
                    total: 0,
                    elapsed,
                    done: true,
                },
            );
        }
    }
}

impl hoist_registry::Reporter for PushStatus {
    fn report(&self, event: Event) {
        let (id, current, total, done) = match event {
            Event::CompressStarted { digest, size } => {
                (format!("compressing {digest}"), 0, size, false)
            }
            Event::CompressProgress { digest, read, size } => {
                (format!("compressing {digest}"), read, size, false)
            }
            Event::CompressDone { digest, size, .. } => {
                (format!("compressing {digest}"), size, size, true)
            }
            Event::BlobStarted { digest, size } => (digest.to_string(), 0, size, false),
            Event::BlobProgress {
                digest,
                transferred,
                size,
            } => (digest.to_string(), transferred, size, false),
            Event::BlobDone { digest, size, .. } => (digest.to_string(), size, size, true),
            Event::ManifestPushed {
                reference, digest, ..
            } => {
                self.finish_layers();
                self.reporter.on_vertex_status(
                    &self.vertex,
                    &VertexStatus {
                        id: format!("pushing manifest for {reference}@{digest}"),
                        current: 0,
                        total: 0,
                        elapsed: Duration::ZERO,
                        done: true,
                    },
                );
                return;
            }
            _ => return,
        };
        self.blobs
            .report(&*self.reporter, &self.vertex, id, current, total, done);
    }
}

/// `layer` with every entry's modification time after `epoch` set to `epoch`: the layer itself when it has none
/// (checked by reading it), else a rewritten blob in the store, an uncompressed tar like every built layer. Only the tar headers' `mtime` fields (and PAX
/// `mtime` records) change; entries, order and content stay, so the content size is the original's.
fn clamp_layer_times(store: &Store, layer: &LayerRef, epoch: u64) -> Result<LayerRef> {
    let read_error = |e: io::Error| EngineError::Layer {
        what: format!("failed to read layer {}", layer.digest),
        source: Box::new(e),
    };
    let open = || -> Result<Decompressor<fs::File>> {
        let blob = store
            .open_blob(&layer.digest)
            .map_err(|e| EngineError::store(format!("failed to read layer {}", layer.digest), e))?;
        Decompressor::new(blob).map_err(read_error)
    };
    if !clamp_tar_times(open()?, None, epoch).map_err(read_error)? {
        return Ok(layer.clone());
    }
    let content_size = store
        .ensure_layer_info(&layer.digest)
        .map_err(|e| EngineError::store(format!("failed to read layer {}", layer.digest), e))?
        .content_size;
    let store_error = |e| EngineError::store("failed to store a rewritten layer", e);
    // A plain tar: the blob's digest, computed as it is written, is the diffID. The clamped tar is a new layer, so
    // no kept directory holds it.
    let mut blob = store.blob_writer().map_err(store_error)?;
    clamp_tar_times(open()?, Some(&mut blob), epoch).map_err(read_error)?;
    crate::ingest::commit_plain_layer(store, blob, content_size)
}

/// Tar blocks.
const BLOCK: usize = 512;

/// Copies the tar stream `input` to `output` (when given) with header `mtime`s after `epoch` set to `epoch`;
/// returns whether any was. Works on the raw 512-byte blocks so everything else stays byte for byte.
fn clamp_tar_times(
    mut input: impl Read,
    mut output: Option<&mut dyn Write>,
    epoch: u64,
) -> io::Result<bool> {
    let mut changed = false;
    let mut header = [0u8; BLOCK];
    loop {
        if !read_block(&mut input, &mut header)? {
            break;
        }
        if header.iter().all(|b| *b == 0) {
            // End-of-archive blocks (and any padding after them) pass through.
            if let Some(out) = output.as_mut() {
                out.write_all(&header)?;
                io::copy(&mut input, out)?;
            }
            break;
        }
        let size = tar_number(&header[124..136])
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad tar entry size"))?;
        let padded = usize::try_from(size.div_ceil(BLOCK as u64) * BLOCK as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "tar entry too large"))?;
        if header[156] == b'x' {
            // A PAX header: its records may carry a precise `mtime`.
            let mut data = vec![0u8; padded];
            input.read_exact(&mut data)?;
            let records = &data[..size as usize];
            if let Some(rewritten) = clamp_pax_mtime(records, epoch) {
                changed = true;
                write_octal(&mut header[124..136], rewritten.len() as u64);
                clamp_header_mtime(&mut header, epoch);
                seal_header(&mut header);
                if let Some(out) = output.as_mut() {
                    out.write_all(&header)?;
                    out.write_all(&rewritten)?;
                    let pad = rewritten.len().div_ceil(BLOCK) * BLOCK - rewritten.len();
                    out.write_all(&vec![0u8; pad])?;
                }
                continue;
            }
            changed |= clamp_header_mtime(&mut header, epoch);
            if let Some(out) = output.as_mut() {
                out.write_all(&header)?;
                out.write_all(&data)?;
            }
            continue;
        }
        changed |= clamp_header_mtime(&mut header, epoch);
        match output.as_mut() {
            Some(out) => {
                out.write_all(&header)?;
                let copied = io::copy(&mut (&mut input).take(padded as u64), out)?;
                if copied != padded as u64 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            None => {
                let skipped = io::copy(&mut (&mut input).take(padded as u64), &mut io::sink())?;
                if skipped != padded as u64 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
    Ok(changed)
}

/// Reads one block; `false` at a clean end of the stream.
fn read_block(input: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match input.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Sets the header's `mtime` to `epoch` when later, resealing the checksum; whether it did.
fn clamp_header_mtime(header: &mut [u8; BLOCK], epoch: u64) -> bool {
    let later = tar_number(&header[136..148]).is_some_and(|mtime| mtime > epoch);
    if later {
        write_octal(&mut header[136..148], epoch);
        seal_header(header);
    }
    later
}

/// A numeric header field: octal digits (space or NUL padded), or GNU base-256 when the top bit is set (negative
/// values read as 0).
fn tar_number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] == 0xff {
            return Some(0);
        }
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for byte in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*byte))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// Writes `value` as zero-padded octal digits and a NUL, filling the field.
fn write_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
    field[width] = 0;
}

/// Recomputes the header checksum (the byte sum with the checksum field as spaces), as tar writes it.
fn seal_header(header: &mut [u8; BLOCK]) {
    header[148..156].fill(b' ');
    let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
}

/// PAX records (`LEN key=value\n`…) with an `mtime` after `epoch` replaced by `epoch`; `None` when none is.
fn clamp_pax_mtime(records: &[u8], epoch: u64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(records.len());
    let mut changed = false;
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[..len];
        rest = &rest[len..];
        let body = &record[space + 1..record.len() - 1];
        if let Some(value) = body.strip_prefix(b"mtime=")
            && let Some(seconds) = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.split('.').next())
                .and_then(|v| v.parse::<i64>().ok())
            && (seconds > epoch as i64 || (seconds == epoch as i64 && value.contains(&b'.')))
        {
            changed = true;
            out.extend_from_slice(&pax_record("mtime", &epoch.to_string()));
            continue;
        }
        out.extend_from_slice(record);
    }
    changed.then_some(out)
}

/// One PAX record: its length counts itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len = len.to_string().len() + body.len();
    }
    format!("{len}{body}").into_bytes()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use hoist_layer::Compression;
    use hoist_oci::LayerCompression;

    use super::{Destination, OutputSpec, clamp_tar_times};

    #[test]
    fn output_specs_parse_like_docker() {
        let parse = |s: &str| OutputSpec::parse(s).unwrap();
        assert_eq!(parse("out"), OutputSpec::Local(PathBuf::from("out")));
        assert_eq!(parse("-"), OutputSpec::Tar(Destination::Stdout));
        assert_eq!(
            parse("type=local,dest=dir"),
            OutputSpec::Local(PathBuf::from("dir"))
        );
        assert_eq!(
            parse("type=docker,dest=x.tar"),
            OutputSpec::Docker {
                dest: Destination::File(PathBuf::from("x.tar")),
                names: vec![]
            }
        );
        assert_eq!(
            parse("type=oci,dest=-,name=a:1"),
            OutputSpec::Oci {
                dest: Destination::Stdout,
                names: vec!["a:1".to_owned()],
                compression: LayerCompression::default(),
            }
        );
        assert_eq!(
            parse("dest=t.tar,type=tar"),
            OutputSpec::Tar(Destination::File(PathBuf::from("t.tar")))
        );
        let image = |names: &[&str], push| OutputSpec::Image {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            push,
            compression: LayerCompression::default(),
        };
        assert_eq!(parse("type=image"), image(&[], false));
        assert_eq!(
            parse("type=image,name=r/a:1,push=true"),
            image(&["r/a:1"], true)
        );
        assert_eq!(parse("type=registry"), image(&[], true));
        assert_eq!(
            parse(r#"type=registry,"name=r/a:1,r/a:2""#),
            image(&["r/a:1", "r/a:2"], true)
        );
        assert_eq!(
            parse("type=image,name=r/a,push=false"),
            image(&["r/a"], false)
        );
        assert!(OutputSpec::parse("type=image,push=maybe").is_err());
        assert!(OutputSpec::parse(r#"type=image,"name=a"#).is_err());
        assert_eq!(
            parse("type=docker,name=a:1"),
            OutputSpec::Load {
                names: vec!["a:1".to_owned()]
            }
        );
        assert_eq!(parse("type=docker"), OutputSpec::Load { names: vec![] });
        assert!(OutputSpec::parse("type=oci").is_err());
        assert!(OutputSpec::parse("type=local").is_err());
        assert!(OutputSpec::parse("type=registry,dest=x").is_err());
        assert!(OutputSpec::parse("type=weird,dest=x").is_err());
    }

    #[test]
    fn compression_options_parse_like_buildkit() {
        let compression = |spec: &str| match OutputSpec::parse(spec).unwrap() {
            OutputSpec::Image { compression, .. } | OutputSpec::Oci { compression, .. } => {
                compression
            }
            other => panic!("{spec} parsed as {other:?}"),
        };
        assert_eq!(
            compression("type=registry,name=r/a"),
            LayerCompression::default()
        );
        assert_eq!(
            compression(
                "type=registry,compression=zstd,compression-level=19,force-compression=true"
            ),
            LayerCompression {
                compression: Compression::Zstd,
                level: Some(19),
                force: true,
            }
        );
        assert_eq!(
            compression("type=oci,dest=o.tar,compression=uncompressed").compression,
            Compression::None
        );
        assert_eq!(
            compression("type=image,compression=gzip,compression-level=1,force-compression=false"),
            LayerCompression {
                compression: Compression::Gzip,
                level: Some(1),
                force: false,
            }
        );
        for bad in [
            "type=registry,compression=estargz",
            "type=registry,compression=gzip,compression-level=10",
            "type=registry,compression=zstd,compression-level=0",
            "type=registry,compression-level=fast",
            "type=registry,force-compression=maybe",
        ] {
            assert!(OutputSpec::parse(bad).is_err(), "{bad}");
        }
    }

    /// A tar (written by the `tar` crate, with a long name that needs a PAX header) whose entries have the given
    /// mtimes.
    fn tar_with_times(times: &[u64]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (i, mtime) in times.iter().enumerate() {
            let mut header = tar::Header::new_ustar();
            header.set_size(3);
            header.set_mode(0o644);
            header.set_mtime(*mtime);
            header.set_entry_type(tar::EntryType::Regular);
            let name = format!("{}{i}", "d/".repeat(60));
            builder
                .append_data(&mut header, &name, &b"abc"[..])
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn mtimes(tar: &[u8]) -> Vec<(String, u64)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut content = String::new();
                std::io::Read::read_to_string(&mut e, &mut content).unwrap();
                assert_eq!(content, "abc");
                (name, e.header().mtime().unwrap())
            })
            .collect()
    }

    #[test]
    fn clamping_rewrites_only_later_mtimes_and_keeps_everything_else() {
        let original = tar_with_times(&[100, 5_000, 1_000]);
        let mut out = Vec::new();
        assert!(clamp_tar_times(&original[..], Some(&mut out), 1_000).unwrap());
        assert_eq!(out.len(), original.len());
        let before = mtimes(&original);
        let after = mtimes(&out);
        assert_eq!(
            after.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
            vec![100, 1_000, 1_000]
        );
        assert_eq!(
            before.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            after.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "long names (PAX/GNU records) survive"
        );
        // GNU tar accepts the rewritten checksums.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar");
        std::fs::write(&path, &out).unwrap();
        let listed = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        // Nothing later than the epoch: reported unchanged.
        assert!(!clamp_tar_times(&original[..], None, 5_000).unwrap());
        // A truncated stream is an error, not a silent success.
        assert!(clamp_tar_times(&original[..700], None, 1).is_err());
    }

    #[test]
    fn pax_mtime_records_are_clamped() {
        let records = b"30 mtime=1700000000.123456789\n".to_vec();
        let clamped = super::clamp_pax_mtime(&records, 1_000).unwrap();
        assert_eq!(clamped, b"14 mtime=1000\n".to_vec());
        assert!(super::clamp_pax_mtime(b"12 mtime=10\n", 1_000).is_none());
        assert_eq!(
            super::pax_record("mtime", "1000"),
            b"14 mtime=1000\n".to_vec()
        );
    }
}
