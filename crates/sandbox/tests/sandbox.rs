//! Real containers: real namespaces, overlay mounts and processes, over a busybox image imported into a real store.
//! These need root (they run as root in CI) and `/bin/busybox` (Debian's busybox-static).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use hoist_archive::{ImportOptions, import};
use hoist_layer::WriteOptions;
use hoist_oci::Store;
use hoist_sandbox::{
    Capabilities, Container, Error, ExitStatus, Network, PortMapping, Snapshot, SnapshotKind,
    Stdio, User, resolve_user,
};
use hoist_testkit::{BusyboxRootfs, free_port, http_get};

const APPLETS: &[&str] = &[
    "sh", "id", "hostname", "cat", "ls", "echo", "sleep", "httpd", "nc", "rm", "mkdir", "touch",
    "test", "grep", "pwd", "readlink", "wc", "stat", "tr", "cut", "mount",
];

/// A store holding `busybox:test`: `/bin/busybox`, applet symlinks, an `app` user (1000) in groups 1000 and 44.
fn busybox_store(dir: &Path) -> Store {
    let tar_path = BusyboxRootfs::new(dir.join("rootfs"))
        .applets(APPLETS)
        .dirs(&["www"])
        .passwd("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        .group("root:x:0:\napp:x:1000:\naudio:x:44:app\n")
        .file("etc/motd", "welcome\n")
        .tar();
    let store = Store::open(dir.join("store")).unwrap();
    let options = ImportOptions {
        references: vec!["busybox:test".parse().unwrap()],
        ..ImportOptions::default()
    };
    import(&store, File::open(&tar_path).unwrap(), &options).unwrap();
    store
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = busybox_store(dir.path());
        Fixture { dir, store }
    }

    fn snapshot(&self) -> Snapshot {
        let image = self.store.read_image("busybox:test").unwrap();
        Snapshot::new(&self.store, &image, &self.dir.path().join("scratch")).unwrap()
    }

    fn snapshot_of(&self, kind: SnapshotKind) -> Snapshot {
        let image = self.store.read_image("busybox:test").unwrap();
        let layers = hoist_sandbox::unpack_layers(&self.store, &image).unwrap();
        Snapshot::from_layers(layers, &self.dir.path().join("scratch"), kind).unwrap()
    }

    fn container(&self, snapshot: &Snapshot, script: &str) -> Container {
        Container {
            rootfs: snapshot.rootfs(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/bin".into()],
            network: Network::None,
            ..Container::default()
        }
    }
}

/// Runs the container with stdout captured in a file; returns the status and the output.
fn run(container: &Container) -> (ExitStatus, String) {
    run_capturing(|stdio| container.run(stdio).unwrap())
}

/// Runs `start` with a file as the container's stdout; returns the status and what was written there.
fn run_capturing(start: impl FnOnce(Stdio) -> ExitStatus) -> (ExitStatus, String) {
    let out = tempfile::tempfile().unwrap();
    let stdio = Stdio {
        stdout: Some(out.try_clone().unwrap().into()),
        ..Stdio::default()
    };
    let status = start(stdio);
    let mut text = String::new();
    let mut out = out;
    std::io::Seek::rewind(&mut out).unwrap();
    out.read_to_string(&mut text).unwrap();
    (status, text)
}

#[test]
fn a_step_sees_its_own_pid_1_hostname_proc_and_dev() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot();
    let mut container = fixture.container(
        &snapshot,
        "echo pid=$$; hostname; cat /etc/hostname; cat /proc/1/cmdline | tr '\\0' ' ' 2>/dev/null; echo; \
         echo x > /dev/null && echo null-ok; test -c /dev/urandom && echo urandom; ls /proc/self/fd | wc -l; \
         test -d /dev/pts && test -d /dev/shm && grep -q ' /dev/mqueue ' /proc/self/mountinfo && echo pts-shm; echo session=$(cut -d' ' -f6 /proc/1/stat)",
    );
    container.hostname = "stepbox".into();
    let (status, out) = run(&container);
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "stepbox");
    assert_eq!(lines[2], "stepbox");
    assert!(
        out.contains("null-ok") && out.contains("urandom") && out.contains("pts-shm"),
        "{out}"
    );
    // PID 1 leads a session of its own: it is not in hoist's process group or terminal.
    assert!(out.contains("session=1\n"), "{out}");
}

#[test]
fn the_host_file_system_is_invisible_and_proc_is_masked() {
    let fixture = Fixture::new();
    let marker = fixture.dir.path().join("host-marker");
    fs::write(&marker, "secret").unwrap();
    let snapshot = fixture.snapshot();
    let script = format!(
        "test -e {} && echo visible; test -e /bin/busybox && echo own-root; \
         test -s /proc/kcore || echo kcore-masked; \
         touch /proc/sys/kernel/hoist 2>/dev/null || echo proc-sys-ro; \
         touch /sys/hoist 2>/dev/null || echo sys-ro; ls /",
        marker.display()
    );
    let (status, out) = run(&fixture.container(&snapshot, &script));
    assert_eq!(status, ExitStatus::Exited(0));
    assert!(!out.contains("visible"), "{out}");
    for expected in ["own-root", "kcore-masked", "proc-sys-ro", "sys-ro"] {
        assert!(out.contains(expected), "{expected} missing in {out}");
    }
}

#[test]
fn capabilities_are_dockers_default_set_unless_all_are_asked_for() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot();
    let mut container = fixture.container(&snapshot, "grep -E '^Cap(Bnd|Eff)' /proc/self/status");
    let (_, out) = run(&container);
    assert_eq!(
        out,
        "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n"
    );
    container.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![],
    };
    let (_, out) = run(&container);
    assert_eq!(
        out,
        "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n"
    );
    container.user = User::default();
    container.capabilities = Capabilities::All;
    let (_, out) = run(&container);
    assert!(!out.contains("a80425fb"), "{out}");
}

#[test]
fn an_insecure_container_is_privileged_as_with_buildkit() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot();
    let script = "mkdir -p /mnt && mount -t tmpfs tmpfs /mnt && echo mounted-tmpfs; \
         test -n \"$(cat /proc/interrupts)\" && echo interrupts-unmasked; \
         grep ' /sys ' /proc/self/mountinfo | grep -q ' rw,' && echo sys-rw; \
         grep ' /proc/sys ' /proc/self/mountinfo | grep -q ' ro,' || echo proc-sys-rw; \
         for d in fuse net/tun; do test -c /dev/$d && echo dev-$d; done";
    let mut container = fixture.container(&snapshot, script);
    let (_, confined) = run(&container);
    assert_eq!(confined, "", "a confined container has none of it");
    container.capabilities = Capabilities::All;
    let (status, out) = run(&container);
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    let mut expected = "mounted-tmpfs\ninterrupts-unmasked\nsys-rw\nproc-sys-rw\n".to_owned();
    for device in ["fuse", "net/tun"] {
        if Path::new("/dev").join(device).exists() {
            expected.push_str(&format!("dev-{device}\n"));
        }
    }
    assert_eq!(out, expected);
}

#[test]
fn exit_codes_propagate_and_a_missing_command_is_an_exec_error() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot();
    let (status, _) = run(&fixture.container(&snapshot, "exit 42"));
    assert_eq!(status, ExitStatus::Exited(42));
    assert_eq!(status.code(), 42);
    let mut missing = fixture.container(&snapshot, "");
    missing.args = vec!["no-such-command".into()];
    match missing.run(Stdio::default()) {
        Err(Error::Exec { program, source }) => {
            assert_eq!(program, "no-such-command");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an exec error, got {other:?}"),
    }
}

#[test]
fn env_workdir_and_user_are_applied() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot();
    let passwd = String::from_utf8(snapshot.read_file("/etc/passwd").unwrap()).unwrap();
    let group = String::from_utf8(snapshot.read_file("/etc/group").unwrap()).unwrap();
    let mut container = fixture.container(&snapshot, "echo $GREETING; pwd; id -u; id -g; id -G");
    container.env.push("GREETING=hello".into());
    container.cwd = "/work/here".into();
    container.user = resolve_user("app", &passwd, &group).unwrap().user;
    let (status, out) = run(&container);
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert_eq!(out, "hello\n/work/here\n1000\n1000\n1000 44\n");

    container.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![],
    };
    container.args = vec!["id".into(), "-u".into()];
    assert_eq!(run(&container).1, "1000\n");
}

fn layer_names(snapshot: &Snapshot) -> Vec<String> {
    let mut layer = Vec::new();
    snapshot
        .write_diff(&mut layer, WriteOptions::new())
        .unwrap();
    let mut archive = tar::Archive::new(layer.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let path = entry
                .unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            path.trim_end_matches('/').to_owned()
        })
        .collect()
}

#[test]
fn changes_become_a_layer_with_whiteouts() {
    let fixture = Fixture::new();
    for kind in [SnapshotKind::Overlay, SnapshotKind::Copy] {
        let snapshot = fixture.snapshot_of(kind);
        let (status, _) = run(&fixture.container(
            &snapshot,
            "echo new > /added.txt && rm /etc/motd && mkdir -p /opt/app && echo 1 > /opt/app/v",
        ));
        assert_eq!(status, ExitStatus::Exited(0));
        let names = layer_names(&snapshot);
        for expected in ["added.txt", "etc/.wh.motd", "opt/app/v", "opt/app", "etc"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{kind:?}: {expected} missing: {names:?}"
            );
        }
        for unexpected in [
            "proc",
            "dev",
            "sys",
            "etc/hosts",
            "etc/resolv.conf",
            "etc/hostname",
            "bin/busybox",
            "bin",
            "www",
        ] {
            assert!(
                !names.iter().any(|n| n == unexpected),
                "{kind:?}: {unexpected} in {names:?}"
            );
        }
    }
    // The unpacked image layer is untouched and still has the file the steps deleted.
    let image = fixture.store.read_image("busybox:test").unwrap();
    let layers = hoist_sandbox::unpack_layers(&fixture.store, &image).unwrap();
    assert!(layers[0].join("etc/motd").exists());
}

#[test]
fn a_snapshot_root_is_mounted_volatile_and_its_changes_still_make_the_layer() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot_of(SnapshotKind::Overlay);
    // The root's line in mountinfo ends with the super block options, where overlayfs lists `volatile`
    // (`fsync=volatile` since Linux 6.6). The same snapshot mounts again for a second run.
    for script in [
        "grep ' / / ' /proc/self/mountinfo; echo kept > /written",
        "grep ' / / ' /proc/self/mountinfo; cat /written",
    ] {
        let (status, out) = run(&fixture.container(&snapshot, script));
        assert_eq!(status, ExitStatus::Exited(0), "{out}");
        let super_options = out.lines().next().unwrap_or_default().rsplit(' ').next();
        assert!(
            super_options
                .unwrap_or_default()
                .split(',')
                .any(|o| matches!(o, "volatile" | "fsync=volatile")),
            "{out}"
        );
    }
    assert!(layer_names(&snapshot).iter().any(|n| n == "written"));
    assert_eq!(
        fs::read_to_string(snapshot.upper().join("written")).unwrap(),
        "kept\n"
    );
}

#[test]
fn a_layer_whiteout_hides_the_file_in_the_next_snapshot() {
    let fixture = Fixture::new();
    for kind in [SnapshotKind::Overlay, SnapshotKind::Copy] {
        let first = fixture.snapshot_of(kind);
        run(&fixture.container(&first, "rm /etc/motd; echo kept > /kept"));
        // The first step's changes (its upper directory), stacked as a layer, hide the deleted file.
        assert!(layer_names(&first).contains(&"etc/.wh.motd".to_owned()));
        let image = fixture.store.read_image("busybox:test").unwrap();
        let mut lower = hoist_sandbox::unpack_layers(&fixture.store, &image).unwrap();
        lower.push(first.upper());
        let second =
            Snapshot::from_layers(lower, &fixture.dir.path().join("scratch"), kind).unwrap();
        let (status, out) = run(&fixture.container(
            &second,
            "test -e /etc/motd && echo motd; cat /kept; ls /etc",
        ));
        assert_eq!(status, ExitStatus::Exited(0));
        assert_eq!(
            out, "kept\ngroup\nhostname\nhosts\npasswd\nresolv.conf\n",
            "{kind:?}"
        );
        assert_eq!(second.read_file("/etc/motd"), None);
        assert_eq!(second.read_file("/kept").as_deref(), Some(&b"kept\n"[..]));
    }
}

#[test]
fn kept_changes_write_the_layer_the_diff_would_have_been() {
    let fixture = Fixture::new();
    let mounted = tempfile::tempdir().unwrap();
    let scratch = fixture.dir.path().join("scratch");
    for kind in [SnapshotKind::Overlay, SnapshotKind::Copy] {
        // A first step leaves a directory with content, so that the second can make it opaque.
        let first = fixture.snapshot_of(kind);
        let (status, _) = run(&fixture.container(&first, "mkdir /data && echo old > /data/old"));
        assert_eq!(status, ExitStatus::Exited(0));
        let image = fixture.store.read_image("busybox:test").unwrap();
        let mut lower = hoist_sandbox::unpack_layers(&fixture.store, &image).unwrap();
        lower.push(first.upper());
        let second = Snapshot::from_layers(lower, &scratch, kind).unwrap();
        let mut container = fixture.container(
            &second,
            "echo new > /added.txt && rm /etc/motd && rm -rf /data && mkdir /data && echo n > /data/new \
             && mkdir -p /opt/app && echo 1 > /opt/app/v && ln /opt/app/v /opt/app/hard \
             && ln -s v /opt/app/link && chmod 750 /opt && sleep 1",
        );
        // A bind mount's stub in an existing directory: deleting it later changes that directory's time, which
        // must be put back (the sleep makes the difference show in the tar's whole seconds).
        container.mounts.push(hoist_sandbox::BindMount {
            source: mounted.path().to_owned(),
            destination: "/www/bound".into(),
            read_only: true,
        });
        let (status, _) = run(&container);
        assert_eq!(status, ExitStatus::Exited(0));
        let excluded = ["www/bound"];
        let options = excluded
            .iter()
            .fold(WriteOptions::new(), |o, path| o.with_exclude(path));
        let mut diff = Vec::new();
        second.write_diff(&mut diff, options).unwrap();

        let kept = tempfile::tempdir_in(&scratch).unwrap();
        let dest = kept.path().join("diff");
        let entries = second.keep_upper(&dest, &excluded).unwrap();
        assert!(entries > 0);
        assert!(
            !second.upper().exists(),
            "{kind:?}: the upper directory moved"
        );
        let mut later = Vec::new();
        hoist_layer::write_layer(
            &dest,
            &mut later,
            &WriteOptions::new().with_source_kind(hoist_layer::SourceKind::OverlayUpper),
        )
        .unwrap();
        assert!(
            diff == later,
            "{kind:?}: the tar written from the kept directory differs from the diff"
        );
        let names: Vec<String> = tar::Archive::new(later.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        // (A copy snapshot's upper directory is filled only when its diff is written: the first step's stays
        // empty, so the second sees no /data to make opaque.)
        let opaque = (kind == SnapshotKind::Overlay).then_some("data/.wh..wh..opq");
        for expected in ["etc/.wh.motd", "opt/app/hard", "www/"]
            .into_iter()
            .chain(opaque)
        {
            assert!(
                names.iter().any(|n| n == expected),
                "{kind:?}: {expected} missing: {names:?}"
            );
        }
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("www/bound") || n == "proc/")
        );
    }
}

#[test]
fn upper_directories_are_kept_only_on_file_systems_that_hold_them() {
    let dir = tempfile::tempdir().unwrap();
    assert!(hoist_sandbox::can_hold_upper(dir.path()));
    assert!(!hoist_sandbox::can_hold_upper(Path::new("/proc")));
    assert!(!hoist_sandbox::can_hold_upper(&dir.path().join("missing")));
}

fn loopback_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn({
        let listener = listener.try_clone().unwrap();
        move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.write_all(b"pong\n");
            }
        }
    });
    (listener, port)
}

#[test]
fn network_none_cannot_reach_the_host_but_host_network_can() {
    let fixture = Fixture::new();
    let (_server, port) = loopback_server();
    let snapshot = fixture.snapshot();
    let script = format!("nc 127.0.0.1 {port} </dev/null");
    let (status, out) = run(&fixture.container(&snapshot, &script));
    assert_ne!(status, ExitStatus::Exited(0), "{out}");
    assert!(!out.contains("pong"));

    let mut host = fixture.container(&snapshot, &script);
    host.network = Network::Host;
    let (status, out) = run(&host);
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(out, "pong\n");
}

#[test]
fn published_ports_reach_a_server_in_the_container() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot();
    let port = free_port();
    let mut container = fixture.container(
        &snapshot,
        "echo served-from-container > /www/index.html && httpd -p 8080 -h /www && sleep 4",
    );
    container.ports = vec![
        format!("127.0.0.1:{port}:8080")
            .parse::<PortMapping>()
            .unwrap(),
    ];
    let runner = std::thread::spawn(move || run(&container).0);
    let response = http_get(port, Instant::now() + Duration::from_secs(4));
    assert!(response.contains("served-from-container"), "{response}");
    assert_eq!(runner.join().unwrap(), ExitStatus::Exited(0));
}

/// Mounts of the host that involve a container's state directory or `dir` (other processes may mount unrelated
/// things meanwhile, some with `hoist` in their paths).
fn our_mounts(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| line.contains(dir.to_str().unwrap()) || line.contains("hoist-sandbox-"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_mount_is_left_on_the_host_and_no_descriptor_leaks() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot();
    // A descriptor of this process without close-on-exec must still not reach the container.
    let leaked = File::open("/etc/hostname").unwrap();
    let leaked_fd: rustix::fd::OwnedFd = leaked.into();
    rustix::io::fcntl_setfd(&leaked_fd, rustix::io::FdFlags::empty()).unwrap();
    let number = std::os::fd::AsRawFd::as_raw_fd(&leaked_fd);
    let (status, out) =
        run(&fixture.container(&snapshot, "ls /proc/self/fd; sleep 0.2 & echo started"));
    assert_eq!(status, ExitStatus::Exited(0));
    let fds: Vec<i32> = out.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(fds, [0, 1, 2, 3], "leaked fd {number}? {out}");
    let left = our_mounts(fixture.dir.path());
    assert!(left.is_empty(), "{left:?}");
}

fn run_with_runc(container: &Container) -> (ExitStatus, String) {
    run_capturing(|stdio| {
        container
            .run_with_runtime(Path::new("/usr/sbin/runc"), stdio)
            .unwrap()
    })
}

#[test]
fn runc_runs_the_same_container_from_a_generated_bundle() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot();
    let mut container = fixture.container(
        &snapshot,
        "echo pid=$$; hostname; id -u; test -s /proc/kcore || echo kcore-masked; \
         grep CapBnd /proc/self/status; echo layer > /from-runc; rm /etc/motd; exit 3",
    );
    container.hostname = "runcbox".into();
    let (status, text) = run_with_runc(&container);
    assert_eq!(status, ExitStatus::Exited(3), "{text}");
    assert_eq!(
        text,
        "pid=1\nruncbox\n0\nkcore-masked\nCapBnd:\t00000000a80425fb\n"
    );
    // Written through the overlay mounted in runc's private mount namespace: the step's layer has it.
    let names = layer_names(&snapshot);
    assert!(names.contains(&"from-runc".to_owned()), "{names:?}");
    assert!(names.contains(&"etc/.wh.motd".to_owned()), "{names:?}");
    let left = our_mounts(fixture.dir.path());
    assert!(left.is_empty(), "{left:?}");

    container.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![44],
    };
    container.cwd = "/made/by/runc".into();
    container.args = vec!["sh".into(), "-c".into(), "id -u; id -G; pwd".into()];
    assert_eq!(
        run_with_runc(&container).1,
        "1000\n1000 44\n/made/by/runc\n"
    );

    let mut with_ports = fixture.container(&snapshot, "exit 0");
    with_ports.ports = vec!["1:2".parse().unwrap()];
    assert!(matches!(
        with_ports.run_with_runtime(Path::new("/usr/sbin/runc"), Stdio::default()),
        Err(Error::RuntimeSpec { .. })
    ));
}

#[test]
fn a_deep_layer_stack_mounts_beyond_the_option_length_limit() {
    let fixture = Fixture::new();
    let image = fixture.store.read_image("busybox:test").unwrap();
    let mut lower = hoist_sandbox::unpack_layers(&fixture.store, &image).unwrap();
    // 100 layers with long paths: the classic `lowerdir=` option would be far over its one-page limit.
    for index in 0..100 {
        let dir = fixture
            .dir
            .path()
            .join(format!("layer-{index:03}-{}", "x".repeat(120)));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(format!("from-{index:03}")), index.to_string()).unwrap();
        lower.push(dir);
    }
    let total: usize = lower.iter().map(|dir| dir.as_os_str().len() + 1).sum();
    assert!(total > 4096);
    let snapshot = Snapshot::from_layers(
        lower,
        &fixture.dir.path().join("scratch"),
        SnapshotKind::Overlay,
    )
    .unwrap();
    let (status, out) = run(&fixture.container(&snapshot, "ls / | grep -c from-; cat /from-042"));
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert_eq!(out, "100\n42");
}

#[test]
fn symlinks_in_the_image_cannot_make_the_sandbox_write_on_the_host() {
    let fixture = Fixture::new();
    // A layer whose `etc`, `dev` and `work` are absolute symlinks to host directories.
    let layer = fixture.dir.path().join("evil-layer");
    fs::create_dir_all(&layer).unwrap();
    let mut outside = Vec::new();
    for name in ["etc", "dev", "work"] {
        let target = fixture.dir.path().join(format!("outside-{name}"));
        fs::create_dir(&target).unwrap();
        symlink(&target, layer.join(name)).unwrap();
        outside.push(target);
    }
    let image = fixture.store.read_image("busybox:test").unwrap();
    let mut lower = hoist_sandbox::unpack_layers(&fixture.store, &image).unwrap();
    lower.push(layer);
    let snapshot = Snapshot::from_layers(
        lower,
        &fixture.dir.path().join("scratch"),
        SnapshotKind::Overlay,
    )
    .unwrap();
    let mut container = fixture.container(&snapshot, "true");
    container.cwd = "/work/sub".into();
    let _ = container.run(Stdio::default());
    for dir in outside {
        let created: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(
            created.is_empty(),
            "the sandbox wrote on the host: {created:?}"
        );
    }
}

#[test]
fn stale_scratch_directories_are_removed_and_live_ones_kept() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = Fixture::new();
    let scratch = fixture.dir.path().join("scratch");
    let live = fixture.snapshot();
    // What a killed hoist leaves: an unlocked scratch directory, with overlayfs's mode-000 work/work in it.
    let stale = scratch.join("snapshot-killed");
    fs::create_dir_all(stale.join("work/work")).unwrap();
    fs::set_permissions(stale.join("work/work"), fs::Permissions::from_mode(0o000)).unwrap();
    let young = scratch.join("snapshot-just-made");
    fs::create_dir_all(&young).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    File::open(&stale)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    File::open(scratch.join(live.upper().parent().unwrap()))
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    assert_eq!(Snapshot::remove_stale(&scratch), 1);
    assert!(!stale.exists());
    assert!(
        young.exists(),
        "a directory another process may have just created is kept"
    );
    assert!(live.upper().exists());
    let (status, _) = run(&fixture.container(&live, "true"));
    assert_eq!(status, ExitStatus::Exited(0));
}
