//! `hoist_engine::export` on real plans and real stores: the `exporting to image` vertex, outputs, a push to a real
//! registry (Debian's `docker-registry` on 127.0.0.1, cross-checked with skopeo), and `SOURCE_DATE_EPOCH` making two
//! empty stores produce the same image. RUN steps go through a stand-in executor that writes one file with the
//! current time (the sandbox itself is tested through `hoist build`).

#[path = "../../registry/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_engine::{
    Diff, ExecOutcome, ExecRequest, Executor, ExportRequest, Exported, OutputSpec, Reporter,
    Result, Silent, SolveRequest, Solver, StoreResolver, Vertex, VertexStatus, export,
};
use hoist_oci::{LayerCompression, Reference, Store};
use hoist_plan::{PlanRequest, plan};

/// Writes `/<last argv word>` (holding that word) into the step's layer, timestamped now.
struct WriteFile;

impl Executor for WriteFile {
    fn execute(
        &self,
        request: &ExecRequest<'_>,
        _logs: &(dyn Fn(&[u8]) + Sync),
        diff: Diff<'_>,
    ) -> Result<ExecOutcome> {
        let Diff::Tar(diff) = diff else {
            unreachable!("this executor does not keep directories")
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let name = request.exec.args.last().expect("an argv").replace(' ', "_");
        std::fs::write(dir.path().join(&name), &name).expect("write the step's file");
        let summary = hoist_layer::write_layer(dir.path(), diff, &hoist_layer::WriteOptions::new())
            .expect("write the step's layer");
        Ok(ExecOutcome {
            entries: summary.entries,
        })
    }
}

/// Every event, as text.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Events {
    fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Reporter for Events {
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
    fn on_log(&self, _: &Vertex, _: &[u8]) {}
    fn on_vertex_status(&self, vertex: &Vertex, status: &VertexStatus) {
        if status.done {
            self.push(format!("status {}: {}", vertex.name, status.id));
        }
    }
}

const DOCKERFILE: &str = "FROM scratch\nCOPY app.txt /app/\nRUN generate\n";

/// Builds [`DOCKERFILE`] into the store at `root` and exports it with `outputs`.
fn build_and_export(
    dir: &Path,
    root: &str,
    tags: &[&str],
    outputs: &[OutputSpec],
    epoch: Option<i64>,
    registry: &(dyn Fn() -> hoist_registry::Result<hoist_registry::Client> + Sync),
) -> (
    std::result::Result<Exported, hoist_engine::EngineError>,
    Vec<String>,
) {
    let store = Store::open(dir.join(root)).unwrap();
    let context = dir.join("ctx");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("app.txt"), "application\n").unwrap();
    let file = hoist_dockerfile::parse(DOCKERFILE).unwrap();
    let resolver = StoreResolver {
        store: &store,
        puller: None,
    };
    let plan = plan(&PlanRequest::new(file), &resolver).unwrap();
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let solver = Solver {
        store: &store,
        executor: &WriteFile,
        reporter: &Silent,
        parallelism: 2,
        scratch: scratch.clone(),
    };
    let solution = solver
        .solve(&SolveRequest {
            plan: &plan,
            dockerfile: DOCKERFILE,
            context_dir: &context,
            ignore_patterns: &[],
            secrets: &Default::default(),
            named_contexts: &Default::default(),
            ssh: &Default::default(),
            allow: Default::default(),
        })
        .unwrap();
    let tags: Vec<Reference> = tags.iter().map(|t| t.parse().unwrap()).collect();
    let events = Arc::new(Events::default());
    let reporter: Arc<dyn Reporter + Send> = events.clone();
    let request = ExportRequest {
        tags: &tags,
        outputs,
        source_date_epoch: epoch,
        registry,
        scratch: &scratch,
    };
    let mut stdout = Vec::new();
    let exported = export(&store, &plan, &solution, &request, &reporter, &mut stdout);
    (exported, events.all())
}

fn no_registry() -> hoist_registry::Result<hoist_registry::Client> {
    panic!("no output of this test pushes")
}

#[test]
fn source_date_epoch_gives_two_empty_stores_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let epoch = Some(1_700_000_000);
    let (a, events) = build_and_export(dir.path(), "a", &["app:1"], &[], epoch, &no_registry);
    let a = a.unwrap();
    assert_eq!(
        events,
        [
            "start exporting to image",
            "status exporting to image: exporting layers",
            &format!("status exporting to image: writing image {}", a.image.id),
            "status exporting to image: naming to app:1",
            "done exporting to image",
        ]
    );
    // The RUN step runs again in the second store, a second later, and writes a newer file.
    std::thread::sleep(Duration::from_millis(1100));
    let out = dir.path().join("fs");
    let (b, _) = build_and_export(
        dir.path(),
        "b",
        &[],
        &[OutputSpec::Local(out.clone())],
        epoch,
        &no_registry,
    );
    let b = b.unwrap();
    assert_eq!(a.image.manifest.digest(), b.image.manifest.digest());
    assert_eq!(a.image.id, b.image.id);
    // What a push sends from each store (the layers' gzip variants) is the same manifest too.
    let pushed = |root: &str| {
        Store::open(dir.path().join(root))
            .unwrap()
            .compressed_image(&a.image.manifest, &LayerCompression::default())
            .unwrap()
    };
    let (pushed_a, pushed_b) = (pushed("a"), pushed("b"));
    assert_ne!(pushed_a.digest(), a.image.manifest.digest());
    assert_eq!(pushed_a, pushed_b);
    let mtime = |path: &Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert_eq!(mtime(&out.join("generate")), 1_700_000_000);
    assert_eq!(
        std::fs::read_to_string(out.join("app/app.txt")).unwrap(),
        "application\n"
    );
    let config: serde_json::Value = serde_json::from_slice(&b.image.config).unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");

    // Without the epoch the times are real, and the images differ.
    let (c, _) = build_and_export(dir.path(), "c", &[], &[], None, &no_registry);
    std::thread::sleep(Duration::from_millis(1100));
    let (d, _) = build_and_export(dir.path(), "d", &[], &[], None, &no_registry);
    assert_ne!(
        c.unwrap().image.manifest.digest(),
        d.unwrap().image.manifest.digest()
    );
}

#[test]
fn export_pushes_each_name_and_fails_inside_its_vertex() {
    let Some(registry) = support::TestRegistry::start() else {
        return;
    };
    if !support::require_tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let client = || {
        let config = hoist_registry::RegistryConfig::load(std::slice::from_ref(&conf))?;
        Ok(hoist_registry::Client::new(
            config,
            hoist_registry::DockerConfig::at(dir.path().join("docker-config.json")),
        ))
    };
    let v1 = format!("{}/engine/app:v1", registry.addr);
    let other = format!("{}/engine/other:1", registry.addr);
    let outputs = [
        OutputSpec::Image {
            names: vec![],
            push: true,
            compression: LayerCompression::default(),
        },
        OutputSpec::Image {
            names: vec![other.clone()],
            push: true,
            compression: LayerCompression::default(),
        },
    ];
    let (exported, events) = build_and_export(dir.path(), "store", &[&v1], &outputs, None, &client);
    let exported = exported.unwrap();
    assert_eq!(exported.pushed.len(), 2);
    assert_eq!(exported.names, [v1.clone(), other.clone()]);
    // The store keeps the uncompressed layers; the push sends a manifest over their gzip variants, made once for
    // both pushes.
    let stored = exported.image.manifest.digest().to_string();
    let digest = exported.pushed[0].digest.to_string();
    assert_ne!(digest, stored);
    for pushed in &exported.pushed {
        assert_eq!(pushed.digest.to_string(), digest);
    }
    assert_eq!(
        exported.metadata()["containerimage.digest"],
        digest.as_str()
    );
    assert!(
        events.contains(&"status exporting to image: pushing layers".to_owned()),
        "{events:?}"
    );
    // Each layer's compression is a status of its own (by stored digest), before the manifest goes up.
    let compressed = events
        .iter()
        .rposition(|e| e.starts_with("status exporting to image: compressing sha256:"))
        .unwrap_or_else(|| panic!("no compressing status in {events:?}"));
    let manifest = events
        .iter()
        .position(|e| e.starts_with("status exporting to image: pushing manifest for "))
        .unwrap_or_else(|| panic!("no manifest status in {events:?}"));
    assert!(compressed < manifest, "{events:?}");
    assert!(
        events.contains(&format!(
            "status exporting to image: pushing manifest for {v1}@{digest}"
        )),
        "{events:?}"
    );
    for name in [&v1, &other] {
        let output = std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(inspected["Digest"], digest.as_str());
        let raw = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
        // Same config, so the same image ID; gzip layers.
        assert_eq!(
            manifest["config"]["digest"],
            exported.image.id.to_string().as_str()
        );
        for layer in manifest["layers"].as_array().unwrap() {
            assert_eq!(
                layer["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
        }
    }
    assert_eq!(
        exported.metadata()["image.name"],
        format!("{v1},{other}").as_str()
    );

    // A push with no name is refused, and the export vertex says so.
    let (refused, events) =
        build_and_export(dir.path(), "store", &[], &outputs[..1], None, &client);
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("tag is needed when pushing"), "{message}");
    assert!(
        events
            .last()
            .is_some_and(|e| e.starts_with("error exporting to image: tag is needed")),
        "{events:?}"
    );
}
