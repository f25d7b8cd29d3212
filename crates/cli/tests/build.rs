//! `hoist build` as the real binary: a busybox image made with `hoist import` from a tar(1) of Debian's static
//! busybox and a few applet links, built upon in a private store (`--root`) with a private `$TMPDIR`. RUN steps
//! run in real namespaces (needs root). The `docker_*` test loads a built image into the shared dockerd
//! (`bash .ci/services.sh` starts it) and fails without it unless `HOIST_SKIP_PEER_TESTS=1`.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hoist_testkit::{BusyboxRootfs, tar_dir};
use serde_json::Value;

#[path = "../../registry/tests/support/mod.rs"]
mod support;

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "mkdir", "ls", "touch", "id", "wc", "ln", "readlink",
];

struct Fixture {
    dir: tempfile::TempDir,
}

/// What a hoist run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Fixture {
    /// A store with `bb:1`: busybox, an `app` user (1000:1000), `PATH=/bin`; an empty context directory.
    fn new() -> Fixture {
        let fixture = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        let rootfs = BusyboxRootfs::new(fixture.path("rootfs"))
            .applets(APPLETS)
            .dirs(&["etc", "tmp"])
            .passwd("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
            .group("root:x:0:\napp:x:1000:\n");
        let rootfs = rootfs.write();
        fs::set_permissions(
            rootfs.join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        let tar = fixture.path("rootfs.tar");
        tar_dir(rootfs, &tar, &["--owner=0", "--group=0", "--numeric-owner"]);
        fs::create_dir(fixture.path("tmp")).unwrap();
        fs::create_dir(fixture.path("ctx")).unwrap();
        let run = fixture.hoist(&[
            "import",
            tar.to_str().unwrap(),
            "-t",
            "bb:1",
            "--change",
            "ENV PATH=/bin",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        fixture
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file of the build context.
    fn write(&self, rel: &str, content: &str) {
        let path = self.path("ctx").join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn hoist(&self, args: &[&str]) -> Run {
        self.hoist_in("store", args)
    }

    /// hoist with the store `store` (under the fixture's directory) and an empty registries configuration.
    fn hoist_in(&self, store: &str, args: &[&str]) -> Run {
        let conf = self.path("registries.conf");
        if !conf.exists() {
            fs::write(&conf, "").unwrap();
        }
        let output: Output = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(self.path(store))
            .args(args)
            .env("HOIST_REGISTRIES_CONF", &conf)
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .current_dir(self.path("ctx"))
            .env("TMPDIR", self.path("tmp"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `hoist build --progress plain ARGS .`, which must succeed.
    fn build(&self, args: &[&str]) -> Run {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        all.push(".");
        let run = self.hoist(&all);
        assert_eq!(run.code, 0, "build failed:\n{}", run.stderr);
        run
    }

    /// Builds with `--output type=local` into a fresh directory and returns it.
    fn build_local(&self, name: &str, args: &[&str]) -> (PathBuf, Run) {
        let out = self.path(name);
        let spec = format!("type=local,dest={}", out.display());
        let mut all = vec!["-o", spec.as_str()];
        all.extend_from_slice(args);
        let run = self.build(&all);
        (out, run)
    }

    fn inspect(&self, image: &str) -> Value {
        let run = self.hoist(&["inspect", image]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let value: Value = serde_json::from_str(&run.stdout).unwrap();
        value[0].clone()
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The progress lines of the vertex whose name line ends with `name`: `#N` and its status lines.
fn vertex_status(stderr: &str, name: &str) -> Vec<String> {
    let number = stderr
        .lines()
        .find_map(|line| {
            let (number, rest) = line.split_once(' ')?;
            (number.starts_with('#') && rest.ends_with(name)).then(|| number.to_owned())
        })
        .unwrap_or_else(|| panic!("no vertex {name:?} in:\n{stderr}"));
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{number} ")))
        .filter(|rest| !rest.ends_with(name))
        .map(str::to_owned)
        .collect()
}

fn cached(stderr: &str, name: &str) -> bool {
    vertex_status(stderr, name).iter().any(|s| s == "CACHED")
}

/// Asserts that a build's plain progress (`stderr`) shows each of `hits` CACHED and none of `reruns`.
fn assert_steps(stderr: &str, hits: &[&str], reruns: &[&str]) {
    for step in hits {
        assert!(cached(stderr, step), "{step} should be CACHED:\n{stderr}");
    }
    for step in reruns {
        assert!(!cached(stderr, step), "{step} should have run:\n{stderr}");
    }
}

#[test]
fn multi_stage_copy_from_builds_only_the_target_stages() {
    let fx = Fixture::new();
    fx.write(
        "Dockerfile",
        "FROM bb:1 AS build\n\
         RUN echo built > /artifact && mkdir /out && echo two > /out/second\n\
         FROM bb:1 AS broken\n\
         RUN touch /ran-broken && echo about to fail && exit 3\n\
         FROM bb:1\n\
         COPY --from=build /artifact /app/artifact\n\
         COPY --from=build /out/ /app/out/\n",
    );
    let (out, run) = fx.build_local("out", &["-t", "multi:1"]);
    assert_eq!(read(&out.join("app/artifact")), "built\n");
    assert_eq!(read(&out.join("app/out/second")), "two\n");
    // The RUN step's own file is in the build stage, not in the final image.
    assert!(!out.join("artifact").exists());
    assert!(out.join("bin/busybox").is_file(), "the base image is there");
    assert!(!run.stderr.contains("ran-broken"), "{}", run.stderr);
    assert!(!run.stderr.contains("exit 3"), "{}", run.stderr);
    let image = fx.inspect("multi:1");
    assert_eq!(image["RootFS"]["Layers"].as_array().unwrap().len(), 3);

    // Asking for the broken stage runs it, and fails as BuildKit words it.
    let failed = fx.hoist(&["build", "--target", "broken", "."]);
    assert_eq!(failed.code, 1);
    assert!(
        failed
            .stderr
            .contains("did not complete successfully: exit code: 3"),
        "{}",
        failed.stderr
    );
    assert!(
        failed
            .stderr
            .contains("   4 | >>> RUN touch /ran-broken && echo about to fail && exit 3"),
        "the failing instruction is shown: {}",
        failed.stderr
    );
    let summary = failed.stderr.split("\n------\n").nth(1).unwrap_or_default();
    assert!(
        summary.contains("about to fail"),
        "the summary repeats the step's output: {}",
        failed.stderr
    );
}

#[test]
fn build_checks_are_reported_after_the_build_and_can_fail_it() {
    let fx = Fixture::new();
    fx.write("Dockerfile", "FROM bb:1 as base\nCMD echo hi\n");
    let run = fx.build(&[]);
    assert!(
        run.stderr
            .contains(" 2 warnings found (use docker --debug to expand):"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(" - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)"),
        "{}",
        run.stderr
    );
    fx.write(
        "Dockerfile",
        "# check=error=true\nFROM bb:1 as base\nRUN touch /should-not-run\n",
    );
    let failed = fx.hoist(&["build", "--progress", "plain", "."]);
    assert_eq!(failed.code, 1);
    assert!(
        failed
            .stderr
            .contains("lint violation found for rules: FromAsCasing"),
        "{}",
        failed.stderr
    );
    assert!(
        !failed.stderr.contains("should-not-run"),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_run_steps_files_are_in_the_image() {
    let fx = Fixture::new();
    fx.write(
        "Dockerfile",
        "FROM bb:1\nRUN echo hello from run > /greeting && id -u > /uid && echo $HOME > /home-root\n\
         USER app\nRUN id -u > /tmp/as-app && echo $HOME > /tmp/home-app\n",
    );
    let (out, run) = fx.build_local("out", &[]);
    assert_eq!(read(&out.join("greeting")), "hello from run\n");
    assert_eq!(read(&out.join("uid")), "0\n");
    assert_eq!(read(&out.join("tmp/as-app")), "1000\n");
    // As under runc (BuildKit's steps): HOME comes from the user's passwd entry when the image does not set it.
    assert_eq!(read(&out.join("home-root")), "/root\n");
    assert_eq!(read(&out.join("tmp/home-app")), "/home/app\n");
    assert_eq!(fs::metadata(out.join("tmp/as-app")).unwrap().uid(), 1000);
    assert!(
        run.stderr.contains("RUN echo hello from run"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_noop_rebuild_is_fully_cached_with_the_same_image_id() {
    let fx = Fixture::new();
    fx.write("a.txt", "a\n");
    fx.write(
        "Dockerfile",
        "FROM bb:1\nWORKDIR /w\nCOPY a.txt .\nRUN cat a.txt > b.txt\nENV K=v\n",
    );
    let first_id = fx.path("id1");
    let first = fx.build(&["--iidfile", first_id.to_str().unwrap()]);
    for step in ["WORKDIR /w", "COPY a.txt .", "RUN cat a.txt > b.txt"] {
        assert!(!cached(&first.stderr, step), "{}", first.stderr);
        assert!(
            vertex_status(&first.stderr, step)
                .iter()
                .any(|s| s.starts_with("DONE ")),
            "{}",
            first.stderr
        );
    }
    let second_id = fx.path("id2");
    let second = fx.build(&["--iidfile", second_id.to_str().unwrap()]);
    let steps = ["WORKDIR /w", "COPY a.txt .", "RUN cat a.txt > b.txt"];
    assert_steps(&second.stderr, &steps, &[]);
    let id = read(&first_id);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(id, read(&second_id));

    // --no-cache runs everything again.
    let third = fx.build(&["--no-cache"]);
    assert_steps(&third.stderr, &[], &steps);
}

#[test]
fn editing_a_context_file_reruns_from_the_copy_that_uses_it() {
    let fx = Fixture::new();
    fx.write("used.txt", "one\n");
    fx.write("unused.txt", "x\n");
    fx.write(
        "Dockerfile",
        "FROM bb:1\nRUN echo early > /early\nCOPY used.txt /used.txt\nRUN cat /used.txt > /derived\n",
    );
    fx.build(&[]);
    fx.write("unused.txt", "changed\n");
    let untouched = fx.build(&[]);
    let (early, copy, derived) = (
        "RUN echo early > /early",
        "COPY used.txt /used.txt",
        "RUN cat /used.txt > /derived",
    );
    assert_steps(&untouched.stderr, &[early, copy, derived], &[]);
    fx.write("used.txt", "two\n");
    let (out, edited) = fx.build_local("out", &[]);
    assert_steps(&edited.stderr, &[early], &[copy, derived]);
    assert_eq!(read(&out.join("derived")), "two\n");
}

#[test]
fn run_mounts_bind_cache_and_tmpfs() {
    let fx = Fixture::new();
    fx.write("ctx.txt", "from the context\n");
    fx.write(
        "Dockerfile",
        "FROM bb:1 AS files\n\
         RUN mkdir /data && echo from the stage > /data/s.txt\n\
         FROM bb:1\n\
         RUN --mount=type=bind,source=ctx.txt,target=/mnt/ctx.txt cat /mnt/ctx.txt > /from-ctx\n\
         RUN --mount=type=bind,from=files,source=/data,target=/mnt/stage cat /mnt/stage/s.txt > /from-stage\n\
         RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /cache-count\n\
         RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs-list\n",
    );
    let (out, _) = fx.build_local("out", &[]);
    assert_eq!(read(&out.join("from-ctx")), "from the context\n");
    assert_eq!(read(&out.join("from-stage")), "from the stage\n");
    assert_eq!(read(&out.join("cache-count")).trim(), "1");
    assert_eq!(read(&out.join("tmpfs-list")), "x\n");
    assert!(
        !out.join("cache/log").exists(),
        "a cache mount is not in the layer"
    );
    assert!(
        !out.join("scratch/x").exists(),
        "a tmpfs mount is not in the layer"
    );
    // The cache directory outlives the build.
    let (again, _) = fx.build_local("again", &["--no-cache"]);
    assert_eq!(read(&again.join("cache-count")).trim(), "2");
}

#[test]
fn secrets_are_mounted_but_not_kept() {
    let fx = Fixture::new();
    let secret = fx.path("token.txt");
    fs::write(&secret, "s3cr3t").unwrap();
    fx.write(
        "Dockerfile",
        "FROM bb:1\n\
         RUN --mount=type=secret,id=token,target=/run/secrets/token cat /run/secrets/token > /seen\n\
         RUN --mount=type=secret,id=token,env=TOKEN,target=/t echo $TOKEN > /seen-env\n",
    );
    let spec = format!("id=token,src={}", secret.display());
    let (out, _) = fx.build_local("out", &["--secret", &spec]);
    assert_eq!(read(&out.join("seen")), "s3cr3t");
    assert_eq!(read(&out.join("seen-env")), "s3cr3t\n");
    assert!(
        !out.join("run/secrets/token").is_file(),
        "the secret is not in the layer"
    );

    let missing = fx.hoist(&["build", "--no-cache", "."]);
    assert_eq!(
        missing.code, 1,
        "a required... secret: cat fails without it"
    );
}

#[test]
fn build_contexts_replace_stages_and_images() {
    let fx = Fixture::new();
    let extra = fx.path("extra");
    fs::create_dir(&extra).unwrap();
    fs::write(extra.join("e.txt"), "extra context\n").unwrap();
    fx.write(
        "Dockerfile",
        "FROM base\n\
         COPY --from=assets e.txt /e.txt\n\
         RUN cat /e.txt > /seen\n",
    );
    let assets = format!("assets={}", extra.display());
    let (out, _) = fx.build_local(
        "out",
        &[
            "--build-context",
            &assets,
            "--build-context",
            "base=docker-image://bb:1",
        ],
    );
    assert_eq!(read(&out.join("e.txt")), "extra context\n");
    assert_eq!(read(&out.join("seen")), "extra context\n");
    assert!(out.join("bin/busybox").is_file(), "base is bb:1");
}

#[test]
fn symlinks_resolve_inside_the_image_and_the_context() {
    let fx = Fixture::new();
    fx.write("one.txt", "1\n");
    fx.write("real/inner.txt", "inner\n");
    symlink("one.txt", fx.path("ctx/alias.txt")).unwrap();
    symlink("/etc/passwd", fx.path("ctx/escape")).unwrap();
    let linked = fx.path("ctx/linked.txt");
    fs::write(&linked, "linked\n").unwrap();
    fs::hard_link(&linked, fx.path("ctx/second-link.txt")).unwrap();
    fx.write(
        "Dockerfile",
        "FROM bb:1 AS base\n\
         RUN mkdir -p /usr/local/real && ln -s /usr/local/real /link && echo data > /usr/local/real/d\n\
         FROM base\n\
         COPY one.txt /link/\n\
         COPY alias.txt /aliased\n\
         COPY --from=base /link /through-link/\n\
         COPY linked.txt second-link.txt /hard/\n\
         RUN readlink /link > /link-target\n",
    );
    let (out, _) = fx.build_local("out", &[]);
    // The layer wrote through the link; the link itself is intact.
    assert_eq!(read(&out.join("link-target")), "/usr/local/real\n");
    assert_eq!(read(&out.join("usr/local/real/one.txt")), "1\n");
    assert!(
        fs::symlink_metadata(out.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // A symlink source is followed, and keeps its own name.
    assert_eq!(read(&out.join("aliased")), "1\n");
    assert!(
        !fs::symlink_metadata(out.join("aliased"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read(&out.join("through-link/d")), "data\n");
    // Hard links stay linked.
    let a = fs::metadata(out.join("hard/linked.txt")).unwrap();
    let b = fs::metadata(out.join("hard/second-link.txt")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));

    // A link out of the context does not read the host's files: it resolves inside the context, where its target
    // is missing, and fails as BuildKit's checksum does.
    fx.write("Dockerfile", "FROM scratch\nCOPY escape /escaped\n");
    let out = fx.path("escape-out");
    let spec = format!("type=local,dest={}", out.display());
    let run = fx.hoist(&["build", "--progress", "plain", "-o", &spec, "."]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("\"/etc/passwd\": not found"),
        "{}",
        run.stderr
    );
    assert!(
        !out.join("escaped").exists(),
        "the host's /etc/passwd must not be copied"
    );
}

#[test]
fn copy_link_layers_survive_a_new_base() {
    let fx = Fixture::new();
    fx.write("one.txt", "1\n");
    fx.write("two.txt", "2\n");
    fx.write(
        "Dockerfile",
        "FROM bb:1 AS base\n\
         ARG V\n\
         RUN echo $V > /version\n\
         FROM base\n\
         COPY --link one.txt /linked/one.txt\n\
         COPY two.txt /plain/two.txt\n",
    );
    fx.build(&["--build-arg", "V=1"]);
    let (out, run) = fx.build_local("out", &["--build-arg", "V=2"]);
    // The linked layer is reused on the new base; the plain one is not.
    assert_steps(
        &run.stderr,
        &["COPY --link one.txt /linked/one.txt"],
        &["RUN echo $V > /version", "COPY two.txt /plain/two.txt"],
    );
    assert_eq!(read(&out.join("version")), "2\n");
    assert_eq!(read(&out.join("linked/one.txt")), "1\n");
    assert_eq!(read(&out.join("plain/two.txt")), "2\n");
}

#[test]
fn a_locked_cache_mount_is_used_by_one_step_at_a_time() {
    let fx = Fixture::new();
    let step = |name: &str| {
        format!(
            "RUN --mount=type=cache,id=shared,target=/c,sharing=locked \\\n\
             if [ -e /c/busy ]; then echo overlap > /overlap-{name}; fi; \\\n\
             touch /c/busy; sleep 1; rm /c/busy; echo {name} > /done-{name}\n"
        )
    };
    fx.write(
        "Dockerfile",
        &format!(
            "FROM bb:1 AS a\n{}FROM bb:1 AS b\n{}FROM scratch\n\
             COPY --from=a / /a/\nCOPY --from=b / /b/\n",
            step("a"),
            step("b")
        ),
    );
    let (out, _) = fx.build_local("out", &[]);
    assert_eq!(read(&out.join("a/done-a")), "a\n");
    assert_eq!(read(&out.join("b/done-b")), "b\n");
    assert!(
        !out.join("a/overlap-a").exists(),
        "b held the cache while a ran"
    );
    assert!(
        !out.join("b/overlap-b").exists(),
        "a held the cache while b ran"
    );
}

#[test]
fn a_dockerfile_or_a_context_tar_on_standard_input() {
    let fx = Fixture::new();
    let run_with_stdin = |args: &[&str], stdin: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(fx.path("store"))
            .args(args)
            .current_dir(fx.path("ctx"))
            .env("TMPDIR", fx.path("tmp"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // `hoist build - < Dockerfile`: no context.
    let out = fx.path("out-dockerfile");
    let spec = format!("type=local,dest={}", out.display());
    run_with_stdin(
        &["build", "-o", &spec, "-"],
        b"FROM scratch\nCOPY <<EOF /from-stdin\nhello\nEOF\n",
    );
    assert_eq!(read(&out.join("from-stdin")), "hello\n");

    // `hoist build - < context.tar`: the archive is the context, with its Dockerfile.
    let staged = fx.path("tar-context");
    fs::create_dir(&staged).unwrap();
    fs::write(
        staged.join("Dockerfile"),
        "FROM scratch\nCOPY file.txt /file.txt\n",
    )
    .unwrap();
    fs::write(staged.join("file.txt"), "from the tar\n").unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&staged)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let out = fx.path("out-tar");
    let spec = format!("type=local,dest={}", out.display());
    run_with_stdin(&["build", "-o", &spec, "-"], &tar.stdout);
    assert_eq!(read(&out.join("file.txt")), "from the tar\n");
}

#[test]
fn no_cache_filter_reruns_only_the_named_stage() {
    let fx = Fixture::new();
    fx.write(
        "Dockerfile",
        "FROM bb:1 AS base\nRUN echo base > /base\nFROM base AS app\nRUN echo app > /app\n",
    );
    fx.build(&[]);
    let run = fx.build(&["--no-cache-filter", "app"]);
    assert_steps(
        &run.stderr,
        &["RUN echo base > /base"],
        &["RUN echo app > /app"],
    );
}

#[test]
fn dockerignore_keeps_files_out_of_copy() {
    let fx = Fixture::new();
    fx.write("keep.txt", "keep\n");
    fx.write("secret.key", "no\n");
    fx.write("logs/a.log", "no\n");
    fx.write("logs/important.log", "yes\n");
    fx.write(".dockerignore", "*.key\nlogs/*.log\n!logs/important.log\n");
    fx.write("Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    let (out, _) = fx.build_local("out", &[]);
    assert_eq!(read(&out.join("ctx/keep.txt")), "keep\n");
    assert_eq!(read(&out.join("ctx/logs/important.log")), "yes\n");
    assert!(!out.join("ctx/secret.key").exists());
    assert!(!out.join("ctx/logs/a.log").exists());
    assert!(out.join("ctx/Dockerfile").exists());

    // `<Dockerfile>.dockerignore` beside a Dockerfile given with -f wins over `.dockerignore`.
    fx.write("custom.Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    fx.write("custom.Dockerfile.dockerignore", "keep.txt\n");
    let (custom, _) = fx.build_local("custom-out", &["-f", "custom.Dockerfile"]);
    assert!(!custom.join("ctx/keep.txt").exists());
    assert!(custom.join("ctx/secret.key").exists());

    // Naming an ignored file is an error, as in BuildKit.
    fx.write("Dockerfile", "FROM scratch\nCOPY secret.key /\n");
    let run = fx.hoist(&["build", "."]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("\"/secret.key\": not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn copy_follows_dockers_destination_and_flag_rules() {
    let fx = Fixture::new();
    fx.write("one.txt", "1\n");
    fx.write("two.txt", "2\n");
    fx.write("dir/sub/deep.txt", "deep\n");
    fx.write("dir/top.txt", "top\n");
    fx.write("src/pkg/a/go.mod", "a\n");
    fx.write("src/pkg/b/go.mod", "b\n");
    // A tar archive ADD unpacks.
    let staged = fx.path("archive-src");
    fs::create_dir_all(staged.join("inner")).unwrap();
    fs::write(staged.join("inner/file"), "from tar\n").unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(&staged)
        .arg("-czf")
        .arg(fx.path("ctx/bundle.tar.gz"))
        .arg("inner")
        .status()
        .unwrap();
    assert!(status.success());
    fx.write(
        "Dockerfile",
        "FROM bb:1\n\
         COPY one.txt /renamed\n\
         COPY one.txt two.txt /multi/\n\
         COPY *.txt /glob/\n\
         COPY dir /contents\n\
         COPY --chmod=0600 --chown=app:app one.txt /owned/\n\
         COPY --chown=1234 two.txt /numeric\n\
         COPY --parents src/pkg/*/go.mod /parents/\n\
         COPY --exclude=*/deep.txt dir /excluded/\n\
         ADD bundle.tar.gz /unpacked/\n\
         COPY bundle.tar.gz /kept/\n\
         COPY <<EOF /heredoc.txt\n\
         inline text\n\
         EOF\n\
         WORKDIR /made/by/workdir\n",
    );
    let (out, _) = fx.build_local("out", &[]);
    assert_eq!(read(&out.join("renamed")), "1\n");
    assert_eq!(read(&out.join("multi/one.txt")), "1\n");
    assert_eq!(read(&out.join("multi/two.txt")), "2\n");
    assert_eq!(read(&out.join("glob/two.txt")), "2\n");
    assert_eq!(read(&out.join("contents/top.txt")), "top\n");
    assert_eq!(read(&out.join("contents/sub/deep.txt")), "deep\n");
    assert!(
        !out.join("contents/dir").exists(),
        "a directory's contents are copied"
    );
    let owned = fs::metadata(out.join("owned/one.txt")).unwrap();
    assert_eq!(owned.mode() & 0o7777, 0o600);
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    let numeric = fs::metadata(out.join("numeric")).unwrap();
    assert_eq!(
        (numeric.uid(), numeric.gid()),
        (1234, 1234),
        "no group: gid = uid"
    );
    let plain = fs::metadata(out.join("renamed")).unwrap();
    assert_eq!(
        (plain.uid(), plain.gid()),
        (0, 0),
        "context files belong to root"
    );
    assert_eq!(read(&out.join("parents/src/pkg/a/go.mod")), "a\n");
    assert_eq!(read(&out.join("parents/src/pkg/b/go.mod")), "b\n");
    assert_eq!(read(&out.join("excluded/top.txt")), "top\n");
    assert!(!out.join("excluded/sub/deep.txt").exists());
    assert_eq!(read(&out.join("unpacked/inner/file")), "from tar\n");
    assert!(
        out.join("kept/bundle.tar.gz").is_file(),
        "COPY never unpacks"
    );
    assert_eq!(read(&out.join("heredoc.txt")), "inline text\n");
    assert!(out.join("made/by/workdir").is_dir());
}

#[test]
fn the_image_config_is_the_plans() {
    let fx = Fixture::new();
    fx.write(
        "Dockerfile",
        "FROM bb:1\n\
         WORKDIR /srv\n\
         ENV MODE=prod\n\
         USER app\n\
         LABEL org.example.team=core\n\
         EXPOSE 8080/tcp 53/udp\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
         CMD [\"echo hi\"]\n",
    );
    let metadata = fx.path("metadata.json");
    let run = fx.hoist(&[
        "build",
        "-q",
        "-t",
        "cfg:1",
        "-t",
        "cfg:latest",
        "--label",
        "from.flag=yes",
        "--metadata-file",
        metadata.to_str().unwrap(),
        ".",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.stdout.trim().to_owned();
    assert!(
        id.starts_with("sha256:"),
        "-q prints only the ID: {}",
        run.stdout
    );
    let image = fx.inspect("cfg:1");
    assert_eq!(image["Id"], id.as_str());
    let config = &image["Config"];
    assert_eq!(config["WorkingDir"], "/srv");
    assert_eq!(config["User"], "app");
    assert_eq!(config["Env"], serde_json::json!(["PATH=/bin", "MODE=prod"]));
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(config["Cmd"], serde_json::json!(["echo hi"]));
    assert_eq!(config["Labels"]["org.example.team"], "core");
    assert_eq!(config["Labels"]["from.flag"], "yes");
    assert_eq!(
        config["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    let history = image["History"].as_array().unwrap();
    let created_by: Vec<&str> = history
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert!(created_by.contains(&"WORKDIR /srv"), "{created_by:?}");
    assert!(created_by.contains(&"USER app"), "{created_by:?}");
    let layers = image["RootFS"]["Layers"].as_array().unwrap().len();
    let non_empty = history
        .iter()
        .filter(|h| h["empty_layer"].as_bool() != Some(true))
        .count();
    assert_eq!(layers, non_empty, "one history entry per layer");
    assert_eq!(fx.inspect("cfg:latest")["Id"], id.as_str());

    let metadata: Value = serde_json::from_str(&read(&metadata)).unwrap();
    assert_eq!(metadata["containerimage.config.digest"], id.as_str());
    assert!(
        metadata["containerimage.digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(metadata["image.name"], "cfg:1,cfg:latest");
}

#[test]
fn tar_and_oci_outputs_hold_the_result() {
    let fx = Fixture::new();
    fx.write("f.txt", "file\n");
    fx.write("Dockerfile", "FROM scratch\nCOPY f.txt /f.txt\n");
    let tar = fx.path("fs.tar");
    let oci = fx.path("image-oci.tar");
    fx.build(&[
        "-o",
        &format!("type=tar,dest={}", tar.display()),
        "-o",
        &format!("type=oci,dest={}", oci.display()),
    ]);
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .any(|l| l.trim_start_matches("./") == "f.txt")
    );
    let listing = Command::new("tar").arg("-tf").arg(&oci).output().unwrap();
    let names = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(names.contains("oci-layout"), "{names}");
    assert!(names.contains("index.json"), "{names}");
}

fn peers_available(test: &str) -> bool {
    let docker = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    if docker.is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("HOIST_SKIP_PEER_TESTS").as_deref() == Ok("1") {
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped, no dockerd (HOIST_SKIP_PEER_TESTS=1)"
        );
        return false;
    }
    panic!(
        "{test} needs a running dockerd: run `bash .ci/services.sh` (or set HOIST_SKIP_PEER_TESTS=1)"
    );
}

#[test]
fn docker_loads_and_runs_a_built_image() {
    if !peers_available("docker_loads_and_runs_a_built_image") {
        return;
    }
    let fx = Fixture::new();
    fx.write("msg.txt", "hello from hoist build\n");
    fx.write(
        "Dockerfile",
        "FROM bb:1 AS build\nRUN echo built by run > /run.txt\n\
         FROM bb:1\nCOPY msg.txt /msg.txt\nCOPY --from=build /run.txt /run.txt\n\
         CMD [\"cat\", \"/msg.txt\", \"/run.txt\"]\n",
    );
    let name = format!("hoist-build-test:{}", std::process::id());
    let archive = fx.path("x.tar");
    fx.build(&[
        "-t",
        &name,
        "-o",
        &format!("type=docker,dest={}", archive.display()),
    ]);
    let load = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let run = Command::new("docker")
        .args(["run", "--rm", "--network", "none", &name])
        .output()
        .unwrap();
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", &name])
        .output();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello from hoist build\nbuilt by run\n"
    );
}

#[test]
fn docker_load_flag_puts_the_image_in_docker() {
    if !peers_available("docker_load_flag_puts_the_image_in_docker") {
        return;
    }
    let fx = Fixture::new();
    let name = format!("hoist-build-load:{}", std::process::id());
    // The Dockerfile comes from standard input (`-f -`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("--root")
        .arg(fx.path("store"))
        .args(["build", "-q", "--load", "-t", &name, "-f", "-", "."])
        .current_dir(fx.path("ctx"))
        .env("TMPDIR", fx.path("tmp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM bb:1\nRUN echo loaded > /loaded\nCMD [\"cat\", \"/loaded\"]\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let run = Command::new("docker")
        .args(["run", "--rm", "--network", "none", &name])
        .output()
        .unwrap();
    let inspect = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &name])
        .output()
        .unwrap();
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", &name])
        .output();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "loaded\n");
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        id,
        "docker sees the same image ID"
    );

    // `--output type=docker` without `dest` loads too, under its `name=`.
    fx.write("Dockerfile", "FROM bb:1\nRUN echo named > /named\n");
    let named = format!("hoist-build-load-named:{}", std::process::id());
    let iid = fx.path("named.iid");
    fx.build(&[
        "-o",
        &format!("type=docker,name={named}"),
        "--iidfile",
        iid.to_str().unwrap(),
    ]);
    let inspect = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &named])
        .output()
        .unwrap();
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", &named])
        .output();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), read(&iid));
}

#[test]
fn a_base_image_missing_from_the_store_is_pulled() {
    let Some(registry) = support::TestRegistry::start() else {
        return;
    };
    let fx = Fixture::new();
    let remote = format!("{}/base/bb:1", registry.addr);
    let pushed = fx.hoist(&["push", "bb:1", "--tag", &remote]);
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    fx.write(
        "Dockerfile",
        &format!("FROM {remote}\nRUN echo pulled > /pulled\n"),
    );
    // A fresh store: the base comes from the registry.
    let out = fx.path("out");
    let spec = format!("type=local,dest={}", out.display());
    let run = fx.hoist_in(
        "fresh-store",
        &["build", "--progress", "plain", "-o", &spec, "."],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(read(&out.join("pulled")), "pulled\n");
    assert!(out.join("bin/busybox").is_file());
    // The pull is a vertex of the build, with BuildKit's per-layer lines: `#1 sha256:… 1.20MB / 1.20MB 0.1s done`.
    assert!(
        run.stderr
            .contains(&format!("#1 [internal] pull {remote}\n")),
        "{}",
        run.stderr
    );
    let layer_done = run
        .stderr
        .lines()
        .find(|l| l.starts_with("#1 sha256:") && l.contains("MB / ") && l.ends_with(" done"))
        .unwrap_or_else(|| panic!("no finished line for the busybox layer:\n{}", run.stderr));
    let fields: Vec<&str> = layer_done.split(' ').collect();
    assert_eq!(fields.len(), 7, "{layer_done}");
    assert_eq!(fields[1].len(), "sha256:".len() + 64, "{layer_done}");
    assert_eq!((fields[2], fields[3]), (fields[4], "/"), "{layer_done}");
    assert!(fields[5].ends_with('s'), "{layer_done}");
    assert!(run.stderr.contains("#1 DONE "), "{}", run.stderr);

    // An image nobody has is a clear error.
    fx.write(
        "Dockerfile",
        &format!("FROM {}/nobody/here:1\n", registry.addr),
    );
    let missing = fx.hoist_in("fresh-store", &["build", "."]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("not found in the local store (pull failed:"),
        "{}",
        missing.stderr
    );
}

/// `examples/lifecycle`: builder → release and builder → ci → dev, each target built with `--target`, all sharing
/// the builder's cache.
#[test]
fn the_lifecycle_example_builds_each_target_from_a_shared_cache() {
    let fx = Fixture::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lifecycle");
    for name in ["Dockerfile", "greet.sh", "test.sh", "VERSION"] {
        fx.write(name, &read(&example.join(name)));
    }
    let base = ["--build-arg", "BASE=bb:1"];
    let compile = "RUN mkdir -p /out && sed \"s/@VERSION@/$(cat VERSION)/\" greet.sh > /out/greet && chmod 755 /out/greet";
    let ci_step = "RUN sh test.sh /out/greet";

    let (out, release) = fx.build_local("release", &[&base[..], &["--target", "release"]].concat());
    assert!(
        !release.stderr.contains(ci_step),
        "release must not build ci:\n{}",
        release.stderr
    );
    assert!(!cached(&release.stderr, compile), "{}", release.stderr);
    assert_eq!(
        read(&out.join("usr/bin/greet")).lines().last(),
        Some("echo \"hello from the lifecycle example, version 1.0.0${1:+, $1}\"")
    );

    let ci = fx.build(&[&base[..], &["--target", "ci"]].concat());
    // ci reuses the builder.
    assert_steps(&ci.stderr, &[compile], &[ci_step]);
    assert!(ci.stderr.contains("ci: ok"), "{}", ci.stderr);

    let dev = fx.build(&[&base[..], &["--target", "dev", "-t", "greet:dev"]].concat());
    assert_steps(&dev.stderr, &[compile, ci_step], &[]);
    assert_eq!(
        fx.inspect("greet:dev")["Config"]["Cmd"],
        serde_json::json!(["/bin/sh"])
    );

    // A new version reruns the builder's steps from the COPY that reads it, and nothing before.
    fx.write("VERSION", "1.1.0\n");
    let (out, rebuilt) =
        fx.build_local("release2", &[&base[..], &["--target", "release"]].concat());
    assert_steps(&rebuilt.stderr, &["WORKDIR /src"], &[compile]);
    assert!(read(&out.join("usr/bin/greet")).contains("version 1.1.0"));
}

// Outputs, progress and reproducibility.

/// hoist with the store `store`, like `Fixture::hoist_in`, with extra environment variables.
fn hoist_env(fx: &Fixture, store: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let conf = fx.path("registries.conf");
    if !conf.exists() {
        fs::write(&conf, "").unwrap();
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    command
        .arg("--root")
        .arg(fx.path(store))
        .args(args)
        .env("HOIST_REGISTRIES_CONF", &conf)
        .env("DOCKER_CONFIG", fx.path("docker-config"))
        .env_remove("SOURCE_DATE_EPOCH")
        .current_dir(fx.path("ctx"))
        .env("TMPDIR", fx.path("tmp"))
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn skopeo_inspect(reference: &str, raw: bool) -> Value {
    let mut args = vec!["inspect", "--tls-verify=false"];
    if raw {
        args.push("--raw");
    }
    let target = format!("docker://{reference}");
    args.push(&target);
    let output = Command::new("skopeo").args(&args).output().unwrap();
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn metadata(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

#[test]
fn push_and_registry_outputs_reach_the_registry() {
    let Some(registry) = support::TestRegistry::start() else {
        return;
    };
    if !support::require_tool("skopeo") {
        return;
    }
    let fx = Fixture::new();
    fx.write("f.txt", "pushed file\n");
    fx.write(
        "Dockerfile",
        "FROM bb:1\nRUN echo ran > /ran.txt\nCOPY f.txt /f.txt\n",
    );
    let v1 = format!("{}/app/push:v1", registry.addr);
    let v2 = format!("{}/app/push:v2", registry.addr);
    let meta = fx.path("meta.json");
    let iid = fx.path("iid");
    let run = fx.build(&[
        "--push",
        "-t",
        &v1,
        "-t",
        &v2,
        "--metadata-file",
        meta.to_str().unwrap(),
        "--iidfile",
        iid.to_str().unwrap(),
    ]);
    let meta = metadata(&meta);
    let digest = meta["containerimage.digest"].as_str().unwrap().to_owned();
    let id = read(&iid);
    assert_eq!(meta["containerimage.config.digest"], id.as_str());
    assert_eq!(meta["image.name"], format!("{v1},{v2}").as_str());
    assert_eq!(meta["containerimage.descriptor"]["digest"], digest.as_str());
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(meta["containerimage.descriptor"]["size"].as_u64().unwrap() > 0);
    // BuildKit's lines in the export vertex.
    let export = vertex_status(&run.stderr, "exporting to image");
    assert!(
        export.iter().any(|l| l.starts_with("pushing layers ")),
        "{export:?}"
    );
    assert!(
        export
            .iter()
            .any(|l| l.starts_with(&format!("pushing manifest for {v2}@{digest}"))),
        "{export:?}"
    );
    for tag in [&v1, &v2] {
        let inspected = skopeo_inspect(tag, false);
        assert_eq!(inspected["Digest"], digest.as_str(), "{tag}");
        let raw = skopeo_inspect(tag, true);
        assert_eq!(raw["config"]["digest"], id.as_str());
        assert_eq!(raw["layers"].as_array().unwrap().len(), 3);
    }
    // Pulled back into an empty store: the same image.
    let pulled = fx.hoist_in("other", &["pull", &v1]);
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    let out = fx.path("pulled-fs");
    let spec = format!("type=local,dest={}", out.display());
    fx.write("Dockerfile", &format!("FROM {v1}\n"));
    let rebuilt = fx.hoist_in("other", &["build", "--progress", "plain", "-o", &spec, "."]);
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.stderr);
    assert_eq!(read(&out.join("ran.txt")), "ran\n");
    assert_eq!(read(&out.join("f.txt")), "pushed file\n");

    // Several outputs at once: a registry name, an image pushed by name, an OCI archive.
    fx.write("Dockerfile", "FROM bb:1\nRUN echo two > /two.txt\n");
    let named = format!("{}/app/named:1", registry.addr);
    let third = format!("{}/app/third:1", registry.addr);
    let oci = fx.path("two-oci.tar");
    let meta2 = fx.path("meta2.json");
    fx.build(&[
        "-o",
        &format!("type=registry,name={named}"),
        "-o",
        &format!("type=image,name={third},push=true"),
        "-o",
        &format!("type=oci,dest={}", oci.display()),
        "--metadata-file",
        meta2.to_str().unwrap(),
    ]);
    let digest2 = metadata(&meta2)["containerimage.digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(digest2, digest);
    for tag in [&named, &third] {
        assert_eq!(skopeo_inspect(tag, false)["Digest"], digest2.as_str());
    }
    let listing = Command::new("tar").arg("-tf").arg(&oci).output().unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("index.json"));

    // Pushing needs a name; a blocked registry (registries.conf) is refused as `hoist push` refuses it.
    let no_name = fx.hoist(&["build", "--push", "."]);
    assert_eq!(no_name.code, 1);
    assert!(
        no_name.stderr.contains("tag is needed when pushing"),
        "{}",
        no_name.stderr
    );
    fs::write(
        fx.path("registries.conf"),
        format!(
            "[[registry]]\nlocation = \"{}/blocked\"\nblocked = true\n",
            registry.addr
        ),
    )
    .unwrap();
    let blocked = format!("{}/blocked/app:1", registry.addr);
    let refused = fx.hoist(&[
        "build",
        "--progress",
        "plain",
        "--push",
        "-t",
        &blocked,
        ".",
    ]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("blocked"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(" ERROR: "),
        "the export vertex fails:\n{}",
        refused.stderr
    );
}

#[test]
fn rawjson_progress_is_buildkits_solve_status() {
    use base64::Engine as _;
    let fx = Fixture::new();
    fx.write("f.txt", "f\n");
    fx.write(
        "Dockerfile",
        "FROM bb:1\nRUN echo hello from run\nCOPY f.txt /f.txt\n",
    );
    let parse = |stderr: &str| -> Vec<Value> {
        stderr
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{stderr}"))
            })
            .collect()
    };
    // The final state of each vertex, by digest.
    let vertices = |objects: &[Value]| -> std::collections::BTreeMap<String, Value> {
        let mut out = std::collections::BTreeMap::new();
        for object in objects {
            for vertex in object["vertexes"].as_array().into_iter().flatten() {
                out.insert(
                    vertex["digest"].as_str().unwrap().to_owned(),
                    vertex.clone(),
                );
            }
        }
        out
    };
    let first = fx.hoist(&["build", "--progress", "rawjson", "."]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let objects = parse(&first.stderr);
    let first_vertices = vertices(&objects);
    let names: Vec<&str> = first_vertices
        .values()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for expected in [
        "[internal] load build definition from Dockerfile",
        "[2/3] RUN echo hello from run",
        "[3/3] COPY f.txt /f.txt",
        "exporting to image",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    for vertex in first_vertices.values() {
        assert!(vertex["digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(vertex["completed"].is_string(), "{vertex}");
        assert!(vertex["started"].is_string(), "{vertex}");
        assert!(vertex.get("error").is_none(), "{vertex}");
    }
    let run_digest = first_vertices
        .iter()
        .find(|(_, v)| v["name"] == "[2/3] RUN echo hello from run")
        .map(|(d, _)| d.clone())
        .unwrap();
    assert_ne!(first_vertices[&run_digest]["cached"], true);
    // The plan's edges: the RUN step's input is the FROM vertex, the COPY's include the RUN step.
    let digest_of = |name: &str| {
        first_vertices
            .iter()
            .find(|(_, v)| v["name"] == name)
            .map(|(d, _)| d.clone())
            .unwrap_or_else(|| panic!("no vertex {name}"))
    };
    let from = digest_of("[1/3] FROM docker.io/library/bb:1");
    assert_eq!(
        first_vertices[&run_digest]["inputs"],
        serde_json::json!([from])
    );
    let copy = &first_vertices[&digest_of("[3/3] COPY f.txt /f.txt")];
    assert!(
        copy["inputs"]
            .as_array()
            .is_some_and(|inputs| inputs.contains(&Value::from(run_digest.as_str()))),
        "{copy}"
    );
    let logged: Vec<u8> = objects
        .iter()
        .flat_map(|o| o["logs"].as_array().cloned().unwrap_or_default())
        .filter(|log| log["vertex"] == run_digest.as_str())
        .flat_map(|log| {
            assert!(log["timestamp"].is_string());
            base64::engine::general_purpose::STANDARD
                .decode(log["data"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(String::from_utf8(logged).unwrap(), "hello from run\n");
    assert!(
        objects
            .iter()
            .flat_map(|o| o["statuses"].as_array().cloned().unwrap_or_default())
            .any(|s| s["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("writing image sha256:"))
                && s["completed"].is_string()),
        "{}",
        first.stderr
    );

    // A rebuild: the steps are cached.
    let second = fx.hoist(&["build", "--progress", "rawjson", "."]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let again = vertices(&parse(&second.stderr));
    assert_eq!(again[&run_digest]["cached"], true, "{}", second.stderr);
    assert!(again[&run_digest]["completed"].is_string());

    // A failing step carries its error.
    fx.write("Dockerfile", "FROM bb:1\nRUN exit 3\n");
    let failed = fx.hoist(&["build", "--progress", "rawjson", "."]);
    assert_eq!(failed.code, 1);
    let json_lines: Vec<Value> = failed
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let failed_vertices = vertices(&json_lines);
    assert!(
        failed_vertices
            .values()
            .any(|v| v["name"] == "[2/2] RUN exit 3"
                && v["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("exit code: 3"))),
        "{}",
        failed.stderr
    );
}

/// The text of a terminal transcript without its colour (SGR) sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
                if c.is_ascii_alphabetic() {
                    // Another control sequence (cursor movement): keep a marker so lines stay apart.
                    out.push('\u{1b}');
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn tty_progress_draws_a_live_view_and_buildkits_summary() {
    let fx = Fixture::new();
    fx.write(
        "Dockerfile",
        "FROM bb:1\nRUN echo line one; echo line two\nRUN echo done > /done\n",
    );
    let command = format!(
        "stty cols 100 rows 40; {} --root {} build --progress tty .",
        env!("CARGO_BIN_EXE_hoist"),
        fx.path("store").display()
    );
    // `script` gives hoist a real pseudo-terminal.
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(fx.path("ctx"))
        .env("TMPDIR", fx.path("tmp"))
        .env("HOIST_REGISTRIES_CONF", fx.path("registries.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = strip_ansi(&String::from_utf8_lossy(&output.stdout));
    assert!(output.status.success(), "{screen}");
    assert!(screen.contains("[+] Building"), "{screen}");
    // The summary, after the live view: every step with its time, right-aligned in 100 columns.
    let summary = &screen[screen.rfind("[+] Building").expect("a summary header")..];
    assert!(summary.contains(") FINISHED"), "{summary}");
    let run_line = summary
        .lines()
        .find(|l| l.contains("=> [2/3] RUN echo line one; echo line two"))
        .unwrap_or_else(|| panic!("no RUN line in:\n{summary}"));
    assert!(run_line.trim_end().ends_with('s'), "{run_line:?}");
    assert_eq!(
        run_line.trim_end_matches(['\r', '\n']).chars().count(),
        99,
        "{run_line:?}"
    );
    assert!(summary.contains("=> exporting to image"), "{summary}");
    assert!(summary.contains("=> => writing image sha256:"), "{summary}");
    // No plain-mode lines on a terminal.
    assert!(!screen.contains("#1 [internal]"), "{screen}");

    // The second build is cached, and says so.
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(fx.path("ctx"))
        .env("TMPDIR", fx.path("tmp"))
        .env("HOIST_REGISTRIES_CONF", fx.path("registries.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = strip_ansi(&String::from_utf8_lossy(&output.stdout));
    assert!(output.status.success(), "{screen}");
    assert!(
        screen.contains("=> CACHED [2/3] RUN echo line one; echo line two"),
        "{screen}"
    );

    // `auto` without a terminal is plain; `quiet` prints only the image ID.
    let auto = fx.hoist(&["build", "."]);
    assert_eq!(auto.code, 0, "{}", auto.stderr);
    assert!(
        auto.stderr
            .contains("\n#1 [internal] load build definition from Dockerfile\n"),
        "{}",
        auto.stderr
    );
    assert!(!auto.stderr.contains("[+] Building"), "{}", auto.stderr);
    let quiet = fx.hoist(&["build", "--progress", "quiet", "."]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "");
    assert!(
        quiet.stdout.trim().starts_with("sha256:"),
        "{}",
        quiet.stdout
    );
    assert_eq!(quiet.stdout.lines().count(), 1);
}

#[test]
fn source_date_epoch_makes_builds_reproducible_across_stores() {
    let fx = Fixture::new();
    fx.write("app.txt", "application\n");
    fx.write(
        "Dockerfile",
        "FROM bb:1\nRUN mkdir /data && echo generated > /data/out.txt\nCOPY app.txt /app/\n",
    );
    let epoch = "1700000000";
    // Every store gets the same base image, as a registry would give it.
    let base = fx.path("base.tar");
    let saved = fx.hoist(&["save", "bb:1", "-o", base.to_str().unwrap()]);
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    for store in ["store-a", "store-b", "store-c", "store-d", "store-e"] {
        let loaded = fx.hoist_in(store, &["load", "-i", base.to_str().unwrap()]);
        assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    }
    let build = |store: &str, extra: &[&str], env: &[(&str, &str)]| -> (String, Run) {
        let meta = fx.path(&format!("{store}.json"));
        let mut args = vec!["build", "--progress", "plain", "--metadata-file"];
        args.push(meta.to_str().unwrap());
        args.extend_from_slice(extra);
        args.push(".");
        let run = hoist_env(&fx, store, &args, env);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let digest = metadata(&meta)["containerimage.digest"]
            .as_str()
            .unwrap()
            .to_owned();
        (digest, run)
    };
    let (a, _) = build("store-a", &[], &[("SOURCE_DATE_EPOCH", epoch)]);
    // Another empty store, a second later: the RUN step runs again and writes newer files.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (b, run_b) = build(
        "store-b",
        &["-t", "repro:1"],
        &[("SOURCE_DATE_EPOCH", epoch)],
    );
    assert!(!cached(
        &run_b.stderr,
        "RUN mkdir /data && echo generated > /data/out.txt"
    ));
    assert_eq!(a, b, "same Dockerfile, same epoch, two stores");
    // The build argument works as the variable does, and a cached rebuild gives the same image.
    let (c, _) = build(
        "store-c",
        &["--build-arg", &format!("SOURCE_DATE_EPOCH={epoch}")],
        &[],
    );
    assert_eq!(a, c);
    let (a_again, run) = build("store-a", &[], &[("SOURCE_DATE_EPOCH", epoch)]);
    assert!(cached(&run.stderr, "COPY app.txt /app/"));
    assert_eq!(a, a_again);

    // The config's and the new history entries' times are the epoch; file times in the layers are clamped.
    let image = {
        let run = hoist_env(&fx, "store-b", &["inspect", "repro:1"], &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let value: Value = serde_json::from_str(&run.stdout).unwrap();
        value[0].clone()
    };
    assert_eq!(image["Created"], "2023-11-14T22:13:20Z", "{image}");
    let tar = fx.path("image.tar");
    let fs_tar = fx.path("fs.tar");
    let out = hoist_env(
        &fx,
        "store-b",
        &[
            "build",
            "--progress",
            "plain",
            "-o",
            &format!("type=docker,dest={}", tar.display()),
            "-o",
            &format!("type=tar,dest={}", fs_tar.display()),
            ".",
        ],
        &[("SOURCE_DATE_EPOCH", epoch)],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let unpacked = fx.path("archive");
    fs::create_dir_all(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    let manifest: Value = serde_json::from_str(&read(&unpacked.join("manifest.json"))).unwrap();
    let config: Value = serde_json::from_str(&read(
        &unpacked.join(manifest[0]["Config"].as_str().unwrap()),
    ))
    .unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    let history = config["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .rev()
            .take(2)
            .all(|h| h["created"] == "2023-11-14T22:13:20Z"),
        "{history:?}"
    );
    // The base image's own entry keeps its time (imported just now), as BuildKit keeps it.
    let base = fx.inspect("bb:1");
    assert_eq!(history.len(), 3, "{history:?}");
    assert_ne!(history[0]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(history[0], base["History"][0], "{history:?} {base}");
    // Every layer, the base's too (imported just now), as BuildKit's rewrite-timestamp does, and the
    // filesystem tar.
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    let mut tars: Vec<PathBuf> = layers
        .iter()
        .map(|l| unpacked.join(l.as_str().unwrap()))
        .collect();
    tars.push(fs_tar.clone());
    for layer in tars {
        let listing = Command::new("tar")
            .args(["--numeric-owner", "--full-time", "-tvf"])
            .arg(&layer)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        assert!(!listing.is_empty());
        for line in listing.lines() {
            let date = line.split_whitespace().nth(3).unwrap();
            assert!(date <= "2023-11-14", "a time after the epoch: {line}");
        }
    }

    // Without the epoch, a rerun in a fresh store differs (the files carry their real times).
    let (d, _) = build("store-d", &[], &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (e, _) = build("store-e", &[], &[]);
    assert_ne!(d, e);
    assert_ne!(d, a);
}

/// `--push` uses the registry configuration `hoist push` uses: a TLS registry is refused until registries.conf
/// names its CA.
#[test]
fn push_to_a_tls_registry_trusts_the_registries_conf_ca() {
    let Some(registry) = support::TestRegistry::start_tls() else {
        return;
    };
    if !support::require_tool("skopeo") {
        return;
    }
    let fx = Fixture::new();
    fx.write("Dockerfile", "FROM bb:1\nRUN echo tls > /tls.txt\n");
    let target = format!("{}/tls/app:1", registry.addr);
    let refused = fx.hoist(&["build", "--progress", "plain", "--push", "-t", &target, "."]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("invalid peer certificate"),
        "{}",
        refused.stderr
    );
    fs::write(
        fx.path("registries.conf"),
        format!(
            "[[registry]]\nprefix = \"{}\"\nca-file = \"{}\"\n",
            registry.addr,
            registry.ca_file().display()
        ),
    )
    .unwrap();
    let meta = fx.path("meta.json");
    fx.build(&[
        "--push",
        "-t",
        &target,
        "--metadata-file",
        meta.to_str().unwrap(),
    ]);
    let digest = metadata(&meta)["containerimage.digest"]
        .as_str()
        .unwrap()
        .to_owned();
    // skopeo reads `*.crt` from a directory that must hold no keys.
    let certs = fx.path("certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(registry.ca_file(), certs.join("ca.crt")).unwrap();
    let output = Command::new("skopeo")
        .args(["inspect", "--cert-dir"])
        .arg(&certs)
        .arg(format!("docker://{target}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inspected: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
}
