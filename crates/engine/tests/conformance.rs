//! Engine conformance: each directory under `tests/conformance/` is a small Dockerfile (with its `context/`) and
//! the image BuildKit makes of it (`expected.json`: the config, the history after the base, every file that differs
//! from the base). The cases are built for real with the library (planner, solver, sandboxed RUN, export to a
//! store), all on one busybox base image and one store, two at a time. See `tests/support/conformance.rs` for the
//! format and docs/conformance.md ("Engine conformance") for the case list.
//!
//! `HOIST_CONFORMANCE_CASE=a,b` runs only those cases; `HOIST_CONFORMANCE_BLESS=1` writes what the engine produced
//! into each `expected.json` (review the diff before committing it). Needs root (RUN steps run in namespaces).
#![allow(clippy::print_stderr)]

#[path = "support/conformance.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hoist_engine::{
    SandboxExecutor, Silent, SolveRequest, Solver, StoreResolver, export_image, export_local,
};
use hoist_oci::{ManifestFormat, Store};
use hoist_plan::{PlanErrorKind, PlanRequest};
use serde_json::Value;
use support::{BASE_IMAGE, Case, Expected};

/// What a case produced: an error, or the image's parts in `expected.json`'s form.
struct Outcome {
    error: Option<String>,
    config: Value,
    history: Vec<(String, bool)>,
    files: BTreeMap<String, String>,
    removed: Vec<String>,
}

struct Suite {
    store: Store,
    work: tempfile::TempDir,
    base_listing: BTreeMap<String, String>,
    base_history_len: usize,
}

impl Suite {
    fn new() -> Suite {
        let work = tempfile::tempdir().unwrap();
        let store = Store::open(work.path().join("store")).unwrap();
        let tar = support::base_rootfs_tar(work.path());
        for (name, changes) in support::IMAGES {
            let options = hoist_archive::ImportOptions {
                references: vec![name.parse().unwrap()],
                changes: changes.iter().map(|c| (*c).to_owned()).collect(),
                created: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
                ..hoist_archive::ImportOptions::default()
            };
            hoist_archive::import(&store, fs::File::open(&tar).unwrap(), &options).unwrap();
        }
        // The base's own listing, from the same unpacking path as the cases' images.
        let image = store.read_image(BASE_IMAGE).unwrap();
        let base_dir = work.path().join("base");
        unpack_layers(&store, &image.layers, &base_dir);
        let base_listing = support::list_tree(&base_dir);
        let base_history_len = image.config.history().as_ref().map_or(0, Vec::len);
        Suite {
            store,
            work,
            base_listing,
            base_history_len,
        }
    }

    fn run(&self, case: &Case) -> Outcome {
        let scratch = self.work.path().join("cases").join(&case.name);
        let context = scratch.join("context");
        case.materialize_context(&context);
        let dockerfile = fs::read_to_string(case.dockerfile()).unwrap();
        let failed = |error: String| Outcome {
            error: Some(error),
            config: Value::Null,
            history: Vec::new(),
            files: BTreeMap::new(),
            removed: Vec::new(),
        };
        let parsed = match hoist_dockerfile::parse(&dockerfile) {
            Ok(parsed) => parsed,
            Err(error) => return failed(error.to_string()),
        };
        let mut request = PlanRequest::new(parsed);
        request.target = case.expected.request.target.clone();
        request.build_args = case.expected.request.build_args.clone();
        let resolver = StoreResolver {
            store: &self.store,
            puller: None,
        };
        let plan = match hoist_plan::plan(&request, &resolver) {
            Ok(plan) => plan,
            // An unknown target also carries the stage names, for the hint the CLI prints.
            Err(error) => match error.kind.as_ref() {
                PlanErrorKind::TargetNotFound { stages, .. } => {
                    return failed(format!("{error} (stages: {})", stages.join(", ")));
                }
                _ => return failed(error.to_string()),
            },
        };
        let ignore_patterns = hoist_context::find_ignore_file(&context, None)
            .unwrap()
            .map(|f| f.patterns)
            .unwrap_or_default();
        let solver = Solver {
            store: &self.store,
            executor: &SandboxExecutor,
            reporter: &Silent,
            parallelism: 2,
            scratch: scratch.join("scratch"),
        };
        let solve = SolveRequest {
            plan: &plan,
            dockerfile: &dockerfile,
            context_dir: &context,
            ignore_patterns: &ignore_patterns,
            secrets: &Default::default(),
            named_contexts: &Default::default(),
            ssh: &Default::default(),
            allow: Default::default(),
        };
        let solution = match solver.solve(&solve) {
            Ok(solution) => solution,
            Err(error) => return failed(hoist_engine::error_chain(&error)),
        };
        let image = match export_image(&self.store, &plan, &solution, ManifestFormat::Oci) {
            Ok(image) => image,
            Err(error) => return failed(hoist_engine::error_chain(&error)),
        };
        let rootfs = scratch.join("rootfs");
        export_local(&self.store, &image.layers, &rootfs).unwrap();
        let (files, removed) =
            support::diff_listing(&self.base_listing, &support::list_tree(&rootfs));
        let config: Value = serde_json::from_slice(&image.config).unwrap();
        let history = config["history"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .skip(self.base_history_len)
                    .map(|h| {
                        (
                            h["created_by"].as_str().unwrap_or_default().to_owned(),
                            h["empty_layer"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Outcome {
            error: None,
            config: config["config"].clone(),
            history,
            files,
            removed,
        }
    }
}

fn unpack_layers(store: &Store, layers: &[hoist_oci::ImageLayer], dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for layer in layers {
        let digest = hoist_oci::digest_from_oci(layer.descriptor.digest()).unwrap();
        let blob = store.open_blob(&digest).unwrap();
        let reader = hoist_layer::Decompressor::new(blob).unwrap();
        hoist_layer::apply_layer(reader, dir, &hoist_layer::ApplyOptions::new()).unwrap();
    }
}

/// The differences between what a case expects and what it got, one line each.
fn compare(case: &Case, outcome: &Outcome) -> Vec<String> {
    let expected = &case.expected;
    let mut problems = Vec::new();
    match (&expected.error, &outcome.error) {
        (Some(want), Some(got)) => {
            if !got.contains(want.as_str()) {
                problems.push(format!("error {got:?} does not contain {want:?}"));
            }
            return problems;
        }
        (Some(want), None) => {
            problems.push(format!(
                "the build succeeded; expected an error with {want:?}"
            ));
            return problems;
        }
        (None, Some(got)) => {
            problems.push(format!("the build failed: {got}"));
            return problems;
        }
        (None, None) => {}
    }
    match &expected.config {
        Some(want) => {
            let want: Value = serde_json::from_str(&support::with_host(&want.to_string())).unwrap();
            if want != outcome.config {
                problems.push(format!(
                    "config differs:\n  expected {want}\n  actual   {}",
                    outcome.config
                ));
            }
        }
        None => problems.push("expected.json has no \"config\"".to_owned()),
    }
    let history = expected.history.as_ref().map(|entries| {
        entries
            .iter()
            .map(|(text, empty)| (support::with_host(text), *empty))
            .collect::<Vec<_>>()
    });
    match &history {
        Some(want) if *want != outcome.history => problems.push(format!(
            "history differs:\n  expected {want:?}\n  actual   {:?}",
            outcome.history
        )),
        Some(_) => {}
        None => problems.push("expected.json has no \"history\"".to_owned()),
    }
    let Some(files) = &expected.files else {
        problems.push("expected.json has no \"files\"".to_owned());
        return problems;
    };
    for (path, want) in files {
        let want = support::with_host(want);
        match outcome.files.get(path) {
            Some(got) if support::line_matches(&want, got) => {}
            Some(got) => problems.push(format!("{path}: expected `{want}`, got `{got}`")),
            None => problems.push(format!(
                "{path}: expected `{want}`, but it is missing or unchanged from the base"
            )),
        }
    }
    for (path, got) in &outcome.files {
        if !files.contains_key(path) {
            problems.push(format!("{path}: unexpected `{got}`"));
        }
    }
    if expected.removed != outcome.removed {
        problems.push(format!(
            "removed paths: expected {:?}, got {:?}",
            expected.removed, outcome.removed
        ));
    }
    for group in &expected.same {
        let contents: Vec<_> = group.iter().map(|p| outcome.files.get(p)).collect();
        if contents.iter().any(Option::is_none) || contents.windows(2).any(|w| w[0] != w[1]) {
            problems.push(format!(
                "{group:?} should have the same content: {contents:?}"
            ));
        }
    }
    problems
}

/// Writes what the engine produced into the case's `expected.json`, keeping its description and request.
fn bless(case: &Case, outcome: &Outcome) {
    let old = &case.expected;
    let blessed = match &outcome.error {
        Some(error) => Expected {
            error: Some(old.error.clone().unwrap_or_else(|| error.clone())),
            ..Expected {
                about: old.about.clone(),
                request: old.request.clone(),
                buildkit: old.buildkit.clone(),
                ..Expected::default()
            }
        },
        None => Expected {
            about: old.about.clone(),
            request: old.request.clone(),
            buildkit: old.buildkit.clone(),
            error: None,
            config: Some(outcome.config.clone()),
            history: Some(outcome.history.clone()),
            files: Some(
                outcome
                    .files
                    .iter()
                    .map(|(path, line)| {
                        let keep = old.files.as_ref().and_then(|f| f.get(path)).filter(|want| {
                            want.ends_with(" *") && support::line_matches(want, line)
                        });
                        (path.clone(), keep.cloned().unwrap_or_else(|| line.clone()))
                    })
                    .collect(),
            ),
            removed: outcome.removed.clone(),
            same: old.same.clone(),
        },
    };
    fs::write(case.dir.join("expected.json"), blessed.to_json()).unwrap();
}

#[test]
fn engine_conformance_cases() {
    let cases = support::load_cases();
    assert!(
        !cases.is_empty(),
        "no cases under {}",
        support::cases_dir().display()
    );
    let suite = Suite::new();
    let blessing = std::env::var("HOIST_CONFORMANCE_BLESS").as_deref() == Ok("1");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(index) else { break };
                    let outcome = suite.run(case);
                    if blessing {
                        bless(case, &outcome);
                        continue;
                    }
                    let problems = compare(case, &outcome);
                    if !problems.is_empty() {
                        failures.lock().unwrap().push(format!(
                            "{} ({}):\n  {}",
                            case.name,
                            case.expected.about,
                            problems.join("\n  ")
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "engine conformance: {}/{} cases pass",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
