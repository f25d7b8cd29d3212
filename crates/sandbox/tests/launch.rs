//! `hoist run` without the binary: `hoist_sandbox::launch` and `control` run real containers (namespaces, overlay
//! mounts, processes) from a busybox image imported into a real store, as root. Detached containers need a
//! supervisor process: the test re-executes its own binary for that (see [`SUPERVISE_STORE`]).

use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use hoist_archive::{ImportOptions, import};
use hoist_oci::Store;
use hoist_sandbox::launch::{self, LaunchError, RunReporter, RunRequest};
use hoist_sandbox::{ContainerState, ContainerStore, LogStream, Stdio, control};
use hoist_testkit::{BusyboxRootfs, wait_until};

const APPLETS: &[&str] = &[
    "sh", "id", "echo", "cat", "pwd", "sleep", "env", "touch", "test",
];

/// Set on the re-executed test binary: it then acts as the supervisor of the container whose ID is its last
/// argument, in the store at this path, instead of running its test.
const SUPERVISE_STORE: &str = "HOIST_LAUNCH_TEST_SUPERVISE_STORE";

/// Collects warnings, so a test can assert there were none.
#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl RunReporter for Warnings {
    fn on_warning(&self, warning: &(dyn std::error::Error + 'static)) {
        self.0.lock().unwrap().push(warning.to_string());
    }
}

impl Warnings {
    fn assert_none(&self) {
        let warnings = self.0.lock().unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    /// A store holding `busybox:launch`: ENTRYPOINT `echo entry`, CMD `default`, two ENV variables, WORKDIR
    /// `/srv`, an `app` user (1000) in groups 1000 and 44, and a non-executable `/etc/motd`.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tar = BusyboxRootfs::new(dir.path().join("rootfs"))
            .applets(APPLETS)
            .dirs(&["tmp"])
            .passwd("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
            .group("root:x:0:\napp:x:1000:\naudio:x:44:app\n")
            .file("etc/motd", "welcome\n")
            .tar();
        let store = Store::open(dir.path().join("store")).unwrap();
        let options = ImportOptions {
            references: vec!["busybox:launch".parse().unwrap()],
            changes: [
                "ENV PATH=/bin",
                "ENV FROM_IMAGE=image OVERRIDDEN=image",
                "WORKDIR /srv",
                r#"ENTRYPOINT ["echo", "entry"]"#,
                r#"CMD ["default"]"#,
            ]
            .map(str::to_owned)
            .to_vec(),
            ..ImportOptions::default()
        };
        import(&store, File::open(&tar).unwrap(), &options).unwrap();
        Fixture { dir, store }
    }

    /// Runs `request` in the foreground with its standard output and error captured.
    fn run(&self, request: &RunRequest) -> (Result<i32, LaunchError>, String, String) {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let stdio = Stdio {
            stdin: None,
            stdout: Some(out.try_clone().unwrap().into()),
            stderr: Some(err.try_clone().unwrap().into()),
        };
        let warnings = Warnings::default();
        let result = launch::run(&self.store, request, stdio, &warnings);
        warnings.assert_none();
        (result, read_all(out), read_all(err))
    }
}

fn read_all(mut file: File) -> String {
    let mut text = String::new();
    file.rewind().unwrap();
    file.read_to_string(&mut text).unwrap();
    text
}

fn request(command: &[&str]) -> RunRequest {
    RunRequest {
        command: command.iter().map(|word| (*word).to_owned()).collect(),
        ..RunRequest::new("busybox:launch")
    }
}

fn shell(script: &str) -> RunRequest {
    RunRequest {
        entrypoint: Some("sh".into()),
        command: vec!["-c".into(), script.into()],
        ..RunRequest::new("busybox:launch")
    }
}

#[test]
fn launch_resolves_the_command_from_entrypoint_and_cmd() {
    let fixture = Fixture::new();
    let (result, out, _) = fixture.run(&request(&[]));
    assert_eq!(result.unwrap(), 0);
    assert_eq!(out, "entry default\n");

    // Arguments replace CMD and keep the ENTRYPOINT.
    let (result, out, _) = fixture.run(&request(&["given", "args"]));
    assert_eq!(result.unwrap(), 0);
    assert_eq!(out, "entry given args\n");

    // --entrypoint replaces the ENTRYPOINT and drops CMD.
    let cat = RunRequest {
        entrypoint: Some("cat".into()),
        ..request(&[])
    };
    let (result, out, _) = fixture.run(&cat);
    assert_eq!(result.unwrap(), 0, "cat reads /dev/null without -i");
    assert_eq!(out, "");

    // An empty --entrypoint clears it, and nothing is left to run.
    let nothing = RunRequest {
        entrypoint: Some(String::new()),
        ..request(&[])
    };
    let error = fixture.run(&nothing).0.unwrap_err();
    assert_eq!(error.to_string(), "no command specified");
    assert_eq!(error.exit_code(), 125);
}

#[test]
fn launch_applies_env_files_flags_user_and_workdir_over_the_image() {
    let fixture = Fixture::new();
    let env_file = fixture.dir.path().join("vars.env");
    fs::write(&env_file, "# comment\nOVERRIDDEN=file\nFROM_FILE=file\n").unwrap();
    let run = RunRequest {
        env_files: vec![env_file],
        env: vec!["FROM_FILE=flag".into()],
        user: Some("app".into()),
        hostname: Some("box".into()),
        ..shell(
            "echo $FROM_IMAGE $OVERRIDDEN $FROM_FILE; echo home=$HOME host=$HOSTNAME; id -u; id -G; pwd",
        )
    };
    let (result, out, err) = fixture.run(&run);
    assert_eq!(result.unwrap(), 0, "{err}");
    assert_eq!(
        out,
        "image file flag\nhome=/home/app host=box\n1000\n1000 44\n/srv\n"
    );

    let elsewhere = RunRequest {
        user: Some("1000:44".into()),
        workdir: Some("/made/here".into()),
        ..shell("id -u; id -g; pwd")
    };
    let (result, out, err) = fixture.run(&elsewhere);
    assert_eq!(result.unwrap(), 0, "{err}");
    assert_eq!(out, "1000\n44\n/made/here\n");

    let unknown = RunRequest {
        user: Some("nobody".into()),
        ..shell("true")
    };
    let error = fixture.run(&unknown).0.unwrap_err();
    assert_eq!(error.exit_code(), 125);
    assert!(
        error.to_string().contains("unable to find user nobody"),
        "{error}"
    );
}

#[test]
fn launch_mounts_a_read_only_bind_that_refuses_writes() {
    let fixture = Fixture::new();
    let data = fixture.dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("greeting"), "hello from the host\n").unwrap();
    let created = fixture.dir.path().join("created/by/run");
    let run = RunRequest {
        volumes: vec![
            format!("{}:/data:ro", data.display()),
            format!("{}:/out", created.display()),
        ],
        ..shell("cat /data/greeting; echo x > /out/written; echo x > /data/new")
    };
    let (result, out, err) = fixture.run(&run);
    assert_eq!(result.unwrap(), 1, "the write to the read-only bind fails");
    assert_eq!(out, "hello from the host\n");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!data.join("new").exists());
    // A missing host path is created, and a read-write bind's writes reach the host.
    assert_eq!(fs::read_to_string(created.join("written")).unwrap(), "x\n");

    let named = RunRequest {
        volumes: vec!["cache:/cache".into()],
        ..shell("true")
    };
    let error = fixture.run(&named).0.unwrap_err();
    assert_eq!(error.exit_code(), 125);
    assert!(
        error
            .to_string()
            .contains("named volumes are not supported"),
        "{error}"
    );
}

#[test]
fn launch_exit_codes_follow_docker() {
    let fixture = Fixture::new();
    let (result, _, _) = fixture.run(&shell("exit 7"));
    assert_eq!(result.unwrap(), 7);

    let missing = RunRequest {
        entrypoint: Some("no-such-command".into()),
        ..request(&[])
    };
    let error = fixture.run(&missing).0.unwrap_err();
    assert_eq!(error.exit_code(), 127, "{error}");
    assert!(error.to_string().contains("no-such-command"), "{error}");

    let not_executable = RunRequest {
        entrypoint: Some("/etc/motd".into()),
        ..request(&[])
    };
    let error = fixture.run(&not_executable).0.unwrap_err();
    assert_eq!(error.exit_code(), 126, "{error}");

    let host_ports = RunRequest {
        network: launch::NetworkMode::Host,
        publish: vec!["8080:80".parse().unwrap()],
        ..shell("true")
    };
    let error = fixture.run(&host_ports).0.unwrap_err();
    assert_eq!(error.exit_code(), 125);
    assert!(
        error
            .to_string()
            .contains("cannot be published with --network host"),
        "{error}"
    );
}

/// The supervisor for [`launch_detaches_a_recorded_container_with_its_log`]: this test binary, re-executed.
fn supervisor_command(store: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "launch_detaches_a_recorded_container_with_its_log",
            "--nocapture",
        ])
        .env(SUPERVISE_STORE, store);
    command
}

#[test]
fn launch_detaches_a_recorded_container_with_its_log() {
    if let Some(store) = std::env::var_os(SUPERVISE_STORE) {
        // The re-executed binary: the container's ID is the last argument (libtest takes it for a filter that
        // matches nothing).
        let id = std::env::args().next_back().unwrap();
        let store = Store::open(Path::new(&store)).unwrap();
        let warnings = Warnings::default();
        let result = launch::supervise(&store, &id, &warnings);
        // The supervisor's standard error is the container's supervisor.log.
        let _ = writeln!(
            std::io::stderr(),
            "supervisor: {result:?}, warnings: {:?}",
            warnings.0.lock().unwrap()
        );
        return;
    }
    let fixture = Fixture::new();
    let root = fixture.store.root().to_owned();
    let containers = ContainerStore::open(&root).unwrap();
    let run = RunRequest {
        name: Some("web".into()),
        ..shell(
            "echo out; echo err >&2; trap 'echo bye; exit 3' TERM; while true; do sleep 0.1; done",
        )
    };
    let id = launch::detach(&fixture.store, &run, supervisor_command(&root)).unwrap();
    assert_eq!(id.len(), 64, "{id}");

    let running = control::list(&containers, false).unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    let record = &running[0];
    assert_eq!(record.id, id);
    assert_eq!(record.name, "web");
    assert_eq!(record.state, ContainerState::Running);
    assert_eq!(record.image, "busybox:launch");
    assert_eq!(record.command[0], "sh");
    assert!(record.pid.is_some() && record.supervisor_pid.is_some());
    assert_eq!(record.run_args, run.to_args());

    // A second container cannot take the name.
    let error = launch::detach(&fixture.store, &run, supervisor_command(&root)).unwrap_err();
    assert_eq!(error.exit_code(), 125);
    assert!(error.to_string().contains("is already in use"), "{error}");

    // Both streams are logged before the container is stopped (each has its own copier thread).
    wait_until(10, "out and err in the log", || {
        log_of(&containers, &id).len() == 2
    });
    control::stop(&containers, "web", None, Some(Duration::from_secs(10))).unwrap();
    let stopped = containers.find(&id).unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.exit_code, Some(3), "the TERM trap ran: {stopped:?}");
    assert!(control::list(&containers, false).unwrap().is_empty());

    let mut lines = Vec::new();
    control::read_log(
        &containers,
        &id[..12],
        control::Tail::All,
        true,
        |entries| {
            lines.extend(
                entries
                    .iter()
                    .map(|entry| (entry.stream, entry.log.clone())),
            );
            Ok(())
        },
    )
    .unwrap();
    let stream = |wanted: LogStream| -> Vec<&str> {
        let lines = lines.iter().filter(|(stream, _)| *stream == wanted);
        lines.map(|(_, line)| line.as_str()).collect()
    };
    assert_eq!(stream(LogStream::Stdout), ["out\n", "bye\n"], "{lines:?}");
    assert_eq!(stream(LogStream::Stderr), ["err\n"], "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    let mut last = Vec::new();
    control::read_log(
        &containers,
        "web",
        control::Tail::Last(1),
        false,
        |entries| {
            last.extend(entries.iter().map(|entry| entry.log.clone()));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(last, ["bye\n"]);

    control::remove(&containers, "web", false).unwrap();
    assert!(containers.find("web").is_err());
    assert!(!containers.container_dir(&id).exists());
}

/// Every line of a container's log so far.
fn log_of(containers: &ContainerStore, id: &str) -> Vec<String> {
    let mut lines = Vec::new();
    control::read_log(containers, id, control::Tail::All, false, |entries| {
        lines.extend(entries.iter().map(|entry| entry.log.clone()));
        Ok(())
    })
    .unwrap();
    lines
}

#[test]
fn launch_reports_a_detached_start_failure_with_its_exit_code() {
    // The supervisor (the detached test's binary, re-executed) records the exec error; detach reports it.
    let fixture = Fixture::new();
    let root = fixture.store.root().to_owned();
    let missing = RunRequest {
        entrypoint: Some("no-such-command".into()),
        ..request(&[])
    };
    let error = launch::detach(&fixture.store, &missing, supervisor_command(&root)).unwrap_err();
    assert_eq!(error.exit_code(), 127, "{error}");
    assert!(error.to_string().contains("no-such-command"), "{error}");
    let containers = ContainerStore::open(&root).unwrap();
    let all = control::list(&containers, true).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].state, ContainerState::Created, "as Docker's");
    assert_eq!(all[0].exit_code, Some(127));
}
