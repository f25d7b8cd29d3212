//! Compatibility with the real tools: archives `hoist` writes are read by `docker load`, `skopeo` and `umoci`, and
//! archives they write are read by `hoist load`, with digests checked by those tools (and `sha256sum`), not by
//! hoist's own reader.
//!
//! Needs docker (with a running dockerd), skopeo, umoci and a static busybox: `bash .ci/services.sh` installs and
//! starts them. Without them these tests fail, saying so; with `HOIST_SKIP_PEER_TESTS=1` they print a SKIPPED line
//! and pass. Tests that talk to dockerd have `docker` in their name and run one at a time (`.config/nextest.toml`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

const HOIST: &str = env!("CARGO_BIN_EXE_hoist");
/// Debian's docker client, matching Debian's dockerd (`/usr/local/bin/docker` may be another version).
const DOCKER: &str = "/usr/bin/docker";
const BUSYBOX: &str = "/bin/busybox";

/// Checks that the peer tools are there. Returns `false` (after printing a loud SKIPPED line) only when
/// `HOIST_SKIP_PEER_TESTS=1`; otherwise a missing tool fails the test.
fn peers_available(test: &str) -> bool {
    let mut missing = Vec::new();
    for (tool, args) in [
        (DOCKER, &["info"][..]),
        ("skopeo", &["--version"][..]),
        ("umoci", &["--version"][..]),
        (BUSYBOX, &["true"][..]),
    ] {
        let ok = Command::new(tool)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            missing.push(if tool == DOCKER {
                "docker (or dockerd is not running)"
            } else {
                tool
            });
        }
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("HOIST_SKIP_PEER_TESTS").as_deref() == Ok("1") {
        let _ = writeln!(
            std::io::stderr(),
            "!!!!! SKIPPED {test}: {} not available (HOIST_SKIP_PEER_TESTS=1) !!!!!",
            missing.join(", ")
        );
        return false;
    }
    panic!(
        "{test} needs {}: run `bash .ci/services.sh` to install and start them \
         (or set HOIST_SKIP_PEER_TESTS=1 to skip these tests)",
        missing.join(", ")
    );
}

/// Runs a command, panicking with everything needed to debug it if it fails.
fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("failed to start {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "output is not JSON ({error}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The `sha256:<hex>` of a file, by `sha256sum` (an oracle independent of hoist).
fn sha256sum(path: &Path) -> String {
    let output = run(Command::new("sha256sum").arg(path));
    let text = stdout(&output);
    format!(
        "sha256:{}",
        text.split_whitespace()
            .next()
            .expect("sha256sum prints a digest")
    )
}

/// A private store and scratch directory, plus the docker images to remove at the end.
struct Context {
    dir: tempfile::TempDir,
    docker_images: Vec<String>,
}

impl Context {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
            docker_images: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `hoist --root <private store> ARGS`, which must succeed.
    fn hoist(&self, args: &[&str]) -> Output {
        run(Command::new(HOIST)
            .arg("--root")
            .arg(self.path("store"))
            .args(args))
    }

    /// `hoist … ARGS < input`.
    fn hoist_stdin(&self, args: &[&str], input: &Path) -> Output {
        let file = fs::File::open(input).expect("open stdin file");
        run(Command::new(HOIST)
            .arg("--root")
            .arg(self.path("store"))
            .args(args)
            .stdin(file))
    }

    /// A name unique to this test run, remembered for removal from dockerd.
    fn docker_name(&mut self, test: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "hoist-compat-{test}-{}-{}:t{}",
            std::process::id(),
            self.dir
                .path()
                .file_name()
                .map(|n| n
                    .to_string_lossy()
                    .to_ascii_lowercase()
                    .replace(['.', '_'], ""))
                .unwrap_or_default(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.docker_images.push(name.clone());
        name
    }

    /// A root filesystem tarball: Debian's static busybox and its applet symlinks (`busybox --install -s`).
    fn busybox_rootfs(&self) -> PathBuf {
        let root = self.path("rootfs");
        for dir in ["bin", "etc", "tmp"] {
            fs::create_dir_all(root.join(dir)).expect("create rootfs dir");
        }
        fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
        run(Command::new(BUSYBOX)
            .arg("--install")
            .arg("-s")
            .arg(root.join("bin")));
        // The links point at the host's busybox (`/usr/bin/busybox` on merged-/usr Debian); inside the image it is
        // /bin/busybox.
        for entry in fs::read_dir(root.join("bin")).expect("read rootfs bin") {
            let path = entry.expect("rootfs entry").path();
            if path.is_symlink() {
                fs::remove_file(&path).expect("remove link");
                std::os::unix::fs::symlink("/bin/busybox", &path).expect("relink");
            }
        }
        fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
            .expect("write passwd");
        let tarball = self.path("rootfs.tar");
        run(Command::new("tar")
            .args([
                "--sort=name",
                "--mtime=@0",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-C",
            ])
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."));
        tarball
    }

    /// `hoist import` of the busybox rootfs as `name`; returns the image ID.
    fn import_busybox(&self, name: &str) -> String {
        let tarball = self.busybox_rootfs();
        let output = self.hoist(&[
            "import",
            tarball.to_str().expect("utf-8 temp path"),
            "-t",
            name,
            "--change",
            r#"CMD ["/bin/sh"]"#,
            "--change",
            "ENV PATH=/bin",
        ]);
        stdout(&output)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        for image in &self.docker_images {
            let _ = Command::new(DOCKER)
                .args(["image", "rm", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn docker_inspect(image: &str) -> Value {
    let value = json(&run(Command::new(DOCKER).args(["image", "inspect", image])));
    value[0].clone()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// (a) import → save → `docker load` → `docker run`; the diffID is the one `docker import` computes.
#[test]
fn docker_loads_and_runs_an_imported_image() {
    if !peers_available("docker_loads_and_runs_an_imported_image") {
        return;
    }
    let mut cx = Context::new();
    let name = cx.docker_name("run");
    let id = cx.import_busybox(&name);
    assert!(
        id.starts_with("sha256:"),
        "import prints the image ID: {id}"
    );
    let archive = cx.path("image.tar");
    cx.hoist(&["save", &name, "-o", path_str(&archive)]);

    let loaded = stdout(&run(Command::new(DOCKER).args([
        "load",
        "-i",
        path_str(&archive),
    ])));
    assert_eq!(loaded, format!("Loaded image: {name}"));
    let out = stdout(&run(
        Command::new(DOCKER).args(["run", "--rm", &name, "/bin/sh", "-c", "echo ok"])
    ));
    assert_eq!(out, "ok");

    let inspect = docker_inspect(&name);
    assert_eq!(
        inspect["Id"],
        id.as_str(),
        "docker keeps the config digest as the image ID"
    );
    assert_eq!(inspect["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(inspect["Config"]["Env"], serde_json::json!(["PATH=/bin"]));
    assert_eq!(inspect["Architecture"], docker_info_architecture());

    // docker import of the same tarball: the same diffID (the SHA-256 of the tar as given).
    let docker_name = cx.docker_name("import");
    run(Command::new(DOCKER).args(["import", path_str(&cx.path("rootfs.tar")), &docker_name]));
    let theirs = docker_inspect(&docker_name);
    assert_eq!(inspect["RootFS"]["Layers"], theirs["RootFS"]["Layers"]);
    assert_eq!(
        inspect["RootFS"]["Layers"][0],
        sha256sum(&cx.path("rootfs.tar")).as_str()
    );
}

/// The daemon's architecture in Go's names (`amd64`, `arm64`), which `import` must record.
fn docker_info_architecture() -> String {
    stdout(&run(Command::new(DOCKER).args([
        "version",
        "--format",
        "{{.Server.Arch}}",
    ])))
}

/// (b) skopeo reads both archive formats and reports the layer digests they contain.
#[test]
fn skopeo_inspects_saved_archives() {
    if !peers_available("skopeo_inspects_saved_archives") {
        return;
    }
    let cx = Context::new();
    let id = cx.import_busybox("compat/skopeo:1");
    let diff_id = sha256sum(&cx.path("rootfs.tar"));

    let docker_archive = cx.path("docker.tar");
    cx.hoist(&["save", "compat/skopeo:1", "-o", path_str(&docker_archive)]);
    let inspect = json(&run(Command::new("skopeo").args([
        "inspect",
        &format!("docker-archive:{}", path_str(&docker_archive)),
    ])));
    // docker-archive layers are the uncompressed tars: their digest is the diffID.
    assert_eq!(inspect["Layers"], serde_json::json!([diff_id]));
    let config = json(&run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("docker-archive:{}", path_str(&docker_archive)),
    ])));
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([diff_id]));
    assert_eq!(config["history"][0]["comment"], "Imported from -");

    let oci_archive = cx.path("oci.tar");
    cx.hoist(&[
        "save",
        "compat/skopeo:1",
        "--format",
        "oci",
        "-o",
        path_str(&oci_archive),
    ]);
    let inspect = json(&run(Command::new("skopeo").args([
        "inspect",
        &format!("oci-archive:{}", path_str(&oci_archive)),
    ])));
    let layers = inspect["Layers"].as_array().expect("skopeo lists layers");
    assert_eq!(layers.len(), 1);
    // skopeo copy verifies every blob against its digest; the copied layer blob hashes to what skopeo reported.
    let copy = cx.path("copied");
    run(Command::new("skopeo").args([
        "copy",
        &format!("oci-archive:{}", path_str(&oci_archive)),
        &format!("oci:{}:copied", path_str(&copy)),
    ]));
    let layer = layers[0].as_str().expect("layer digest");
    let blob = copy
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    assert_eq!(sha256sum(&blob), layer);
    // Its content is the rootfs tarball, gzip-compressed.
    let unzipped = run(Command::new("gzip").arg("-dc").arg(&blob));
    fs::write(cx.path("layer.tar"), &unzipped.stdout).expect("write layer");
    assert_eq!(sha256sum(&cx.path("layer.tar")), diff_id);
    let config = json(&run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci-archive:{}", path_str(&oci_archive)),
    ])));
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([diff_id]));
    // The config is the stored one, byte for byte: skopeo's digest of it is the image ID.
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}", path_str(&oci_archive)),
    ]));
    let manifest: Value = serde_json::from_slice(&raw.stdout).expect("manifest JSON");
    assert_eq!(manifest["config"]["digest"], id.as_str());
}

/// (c) umoci unpacks the OCI layout into a runtime bundle whose rootfs has busybox.
#[test]
fn umoci_unpacks_the_oci_layout() {
    if !peers_available("umoci_unpacks_the_oci_layout") {
        return;
    }
    let cx = Context::new();
    cx.import_busybox("compat/umoci:v1");
    let layout = cx.path("layout");
    cx.hoist(&[
        "save",
        "compat/umoci:v1",
        "--format",
        "oci-dir",
        "-o",
        path_str(&layout),
    ]);
    let bundle = cx.path("bundle");
    let mut umoci = Command::new("umoci");
    umoci.args(["unpack", "--image", &format!("{}:v1", path_str(&layout))]);
    if !is_root() {
        umoci.arg("--rootless");
    }
    run(umoci.arg(&bundle));
    let busybox =
        fs::metadata(bundle.join("rootfs/bin/busybox")).expect("busybox in the unpacked rootfs");
    assert_eq!(
        busybox.len(),
        fs::metadata(BUSYBOX).expect("host busybox").len()
    );
    assert_eq!(
        fs::read_link(bundle.join("rootfs/bin/sh")).expect("sh link"),
        Path::new("/bin/busybox")
    );
    let runtime: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).expect("bundle config"))
            .expect("config JSON");
    assert_eq!(runtime["process"]["args"], serde_json::json!(["/bin/sh"]));

    // The tar form, unpacked by tar, is the same layout.
    let archive = cx.path("layout.tar");
    cx.hoist(&[
        "save",
        "compat/umoci:v1",
        "--format",
        "oci",
        "-o",
        path_str(&archive),
    ]);
    let untarred = cx.path("untarred");
    fs::create_dir(&untarred).expect("mkdir");
    run(Command::new("tar")
        .arg("-C")
        .arg(&untarred)
        .arg("-xf")
        .arg(&archive));
    let listed = stdout(&run(Command::new("umoci").args([
        "ls",
        "--layout",
        path_str(&untarred),
    ])));
    assert_eq!(listed, "v1");
}

fn is_root() -> bool {
    stdout(&run(Command::new("id").arg("-u"))) == "0"
}

/// (d) `docker save` (of a two-layer image built by docker) → `hoist load` → `hoist save` → `docker load`: the same
/// image ID (config digest) and diffIDs, also through gzip on stdin.
#[test]
fn docker_save_round_trips_through_hoist() {
    if !peers_available("docker_save_round_trips_through_hoist") {
        return;
    }
    let mut cx = Context::new();
    let base = cx.docker_name("base");
    let rootfs = cx.busybox_rootfs();
    run(Command::new(DOCKER).args([
        "import",
        "-c",
        r#"CMD ["/bin/sh"]"#,
        "-c",
        "ENV PATH=/bin",
        path_str(&rootfs),
        &base,
    ]));
    let built = cx.docker_name("built");
    let context = cx.path("context");
    fs::create_dir(&context).expect("mkdir context");
    fs::write(
        context.join("Dockerfile"),
        format!("FROM {base}\nRUN echo hello > /hello\nENV GREETING=hi\nLABEL compat=yes\n"),
    )
    .expect("write Dockerfile");
    run(Command::new(DOCKER)
        .args(["build", "-q", "-t", &built])
        .arg(&context)
        .env("DOCKER_BUILDKIT", "0"));
    let original = docker_inspect(&built);
    assert_eq!(
        original["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(2)
    );

    let saved = cx.path("docker-saved.tar");
    run(Command::new(DOCKER).args(["save", "-o", path_str(&saved), &built]));
    let loaded = stdout(&cx.hoist(&["load", "-i", path_str(&saved)]));
    assert_eq!(loaded, format!("Loaded image: {built}"));

    let resaved = cx.path("hoist-saved.tar");
    cx.hoist(&["save", &built, "-o", path_str(&resaved)]);
    // skopeo sees the same config (bytes) and the same layers in both archives.
    let config = |archive: &Path| {
        run(Command::new("skopeo").args([
            "inspect",
            "--config",
            &format!("docker-archive:{}", path_str(archive)),
        ]))
        .stdout
    };
    assert_eq!(config(&saved), config(&resaved));
    let layers = |archive: &Path| {
        json(&run(Command::new("skopeo").args([
            "inspect",
            &format!("docker-archive:{}", path_str(archive)),
        ])))["Layers"]
            .clone()
    };
    assert_eq!(layers(&saved), layers(&resaved));
    assert_eq!(layers(&resaved), original["RootFS"]["Layers"]);

    // docker loads it back as the very same image.
    run(Command::new(DOCKER).args(["image", "rm", "-f", &built]));
    run(Command::new(DOCKER).args(["load", "-i", path_str(&resaved)]));
    let reloaded = docker_inspect(&built);
    assert_eq!(reloaded["Id"], original["Id"]);
    assert_eq!(reloaded["RootFS"], original["RootFS"]);
    let out = stdout(&run(Command::new(DOCKER).args([
        "run",
        "--rm",
        &built,
        "/bin/sh",
        "-c",
        "cat /hello",
    ])));
    assert_eq!(out, "hello");

    // `docker save | gzip | hoist load` (stdin, compressed) gives the same image.
    let gzipped = cx.path("docker-saved.tar.gz");
    let gz = run(Command::new("gzip").arg("-c").arg(&saved));
    fs::write(&gzipped, &gz.stdout).expect("write gzip");
    let fresh = Context::new();
    let loaded = stdout(&fresh.hoist_stdin(&["load"], &gzipped));
    assert_eq!(loaded, format!("Loaded image: {built}"));
    let resaved_again = fresh.path("again.tar");
    fresh.hoist(&["save", &built, "-o", path_str(&resaved_again)]);
    assert_eq!(config(&resaved_again), config(&saved));
    // Saving is deterministic: the same image gives the same bytes.
    assert_eq!(sha256sum(&resaved_again), sha256sum(&resaved));
}

/// (e) `skopeo copy` output (OCI layout directory, oci-archive, docker-archive) loads into hoist with every digest
/// kept; what hoist saves from it runs in docker.
#[test]
fn docker_runs_what_hoist_loaded_from_skopeo_copies() {
    if !peers_available("docker_runs_what_hoist_loaded_from_skopeo_copies") {
        return;
    }
    let mut cx = Context::new();
    let source = cx.docker_name("source");
    run(Command::new(DOCKER).args([
        "import",
        "-c",
        r#"CMD ["/bin/sh"]"#,
        path_str(&cx.busybox_rootfs()),
        &source,
    ]));
    let (repository, tag) = source.rsplit_once(':').expect("name has a tag");

    // OCI layout directory: hoist keeps the manifest byte for byte.
    let layout = cx.path("skopeo-layout");
    run(Command::new("skopeo").args([
        "copy",
        &format!("docker-daemon:{source}"),
        &format!("oci:{}:{source}", path_str(&layout)),
    ]));
    let loaded = stdout(&cx.hoist(&["load", "-i", path_str(&layout)]));
    assert_eq!(loaded, format!("Loaded image: {source}"));
    let exported = cx.path("hoist-layout");
    cx.hoist(&[
        "save",
        &source,
        "--format",
        "oci-dir",
        "-o",
        path_str(&exported),
    ]);
    let theirs =
        json(&run(Command::new("skopeo").args([
            "inspect",
            &format!("oci:{}:{source}", path_str(&layout)),
        ])));
    let ours =
        json(&run(Command::new("skopeo").args([
            "inspect",
            &format!("oci:{}:{tag}", path_str(&exported)),
        ])));
    assert_eq!(ours["Digest"], theirs["Digest"], "manifest digest kept");
    assert_eq!(ours["Layers"], theirs["Layers"], "layer digests kept");

    // oci-archive, loaded from stdin.
    let oci_archive = cx.path("skopeo-oci.tar");
    run(Command::new("skopeo").args([
        "copy",
        &format!("docker-daemon:{source}"),
        &format!("oci-archive:{}:{repository}:oci", path_str(&oci_archive)),
    ]));
    let loaded = stdout(&cx.hoist_stdin(&["load"], &oci_archive));
    assert_eq!(loaded, format!("Loaded image: {repository}:oci"));

    // docker-archive (symlinked layers, fully qualified RepoTags): loads under the familiar name.
    let docker_archive = cx.path("skopeo-docker.tar");
    let renamed = format!("{repository}:skopeo");
    cx.docker_images.push(renamed.clone());
    run(Command::new("skopeo").args([
        "copy",
        &format!("docker-daemon:{source}"),
        &format!("docker-archive:{}:{renamed}", path_str(&docker_archive)),
    ]));
    let loaded = stdout(&cx.hoist(&["load", "-i", path_str(&docker_archive)]));
    assert_eq!(loaded, format!("Loaded image: {renamed}"));

    // What hoist saves from the skopeo copy runs in docker, as the same image.
    let saved = cx.path("saved.tar");
    cx.hoist(&["save", &renamed, "-o", path_str(&saved)]);
    run(Command::new(DOCKER).args(["load", "-i", path_str(&saved)]));
    assert_eq!(
        docker_inspect(&renamed)["Id"],
        docker_inspect(&source)["Id"]
    );
    let out = stdout(&run(
        Command::new(DOCKER).args(["run", "--rm", &renamed, "/bin/sh", "-c", "echo ok"])
    ));
    assert_eq!(out, "ok");
}
