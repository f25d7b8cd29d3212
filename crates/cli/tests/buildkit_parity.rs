//! hoist against the real BuildKit: every engine conformance case (`crates/engine/tests/conformance/`) that
//! dockerd 20.10's built-in BuildKit (0.8) can build (no `buildkit` reason in its `expected.json`) is built twice,
//! by `hoist build` and by `DOCKER_BUILDKIT=1 /usr/bin/docker build`, on the same busybox base (imported by hoist,
//! `hoist save` → `docker load`). hoist's image is loaded into docker too, and then both are read by docker: the
//! `docker image inspect` Config fields, the history after the base (from `docker save`), and the filesystems
//! (`docker create` + `docker export`, listed as the conformance suite lists them). Cases that expect an error must
//! fail with both.
//!
//! BuildKit 0.8 differs from current BuildKit in a few history texts and in WORKDIR's layer; those are mapped in
//! [`known_old_buildkit_difference`] and listed in docs/conformance.md ("Engine conformance"). Needs root and a
//! running dockerd (`bash .ci/services.sh`); without dockerd the test fails unless `HOIST_SKIP_PEER_TESTS=1`.
#![allow(clippy::print_stderr)]

#[path = "../../engine/tests/support/conformance.rs"]
mod conformance;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use conformance::Case;
use serde_json::Value;

const HOIST: &str = env!("CARGO_BIN_EXE_hoist");
/// Debian's docker client, matching Debian's dockerd.
const DOCKER: &str = "/usr/bin/docker";
/// The `Config` fields compared.
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

fn dockerd_available() -> bool {
    let up = Command::new(DOCKER)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if up {
        return true;
    }
    if std::env::var("HOIST_SKIP_PEER_TESTS").as_deref() == Ok("1") {
        eprintln!(
            "!!!!! SKIPPED docker_buildkit_parity: no dockerd (HOIST_SKIP_PEER_TESTS=1) !!!!!"
        );
        return false;
    }
    panic!(
        "docker_buildkit_parity needs a running dockerd: run `bash .ci/services.sh` \
         (or set HOIST_SKIP_PEER_TESTS=1)"
    );
}

fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("failed to start {command:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
fn run(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker() -> Command {
    let mut command = Command::new(DOCKER);
    command.env("DOCKER_BUILDKIT", "1");
    command
}

/// The work directory, the hoist store, and what to remove from dockerd at the end.
struct Peer {
    work: tempfile::TempDir,
    images: Mutex<Vec<String>>,
    /// Containers made for `docker export`, removed together at the end.
    containers: Mutex<Vec<String>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let containers = self
            .containers
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        if !containers.is_empty() {
            let _ = Command::new(DOCKER)
                .args(["rm", "-f"])
                .args(&containers)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let images = self
            .images
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for image in images.iter().rev() {
            let _ = Command::new(DOCKER)
                .args(["image", "rm", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Peer {
    fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }

    fn hoist(&self) -> Command {
        let mut command = Command::new(HOIST);
        command
            .arg("--root")
            .arg(self.path("store"))
            .env("TMPDIR", self.path("tmp"))
            .env("HOIST_REGISTRIES_CONF", self.path("registries.conf"));
        command
    }

    /// Remembers an image to remove from dockerd at the end.
    fn remember(&self, image: &str) {
        self.images
            .lock()
            .expect("no thread panics holding the list")
            .push(image.to_owned());
    }

    /// `hoist save IMAGE | docker load` (through a file named after `name`).
    fn load_into_docker(&self, image: &str, name: &str) {
        let archive = self.path(&format!("{name}-save.tar"));
        run(self.hoist().args(["save", image, "-o"]).arg(&archive));
        run(docker().args(["load", "-i"]).arg(&archive));
        self.remember(image);
    }

    /// The image's root filesystem as docker exports it, listed.
    fn filesystem(&self, image: &str, name: &str) -> BTreeMap<String, String> {
        let container = run(docker().args(["create", image, "/bin/true"]))
            .trim()
            .to_owned();
        let dir = self.path(name);
        fs::create_dir_all(&dir).unwrap();
        let tar = self.path(&format!("{name}.tar"));
        let exported = output(docker().args(["export", "-o"]).arg(&tar).arg(&container));
        self.containers
            .lock()
            .expect("no thread panics holding the list")
            .push(container.clone());
        assert!(exported.status.success(), "docker export {image}");
        run(Command::new("tar")
            .args([
                "--numeric-owner",
                "--same-permissions",
                "--xattrs",
                "--xattrs-include=*",
            ])
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&dir));
        conformance::list_tree(&dir)
    }

    /// The history after the base's, `[created_by, empty_layer]`, from the config `docker save` writes.
    fn history(&self, image: &str, name: &str, skip: usize) -> Vec<(String, bool)> {
        let dir = self.path(&format!("{name}-saved"));
        fs::create_dir_all(&dir).unwrap();
        let tar = self.path(&format!("{name}-saved.tar"));
        run(docker().args(["save", "-o"]).arg(&tar).arg(image));
        run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&dir));
        let manifest: Value =
            serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let config_name = manifest[0]["Config"].as_str().unwrap();
        let config: Value =
            serde_json::from_slice(&fs::read(dir.join(config_name)).unwrap()).unwrap();
        config["history"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .skip(skip)
                    .map(|h| {
                        (
                            h["created_by"].as_str().unwrap_or_default().to_owned(),
                            h["empty_layer"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The compared `Config` fields of two images, read with one `docker image inspect`.
fn config_fields(
    ours: &str,
    theirs: &str,
) -> (BTreeMap<&'static str, Value>, BTreeMap<&'static str, Value>) {
    let inspect: Value =
        serde_json::from_str(&run(docker().args(["image", "inspect", ours, theirs]))).unwrap();
    (
        fields_of(&inspect[0]["Config"]),
        fields_of(&inspect[1]["Config"]),
    )
}

fn fields_of(config: &Value) -> BTreeMap<&'static str, Value> {
    CONFIG_FIELDS
        .iter()
        .map(|field| {
            let value = match &config[*field] {
                // `""`, `[]`, `{}` and null all mean "not set" to docker.
                Value::String(s) if s.is_empty() => Value::Null,
                Value::Array(a) if a.is_empty() => Value::Null,
                Value::Object(o) if o.is_empty() => Value::Null,
                other => other.clone(),
            };
            (*field, value)
        })
        .collect()
}

/// A history difference that is BuildKit 0.8's, changed in current BuildKit (which hoist follows): the text of
/// EXPOSE, HEALTHCHECK, ARG and COPY/ADD entries, and empty layers kept for steps that changed nothing.
fn known_old_buildkit_difference(
    hoist: &(String, bool),
    buildkit: &(String, bool),
) -> Option<&'static str> {
    let (ours, theirs) = (&hoist.0, &buildkit.0);
    let same_instruction = |word: &str| ours.starts_with(word) && theirs.starts_with(word);
    if hoist.1 == buildkit.1 && same_instruction("EXPOSE ") {
        return Some("EXPOSE history text (0.8 prints a Go map)");
    }
    if hoist.1 == buildkit.1 && same_instruction("HEALTHCHECK ") {
        return Some("HEALTHCHECK history text (0.8 prints a Go struct pointer)");
    }
    if hoist.1 == buildkit.1 && same_instruction("ARG ") {
        return Some(
            "ARG history text (0.8 writes the declaration, current BuildKit the value used)",
        );
    }
    if hoist.1 == buildkit.1
        && (same_instruction("COPY ") || same_instruction("ADD "))
        && without_owner_flags(ours) == *theirs
    {
        return Some("COPY/ADD history text (0.8 leaves out --chown and --chmod)");
    }
    if ours == theirs && hoist.1 && !buildkit.1 {
        return Some(
            "a step that changed nothing (0.8 keeps an empty layer, and its RUN leaves mount stubs in it; \
             current BuildKit removes the stubs and drops empty layers, marking empty_layer)",
        );
    }
    None
}

/// A COPY/ADD history text without its `--chown=` and `--chmod=` words.
fn without_owner_flags(text: &str) -> String {
    text.split(' ')
        .filter(|word| !word.starts_with("--chown=") && !word.starts_with("--chmod="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one case gave: its differences, and the known 0.8 differences met.
struct Compared {
    problems: Vec<String>,
    notes: Vec<String>,
}

/// Builds `case` with hoist and with BuildKit and compares what docker sees of both.
fn compare_case(peer: &Peer, case: &Case, base_history: usize) -> Compared {
    let mut result = Compared {
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let context = peer.path(&format!("ctx-{}", case.name));
    case.materialize_context(&context);
    // Unique to this process: another run of the suite may be using dockerd at the same time.
    let tag = |builder: &str| {
        format!(
            "hoist-parity-{}-{}:{builder}",
            std::process::id(),
            case.name
        )
    };
    let (ours, theirs) = (tag("hoist"), tag("buildkit"));
    let mut flags: Vec<String> = Vec::new();
    if let Some(target) = &case.expected.request.target {
        flags.extend(["--target".to_owned(), target.clone()]);
    }
    for (name, value) in &case.expected.request.build_args {
        flags.extend(["--build-arg".to_owned(), format!("{name}={value}")]);
    }
    let hoist_build = output(
        peer.hoist()
            .args(["build", "--progress", "plain", "-t", &ours, "-f"])
            .arg(case.dockerfile())
            .args(&flags)
            .arg(&context),
    );
    // The host's network, as hoist's RUN has by default (and dockerd may run without a bridge).
    let buildkit_build = output(
        docker()
            .args(["build", "--network", "host", "--progress", "plain"])
            .args(["-t", &theirs, "-f"])
            .arg(case.dockerfile())
            .args(&flags)
            .arg(&context),
    );
    peer.remember(&theirs);
    let status = |out: &Output| {
        if out.status.success() {
            "succeeded".to_owned()
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            format!("failed: {}", stderr.lines().last().unwrap_or_default())
        }
    };
    let (ours_ok, theirs_ok) = (
        hoist_build.status.success(),
        buildkit_build.status.success(),
    );
    if case.expected.error.is_some() || !ours_ok || !theirs_ok {
        if ours_ok || theirs_ok {
            result.problems.push(format!(
                "hoist {}; BuildKit {}",
                status(&hoist_build),
                status(&buildkit_build)
            ));
        }
        return result;
    }
    peer.load_into_docker(&ours, &case.name);
    let (our_config, their_config) = config_fields(&ours, &theirs);
    for field in CONFIG_FIELDS {
        if our_config[field] != their_config[field] {
            result.problems.push(format!(
                "Config.{field}: hoist {}, BuildKit {}",
                our_config[field], their_config[field]
            ));
        }
    }
    let our_history = peer.history(&ours, &format!("{}-hoist", case.name), base_history);
    let their_history = peer.history(&theirs, &format!("{}-buildkit", case.name), base_history);
    if our_history.len() == their_history.len() {
        for (a, b) in our_history.iter().zip(&their_history) {
            if a == b {
                continue;
            }
            match known_old_buildkit_difference(a, b) {
                Some(note) => result.notes.push(format!("{}: {note}", case.name)),
                None => result
                    .problems
                    .push(format!("history entry: hoist {a:?}, BuildKit {b:?}")),
            }
        }
    } else {
        result.problems.push(format!(
            "history: hoist {our_history:?}\n    BuildKit {their_history:?}"
        ));
    }
    let our_files = peer.filesystem(&ours, &format!("fs-{}-hoist", case.name));
    let their_files = peer.filesystem(&theirs, &format!("fs-{}-buildkit", case.name));
    // Contents the case itself cannot predict (random bytes) are compared only in form.
    let unpredictable = |path: &str, ours: &str, theirs: &str| {
        let expected = case.expected.files.as_ref().and_then(|f| f.get(path));
        expected.is_some_and(|want| {
            want.ends_with(" *")
                && conformance::line_matches(want, ours)
                && conformance::line_matches(want, theirs)
        })
    };
    let (changed, removed) = conformance::diff_listing(&their_files, &our_files);
    for (path, line) in changed {
        match their_files.get(&path) {
            Some(other) if unpredictable(&path, &line, other) => {}
            Some(other) => result
                .problems
                .push(format!("{path}: hoist `{line}`, BuildKit `{other}`")),
            None => result
                .problems
                .push(format!("{path}: only in hoist's image: `{line}`")),
        }
    }
    for path in removed {
        result.problems.push(format!(
            "{path}: only in BuildKit's image: `{}`",
            their_files[&path]
        ));
    }
    result
}

#[test]
fn docker_buildkit_parity() {
    if !dockerd_available() {
        return;
    }
    let peer = Peer {
        work: tempfile::tempdir().unwrap(),
        images: Mutex::new(Vec::new()),
        containers: Mutex::new(Vec::new()),
    };
    fs::create_dir_all(peer.path("tmp")).unwrap();
    fs::write(peer.path("registries.conf"), "").unwrap();
    let tar = conformance::base_rootfs_tar(peer.work.path());
    for (i, (name, changes)) in conformance::IMAGES.iter().enumerate() {
        let mut import = peer.hoist();
        import.arg("import").arg(&tar).args(["-t", name]);
        for change in *changes {
            import.args(["--change", change]);
        }
        run(&mut import);
        peer.load_into_docker(name, &format!("image-{i}"));
    }
    let cases: Vec<Case> = conformance::load_cases()
        .into_iter()
        .filter(|c| c.expected.buildkit.is_none())
        .collect();
    assert!(
        cases.len() >= 10 || std::env::var_os("HOIST_CONFORMANCE_CASE").is_some(),
        "at least 10 cases run against BuildKit"
    );
    // A few cases at a time: most of the time is spent waiting for dockerd.
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let compared = compare_case(&peer, case, 1);
                    results
                        .lock()
                        .expect("no thread panics holding the results")
                        .push((case, compared));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("the threads are done");
    results.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut failures = Vec::new();
    for (case, compared) in &results {
        for note in &compared.notes {
            eprintln!("known BuildKit 0.8 difference: {note}");
        }
        if !compared.problems.is_empty() {
            failures.push(format!(
                "{} ({}):\n  {}",
                case.name,
                case.expected.about,
                compared.problems.join("\n  ")
            ));
        }
    }
    eprintln!(
        "buildkit parity: {}/{} cases identical to dockerd's BuildKit",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
