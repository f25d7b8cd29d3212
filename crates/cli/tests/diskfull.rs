//! A full disk: the store (and the build's temporary directory) on a 48 MiB tmpfs. A RUN step
//! that writes more than fits, a layer that does not fit in the store and an import that does
//! not fit each fail with "No space left on device" naming what was written, exit non-zero,
//! and leave a store that `hoist check` passes; after a prune frees the space, a build works.
//!
//! Mounts a tmpfs, so it needs root; runs in the nextest `sandbox` group (it starts
//! containers).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(at: &Path, size: &str) -> Self {
        fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Mounted(at.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

struct Harness {
    dir: tempfile::TempDir,
    _fs: Mounted,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let small = Mounted::tmpfs(&dir.path().join("small"), "48m");
        fs::create_dir(dir.path().join("small/tmp")).unwrap();
        fs::create_dir(dir.path().join("ctx")).unwrap();
        fs::write(dir.path().join("registries.conf"), "").unwrap();
        Harness { dir, _fs: small }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(self.path("small/store"))
            .args(args)
            .env("HOIST_REGISTRIES_CONF", self.path("registries.conf"))
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .env("TMPDIR", self.path("small/tmp"))
            .current_dir(self.path("ctx"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "hoist {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `args`, which must fail for lack of space; returns its stderr.
    fn full(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !output.status.success(),
            "hoist {args:?} succeeded on a full disk"
        );
        assert!(
            stderr.contains("No space left on device"),
            "hoist {args:?} does not say the disk is full:\n{stderr}"
        );
        // Whatever failed, the store is consistent.
        let check = self.ok(&["check"]);
        assert!(check.contains("store ok"), "{check}");
        stderr
    }

    fn build(&self, dockerfile: &str, tag: &str) -> Output {
        fs::write(self.path("ctx/Dockerfile"), dockerfile).unwrap();
        self.run(&["build", "--progress", "plain", "-t", tag, "."])
    }

    /// A busybox image `bb:1` (`PATH=/bin`), imported.
    fn import_busybox(&self) {
        let rootfs = self.path("rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "head", "dd", "cat"] {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        tar(&rootfs, &self.path("rootfs.tar"));
        let tar = self.path("rootfs.tar");
        self.ok(&[
            "import",
            tar.to_str().unwrap(),
            "-t",
            "bb:1",
            "--change",
            "ENV PATH=/bin",
        ]);
    }
}

fn tar(dir: &Path, out: &Path) {
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn diskfull_builds_and_imports_fail_clearly_and_leave_a_consistent_store() {
    let h = Harness::new();
    h.import_busybox();

    // 1. The RUN step itself writes 60 MiB into its 48 MiB file system: the step fails with
    //    its program's own message.
    let output = h.build(
        "FROM bb:1\nRUN dd if=/dev/urandom of=/big bs=1M count=60\n",
        "big:1",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(h.ok(&["check"]).contains("store ok"));

    // 2. 28 MB fit in the step's file system, but not again as a layer blob in the store.
    fs::write(
        h.path("ctx/Dockerfile"),
        "FROM bb:1\nRUN head -c 28000000 /dev/urandom > /big\n",
    )
    .unwrap();
    let stderr = h.full(&["build", "--progress", "plain", "-t", "big:2", "."]);
    assert!(
        stderr.contains("ingest-v1"),
        "the error does not name the file:\n{stderr}"
    );

    // 3. An import of 60 MB of random data.
    let random = h.path("random");
    fs::create_dir(&random).unwrap();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let data: Vec<u8> = (0..60_000_000 / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    fs::write(random.join("data"), &data).unwrap();
    tar(&random, &h.path("random.tar"));
    let tar = h.path("random.tar");
    h.full(&["import", tar.to_str().unwrap(), "-t", "random:1"]);

    // Nothing failed half-way is left tagged.
    let images = h.ok(&["images"]);
    assert!(
        !images.contains("big") && !images.contains("random"),
        "{images}"
    );

    // 4. After a prune, a build that fits works (and the base is still there).
    h.ok(&["prune"]);
    let output = h.build(
        "FROM bb:1\nRUN head -c 4000000 /dev/urandom > /small\n",
        "small:1",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(h.ok(&["check"]).contains("store ok"));
}
