//! `RUN --mount=type=secret` without `target=` in the real sandbox (root, namespaces): BuildKit's default file
//! `/run/secrets/<id>`, named after `source=` when given, and no file for an `env=`-only secret.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use hoist_engine::{Entitlements, SshAgents};
use hoist_oci::Store;
use hoist_testkit::BusyboxRootfs;

#[path = "support/sandboxed.rs"]
mod sandboxed;
use sandboxed::{build_to_dir, import_rootfs};

const APPLETS: &[&str] = &["sh", "cat", "stat", "test", "echo"];

/// A store with `bb:1`: busybox and a few applets, `PATH=/bin`.
fn store(dir: &Path) -> Store {
    let rootfs = BusyboxRootfs::new(dir.join("rootfs")).applets(APPLETS);
    import_rootfs(dir, rootfs.write(), "bb:1", &["ENV PATH=/bin"])
}

#[test]
fn secret_mounts_without_target_are_files_in_run_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let dockerfile = "FROM bb:1\n\
        RUN --mount=type=secret,id=token cat /run/secrets/token > /seen && stat -c %a /run/secrets/token > /mode\n\
        RUN --mount=type=secret,source=conf/npmrc cat /run/secrets/npmrc > /seen-npmrc\n\
        RUN --mount=type=secret,id=token,env=TOKEN echo \"$TOKEN\" > /seen-env && test ! -e /run/secrets/token && echo none > /no-file\n";
    let secrets = BTreeMap::from([
        ("token".to_owned(), b"s3cr3t".to_vec()),
        ("conf/npmrc".to_owned(), b"registry=local".to_vec()),
    ]);
    let out = build_to_dir(
        dir.path(),
        &store,
        dockerfile,
        &secrets,
        &SshAgents::none(),
        Entitlements::default(),
    )
    .unwrap_or_else(|e| panic!("build failed: {e:?}"));
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
