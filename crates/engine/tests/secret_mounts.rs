//! `RUN --mount=type=secret` without `target=` in the real sandbox (root, namespaces): BuildKit's default file
//! `/run/secrets/<id>`, named after `source=` when given, and no file for an `env=`-only secret.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use hoist_archive::{ImportOptions, import};
use hoist_engine::{
    SandboxExecutor, Silent, SolveRequest, Solver, StoreResolver, export_image, export_local,
};
use hoist_oci::{ManifestFormat, Store};
use hoist_plan::{PlanRequest, plan};
use hoist_testkit::BusyboxRootfs;

const APPLETS: &[&str] = &["sh", "cat", "stat", "test", "echo"];

/// A store with `bb:1`: busybox and a few applets, `PATH=/bin`.
fn store(dir: &Path) -> Store {
    let tar = BusyboxRootfs::new(dir.join("rootfs"))
        .applets(APPLETS)
        .tar_flags(&["--owner=0", "--group=0", "--numeric-owner"])
        .tar();
    let store = Store::open(dir.join("store")).unwrap();
    let options = ImportOptions {
        references: vec!["bb:1".parse().unwrap()],
        changes: vec!["ENV PATH=/bin".to_owned()],
        ..ImportOptions::default()
    };
    import(&store, fs::File::open(&tar).unwrap(), &options).unwrap();
    store
}

#[test]
fn secret_mounts_without_target_are_files_in_run_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let dockerfile = "FROM bb:1\n\
        RUN --mount=type=secret,id=token cat /run/secrets/token > /seen && stat -c %a /run/secrets/token > /mode\n\
        RUN --mount=type=secret,source=conf/npmrc cat /run/secrets/npmrc > /seen-npmrc\n\
        RUN --mount=type=secret,id=token,env=TOKEN echo \"$TOKEN\" > /seen-env && test ! -e /run/secrets/token && echo none > /no-file\n";
    let resolver = StoreResolver {
        store: &store,
        puller: None,
    };
    let plan = plan(
        &PlanRequest::new(hoist_dockerfile::parse(dockerfile).unwrap()),
        &resolver,
    )
    .unwrap();
    let context = dir.path().join("ctx");
    fs::create_dir(&context).unwrap();
    let secrets = BTreeMap::from([
        ("token".to_owned(), b"s3cr3t".to_vec()),
        ("conf/npmrc".to_owned(), b"registry=local".to_vec()),
    ]);
    let solver = Solver {
        store: &store,
        executor: &SandboxExecutor,
        reporter: &Silent,
        parallelism: 1,
        scratch: dir.path().join("scratch"),
    };
    let solution = solver
        .solve(&SolveRequest {
            plan: &plan,
            dockerfile,
            context_dir: &context,
            ignore_patterns: &[],
            secrets: &secrets,
            named_contexts: &Default::default(),
            ssh: &Default::default(),
            allow: Default::default(),
        })
        .unwrap_or_else(|e| panic!("build failed: {e:?}"));
    let image = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    let out = dir.path().join("out");
    export_local(&store, &image.layers, &out).unwrap();
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("seen"), "s3cr3t");
    assert_eq!(read("mode"), "400\n", "a secret file is 0400");
    assert_eq!(read("seen-npmrc"), "registry=local");
    assert_eq!(read("seen-env"), "s3cr3t\n");
    assert_eq!(read("no-file"), "none\n", "an env= secret has no file");
    assert!(
        !out.join("run/secrets/token").exists(),
        "the secret is not in the image"
    );
}
