//! The store commands (`images`, `tag`, `rmi`, `inspect`, `prune`) run as the real `hoist` binary against a private
//! store. Images are built with the store's library API from real tar layers made by tar(1).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use hoist_oci::{
    Digest, DigestExt, Expected, ManifestFormat, Reference, Store, layer_descriptor, units,
};
use hoist_testkit::{HoistCmd, Run, tar_dir};

/// A private store and the `hoist` binary pointed at it.
struct TestStore {
    _dir: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    /// hoist with `--root root`.
    hoist: HoistCmd,
}

/// An image built for a test.
struct Built {
    id: Digest,
    diff_ids: Vec<Digest>,
    /// Bytes of its files: the SIZE `docker images` would show.
    content: u64,
    /// Bytes of its blobs (manifest, config, layers).
    blob_bytes: u64,
}

impl TestStore {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let work = dir.path().join("work");
        fs::create_dir_all(&work).unwrap();
        Self {
            _dir: dir,
            hoist: HoistCmd::new(env!("CARGO_BIN_EXE_hoist")).root(&root),
            root,
            work,
        }
    }

    fn store(&self) -> Store {
        Store::open(&self.root).unwrap()
    }

    /// Builds an image with one layer per file list, tagged `tag`, created `age` ago.
    fn build(&self, tag: &str, layers: &[&[(&str, &str)]], age: Duration) -> Built {
        let store = self.store();
        let mut descriptors = Vec::new();
        let mut diff_ids = Vec::new();
        let mut content = 0;
        let mut blob_bytes = 0;
        for (i, files) in layers.iter().enumerate() {
            let tree = self
                .work
                .join(format!("{}-{i}", tag.replace([':', '/'], "_")));
            for (path, text) in *files {
                let path = tree.join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, text).unwrap();
                content += text.len() as u64;
            }
            let archive = tree.with_extension("tar.gz");
            let flags = ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-z"];
            tar_dir(&tree, &archive, &flags);
            let layer = store
                .ingest_layer(fs::File::open(&archive).unwrap(), &Expected::unknown())
                .unwrap();
            blob_bytes += layer.blob.size;
            diff_ids.push(layer.info.diff_id);
            descriptors.push(layer_descriptor(&layer, ManifestFormat::Oci));
        }
        let created = units::format_docker_time(SystemTime::now() - age);
        // "2026-11-24 00:23:45 +0000 UTC" → "2026-11-24T00:23:45Z"
        let created = format!("{}T{}Z", &created[..10], &created[11..19]);
        let config = serde_json::to_vec(&serde_json::json!({
            "created": created,
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/srv"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()},
            "history": layers.iter().map(|_| serde_json::json!({"created": created, "created_by": "COPY . /"})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let image = store
            .write_image(&config, &descriptors, ManifestFormat::Oci)
            .unwrap();
        store
            .tag(&tag.parse::<Reference>().unwrap(), &image.manifest)
            .unwrap();
        blob_bytes += image.manifest.size() + image.config.size();
        Built {
            id: hoist_oci::digest_from_oci(image.config.digest()).unwrap(),
            diff_ids,
            content,
            blob_bytes,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.hoist.command(args)
    }

    fn run(&self, args: &[&str]) -> Run {
        self.hoist.run(args)
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.hoist.ok(args)
    }

    /// Runs and requires failure with `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let run = self.run(args);
        assert_eq!(run.code(), Some(code), "hoist {args:?}\n{}", run.describe());
        run.stderr
    }
}

/// Total length of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            bytes_under(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
fn images_lists_like_docker() {
    let t = TestStore::new();
    let app = t.build(
        "app:1.0",
        &[&[("bin/app", "0123456789")], &[("etc/app.conf", "x=1\n")]],
        Duration::from_secs(2 * 3600),
    );
    let base = t.build(
        "registry.local:5000/team/base",
        &[&[("a", "a")]],
        Duration::from_secs(3 * 86_400),
    );

    let expected = format!(
        "REPOSITORY                      TAG       IMAGE ID       CREATED       SIZE\n\
         app                             1.0       {}   2 hours ago   14B\n\
         registry.local:5000/team/base   latest    {}   3 days ago    1B\n",
        app.id.short_id(),
        base.id.short_id()
    );
    assert_eq!(t.ok(&["images"]), expected);
    assert_eq!(app.content, 14);

    assert_eq!(
        t.ok(&["images", "-q"]),
        format!("{}\n{}\n", app.id.short_id(), base.id.short_id())
    );
    assert_eq!(
        t.ok(&["images", "--quiet", "--no-trunc", "app"]),
        format!("{}\n", app.id)
    );
    assert_eq!(t.ok(&["images", "-q", "app:2.0"]), "");

    let json = t.ok(&["images", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["Repository"], "app");
    assert_eq!(rows[0]["Tag"], "1.0");
    assert_eq!(rows[0]["ID"], app.id.short_id());
    assert_eq!(rows[0]["Size"], "14B");
    assert_eq!(rows[0]["CreatedSince"], "2 hours ago");
    assert_eq!(rows[1]["Repository"], "registry.local:5000/team/base");
    assert!(
        rows[1]["CreatedAt"]
            .as_str()
            .unwrap()
            .ends_with(" +0000 UTC")
    );

    // An empty store lists just the header.
    let empty = TestStore::new();
    assert_eq!(
        empty.ok(&["images"]),
        "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    );
}

#[test]
fn root_comes_from_hoist_root_env() {
    let t = TestStore::new();
    let built = t.build("env:1", &[&[("f", "abc")]], Duration::from_secs(60));
    let stdout = HoistCmd::new(env!("CARGO_BIN_EXE_hoist"))
        .root_env(&t.root)
        .ok(&["images", "-q"]);
    assert_eq!(stdout, format!("{}\n", built.id.short_id()));
}

#[test]
fn tag_and_rmi_follow_docker() {
    let t = TestStore::new();
    let built = t.build("app:1", &[&[("f", "abc")]], Duration::from_secs(60));
    assert_eq!(t.ok(&["tag", "app:1", "app:2"]), "");
    assert_eq!(t.ok(&["tag", &built.id.short_id(), "other/app"]), "");
    let listed = t.ok(&["images", "--format", "json"]);
    let mut tags: Vec<String> = listed
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}:{}",
                row["Repository"].as_str().unwrap(),
                row["Tag"].as_str().unwrap()
            )
        })
        .collect();
    tags.sort();
    assert_eq!(tags, ["app:1", "app:2", "other/app:latest"]);

    assert_eq!(t.ok(&["rmi", "app:2"]), "Untagged: app:2\n");
    // By ID across two repositories: refused without --force.
    let stderr = t.fails(&["rmi", &built.id.short_id()], 1);
    assert!(
        stderr.starts_with(&format!(
            "error: conflict: unable to delete {} (must be forced)",
            built.id.short_id()
        )),
        "{stderr}"
    );
    assert_eq!(t.ok(&["rmi", "other/app"]), "Untagged: other/app:latest\n");
    assert_eq!(
        t.ok(&["rmi", "app:1"]),
        format!("Untagged: app:1\nDeleted: {}\n", built.id)
    );
    assert_eq!(t.ok(&["images", "-q"]), "");

    // Errors: unknown images, bad references; rmi goes on with the other arguments.
    assert_eq!(
        t.fails(&["rmi", "nothere"], 1),
        "error: no such image: nothere:latest\n"
    );
    assert_eq!(
        t.fails(&["tag", "nothere:1", "x"], 1),
        "error: no such image: nothere:1\n"
    );
    let stderr = t.fails(&["tag", "app:1", "Bad/Name"], 2);
    assert!(stderr.contains("invalid reference format"), "{stderr}");
    // The second build's config carries its own creation time, so its ID is its own.
    let again = t.build("again:1", &[&[("f", "abc")]], Duration::from_secs(60));
    let output = t.run(&["rmi", "missing:1", "again:1"]);
    assert_eq!(output.code(), Some(1));
    assert_eq!(
        output.stdout,
        format!("Untagged: again:1\nDeleted: {}\n", again.id)
    );
    assert_eq!(output.stderr, "error: no such image: missing:1\n");
}

#[test]
fn inspect_prints_docker_shaped_json_and_a_table() {
    let t = TestStore::new();
    let built = t.build(
        "app:1",
        &[&[("bin/x", "12345")], &[("etc/y", "678")]],
        Duration::from_secs(60),
    );
    t.ok(&["tag", "app:1", "app:latest"]);

    let out = t.ok(&["inspect", "app"]);
    assert!(out.starts_with("[\n    {\n        \"Id\": "), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let image = &json[0];
    assert_eq!(image["Id"], built.id.to_string());
    assert_eq!(
        image["RepoTags"],
        serde_json::json!(["app:1", "app:latest"])
    );
    assert_eq!(image["Os"], "linux");
    assert_eq!(image["Architecture"], "amd64");
    assert_eq!(image["Size"], 8);
    assert_eq!(image["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(image["Config"]["WorkingDir"], "/srv");
    assert_eq!(image["RootFS"]["Type"], "layers");
    let diff_ids: Vec<String> = built.diff_ids.iter().map(ToString::to_string).collect();
    assert_eq!(image["RootFS"]["Layers"], serde_json::json!(diff_ids));
    assert_eq!(image["History"].as_array().unwrap().len(), 2);
    assert_eq!(image["Layers"][0]["DiffID"], diff_ids[0]);
    assert_eq!(image["Layers"][1]["ContentSize"], 3);
    assert_eq!(
        image["Descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    let table = t.ok(&["inspect", "--format", "table", &built.id.short_id()]);
    assert!(
        table.contains(&format!("ID:           {}\n", built.id)),
        "{table}"
    );
    assert!(
        table.contains("References:   app:1, app:latest\n"),
        "{table}"
    );
    assert!(table.contains("Size:         8B\n"), "{table}");
    assert!(table.contains("Cmd:          /bin/sh\n"), "{table}");
    assert!(
        table.contains("LAYER          COMPRESSED   SIZE      DIFF ID        CREATED BY\n"),
        "{table}"
    );
    assert!(
        table.contains(&format!("{}   ", &built.diff_ids[1].encoded()[..12])),
        "{table}"
    );

    let output = t.run(&["inspect", "app:1", "nothere"]);
    assert_eq!(output.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(output.stderr, "error: no such image: nothere:latest\n");
}

#[test]
fn prune_reports_what_it_freed() {
    let t = TestStore::new();
    let kept = t.build(
        "kept:1",
        &[&[("k", "kept content")]],
        Duration::from_secs(60),
    );
    let dropped = t.build(
        "dropped:1",
        &[&[("d", "dropped content")]],
        Duration::from_secs(60),
    );
    // What a killed writer leaves: a partial blob in ingest-v1.
    fs::write(t.root.join("ingest-v1/1-dead-0"), b"half a layer").unwrap();
    assert_eq!(
        t.ok(&["images", "-q", "kept"]),
        format!("{}\n", kept.id.short_id())
    );
    t.ok(&["rmi", "dropped:1"]);

    let before = bytes_under(&t.root);
    let out = t.ok(&["prune"]);
    let freed = before - bytes_under(&t.root);
    // The dropped image's blobs, the partial file, and the dropped layer's metadata record.
    assert!(freed > dropped.blob_bytes + 12, "{freed}");
    assert_eq!(
        out,
        format!(
            "Deleted unreferenced blobs: 3\nDeleted leftovers of interrupted writes: 1\nTotal reclaimed space: {}\n",
            units::human_size(freed)
        )
    );
    assert!(t.ok(&["inspect", "kept:1"]).contains(&kept.id.to_string()));
    assert_eq!(
        t.ok(&["prune", "--keep-storage", "512MiB"]),
        "Total reclaimed space: 0B\n"
    );

    let stderr = t.fails(&["prune", "--keep-storage", "10XB"], 2);
    assert!(stderr.contains("invalid size"), "{stderr}");
}

/// Several `hoist` processes tag into one store at once while others prune: every tag lands, nothing breaks.
#[test]
fn concurrent_processes_lose_no_tag() {
    const TAGGERS: usize = 24;
    let t = TestStore::new();
    let built = t.build("base:1", &[&[("f", "shared")]], Duration::from_secs(60));
    let mut children = Vec::new();
    for i in 0..TAGGERS {
        children.push(
            t.command(&["tag", "base:1", &format!("copy{i}:v{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        if i % 6 == 0 {
            children.push(
                t.command(&["prune"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let ids = t.ok(&["images", "-q"]);
    assert_eq!(ids.lines().count(), TAGGERS + 1);
    assert!(ids.lines().all(|id| id == built.id.short_id()));
    for i in 0..TAGGERS {
        assert!(
            t.ok(&["inspect", &format!("copy{i}:v{i}")])
                .contains(&built.id.to_string())
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(Path::new(&t.root).join("references-v1.json")).unwrap())
            .unwrap();
    assert_eq!(index["references"].as_object().unwrap().len(), TAGGERS + 1);
}
