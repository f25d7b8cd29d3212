//! The solver on real plans and a real store, with an executor that records how RUN steps were scheduled and
//! writes each step's argv as a file (the sandbox itself is tested through `hoist build`).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use hoist_engine::{
    Diff, ExecOutcome, ExecRequest, Executor, Result, Silent, SolveRequest, Solver, StoreResolver,
    export_image, export_local,
};
use hoist_oci::{ManifestFormat, Store};
use hoist_plan::{PlanRequest, plan};

/// Runs a step by writing `/<last argv word>` into the layer; counts steps and how many ran at once.
#[derive(Default)]
struct Recording {
    state: Mutex<(usize, usize, usize)>,
    changed: Condvar,
    /// Hold each step until a second one runs (to observe parallelism).
    wait_for_pair: bool,
}

impl Recording {
    fn calls(&self) -> usize {
        self.state.lock().unwrap().0
    }
    fn max_concurrent(&self) -> usize {
        self.state.lock().unwrap().2
    }
}

impl Executor for Recording {
    fn execute(
        &self,
        request: &ExecRequest<'_>,
        _logs: &(dyn Fn(&[u8]) + Sync),
        diff: Diff<'_>,
    ) -> Result<ExecOutcome> {
        let Diff::Tar(diff) = diff else {
            unreachable!("this executor does not keep directories")
        };
        {
            let mut state = self.state.lock().unwrap();
            state.0 += 1;
            state.1 += 1;
            state.2 = state.2.max(state.1);
            self.changed.notify_all();
            // Wait (briefly) for a second step to start: independent steps must overlap.
            if self.wait_for_pair {
                let _ = self
                    .changed
                    .wait_timeout_while(state, Duration::from_secs(2), |s| s.1 < 2 && s.2 < 2)
                    .unwrap();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let name = request.exec.args.last().unwrap().replace(' ', "_");
        std::fs::write(dir.path().join(&name), &name).unwrap();
        let summary =
            hoist_layer::write_layer(dir.path(), diff, &hoist_layer::WriteOptions::new()).unwrap();
        self.state.lock().unwrap().1 -= 1;
        self.changed.notify_all();
        Ok(ExecOutcome {
            entries: summary.entries,
        })
    }
}

const DOCKERFILE: &str = "FROM scratch AS a\nRUN one\nFROM scratch AS b\nRUN two\n\
FROM scratch AS unused\nRUN never\n\
FROM scratch\nCOPY --from=a /one /\nCOPY --from=b /two /\n";

#[test]
fn independent_stages_run_in_parallel_and_rebuilds_hit_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let file = hoist_dockerfile::parse(DOCKERFILE).unwrap();
    let resolver = StoreResolver {
        store: &store,
        puller: None,
    };
    let plan = plan(&PlanRequest::new(file), &resolver).unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    let executor = Recording {
        wait_for_pair: true,
        ..Recording::default()
    };
    let solver = Solver {
        store: &store,
        executor: &executor,
        reporter: &Silent,
        parallelism: 2,
        scratch: dir.path().join("scratch"),
    };
    let request = SolveRequest {
        plan: &plan,
        dockerfile: DOCKERFILE,
        context_dir: &context,
        ignore_patterns: &[],
        secrets: &Default::default(),
        named_contexts: &Default::default(),
        ssh: &Default::default(),
        allow: Default::default(),
    };
    let solution = solver.solve(&request).unwrap();
    assert_eq!(executor.calls(), 2, "the unused stage's RUN never runs");
    assert_eq!(executor.max_concurrent(), 2, "stages a and b overlap");
    let image = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    assert_eq!(image.layers.len(), 2);
    // The layer info recorded in the one-pass ingest is what the store measures from the blob itself.
    let other = Store::open(dir.path().join("other")).unwrap();
    for layer in &image.layers {
        let recorded = store.layer_info(&layer.digest).unwrap().unwrap();
        let blob = store.open_blob(&layer.digest).unwrap();
        let measured = other
            .ingest_layer(blob, &hoist_oci::Expected::unknown())
            .unwrap();
        assert_eq!(measured.info, recorded);
        assert_eq!(measured.blob.digest, layer.digest);
        assert_eq!(measured.info.diff_id, layer.diff_id);
    }
    let out = dir.path().join("out");
    export_local(&store, &image.layers, &out).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("one")).unwrap(), "one");
    assert_eq!(std::fs::read_to_string(out.join("two")).unwrap(), "two");

    let again = solver.solve(&request).unwrap();
    assert_eq!(executor.calls(), 2, "a rebuild runs nothing");
    let root = again.get(plan.target_stage().root).unwrap();
    assert!(root.cached);
    let rebuilt = export_image(&store, &plan, &again, ManifestFormat::Oci).unwrap();
    assert_eq!(rebuilt.id, image.id, "a cached rebuild is the same image");
}

#[test]
fn a_missing_base_image_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let file = hoist_dockerfile::parse("FROM nothere:1\nRUN x\n").unwrap();
    let resolver = StoreResolver {
        store: &store,
        puller: None,
    };
    let error = plan(&PlanRequest::new(file), &resolver).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("image docker.io/library/nothere:1 not found in the local store"),
        "{message}"
    );
}

#[test]
fn the_same_step_in_two_stages_runs_once() {
    let dockerfile = "FROM scratch AS a\nRUN same\nFROM scratch AS b\nRUN same\n\
FROM scratch\nCOPY --from=a /same /a\nCOPY --from=b /same /b\n";
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let resolver = StoreResolver {
        store: &store,
        puller: None,
    };
    let plan = plan(
        &PlanRequest::new(hoist_dockerfile::parse(dockerfile).unwrap()),
        &resolver,
    )
    .unwrap();
    let runs = plan
        .ops
        .iter()
        .filter(|op| matches!(op.op, hoist_plan::Op::Exec(_)))
        .count();
    assert_eq!(runs, 2, "the plan keeps both steps; the solver merges them");
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    let executor = Recording::default();
    let solver = Solver {
        store: &store,
        executor: &executor,
        reporter: &Silent,
        parallelism: 2,
        scratch: dir.path().join("scratch"),
    };
    let request = SolveRequest {
        plan: &plan,
        dockerfile,
        context_dir: &context,
        ignore_patterns: &[],
        secrets: &Default::default(),
        named_contexts: &Default::default(),
        ssh: &Default::default(),
        allow: Default::default(),
    };
    let solution = solver.solve(&request).unwrap();
    assert_eq!(executor.calls(), 1);
    let image = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    let out = dir.path().join("out");
    export_local(&store, &image.layers, &out).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "same");
    assert_eq!(std::fs::read_to_string(out.join("b")).unwrap(), "same");
}
