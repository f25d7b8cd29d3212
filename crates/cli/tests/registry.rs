//! `hoist pull/push/login/logout` against a real registry (Debian's `docker-registry`, started per test on
//! 127.0.0.1), with skopeo and docker as the other clients.

#[path = "../../registry/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use hoist_testkit::{HoistCmd, Run};
use support::{TestRegistry, require_tool, rootfs_tarball};

/// A sandboxed hoist: its own stores, Docker config and (empty) registries configuration.
struct Hoist {
    dir: tempfile::TempDir,
}

impl Hoist {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    /// hoist with the store named `store`, chosen by `$HOIST_ROOT` as a user's environment would.
    fn with_store(&self, store: &str) -> HoistCmd {
        HoistCmd::new(env!("CARGO_BIN_EXE_hoist"))
            .isolated(self.dir.path())
            .root_env(self.dir.path().join(store))
            .docker_config(self.docker_config())
    }

    fn command(&self, store: &str, args: &[&str]) -> Command {
        self.with_store(store).command(args)
    }

    /// Runs hoist with the store named `store`; returns what it left.
    fn run(&self, store: &str, args: &[&str]) -> Run {
        self.with_store(store).run(args)
    }

    /// Runs hoist and asserts success; returns stdout.
    fn ok(&self, store: &str, args: &[&str]) -> String {
        self.with_store(store).ok(args)
    }

    /// Runs hoist and asserts failure; returns stderr.
    fn fails(&self, store: &str, args: &[&str]) -> String {
        self.with_store(store).fails(args)
    }

    /// Imports a tiny image into `store` as `reference`.
    fn import(&self, store: &str, reference: &str, text: &str) {
        let tarball = rootfs_tarball(self.dir.path(), text);
        self.ok(store, &["import", tarball.to_str().unwrap(), reference]);
    }

    fn image_id(&self, store: &str, reference: &str) -> String {
        self.ok(store, &["images", "--quiet", "--no-trunc", reference])
            .trim()
            .to_owned()
    }
}

fn skopeo(args: &[&str]) -> String {
    let output = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn skopeo_inspect(reference: &str, raw: bool) -> serde_json::Value {
    let mut args = vec!["inspect", "--tls-verify=false"];
    if raw {
        args.push("--raw");
    }
    let target = format!("docker://{reference}");
    args.push(&target);
    serde_json::from_str(&skopeo(&args)).unwrap()
}

fn pushed_digest(stdout: &str) -> String {
    stdout
        .lines()
        .next()
        .and_then(|l| l.split_once('@'))
        .map(|(_, d)| d.to_owned())
        .unwrap_or_else(|| panic!("no digest in push output {stdout:?}"))
}

#[test]
fn push_then_pull_round_trip_with_skopeo_seeing_the_same_digests() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("skopeo") {
        return;
    }
    let hoist = Hoist::new();
    hoist.import("a", "demo/app:1.0", "round trip\n");
    let id = hoist.image_id("a", "demo/app:1.0");
    let v1 = format!("{}/demo/app:v1", registry.addr);
    let v2 = format!("{}/demo/app:v2", registry.addr);
    let out = hoist.ok("a", &["push", "demo/app:1.0", "--tag", &v1, "--tag", &v2]);
    let digest = pushed_digest(&out);
    assert_eq!(out.lines().count(), 2, "{out}");

    // skopeo sees both tags, the same manifest digest, and the config hoist had.
    let inspected = skopeo_inspect(&v2, false);
    assert_eq!(inspected["Digest"], digest.as_str());
    let tags: Vec<&str> = inspected["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, ["v1", "v2"]);
    let raw = skopeo_inspect(&v1, true);
    assert_eq!(raw["config"]["digest"], id.as_str());

    // A fresh store pulls it back with the same ID; a second pull downloads nothing.
    let out = hoist.ok("b", &["pull", &v1]);
    assert_eq!(out.trim(), v1);
    assert_eq!(hoist.image_id("b", &v1), id);
    let again = hoist.run("b", &["pull", &v1]);
    let stderr = again.stderr.as_str();
    assert!(
        stderr.contains("Already exists") && stderr.contains("Image is up to date"),
        "{stderr}"
    );
    assert!(!stderr.contains("Downloading"), "{stderr}");

    // Pull by digest verifies and resolves to the same manifest.
    let by_digest = format!("{}/demo/app@{digest}", registry.addr);
    let out = hoist.run("c", &["pull", &by_digest]);
    assert!(out.status.success(), "{}", out.stderr.as_str());
    let stderr = out.stderr.as_str();
    assert!(
        stderr.contains(&format!("Digest: {digest}")) && stderr.contains("pulled by digest only"),
        "{stderr}"
    );
    // With a tag as well, the tag names it.
    let tagged = format!("{}/demo/app:pinned@{digest}", registry.addr);
    hoist.ok("c", &["pull", &tagged]);
    assert_eq!(
        hoist.image_id("c", &format!("{}/demo/app:pinned", registry.addr)),
        id
    );
}

#[test]
fn an_image_pushed_by_skopeo_pulls_with_the_same_digests() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("skopeo") {
        return;
    }
    let hoist = Hoist::new();
    hoist.import("a", "seed:1", "from skopeo\n");
    let seed = format!("{}/seed:1", registry.addr);
    hoist.ok("a", &["push", "seed:1", "--tag", &seed]);
    // skopeo rewrites it as OCI (new manifest digest) and as Docker schema 2.
    for (format, name) in [("oci", "skopeo/oci:1"), ("v2s2", "skopeo/docker:1")] {
        let dest = format!("{}/{name}", registry.addr);
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--format",
            format,
            &format!("docker://{seed}"),
            &format!("docker://{dest}"),
        ]);
        let inspected = skopeo_inspect(&dest, false);
        let raw = skopeo_inspect(&dest, true);
        let out = hoist.run("b", &["pull", &dest]);
        let stderr = out.stderr.as_str();
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "Digest: {}",
                inspected["Digest"].as_str().unwrap()
            )),
            "{stderr}"
        );
        let image = hoist.ok("b", &["inspect", &dest]);
        let image: serde_json::Value = serde_json::from_str(&image).unwrap();
        assert_eq!(image[0]["Id"], raw["config"]["digest"], "{format}");
    }
}

#[test]
fn pushed_image_runs_in_docker() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("docker") {
        return;
    }
    let hoist = Hoist::new();
    hoist.import("a", "runme:1", "hello from hoist\n");
    let target = format!("{}/runme/app:1", registry.addr);
    hoist.ok("a", &["push", "runme:1", "--tag", &target]);
    let docker = |args: &[&str]| {
        Command::new("/usr/bin/docker")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let pulled = docker(&["pull", &target]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let ran = docker(&["run", "--rm", &target, "/bin/busybox", "cat", "/hello.txt"]);
    let _ = docker(&["rmi", "-f", &target]);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from hoist\n");
}

#[test]
fn login_push_pull_logout_with_htpasswd_auth() {
    let Some(registry) = TestRegistry::start_with_auth("hoister", "s3cret") else {
        return;
    };
    let hoist = Hoist::new();
    hoist.import("a", "private:1", "secret\n");
    let target = format!("{}/team/private:1", registry.addr);

    let error = hoist.fails("a", &["push", "private:1", "--tag", &target]);
    assert!(
        error.contains("unauthorized")
            && error.contains(&registry.addr)
            && error.contains("repository:team/private:pull,push"),
        "{error}"
    );
    let error = hoist.fails("b", &["pull", &target]);
    assert!(
        error.contains("unauthorized") && error.contains("repository:team/private:pull"),
        "{error}"
    );

    let mut wrong = hoist
        .command(
            "a",
            &["login", &registry.addr, "-u", "hoister", "--password-stdin"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    wrong.stdin.take().unwrap().write_all(b"wrong\n").unwrap();
    let wrong = wrong.wait_with_output().unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unauthorized"));
    assert!(!hoist.docker_config().join("config.json").exists());

    let out = hoist.ok(
        "a",
        &["login", &registry.addr, "-u", "hoister", "-p", "s3cret"],
    );
    assert_eq!(out, "Login Succeeded\n");
    let config = std::fs::read_to_string(hoist.docker_config().join("config.json")).unwrap();
    assert!(config.contains(&registry.addr), "{config}");

    hoist.ok("a", &["push", "private:1", "--tag", &target]);
    hoist.ok("b", &["pull", &target]);
    assert_eq!(
        hoist.image_id("a", "private:1"),
        hoist.image_id("b", &target)
    );

    let out = hoist.ok("a", &["logout", &registry.addr]);
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", registry.addr)
    );
    let error = hoist.fails("c", &["pull", &target]);
    assert!(error.contains("unauthorized"), "{error}");
}

#[test]
fn push_mounts_blobs_from_a_sibling_repository() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let hoist = Hoist::new();
    hoist.import("a", "base:1", "mount me\n");
    let first = format!("{}/one/base:1", registry.addr);
    let second = format!("{}/two/base:1", registry.addr);
    hoist.ok("a", &["push", "base:1", "--tag", &first]);
    // The store now knows the image under the first repository too, so the second push can mount.
    hoist.ok("a", &["tag", "base:1", &first]);
    let output = hoist.run("a", &["push", &first, "--tag", &second]);
    let stderr = output.stderr.as_str();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("Mounted from one/base").count(),
        2,
        "{stderr}"
    );
    hoist.ok("b", &["pull", &second]);
}

#[test]
fn errors_name_what_is_wrong() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let hoist = Hoist::new();
    let error = hoist.fails("a", &["pull", "Golang:1.24"]);
    assert!(
        error.contains("invalid reference format") && error.contains("lowercase"),
        "{error}"
    );
    let missing = format!("{}/no/such:tag", registry.addr);
    let error = hoist.fails("a", &["pull", &missing]);
    assert!(
        error.contains("not found") && error.contains(&missing),
        "{error}"
    );
    let error = hoist.fails("a", &["pull", "--platform", "linux", &missing]);
    assert!(error.contains("invalid platform"), "{error}");
    // A single-platform image (imported for the host) is refused for another explicit --platform.
    hoist.import("a", "single:1", "one platform\n");
    let single = format!("{}/single:1", registry.addr);
    hoist.ok("a", &["push", "single:1", "--tag", &single]);
    let error = hoist.fails("b", &["pull", "--platform", "linux/s390x", &single]);
    assert!(
        error.contains("no matching manifest for linux/s390x")
            && error.contains("available: linux/"),
        "{error}"
    );
    let error = hoist.fails("a", &["push", "not/in/store:1", "--tag", &missing]);
    assert!(error.contains("not/in/store:1"), "{error}");
    // A registry that is not there: connection refused, named.
    let dead = format!("127.0.0.1:{}/x:1", support::free_port());
    let error = hoist.fails("a", &["pull", &dead]);
    assert!(error.contains("cannot reach 127.0.0.1"), "{error}");
    // A prefix blocked in the configuration is refused before any request.
    std::fs::write(
        hoist.dir.path().join("registries.conf"),
        format!(
            "[[registry]]\nprefix = \"{}/single\"\nblocked = true\n",
            registry.addr
        ),
    )
    .unwrap();
    let error = hoist.fails("b", &["pull", &single]);
    assert!(
        error.contains("is blocked by the registry configuration"),
        "{error}"
    );
}

#[test]
fn tls_registry_with_ca_file_from_the_configuration() {
    let Some(registry) = TestRegistry::start_tls() else {
        return;
    };
    let hoist = Hoist::new();
    hoist.import("a", "tls:1", "tls\n");
    let target = format!("{}/tls/app:1", registry.addr);
    let error = hoist.fails("a", &["push", "tls:1", "--tag", &target]);
    assert!(error.contains("invalid peer certificate"), "{error}");
    std::fs::write(
        hoist.dir.path().join("registries.conf"),
        format!(
            "[[registry]]\nprefix = \"{}\"\nca-file = \"{}\"\n",
            registry.addr,
            registry.ca_file().display()
        ),
    )
    .unwrap();
    hoist.ok("a", &["push", "tls:1", "--tag", &target]);
    hoist.ok("b", &["pull", &target]);
    assert_eq!(hoist.image_id("a", "tls:1"), hoist.image_id("b", &target));
}

#[test]
fn docker_hub_names_resolve_through_a_mirror() {
    let Some(mirror) = TestRegistry::start() else {
        return;
    };
    let hoist = Hoist::new();
    hoist.import("a", "golang:1.24", "pretend go\n");
    hoist.ok(
        "a",
        &[
            "push",
            "golang:1.24",
            "--tag",
            &format!("{}/library/golang:1.24", mirror.addr),
        ],
    );
    // The first mirror is dead; the second serves. The origin (Docker Hub) is never asked.
    let dead = support::free_port();
    std::fs::write(
        hoist.dir.path().join("registries.conf"),
        format!(
            "registry-mirrors = [\"http://127.0.0.1:{dead}\", \"http://{}\"]\n",
            mirror.addr
        ),
    )
    .unwrap();
    let output = hoist.run("b", &["pull", "golang:1.24"]);
    let stderr = output.stderr.as_str();
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "127.0.0.1:{dead}: failed, trying the next endpoint"
        )),
        "{stderr}"
    );
    assert_eq!(output.stdout, "docker.io/library/golang:1.24\n");
    assert_eq!(
        hoist.image_id("b", "golang:1.24"),
        hoist.image_id("a", "golang:1.24")
    );
}

#[test]
fn login_against_a_token_auth_registry() {
    let Some(registry) = TestRegistry::start_with_token_auth("hoister", "t0ken-pass") else {
        return;
    };
    let hoist = Hoist::new();
    hoist.import("a", "tokened:1", "token auth\n");
    let target = format!("{}/team/tokened:1", registry.addr);
    let error = hoist.fails("a", &["push", "tokened:1", "--tag", &target]);
    assert!(
        error.contains("unauthorized") && error.contains("repository:team/tokened:pull,push"),
        "{error}"
    );
    let error = hoist.fails(
        "a",
        &["login", &registry.addr, "-u", "hoister", "-p", "wrong"],
    );
    assert!(
        error.contains("unauthorized") && error.contains("token server"),
        "{error}"
    );
    assert_eq!(
        hoist.ok(
            "a",
            &["login", &registry.addr, "-u", "hoister", "-p", "t0ken-pass"]
        ),
        "Login Succeeded\n"
    );
    hoist.ok("a", &["push", "tokened:1", "--tag", &target]);
    hoist.ok("a", &["logout", &registry.addr]);
    // Pulling needs no login: the token server grants anonymous pull.
    hoist.ok("b", &["pull", &target]);
    assert_eq!(
        hoist.image_id("a", "tokened:1"),
        hoist.image_id("b", &target)
    );
}

#[test]
fn copy_from_an_image_in_the_registry_pulls_it_with_layer_progress() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let hoist = Hoist::new();
    hoist.import("a", "donor:1", "copied out of a pulled image\n");
    let remote = format!("{}/tools/donor:1", registry.addr);
    hoist.ok("a", &["push", "donor:1", "--tag", &remote]);

    let context = hoist.dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM scratch\nCOPY --from={remote} /hello.txt /copied.txt\n"),
    )
    .unwrap();
    let out = hoist.dir.path().join("out");
    let spec = format!("type=local,dest={}", out.display());
    // A fresh store: the COPY --from image is pulled by the build, through the same path as FROM.
    let build = hoist.run(
        "b",
        &[
            "build",
            "--progress",
            "plain",
            "-o",
            &spec,
            context.to_str().unwrap(),
        ],
    );
    let stderr = build.stderr.as_str();
    assert!(build.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("copied.txt")).unwrap(),
        "copied out of a pulled image\n"
    );
    assert!(
        stderr.contains(&format!("#1 [internal] pull {remote}\n")),
        "{stderr}"
    );
    assert_eq!(
        hoist.image_id("b", &remote),
        hoist.image_id("a", "donor:1"),
        "the pulled image is in the build's store"
    );
    // One finished status line per blob: `#1 sha256:… 1.20MB / 1.20MB 0.1s done`.
    let finished: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("#1 sha256:") && l.ends_with(" done"))
        .collect();
    assert!(
        finished
            .iter()
            .any(|l| l.contains("MB / ") && l.split(' ').nth(2) == l.split(' ').nth(4)),
        "{stderr}"
    );
    assert!(stderr.contains("#1 DONE "), "{stderr}");
}

/// `sha256:<hex>` of `bytes`.
fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Writes `bytes` as a blob of the OCI layout at `layout`; returns its digest.
fn write_layout_blob(layout: &std::path::Path, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let path = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    std::fs::write(path, bytes).unwrap();
    digest
}

/// The layer records of a store (`layers-v1/sha256/*.json`), parsed.
fn layer_records(store: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_dir(store.join("layers-v1/sha256"))
        .unwrap()
        .map(|entry| {
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap()
        })
        .collect()
}

/// The layer record of the blob `digest` (`sha256:…`), parsed.
fn layer_record(store: &std::path::Path, digest: &str) -> serde_json::Value {
    let path = store
        .join("layers-v1/sha256")
        .join(format!("{}.json", &digest["sha256:".len()..]));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Committed snapshot entries of a store (temporary `.tmp-*` directories left out).
fn snapshots(store: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(store.join("snapshots-v1")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.') && !name.ends_with(".lock"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A pull records the diffIDs the config announces without hashing the tars; the first unpack checks them. An
/// image whose config lies about a layer's diffID pulls, then fails where it is first used (a build's
/// `COPY --from`) with an error naming both diffIDs, and leaves no snapshot; a truthful one unpacks and its record
/// becomes verified.
#[test]
fn pulled_diff_ids_are_verified_at_first_unpack() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("skopeo") {
        return;
    }
    let hoist = Hoist::new();
    hoist.import("a", "honest:1", "diffID checked at unpack\n");
    let honest = format!("{}/honest:1", registry.addr);
    hoist.ok("a", &["push", "honest:1", "--tag", &honest]);

    // The same layer under a config announcing another diffID: copied to an OCI layout, edited, copied back.
    let layout = hoist.dir.path().join("layout");
    let layout_ref = format!("oci:{}:img", layout.display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{honest}"),
        &layout_ref,
    ]);
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &serde_json::Value| -> Vec<u8> {
        let digest = digest.as_str().unwrap();
        std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap()
    };
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&blob(&index["manifests"][0]["digest"])).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&blob(&manifest["config"]["digest"])).unwrap();
    let true_diff_id = config["rootfs"]["diff_ids"][0].as_str().unwrap().to_owned();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let wrong_diff_id = sha256_digest(b"not the layer's tar");
    config["rootfs"]["diff_ids"][0] = wrong_diff_id.clone().into();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = write_layout_blob(&layout, &config_bytes).into();
    manifest["config"]["size"] = config_bytes.len().into();
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = write_layout_blob(&layout, &manifest_bytes).into();
    index["manifests"][0]["size"] = manifest_bytes.len().into();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let lying = format!("{}/lying:1", registry.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &layout_ref,
        &format!("docker://{lying}"),
    ]);

    let build_copying_from = |store: &str, image: &str| {
        let context = hoist.dir.path().join(format!("context-{store}"));
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM scratch\nCOPY --from={image} /hello.txt /copied.txt\n"),
        )
        .unwrap();
        let out = hoist.dir.path().join(format!("out-{store}"));
        let spec = format!("type=local,dest={}", out.display());
        let run = hoist.run(store, &["build", "-o", &spec, context.to_str().unwrap()]);
        (run, out)
    };

    // The lying image pulls (its blobs are what the manifest names), recorded unverified.
    let store = hoist.dir.path().join("lying");
    hoist.ok("lying", &["pull", &lying]);
    let records = layer_records(&store);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["diffID"], wrong_diff_id.as_str());
    assert_eq!(records[0]["diffIdVerified"], false);
    hoist.ok("lying", &["check"]);
    let (build, _) = build_copying_from("lying", &lying);
    let stderr = build.stderr.as_str();
    assert!(!build.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "does not match the diffID its image config announces: expected {wrong_diff_id}, got {true_diff_id}"
        )),
        "{stderr}"
    );
    assert_eq!(snapshots(&store), Vec::<String>::new());
    assert_eq!(layer_record(&store, &layer)["diffIdVerified"], false);
    hoist.ok("lying", &["check"]);

    // The honest image unpacks, and its record is verified from then on.
    let store = hoist.dir.path().join("honest");
    hoist.ok("honest", &["pull", &honest]);
    assert_eq!(layer_record(&store, &layer)["diffIdVerified"], false);
    let (build, out) = build_copying_from("honest", &honest);
    assert!(build.status.success(), "{}", build.stderr);
    assert_eq!(
        std::fs::read_to_string(out.join("copied.txt")).unwrap(),
        "diffID checked at unpack\n"
    );
    let record = layer_record(&store, &layer);
    assert_eq!(record["diffID"], true_diff_id.as_str());
    assert_eq!(record["diffIdVerified"], true);
    // The pulled layer's snapshot (a build may add its own).
    let key = format!("-{}", true_diff_id.replace(':', "-"));
    assert!(
        snapshots(&store).iter().any(|name| name.ends_with(&key)),
        "{:?}",
        snapshots(&store)
    );
    hoist.ok("honest", &["check"]);
}

/// The store's manifest of `reference` (parsed), read from the store's files.
fn stored_manifest(store: &std::path::Path, reference: &str) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("references-v1.json")).unwrap()).unwrap();
    let target = index["references"][reference].as_str().unwrap();
    let manifest = index["images"][target]["manifest"].as_str().unwrap();
    let hex = manifest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&std::fs::read(store.join("blobs-v1/sha256").join(hex)).unwrap())
        .unwrap()
}

fn blob_count(store: &std::path::Path) -> usize {
    std::fs::read_dir(store.join("blobs-v1/sha256"))
        .unwrap()
        .count()
}

fn layer_media_types(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn push_shows_each_layer_compressing_before_its_upload_and_quiet_shows_nothing() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let hoist = Hoist::new();
    let context = hoist.dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("a.txt"), "first layer\n".repeat(50_000)).unwrap();
    std::fs::write(context.join("b.txt"), "second layer\n".repeat(50_000)).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n",
    )
    .unwrap();
    hoist.ok(
        "a",
        &["build", "-q", "-t", "shown:1", context.to_str().unwrap()],
    );
    let manifest = stored_manifest(&hoist.dir.path().join("a"), "shown:1");

    let remote = format!("{}/shown:1", registry.addr);
    let output = hoist.run("a", &["push", "shown:1", "--tag", &remote]);
    let stderr = output.stderr.as_str();
    assert!(output.status.success(), "{stderr}");
    let line = |prefix: &str, what: &str| {
        stderr
            .lines()
            .position(|l| l.starts_with(prefix) && l.contains(what))
            .unwrap_or_else(|| panic!("no {prefix}: {what} line in {stderr}"))
    };
    let digest_line = line(&format!("{}: digest: ", remote), "size:");
    for layer in manifest["layers"].as_array().unwrap() {
        let plain = layer["digest"].as_str().unwrap();
        let short = &plain["sha256:".len().."sha256:".len() + 12];
        let compressing = line(short, ": Compressing ");
        let compressed = line(short, ": Compressed to ");
        let gzip = stderr.lines().nth(compressed).unwrap();
        let gzip_short = gzip
            .split("Compressed to ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap();
        let pushing = line(gzip_short, ": Pushing ");
        let complete = line(gzip_short, ": Complete ");
        assert!(
            compressing < compressed
                && compressed < pushing
                && pushing < complete
                && complete < digest_line,
            "{stderr}"
        );
    }

    // A quiet push prints the digest only, and nothing on stderr, though it compresses the layers too (another
    // store, built the same way).
    hoist.ok(
        "b",
        &["build", "-q", "-t", "shown:1", context.to_str().unwrap()],
    );
    let again = format!("{}/quiet/shown:1", registry.addr);
    let quiet = hoist.run("b", &["push", "-q", "shown:1", "--tag", &again]);
    assert!(quiet.status.success());
    assert_eq!(quiet.stderr, "");
    assert!(quiet.stdout.starts_with(&again), "{}", quiet.stdout);
}

#[test]
fn built_layers_are_plain_tars_and_pushes_send_them_compressed() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("skopeo") {
        return;
    }
    let hoist = Hoist::new();
    let context = hoist.dir.path().join("context");
    std::fs::create_dir_all(context.join("data")).unwrap();
    std::fs::write(
        context.join("data/text.txt"),
        "a layer that gzip makes much smaller\n".repeat(20_000),
    )
    .unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY data /data\nWORKDIR /work\n",
    )
    .unwrap();
    let ctx = context.to_str().unwrap();
    hoist.ok("a", &["build", "-q", "-t", "built:1", ctx]);
    let store = hoist.dir.path().join("a");
    let id = hoist.image_id("a", "built:1");

    // In the store: plain tars, each named by its diffID.
    let manifest = stored_manifest(&store, "built:1");
    let plain = "application/vnd.oci.image.layer.v1.tar";
    assert_eq!(layer_media_types(&manifest), [plain, plain]);
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            store
                .join("blobs-v1/sha256")
                .join(id.strip_prefix("sha256:").unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    for (layer, diff_id) in manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
    {
        assert_eq!(layer["digest"], *diff_id);
    }

    // The push sends gzip layers under the same config (image ID).
    let remote = format!("{}/lazy/built:1", registry.addr);
    let digest = pushed_digest(&hoist.ok("a", &["push", "-q", "built:1", "--tag", &remote]));
    let raw = skopeo_inspect(&remote, true);
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    assert_eq!(layer_media_types(&raw), [gzip, gzip]);
    assert_eq!(raw["config"]["digest"], id.as_str());
    let pushed_text_layer = raw["layers"][0]["size"].as_u64().unwrap();
    assert!(pushed_text_layer < manifest["layers"][0]["size"].as_u64().unwrap() / 10);
    // The store still names the plain manifest.
    assert_eq!(stored_manifest(&store, "built:1"), manifest);

    // A second push reuses the recorded variants: no new blob, the same digest.
    let blobs = blob_count(&store);
    let again = format!("{}/lazy/again:1", registry.addr);
    let digest_again = pushed_digest(&hoist.ok("a", &["push", "-q", "built:1", "--tag", &again]));
    assert_eq!(digest_again, digest);
    assert_eq!(blob_count(&store), blobs);

    // BuildKit's exporter options: zstd and uncompressed.
    for (compression, media_type) in [
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("uncompressed", plain),
    ] {
        let name = format!("{}/lazy/built:{compression}", registry.addr);
        let output = format!("type=registry,name={name},compression={compression}");
        hoist.ok("a", &["build", "-q", "--output", &output, ctx]);
        let raw = skopeo_inspect(&name, true);
        assert_eq!(layer_media_types(&raw), [media_type, media_type], "{raw}");
        assert_eq!(raw["config"]["digest"], id.as_str());
    }

    // An OCI tarball has gzip layers too, and skopeo reads it.
    let oci = hoist.dir.path().join("image-oci.tar");
    let output = format!("type=oci,dest={}", oci.display());
    hoist.ok("a", &["build", "-q", "--output", &output, ctx]);
    let archive = format!("oci-archive:{}", oci.display());
    let raw: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", "--raw", &archive])).unwrap();
    assert_eq!(layer_media_types(&raw), [gzip, gzip]);
    assert_eq!(raw["config"]["digest"], id.as_str());
    // The same variants as the push: the same manifest digest.
    let inspected: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", &archive])).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    let copied = hoist.dir.path().join("copied");
    skopeo(&["copy", &archive, &format!("dir:{}", copied.display())]);
    assert!(copied.join("manifest.json").is_file());
}
