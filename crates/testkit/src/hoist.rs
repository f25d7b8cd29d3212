//! The `hoist` binary, run with a world of its own.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

/// How to run the `hoist` binary in a test: which binary, which store, which environment.
///
/// A builder that is cheap to clone: set what the whole test shares once ([`isolated`](Self::isolated) for the
/// usual private store, Docker configuration, registries configuration and `$TMPDIR`), then call
/// [`run`](Self::run), [`ok`](Self::ok) or [`fails`](Self::fails) per command, or take a [`Command`] from
/// [`command`](Self::command) to spawn it yourself.
///
/// ```no_run
/// # let dir = std::path::Path::new("/tmp/t");
/// let hoist = hoist_testkit::HoistCmd::new(env!("CARGO_BIN_EXE_hoist")).isolated(dir);
/// let stdout = hoist.ok(&["images", "-q"]);
/// let stderr = hoist.fails(&["rmi", "nope:1"]);
/// ```
#[derive(Debug, Clone)]
pub struct HoistCmd {
    program: PathBuf,
    root: Option<PathBuf>,
    envs: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
}

/// What a finished `hoist` process left: its exit status and its output (decoded lossily as UTF-8).
#[derive(Debug, Clone)]
pub struct Run {
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl From<Output> for Run {
    /// What a process started some other way left (`setpriv … hoist`, a spawned child's `wait_with_output`).
    fn from(output: Output) -> Self {
        Run {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Whether the process exited with 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Status, stdout and stderr as one text for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status: {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl HoistCmd {
    /// Runs `program` (in a test of the `hoist` package: `env!("CARGO_BIN_EXE_hoist")`) with nothing set yet: the
    /// store is whatever `$HOIST_ROOT` or the default says until [`root`](Self::root) or
    /// [`root_env`](Self::root_env) picks one.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            root: None,
            envs: Vec::new(),
            current_dir: None,
        }
    }

    /// A private world under `dir`: the store `dir/store` (`--root`), `$TMPDIR` = `dir/tmp`, `$DOCKER_CONFIG` =
    /// `dir/docker-config` and `$HOIST_REGISTRIES_CONF` = `dir/registries.conf` (empty, so no mirror or insecure
    /// registry of the machine applies). Creates `dir/tmp` and the empty `registries.conf` if missing.
    pub fn isolated(self, dir: &Path) -> Self {
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("creating {}: {e}", tmp.display()));
        let conf = dir.join("registries.conf");
        if !conf.exists() {
            fs::write(&conf, "").unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
        }
        self.root(dir.join("store"))
            .tmpdir(tmp)
            .docker_config(dir.join("docker-config"))
            .registries_conf(conf)
    }

    /// Passes `--root <root>` first, and leaves out any `$HOIST_ROOT` of the test's environment.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self.env_remove("HOIST_ROOT")
    }

    /// Sets `$HOIST_ROOT` instead of passing `--root` (what a user's environment does).
    pub fn root_env(mut self, root: impl AsRef<OsStr>) -> Self {
        self.root = None;
        self.env("HOIST_ROOT", root)
    }

    /// Sets `$TMPDIR`: hoist's scratch directories go under it.
    pub fn tmpdir(self, dir: impl AsRef<OsStr>) -> Self {
        self.env("TMPDIR", dir)
    }

    /// Sets `$DOCKER_CONFIG`: where `login` writes and pulls and pushes read credentials.
    pub fn docker_config(self, dir: impl AsRef<OsStr>) -> Self {
        self.env("DOCKER_CONFIG", dir)
    }

    /// Sets `$HOIST_REGISTRIES_CONF`: mirrors and insecure registries.
    pub fn registries_conf(self, file: impl AsRef<OsStr>) -> Self {
        self.env("HOIST_REGISTRIES_CONF", file)
    }

    /// Sets an environment variable (a later setting of the same name wins).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable the test process has.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// Runs hoist in `dir` (relative paths such as a build context `.` resolve there).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// `hoist [--root ROOT] ARGS` with the environment set; stdio as [`Command::new`] leaves it (so `output()`
    /// captures stdout and stderr and gives stdin /dev/null, and `spawn()` inherits all three).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        if let Some(root) = &self.root {
            command.arg("--root").arg(root);
        }
        command.args(args);
        for (key, value) in &self.envs {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        command
    }

    /// Runs `hoist ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.program.display()))
            .into()
    }

    /// Runs `hoist ARGS`, which must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(run.success(), "hoist {args:?} failed\n{}", run.describe());
        run.stdout
    }

    /// Runs `hoist ARGS`, which must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            !run.success(),
            "hoist {args:?} succeeded\n{}",
            run.describe()
        );
        run.stderr
    }
}
