//! COPY and WORKDIR write their layer straight from the sources: no staging directory appears in the scratch
//! space while they run, and the layer still holds what a copy would (data, modes, hard links, symlinks,
//! heredocs, the WORKDIR directory).

use std::fs;
use std::mem::MaybeUninit;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use hoist_engine::{
    Diff, ExecOutcome, ExecRequest, Executor, Result, Silent, SolveRequest, Solver, StoreResolver,
    export_image, export_local,
};
use hoist_oci::{ManifestFormat, Store};
use hoist_plan::{PlanRequest, plan};
use rustix::fs::inotify;

/// The Dockerfile has no RUN step.
struct NoRun;

impl Executor for NoRun {
    fn execute(
        &self,
        _: &ExecRequest<'_>,
        _: &(dyn Fn(&[u8]) + Sync),
        _: Diff<'_>,
    ) -> Result<ExecOutcome> {
        unreachable!("the Dockerfile has no RUN step")
    }
}

const DOCKERFILE: &str = "FROM scratch\n\
COPY --chmod=640 data /data/\n\
COPY <<EOF /notes/inline.txt\nwritten by a heredoc\nEOF\n\
WORKDIR /work/dir\n";

/// Plans and solves `dockerfile` with the context `context`.
fn solve(
    store: &Store,
    dockerfile: &str,
    context: &Path,
    scratch: &Path,
) -> Result<(hoist_plan::BuildPlan, hoist_engine::Solution)> {
    let file = hoist_dockerfile::parse(dockerfile).unwrap();
    let resolver = StoreResolver {
        store,
        puller: None,
    };
    let plan = plan(&PlanRequest::new(file), &resolver).unwrap();
    let solver = Solver {
        store,
        executor: &NoRun,
        reporter: &Silent,
        parallelism: 2,
        scratch: scratch.to_path_buf(),
    };
    let request = SolveRequest {
        plan: &plan,
        dockerfile,
        context_dir: context,
        ignore_patterns: &[],
        secrets: &Default::default(),
        named_contexts: &Default::default(),
        ssh: &Default::default(),
        allow: Default::default(),
    };
    let solution = solver.solve(&request)?;
    Ok((plan, solution))
}

/// An error and its causes, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Names created directly in `dir` since the watch began.
fn created_names(inotify: &impl std::os::fd::AsFd) -> Vec<String> {
    let mut buf = [MaybeUninit::uninit(); 4096];
    let mut reader = inotify::Reader::new(inotify, &mut buf);
    let mut names = Vec::new();
    while let Ok(event) = reader.next() {
        if let Some(name) = event.file_name() {
            names.push(name.to_string_lossy().into_owned());
        }
    }
    names
}

#[test]
fn copy_and_workdir_write_their_layers_without_a_staging_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let context = dir.path().join("ctx");
    let data = context.join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(data.join("big.bin"), &big).unwrap();
    fs::write(data.join("sub/small.txt"), "small").unwrap();
    fs::hard_link(data.join("sub/small.txt"), data.join("sub/linked.txt")).unwrap();
    std::os::unix::fs::symlink("sub/small.txt", data.join("link")).unwrap();

    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let watch =
        inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
    inotify::add_watch(
        &watch,
        &scratch,
        inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO,
    )
    .unwrap();

    let (plan, solution) = solve(&store, DOCKERFILE, &context, &scratch).unwrap();

    // A probe shows that the watch sees what is created there.
    fs::write(scratch.join("probe"), "").unwrap();
    let created = created_names(&watch);
    assert!(created.iter().any(|name| name == "probe"), "{created:?}");
    assert!(
        !created.iter().any(|name| name.starts_with("staging-")),
        "no staging directory: {created:?}"
    );
    let image = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    assert_eq!(image.layers.len(), 3, "two COPY layers and the WORKDIR's");

    let out = dir.path().join("out");
    export_local(&store, &image.layers, &out).unwrap();
    let root = Path::new(&out);
    assert_eq!(fs::read(root.join("data/big.bin")).unwrap(), big);
    assert_eq!(
        fs::read_to_string(root.join("data/sub/small.txt")).unwrap(),
        "small"
    );
    let small = fs::metadata(root.join("data/sub/small.txt")).unwrap();
    let linked = fs::metadata(root.join("data/sub/linked.txt")).unwrap();
    assert_eq!(small.ino(), linked.ino(), "hard links stay hard links");
    assert_eq!(small.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        fs::read_link(root.join("data/link")).unwrap(),
        Path::new("sub/small.txt")
    );
    assert_eq!(
        fs::read_to_string(root.join("notes/inline.txt")).unwrap(),
        "written by a heredoc\n"
    );
    let work = fs::metadata(root.join("work/dir")).unwrap();
    assert!(work.is_dir());
    assert_eq!(work.permissions().mode() & 0o7777, 0o755);
}

/// Later sources replace earlier files within one COPY, but a file never becomes a directory's parent, nor a
/// directory a file: fsutil's errors.
#[test]
fn later_sources_overwrite_files_but_not_across_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let scratch = dir.path().join("scratch");
    let context = dir.path().join("ctx");
    fs::create_dir_all(context.join("one")).unwrap();
    fs::create_dir_all(context.join("two")).unwrap();
    fs::create_dir_all(context.join("nested/a.txt")).unwrap();
    fs::write(context.join("a.txt"), "file").unwrap();
    fs::write(context.join("one/same"), "first").unwrap();
    fs::write(context.join("two/same"), "second").unwrap();
    fs::write(context.join("nested/a.txt/inner"), "inner").unwrap();

    let (plan, solution) = solve(
        &store,
        "FROM scratch\nCOPY one/ two/ /dest/\n",
        &context,
        &scratch,
    )
    .unwrap();
    let image = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    let out = dir.path().join("out");
    export_local(&store, &image.layers, &out).unwrap();
    assert_eq!(fs::read_to_string(out.join("dest/same")).unwrap(), "second");

    let error = solve(
        &store,
        "FROM scratch\nCOPY a.txt nested /dest/\n",
        &context,
        &scratch,
    )
    .map(drop)
    .unwrap_err();
    let message = chain(&error);
    assert!(
        message.contains("cannot copy to non-directory: /dest/a.txt"),
        "{message}"
    );

    let error = solve(
        &store,
        "FROM scratch\nCOPY nested a.txt /dest/\n",
        &context,
        &scratch,
    )
    .map(drop)
    .unwrap_err();
    let message = chain(&error);
    assert!(
        message.contains("cannot replace to directory /dest/a.txt with file"),
        "{message}"
    );
}
