//! `hoist build` as a library call: [`hoist_engine::build`] with a [`BuildRequest`] runs the whole pipeline
//! (load and check the Dockerfile, plan, solve, export to the store and the outputs, `--iidfile`,
//! `--metadata-file`) without the CLI binary, against a private store holding a busybox image. Tests named
//! `sandbox_*` run RUN steps in the real sandbox and land in the nextest `sandbox` group; the others stop before
//! any RUN.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_engine::{
    BuildFailure, BuildOutcome, BuildReporter, BuildRequest, DockerfileInput, EngineError,
    LoadError, Reporter, Vertex, build,
};
use hoist_lint::Finding;
use hoist_oci::Store;
use hoist_testkit::BusyboxRootfs;

#[path = "support/sandboxed.rs"]
mod sandboxed;
use sandboxed::import_rootfs;

/// The base image every test builds on.
const BASE: &str = "base:1";

/// A store with [`BASE`] (busybox with `sh` and `echo`, `PATH` set) at `dir/store`.
fn store(dir: &Path) -> Store {
    let rootfs = BusyboxRootfs::new(dir.join("rootfs")).applets(&["sh", "echo"]);
    import_rootfs(dir, rootfs.write(), BASE, &["ENV PATH=/bin"])
}

/// A context directory `dir/ctx` holding `Dockerfile` and `files`.
fn context(dir: &Path, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = dir.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    for (name, text) in files {
        fs::write(ctx.join(name), text).unwrap();
    }
    ctx
}

/// A request for the context at `ctx`, with its scratch space under `dir`.
fn request(dir: &Path, ctx: &Path) -> BuildRequest {
    let mut request = BuildRequest::new(DockerfileInput::new(ctx));
    request.scratch = dir.join("scratch");
    request
}

/// Every event a build reports, as text, in order.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl Recorder {
    fn push(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Reporter for Recorder {
    fn on_vertex_start(&self, vertex: &Vertex) {
        self.push(format!("start {}", vertex.name));
    }
    fn on_vertex_cached(&self, vertex: &Vertex) {
        self.push(format!("cached {}", vertex.name));
    }
    fn on_vertex_done(&self, vertex: &Vertex, _: Duration) {
        self.push(format!("done {}", vertex.name));
    }
    fn on_vertex_error(&self, vertex: &Vertex, message: &str) {
        self.push(format!("error {}: {message}", vertex.name));
    }
    fn on_log(&self, vertex: &Vertex, data: &[u8]) {
        self.push(format!(
            "log {}: {}",
            vertex.name,
            String::from_utf8_lossy(data)
        ));
    }
}

impl BuildReporter for Recorder {
    fn on_plan_warning(&self, message: &str) {
        self.push(format!("warning {message}"));
    }
    fn on_check_findings(&self, vertex: &Vertex, findings: &[Finding]) {
        for finding in findings {
            self.push(format!("finding {} {}", vertex.name, finding.rule.name()));
        }
    }
}

/// Builds `request` into `store`, recording progress; no registry is reachable (base images are in the store).
fn run(store: &Store, request: &BuildRequest) -> (Result<BuildOutcome, BuildFailure>, Vec<String>) {
    let recorder = Arc::new(Recorder::default());
    let mut stdout = Vec::new();
    let result = build(
        store,
        request,
        &|| -> hoist_registry::Result<hoist_registry::Client> {
            panic!("the build asked for a registry client; every base image is in the store")
        },
        recorder.clone(),
        &mut stdout,
    );
    assert!(stdout.is_empty(), "nothing asked for output on stdout");
    (result, recorder.events())
}

#[test]
fn sandbox_target_builds_only_the_stages_it_needs_with_build_args_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // `unused` and `last` would fail the build if they ran; `app` is the target, built on `deps`.
    let dockerfile = "FROM base:1 AS unused\n\
RUN exit 1\n\
FROM base:1 AS deps\n\
ARG GREETING=default\n\
RUN echo \"$GREETING from deps\" > /greeting\n\
FROM base:1 AS app\n\
COPY --from=deps /greeting /copied\n\
COPY hello.txt /hello.txt\n\
FROM base:1 AS last\n\
RUN exit 2\n";
    let ctx = context(dir.path(), dockerfile, &[("hello.txt", "hello\n")]);
    let out = dir.path().join("out");
    let mut request = request(dir.path(), &ctx);
    request.input.target = Some("app".to_owned());
    request.input.build_args = vec!["GREETING=hi".to_owned()];
    request.tags = vec!["app:test".to_owned()];
    request.outputs = vec![format!("type=local,dest={}", out.display())];
    request.iidfile = Some(dir.path().join("iid"));
    request.metadata_file = Some(dir.path().join("metadata.json"));

    let (result, events) = run(&store, &request);
    let outcome = result.unwrap_or_else(|e| panic!("build failed: {e:?}\n{events:#?}"));

    // Only the target and what it copies from were planned and run.
    let stages: Vec<Option<&str>> = outcome
        .plan
        .stages
        .iter()
        .map(|s| s.name.as_deref())
        .collect();
    assert_eq!(stages, [Some("deps"), Some("app")]);
    assert!(
        !events
            .iter()
            .any(|e| e.contains("[unused") || e.contains("[last") || e.contains("exit")),
        "an unreachable stage was reported: {events:#?}"
    );
    assert!(
        events.contains(&"done [internal] load build definition from Dockerfile".to_owned()),
        "{events:#?}"
    );
    // The build argument reached the RUN step, and the output directory holds the target's files.
    assert_eq!(
        fs::read_to_string(out.join("copied")).unwrap(),
        "hi from deps\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert!(!out.join("greeting").exists(), "deps' file only via COPY");
    // Tagged in the store, the ID in --iidfile and --metadata-file.
    let id = outcome.exported.image.id.to_string();
    assert_eq!(store.read_image("app:test").unwrap().id.to_string(), id);
    assert_eq!(fs::read_to_string(dir.path().join("iid")).unwrap(), id);
    let metadata: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["containerimage.config.digest"], id.as_str());
    assert_eq!(metadata["image.name"], "app:test");

    // The same build again: every step from the cache, the same image.
    let (again, events) = run(&store, &request);
    let again = again.unwrap_or_else(|e| panic!("rebuild failed: {e:?}"));
    assert_eq!(again.exported.image.id.to_string(), id);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("cached [deps ") && e.contains("] RUN echo")),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| e.starts_with("log ")), "{events:#?}");
}

#[test]
fn sandbox_a_failed_step_names_its_vertex_and_instruction() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let ctx = context(
        dir.path(),
        "FROM base:1\nRUN echo first\nRUN echo about to fail && exit 3\n",
        &[],
    );
    let (result, events) = run(&store, &request(dir.path(), &ctx));
    let Err(BuildFailure::Solve { span, error }) = result else {
        panic!("expected a failed step, got {result:?}");
    };
    let EngineError::Step { vertex, source, .. } = *error else {
        panic!("expected a failed step, got {error:?}");
    };
    assert_eq!(vertex, "[3/3] RUN echo about to fail && exit 3");
    assert!(
        source.to_string().contains("exit code: 3"),
        "{source}: the cause names the exit code"
    );
    let span = span.expect("a failed step is located");
    assert_eq!((span.start_line, span.end_line), (3, 3));
    assert!(
        events
            .iter()
            .any(|e| e == "log [3/3] RUN echo about to fail && exit 3: about to fail\n"),
        "{events:#?}"
    );
}

#[test]
fn a_syntax_error_is_located_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "FROM base:1\n\nLABEL version=1 broken\n", &[]);
    let failure = request(dir.path(), &ctx).prepare().unwrap_err();
    let BuildFailure::Load(LoadError::Parse { dockerfile, error }) = &failure else {
        panic!("expected a parse error, got {failure:?}");
    };
    assert_eq!(error.span.start_line, 3);
    assert_eq!(dockerfile.text, "FROM base:1\n\nLABEL version=1 broken\n");
    assert_eq!(
        failure.to_string(),
        format!(
            "{}:3:17: Syntax error - can't find = in \"broken\". Must be of the form: name=value",
            ctx.join("Dockerfile").display()
        )
    );
}

#[test]
fn an_unknown_instruction_is_located_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "FROM base:1\n\n  FORM base:1\n", &[]);
    let failure = request(dir.path(), &ctx).prepare().unwrap_err();
    let BuildFailure::Load(LoadError::Instruction { error, .. }) = &failure else {
        panic!("expected an instruction error, got {failure:?}");
    };
    assert_eq!((error.span.start_line, error.span.start_column), (3, 3));
    assert_eq!(
        failure.to_string(),
        format!(
            "{}:3:3: unknown instruction: FORM (did you mean FROM?)",
            ctx.join("Dockerfile").display()
        )
    );
}

#[test]
fn invalid_options_fail_before_the_store_with_dockers_messages() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "FROM base:1 AS app\n", &[]);
    let message = |edit: &dyn Fn(&mut BuildRequest)| {
        let mut request = request(dir.path(), &ctx);
        edit(&mut request);
        request.prepare().unwrap_err().to_string()
    };
    assert_eq!(
        message(&|r| r.input.target = Some("nope".to_owned())),
        "target stage \"nope\" could not be found"
    );
    assert_eq!(
        message(&|r| r.build_contexts = vec!["no-equals".to_owned()]),
        "invalid build context \"no-equals\": expected NAME=VALUE"
    );
    assert!(
        message(&|r| r.platform = Some("linux/amd64/v9/x".to_owned()))
            .starts_with("invalid platform \"linux/amd64/v9/x\": "),
    );
    assert!(
        message(&|r| r.tags = vec!["UPPER:case".to_owned()])
            .starts_with("invalid tag \"UPPER:case\": ")
    );
    assert_eq!(
        message(&|r| r.secrets = vec!["id=token".to_owned()]),
        "secret token: environment variable token is not set"
    );
    assert_eq!(
        message(&|r| r.input.context = dir.path().join("missing")),
        format!(
            "unable to prepare context: path \"{}\" not found",
            dir.path().join("missing").display()
        )
    );
    // The environment is the request's: a secret and a `KEY`-only build argument read it.
    let mut request = request(dir.path(), &ctx);
    request.secrets = vec!["id=token".to_owned()];
    request.input.build_args = vec!["FROM_ENV".to_owned(), "UNSET".to_owned()];
    request.env = BTreeMap::from([
        ("token".to_owned(), "s3cret".to_owned()),
        ("FROM_ENV".to_owned(), "yes".to_owned()),
    ]);
    let prepared = request.prepare().unwrap();
    assert_eq!(
        prepared.dockerfile().build_args,
        BTreeMap::from([("FROM_ENV".to_owned(), "yes".to_owned())])
    );
}

#[test]
fn fatal_checks_stop_the_build_before_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let ctx = context(
        dir.path(),
        "# check=error=true\nFROM base:1 as app\nCOPY missing.txt /\n",
        &[],
    );
    let (result, events) = run(&store, &request(dir.path(), &ctx));
    let Err(failure @ BuildFailure::Checks { .. }) = result else {
        panic!("expected the checks to fail the build, got {result:?}");
    };
    assert_eq!(
        failure.to_string(),
        "lint violation found for rules: FromAsCasing"
    );
    assert!(events.is_empty(), "nothing ran: {events:#?}");
}

#[test]
fn a_copy_only_build_reports_its_checks_and_writes_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let ctx = context(
        dir.path(),
        "FROM base:1 as app\nCOPY a.txt /a.txt\n",
        &[("a.txt", "a\n")],
    );
    let mut request = request(dir.path(), &ctx);
    request.tags = vec!["copied:1".to_owned()];
    let (result, events) = run(&store, &request);
    let outcome = result.unwrap_or_else(|e| panic!("build failed: {e:?}"));
    let rules: Vec<&str> = outcome.findings.iter().map(|f| f.rule.name()).collect();
    assert_eq!(rules, ["FromAsCasing"]);
    assert!(
        events.contains(
            &"finding [internal] load build definition from Dockerfile FromAsCasing".to_owned()
        ),
        "{events:#?}"
    );
    let image = store.read_image("copied:1").unwrap();
    assert_eq!(image.id, outcome.exported.image.id);
    assert_eq!(image.layers.len(), 2, "the base layer and COPY's");
}
