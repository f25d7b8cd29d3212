//! `hoist lint` and `hoist build --check` run as the real binary on Dockerfiles written to a
//! temporary directory. Output is snapshotted (text and JSON), exit codes asserted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A build context in a temporary directory; the binary runs with it as working directory.
struct Context {
    dir: tempfile::TempDir,
}

/// What a run printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Context {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) -> &Self {
        let path = self.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    fn hoist(&self, args: &[&str]) -> Run {
        self.hoist_with_stdin(args, None)
    }

    fn hoist_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
        command
            .args(args)
            .current_dir(self.path())
            .env_remove("NO_COLOR")
            // A private store that only exists when a test imports into it.
            .env("HOIST_ROOT", self.path().join(".store"))
            .env_remove("BUILDKIT_DOCKERFILE_CHECK")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let output: Output = child.wait_with_output().unwrap();
        let run = Run {
            code: output.status.code().expect("hoist exits normally"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        };
        assert!(
            !run.stdout.contains('\u{1b}') && !run.stderr.contains('\u{1b}'),
            "no ANSI escapes when output is piped:\n{}{}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// Replaces the temporary directory in `text` with `[TEMP]`.
    fn filter(&self, text: &str) -> String {
        let canonical = fs::canonicalize(self.path()).unwrap_or_else(|_| PathBuf::from(""));
        text.replace(&canonical.display().to_string(), "[TEMP]")
            .replace(&self.path().display().to_string(), "[TEMP]")
    }
}

const MESSY: &str = "\
FROM golang:1.22 as Build
WORKDIR app
COPY . .
RUN go build -o /out/app .
ENV GOFLAGS -mod=mod
CMD /out/app --serve
CMD [\"/out/app\"]
EXPOSE 8080:80/TCP

FROM alpine AS unused
RUN echo never
";

#[test]
fn clean_dockerfile_exits_zero() {
    let context = Context::new();
    context.write(
        "Dockerfile",
        "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\nRUN go build -o /out/app .\n\nFROM gcr.io/distroless/static-debian12\nCOPY --from=build /out/app /app\nENTRYPOINT [\"/app\"]\n",
    );
    let run = context.hoist(&["lint"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Dockerfile: no problems found\n");
    assert_eq!(run.stderr, "");

    let run = context.hoist(&["lint", "--format", "json"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "[]\n");
}

#[test]
fn warnings_in_text() {
    let context = Context::new();
    context.write("Dockerfile", MESSY);
    let run = context.hoist(&["lint"]);
    assert_eq!(run.code, 0, "warnings alone do not fail: {}", run.stderr);
    assert_eq!(run.stderr, "");
    insta::assert_snapshot!("warnings_text", run.stdout);
}

#[test]
fn warnings_in_json() {
    let context = Context::new();
    context.write("Dockerfile", MESSY);
    let run = context.hoist(&["lint", "--format", "json"]);
    assert_eq!(run.code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let first = &parsed[0];
    assert_eq!(first["rule"], "StageNameCasing");
    assert_eq!(first["file"], "Dockerfile");
    assert_eq!(first["line"], 1);
    assert_eq!(first["column"], 1);
    insta::assert_snapshot!("warnings_json", run.stdout);
}

#[test]
fn error_level_checks_exit_one() {
    let context = Context::new();
    context.write(
        "Dockerfile",
        "# check=error=true;skip=UnreachableStage\nFROM alpine\nMAINTAINER me\nCMD [\"true\"]\n",
    );
    let run = context.hoist(&["lint"]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!("error_level", run.stdout);

    // The build argument replaces the directive, as BUILDKIT_DOCKERFILE_CHECK does.
    let run = context.hoist(&[
        "lint",
        "--build-arg",
        "BUILDKIT_DOCKERFILE_CHECK=skip=MaintainerDeprecated",
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.stdout, "Dockerfile: no problems found\n");
}

#[test]
fn unknown_instruction_is_a_parse_error() {
    let context = Context::new();
    context.write("Dockerfile", "FROM alpine\nFORM busybox\nRUN true\n");
    let run = context.hoist(&["lint"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    insta::assert_snapshot!("unknown_instruction", run.stderr);
}

#[test]
fn syntax_errors_render_with_location_and_help() {
    let context = Context::new();
    context.write("Dockerfile", "FROM alpine\nRUN <<EOF\necho hi\n");
    let run = context.hoist(&["lint"]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!("unterminated_heredoc", run.stderr);

    context.write(
        "Dockerfile",
        "FROM alpine\nCOPY --chmod=7777 --frm=build a b\n",
    );
    let run = context.hoist(&["lint"]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!("unknown_flag", run.stderr);

    context.write("Dockerfile", "# check=error=sometimes\nFROM alpine\n");
    let run = context.hoist(&["lint"]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!("invalid_check_directive", run.stderr);
}

#[test]
fn reads_stdin_and_other_files() {
    let context = Context::new();
    let run = context.hoist_with_stdin(
        &["lint", "-f", "-"],
        Some("FROM alpine AS base\nRUN true\n"),
    );
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "<stdin>: no problems found\n");

    context.write(
        "ci/app.Dockerfile",
        "FROM alpine\nCOPY secrets/ /etc/app/\n",
    );
    context.write(".dockerignore", "*.md\n");
    context.write("ci/app.Dockerfile.dockerignore", "secrets\n");
    let run = context.hoist(&["lint", "-f", "ci/app.Dockerfile", "--format", "json"]);
    assert_eq!(run.code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(parsed[0]["rule"], "CopyIgnoredFile", "{}", run.stdout);
    assert_eq!(parsed[0]["file"], "ci/app.Dockerfile");
    assert_eq!(
        parsed[0]["message"],
        "Attempting to Copy file \"secrets\" that is excluded by .dockerignore"
    );

    context.write("sub/Dockerfile", "FROM alpine\nWORKDIR rel\n");
    let run = context.hoist(&["lint", "sub"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .starts_with("sub/Dockerfile:2:1: warning[WorkdirRelativePath]"),
        "{}",
        run.stdout
    );

    let run = context.hoist(&["lint", "missing"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: unable to prepare context: path \"missing\" not found\n"
    );
    let absolute = context.path().join("nope/Dockerfile");
    let run = context.hoist(&["lint", "-f", absolute.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert_eq!(
        context.filter(&run.stderr),
        "error: failed to read dockerfile [TEMP]/nope/Dockerfile: No such file or directory (os error 2)\n"
    );
}

#[test]
fn target_narrows_the_checks() {
    let context = Context::new();
    context.write(
        "Dockerfile",
        "FROM alpine AS a\nWORKDIR rel\nFROM alpine AS b\nWORKDIR rel\n",
    );
    let run = context.hoist(&["lint", "--target", "a", "--format", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let lines: Vec<(String, u64)> = parsed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("UnreachableStage".to_owned(), 1),
            ("WorkdirRelativePath".to_owned(), 2),
        ],
        "stage b is not converted for target a: {}",
        run.stdout
    );

    let run = context.hoist(&["lint", "--target", "c"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, "error: target stage \"c\" could not be found\n");
}

#[test]
fn build_check_reports_like_docker() {
    let context = Context::new();
    context.write("Dockerfile", MESSY);
    let run = context.hoist(&["build", "--check", "."]);
    assert_eq!(run.code, 1, "any finding fails --check");
    assert_eq!(run.stderr, "");
    insta::assert_snapshot!("build_check", run.stdout);

    context.write("Dockerfile", "FROM alpine\nCMD [\"true\"]\n");
    let run = context.hoist(&["build", "--check", "."]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "Check complete, no warnings found.\n");

    // hoist's own rules are not part of `docker build --check`.
    context.write(
        "Dockerfile",
        "FROM golang\nCOPY . .\nRUN go build\nFROM alpine AS x\n",
    );
    let run = context.hoist(&["build", "--check", "."]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn build_check_with_error_directive() {
    let context = Context::new();
    context.write(
        "Dockerfile",
        "# check=error=true\nFROM alpine\nCMD echo hi\nENV A b\n",
    );
    let run = context.hoist(&["build", "--check", "--build-arg", "UNUSED=1", "."]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "ERROR: lint violation found for rules: JSONArgsRecommended, LegacyKeyValueFormat\n"
    );
    assert!(
        run.stdout
            .starts_with("Check complete, 2 warnings have been found!\n")
    );
    assert!(
        run.stdout.ends_with("--------------------\n\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn build_without_check_builds_instead_of_checking() {
    let context = Context::new();
    context.write("Dockerfile", "FROM scratch\nLABEL a=b\n");
    let run = context.hoist(&["build", "-q", "."]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("sha256:"), "{}", run.stdout);
    assert!(!run.stdout.contains("Check complete"), "{}", run.stdout);
    let run = context.hoist(&["build", "--check", "-f", "-", "."]);
    assert_eq!(run.code, 1, "an empty stdin is no Dockerfile");
    assert!(
        run.stderr.contains("file with no instructions"),
        "{}",
        run.stderr
    );
}

#[test]
fn base_image_environment_comes_from_the_store() {
    let context = Context::new();
    context.write(
        "Dockerfile",
        "FROM toolchain:1\nWORKDIR $GOPATH/src\nCOPY $GOPTH/x /x\n",
    );
    let json = |run: &Run| -> Vec<String> {
        let parsed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        parsed
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "UndefinedVar")
            .map(|f| f["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let run = context.hoist(&["lint", "--format", "json"]);
    assert_eq!(
        json(&run),
        Vec::<String>::new(),
        "an unknown base image may define anything"
    );

    // An empty root filesystem, imported with an environment, as the base image.
    let tar = Command::new("tar")
        .args(["-cf", "rootfs.tar", "-T", "/dev/null"])
        .current_dir(context.path())
        .status()
        .unwrap();
    assert!(tar.success());
    let run = context.hoist(&[
        "import",
        "--change",
        "ENV GOPATH=/go",
        "rootfs.tar",
        "toolchain:1",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let run = context.hoist(&["lint", "--format", "json"]);
    assert_eq!(
        json(&run),
        ["Usage of undefined variable '$GOPTH' (did you mean $GOPATH?)"]
    );
    let run = context.hoist(&["build", "--check", "."]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("WARNING: UndefinedVar"),
        "{}",
        run.stdout
    );
}
