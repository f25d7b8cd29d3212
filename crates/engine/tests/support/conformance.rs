//! What the engine conformance suite (`crates/engine/tests/conformance.rs`) and the BuildKit parity test
//! (`crates/cli/tests/buildkit_parity.rs`) share: the cases under `crates/engine/tests/conformance/`, the busybox
//! base image they build on, and the filesystem listing both compare.
//!
//! A case is a directory with a `Dockerfile`, an optional `context/` and an `expected.json`:
//!
//! ```json
//! {
//!   "about": "what BuildKit behaviour this pins down",
//!   "request": { "target": "build", "build_args": { "V": "cli" }, "xattrs": { "f": { "user.a": "text" } } },
//!   "buildkit": "why dockerd 20.10's BuildKit cannot build it (absent: the parity test builds it)",
//!   "error": "text the build error must contain (then nothing else is checked)",
//!   "config": { "Env": ["…"], "Cmd": ["sh"] },
//!   "history": [["RUN /bin/sh -c … # buildkit", false]],
//!   "files": { "/app/a": "file 0644 0:0 \"hello\\n\"" },
//!   "removed": ["/path/from/the/base"],
//!   "same": [["/r1", "/r2"]]
//! }
//! ```
//!
//! `history` lists the entries after the base image's; `files` every path whose listing differs from the base
//! image's (new or changed), `removed` the base paths that are gone. A listing ending in ` *` matches any content.
//! `request.xattrs` are extended attributes `setfattr` gives context paths before the build (values as it takes
//! them: text, or `0x` and hex); a listing ends with a path's xattrs (` xattr:user.a="text"`).
#![allow(dead_code, unreachable_pub)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

/// The base image every case builds on (`FROM`, `COPY --from=<image>`).
pub const BASE_IMAGE: &str = "hoist-conformance-base:1";

/// The base's file with a capability (`security.capability`).
pub const CAPPED: &str = "/usr/local/bin/capped";

/// The `--change`s the base image is imported with.
pub const BASE_CHANGES: &[&str] = &[
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    r#"CMD ["sh"]"#,
];

/// A second image on the same root filesystem, with a config to inherit: ENV, WORKDIR, USER, LABEL, ENTRYPOINT,
/// CMD and an ONBUILD trigger (what `FROM <image>` does with an image's config, as opposed to a stage's).
pub const APP_IMAGE: &str = "hoist-conformance-app:1";

/// The `--change`s the app image is imported with.
pub const APP_CHANGES: &[&str] = &[
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV APP_HOME=/home/app",
    "WORKDIR /home/app",
    "USER app",
    "LABEL from=app-image",
    r#"ENTRYPOINT ["/bin/sh", "-c"]"#,
    r#"CMD ["echo app"]"#,
    "ONBUILD RUN echo \"trigger in $(pwd) as $(id -u)\" > onbuild.txt",
];

/// Every image the cases may name, with its `--change`s.
pub const IMAGES: &[(&str, &[&str])] = &[(BASE_IMAGE, BASE_CHANGES), (APP_IMAGE, APP_CHANGES)];

/// `/etc/passwd` of the base: root, `app` (1000), `dev` (1001, primary group `staff`) and `nobody`.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
app:x:1000:1000:app:/home/app:/bin/sh\n\
dev:x:1001:50:dev:/home/dev:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
/// `/etc/group` of the base: `staff` (50) has `app` as a member.
const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n";

/// The directory holding the cases.
pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("engine")
        .join("tests")
        .join("conformance")
}

/// What to build.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// Extended attributes of context paths: path → name → value (text, or `0x` and hex).
    pub xattrs: BTreeMap<String, BTreeMap<String, String>>,
}

/// A case's `expected.json` (see the module docs).
#[derive(Debug, Default, Clone)]
pub struct Expected {
    /// The behaviour under test.
    pub about: String,
    pub request: Request,
    /// Why BuildKit 0.8 (dockerd 20.10) cannot build this case; `None`: the parity test builds it.
    pub buildkit: Option<String>,
    /// The build must fail with an error containing this text.
    pub error: Option<String>,
    /// The image config (Docker's field names), exactly.
    pub config: Option<Value>,
    /// `[created_by, empty_layer]` of each history entry after the base image's.
    pub history: Option<Vec<(String, bool)>>,
    /// The listing of each path that is new or differs from the base image.
    pub files: Option<BTreeMap<String, String>>,
    /// Base image paths that are gone.
    pub removed: Vec<String>,
    /// Groups of files whose contents must be equal (for contents a case cannot predict).
    pub same: Vec<Vec<String>>,
}

const KEYS: &[&str] = &[
    "about", "request", "buildkit", "error", "config", "history", "files", "removed", "same",
];

fn string_map(value: &Value, what: &str) -> Result<BTreeMap<String, String>, String> {
    let object = value
        .as_object()
        .ok_or(format!("{what} is not an object"))?;
    object
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => Err(format!("{what}.{k} is not a string")),
        })
        .collect()
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, String> {
    value
        .as_array()
        .ok_or(format!("{what} is not an array"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or(format!("{what} holds a non-string"))
        })
        .collect()
}

impl Expected {
    /// Reads `expected.json`'s text.
    pub fn parse(text: &str) -> Result<Expected, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let object = value.as_object().ok_or("not a JSON object")?;
        if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("unknown key {key:?}"));
        }
        let text_of = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut expected = Expected {
            about: text_of("about").ok_or("no \"about\"")?,
            buildkit: text_of("buildkit"),
            error: text_of("error"),
            config: object.get("config").cloned(),
            ..Expected::default()
        };
        if let Some(request) = object.get("request") {
            expected.request.target = request
                .get("target")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(args) = request.get("build_args") {
                expected.request.build_args = string_map(args, "request.build_args")?;
            }
            if let Some(paths) = request.get("xattrs") {
                let paths = paths.as_object().ok_or("request.xattrs is not an object")?;
                for (path, names) in paths {
                    let names = string_map(names, &format!("request.xattrs.{path}"))?;
                    expected.request.xattrs.insert(path.clone(), names);
                }
            }
        }
        if let Some(history) = object.get("history") {
            let entries = history.as_array().ok_or("history is not an array")?;
            let mut parsed = Vec::new();
            for entry in entries {
                match (
                    entry.get(0).and_then(Value::as_str),
                    entry.get(1).and_then(Value::as_bool),
                ) {
                    (Some(created_by), Some(empty)) => parsed.push((created_by.to_owned(), empty)),
                    _ => return Err(format!("history entry {entry} is not [text, bool]")),
                }
            }
            expected.history = Some(parsed);
        }
        if let Some(files) = object.get("files") {
            expected.files = Some(string_map(files, "files")?);
        }
        if let Some(removed) = object.get("removed") {
            expected.removed = strings(removed, "removed")?;
        }
        if let Some(same) = object.get("same") {
            let groups = same.as_array().ok_or("same is not an array")?;
            expected.same = groups
                .iter()
                .map(|g| strings(g, "same[]"))
                .collect::<Result<_, _>>()?;
        }
        Ok(expected)
    }

    /// `expected.json`'s text for these expectations.
    pub fn to_json(&self) -> String {
        let mut object = Map::new();
        object.insert("about".into(), json!(self.about));
        let mut request = Map::new();
        if let Some(target) = &self.request.target {
            request.insert("target".into(), json!(target));
        }
        if !self.request.build_args.is_empty() {
            request.insert("build_args".into(), json!(self.request.build_args));
        }
        if !self.request.xattrs.is_empty() {
            request.insert("xattrs".into(), json!(self.request.xattrs));
        }
        if !request.is_empty() {
            object.insert("request".into(), Value::Object(request));
        }
        if let Some(buildkit) = &self.buildkit {
            object.insert("buildkit".into(), json!(buildkit));
        }
        if let Some(error) = &self.error {
            object.insert("error".into(), json!(error));
        }
        if let Some(config) = &self.config {
            object.insert("config".into(), config.clone());
        }
        if let Some(history) = &self.history {
            object.insert("history".into(), json!(history));
        }
        if let Some(files) = &self.files {
            object.insert("files".into(), json!(files));
        }
        if !self.removed.is_empty() {
            object.insert("removed".into(), json!(self.removed));
        }
        if !self.same.is_empty() {
            object.insert("same".into(), json!(self.same));
        }
        serde_json::to_string_pretty(&Value::Object(object)).expect("JSON values serialize") + "\n"
    }
}

/// One case: its name, directory and expectations.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub expected: Expected,
}

impl Case {
    pub fn dockerfile(&self) -> PathBuf {
        self.dir.join("Dockerfile")
    }

    /// Copies the case's `context/` (or nothing) into `dest`, with git's two file modes made exact (0644, or 0755
    /// for executables; directories 0755) whatever the checkout's umask was, and the xattrs the request gives.
    pub fn materialize_context(&self, dest: &Path) {
        fs::create_dir_all(dest).unwrap();
        let source = self.dir.join("context");
        if source.is_dir() {
            copy_tree(&source, dest);
        }
        for (path, names) in &self.expected.request.xattrs {
            for (name, value) in names {
                set_xattr(&dest.join(path), name, value);
            }
        }
    }
}

/// `setfattr -h -n NAME -v VALUE PATH` (Debian's `attr`, installed by `.ci/services.sh`).
fn set_xattr(path: &Path, name: &str, value: &str) {
    let status = Command::new("setfattr")
        .args(["-h", "-n", name, "-v", value])
        .arg(path)
        .status()
        .expect("setfattr (Debian's attr package, see .ci/services.sh)");
    assert!(status.success(), "setfattr -n {name} {}", path.display());
}

fn copy_tree(from: &Path, to: &Path) {
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    let mut entries: Vec<_> = fs::read_dir(from).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let target = to.join(entry.file_name());
        let meta = entry.path().symlink_metadata().unwrap();
        if meta.is_dir() {
            fs::create_dir(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
            let mode = if meta.mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// Every case, in name order (`HOIST_CONFORMANCE_CASE=a,b` keeps only those).
pub fn load_cases() -> Vec<Case> {
    let only: Option<Vec<String>> = std::env::var("HOIST_CONFORMANCE_CASE")
        .ok()
        .map(|v| v.split(',').map(str::to_owned).collect());
    let mut cases = Vec::new();
    for entry in fs::read_dir(cases_dir()).expect("read the conformance cases") {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let text = fs::read_to_string(dir.join("expected.json"))
            .unwrap_or_else(|e| panic!("{name}/expected.json: {e}"));
        let expected =
            Expected::parse(&text).unwrap_or_else(|e| panic!("{name}/expected.json: {e}"));
        cases.push(Case {
            name,
            dir,
            expected,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Writes the base image's root filesystem as a tar file: Debian's static busybox with every applet linked into
/// `/bin`, `/etc/passwd` and `/etc/group` with a few users, `/tmp` (1777), `/root`, and a script with a file
/// capability (`setcap cap_net_raw+ep`, the `security.capability` xattr) at [`CAPPED`].
pub fn base_rootfs_tar(work: &Path) -> PathBuf {
    let root = work.join("base-rootfs");
    for dir in ["bin", "etc", "tmp", "root", "home/app", "usr/local/bin"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    let capped = root.join(CAPPED.trim_start_matches('/'));
    fs::write(&capped, "#!/bin/sh\necho capped\n").unwrap();
    fs::set_permissions(&capped, fs::Permissions::from_mode(0o755)).unwrap();
    let status = Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(&capped)
        .status()
        .expect("setcap (Debian's libcap2-bin, see .ci/services.sh)");
    assert!(status.success(), "setcap {}", capped.display());
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(root.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("Debian's busybox-static at /bin/busybox");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    assert!(list.status.success());
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    fs::write(root.join("etc/group"), GROUP).unwrap();
    std::os::unix::fs::chown(root.join("home/app"), Some(1000), Some(1000)).unwrap();
    let tar = work.join("base-rootfs.tar");
    let status = Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--numeric-owner"])
        .args([
            "--xattrs",
            "--xattrs-include=security.capability",
            "--pax-option=delete=atime,delete=ctime",
            "-C",
        ])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar of the base rootfs");
    tar
}

/// One line per path of a root filesystem: `dir 0755 0:0`, `file 0644 0:0 "text"` (short UTF-8 content) or
/// `file 0755 0:0 sha256:<16 hex> <size>B`, `symlink 0:0 -> target`, `fifo 0644 0:0`, …, then its xattrs (those a
/// layer carries, see [`hoist_layer::read_xattrs`]) as ` xattr:<name>="text"` or ` xattr:<name>=0x<hex>`; a file
/// with several links ends in ` hardlink=<first path of its inode>`. Paths are absolute, the root itself is left
/// out.
pub fn list_tree(root: &Path) -> BTreeMap<String, String> {
    let mut raw = BTreeMap::new();
    walk(root, root, &mut raw);
    let mut first_of_inode: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut listing = BTreeMap::new();
    for (path, (mut line, meta)) in raw {
        if meta.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            match first_of_inode.get(&key) {
                Some(first) => line.push_str(&format!(" hardlink={first}")),
                None => {
                    first_of_inode.insert(key, path.clone());
                }
            }
        }
        listing.insert(path, line);
    }
    listing
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (String, fs::Metadata)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = path.symlink_metadata().unwrap();
        let rel = format!("/{}", path.strip_prefix(root).unwrap().display());
        let owner = format!("{}:{}", meta.uid(), meta.gid());
        let mode = meta.mode() & 0o7777;
        let kind = meta.file_type();
        let line = if kind.is_dir() {
            format!("dir {mode:04o} {owner}")
        } else if kind.is_symlink() {
            format!(
                "symlink {owner} -> {}",
                fs::read_link(&path).unwrap().display()
            )
        } else if kind.is_file() {
            format!("file {mode:04o} {owner} {}", describe_content(&path))
        } else if kind.is_fifo() {
            format!("fifo {mode:04o} {owner}")
        } else if kind.is_char_device() {
            format!("char {mode:04o} {owner} {:x}", meta.rdev())
        } else if kind.is_block_device() {
            format!("block {mode:04o} {owner} {:x}", meta.rdev())
        } else {
            format!("socket {mode:04o} {owner}")
        };
        let line = line + &describe_xattrs(&path);
        if kind.is_dir() {
            walk(root, &path, out);
        }
        out.insert(rel, (line, meta));
    }
}

/// ` xattr:<name>=<value>` for each xattr of `path` (not following a symlink): printable ASCII quoted, anything
/// else in hex, as `getfattr` shows them.
fn describe_xattrs(path: &Path) -> String {
    let xattrs = hoist_layer::read_xattrs(path)
        .unwrap_or_else(|e| panic!("read the xattrs of {}: {e}", path.display()));
    let mut text = String::new();
    for (name, value) in xattrs {
        let value = if !value.is_empty() && value.iter().all(|b| (0x20..0x7f).contains(b)) {
            serde_json::to_string(&String::from_utf8_lossy(&value)).unwrap()
        } else {
            format!("0x{}", hex(&value))
        };
        text.push_str(&format!(
            " xattr:{}={value}",
            String::from_utf8_lossy(&name)
        ));
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_content(path: &Path) -> String {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    match std::str::from_utf8(&bytes) {
        Ok(text) if bytes.len() <= 120 => serde_json::to_string(text).unwrap(),
        _ => {
            let hash = hoist_layer::Digest::sha256(&bytes).encoded();
            format!("sha256:{} {}B", &hash[..16], bytes.len())
        }
    }
}

/// The differences between a listing and its base: changed or new paths, and removed ones.
pub fn diff_listing(
    base: &BTreeMap<String, String>,
    image: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let changed = image
        .iter()
        .filter(|(path, line)| base.get(*path) != Some(line))
        .map(|(p, l)| (p.clone(), l.clone()))
        .collect();
    let removed = base
        .keys()
        .filter(|path| !image.contains_key(*path))
        .cloned()
        .collect();
    (changed, removed)
}

/// Does the listing `actual` match the expected one (which may end in ` *`)?
pub fn line_matches(expected: &str, actual: &str) -> bool {
    match expected.strip_suffix(" *") {
        Some(prefix) => actual.starts_with(prefix),
        None => expected == actual,
    }
}

/// The host's architecture in OCI's words, for cases that print `TARGETARCH` (written `$HOST_ARCH` in
/// `expected.json`).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Replaces `$HOST_ARCH` in an expected value.
pub fn with_host(text: &str) -> String {
    text.replace("$HOST_ARCH", host_arch())
}
