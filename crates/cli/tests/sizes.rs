//! `hoist sizes` as the real binary, on a small multi-stage Dockerfile over a busybox image made with `hoist import`:
//! targets, bases and layer attribution in JSON, Markdown rows, the HTML page, and (`docker_*`, the docker group)
//! sizes equal to what Docker reports for the same images after `hoist save | docker load`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_testkit::{BusyboxRootfs, HoistCmd};
use serde_json::Value;

const DOCKERFILE: &str = "\
FROM busybox:local AS base
COPY data/ /data/
FROM base AS app
WORKDIR /app
COPY app.txt /app/app.txt
FROM scratch AS tiny
COPY --from=app /app/app.txt /app.txt
";

struct Fixture {
    dir: tempfile::TempDir,
    hoist: HoistCmd,
}

impl Fixture {
    /// A store with `busybox:local`, and a build context for [`DOCKERFILE`]: a 300 kB file with a hard link and a
    /// symlink to it, and a small one.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tar = BusyboxRootfs::new(dir.path().join("rootfs"))
            .applets(&["sh"])
            .tar();
        let context = dir.path().join("context");
        fs::create_dir_all(context.join("data")).unwrap();
        fs::write(context.join("Dockerfile"), DOCKERFILE).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(context.join("data/big"), &big).unwrap();
        fs::hard_link(context.join("data/big"), context.join("data/big-again")).unwrap();
        symlink("big", context.join("data/link")).unwrap();
        fs::write(context.join("app.txt"), "hello from the app layer\n").unwrap();
        let hoist = HoistCmd::new(env!("CARGO_BIN_EXE_hoist")).isolated(dir.path());
        hoist.ok(&["import", path(&tar), "busybox:local"]);
        Fixture { dir, hoist }
    }

    fn context(&self) -> PathBuf {
        self.dir.path().join("context")
    }

    /// `hoist build -q ARGS <context>`, which must succeed.
    fn build(&self, args: &[&str]) {
        let context = self.context();
        self.hoist
            .ok(&[&["build", "-q"], args, &[path(&context)]].concat());
    }

    fn sizes(&self, args: &[&str]) -> String {
        self.hoist.ok(&[&["sizes"], args].concat())
    }

    fn sizes_json(&self, args: &[&str]) -> Vec<Value> {
        let text = self.sizes(&[&["--format", "json"], args].concat());
        serde_json::from_str(&text).unwrap()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn sizes_reports_every_target_with_its_base_and_its_layers_authors() {
    let fixture = Fixture::new();
    let context = fixture.context();
    let html = fixture.dir.path().join("sizes.html");
    let report = fixture.sizes_json(&["--html", path(&html), path(&context)]);
    let names: Vec<&str> = report.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "app", "tiny"]);
    let (base, app, tiny) = (&report[0], &report[1], &report[2]);

    assert_eq!(base["base"]["name"], "busybox:local");
    assert_eq!(base["base"]["layers"], 1);
    assert_eq!(app["base"]["name"], "busybox:local");
    assert_eq!(
        tiny["base"],
        serde_json::json!({"name": "scratch", "layers": 0})
    );

    // base: busybox's layer, then the COPY of data/. app adds WORKDIR and its COPY.
    let layers = |image: &Value| image["layers"].as_array().unwrap().clone();
    assert_eq!(layers(base).len(), 2);
    assert_eq!(layers(app).len(), 4);
    assert_eq!(layers(tiny).len(), 1);
    assert_eq!(layers(base)[0]["fromBase"], true);
    assert_eq!(layers(base)[1]["fromBase"], false);
    let busybox_size = fs::metadata("/bin/busybox").unwrap().len();
    assert_eq!(
        layers(base)[0]["size"],
        busybox_size + "busybox".len() as u64
    );
    assert!(
        layers(base)[1]["createdBy"]
            .as_str()
            .unwrap()
            .contains("COPY data/ /data/"),
        "{}",
        layers(base)[1]
    );
    assert!(
        layers(app)[3]["createdBy"]
            .as_str()
            .unwrap()
            .contains("COPY app.txt /app/app.txt")
    );
    // One file's bytes: the scratch image is exactly app.txt.
    assert_eq!(tiny["size"], "hello from the app layer\n".len());
    for image in &report {
        let sum: u64 = layers(image)
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum();
        assert_eq!(image["size"].as_u64(), Some(sum), "{image}");
        let shares: f64 = layers(image)
            .iter()
            .map(|l| l["share"].as_f64().unwrap())
            .sum();
        assert!((shares - 1.0).abs() < 1e-9, "{image}");
    }
    // The biggest layer of base is busybox; of app, too.
    assert_eq!(base["biggest"][0], 0);
    assert_eq!(app["biggest"][0], 0);

    let page = fs::read_to_string(&html).unwrap();
    let total_layers: usize = report.iter().map(|i| layers(i).len()).sum();
    assert_eq!(page.matches("class=\"layer-bar\"").count(), total_layers);
    assert_eq!(page.matches("<rect class=\"layer\"").count(), total_layers);
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    assert!(!page.contains(" src=") && !page.contains(" href=") && !page.contains("<script"));

    // A cached second run with one target, in Markdown.
    let markdown = fixture.sizes(&["--format", "markdown", "--target", "tiny", path(&context)]);
    let rows: Vec<&str> = markdown.lines().collect();
    assert_eq!(rows.len(), 3, "{markdown}");
    assert_eq!(
        rows[0],
        "| target | base | size | layers | biggest layers |"
    );
    assert_eq!(
        rows[2],
        "| tiny | scratch | 25B | 1 | 25B (100.0%) `COPY /app/app.txt /app.txt # buildkit` |"
    );
}

#[test]
fn sizes_of_tagged_images_infer_the_base_and_print_a_table() {
    let fixture = Fixture::new();
    fixture.build(&["--target", "app", "-t", "sz:app"]);
    let report = fixture.sizes_json(&["sz:app"]);
    assert_eq!(report[0]["name"], "sz:app");
    assert_eq!(report[0]["base"]["name"], "busybox:local");
    let table = fixture.sizes(&["--top", "1", "sz:app", "busybox:local"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("IMAGE ") && lines[0].ends_with("BIGGEST LAYERS"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("sz:app ") && lines[1].contains(" busybox:local "),
        "{table}"
    );
    assert!(lines[1].ends_with("(base)"), "{table}");
    assert!(
        lines[2].starts_with("busybox:local ") && lines[2].contains(" - "),
        "{table}"
    );

    let missing = fixture.hoist.fails(&["sizes", "nope:1"]);
    assert!(missing.contains("nope:1"), "{missing}");
}

#[test]
fn docker_sizes_equal_docker_image_size() {
    let fixture = Fixture::new();
    let repo = format!("hoist-sizes-test-{}", std::process::id());
    let mut references = Vec::new();
    for target in ["base", "app", "tiny"] {
        let reference = format!("{repo}:{target}");
        fixture.build(&["--target", target, "-t", &reference]);
        references.push(reference);
    }
    let references: Vec<&str> = references.iter().map(String::as_str).collect();
    let report = fixture.sizes_json(&references);
    let archive = fixture.dir.path().join("images.tar");
    fixture
        .hoist
        .ok(&[&["save"], &references[..], &["-o", path(&archive)]].concat());
    let docker = |args: &[&str]| {
        let output = Command::new("/usr/bin/docker").args(args).output().unwrap();
        assert!(
            output.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    docker(&["load", "-i", path(&archive)]);
    let checks: Vec<(String, String, String, String)> = references
        .iter()
        .zip(&report)
        .map(|(reference, image)| {
            (
                docker(&["image", "inspect", "-f", "{{.Size}}", reference]),
                image["size"].to_string(),
                docker(&["images", "--format", "{{.Size}}", reference]),
                image["sizeHuman"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut rmi = vec!["rmi"];
    rmi.extend(&references);
    docker(&rmi);
    for (docker_size, size, docker_human, human) in checks {
        assert_eq!(size, docker_size);
        assert_eq!(human, docker_human);
    }
}
