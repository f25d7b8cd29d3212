//! The fixtures themselves, against real busybox, tar(1) and sockets.

use std::fs;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use hoist_testkit::{BusyboxRootfs, HoistCmd, error_chain, tar_dir, wait_for_port, wait_until};

#[test]
fn busybox_rootfs_holds_busybox_its_applets_and_files_and_tar_packs_them() {
    let dir = tempfile::tempdir().unwrap();
    let tar = BusyboxRootfs::new(dir.path().join("rootfs"))
        .applets(&["sh", "echo"])
        .dirs(&["tmp"])
        .passwd("root:x:0:0:root:/root:/bin/sh\n")
        .file("www/index.html", "hi\n")
        .tar_flags(&["--owner=0", "--group=0", "--numeric-owner"])
        .tar();
    assert_eq!(tar, dir.path().join("rootfs.tar"));
    let rootfs = dir.path().join("rootfs");
    assert_eq!(
        fs::read(rootfs.join("bin/busybox")).unwrap(),
        fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    let listing = Command::new("tar").arg("-tvf").arg(&tar).output().unwrap();
    assert!(listing.status.success());
    let listing = String::from_utf8(listing.stdout).unwrap();
    for entry in [
        "./bin/busybox",
        "./bin/echo -> busybox",
        "./tmp/",
        "./www/index.html",
        "./etc/passwd",
    ] {
        assert!(listing.contains(entry), "{entry} missing from\n{listing}");
    }
    // --numeric-owner: owners as numbers, no names.
    assert!(
        listing.lines().all(|line| line.contains(" 0/0 ")),
        "{listing}"
    );

    // The linked applet runs: the busybox it points at is whole.
    let echoed = Command::new(rootfs.join("bin/echo"))
        .arg("works")
        .output()
        .unwrap();
    assert_eq!(echoed.stdout, b"works\n");
}

#[test]
fn tar_dir_with_z_writes_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("f"), "x").unwrap();
    let archive = dir.path().join("tree.tar.gz");
    tar_dir(&tree, &archive, &["-z"]);
    assert_eq!(&fs::read(&archive).unwrap()[..2], [0x1f, 0x8b]);
}

#[test]
fn hoist_cmd_passes_root_and_environment_and_run_reports_the_outcome() {
    // `sh -c` stands in for the program to show exactly what it is given; hoist's own use is in its tests.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("show");
    fs::write(
        &script,
        "#!/bin/sh\necho \"$@|$TMPDIR|$HOIST_ROOT|$PWD\"\necho err >&2\nexit 3\n",
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = HoistCmd::new(&script)
        .isolated(dir.path())
        .current_dir(dir.path())
        .run(&["images"]);
    let tmp = dir.path().join("tmp");
    let root = dir.path().join("store");
    assert_eq!(
        run.stdout,
        format!(
            "--root {} images|{}||{}\n",
            root.display(),
            tmp.display(),
            dir.path().display()
        )
    );
    assert_eq!(run.stderr, "err\n");
    assert_eq!(run.code(), Some(3));
    assert!(dir.path().join("registries.conf").is_file());
    assert_eq!(HoistCmd::new(&script).fails(&[]), "err\n");

    let by_env = HoistCmd::new(&script)
        .root_env("/x")
        .env_remove("TMPDIR")
        .run(&[]);
    assert!(by_env.stdout.starts_with("||/x|"), "{}", by_env.stdout);
}

#[derive(Debug, thiserror::Error)]
#[error("outer")]
struct Outer(#[source] std::io::Error);

#[test]
fn error_chain_joins_every_source() {
    let error = Outer(std::io::Error::other("inner"));
    assert_eq!(error_chain(&error), "outer: inner");
}

#[test]
fn wait_for_port_returns_once_something_listens() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    wait_for_port(port, Duration::from_secs(1));
}

#[test]
#[should_panic(expected = "timed out waiting for never")]
fn wait_until_fails_naming_what_never_happened() {
    wait_until(0, "never", || false);
}
