//! RUN steps keep their changes as the directory the step left (a pending layer) and the tar is written only when an
//! exported image holds the layer: through the real sandbox, against a real store. In the nextest `sandbox` group.

use std::fs;
use std::path::Path;

use hoist_engine::{
    Diff, ExecOutcome, ExecRequest, Executor, Layer, Result, SandboxExecutor, Solution,
    export_image, export_image_at,
};
use hoist_oci::{Area, ManifestFormat, Store};
use hoist_plan::BuildPlan;
use hoist_testkit::BusyboxRootfs;

#[path = "support/sandboxed.rs"]
mod sandboxed;
use sandboxed::import_rootfs;

const APPLETS: &[&str] = &["sh", "mkdir", "echo", "rm", "ln", "chmod", "cat"];

/// The sandbox executor, told to write every step's tar at once: the behaviour before pending layers.
struct TarOnly;

impl Executor for TarOnly {
    fn execute(
        &self,
        request: &ExecRequest<'_>,
        logs: &(dyn Fn(&[u8]) + Sync),
        diff: Diff<'_>,
    ) -> Result<ExecOutcome> {
        SandboxExecutor.execute(request, logs, diff)
    }
}

/// Plans and solves `dockerfile` for `target` with `executor` (see [`sandboxed::solve`]).
fn solve(
    dir: &Path,
    store: &Store,
    executor: &dyn Executor,
    dockerfile: &str,
    target: Option<&str>,
) -> (BuildPlan, Solution) {
    sandboxed::solve(
        dir,
        store,
        executor,
        dockerfile,
        target,
        &Default::default(),
        &Default::default(),
        Default::default(),
    )
    .unwrap()
}

/// The records of the steps that made a pending layer.
fn pending_records(solution: &Solution) -> Vec<String> {
    solution
        .results
        .iter()
        .flatten()
        .filter_map(|result| result.record.as_ref()?.pending.clone())
        .collect()
}

/// The names and contents of the files in a layer blob.
fn layer_files(store: &Store, digest: &hoist_oci::Digest) -> Vec<(String, String)> {
    let blob = store.open_blob(digest).unwrap();
    let mut archive = tar::Archive::new(blob);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        files.push((name, text));
    }
    files
}

const LIFECYCLE: &str = "FROM base:1 AS builder\n\
RUN mkdir /out && echo built > /out/app\n\
FROM scratch AS release\n\
COPY --from=builder /out/app /app\n";

#[test]
fn sandbox_a_builder_stages_step_is_tarred_only_when_an_image_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = BusyboxRootfs::new(dir.path().join("rootfs")).applets(APPLETS);
    let store = import_rootfs(dir.path(), rootfs.write(), "base:1", &["ENV PATH=/bin"]);
    let blobs = |store: &Store| {
        fs::read_dir(store.root().join("blobs-v1/sha256"))
            .unwrap()
            .count()
    };

    // release: the RUN step's changes stay a directory; COPY --from reads them there.
    let (plan, solution) = solve(dir.path(), &store, &SandboxExecutor, LIFECYCLE, None);
    let pending = pending_records(&solution);
    assert_eq!(pending.len(), 1, "the builder's RUN step is pending");
    let kept = store.area_dir(Area::Snapshots).join(&pending[0]);
    assert_eq!(
        fs::read_to_string(kept.join("diff/out/app")).unwrap(),
        "built\n"
    );
    let before = blobs(&store);
    let release = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    assert_eq!(release.layers.len(), 1);
    assert_eq!(
        layer_files(&store, &release.layers[0].digest),
        [("app".to_owned(), "built\n".to_owned())]
    );
    // The COPY layer, the config and the manifest: no tar of the builder's step.
    assert_eq!(blobs(&store), before + 2);

    // builder: exporting an image that holds the layer writes its tar, once, and the cache record names it.
    let (plan, solution) = solve(
        dir.path(),
        &store,
        &SandboxExecutor,
        LIFECYCLE,
        Some("builder"),
    );
    assert!(
        solution
            .results
            .iter()
            .flatten()
            .all(|r| r.cached || r.record.is_none())
    );
    let builder = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    let top = builder.layers.last().unwrap();
    assert_eq!(
        store.layer_unpacked(&top.digest).unwrap().as_deref(),
        Some(pending[0].as_str())
    );
    let files = layer_files(&store, &top.digest);
    assert!(
        files.contains(&("out/app".to_owned(), "built\n".to_owned())),
        "{files:?}"
    );
    assert!(
        files.iter().all(|(name, _)| !name.starts_with("etc/hosts")),
        "{files:?}"
    );

    let (plan, solution) = solve(
        dir.path(),
        &store,
        &SandboxExecutor,
        LIFECYCLE,
        Some("builder"),
    );
    assert!(
        pending_records(&solution).is_empty(),
        "the record names the blob now"
    );
    let top_layer = solution
        .get(plan.target_stage().root)
        .unwrap()
        .layers()
        .last()
        .cloned();
    assert!(matches!(top_layer, Some(Layer::Blob(ref blob)) if blob.digest == top.digest));
    let again = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    assert_eq!(again.id, builder.id);
    // The directory still serves as the layer's snapshot, for builds and for `hoist run` alike: the blob is never
    // unpacked.
    assert!(kept.join("diff/out/app").is_file());
    store
        .tag(&"app:builder".parse().unwrap(), &builder.manifest)
        .unwrap();
    let image = store.read_image("app:builder").unwrap();
    let dirs = hoist_sandbox::unpack_layers(&store, &image).unwrap();
    assert_eq!(dirs.last(), Some(&kept.join("diff")));
    let unpacked = hoist_sandbox::layer_key(&top.diff_id);
    assert!(!store.area_dir(Area::Snapshots).join(unpacked).exists());
}

/// Deletions (a whiteout, an opaque directory), links, a changed mode, mount points that must stay out: the layers a
/// kept directory gives are the ones the steps' tars were, digest for digest.
#[test]
fn sandbox_kept_and_tarred_steps_make_the_same_layers() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = BusyboxRootfs::new(dir.path().join("rootfs"))
        .applets(APPLETS)
        .file("data/old", "old\n")
        .file("etc/motd", "hello\n");
    let rootfs = rootfs.write().to_owned();
    let dockerfile = "FROM base:1\n\
RUN rm /etc/motd && rm -rf /data && mkdir /data && echo new > /data/new\n\
RUN --mount=type=cache,target=/var/cache/tool --mount=type=tmpfs,target=/scratch/tmp \
mkdir -p /opt/app && echo v1 > /opt/app/v && ln /opt/app/v /opt/app/hard && ln -s v /opt/app/link \
&& chmod 750 /opt/app && echo cached > /var/cache/tool/file\n\
RUN cat /data/new /opt/app/link > /seen\n";
    let epoch = 1_000_000_000;
    let mut layers = Vec::new();
    for (name, executor) in [
        ("tarred", &TarOnly as &dyn Executor),
        ("kept", &SandboxExecutor),
    ] {
        let work = dir.path().join(name);
        fs::create_dir_all(&work).unwrap();
        let store = import_rootfs(&work, &rootfs, "base:1", &["ENV PATH=/bin"]);
        let (plan, solution) = solve(&work, &store, executor, dockerfile, None);
        let expected_pending = if name == "kept" { 3 } else { 0 };
        assert_eq!(pending_records(&solution).len(), expected_pending, "{name}");
        let image =
            export_image_at(&store, &plan, &solution, ManifestFormat::Oci, Some(epoch)).unwrap();
        let seen = layer_files(&store, &image.layers.last().unwrap().digest);
        assert_eq!(
            seen,
            [("seen".to_owned(), "new\nv1\n".to_owned())],
            "{name}"
        );
        // (The base image's history keeps its import time, so compare the layers, not the image IDs.)
        let digests: Vec<_> = image.layers.iter().map(|layer| layer.digest).collect();
        layers.push(digests);
    }
    assert_eq!(layers[0], layers[1]);
}
