//! `--build-context NAME=oci-layout://…` and `NAME=docker-image://…` replacing `FROM NAME` and `COPY --from=NAME`:
//! real OCI layouts written by hoist-archive from a second store, solved into a fresh store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_registry::{Client, DockerConfig, ImageReference, PushOptions, RegistryConfig};

#[path = "../../registry/tests/support/mod.rs"]
mod support;

use hoist_archive::{ImportOptions, import, save_oci_dir};
use hoist_engine::{
    EngineError, ImagePuller, RegistryPuller, Reporter, SandboxExecutor, Silent, Solution,
    SolveRequest, Solver, StoreResolver, export_image, export_local,
};
use hoist_oci::{ManifestFormat, Store};
use hoist_plan::{BuildPlan, NamedContext, NamedContextKind, PlanError, PlanRequest};
use hoist_testkit::{error_chain, tar_dir};

/// Imports a one-layer image holding `files` (path, content) into `store` as `reference`, with `changes`.
fn image(
    store: &Store,
    dir: &Path,
    reference: &str,
    files: &[(&str, &str)],
    changes: &[&str],
) -> String {
    let rootfs = dir.join(format!("rootfs-{}", reference.replace([':', '/'], "-")));
    for (path, content) in files {
        let file = rootfs.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let tar = rootfs.with_extension("tar");
    tar_dir(
        &rootfs,
        &tar,
        &["--owner=0", "--group=0", "--numeric-owner"],
    );
    let options = ImportOptions {
        references: vec![reference.parse().unwrap()],
        changes: changes.iter().map(|c| (*c).to_owned()).collect(),
        ..ImportOptions::default()
    };
    let imported = import(store, std::fs::File::open(&tar).unwrap(), &options).unwrap();
    imported.manifest.to_string()
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        Fixture { dir, store }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn plan(
        &self,
        dockerfile: &str,
        contexts: &[(&str, NamedContextKind)],
    ) -> Result<BuildPlan, PlanError> {
        self.plan_pulling(dockerfile, contexts, None)
    }

    fn plan_pulling(
        &self,
        dockerfile: &str,
        contexts: &[(&str, NamedContextKind)],
        puller: Option<&dyn ImagePuller>,
    ) -> Result<BuildPlan, PlanError> {
        let mut request = PlanRequest::new(hoist_dockerfile::parse(dockerfile).unwrap());
        request.named_contexts = contexts
            .iter()
            .map(|(name, kind)| NamedContext {
                name: (*name).to_owned(),
                kind: kind.clone(),
            })
            .collect();
        let resolver = StoreResolver {
            store: &self.store,
            puller,
        };
        hoist_plan::plan(&request, &resolver)
    }

    fn solve(&self, plan: &BuildPlan, dockerfile: &str) -> Result<Solution, EngineError> {
        self.solve_with(plan, dockerfile, &BTreeMap::new())
    }

    fn solve_with(
        &self,
        plan: &BuildPlan,
        dockerfile: &str,
        local: &BTreeMap<String, PathBuf>,
    ) -> Result<Solution, EngineError> {
        let solver = Solver {
            store: &self.store,
            executor: &SandboxExecutor,
            reporter: &Silent,
            parallelism: 2,
            scratch: self.path("scratch"),
        };
        let context = self.path("ctx");
        solver.solve(&SolveRequest {
            plan,
            dockerfile,
            context_dir: &context,
            ignore_patterns: &[],
            secrets: &Default::default(),
            named_contexts: local,
            ssh: &Default::default(),
            allow: Default::default(),
        })
    }

    /// Plans, solves and exports into `out`; returns the plan too.
    fn build(
        &self,
        dockerfile: &str,
        contexts: &[(&str, NamedContextKind)],
        out: &str,
    ) -> (BuildPlan, PathBuf) {
        let plan = self
            .plan(dockerfile, contexts)
            .unwrap_or_else(|e| panic!("planning failed: {e}"));
        let solution = self
            .solve(&plan, dockerfile)
            .unwrap_or_else(|e| panic!("build failed: {}", error_chain(&e)));
        let image = export_image(&self.store, &plan, &solution, ManifestFormat::Oci).unwrap();
        let out = self.path(out);
        export_local(&self.store, &image.layers, &out).unwrap();
        (plan, out)
    }
}

fn layout(value: String) -> NamedContextKind {
    NamedContextKind::OciLayout(value)
}

#[test]
fn oci_layout_contexts_replace_from_and_copy_from() {
    let fx = Fixture::new();
    // Two images saved into one layout from another store: tags `one` and `two`.
    let source = Store::open(fx.path("source")).unwrap();
    let one = image(
        &source,
        fx.dir.path(),
        "app:one",
        &[("one.txt", "from image one\n")],
        &["ENV FROM_ONE=1"],
    );
    image(
        &source,
        fx.dir.path(),
        "app:two",
        &[("two.txt", "from image two\n")],
        &["ENV FROM_TWO=2", "WORKDIR /srv"],
    );
    let dir = fx.path("layout");
    save_oci_dir(&source, &["app:one".to_owned(), "app:two".to_owned()], &dir).unwrap();
    let dir = dir.display().to_string();

    let dockerfile = "FROM base\nCOPY --from=extra /one.txt /copied.txt\n";
    let (plan, out) = fx.build(
        dockerfile,
        &[
            ("base", layout(format!("{dir}:two"))),
            ("extra", layout(format!("{dir}@{one}"))),
        ],
        "out",
    );
    assert_eq!(
        std::fs::read_to_string(out.join("two.txt")).unwrap(),
        "from image two\n",
        "FROM base is the layout's image tagged two"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("copied.txt")).unwrap(),
        "from image one\n",
        "COPY --from=extra reads the image chosen by digest"
    );
    assert!(!out.join("one.txt").exists());
    let config = &plan.target_stage().config;
    assert!(
        config.env.iter().any(|e| e == "FROM_TWO=2"),
        "{:?}",
        config.env
    );
    assert_eq!(
        config.working_dir, "/srv",
        "the layout image's config is the base"
    );
    assert!(
        fx.store.list_images().unwrap().is_empty(),
        "reading a layout tags nothing in the store"
    );

    // No tag: `latest`, which this layout lacks, and two entries: nothing to choose.
    let error = fx
        .plan("FROM base\n", &[("base", layout(dir.clone()))])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("could not be resolved") && error.contains("no entry is tagged \"latest\""),
        "{error}"
    );
    let error = fx
        .plan("FROM base\n", &[("base", layout(format!("{dir}:three")))])
        .unwrap_err()
        .to_string();
    assert!(error.contains("tags: one, two"), "{error}");
    let missing = fx.path("nowhere").display().to_string();
    let error = fx
        .plan("FROM base\n", &[("base", layout(missing.clone()))])
        .unwrap_err()
        .to_string();
    assert!(error.contains(&format!("{missing}/index.json")), "{error}");

    // A layout of one image needs no tag.
    let single = fx.path("single");
    save_oci_dir(&source, &["app:one".to_owned()], &single).unwrap();
    let (_, out) = fx.build(
        "FROM scratch\nCOPY --from=only /one.txt /\n",
        &[("only", layout(single.display().to_string()))],
        "single-out",
    );
    assert_eq!(
        std::fs::read_to_string(out.join("one.txt")).unwrap(),
        "from image one\n"
    );
}

#[test]
fn docker_image_contexts_come_from_the_store() {
    let fx = Fixture::new();
    image(
        &fx.store,
        fx.dir.path(),
        "local/base:1",
        &[("base.txt", "base\n")],
        &["ENV FROM_BASE=yes"],
    );
    image(
        &fx.store,
        fx.dir.path(),
        "local/tools:2",
        &[("tool.txt", "tool\n")],
        &[],
    );
    // The Dockerfile names images that do not exist anywhere: the contexts stand in for them.
    let dockerfile = "FROM example.com/never/pulled:1\nCOPY --from=alpine:3.20 /tool.txt /\n";
    let (plan, out) = fx.build(
        dockerfile,
        &[
            (
                "example.com/never/pulled:1",
                NamedContextKind::Image("local/base:1".to_owned()),
            ),
            (
                "alpine:3.20",
                NamedContextKind::Image("local/tools:2".to_owned()),
            ),
        ],
        "out",
    );
    assert_eq!(
        std::fs::read_to_string(out.join("base.txt")).unwrap(),
        "base\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("tool.txt")).unwrap(),
        "tool\n"
    );
    assert!(
        plan.target_stage()
            .config
            .env
            .iter()
            .any(|e| e == "FROM_BASE=yes")
    );
}

#[test]
fn docker_image_contexts_missing_from_the_store_are_pulled() {
    let Some(registry) = support::TestRegistry::start() else {
        return;
    };
    let fx = Fixture::new();
    let source = Arc::new(Store::open(fx.path("source")).unwrap());
    image(
        &source,
        fx.dir.path(),
        "pushme:1",
        &[("pulled.txt", "from the registry\n")],
        &["ENV PULLED=yes"],
    );
    let make_client = || {
        Ok(Client::new(
            RegistryConfig::default(),
            DockerConfig::at(fx.path("docker-config.json")),
        ))
    };
    let remote = format!("{}/ctx/base:1", registry.addr);
    let target: ImageReference = remote.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(make_client().unwrap().push(
            Arc::clone(&source),
            "pushme:1",
            std::slice::from_ref(&target),
            &PushOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap();

    let puller = RegistryPuller::new(
        fx.path("store"),
        &make_client,
        Arc::new(Silent) as Arc<dyn Reporter + Send>,
    );
    assert!(
        fx.store.read_image(&remote).is_err(),
        "not in the store yet"
    );
    let contexts = [("base", NamedContextKind::Image(remote.clone()))];
    let plan = fx
        .plan_pulling("FROM base\n", &contexts, Some(&puller))
        .unwrap_or_else(|e| panic!("planning failed: {e}"));
    assert!(
        plan.target_stage()
            .config
            .env
            .iter()
            .any(|e| e == "PULLED=yes"),
        "the pulled image's config is the base"
    );
    assert!(
        fx.store.read_image(&remote).is_ok(),
        "pulled while planning"
    );
    let solution = fx
        .solve(&plan, "FROM base\n")
        .unwrap_or_else(|e| panic!("build failed: {}", error_chain(&e)));
    let image = export_image(&fx.store, &plan, &solution, ManifestFormat::Oci).unwrap();
    let out = fx.path("out");
    export_local(&fx.store, &image.layers, &out).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("pulled.txt")).unwrap(),
        "from the registry\n"
    );
}

#[test]
fn a_named_directory_has_its_own_dockerignore() {
    let fx = Fixture::new();
    let extra = fx.path("extra");
    std::fs::create_dir_all(extra.join("sub")).unwrap();
    std::fs::write(extra.join("keep.txt"), "kept\n").unwrap();
    std::fs::write(extra.join("secret.txt"), "ignored\n").unwrap();
    std::fs::write(extra.join("sub/notes.md"), "ignored too\n").unwrap();
    std::fs::write(extra.join(".dockerignore"), "secret.txt\n**/*.md\n").unwrap();
    let dockerfile = "FROM scratch\nCOPY --from=extra . /e/\n";
    let plan = fx
        .plan(dockerfile, &[("extra", NamedContextKind::Local)])
        .unwrap();
    let local = BTreeMap::from([("extra".to_owned(), extra.clone())]);
    let solution = fx
        .solve_with(&plan, dockerfile, &local)
        .unwrap_or_else(|e| panic!("build failed: {}", error_chain(&e)));
    let image = export_image(&fx.store, &plan, &solution, ManifestFormat::Oci).unwrap();
    let out = fx.path("out");
    export_local(&fx.store, &image.layers, &out).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("e/keep.txt")).unwrap(),
        "kept\n"
    );
    assert!(!out.join("e/secret.txt").exists());
    assert!(!out.join("e/sub/notes.md").exists());
}
