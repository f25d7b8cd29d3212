//! Crash consistency: `kill -9` of hoist at 50 points of a build, a pull, a push and a prune. After every kill the
//! store passes `hoist check` (every blob re-hashed, every reference and cache entry read), no process of the killed
//! hoist lives on, no mount is left in the host's namespace, and the same command run again succeeds with the right
//! result.
//!
//! Kill points are spread evenly over the time the operation takes when it is not killed (measured first), with a
//! per-point jitter from a fixed seed, so every run of the test hits the same spread of phases: early (planning,
//! reading the context, manifests), middle (RUN steps, blob transfers, deletions) and late (committing, tagging).
//! Runs in the nextest `sandbox` group: builds start containers.

#[path = "../../registry/tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoist_testkit::{BusyboxRootfs, HoistCmd, tar_dir};
use sha2::{Digest as _, Sha256};
use support::TestRegistry;

/// Kill points per operation.
const POINTS: u32 = 50;

const APPLETS: &[&str] = &[
    "sh",
    "echo",
    "cat",
    "dd",
    "mkdir",
    "seq",
    "sha256sum",
    "sleep",
];

struct Harness {
    dir: tempfile::TempDir,
    /// xorshift state for the jitter: fixed, so a failure reproduces.
    rng: u64,
}

impl Harness {
    fn new() -> Self {
        let harness = Harness {
            dir: tempfile::tempdir().unwrap(),
            rng: 0x9e37_79b9_7f4a_7c15,
        };
        // A private copy of the binary: the test runs for a minute, and a rebuild must not swap it underneath.
        fs::copy(env!("CARGO_BIN_EXE_hoist"), harness.path("hoist")).unwrap();
        fs::create_dir(harness.path("ctx")).unwrap();
        harness
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The private hoist with the store named `store`, run in `ctx`: its own registries configuration, Docker
    /// configuration and `$TMPDIR` under our directory.
    fn hoist(&self, store: &str) -> HoistCmd {
        HoistCmd::new(self.path("hoist"))
            .isolated(self.dir.path())
            .root(self.path(store))
            .current_dir(self.path("ctx"))
    }

    fn command(&self, store: &str, args: &[&str]) -> Command {
        let mut command = self.hoist(store).command(args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn ok(&self, store: &str, args: &[&str]) -> String {
        self.hoist(store).ok(args)
    }

    /// A busybox image `bb:1` with a few applets and `PATH=/bin`, imported into `store`.
    fn import_busybox(&self, store: &str) {
        let tar = self.path("rootfs.tar");
        if !tar.exists() {
            BusyboxRootfs::new(self.path("rootfs"))
                .applets(APPLETS)
                .dirs(&["tmp"])
                .tar_flags(&["--owner=0", "--group=0", "--numeric-owner"])
                .tar();
        }
        self.ok(
            store,
            &[
                "import",
                tar.to_str().unwrap(),
                "-t",
                "bb:1",
                "--change",
                "ENV PATH=/bin",
            ],
        );
    }

    /// The time `args` takes when it runs to the end.
    fn measure(&self, store: &str, args: &[&str]) -> Duration {
        let start = Instant::now();
        self.ok(store, args);
        start.elapsed()
    }

    /// The delay of kill point `point` out of [`POINTS`] over an operation that takes `span`.
    fn kill_delay(&mut self, point: u32, span: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let jitter = (self.rng % 1000) as f64 / 1000.0;
        // Over the first 90%: the end of a run varies more than its start.
        span.mul_f64(0.9 * (f64::from(point) + jitter) / f64::from(POINTS))
    }

    /// Kills `args` at point `point` of `span`. When the operation finishes before its kill, it was faster than the
    /// span says (the machine's load changes): the span shrinks to that run's time, so later points land inside.
    fn kill_point(&mut self, store: &str, args: &[&str], point: u32, span: &mut Duration) -> bool {
        let delay = self.kill_delay(point, *span);
        match self.kill_at(store, args, delay) {
            Ok(()) => true,
            Err(took) => {
                *span = (*span).min(took);
                false
            }
        }
    }

    /// Starts `args`, kills it with SIGKILL after `delay`, and checks what it left. `Err` with the time it took
    /// when it finished before the kill.
    fn kill_at(&self, store: &str, args: &[&str], delay: Duration) -> Result<(), Duration> {
        let started = Instant::now();
        let mut child: Child = self.command(store, args).spawn().unwrap();
        let pid = child.id();
        let deadline = started + delay;
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2).min(deadline - Instant::now()));
        };
        if !finished {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let took = started.elapsed();
        self.assert_nothing_left(pid);
        self.assert_store_whole(store);
        if finished { Err(took) } else { Ok(()) }
    }

    /// `hoist check` passes.
    fn assert_store_whole(&self, store: &str) {
        self.ok(store, &["check"]);
    }

    /// No process descends from the killed hoist or has its root in our directory, and no mount of ours is left in
    /// the host's mount namespace. Containers die with hoist (parent-death signal), which the kernel delivers
    /// asynchronously: allow it a moment.
    fn assert_nothing_left(&self, killed: u32) {
        let ours = self.dir.path();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let survivors = processes_of(killed, ours);
            if survivors.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "processes of the killed hoist {killed} still run: {survivors:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let ours = ours.to_str().unwrap();
        assert!(
            !mounts.lines().any(|line| line.contains(ours)),
            "a mount under {ours} is left:\n{mounts}"
        );
    }
}

/// Live processes whose parent chain includes `killed`, or whose root or cwd is under `dir`.
fn processes_of(killed: u32, dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state == "Z" {
            continue;
        }
        let inside = ["root", "cwd"].iter().any(|link| {
            fs::read_link(format!("/proc/{pid}/{link}")).is_ok_and(|target| target.starts_with(dir))
        });
        if ppid == killed || inside {
            found.push(format!("{pid}: {}", stat.trim()));
        }
    }
    found
}

/// Kill points that landed before the operation finished: enough of them must, or the test proves nothing.
fn args(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

fn assert_enough_kills(what: &str, killed: u32) {
    assert!(
        killed >= POINTS / 2,
        "only {killed} of {POINTS} kills of the {what} landed before it finished"
    );
}

#[test]
fn kill_9_during_builds_leaves_a_whole_store_and_the_next_build_succeeds() {
    let mut harness = Harness::new();
    harness.import_busybox("store");
    // A context of many small files, and RUN steps that write a few MB: each build reads, runs, diffs and commits.
    for i in 0..300 {
        let dir = harness.path(&format!("ctx/data/{}", i % 10));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}")), format!("file {i}\n").repeat(20)).unwrap();
    }
    fs::write(
        harness.path("ctx/Dockerfile"),
        "FROM bb:1\n\
         ARG SEED\n\
         COPY data /data\n\
         RUN for i in $(seq 1 8); do dd if=/dev/urandom of=/blob$i bs=64k count=8 2>/dev/null; done; echo $SEED > /seed\n\
         RUN sleep 0.05; cat /data/0/f0 /seed > /done\n",
    )
    .unwrap();
    let build = |seed: u32| -> Vec<String> {
        vec![
            "build".into(),
            "--progress".into(),
            "plain".into(),
            "--build-arg".into(),
            format!("SEED={seed}"),
            "-t".into(),
            format!("crash:{seed}"),
            ".".into(),
        ]
    };
    let mut span = harness.measure("store", &args(&build(1000)));
    let mut kills = 0;
    for point in 0..POINTS {
        // A new seed per point: the RUN steps are not cached, so every point is a cold build past the COPY.
        if harness.kill_point("store", &args(&build(point)), point, &mut span) {
            kills += 1;
        }
        harness.ok("store", &args(&build(point)));
        let out = harness.path(&format!("out-{point}"));
        harness.ok(
            "store",
            &[
                "build",
                "--progress",
                "plain",
                "--build-arg",
                &format!("SEED={point}"),
                "-o",
                &format!("type=local,dest={}", out.display()),
                ".",
            ],
        );
        assert_eq!(
            fs::read_to_string(out.join("done")).unwrap(),
            format!("{}{point}\n", "file 0\n".repeat(20))
        );
        assert_eq!(fs::metadata(out.join("blob8")).unwrap().len(), 512 * 1024);
        fs::remove_dir_all(&out).unwrap();
    }
    assert_enough_kills("build", kills);
}

/// A rootfs tarball with `files` files of random data, 64 KiB each, plus busybox.
fn random_rootfs(harness: &Harness, name: &str, files: usize) -> PathBuf {
    let mut rootfs = BusyboxRootfs::new(harness.path(name));
    let mut state: u64 = name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    for i in 0..files {
        let mut data = Vec::with_capacity(64 * 1024);
        while data.len() < 64 * 1024 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        rootfs = rootfs.file(&format!("r{i}"), data);
    }
    let tar = harness.path(&format!("{name}.tar.gz"));
    tar_dir(rootfs.write(), &tar, &["-z"]);
    tar
}

#[test]
fn kill_9_during_pulls_and_pushes_leaves_a_whole_store() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let mut harness = Harness::new();
    // The source image: three layers of random data (incompressible), so transfers take measurable time.
    let mut layers = Vec::new();
    for layer in 0..3 {
        layers.push(random_rootfs(&harness, &format!("layer{layer}"), 48));
    }
    let tar = layers[0].to_str().unwrap().to_owned();
    harness.ok("src", &["import", &tar, "-t", "base:1"]);
    fs::write(
        harness.path("ctx/Dockerfile"),
        "FROM base:1\nCOPY one /one\nCOPY two /two\n",
    )
    .unwrap();
    fs::copy(&layers[1], harness.path("ctx/one")).unwrap();
    fs::copy(&layers[2], harness.path("ctx/two")).unwrap();
    harness.ok("src", &["build", "--progress", "plain", "-t", "app:1", "."]);
    let image_id = harness
        .ok("src", &["images", "--quiet", "--no-trunc", "app:1"])
        .trim()
        .to_owned();

    // Push: each point pushes to a new registry (its own repository would share blobs through mounts): that would
    // not upload anything after the first success. One registry per point is too slow, so each point pushes a
    // freshly tagged copy to a new repository *and* the blobs are deleted from the registry's storage between
    // points, which makes every push upload everything again.
    let remote = |repo: &str| format!("{}/{repo}:1", registry.addr);
    harness.ok("src", &["tag", "app:1", &remote("warmup")]);
    let mut push_span = harness.measure("src", &["push", &remote("warmup")]);
    let mut pushes_killed = 0;
    for point in 0..POINTS {
        let _ = fs::remove_dir_all(registry.storage().join("docker"));
        let repo = format!("push{point}");
        harness.ok("src", &["tag", "app:1", &remote(&repo)]);
        if harness.kill_point("src", &["push", &remote(&repo)], point, &mut push_span) {
            pushes_killed += 1;
        }
        harness.ok("src", &["push", &remote(&repo)]);
    }
    assert_enough_kills("push", pushes_killed);

    // Pull: into a fresh store each point, from the last pushed repository.
    let source = remote(&format!("push{}", POINTS - 1));
    let mut pull_span = harness.measure("pull-warmup", &["pull", &source]);
    let mut pulls_killed = 0;
    for point in 0..POINTS {
        let store = format!("pull{point}");
        if harness.kill_point(&store, &["pull", &source], point, &mut pull_span) {
            pulls_killed += 1;
        }
        harness.ok(&store, &["pull", &source]);
        let pulled = harness
            .ok(&store, &["images", "--quiet", "--no-trunc", &source])
            .trim()
            .to_owned();
        assert_eq!(pulled, image_id, "point {point}: the pulled image differs");
        harness.assert_store_whole(&store);
        fs::remove_dir_all(harness.path(&store)).unwrap();
    }
    assert_enough_kills("pull", pulls_killed);
}

#[test]
fn kill_9_during_prune_leaves_a_whole_store_and_keeps_what_is_referenced() {
    let mut harness = Harness::new();
    harness.import_busybox("store");
    let kept = harness
        .ok("store", &["images", "--quiet", "--no-trunc", "bb:1"])
        .trim()
        .to_owned();
    let mut span = {
        make_garbage(&harness, "store", 0);
        harness.measure("store", &["prune"])
    };
    let mut kills = 0;
    for point in 0..POINTS {
        make_garbage(&harness, "store", point + 1);
        if harness.kill_point("store", &["prune"], point, &mut span) {
            kills += 1;
        }
        let still = harness
            .ok("store", &["images", "--quiet", "--no-trunc", "bb:1"])
            .trim()
            .to_owned();
        assert_eq!(still, kept, "point {point}: the referenced image changed");
        harness.ok("store", &["prune"]);
        harness.assert_store_whole("store");
        assert_eq!(
            fs::read_dir(harness.path("store/blobs-v1/sha256"))
                .unwrap()
                .count(),
            3,
            "point {point}: prune left unreferenced blobs (or lost referenced ones)"
        );
    }
    assert_enough_kills("prune", kills);
}

/// Unreferenced content as builds leave it: 150 blobs and 20 snapshot entries of 20 files each.
fn make_garbage(harness: &Harness, store: &str, round: u32) {
    let blobs = harness.path(store).join("blobs-v1/sha256");
    for i in 0..150 {
        let content = format!("garbage {round} {i}\n").repeat(100);
        let hex = hex::encode(Sha256::digest(content.as_bytes()));
        fs::write(blobs.join(hex), content).unwrap();
    }
    let snapshots = harness.path(store).join("snapshots-v1");
    for entry in 0..20 {
        let dir = snapshots.join(format!("garbage-{round}-{entry}"));
        fs::create_dir_all(&dir).unwrap();
        for file in 0..20 {
            fs::write(dir.join(format!("f{file}")), b"x").unwrap();
        }
    }
}

/// A Dockerfile with a `common` stage (a RUN writing random data, keyed by `ARG ROUND`) and one stage per
/// `(target, word)` on top of it, each writing `word` to `/target`.
fn write_common_and_targets(harness: &Harness, targets: &[(&str, &str)]) {
    let mut dockerfile = String::from(
        "FROM bb:1 AS common\n\
         ARG ROUND\n\
         RUN dd if=/dev/urandom of=/common bs=64k count=4 2>/dev/null; echo $ROUND > /round\n",
    );
    for (target, word) in targets {
        dockerfile.push_str(&format!(
            "FROM common AS {target}\nRUN echo {word} > /target\n"
        ));
    }
    fs::write(harness.path("ctx/Dockerfile"), dockerfile).unwrap();
}

/// `hoist build` of `round`'s `target`, tagged `c:<target>-<round>` when `tag` is set, plus `extra` arguments.
fn round_build(round: u32, target: &str, tag: bool, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["build", "--progress", "plain", "--build-arg"]
        .map(String::from)
        .to_vec();
    args.push(format!("ROUND={round}"));
    args.extend(["--target".to_owned(), target.to_owned()]);
    if tag {
        args.extend(["-t".to_owned(), format!("c:{target}-{round}")]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.push(".".to_owned());
    args
}

/// Starts the builds of `targets` for `round` (tagged) and `prune` with `prune_args`, all at once; each must
/// succeed. Returns each build's target and stderr.
fn builds_beside_a_prune(
    harness: &Harness,
    round: u32,
    targets: &[&str],
    prune_args: &[&str],
) -> Vec<(String, String)> {
    let mut children: Vec<(String, Child)> = targets
        .iter()
        .map(|target| {
            let child = harness
                .command("store", &args(&round_build(round, target, true, &[])))
                .spawn()
                .unwrap();
            ((*target).to_owned(), child)
        })
        .collect();
    let mut prune = vec!["prune"];
    prune.extend_from_slice(prune_args);
    children.push((
        "prune".into(),
        harness.command("store", &prune).spawn().unwrap(),
    ));
    let mut builds = Vec::new();
    for (what, child) in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "{what} (round {round}) failed:\n{stderr}"
        );
        if what != "prune" {
            builds.push((what, stderr));
        }
    }
    builds
}

#[test]
fn four_builds_and_a_prune_share_one_store_at_the_same_time() {
    let harness = Harness::new();
    harness.import_busybox("store");
    let targets = [
        ("t1", "one"),
        ("t2", "two"),
        ("t3", "three"),
        ("t4", "four"),
    ];
    write_common_and_targets(&harness, &targets);
    let names: Vec<&str> = targets.iter().map(|(target, _)| *target).collect();
    for round in 0..5 {
        // The common stage first, alone and tagged (prune keeps what a reference holds): then every target must
        // reuse its cache entry, even with the prune running beside them. The prune keeps recent cache, as a
        // cleanup job beside CI builds would: unreferenced blobs and leftovers go.
        harness.ok("store", &args(&round_build(round, "common", true, &[])));
        for (target, stderr) in
            builds_beside_a_prune(&harness, round, &names, &["--keep-storage", "10GB"])
        {
            assert!(
                stderr.lines().any(|line| line.ends_with("CACHED")),
                "{target} did not reuse the common stage:\n{stderr}"
            );
        }
        harness.assert_store_whole("store");
        // Every target has the shared layer (the same digest) and its own result.
        let mut common_layers = Vec::new();
        for (target, word) in targets {
            let tag = format!("c:{target}-{round}");
            let inspect: serde_json::Value =
                serde_json::from_str(&harness.ok("store", &["inspect", &tag])).unwrap();
            let layers = inspect[0]["RootFS"]["Layers"].as_array().unwrap().clone();
            assert_eq!(layers.len(), 3, "{tag}: {layers:?}");
            common_layers.push(layers[1].clone());
            let out = harness.path(&format!("out-{target}"));
            let local = format!("type=local,dest={}", out.display());
            harness.ok(
                "store",
                &args(&round_build(round, target, false, &["-o", &local])),
            );
            assert_eq!(
                fs::read_to_string(out.join("target")).unwrap(),
                format!("{word}\n")
            );
            assert_eq!(
                fs::read_to_string(out.join("round")).unwrap(),
                format!("{round}\n")
            );
            fs::remove_dir_all(out).unwrap();
        }
        common_layers.dedup();
        assert_eq!(
            common_layers.len(),
            1,
            "round {round}: the common layer differs"
        );
    }
}

#[test]
fn a_prune_beside_builds_never_deletes_a_layer_a_cache_hit_is_about_to_use() {
    // The common stage is cached but untagged, so prune may delete its entry and layer; a build that found the entry
    // first must still finish (it holds the layer in its lease), and one that comes after rebuilds it.
    let harness = Harness::new();
    harness.import_busybox("store");
    write_common_and_targets(&harness, &[("t1", "one"), ("t2", "two")]);
    for round in 0..6 {
        harness.ok("store", &args(&round_build(round, "common", false, &[])));
        builds_beside_a_prune(&harness, round, &["t1", "t2"], &[]);
        harness.assert_store_whole("store");
    }
}
