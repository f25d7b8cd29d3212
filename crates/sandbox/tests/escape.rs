//! Escape attempts that must fail: a hostile image or command trying to write, read or act outside its container.
//! Each test starts real containers (root, namespaces, overlayfs) over a busybox image and checks the host side:
//! what the container must not have created, read, seen or kept running. Needs `/bin/busybox` (busybox-static).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_archive::{ImportOptions, import};
use hoist_oci::Store;
use hoist_sandbox::{BindMount, Container, ExitStatus, Network, Snapshot, SnapshotKind, Stdio};

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    /// A store with `busybox:escape`: `/bin/busybox` and every applet as a symlink, and `keyctl` (keyutils) with
    /// the libraries `ldd` names.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::create_dir_all(rootfs.join("tmp")).unwrap();
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8(list.stdout).unwrap().lines() {
            if applet != "busybox" {
                symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
            }
        }
        fs::copy("/usr/bin/keyctl", rootfs.join("bin/keyctl")).unwrap();
        let ldd = std::process::Command::new("ldd")
            .arg("/usr/bin/keyctl")
            .output()
            .unwrap();
        for library in String::from_utf8(ldd.stdout).unwrap().split_whitespace() {
            if library.starts_with('/') {
                let inside = rootfs.join(library.trim_start_matches('/'));
                fs::create_dir_all(inside.parent().unwrap()).unwrap();
                fs::copy(library, inside).unwrap();
            }
        }
        let tar_path = dir.path().join("rootfs.tar");
        let mut builder = tar::Builder::new(File::create(&tar_path).unwrap());
        builder.follow_symlinks(false);
        builder.append_dir_all(".", &rootfs).unwrap();
        builder.into_inner().unwrap().flush().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let options = ImportOptions {
            references: vec!["busybox:escape".parse().unwrap()],
            ..ImportOptions::default()
        };
        import(&store, File::open(&tar_path).unwrap(), &options).unwrap();
        Fixture { dir, store }
    }

    /// A snapshot of the image with `extra` layer directories on top.
    fn snapshot(&self, extra: Vec<PathBuf>) -> Snapshot {
        let image = self.store.read_image("busybox:escape").unwrap();
        let mut lower = hoist_sandbox::unpack_layers(&self.store, &image).unwrap();
        lower.extend(extra);
        Snapshot::from_layers(
            lower,
            &self.dir.path().join("scratch"),
            SnapshotKind::Overlay,
        )
        .unwrap()
    }

    /// An empty host directory the container must never reach.
    fn host_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        fs::create_dir(&dir).unwrap();
        dir
    }
}

fn container(snapshot: &Snapshot, script: &str) -> Container {
    Container {
        rootfs: snapshot.rootfs(),
        args: vec!["sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin".into()],
        network: Network::None,
        ..Container::default()
    }
}

/// Runs the container with stdout and stderr captured together.
fn run(container: &Container) -> (ExitStatus, String) {
    let out = tempfile::tempfile().unwrap();
    let stdio = Stdio {
        stdout: Some(out.try_clone().unwrap().into()),
        stderr: Some(out.try_clone().unwrap().into()),
        ..Stdio::default()
    };
    let status = container.run(stdio).unwrap();
    let mut text = String::new();
    let mut out = out;
    std::io::Seek::rewind(&mut out).unwrap();
    out.read_to_string(&mut text).unwrap();
    (status, text)
}

fn assert_empty(dir: &Path) {
    let entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(entries.is_empty(), "written on the host: {entries:?}");
}

#[test]
fn dot_dot_paths_stay_inside_the_root() {
    let fixture = Fixture::new();
    let outside = fixture.host_dir("outside");
    let up = "/..".repeat(12);
    let target = format!("{up}{}", outside.display());
    let snapshot = fixture.snapshot(Vec::new());
    let mut container = container(
        &snapshot,
        &format!(
            "mkdir -p {target} && echo x > {target}/from-run && cd {up} && echo y > .{}/from-cd && echo ran",
            outside.display()
        ),
    );
    // The working directory and a bind mount's destination given with `..` too.
    container.cwd = format!("{target}/cwd");
    let source = fixture.host_dir("mount-source");
    container.mounts = vec![BindMount {
        source: source.clone(),
        destination: format!("{target}/mounted"),
        read_only: false,
    }];
    let (status, out) = run(&container);
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert!(out.contains("ran"));
    assert_empty(&outside);
    assert_empty(&source);
    // It all happened inside: the step's changes hold the files.
    let inside = snapshot.upper().join(outside.strip_prefix("/").unwrap());
    assert!(inside.join("from-run").is_file());
    assert!(inside.join("from-cd").is_file());
}

#[test]
fn image_symlinks_absolute_and_relative_lead_nowhere_outside() {
    let fixture = Fixture::new();
    let absolute = fixture.host_dir("absolute-target");
    let relative = fixture.host_dir("relative-target");
    let layer = fixture.dir.path().join("evil-layer");
    fs::create_dir_all(&layer).unwrap();
    symlink(&absolute, layer.join("abs")).unwrap();
    // Enough `..` to reach the host's root from the layer directory, then down to the target.
    let climb = "../".repeat(layer.components().count() + 2);
    let relative_link = format!("{climb}{}", relative.strip_prefix("/").unwrap().display());
    symlink(&relative_link, layer.join("rel")).unwrap();
    symlink("/", layer.join("root-link")).unwrap();
    // Check the relative link really reaches the target from the layer on the host (so the test means something).
    assert_eq!(
        fs::canonicalize(layer.join("rel")).unwrap(),
        fs::canonicalize(&relative).unwrap()
    );
    let snapshot = fixture.snapshot(vec![layer]);
    let (status, out) = run(&container(
        &snapshot,
        "mkdir -p /abs/d /rel/d; echo x > /abs/f; echo x > /rel/f; echo x > /root-link/tmp/f; \
         cd /rel && echo x > ./g; echo done",
    ));
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert!(out.contains("done"), "{out}");
    // The sandbox's own mkdir, touch and mounts for a working directory and bind mounts through the links: they
    // resolve inside the root, where the links' targets do not exist, so the setup may fail; it must not write
    // outside either way.
    let source = fixture.host_dir("mount-source");
    fs::write(source.join("file"), "mounted").unwrap();
    for (cwd, destination, from) in [
        ("/rel/cwd", "/abs/mounted", source.clone()),
        ("/abs/cwd", "/rel/sub/file", source.join("file")),
        ("/", "/rel/mounted", source.clone()),
    ] {
        let mut through = container(&snapshot, "echo x > ./here; echo x > /root-link/tmp/g");
        through.cwd = cwd.into();
        through.mounts = vec![BindMount {
            source: from,
            destination: destination.into(),
            read_only: false,
        }];
        let _ = through.run(Stdio::default());
    }
    assert_empty(&absolute);
    assert_empty(&relative);
    assert_eq!(fs::read_dir(&source).unwrap().count(), 1);
}

#[test]
fn host_files_processes_and_descriptors_are_invisible() {
    let fixture = Fixture::new();
    let marker_dir = tempfile::Builder::new()
        .prefix("hoist-escape-marker-")
        .tempdir_in("/tmp")
        .unwrap();
    let marker = marker_dir.path().join("host-secret");
    fs::write(&marker, "do-not-read").unwrap();
    // A directory descriptor of this process without close-on-exec (runc CVE-2024-21626's leak).
    let leaked = File::open("/tmp").unwrap();
    let leaked: rustix::fd::OwnedFd = leaked.into();
    rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).unwrap();
    let number = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    let own_pid = std::process::id();
    let snapshot = fixture.snapshot(Vec::new());
    let script = format!(
        "cat {marker} 2>/dev/null && echo read-marker; \
         find / -path /proc -prune -o -path /sys -prune -o -name host-secret -print; \
         test -e /proc/{own_pid} && echo sees-host-pid; \
         echo pids: $(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '); \
         sleep 2 & echo fds: $(ls /proc/$!/fd | tr '\\n' ' '); \
         cd /proc/self/fd/{number} 2>/dev/null && echo entered-fd-{number}; \
         cd /proc/1/fd/{number} 2>/dev/null && echo entered-pid1-fd-{number}; \
         echo cwd: $(readlink /proc/1/cwd) root: $(readlink /proc/1/root); kill %1",
        marker = marker.display()
    );
    let (status, out) = run(&container(&snapshot, &script));
    drop(leaked);
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert!(!out.contains("read-marker"), "{out}");
    assert!(!out.contains("host-secret"), "{out}");
    assert!(!out.contains("sees-host-pid"), "{out}");
    assert!(!out.contains("entered"), "{out}");
    let pids: Vec<u32> = out
        .lines()
        .find_map(|l| l.strip_prefix("pids: "))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.contains(&1) && pids.iter().all(|p| *p < 100), "{out}");
    assert!(out.contains("fds: 0 1 2\n"), "{out}");
    assert!(out.contains("cwd: / root: /\n"), "{out}");
}

#[test]
fn proc_and_sys_stay_read_only_and_masked() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot(Vec::new());
    for network in [Network::None, Network::Host] {
        let mut container = container(
            &snapshot,
            "mount -o remount,rw /proc/sys 2>/dev/null && echo remounted-proc-sys; \
             (echo hacked > /proc/sys/kernel/hostname) 2>/dev/null && echo wrote-proc-sys; \
             mount -o remount,rw /sys 2>/dev/null && echo remounted-sys; \
             touch /sys/hoist-escape 2>&1 | grep -q 'Read-only' || echo sys-writable; \
             for d in /sys/fs/cgroup /sys/fs/cgroup/* /sys/kernel/security /sys/fs/bpf; do \
               test -d $d || continue; touch $d/hoist-escape 2>/dev/null && echo wrote-$d; \
               mkdir $d/hoist-escape 2>/dev/null && echo mkdir-$d; done; \
             mount -t proc proc /tmp 2>/dev/null && echo mounted-proc; \
             mount -t tmpfs tmpfs /tmp 2>/dev/null && echo mounted-tmpfs; \
             umount /proc/kcore 2>/dev/null && echo unmasked; \
             test -s /proc/kcore && echo kcore-visible; \
             test -n \"$(cat /proc/keys 2>/dev/null)\" && echo keys-visible; \
             test -n \"$(ls /sys/firmware 2>/dev/null)\" && echo firmware-visible; \
             test -n \"$(cat /proc/timer_list 2>/dev/null)\" && echo timer-list-visible; \
             (echo h > /proc/sysrq-trigger) 2>/dev/null && echo sysrq; \
             hostname; echo checked",
        );
        container.network = network;
        let (status, out) = run(&container);
        // Whatever a broken sandbox let the step create on the host is removed before judging.
        let created = remove_escape_marks();
        assert_eq!(status, ExitStatus::Exited(0), "{network:?}: {out}");
        assert_eq!(out, "hoist\nchecked\n", "{network:?}");
        assert!(
            created.is_empty(),
            "{network:?}: created on the host: {created:?}"
        );
    }
}

/// Removes the `hoist-escape` files and cgroups a step may have made under the host's `/sys`; returns them.
fn remove_escape_marks() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup"), PathBuf::from("/sys")];
    if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(entries.flatten().map(|e| e.path()));
    }
    let mut created = Vec::new();
    for dir in dirs {
        let mark = dir.join("hoist-escape");
        if mark.symlink_metadata().is_ok() {
            let _ = fs::remove_dir(&mark).or_else(|_| fs::remove_file(&mark));
            created.push(mark);
        }
    }
    created
}

/// The major:minor of the block device holding the host's root file system.
fn root_device() -> Option<(u32, u32)> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let line = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))?;
    let (major, minor) = line.split_whitespace().nth(2)?.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[test]
fn device_nodes_made_inside_do_not_open_host_devices() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot(Vec::new());
    let bound = fixture.host_dir("bound");
    // The root file system's device, or a loop device, which every Linux host has the numbers of.
    let (major, minor) = root_device()
        .filter(|(major, _)| *major != 0)
        .unwrap_or((7, 0));
    // `c 1 3` is /dev/null: a device any host lets open, so only the sandbox can refuse it.
    let script = format!(
        "mknod /tmp/null c 1 3 && echo made-node; \
         (echo x > /tmp/null) 2>/dev/null && echo opened-root-node; \
         mknod /dev/null2 c 1 3 && (echo x > /dev/null2) 2>/dev/null && echo opened-dev-node; \
         mknod /dev/shm/null c 1 3 && (echo x > /dev/shm/null) 2>/dev/null && echo opened-shm-node; \
         mknod /mnt/bound/null c 1 3 && (echo x > /mnt/bound/null) 2>/dev/null && echo opened-bound-node; \
         mknod /tmp/disk b {major} {minor} && head -c 512 /tmp/disk > /dev/null 2>&1 && echo read-disk; \
         mkdir -p /mnt/disk && mount -o ro /tmp/disk /mnt/disk 2>/dev/null && echo mounted-disk; \
         echo x > /dev/null && echo dev-null-works; echo checked"
    );
    let mut container = container(&snapshot, &script);
    container.mounts = vec![BindMount {
        source: bound,
        destination: "/mnt/bound".into(),
        read_only: false,
    }];
    let (status, out) = run(&container);
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    // mknod itself is allowed (CAP_MKNOD, as under Docker); opening what it made is not.
    assert_eq!(out, "made-node\ndev-null-works\nchecked\n");
    // A privileged (insecure) step may, as under BuildKit's security.insecure.
    container.capabilities = hoist_sandbox::Capabilities::All;
    container.args[2] =
        "rm -f /tmp/null; mknod /tmp/null c 1 3 && echo x > /tmp/null && echo opened".into();
    assert_eq!(run(&container).1, "opened\n");
}

/// The host's IPv4 addresses other than loopback (from `ip`, which busybox-static provides).
fn host_addresses() -> Vec<String> {
    let output = std::process::Command::new("/bin/busybox")
        .args(["ip", "-4", "-o", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            let address = words.next()?.split('/').next()?.to_owned();
            (!address.starts_with("127.")).then_some(address)
        })
        .collect()
}

#[test]
fn network_none_reaches_no_host_address() {
    let fixture = Fixture::new();
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"reached-host\n");
        }
    });
    let addresses = host_addresses();
    assert!(!addresses.is_empty(), "the host has a non-loopback address");
    let snapshot = fixture.snapshot(Vec::new());
    let mut script = String::new();
    for address in std::iter::once("127.0.0.1".to_owned()).chain(addresses.clone()) {
        script.push_str(&format!("nc -w 1 {address} {port} </dev/null; "));
    }
    script.push_str("echo checked");
    let (status, out) = run(&container(&snapshot, &script));
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert!(!out.contains("reached-host"), "{out}");
    // The same commands on the host network reach it (so the check can fail).
    let mut host = container(&snapshot, &script);
    host.network = Network::Host;
    let (_, out) = run(&host);
    assert_eq!(
        out.matches("reached-host").count(),
        addresses.len() + 1,
        "{out}"
    );
}

/// Host processes whose command line is exactly `words`.
fn processes_running(words: &[&str]) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .collect();
            (args.len() == words.len() && args.iter().zip(words).all(|(a, w)| *a == w.as_bytes()))
                .then_some(pid)
        })
        .collect()
}

#[test]
fn no_process_outlives_its_step() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot(Vec::new());
    // A unique duration names the background processes on the host.
    let (status, out) = run(&container(
        &snapshot,
        "sleep 4711 & (sleep 4711 &) ; setsid sleep 4711 & echo started",
    ));
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    // The kernel kills the namespace's other processes as PID 1 exits; give it a moment to reap them.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let left = processes_running(&["sleep", "4711"]);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left running: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Set in the copy of this test binary that `the_host_session_keyring_is_not_shared` runs in a session keyring of
/// its own.
const KEYRING_INNER: &str = "HOIST_ESCAPE_KEYRING_INNER";

#[test]
fn the_host_session_keyring_is_not_shared() {
    if std::env::var_os(KEYRING_INNER).is_none() {
        // Run this test again in a new session keyring (keyutils' `keyctl session`), so the key it adds stays there.
        let output = std::process::Command::new("keyctl")
            .args(["session", "hoist-escape-test"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_host_session_keyring_is_not_shared",
                "--nocapture",
            ])
            .env(KEYRING_INNER, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    let keyctl = |args: &[&str]| {
        std::process::Command::new("keyctl")
            .args(args)
            .output()
            .unwrap()
    };
    let added = keyctl(&["add", "user", "hoist-escape-marker", "do-not-read", "@s"]);
    assert!(added.status.success(), "{added:?}");
    let id = String::from_utf8(added.stdout).unwrap().trim().to_owned();
    // On the host, this process's children find it (so the container's check can fail).
    let found = keyctl(&["search", "@s", "user", "hoist-escape-marker"]);
    assert_eq!(String::from_utf8(found.stdout).unwrap().trim(), id);

    let fixture = Fixture::new();
    let snapshot = fixture.snapshot(Vec::new());
    let (status, out) = run(&container(
        &snapshot,
        &format!(
            "keyctl search @s user hoist-escape-marker; keyctl print {id}; keyctl show @s; echo checked"
        ),
    ));
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert!(out.ends_with("checked\n"), "{out}");
    assert!(!out.contains("do-not-read"), "{out}");
    assert!(!out.contains("hoist-escape-marker"), "{out}");
    assert!(!out.contains("hoist-escape-test"), "{out}");
}

#[test]
fn confined_steps_cannot_use_keyrings_or_make_user_namespaces() {
    let fixture = Fixture::new();
    let snapshot = fixture.snapshot(Vec::new());
    let script = "keyctl show @u > /dev/null 2>&1 && echo user-keyring; \
         keyctl add user hoist-escape x @s > /dev/null 2>&1 && echo added-key; \
         unshare -U true 2>/dev/null && echo user-namespace; \
         unshare -U -r true 2>/dev/null && echo mapped-user-namespace; \
         (sleep 0 &) && echo forks; echo checked";
    let mut container = container(&snapshot, script);
    let (status, out) = run(&container);
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert_eq!(out, "forks\nchecked\n");
    // The same commands work in a privileged step (so the checks can fail).
    container.capabilities = hoist_sandbox::Capabilities::All;
    let (_, privileged) = run(&container);
    assert!(privileged.contains("user-keyring"), "{privileged}");
    assert!(privileged.contains("user-namespace"), "{privileged}");
}
