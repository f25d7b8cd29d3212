//! The plan's image config and history against a real BuildKit: dockerd's integrated
//! BuildKit (`DOCKER_BUILDKIT=1 /usr/bin/docker build`) builds a few Dockerfiles without RUN
//! on a base image made offline with `docker import`; `docker inspect` and `docker history`
//! must agree with the plan. The base image's config is read back from dockerd through a
//! `BaseImageResolver`, as the engine will read it from its store.
//!
//! Without dockerd the test fails, unless `HOIST_SKIP_PEER_TESTS=1` (then it says it
//! skipped). dockerd here is 20.10 (BuildKit 0.8), whose EXPOSE and HEALTHCHECK history
//! texts predate current BuildKit's (`EXPOSE map[80/tcp:{}]` vs `EXPOSE [80/tcp]`); those
//! two are compared for the config only. BuildKit 0.8 also wrote an ARG's history from its
//! declaration (`ARG V=default`) where current BuildKit writes the value used
//! (`ARG V=from-cli`, as `dispatchArg` does at the pinned commit); that case lists the
//! difference. See docs/conformance.md, "Planner".
#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use hoist_plan::{BaseImage, BaseImageResolver, HealthConfig, ImageConfig, PlanRequest, Platform};
use serde_json::Value;

const DOCKER: &str = "/usr/bin/docker";
const BASE: &str = "hoist-plan-peer-base:1";

fn docker(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .args(args)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .expect("running /usr/bin/docker")
}

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("docker prints UTF-8")
}

fn dockerd_available() -> bool {
    Path::new(DOCKER).exists()
        && docker(&["info", "--format", "{{.ServerVersion}}"])
            .status
            .success()
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|a| {
        a.iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// docker's `Config` JSON as an [`ImageConfig`].
fn config_from_json(c: &Value) -> ImageConfig {
    let health = c["Healthcheck"].as_object().map(|h| HealthConfig {
        test: strings(&h["Test"]).unwrap_or_default(),
        interval: Duration::from_nanos(h.get("Interval").and_then(Value::as_u64).unwrap_or(0)),
        timeout: Duration::from_nanos(h.get("Timeout").and_then(Value::as_u64).unwrap_or(0)),
        start_period: Duration::from_nanos(
            h.get("StartPeriod").and_then(Value::as_u64).unwrap_or(0),
        ),
        start_interval: Duration::from_nanos(
            h.get("StartInterval").and_then(Value::as_u64).unwrap_or(0),
        ),
        retries: h.get("Retries").and_then(Value::as_u64).unwrap_or(0) as u32,
    });
    ImageConfig {
        user: c["User"].as_str().unwrap_or_default().to_owned(),
        exposed_ports: keys(&c["ExposedPorts"]),
        env: strings(&c["Env"]).unwrap_or_default(),
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        volumes: keys(&c["Volumes"]),
        working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_owned(),
        labels: c["Labels"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default(),
        stop_signal: c["StopSignal"].as_str().unwrap_or_default().to_owned(),
        args_escaped: c["ArgsEscaped"].as_bool().unwrap_or(false),
        healthcheck: health,
        on_build: strings(&c["OnBuild"]).unwrap_or_default(),
        shell: strings(&c["Shell"]).unwrap_or_default(),
        author: String::new(),
    }
}

/// Reads base images back from dockerd.
struct Dockerd;

impl BaseImageResolver for Dockerd {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<BaseImage, String> {
        let out = docker(&["image", "inspect", reference]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let image = &json[0];
        Ok(BaseImage {
            reference: reference.to_owned(),
            platform: platform.clone(),
            config: config_from_json(&image["Config"]),
            history: Vec::new(),
            layers: image["RootFS"]["Layers"].as_array().map_or(0, Vec::len),
        })
    }
}

/// Builds `dockerfile` with BuildKit and returns (config, history texts, newest last).
fn buildkit(dockerfile: &str, tag: &str, extra: &[&str]) -> (ImageConfig, Vec<String>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
    std::fs::write(dir.path().join("a.txt"), "a\n").expect("write context file");
    let context = dir.path().to_str().expect("UTF-8 temp path");
    let mut args = vec!["build", "-q", "-t", tag];
    args.extend_from_slice(extra);
    args.push(context);
    ok(docker(&args), "docker build");
    let config = ok(
        docker(&["image", "inspect", "--format", "{{json .Config}}", tag]),
        "inspect",
    );
    let config = config_from_json(&serde_json::from_str(config.trim()).expect("config JSON"));
    let history = ok(
        docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", tag]),
        "history",
    );
    let mut history: Vec<String> = history.lines().map(str::to_owned).collect();
    history.reverse();
    // The imported base's own entry has an empty created_by.
    history.retain(|h| !h.is_empty());
    ok(docker(&["rmi", "-f", tag]), "rmi");
    (config, history)
}

fn hoist(dockerfile: &str, change: impl FnOnce(&mut PlanRequest)) -> (ImageConfig, Vec<String>) {
    let mut request = PlanRequest::new(hoist_dockerfile::parse(dockerfile).expect("parses"));
    change(&mut request);
    let plan = hoist_plan::plan(&request, &Dockerd).expect("plans");
    let stage = plan.target_stage();
    let history = stage.history.iter().map(|h| h.created_by.clone()).collect();
    (stage.config.clone(), history)
}

/// History texts that changed between BuildKit 0.8 (dockerd 20.10) and today.
fn version_independent(history: &[String]) -> Vec<String> {
    history
        .iter()
        .filter(|h| !h.starts_with("EXPOSE ") && !h.starts_with("HEALTHCHECK "))
        .cloned()
        .collect()
}

const CONFIG_FILE: &str = "\
FROM hoist-plan-peer-base:1
ARG V=1
ENV A=b C=\"d e\" D=${V}x
WORKDIR /src
WORKDIR sub
COPY a.txt .
USER 1000:1000
EXPOSE 80 53/UDP 8000-8001
VOLUME /data [\"/cache\"]
LABEL version=$V \"quoted key\"=\"v w\"
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=2 CMD true
ENTRYPOINT [\"/entry\"]
";

const STAGES_FILE: &str = "\
FROM hoist-plan-peer-base:1 AS parent
ONBUILD ENV TRIGGERED=yes
ONBUILD LABEL from=trigger
LABEL stage=parent
CMD [\"parent\"]
FROM parent AS child
ENV X=1
CMD [\"child\"]
ENTRYPOINT echo $X
FROM parent AS unused
LABEL never=1
";

const ARGS_FILE: &str = "\
ARG BASE=hoist-plan-peer-base:1
FROM ${BASE}
ARG V=default
ARG W
ENV FROM_ARG=$V FROM_W=${W:-unset}
SHELL [\"/bin/bash\", \"-c\"]
CMD run me
";

#[test]
fn plans_agree_with_buildkit() {
    if !dockerd_available() {
        if std::env::var_os("HOIST_SKIP_PEER_TESTS").is_some_and(|v| v == "1") {
            eprintln!("SKIPPED: dockerd is not available (HOIST_SKIP_PEER_TESTS=1)");
            return;
        }
        panic!(
            "dockerd is not available at {DOCKER}; start it (bash .ci/services.sh) or set HOIST_SKIP_PEER_TESTS=1"
        );
    }
    // The base: one file, PATH and CMD like a typical image, made offline.
    let dir = tempfile::tempdir().expect("temporary directory");
    let tar = dir.path().join("base.tar");
    let status = Command::new("tar")
        .args([
            "-cf",
            tar.to_str().expect("UTF-8"),
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "Cargo.toml",
        ])
        .status()
        .expect("tar runs");
    assert!(status.success());
    ok(
        docker(&[
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "CMD [\"sh\"]",
            tar.to_str().expect("UTF-8"),
            BASE,
        ]),
        "docker import",
    );

    type Case = (
        &'static str,
        &'static str,
        Vec<&'static str>,
        Box<dyn Fn(&mut PlanRequest)>,
        Vec<(&'static str, &'static str)>,
    );
    let cases: [Case; 3] = [
        ("config", CONFIG_FILE, vec![], Box::new(|_| {}), vec![]),
        (
            "stages",
            STAGES_FILE,
            vec!["--target", "child", "--label", "cli=1"],
            Box::new(|r| {
                r.target = Some("child".to_owned());
                r.labels.insert("cli".to_owned(), "1".to_owned());
            }),
            vec![],
        ),
        (
            "args",
            ARGS_FILE,
            vec!["--build-arg", "V=from-cli"],
            Box::new(|r| {
                r.build_args.insert("V".to_owned(), "from-cli".to_owned());
            }),
            vec![("ARG V=default", "ARG V=from-cli")],
        ),
    ];
    for (name, dockerfile, flags, change, differences) in cases {
        let tag = format!("hoist-plan-peer-{name}:1");
        let (want_config, mut want_history) = buildkit(dockerfile, &tag, &flags);
        for entry in &mut want_history {
            if let Some((_, current)) = differences.iter().find(|(old, _)| old == entry) {
                *entry = (*current).to_owned();
            }
        }
        let (got_config, got_history) = hoist(dockerfile, change);
        assert_eq!(got_config, want_config, "{name}: config");
        assert_eq!(
            version_independent(&got_history),
            version_independent(&want_history),
            "{name}: history"
        );
        assert_eq!(
            got_history.len(),
            want_history.len(),
            "{name}: history length"
        );
    }
    ok(docker(&["rmi", "-f", BASE]), "rmi base");
}

const RUN_FILE: &str = "\
FROM hoist-plan-peer-bb:1
ARG V=1
ENV SHADOW=env
ARG SHADOW=arg
ARG LATE
RUN echo \"$V $SHADOW\" > /out.txt
ENV V=envv
RUN echo \"$V $SHADOW $LATE\" >> /out.txt
";

/// RUN's environment (ARG values, ENV shadowing, `--build-arg`) and its history text
/// (`RUN |3 V=1 ... # buildkit`), on a busybox-static base: what the commands print in
/// BuildKit's container must be what the plan's environment gives.
#[test]
fn run_environment_agrees_with_buildkit() {
    if !dockerd_available() {
        if std::env::var_os("HOIST_SKIP_PEER_TESTS").is_some_and(|v| v == "1") {
            eprintln!("SKIPPED: dockerd is not available (HOIST_SKIP_PEER_TESTS=1)");
            return;
        }
        panic!(
            "dockerd is not available at {DOCKER}; start it (bash .ci/services.sh) or set HOIST_SKIP_PEER_TESTS=1"
        );
    }
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "the peer test needs busybox-static (apt-get install busybox-static)"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).expect("symlink");
    let tar = dir.path().join("bb.tar");
    let status = Command::new("tar")
        .args([
            "-cf",
            tar.to_str().expect("UTF-8"),
            "-C",
            root.to_str().expect("UTF-8"),
            ".",
        ])
        .status()
        .expect("tar runs");
    assert!(status.success());
    let base = "hoist-plan-peer-bb:1";
    ok(
        docker(&[
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            tar.to_str().expect("UTF-8"),
            base,
        ]),
        "docker import",
    );
    let tag = "hoist-plan-peer-run:1";
    let context = dir.path().join("context");
    std::fs::create_dir(&context).expect("mkdir");
    std::fs::write(context.join("Dockerfile"), RUN_FILE).expect("write Dockerfile");
    ok(
        docker(&[
            "build",
            "-q",
            "-t",
            tag,
            "--build-arg",
            "LATE=late",
            context.to_str().expect("UTF-8"),
        ]),
        "docker build",
    );
    let history = ok(
        docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", tag]),
        "history",
    );
    let mut want_history: Vec<String> = history
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    want_history.reverse();
    for entry in &mut want_history {
        // BuildKit 0.8 wrote the declaration, current BuildKit the value used.
        if entry == "ARG LATE" {
            *entry = "ARG LATE=late".to_owned();
        }
    }
    let container = ok(docker(&["create", tag, "sh"]), "create");
    let container = container.trim();
    let archive = docker(&["cp", &format!("{container}:/out.txt"), "-"]);
    assert!(archive.status.success(), "docker cp failed");
    ok(docker(&["rm", container]), "rm");
    ok(docker(&["rmi", "-f", tag]), "rmi");
    // `docker cp` writes a tar: one 512-byte header (size in octal at 124..136), then the data.
    let tar = archive.stdout;
    assert!(tar.len() >= 512, "docker cp gave a tar");
    let size_field = String::from_utf8_lossy(&tar[124..136]);
    let size = usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
        .expect("tar size field");
    let printed = String::from_utf8(tar[512..512 + size].to_vec()).expect("UTF-8 output");

    let mut request = PlanRequest::new(hoist_dockerfile::parse(RUN_FILE).expect("parses"));
    request
        .build_args
        .insert("LATE".to_owned(), "late".to_owned());
    let plan = hoist_plan::plan(&request, &Dockerd).expect("plans");
    let history: Vec<String> = plan
        .target_stage()
        .history
        .iter()
        .map(|h| h.created_by.clone())
        .collect();
    assert_eq!(history, want_history);
    let envs: Vec<&Vec<String>> = plan
        .ops
        .iter()
        .filter_map(|op| match &op.op {
            hoist_plan::Op::Exec(exec) => Some(&exec.env),
            _ => None,
        })
        .collect();
    let value = |env: &Vec<String>, name: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(&format!("{name}=")).map(str::to_owned))
            .unwrap_or_default()
    };
    let expected = format!(
        "{} {}\n{} {} {}\n",
        value(envs[0], "V"),
        value(envs[0], "SHADOW"),
        value(envs[1], "V"),
        value(envs[1], "SHADOW"),
        value(envs[1], "LATE")
    );
    assert_eq!(printed, expected);
}
