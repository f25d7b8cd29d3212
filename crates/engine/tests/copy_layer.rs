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
    let message = hoist_engine::error_chain(&error);
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
    let message = hoist_engine::error_chain(&error);
    assert!(
        message.contains("cannot replace to directory /dest/a.txt with file"),
        "{message}"
    );
}

/// The bytes `setcap cap_net_raw+ep` writes (a version 2 capability: effective, permitted = CAP_NET_RAW).
const CAP_NET_RAW: &[u8] = &[
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Appends a directory, or a file holding `data`, with xattrs as PAX `SCHILY.xattr.*` records (as
/// `tar --xattrs` writes them).
fn append(
    builder: &mut tar::Builder<fs::File>,
    path: &str,
    data: Option<&[u8]>,
    xattrs: &[(&str, &[u8])],
) {
    let records: Vec<(String, &[u8])> = xattrs
        .iter()
        .map(|(name, value)| (format!("SCHILY.xattr.{name}"), *value))
        .collect();
    if !records.is_empty() {
        builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
    }
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    match data {
        Some(data) => {
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, path, data).unwrap();
        }
        None => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, path, &[][..]).unwrap();
        }
    }
}

/// An image whose one layer holds `/bin/capped` with a file capability, imported into `store` as `capped:1`.
fn import_capped_image(store: &Store, dir: &Path) {
    let tar_path = dir.join("capped.tar");
    let mut builder = tar::Builder::new(fs::File::create(&tar_path).unwrap());
    append(&mut builder, "bin/", None, &[]);
    append(
        &mut builder,
        "bin/capped",
        Some(b"#!/bin/sh\n"),
        &[("security.capability", CAP_NET_RAW)],
    );
    builder.into_inner().unwrap().sync_all().unwrap();
    let options = hoist_archive::ImportOptions {
        references: vec!["capped:1".parse().unwrap()],
        ..hoist_archive::ImportOptions::default()
    };
    hoist_archive::import(store, fs::File::open(&tar_path).unwrap(), &options).unwrap();
}

/// The PAX `SCHILY.xattr.*` records of each entry of a layer blob, by path.
fn layer_xattrs(
    store: &Store,
    layer: &hoist_engine::LayerRef,
) -> std::collections::BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let blob = hoist_layer::Decompressor::new(store.open_blob(&layer.digest).unwrap()).unwrap();
    let mut archive = tar::Archive::new(blob);
    let mut found = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut xattrs = Vec::new();
        if let Some(records) = entry.pax_extensions().unwrap() {
            for record in records {
                let record = record.unwrap();
                if let Some(name) = record.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((name.to_owned(), record.value_bytes().to_vec()));
                }
            }
        }
        found.insert(path, xattrs);
    }
    found
}

/// `lgetxattr`, or `None` when the file has no such attribute.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut value = vec![0u8; 256];
    let len = rustix::fs::lgetxattr(path, name, &mut value).ok()?;
    value.truncate(len);
    Some(value)
}

/// COPY writes its sources' xattrs into the layer tar (PAX records, as RUN's layers carry them) and so into the
/// unpacked image: a context file's `user.*` attribute, and a file capability through `COPY --from`, `--chown`
/// or not; overlayfs's own attributes and a context file's capability are left out (BuildKit's transfer of the
/// context drops it). ADD keeps an archive's xattrs, but not an SELinux label nor overlayfs's.
#[test]
fn copy_writes_xattrs_into_the_layer_and_the_unpacked_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    import_capped_image(&store, dir.path());
    let context = dir.path().join("ctx");
    fs::create_dir_all(context.join("tree/sub")).unwrap();
    fs::write(context.join("f"), "hello").unwrap();
    fs::write(context.join("tree/sub/g"), "g").unwrap();
    let set = |path: &Path, name: &str, value: &[u8]| {
        rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
            .unwrap_or_else(|e| panic!("set {name} on {}: {e}", path.display()));
    };
    set(&context.join("f"), "user.test", b"hello");
    set(
        &context.join("f"),
        "trusted.overlay.origin",
        b"not the file's",
    );
    set(&context.join("f"), "security.capability", CAP_NET_RAW);
    set(&context.join("tree/sub"), "user.dir", b"sub");
    set(&context.join("tree/sub"), "trusted.overlay.opaque", b"y");
    let mut archive = tar::Builder::new(fs::File::create(context.join("arch.tar")).unwrap());
    append(&mut archive, "d/", None, &[("user.dir", b"d")]);
    append(
        &mut archive,
        "d/u",
        Some(b"u"),
        &[
            ("user.z", b"zz"),
            ("security.capability", CAP_NET_RAW),
            ("security.selinux", b"system_u:object_r:bin_t:s0"),
            ("trusted.overlay.opaque", b"y"),
        ],
    );
    // A hard link sorting before its file: the layer writes it in full, with the file's xattrs.
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Link);
    link.set_mode(0o755);
    link.set_uid(0);
    link.set_gid(0);
    link.set_mtime(1_700_000_000);
    link.set_size(0);
    archive.append_link(&mut link, "d/a", "d/u").unwrap();
    archive.into_inner().unwrap().sync_all().unwrap();

    let dockerfile = "FROM scratch\n\
        COPY f tree /ctx/\n\
        COPY --from=capped:1 /bin/capped /out/capped\n\
        COPY --from=capped:1 --chown=1000:1000 /bin/capped /out/chowned\n\
        ADD arch.tar /add/\n";
    let (plan, solution) =
        solve(&store, dockerfile, &context, &dir.path().join("scratch")).unwrap();
    let image = export_image(&store, &plan, &solution, ManifestFormat::Oci).unwrap();
    assert_eq!(image.layers.len(), 4);

    let ctx = layer_xattrs(&store, &image.layers[0]);
    assert_eq!(ctx["ctx/f"], [("user.test".to_owned(), b"hello".to_vec())]);
    assert_eq!(ctx["ctx/sub/"], [("user.dir".to_owned(), b"sub".to_vec())]);
    assert_eq!(ctx["ctx/sub/g"], []);
    for (layer, path) in image.layers[1..3].iter().zip(["out/capped", "out/chowned"]) {
        assert_eq!(
            layer_xattrs(&store, layer)[path],
            [("security.capability".to_owned(), CAP_NET_RAW.to_vec())],
            "{path}"
        );
    }

    let out = dir.path().join("out");
    export_local(&store, &image.layers, &out).unwrap();
    assert_eq!(xattr(&out.join("ctx/f"), "user.test").unwrap(), b"hello");
    assert_eq!(xattr(&out.join("ctx/f"), "security.capability"), None);
    assert_eq!(xattr(&out.join("ctx/f"), "trusted.overlay.origin"), None);
    assert_eq!(xattr(&out.join("ctx/sub"), "user.dir").unwrap(), b"sub");
    assert_eq!(xattr(&out.join("ctx/sub"), "trusted.overlay.opaque"), None);
    for name in ["out/capped", "out/chowned"] {
        assert_eq!(
            xattr(&out.join(name), "security.capability").unwrap(),
            CAP_NET_RAW,
            "{name}"
        );
    }
    assert_eq!(fs::metadata(out.join("out/chowned")).unwrap().uid(), 1000);

    let add = layer_xattrs(&store, &image.layers[3]);
    assert_eq!(add["add/d/"], [("user.dir".to_owned(), b"d".to_vec())]);
    assert_eq!(
        add["add/d/a"],
        [
            ("security.capability".to_owned(), CAP_NET_RAW.to_vec()),
            ("user.z".to_owned(), b"zz".to_vec())
        ]
    );
    assert_eq!(xattr(&out.join("add/d"), "user.dir").unwrap(), b"d");
    assert_eq!(xattr(&out.join("add/d/u"), "user.z").unwrap(), b"zz");
    assert_eq!(
        fs::metadata(out.join("add/d/u")).unwrap().ino(),
        fs::metadata(out.join("add/d/a")).unwrap().ino()
    );
    assert_eq!(
        xattr(&out.join("add/d/u"), "security.capability").unwrap(),
        CAP_NET_RAW
    );
}
