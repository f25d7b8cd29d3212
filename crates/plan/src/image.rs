//! The image configuration a stage evolves, its history, and where base images come from.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::request::Platform;

/// The comment BuildKit's Dockerfile frontend puts on every history entry.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The `PATH` a stage gets when its base image sets none (BuildKit's
/// `system.DefaultPathEnv` for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The runtime configuration of an image (the OCI config's `config` object, plus the
/// image-level `author`), as the Dockerfile instructions change it.
///
/// Sets and maps are ordered so that equal configs compare and print equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `User`.
    pub user: String,
    /// `ExposedPorts`, as `port/proto` (`80/tcp`).
    pub exposed_ports: BTreeSet<String>,
    /// `Env`, `NAME=value` in order.
    pub env: Vec<String>,
    /// `Entrypoint`; `None` is unset.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`; `None` is unset.
    pub cmd: Option<Vec<String>>,
    /// `Volumes`.
    pub volumes: BTreeSet<String>,
    /// `WorkingDir`; empty is unset.
    pub working_dir: String,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `StopSignal`; empty is unset.
    pub stop_signal: String,
    /// `ArgsEscaped` (set by CMD, as BuildKit does).
    pub args_escaped: bool,
    /// `Healthcheck`.
    pub healthcheck: Option<HealthConfig>,
    /// `OnBuild` triggers, as text.
    pub on_build: Vec<String>,
    /// `Shell`; empty is the default `/bin/sh -c`.
    pub shell: Vec<String>,
    /// The image's `author` (MAINTAINER).
    pub author: String,
}

impl ImageConfig {
    /// The value of `name` in `env` (the last entry wins).
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env.iter().rev().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k == name).then_some(v)
        })
    }

    /// Sets `name=value` in `env`: replaces the first entry with that name in place, or
    /// appends (BuildKit's `addEnv`).
    pub fn set_env(&mut self, name: &str, value: &str) {
        let entry = format!("{name}={value}");
        match self
            .env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == name)
        {
            Some(slot) => *slot = entry,
            None => self.env.push(entry),
        }
    }
}

/// `Healthcheck` of the image config. Zero durations and retries mean "the default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    /// `--interval`.
    pub interval: Duration,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--start-period`.
    pub start_period: Duration,
    /// `--start-interval`.
    pub start_interval: Duration,
    /// `--retries`.
    pub retries: u32,
}

/// One entry of the image's `history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// `created_by`, BuildKit's text (`RUN /bin/sh -c make # buildkit`, `ENV A=b`).
    pub created_by: String,
    /// `comment` ([`HISTORY_COMMENT`] for entries the planner makes).
    pub comment: String,
    /// `empty_layer`: the instruction made no layer.
    pub empty_layer: bool,
}

impl HistoryEntry {
    /// An entry made by the Dockerfile frontend.
    pub fn new(created_by: String, empty_layer: bool) -> Self {
        Self {
            created_by,
            comment: HISTORY_COMMENT.to_owned(),
            empty_layer,
        }
    }
}

/// What a [`BaseImageResolver`] knows about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The reference to pull, ideally pinned (`docker.io/library/alpine:3.20@sha256:...`).
    pub reference: String,
    /// The image's platform (its config's `os`/`architecture`/`variant`).
    pub platform: Platform,
    /// Its config.
    pub config: ImageConfig,
    /// Its history; the stage's history continues it.
    pub history: Vec<HistoryEntry>,
    /// How many layers it has; 0 makes it an empty filesystem (like `scratch`).
    pub layers: usize,
}

/// Looks up base images: the engine implements it with the store and the registry.
///
/// `reference` is normalized (`docker.io/library/alpine:latest`). The error is a message;
/// the planner reports it with the stage's location.
pub trait BaseImageResolver {
    /// The image `reference` for `platform`.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<BaseImage, String>;
}
