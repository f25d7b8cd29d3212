//! `hoist run` as the real binary: a busybox image made with `hoist import` from a tar(1) of `/bin/busybox` and its
//! applet links, run in real namespaces. Needs root and Debian's busybox-static.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoist_testkit::{BusyboxRootfs, HoistCmd, Run, free_port, http_get, tar_dir, wait_until};

const APPLETS: &[&str] = &[
    "sh", "id", "echo", "pwd", "sleep", "httpd", "nc", "cat", "hostname", "env", "touch", "chown",
    "ls",
];

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// `$TMPDIR` of the hoist processes: their scratch directories go under it.
    tmp: PathBuf,
    /// hoist with the store `root` and `$TMPDIR` `tmp`.
    hoist: HoistCmd,
}

impl Fixture {
    /// A store with `bb:1`: busybox, an `app` user (1000), and CMD/ENV/WORKDIR/USER set by `--change`.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tar = BusyboxRootfs::new(dir.path().join("rootfs"))
            .applets(APPLETS)
            .dirs(&["srv"])
            .passwd("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
            .group("root:x:0:\napp:x:1000:\n")
            .file("www/index.html", "hello from the container\n")
            .tar();
        let hoist = HoistCmd::new(env!("CARGO_BIN_EXE_hoist")).isolated(dir.path());
        hoist.ok(&[
            "import",
            "--change",
            r#"CMD ["sh", "-c", "echo $GREETING; pwd; id -u"]"#,
            "--change",
            "ENV GREETING=hi",
            "--change",
            "WORKDIR /srv",
            "--change",
            "USER app",
            tar.to_str().unwrap(),
            "bb:1",
        ]);
        Fixture {
            root: dir.path().join("store"),
            tmp: dir.path().join("tmp"),
            _dir: dir,
            hoist,
        }
    }

    fn hoist(&self) -> Command {
        self.hoist.command(&[])
    }

    /// `hoist run ARGS` without `--rm`.
    fn run_kept(&self, args: &[&str]) -> Run {
        self.hoist.run(&[&["run"], args].concat())
    }

    /// `hoist run --rm ARGS`.
    fn run(&self, args: &[&str]) -> Run {
        self.hoist.run(&[&["run", "--rm"], args].concat())
    }
}

fn stdout(run: &Run) -> String {
    run.stdout.clone()
}

#[test]
fn image_config_and_flags_decide_command_env_workdir_and_user() {
    let fixture = Fixture::new();
    let output = fixture.run(&["bb:1"]);
    assert!(output.success(), "{}", output.describe());
    assert_eq!(stdout(&output), "hi\n/srv\n1000\n");

    let output = fixture.run(&["-e", "GREETING=yo", "-w", "/tmp/new", "-u", "0", "bb:1"]);
    assert_eq!(stdout(&output), "yo\n/tmp/new\n0\n");

    let output = fixture.run(&["-u", "1000:1000", "bb:1", "id", "-u"]);
    assert_eq!(stdout(&output), "1000\n");

    let output = fixture.run(&["--entrypoint", "echo", "bb:1", "a", "b"]);
    assert_eq!(stdout(&output), "a b\n");

    let output = fixture.run(&[
        "--hostname",
        "web1",
        "bb:1",
        "sh",
        "-c",
        "hostname; echo $HOSTNAME $HOME",
    ]);
    assert_eq!(stdout(&output), "web1\nweb1 /home/app\n");
}

#[test]
fn runc_runtime_runs_the_image_the_same_way() {
    let fixture = Fixture::new();
    let output = fixture.run(&["--runtime", "runc", "--hostname", "viarunc", "bb:1"]);
    assert!(output.success(), "{}", output.describe());
    assert_eq!(stdout(&output), "hi\n/srv\n1000\n");
    let output = fixture.run(&["--runtime", "runc", "bb:1", "sh", "-c", "hostname; exit 5"]);
    assert_eq!(output.status.code(), Some(5));
    let output = fixture.run(&["--runtime", "runc", "-p", "1:2", "bb:1"]);
    assert_eq!(output.status.code(), Some(125));
}

#[test]
fn exit_codes_are_the_commands_or_dockers() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture.run(&["bb:1", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    let missing = fixture.run(&["bb:1", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(missing.stderr.as_str().contains("no-such-command"));
    let unknown = fixture.run(&["no-such-image:1"]);
    assert_eq!(unknown.status.code(), Some(125));
}

fn loopback_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"pong\n");
        }
    });
    port
}

#[test]
fn default_network_reaches_the_host_and_none_does_not() {
    let fixture = Fixture::new();
    let port = loopback_server().to_string();
    let reached = fixture.run(&["bb:1", "nc", "127.0.0.1", &port]);
    assert_eq!(stdout(&reached), "pong\n");
    assert!(reached.status.success());
    let blocked = fixture.run(&["--network", "none", "bb:1", "nc", "127.0.0.1", &port]);
    assert!(!blocked.status.success());
    assert_eq!(stdout(&blocked), "");
}

/// Processes whose command line is exactly `args`.
fn processes_running(args: &[&str]) -> Vec<String> {
    let mut expected = args.join("\0").into_bytes();
    expected.push(0);
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline"))
            && cmdline == expected
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// `kill SIGNAL PID`, which must succeed.
fn kill(signal: &str, pid: &str) {
    let status = Command::new("kill").args([signal, pid]).status().unwrap();
    assert!(status.success(), "kill {signal} {pid}: {status}");
}

fn terminate(child: &Child) {
    kill("-TERM", &child.id().to_string());
}

fn wait_with_deadline(child: &mut Child, deadline: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "hoist did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn published_port_serves_the_host_and_sigterm_ends_the_container() {
    let fixture = Fixture::new();
    let port = free_port();
    let mut child = fixture
        .hoist()
        .args([
            "run",
            "--rm",
            "--stop-timeout",
            "1",
            "-p",
            &format!("{port}:8080"),
            "bb:1",
        ])
        .args(["httpd", "-f", "-p", "8080", "-h", "/www"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let response = http_get(port, Instant::now() + Duration::from_secs(10));
    assert!(response.contains("hello from the container"), "{response}");
    terminate(&child);
    let status = wait_with_deadline(&mut child, Instant::now() + Duration::from_secs(10));
    assert!(!status.success());
    assert!(processes_running(&["httpd", "-f", "-p", "8080", "-h", "/www"]).is_empty());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still published"
    );
}

#[test]
fn sigterm_kills_the_whole_container_and_leaves_no_mount() {
    let fixture = Fixture::new();
    let mut child = fixture
        .hoist()
        .args(["run", "--rm", "--stop-timeout", "1", "bb:1", "sh", "-c"])
        .arg("sleep 987654 & sleep 876543")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_running(&["sleep", "987654"]).is_empty() {
        assert!(Instant::now() < deadline, "the container did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    terminate(&child);
    let status = wait_with_deadline(&mut child, Instant::now() + Duration::from_secs(10));
    // PID 1 of the container ignores SIGTERM (no handler), so it is killed after --stop-timeout: 128 + 9.
    assert_eq!(status.code(), Some(137));
    assert!(
        processes_running(&["sleep", "987654"]).is_empty(),
        "{:?}",
        processes_running(&["sleep", "987654"])
    );
    assert!(processes_running(&["sleep", "876543"]).is_empty());
    // Nothing of the container is mounted on the host (other processes may mount things meanwhile).
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|line| {
            // The scratch directories and the sandbox's state directory (others may have "hoist" in a path).
            line.contains(fixture.tmp.to_str().unwrap())
                || line.contains("/hoist-run/")
                || line.contains("/hoist-sandbox-")
        })
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
    // The container's scratch directory (its writable layer) is gone too.
    let scratch = dir_entries(&fixture.tmp.join("hoist-run"));
    assert!(scratch.is_empty(), "{scratch:?}");
}

#[test]
fn tty_gives_the_command_a_terminal_of_its_own() {
    let fixture = Fixture::new();
    let output = fixture.run(&[
        "-t",
        "bb:1",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo terminal; cat /proc/self/stat",
    ]);
    assert!(output.success(), "{}", output.describe());
    let out = stdout(&output);
    // The terminal turns newlines into CR LF, as `docker run -t` output has them.
    assert!(out.starts_with("terminal\r\n"), "{out:?}");
    // The command's session has the terminal as its controlling terminal (field 7, tty_nr, is not 0).
    let stat = out.lines().nth(1).unwrap();
    let tty_nr: i64 = stat.split_whitespace().nth(6).unwrap().parse().unwrap();
    assert_ne!(tty_nr, 0, "{stat}");
    // Without -t: no terminal.
    let output = fixture.run(&["bb:1", "sh", "-c", "test -t 1 || echo none"]);
    assert_eq!(stdout(&output), "none\n");
}

#[test]
fn stdin_is_attached_with_interactive_only() {
    let fixture = Fixture::new();
    let feed = |args: &[&str]| {
        let mut child = fixture
            .hoist()
            .args(["run", "--rm"])
            .args(args)
            .args(["bb:1", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Without -i hoist may be gone before this write: its error does not matter, the output does.
        let _ = child.stdin.take().unwrap().write_all(b"piped in\n");
        stdout(&child.wait_with_output().map(Run::from).unwrap())
    };
    assert_eq!(feed(&["-i"]), "piped in\n");
    assert_eq!(feed(&[]), "");
}

#[test]
fn sigterm_is_forwarded_to_a_command_that_handles_it() {
    let fixture = Fixture::new();
    let mut child = fixture
        .hoist()
        .args(["run", "--rm", "bb:1", "sh", "-c"])
        .arg("trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    terminate(&child);
    let status = wait_with_deadline(&mut child, Instant::now() + Duration::from_secs(5));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(3));
}

/// `setpriv` as `nobody` (65534), with the environment of an unprivileged user.
fn as_nobody(home: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_hoist"))
        .env("HOME", home)
        .env("TMPDIR", home.join("tmp"))
        .env_remove("HOIST_ROOT")
        .env_remove("XDG_DATA_HOME");
    command
}

/// `hoist ARGS` as `nobody` with `home`, to completion.
fn nobody(home: &Path, args: &[&str]) -> Run {
    as_nobody(home).args(args).output().map(Run::from).unwrap()
}

/// `hoist ARGS` as `nobody` with `home`, which must succeed; returns its stdout.
fn nobody_ok(home: &Path, args: &[&str]) -> String {
    let run = nobody(home, args);
    assert!(run.success(), "{}", run.describe());
    run.stdout
}

impl Fixture {
    /// The fixture's directory (the store, `rootfs/` and `rootfs.tar` are in it).
    fn dir(&self) -> &Path {
        self.root.parent().unwrap()
    }

    /// A home for `nobody` in the fixture's directory, with its own `tmp`; the directory and `rootfs.tar` are made
    /// readable for nobody, who imports the tar there.
    fn nobody_home(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let base = self.dir();
        fs::set_permissions(base, fs::Permissions::from_mode(0o755)).unwrap();
        let home = base.join("nobody");
        fs::create_dir_all(home.join("tmp")).unwrap();
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::chown(home.join("tmp"), Some(65534), Some(65534)).unwrap();
        fs::set_permissions(base.join("rootfs.tar"), fs::Permissions::from_mode(0o644)).unwrap();
        home
    }

    /// `rootfs.tar` in the fixture's directory (busybox as `hoist import` takes it).
    fn rootfs_tar(&self) -> String {
        self.dir().join("rootfs.tar").to_str().unwrap().to_owned()
    }
}

/// The words of each line of `out` (`/proc/self/uid_map` rows, `ls -n` columns).
fn words_per_line(out: &str) -> Vec<Vec<&str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// What is in `dir` (a scratch directory that should be empty by now).
fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect()
}

#[test]
fn rootless_run_maps_the_caller_to_root_in_a_user_namespace() {
    let fixture = Fixture::new();
    let home = fixture.nobody_home();
    nobody_ok(
        &home,
        &[
            "import",
            "--change",
            "CMD [\"id\", \"-u\"]",
            &fixture.rootfs_tar(),
            "rootless:1",
        ],
    );
    let out = nobody_ok(
        &home,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--hostname",
            "x",
            "rootless:1",
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo $$; hostname; echo hi > /f && cat /f",
        ],
    );
    let lines = words_per_line(&out);
    assert_eq!(lines[0], ["0"]);
    assert_eq!(lines[1], ["0", "65534", "1"]);
    assert_eq!(lines[2], ["1"]);
    assert_eq!(lines[3], ["x"]);
    assert_eq!(lines[4], ["hi"]);
    // A uid the single mapping does not have is a clear setup error.
    let output = nobody(&home, &["run", "--rm", "-u", "1000", "rootless:1"]);
    assert_eq!(output.status.code(), Some(125));
    assert!(output.stderr.as_str().contains("switch to user 1000"));
    // Published ports work rootless too: the proxy's helper joins the container's user and network namespaces.
    let port = free_port();
    let mut server = as_nobody(&home)
        .args([
            "run",
            "--rm",
            "--stop-timeout",
            "1",
            "-p",
            &format!("127.0.0.1:{port}:8080"),
        ])
        .args(["rootless:1", "httpd", "-f", "-p", "8080", "-h", "/www"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let response = http_get(port, Instant::now() + Duration::from_secs(10));
    assert!(response.contains("hello from the container"), "{response}");
    terminate(&server);
    wait_with_deadline(&mut server, Instant::now() + Duration::from_secs(10));
    // The scratch directories are gone, overlayfs's mode-000 work directory included.
    let scratch = dir_entries(&home.join("tmp/hoist-run"));
    assert!(scratch.is_empty(), "{scratch:?}");

    // Detached, rootless: after a `kill -9` of the supervisor, `rm` still removes the writable layer the
    // supervisor left, overlayfs's mode-000 work directory included.
    let detached = nobody(
        &home,
        &["run", "-d", "--name", "bg", "rootless:1", "sleep", "1000"],
    );
    let id = detached_id(&detached);
    let dir = home.join(".local/share/hoist/containers-v1").join(&id);
    let ps = nobody(&home, &["ps"]);
    assert!(stdout(&ps).contains(" Up "), "{}", stdout(&ps));
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    let supervisor = record["supervisorPid"].as_u64().unwrap().to_string();
    kill("-KILL", &supervisor);
    wait_until(10, "the supervisor to die", || {
        stdout(&nobody(&home, &["ps", "-a"])).contains("Exited (137)")
    });
    nobody_ok(&home, &["rm", "bg"]);
    assert!(!dir.exists());
}

/// A container ID as `hoist run -d` prints it: 64 hex digits and a newline.
fn detached_id(output: &Run) -> String {
    assert!(output.success(), "{}", output.describe());
    let out = stdout(output);
    let id = out.trim_end_matches('\n');
    assert_eq!(out.len(), 65, "{out:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{out:?}");
    id.to_owned()
}

impl Fixture {
    /// `hoist ARGS` to completion.
    fn hoist_output(&self, args: &[&str]) -> Run {
        self.hoist.run(args)
    }

    /// `hoist ps` (with extra arguments) rows, split on runs of 3+ spaces, header left out.
    fn ps(&self, args: &[&str]) -> Vec<Vec<String>> {
        let output = self.hoist_output(&[&["ps"], args].concat());
        assert!(output.status.success());
        let out = stdout(&output);
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("CONTAINER ID   IMAGE"), "{header:?}");
        lines
            .map(|line| {
                line.split("   ")
                    .map(str::trim)
                    .filter(|cell| !cell.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    /// The recorded state of a container (`containers-v1/<id>/config.json`).
    fn record(&self, id: &str) -> serde_json::Value {
        let path = self.root.join("containers-v1").join(id).join("config.json");
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }
}

#[test]
fn detached_server_is_published_and_ps_logs_stop_rm_manage_it() {
    let fixture = Fixture::new();
    let port = free_port();
    let started = Instant::now();
    let output = fixture.hoist_output(&[
        "run",
        "-d",
        "--name",
        "web",
        "-u",
        "0",
        "-p",
        &format!("127.0.0.1:{port}:8080/tcp"),
        "bb:1",
        "sh",
        "-c",
        "trap 'echo stopping; exit 3' TERM; echo started; echo warning >&2; \
         httpd -f -p 8080 -h /www & wait",
    ]);
    let id = detached_id(&output);
    assert!(started.elapsed() < Duration::from_secs(10));
    let response = http_get(port, Instant::now() + Duration::from_secs(10));
    assert!(response.contains("hello from the container"), "{response}");

    let rows = fixture.ps(&[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row[0], &id[..12]);
    assert_eq!(row[1], "bb:1");
    assert_eq!(row[2], "\"sh -c trap 'echo st…\"");
    assert!(row[3].ends_with(" ago"), "{row:?}");
    assert!(row[4].starts_with("Up "), "{row:?}");
    assert_eq!(row[5], format!("127.0.0.1:{port}->8080/tcp"));
    assert_eq!(row[6], "web");
    assert_eq!(
        stdout(&fixture.hoist_output(&["ps", "-q"])),
        format!("{}\n", &id[..12])
    );

    wait_until(10, "the log", || {
        stdout(&fixture.hoist_output(&["logs", "web"])) == "started\n"
    });
    let logs = fixture.hoist_output(&["logs", &id[..8]]);
    assert_eq!(logs.stderr.as_str(), "warning\n");

    // `logs -f` follows until the container ends; `stop` sends SIGTERM, which the trap turns into exit 3.
    let follower = fixture
        .hoist()
        .args(["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stop = fixture.hoist_output(&["stop", "-t", "5", "web"]);
    assert!(stop.success(), "{}", stop.describe());
    assert_eq!(stdout(&stop), "web\n");
    let followed = follower.wait_with_output().map(Run::from).unwrap();
    assert_eq!(stdout(&followed), "started\nstopping\n");

    assert!(fixture.ps(&[]).is_empty());
    let all = fixture.ps(&["-a"]);
    assert_eq!(all.len(), 1);
    assert!(all[0][4].starts_with("Exited (3) "), "{all:?}");
    assert_eq!(all[0].last().unwrap(), "web");
    assert_eq!(fixture.record(&id)["exitCode"], 3);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still published"
    );
    assert!(processes_running(&["httpd", "-f", "-p", "8080", "-h", "/www"]).is_empty());

    let rm = fixture.hoist_output(&["rm", "web"]);
    assert!(rm.success(), "{}", rm.describe());
    assert!(fixture.ps(&["-a"]).is_empty());
    assert!(!fixture.root.join("containers-v1").join(&id).exists());
    let missing = fixture.hoist_output(&["logs", "web"]);
    assert!(!missing.status.success());
    assert!(missing.stderr.as_str().contains("No such container: web"));
}

#[test]
fn container_names_are_unique_until_removed() {
    let fixture = Fixture::new();
    let first = detached_id(
        &fixture.hoist_output(&["run", "-d", "--name", "dup", "bb:1", "sleep", "1000"]),
    );
    let second = fixture.hoist_output(&["run", "-d", "--name", "dup", "bb:1", "true"]);
    assert_eq!(second.status.code(), Some(125));
    assert!(
        second.stderr.as_str().contains(&format!(
            "Conflict. The container name \"/dup\" is already in use by container \"{first}\""
        )),
        "{}",
        second.stderr.as_str()
    );
    let refused = fixture.hoist_output(&["rm", "dup"]);
    assert!(!refused.status.success());
    assert!(
        refused
            .stderr
            .as_str()
            .contains("You cannot remove a running container")
    );
    let forced = fixture.hoist_output(&["rm", "-f", "dup"]);
    assert!(forced.success(), "{}", forced.describe());
    assert!(processes_running(&["sleep", "1000"]).is_empty());
    // Free again; a foreground --rm run with a name leaves nothing behind.
    let again = fixture.hoist_output(&["run", "--rm", "--name", "dup", "bb:1", "echo", "again"]);
    assert_eq!(stdout(&again), "again\n");
    assert!(fixture.ps(&["-a"]).is_empty());
    // Without --rm a named foreground run is kept, its output both printed and logged.
    let foreground = fixture.run_kept(&[
        "--name",
        "fg",
        "bb:1",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 2",
    ]);
    assert_eq!(foreground.status.code(), Some(2));
    assert_eq!(stdout(&foreground), "out\n");
    assert_eq!(foreground.stderr.as_str(), "err\n");
    let logs = fixture.hoist_output(&["logs", "fg"]);
    assert_eq!(stdout(&logs), "out\n");
    assert_eq!(logs.stderr.as_str(), "err\n");
    let all = fixture.ps(&["-a"]);
    assert!(all[0][4].starts_with("Exited (2) "), "{all:?}");
    assert!(fixture.hoist_output(&["rm", "fg"]).status.success());
    // Without --rm a detached container is kept when it exits, with its exit code; with --rm it is removed.
    let kept = detached_id(&fixture.hoist_output(&["run", "-d", "bb:1", "sh", "-c", "exit 4"]));
    let gone = detached_id(&fixture.hoist_output(&["run", "-d", "--rm", "bb:1", "echo"]));
    wait_until(10, "both containers to exit", || {
        fixture.ps(&[]).is_empty() && !fixture.root.join("containers-v1").join(&gone).exists()
    });
    let all = fixture.ps(&["-a"]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0][0], &kept[..12]);
    assert!(all[0][4].starts_with("Exited (4) "), "{all:?}");
    // A command that does not exist: 127 from `run -d` itself, and the container stays "Created", as Docker's.
    let missing =
        fixture.hoist_output(&["run", "-d", "--name", "broken", "bb:1", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(127));
    let all = fixture.ps(&["-a"]);
    assert!(
        all.iter()
            .any(|row| row[4] == "Created" && row.last().unwrap() == "broken"),
        "{all:?}"
    );
    // With --rm the error is still reported, and nothing is kept.
    for detach in [true, false] {
        let mut args = vec!["run", "--rm", "--name", "gone"];
        if detach {
            args.push("-d");
        }
        args.extend(["bb:1", "no-such-command"]);
        let missing = fixture.hoist_output(&args);
        assert_eq!(missing.status.code(), Some(127), "detach: {detach}");
        let stderr = missing.stderr.as_str();
        assert!(stderr.contains("no-such-command"), "{stderr}");
        assert_eq!(fixture.ps(&["-a"]).len(), all.len(), "detach: {detach}");
    }
}

#[test]
fn a_killed_supervisor_leaves_an_exited_container_and_nothing_running() {
    let fixture = Fixture::new();
    let port = free_port();
    let id = detached_id(&fixture.hoist_output(&[
        "run",
        "-d",
        "--name",
        "victim",
        "-p",
        &format!("{port}:8080"),
        "bb:1",
        "sh",
        "-c",
        "sleep 987123 & sleep 876123",
    ]));
    wait_until(10, "the container to start", || {
        !processes_running(&["sleep", "987123"]).is_empty()
    });
    let supervisor = fixture.record(&id)["supervisorPid"].as_u64().unwrap();
    kill("-KILL", &supervisor.to_string());
    wait_until(10, "the container's processes to die", || {
        processes_running(&["sleep", "987123"]).is_empty()
            && processes_running(&["sleep", "876123"]).is_empty()
    });
    let all = fixture.ps(&["-a"]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0][4].starts_with("Exited (137) "), "{all:?}");
    assert!(fixture.ps(&[]).is_empty());
    // `stop` and `logs -f` of a dead container return at once.
    let started = Instant::now();
    assert!(fixture.hoist_output(&["stop", "victim"]).status.success());
    assert!(
        fixture
            .hoist_output(&["logs", "-f", "victim"])
            .status
            .success()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still published"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let store = fixture.root.to_str().unwrap();
    assert!(!mounts.contains(store), "{mounts}");
    // rm removes the writable layer the supervisor could not clean up.
    assert!(fixture.hoist_output(&["rm", "victim"]).status.success());
    assert!(!fixture.root.join("containers-v1").join(&id).exists());
}

#[test]
fn bind_mounts_are_read_only_with_ro_and_writable_otherwise() {
    let fixture = Fixture::new();
    let host = fixture.dir().join("shared");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("in"), "from the host\n").unwrap();
    let spec = |mode: &str| format!("{}:/data{mode}", host.display());

    let read_only = fixture.run(&[
        "-u",
        "0",
        "-v",
        &spec(":ro"),
        "bb:1",
        "sh",
        "-c",
        "cat /data/in; touch /data/new",
    ]);
    assert_eq!(stdout(&read_only), "from the host\n");
    assert!(!read_only.status.success());
    let stderr = read_only.stderr.as_str();
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(!host.join("new").exists());

    let writable = fixture.run(&[
        "-u",
        "0",
        "-v",
        &spec(""),
        "bb:1",
        "sh",
        "-c",
        "echo from the container > /data/out",
    ]);
    assert!(writable.success(), "{}", writable.describe());
    assert_eq!(
        fs::read_to_string(host.join("out")).unwrap(),
        "from the container\n"
    );

    let named = fixture.run(&["-v", "cache:/cache", "bb:1", "true"]);
    assert_eq!(named.status.code(), Some(125));
    assert!(
        named
            .stderr
            .as_str()
            .contains("named volumes are not supported, use an absolute host path"),
        "{}",
        named.stderr.as_str()
    );
}

#[test]
fn env_file_sets_variables_that_e_overrides() {
    let fixture = Fixture::new();
    let file = fixture.dir().join("vars.env");
    fs::write(
        &file,
        "# settings\nA=1\nB=from file\n\nFROM_HOST\nUNSET_ON_HOST\nGREETING=file\n",
    )
    .unwrap();
    let output = fixture
        .hoist()
        .env("FROM_HOST", "host value")
        .env_remove("UNSET_ON_HOST")
        .args(["run", "--rm", "--env-file"])
        .arg(&file)
        .args(["-e", "B=from flag", "bb:1", "sh", "-c"])
        .arg("echo \"$A|$B|$FROM_HOST|${UNSET_ON_HOST-unset}|$GREETING\"")
        .output()
        .map(Run::from)
        .unwrap();
    assert!(output.success(), "{}", output.describe());
    assert_eq!(stdout(&output), "1|from flag|host value|unset|file\n");
    let missing = fixture.run(&["--env-file", "/nonexistent/vars", "bb:1", "true"]);
    assert_eq!(missing.status.code(), Some(125));
}

/// A static UDP echo server (C, built with the host's compiler): `udp-echo PORT` sends every datagram back.
const UDP_ECHO: &str = r#"
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&address, sizeof address) != 0) return 1;
    static char buffer[65536];
    for (;;) {
        struct sockaddr_in from;
        socklen_t length = sizeof from;
        ssize_t n = recvfrom(s, buffer, sizeof buffer, 0, (struct sockaddr *)&from, &length);
        if (n >= 0) sendto(s, buffer, n, 0, (struct sockaddr *)&from, length);
    }
}
"#;

#[test]
fn udp_published_port_echoes_to_each_client() {
    let fixture = Fixture::new();
    let base = fixture.dir();
    let source = base.join("udp-echo.c");
    fs::write(&source, UDP_ECHO).unwrap();
    let rootfs = base.join("rootfs");
    let status = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(rootfs.join("bin/udp-echo"))
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());
    let tar = base.join("udp.tar");
    tar_dir(&rootfs, &tar, &[]);
    fixture
        .hoist
        .ok(&["import", tar.to_str().unwrap(), "udp:1"]);

    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = detached_id(&fixture.hoist_output(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:5353/udp"),
        "udp:1",
        "udp-echo",
        "5353",
    ]));
    // Bound on the given address only.
    let udp_table = fs::read_to_string("/proc/net/udp").unwrap();
    assert!(
        udp_table.contains(&format!("0100007F:{port:04X}")),
        "{udp_table}"
    );
    let row = &fixture.ps(&[])[0];
    assert_eq!(row[5], format!("127.0.0.1:{port}->5353/udp"));

    // Two clients, each answered on its own address.
    let clients: Vec<std::net::UdpSocket> = (0..2)
        .map(|_| {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            socket.connect(("127.0.0.1", port)).unwrap();
            socket
        })
        .collect();
    for (index, client) in clients.iter().enumerate() {
        let message = format!("ping from client {index}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buffer = [0u8; 128];
        let reply = loop {
            // The server may not be listening yet: datagrams before that are lost, so send until one comes back.
            let _ = client.send(message.as_bytes());
            if let Ok(length) = client.recv(&mut buffer) {
                break String::from_utf8_lossy(&buffer[..length]).into_owned();
            }
            assert!(Instant::now() < deadline, "no UDP reply on port {port}");
        };
        assert_eq!(reply, message);
    }
    assert!(fixture.hoist_output(&["rm", "-f", &id]).status.success());
    assert!(processes_running(&["udp-echo", "5353"]).is_empty());
}

#[test]
fn detached_terminal_keeps_a_shell_and_stop_sends_the_images_stopsignal() {
    let fixture = Fixture::new();
    // `-dit sh`: the shell reads the terminal the supervisor keeps open, so it waits instead of exiting.
    let shell =
        detached_id(&fixture.hoist_output(&["run", "-dit", "--name", "shell", "bb:1", "sh"]));
    wait_until(10, "the shell's banner in the log", || {
        stdout(&fixture.hoist_output(&["logs", "shell"])).contains("BusyBox")
    });
    std::thread::sleep(Duration::from_millis(300));
    let rows = fixture.ps(&[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0][4].starts_with("Up "), "{rows:?}");
    // A terminal's output has CR LF line ends, as `docker logs` of a -t container.
    assert!(stdout(&fixture.hoist_output(&["logs", "shell"])).contains("\r\n"));
    assert!(fixture.hoist_output(&["rm", "-f", &shell]).status.success());

    let context = fixture.dir().join("context");
    fs::create_dir(&context).unwrap();
    fs::write(
        context.join("Dockerfile"),
        "FROM bb:1\nSTOPSIGNAL SIGUSR1\n",
    )
    .unwrap();
    let build = fixture
        .hoist()
        .args(["build", "-q", "-t", "stopsig:1"])
        .arg(&context)
        .output()
        .map(Run::from)
        .unwrap();
    assert!(build.success(), "{}", build.describe());
    detached_id(&fixture.hoist_output(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "stopsig:1",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 5' USR1; echo ready; while true; do sleep 0.1; done",
    ]));
    wait_until(10, "the trap to be set", || {
        stdout(&fixture.hoist_output(&["logs", "usr1"])) == "ready\n"
    });
    let started = Instant::now();
    assert!(fixture.hoist_output(&["stop", "usr1"]).status.success());
    // SIGUSR1 ended it at once: no 10 s timeout, no SIGKILL.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        stdout(&fixture.hoist_output(&["logs", "usr1"])),
        "ready\ngot-usr1\n"
    );
    let last = stdout(&fixture.hoist_output(&["logs", "--tail", "1", "-t", "usr1"]));
    let (time, line) = last.split_once(' ').unwrap();
    assert_eq!(line, "got-usr1\n");
    assert!(
        time.starts_with("20") && time.ends_with('Z') && time.len() == 30,
        "{last:?}"
    );
    let rows = fixture.ps(&["-a"]);
    assert!(rows[0][4].starts_with("Exited (5) "), "{rows:?}");
}

/// Appends `line` to a host file for the guard's life and puts the file back as it was afterwards.
struct HostFileLine {
    path: &'static str,
    original: Option<Vec<u8>>,
}

impl HostFileLine {
    fn add(path: &'static str, line: &str) -> HostFileLine {
        let original = fs::read(path).ok();
        let mut content = original.clone().unwrap_or_default();
        if !content.is_empty() && !content.ends_with(b"\n") {
            content.push(b'\n');
        }
        content.extend_from_slice(line.as_bytes());
        content.push(b'\n');
        fs::write(path, content).unwrap();
        HostFileLine { path, original }
    }
}

impl Drop for HostFileLine {
    fn drop(&mut self) {
        match &self.original {
            Some(original) => fs::write(self.path, original).unwrap(),
            None => fs::remove_file(self.path).unwrap(),
        }
    }
}

#[test]
fn rootless_run_maps_subordinate_ids_through_newuidmap() {
    if !std::path::Path::new("/usr/bin/newuidmap").is_file() {
        assert!(
            std::env::var_os("HOIST_SKIP_PEER_TESTS").is_some_and(|v| v == "1"),
            "newuidmap is missing: `bash .ci/services.sh` installs Debian's uidmap"
        );
        return;
    }
    // Subordinate ranges for nobody, as `usermod --add-subuids` would write them; removed when the test ends. The
    // sandbox group runs one test at a time, so the single-mapping rootless test never sees them.
    let _subuid = HostFileLine::add("/etc/subuid", "nobody:300000:65536");
    let _subgid = HostFileLine::add("/etc/subgid", "nobody:300000:65536");
    let fixture = Fixture::new();
    let home = fixture.nobody_home();
    nobody_ok(&home, &["import", &fixture.rootfs_tar(), "rootless:2"]);

    // The caller is root inside, and ids 1… map to the subordinate range.
    let out = nobody_ok(
        &home,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "rootless:2",
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map; touch /f && chown 1000:1000 /f && ls -n /f",
        ],
    );
    let lines = words_per_line(&out);
    assert_eq!(lines[0], ["0"]);
    assert_eq!(lines[1], ["0", "65534", "1"]);
    assert_eq!(lines[2], ["1", "300000", "65536"]);
    assert_eq!(lines[3], ["0", "65534", "1"]);
    assert_eq!(lines[4], ["1", "300000", "65536"]);
    assert_eq!(&lines[5][2..4], ["1000", "1000"], "{out}");

    // A non-root USER works here, where the single mapping refuses it.
    let out = nobody_ok(
        &home,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-u",
            "1000:1000",
            "rootless:2",
            "id",
            "-u",
        ],
    );
    assert_eq!(out, "1000\n");
}
