//! examples/lambda end to end with the real binary: `hoist build --target dev` adds the emulator from `hoist/rie`
//! (an image hoist makes itself from the static `aws-lambda-rie` that `scripts/build-rie` builds), `hoist run -p`
//! publishes it, and an invoke over HTTP returns the shell function's answer. The base is a busybox image made with
//! `hoist import` from Debian's busybox-static, so nothing is pulled. Needs root (containers).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hoist_testkit::{BusyboxRootfs, HoistCmd, Run, free_port};

const APPLETS: &[&str] = &["sh", "wget", "sed", "tr", "cat", "sleep"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The static emulator, built (or found up to date) once per test process by `scripts/build-rie`.
fn static_rie() -> &'static Path {
    static RIE: OnceLock<PathBuf> = OnceLock::new();
    RIE.get_or_init(|| {
        let output = Command::new("bash")
            .arg(workspace().join("scripts/build-rie"))
            .output()
            .expect("run scripts/build-rie");
        assert!(
            output.status.success(),
            "scripts/build-rie failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("build-rie prints the path last"),
        )
    })
}

struct Fixture {
    dir: tempfile::TempDir,
    hoist: HoistCmd,
}

impl Fixture {
    /// A store with `busybox:local`: busybox, the applets the function's bootstrap uses, and a sticky /tmp.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tar = BusyboxRootfs::new(dir.path().join("rootfs"))
            .applets(APPLETS)
            .dirs(&["tmp"])
            .tar_flags(&["--mode=u+rwX,go+rX"])
            .tar();
        let hoist = HoistCmd::new(env!("CARGO_BIN_EXE_hoist"))
            .isolated(dir.path())
            .env("HOIST_RIE", static_rie());
        hoist.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
        Fixture { dir, hoist }
    }

    /// `hoist build --progress plain ARGS examples/lambda`.
    fn build(&self, args: &[&str]) -> Run {
        let example = workspace().join("examples/lambda");
        let example = example.to_str().unwrap();
        self.hoist
            .run(&[&["build", "--progress", "plain"], args, &[example]].concat())
    }

    fn inspect(&self, reference: &str) -> serde_json::Value {
        let stdout = self.hoist.ok(&["inspect", reference]);
        let mut images: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
        images.remove(0)
    }
}

fn assert_success(run: &Run) {
    assert!(run.success(), "{}", run.describe());
}

/// POSTs `body` to the invoke endpoint; `None` while nothing answers yet (the container is starting).
fn invoke(port: u16, body: &str) -> Option<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = format!(
        "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    Some((head.to_owned(), body.to_owned()))
}

struct Terminated(Child);

impl Drop for Terminated {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lambda_example_dev_target_answers_invokes_through_the_emulator() {
    let fixture = Fixture::new();
    let output = fixture.build(&["--target", "dev", "-t", "fn:dev"]);
    assert_success(&output);
    let dev = fixture.inspect("fn:dev");
    assert_eq!(
        dev["Config"]["Entrypoint"],
        serde_json::json!(["/aws-lambda-rie", "/var/task/bootstrap"])
    );
    // hoist/rie was made locally, from the static binary, under both of its names.
    let rie = fixture.inspect("hoist/rie");
    assert_eq!(
        rie["Config"]["Entrypoint"],
        serde_json::json!(["/aws-lambda-rie"])
    );
    assert_eq!(rie["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    let versioned = fixture.inspect(&format!("hoist/rie:{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(versioned["Id"], rie["Id"]);

    assert_invokes_answer(&fixture, "fn:dev");
}

/// Runs `image` with its port 8080 published and checks two invokes' answers.
fn assert_invokes_answer(fixture: &Fixture, image: &str) {
    let port = free_port();
    let child = fixture
        .hoist
        .command(&["run", "--rm", "-p", &format!("{port}:8080"), image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _container = Terminated(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (head, body) = loop {
        if let Some(reply) = invoke(port, "{}") {
            break reply;
        }
        assert!(Instant::now() < deadline, "the emulator did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    assert_eq!(
        body,
        r#"{"message":"Hello, world! (from hoist's Lambda example)"}"#
    );
    let (head, body) = invoke(port, r#"{"name":"Ada"}"#).expect("a second invoke");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    assert_eq!(
        body,
        r#"{"message":"Hello, Ada! (from hoist's Lambda example)"}"#
    );
}

#[test]
fn lambda_example_bootstrap_runs_from_hoist_rie_itself_without_libc() {
    // FROM hoist/rie: the emulator's own image (scratch plus one static file) with its default entrypoint, which
    // runs /var/task/bootstrap; busybox-static is the only other binary, so nothing in the image has a libc.
    let fixture = Fixture::new();
    let context = fixture.dir.path().join("on-rie");
    fs::create_dir(&context).unwrap();
    BusyboxRootfs::new(context.join("rootfs"))
        .applets(APPLETS)
        .dirs(&["tmp"])
        .write();
    fs::copy(
        workspace().join("examples/lambda/bootstrap"),
        context.join("bootstrap"),
    )
    .unwrap();
    fs::write(
        context.join("Dockerfile"),
        "FROM hoist/rie\nCOPY rootfs/ /\nCOPY bootstrap /var/task/bootstrap\n",
    )
    .unwrap();
    fixture
        .hoist
        .ok(&["build", "-t", "fn:on-rie", context.to_str().unwrap()]);
    let image = fixture.inspect("fn:on-rie");
    assert_eq!(
        image["Config"]["Entrypoint"],
        serde_json::json!(["/aws-lambda-rie"])
    );
    assert_eq!(
        image["Config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_invokes_answer(&fixture, "fn:on-rie");
}

#[test]
fn lambda_example_default_target_is_production_without_the_emulator() {
    let fixture = Fixture::new();
    assert_success(&fixture.build(&["-t", "fn:release"]));
    let release = fixture.inspect("fn:release");
    assert_eq!(
        release["Config"]["Entrypoint"],
        serde_json::json!(["/var/task/bootstrap"])
    );
    // busybox's layer plus WORKDIR and the bootstrap: the emulator's layer is only in dev.
    assert_eq!(release["RootFS"]["Layers"].as_array().unwrap().len(), 3);

    // The same binary gives the same hoist/rie (created at the epoch), so a rebuild of dev is all cache hits.
    assert_success(&fixture.build(&["--target", "dev", "-t", "fn:dev"]));
    let rie = fixture.inspect("hoist/rie");
    assert_eq!(rie["Created"], "1970-01-01T00:00:00Z");
    let first = fixture.inspect("fn:dev")["Id"].clone();
    assert_success(&fixture.build(&["--target", "dev", "-t", "fn:dev"]));
    assert_eq!(fixture.inspect("fn:dev")["Id"], first);
    assert_eq!(fixture.inspect("hoist/rie")["Id"], rie["Id"]);
}

#[test]
fn lambda_example_build_says_why_a_dynamic_emulator_cannot_be_used() {
    let fixture = Fixture::new();
    let example = workspace().join("examples/lambda");
    let stderr = fixture.hoist.clone().env("HOIST_RIE", "/bin/sh").fails(&[
        "build",
        "--target",
        "dev",
        example.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains("$HOIST_RIE=/bin/sh: dynamically linked"),
        "{stderr}"
    );
}
