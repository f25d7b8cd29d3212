//! Exporters: the target's image (config, history and manifest written to the store), and its filesystem or image
//! written elsewhere (`--output type=local|tar|docker|oci`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use hoist_layer::{ApplyOptions, Decompressor, WriteOptions, apply_layer};
use hoist_oci::oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use hoist_oci::{Digest, DigestExt, ManifestFormat, Store};
use hoist_plan::{BuildPlan, ImageConfig, Op, StageBase};
use serde_json::{Map, Value, json};

use crate::cache::LayerRef;
use crate::error::{EngineError, Result};
use crate::solver::Solution;

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
    let stage = plan.target_stage();
    let root = solution
        .get(stage.root)
        .ok_or_else(|| EngineError::invalid("the target stage was not solved"))?;
    let layers = root.layers().to_vec();
    let (history, created) = stage_history(plan, solution, plan.target);
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
            let media_type = if format == ManifestFormat::Oci {
                l.media_type.clone()
            } else {
                format
                    .layer_media_type(hoist_layer::Compression::Gzip)
                    .to_owned()
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
            let mut base = stage.root;
            while plan.op(base).stage == Some(stage.index) && !plan.op(base).inputs.is_empty() {
                base = plan.op(base).inputs[0];
            }
            let config = match &plan.op(base).op {
                Op::Source(_) => solution.get(base).and_then(|r| r.base_config.clone()),
                _ => None,
            };
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
        let empty = record.is_none_or(|r| r.layer.is_none());
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
    /// `type=docker,dest=FILE`: a docker-archive `docker load` reads.
    Docker(Destination),
    /// `type=oci,dest=FILE`: an OCI image layout tar.
    Oci(Destination),
    /// `type=image`: only the store (the default).
    Image,
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
    /// Parses docker's `--output` syntax: `type=T,dest=D`, a bare path (local) or `-` (tar to stdout).
    pub fn parse(spec: &str) -> Result<Self> {
        if !spec.contains('=') {
            return Ok(match spec {
                "-" => OutputSpec::Tar(Destination::Stdout),
                dir => OutputSpec::Local(PathBuf::from(dir)),
            });
        }
        let mut kind = None;
        let mut dest = None;
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            match k.trim() {
                "type" => kind = Some(v.to_owned()),
                "dest" => dest = Some(v.to_owned()),
                _ => {}
            }
        }
        let kind = kind.unwrap_or_else(|| "local".to_owned());
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
            "docker" => OutputSpec::Docker(file(dest)?),
            "oci" => OutputSpec::Oci(file(dest)?),
            "image" | "registry" if dest.is_none() => OutputSpec::Image,
            other => {
                return Err(EngineError::Unsupported {
                    what: format!("--output type={other}"),
                });
            }
        })
    }
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
    let dir = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(scratch)
        .map_err(|e| EngineError::io("create a directory in", scratch, e))?;
    export_local(store, layers, dir.path())?;
    hoist_layer::write_layer(dir.path(), out, &WriteOptions::new()).map_err(|e| {
        EngineError::Export {
            dest: "tar".to_owned(),
            source: Box::new(e),
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Destination, OutputSpec};

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
            OutputSpec::Docker(Destination::File(PathBuf::from("x.tar")))
        );
        assert_eq!(
            parse("type=oci,dest=-"),
            OutputSpec::Oci(Destination::Stdout)
        );
        assert_eq!(
            parse("dest=t.tar,type=tar"),
            OutputSpec::Tar(Destination::File(PathBuf::from("t.tar")))
        );
        assert_eq!(parse("type=image"), OutputSpec::Image);
        assert!(OutputSpec::parse("type=docker").is_err());
        assert!(OutputSpec::parse("type=local").is_err());
        assert!(OutputSpec::parse("type=registry,dest=x").is_err());
        assert!(OutputSpec::parse("type=weird,dest=x").is_err());
    }
}
