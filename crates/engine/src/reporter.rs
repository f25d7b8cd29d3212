//! Progress: the solver tells a [`Reporter`] when a vertex starts, is cached, finishes or fails, and forwards the
//! output of RUN steps. The CLI renders these (`--progress=plain`); the engine never prints.

use std::time::Duration;

/// One reported step of the build, BuildKit's vertex: an op with a display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// The op's index in the plan.
    pub op: usize,
    /// The name BuildKit shows (`[builder 2/6] RUN go build`, `[internal] load build context`).
    pub name: String,
}

impl Vertex {
    /// A vertex that is no op of the plan: loading the Dockerfile (`slot` 0), the ignore file (1), exporting (2).
    /// Their numbers count down from `usize::MAX / 2`, clear of the plan's ops (up from 0) and of pulls (down from
    /// `usize::MAX`).
    pub fn internal(slot: usize, name: impl Into<String>) -> Vertex {
        Vertex {
            op: usize::MAX / 2 - slot,
            name: name.into(),
        }
    }
}

/// [`Vertex::internal`] slot of `[internal] load build definition from Dockerfile`.
pub const LOAD_DEFINITION_SLOT: usize = 0;
/// [`Vertex::internal`] slot of `[internal] load .dockerignore`.
pub const LOAD_IGNORE_SLOT: usize = 1;
/// [`Vertex::internal`] slot of `exporting to image`.
pub const EXPORT_SLOT: usize = 2;

/// Receives progress events. Called from worker threads, so implementations synchronise themselves.
pub trait Reporter: Sync {
    /// Work on the vertex begins.
    fn on_vertex_start(&self, vertex: &Vertex);
    /// The vertex's result came from the cache; no work was done.
    fn on_vertex_cached(&self, vertex: &Vertex);
    /// The vertex finished after `elapsed`.
    fn on_vertex_done(&self, vertex: &Vertex, elapsed: Duration);
    /// The vertex failed with `message`.
    fn on_vertex_error(&self, vertex: &Vertex, message: &str);
    /// Output of a RUN step (stdout and stderr, in chunks as they come).
    fn on_log(&self, vertex: &Vertex, data: &[u8]);
    /// Progress of one part of the vertex's work, such as a layer of a base image being pulled (BuildKit's vertex
    /// status). Reporters that do not show it keep this default.
    fn on_vertex_status(&self, _vertex: &Vertex, _status: &VertexStatus) {}
}

/// How far one part of a vertex's work has come: BuildKit's `#3 sha256:abc… 1.20MB / 3.40MB 0.5s` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexStatus {
    /// What is being worked on (a layer's digest).
    pub id: String,
    /// Bytes done so far.
    pub current: u64,
    /// Bytes in all (0 when unknown).
    pub total: u64,
    /// Time since this part started.
    pub elapsed: Duration,
    /// Whether it has finished.
    pub done: bool,
}

/// A reporter that drops every event (`--progress=quiet`, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn on_vertex_start(&self, _: &Vertex) {}
    fn on_vertex_cached(&self, _: &Vertex) {}
    fn on_vertex_done(&self, _: &Vertex, _: Duration) {}
    fn on_vertex_error(&self, _: &Vertex, _: &str) {}
    fn on_log(&self, _: &Vertex, _: &[u8]) {}
}
