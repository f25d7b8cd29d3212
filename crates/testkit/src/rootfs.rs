//! Root file systems for test images: Debian's static busybox, its applet links and a few files, packed by tar(1).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's busybox-static installs the binary every test image runs.
const BUSYBOX: &str = "/bin/busybox";

/// A busybox root file system to write under a directory and pack for `hoist import`.
///
/// It always holds `bin/busybox` (a copy of `/bin/busybox`); [`applets`](Self::applets) adds `bin/<applet>`
/// symlinks to it, and [`dirs`](Self::dirs), [`file`](Self::file), [`passwd`](Self::passwd) and
/// [`group`](Self::group) add the rest. Nothing is set in the image config: that is `hoist import --change`'s job
/// (`ENV PATH=/bin` for the applets to be found by name).
///
/// ```no_run
/// # let dir = std::path::Path::new("/tmp/t");
/// let tar = hoist_testkit::BusyboxRootfs::new(dir.join("rootfs"))
///     .applets(&["sh", "cat"])
///     .dirs(&["tmp"])
///     .tar_flags(&["--owner=0", "--group=0", "--numeric-owner"])
///     .tar();
/// assert_eq!(tar, dir.join("rootfs.tar"));
/// ```
#[derive(Debug, Clone)]
pub struct BusyboxRootfs {
    dir: PathBuf,
    applets: Vec<String>,
    dirs: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
    tar_flags: Vec<String>,
}

impl BusyboxRootfs {
    /// A root file system to be written at `dir` (created when written; its parent must exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            applets: Vec::new(),
            dirs: Vec::new(),
            files: Vec::new(),
            tar_flags: Vec::new(),
        }
    }

    /// Adds `bin/<applet>` → `busybox` symlinks.
    pub fn applets(mut self, applets: &[&str]) -> Self {
        self.applets.extend(applets.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Adds empty directories (relative paths, parents created too).
    pub fn dirs(mut self, dirs: &[&str]) -> Self {
        self.dirs.extend(dirs.iter().map(|d| (*d).to_owned()));
        self
    }

    /// Adds a file at `path` (relative; parents created) holding `contents`.
    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        self.files
            .push((path.to_owned(), contents.as_ref().to_vec()));
        self
    }

    /// Adds `etc/passwd` holding `passwd` (users for `USER`, `-u` and `id`).
    pub fn passwd(self, passwd: &str) -> Self {
        self.file("etc/passwd", passwd)
    }

    /// Adds `etc/group` holding `group`.
    pub fn group(self, group: &str) -> Self {
        self.file("etc/group", group)
    }

    /// Flags for tar(1) before `-C <dir> -cf <tar> .`, such as `--owner=0 --group=0 --numeric-owner` (owners as
    /// numbers only) or `--mode=u+rwX,go+rX`.
    pub fn tar_flags(mut self, flags: &[&str]) -> Self {
        self.tar_flags.extend(flags.iter().map(|f| (*f).to_owned()));
        self
    }

    /// The directory the root file system is written at.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the tree at [`dir`](Self::dir); returns that directory.
    pub fn write(&self) -> &Path {
        let bin = self.dir.join("bin");
        create_dir_all(&bin);
        fs::copy(BUSYBOX, bin.join("busybox")).unwrap_or_else(|e| {
            panic!("copying {BUSYBOX} (Debian's busybox-static) into the test rootfs: {e}")
        });
        for applet in &self.applets {
            let link = bin.join(applet);
            symlink("busybox", &link)
                .unwrap_or_else(|e| panic!("symlinking {} → busybox: {e}", link.display()));
        }
        for dir in &self.dirs {
            create_dir_all(&self.dir.join(dir));
        }
        for (path, contents) in &self.files {
            let path = self.dir.join(path);
            if let Some(parent) = path.parent() {
                create_dir_all(parent);
            }
            fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        &self.dir
    }

    /// Writes the tree and packs it with tar(1) into `<dir>.tar` beside it; returns the archive's path.
    pub fn tar(self) -> PathBuf {
        self.write();
        let tar = self.dir.with_extension("tar");
        let flags: Vec<&str> = self.tar_flags.iter().map(String::as_str).collect();
        tar_dir(&self.dir, &tar, &flags);
        tar
    }
}

/// Packs the contents of `dir` into the archive `tar` with tar(1): `tar FLAGS -C dir -cf tar .` (add `-z` to the
/// flags for gzip). Panics when tar(1) fails.
pub fn tar_dir(dir: &Path, tar: &Path, flags: &[&str]) {
    let status = Command::new("tar")
        .args(flags)
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .status()
        .unwrap_or_else(|e| panic!("running tar(1): {e}"));
    assert!(
        status.success(),
        "tar {flags:?} -C {} -cf {} . failed: {status}",
        dir.display(),
        tar.display()
    );
}

fn create_dir_all(dir: &Path) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
}
