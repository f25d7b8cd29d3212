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
