//! Shared by the engine's test binaries that build through the real sandbox (`cache_mounts`, `run_flags`,
//! `secret_mounts`): a root file system imported into a fresh store, and a Dockerfile solved, exported and
//! unpacked into a directory. Included with `#[path]`, so each binary compiles only what it uses.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use hoist_archive::{ImportOptions, import};
use hoist_engine::{
    EngineError, Entitlements, Executor, SandboxExecutor, Silent, Solution, SolveRequest, Solver,
    SshAgents, StoreResolver, export_image, export_local,
};
use hoist_oci::{ManifestFormat, Store};
use hoist_plan::{BuildPlan, PlanRequest, plan};

/// Packs `rootfs` (owners as root) and imports it into a new store at `dir/store` as `reference`, with
/// `hoist import --change` style `changes`.
pub fn import_rootfs(dir: &Path, rootfs: &Path, reference: &str, changes: &[&str]) -> Store {
    let tar = dir.join("rootfs.tar");
    hoist_testkit::tar_dir(rootfs, &tar, &["--owner=0", "--group=0", "--numeric-owner"]);
    let store = Store::open(dir.join("store")).unwrap();
    let options = ImportOptions {
        references: vec![reference.parse().unwrap()],
        changes: changes.iter().map(|c| (*c).to_owned()).collect(),
        ..ImportOptions::default()
    };
    import(&store, File::open(&tar).unwrap(), &options).unwrap();
    store
}

/// Plans `dockerfile` for `target` (the last stage when `None`) and solves it with `executor`, these secrets, SSH
/// agents and entitlements (an empty context at `dir/ctx`, two ops at a time).
#[allow(clippy::too_many_arguments)]
pub fn solve(
    dir: &Path,
    store: &Store,
    executor: &dyn Executor,
    dockerfile: &str,
    target: Option<&str>,
    secrets: &BTreeMap<String, Vec<u8>>,
    ssh: &SshAgents,
    allow: Entitlements,
) -> Result<(BuildPlan, Solution), EngineError> {
    let resolver = StoreResolver {
        store,
        puller: None,
    };
    let mut request = PlanRequest::new(hoist_dockerfile::parse(dockerfile).unwrap());
    request.target = target.map(str::to_owned);
    let plan = plan(&request, &resolver).unwrap();
    let context = dir.join("ctx");
    fs::create_dir_all(&context).unwrap();
    let solver = Solver {
        store,
        executor,
        reporter: &Silent,
        parallelism: 2,
        scratch: dir.join("scratch"),
    };
    let request = SolveRequest {
        plan: &plan,
        dockerfile,
        context_dir: &context,
        ignore_patterns: &[],
        secrets,
        named_contexts: &Default::default(),
        ssh,
        allow,
    };
    let solution = solver.solve(&request)?;
    Ok((plan, solution))
}

/// Builds `dockerfile` with these secrets, SSH agents and entitlements (see [`solve`]) and returns the final file
/// system, unpacked in a new directory under `dir`.
pub fn build_to_dir(
    dir: &Path,
    store: &Store,
    dockerfile: &str,
    secrets: &BTreeMap<String, Vec<u8>>,
    ssh: &SshAgents,
    allow: Entitlements,
) -> Result<PathBuf, EngineError> {
    let (plan, solution) = solve(
        dir,
        store,
        &SandboxExecutor,
        dockerfile,
        None,
        secrets,
        ssh,
        allow,
    )?;
    let image = export_image(store, &plan, &solution, ManifestFormat::Oci)?;
    let out = tempfile::tempdir_in(dir).unwrap().keep();
    export_local(store, &image.layers, &out)?;
    Ok(out)
}
