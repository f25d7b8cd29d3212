//! `--progress=rawjson`: every event as one line of JSON on stderr, in BuildKit's `SolveStatus` shape
//! (`client/graph.go`): `{"vertexes":[{"digest","name","started","completed","cached","error"}]}`,
//! `{"statuses":[{"id","vertex","total","current","timestamp","started","completed"}]}`,
//! `{"logs":[{"vertex","stream","data","timestamp"}]}` (data base64, as Go encodes `[]byte`),
//! `{"warnings":[{"vertex","level","short","url"}]}`. Times are RFC 3339 with nanoseconds; a vertex's digest is
//! made from its op number (hoist has no LLB digests), stable within a build, and a vertex lists the digests of
//! its inputs (the plan's edges) as `inputs`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hoist_engine::{Reporter, Vertex, VertexStatus};
use serde_json::{Map, Value, json};

use super::{Display, Logs, Warning, write_stderr};

pub(crate) struct RawJson {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When each vertex started.
    started: HashMap<usize, SystemTime>,
    logs: Logs,
    /// Each op's inputs.
    inputs: HashMap<usize, Vec<usize>>,
    /// Vertices reported so far: only those are listed as inputs (ops without a vertex of their own are not).
    seen: HashSet<usize>,
}

impl RawJson {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prints one `SolveStatus` with `key` holding `item`.
    fn print(key: &str, item: Value) {
        let mut object = Map::new();
        object.insert(key.to_owned(), Value::Array(vec![item]));
        write_stderr(&format!("{}\n", Value::Object(object)));
    }

    /// The vertex object: digest, inputs, name, and the fields given.
    fn vertex(&self, vertex: &Vertex, fields: &[(&str, Value)]) -> Value {
        let mut object = Map::new();
        object.insert("digest".into(), json!(digest(vertex)));
        let inputs: Vec<String> = {
            let mut state = self.state();
            state.seen.insert(vertex.op);
            state
                .inputs
                .get(&vertex.op)
                .map(|inputs| {
                    inputs
                        .iter()
                        .filter(|op| state.seen.contains(op))
                        .map(|op| op_digest(*op))
                        .collect()
                })
                .unwrap_or_default()
        };
        if !inputs.is_empty() {
            object.insert("inputs".into(), json!(inputs));
        }
        object.insert("name".into(), json!(vertex.name));
        for (key, value) in fields {
            object.insert((*key).to_owned(), value.clone());
        }
        Value::Object(object)
    }
}

/// A vertex's digest.
fn digest(vertex: &Vertex) -> String {
    op_digest(vertex.op)
}

/// The digest of the vertex of op `op`: SHA-256 of its number, unique within a build (internal vertices and
/// pulls are numbered clear of the plan's ops).
fn op_digest(op: usize) -> String {
    let material = format!("hoist-vertex\0{op}");
    format!("{}", hoist_layer::Digest::sha256(material.as_bytes()))
}

fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

impl Reporter for RawJson {
    fn on_vertex_start(&self, vertex: &Vertex) {
        let now = SystemTime::now();
        self.state().started.insert(vertex.op, now);
        Self::print(
            "vertexes",
            self.vertex(vertex, &[("started", json!(timestamp(now)))]),
        );
    }

    fn on_vertex_cached(&self, vertex: &Vertex) {
        let now = timestamp(SystemTime::now());
        Self::print(
            "vertexes",
            self.vertex(
                vertex,
                &[
                    ("started", json!(now)),
                    ("completed", json!(now)),
                    ("cached", json!(true)),
                ],
            ),
        );
    }

    fn on_vertex_done(&self, vertex: &Vertex, elapsed: Duration) {
        let now = SystemTime::now();
        let started = self.state().started.get(&vertex.op).copied();
        let started = started.unwrap_or_else(|| now.checked_sub(elapsed).unwrap_or(now));
        self.flush(vertex);
        Self::print(
            "vertexes",
            self.vertex(
                vertex,
                &[
                    ("started", json!(timestamp(started))),
                    ("completed", json!(timestamp(now))),
                ],
            ),
        );
    }

    fn on_vertex_error(&self, vertex: &Vertex, message: &str) {
        let now = SystemTime::now();
        let started = self.state().started.get(&vertex.op).copied().unwrap_or(now);
        self.flush(vertex);
        Self::print(
            "vertexes",
            self.vertex(
                vertex,
                &[
                    ("started", json!(timestamp(started))),
                    ("completed", json!(timestamp(now))),
                    ("error", json!(message)),
                ],
            ),
        );
    }

    fn on_log(&self, vertex: &Vertex, data: &[u8]) {
        let now = SystemTime::now();
        {
            let mut state = self.state();
            let since = state
                .started
                .get(&vertex.op)
                .and_then(|s| now.duration_since(*s).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            // Kept for the failure summary; the JSON carries the bytes as they came.
            state.logs.push(vertex.op, data, since);
        }
        Self::print(
            "logs",
            json!({
                "vertex": digest(vertex),
                "stream": 1,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "timestamp": timestamp(now),
            }),
        );
    }

    fn on_vertex_status(&self, vertex: &Vertex, status: &VertexStatus) {
        let now = SystemTime::now();
        let started = now.checked_sub(status.elapsed).unwrap_or(now);
        let mut object = Map::new();
        object.insert("id".into(), json!(status.id));
        object.insert("vertex".into(), json!(digest(vertex)));
        if status.total != 0 {
            object.insert("total".into(), json!(status.total));
        }
        object.insert("current".into(), json!(status.current));
        object.insert("timestamp".into(), json!(timestamp(now)));
        object.insert("started".into(), json!(timestamp(started)));
        if status.done {
            object.insert("completed".into(), json!(timestamp(now)));
        }
        Self::print("statuses", Value::Object(object));
    }
}

impl RawJson {
    /// Keeps the unterminated rest of a vertex's output in its tail.
    fn flush(&self, vertex: &Vertex) {
        let mut state = self.state();
        let since = state
            .started
            .get(&vertex.op)
            .and_then(|s| s.elapsed().ok())
            .map_or(0.0, |d| d.as_secs_f64());
        state.logs.flush(vertex.op, since);
    }
}

impl Display for RawJson {
    fn tail(&self, op: usize) -> Vec<String> {
        self.state().logs.tail(op)
    }

    fn graph(&self, inputs: HashMap<usize, Vec<usize>>) {
        self.state().inputs = inputs;
    }

    /// A message outside any vertex (a planner warning) is a warning without a vertex, so every line stays JSON.
    fn message(&self, text: &str) {
        let warning = json!({
            "level": 1,
            "short": base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
        });
        let mut object = Map::new();
        object.insert("warnings".into(), Value::Array(vec![warning]));
        write_stderr(&format!("{}\n", Value::Object(object)));
    }

    fn warnings(&self, warnings: &[Warning]) {
        if warnings.is_empty() {
            return;
        }
        let items: Vec<Value> = warnings
            .iter()
            .map(|w| {
                json!({
                    "vertex": digest(&w.vertex),
                    "level": 1,
                    "short": base64::engine::general_purpose::STANDARD.encode(w.short.as_bytes()),
                    "url": w.url,
                })
            })
            .collect();
        let mut object = Map::new();
        object.insert("warnings".into(), Value::Array(items));
        write_stderr(&format!("{}\n", Value::Object(object)));
    }
}
