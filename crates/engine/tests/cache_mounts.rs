//! `RUN --mount=type=cache` isolation through the solver and the real sandbox (root, namespaces,
//! overlayfs): two cache ids are two directories. A step mounting one cannot see or write the
//! other, whatever path it tries, and neither reaches the image. Runs in the nextest `sandbox`
//! group.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hoist_engine::{Entitlements, SshAgents};
use hoist_oci::Store;
use hoist_testkit::BusyboxRootfs;

#[path = "support/sandboxed.rs"]
mod sandboxed;
use sandboxed::{build_to_dir, import_rootfs};

const APPLETS: &[&str] = &["sh", "cat", "echo", "ls", "find", "test", "mkdir", "ln"];

/// A store with `cache:test`: busybox and a few applets.
fn store(dir: &Path) -> Store {
    let rootfs = BusyboxRootfs::new(dir.join("rootfs")).applets(APPLETS);
    import_rootfs(dir, rootfs.write(), "cache:test", &[])
}

/// Builds `dockerfile` and returns the final file system.
fn build(dir: &Path, store: &Store, dockerfile: &str) -> PathBuf {
    build_to_dir(
        dir,
        store,
        dockerfile,
        &BTreeMap::new(),
        &SshAgents::none(),
        Entitlements::default(),
    )
    .unwrap()
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
