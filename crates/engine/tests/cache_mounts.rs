//! `RUN --mount=type=cache` isolation through the solver and the real sandbox (root, namespaces,
//! overlayfs): two cache ids are two directories. A step mounting one cannot see or write the
//! other, whatever path it tries, and neither reaches the image. Runs in the nextest `sandbox`
//! group.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hoist_archive::{ImportOptions, import};
use hoist_engine::{
    Entitlements, SandboxExecutor, Silent, SolveRequest, Solver, SshAgents, StoreResolver,
    export_image, export_local,
};
use hoist_oci::{ManifestFormat, Store};
use hoist_plan::{PlanRequest, plan};

const APPLETS: &[&str] = &["sh", "cat", "echo", "ls", "find", "test", "mkdir", "ln"];

/// A store with `cache:test`: busybox and a few applets.
fn store(dir: &Path) -> Store {
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let tar_path = dir.join("rootfs.tar");
    let mut builder = tar::Builder::new(File::create(&tar_path).unwrap());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", &rootfs).unwrap();
    builder.into_inner().unwrap().flush().unwrap();
    let store = Store::open(dir.join("store")).unwrap();
    let options = ImportOptions {
        references: vec!["cache:test".parse().unwrap()],
        ..ImportOptions::default()
    };
    import(&store, File::open(&tar_path).unwrap(), &options).unwrap();
    store
}

/// Builds `dockerfile` and returns the final file system.
fn build(dir: &Path, store: &Store, dockerfile: &str) -> PathBuf {
    let resolver = StoreResolver {
        store,
        puller: None,
    };
    let file = hoist_dockerfile::parse(dockerfile).unwrap();
    let plan = plan(&PlanRequest::new(file), &resolver).unwrap();
    let context = dir.join("ctx");
    fs::create_dir_all(&context).unwrap();
    let solver = Solver {
        store,
        executor: &SandboxExecutor,
        reporter: &Silent,
        parallelism: 1,
        scratch: dir.join("scratch"),
    };
    let request = SolveRequest {
        plan: &plan,
        dockerfile,
        context_dir: &context,
        ignore_patterns: &[],
        secrets: &Default::default(),
        named_contexts: &Default::default(),
        ssh: &SshAgents::none(),
        allow: Entitlements::default(),
    };
    let solution = solver.solve(&request).unwrap();
    let image = export_image(store, &plan, &solution, ManifestFormat::Oci).unwrap();
    let out = tempfile::tempdir_in(dir).unwrap().keep();
    export_local(store, &image.layers, &out).unwrap();
    out
}

#[test]
fn a_step_cannot_reach_the_cache_mount_of_another_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // Step 1 fills cache `a`; step 2 mounts cache `b` at the same target and tries to reach
    // `a` by name, by `..` and by a symlink, writing where it can; step 3 looks at `a` again.
    // Both caches are also mounted at once, at two targets, to check they stay apart.
    let dockerfile = "FROM cache:test\n\
RUN --mount=type=cache,id=a,target=/cache echo from-a > /cache/a-file && echo made > /made-a\n\
RUN --mount=type=cache,id=b,target=/cache ls -a /cache > /b-sees; \
    find / -xdev -name a-file > /b-finds 2>/dev/null; \
    echo from-b > /cache/b-file; echo overwrite > /cache/../cache/a-file; \
    ln -s /cache/a-file /cache/link; true\n\
RUN --mount=type=cache,id=a,target=/cache ls -a /cache > /a-sees; cat /cache/a-file > /a-content\n\
RUN --mount=type=cache,id=a,target=/one --mount=type=cache,id=b,target=/two \
    ls /one > /one-sees; ls /two > /two-sees; cat /two/a-file > /two-a-file 2>&1; true\n";
    let out = build(dir.path(), &store, dockerfile);
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    // Step 1 ran (so the checks below can fail).
    assert_eq!(read("made-a"), "made\n");
    // Cache `b` started empty and step 2 did not find `a`'s file anywhere.
    assert_eq!(read("b-sees"), ".\n..\n");
    assert_eq!(read("b-finds"), "");
    // Cache `a` holds only its own file, unchanged by step 2's writes into `b`.
    assert_eq!(read("a-sees"), ".\n..\na-file\n");
    assert_eq!(read("a-content"), "from-a\n");
    // Mounted together, each shows its own content.
    assert_eq!(read("one-sees"), "a-file\n");
    assert_eq!(read("two-sees"), "a-file\nb-file\nlink\n");
    assert_eq!(read("two-a-file"), "overwrite\n");
    // Caches are not part of the image.
    assert!(!out.join("cache/a-file").exists());
    assert!(!out.join("cache/b-file").exists());
}
