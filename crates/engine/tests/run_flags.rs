//! `RUN --mount=type=ssh` against a real `ssh-agent`, and the `--allow` entitlements for `RUN --security=insecure`
//! and `RUN --network=host`, through the solver and the real sandbox (root, namespaces, overlayfs). The image is
//! busybox plus OpenSSH's `ssh-add` with the shared libraries `ldd` names, so the step itself lists the agent's keys.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use hoist_engine::{EngineError, Entitlements, SshAgents};
use hoist_oci::Store;
use hoist_testkit::BusyboxRootfs;

#[path = "support/sandboxed.rs"]
mod sandboxed;
use sandboxed::{build_to_dir, import_rootfs};

const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "grep", "stat", "test", "nc", "ls", "true", "cut",
];

/// A store with `flags:test`: busybox, its applets, and `ssh-add` with its libraries at their host paths.
fn store(dir: &Path) -> Store {
    let rootfs = BusyboxRootfs::new(dir.join("rootfs"))
        .applets(APPLETS)
        .passwd("root:x:0:0:root:/root:/bin/sh\n");
    let rootfs = rootfs.write();
    fs::copy("/usr/bin/ssh-add", rootfs.join("bin/ssh-add")).unwrap();
    let ldd = Command::new("ldd")
        .arg("/usr/bin/ssh-add")
        .output()
        .unwrap();
    for library in String::from_utf8(ldd.stdout).unwrap().split_whitespace() {
        if library.starts_with('/') {
            let inside = rootfs.join(library.trim_start_matches('/'));
            fs::create_dir_all(inside.parent().unwrap()).unwrap();
            fs::copy(library, inside).unwrap();
        }
    }
    import_rootfs(dir, rootfs, "flags:test", &[])
}

/// Builds `dockerfile` and returns the final filesystem (or the error).
fn build(
    dir: &Path,
    store: &Store,
    dockerfile: &str,
    ssh: &SshAgents,
    allow: Entitlements,
) -> Result<PathBuf, EngineError> {
    build_to_dir(dir, store, dockerfile, &BTreeMap::new(), ssh, allow)
}

/// A real `ssh-agent` holding one new ed25519 key; killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
    fingerprint: String,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // The file appears at bind(2), before the agent listens.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let key = dir.join("id_ed25519");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "hoist-test", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let added = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap();
        assert!(added.status.success(), "{added:?}");
        let listed = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .unwrap();
        let fingerprint = String::from_utf8(listed.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        Agent {
            child,
            socket,
            fingerprint,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_mounts_forward_a_real_agent_to_the_step_and_never_into_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let agent = Agent::start(dir.path());
    let ssh = SshAgents::from_specs(&[format!("default={}", agent.socket.display())], dir.path())
        .unwrap();
    let dockerfile = "FROM flags:test\n\
RUN --mount=type=ssh ssh-add -l > /listed; echo \"$SSH_AUTH_SOCK\" > /env; \
stat -c '%a %u %g' /run/buildkit/ssh_agent.0 > /socket\n\
RUN --mount=type=ssh,target=/tmp/agent,mode=0640,uid=7,gid=8 stat -c '%a %u %g %F' /tmp/agent > /custom; \
SSH_AUTH_SOCK=/tmp/agent ssh-add -l > /custom-listed\n\
RUN --mount=type=ssh,id=nothere test ! -e /run/buildkit/ssh_agent.0 && echo \"skipped $SSH_AUTH_SOCK\" > /skipped\n\
RUN ssh-add -l > /without 2>&1; echo $? >> /without\n";
    let out = build(
        dir.path(),
        &store,
        dockerfile,
        &ssh,
        Entitlements::default(),
    )
    .unwrap();
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    assert!(
        read("listed").contains(&agent.fingerprint),
        "{}",
        read("listed")
    );
    assert_eq!(read("env"), "/run/buildkit/ssh_agent.0\n");
    assert_eq!(read("socket"), "600 0 0\n");
    assert_eq!(read("custom"), "640 7 8 socket\n");
    assert!(read("custom-listed").contains(&agent.fingerprint));
    // Not forwarded and not required: no socket, but SSH_AUTH_SOCK is still set (BuildKit sets it in the op).
    assert_eq!(read("skipped"), "skipped /run/buildkit/ssh_agent.0\n");
    // A step without the mount reaches no agent.
    assert!(read("without").ends_with("2\n"), "{}", read("without"));
    // The sockets are mount points: never part of a layer.
    assert!(!out.join("run/buildkit/ssh_agent.0").exists());
    assert!(!out.join("tmp/agent").exists());

    let required = "FROM flags:test\nRUN --mount=type=ssh,id=nothere,required true\n";
    let error = build(dir.path(), &store, required, &ssh, Entitlements::default()).unwrap_err();
    let chain = hoist_engine::error_chain(&error);
    assert!(
        chain.contains("no SSH key \"nothere\" forwarded from the client"),
        "{chain}"
    );
}

#[test]
fn ssh_keys_are_loaded_into_an_agent_started_for_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let key = dir.path().join("deploy_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "deploy", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let ssh = SshAgents::from_specs(&[format!("deploy={}", key.display())], dir.path()).unwrap();
    let dockerfile = "FROM flags:test\nRUN --mount=type=ssh,id=deploy ssh-add -l > /listed\n";
    let out = build(
        dir.path(),
        &store,
        dockerfile,
        &ssh,
        Entitlements::default(),
    )
    .unwrap();
    assert!(
        fs::read_to_string(out.join("listed"))
            .unwrap()
            .contains("deploy (ED25519)")
    );
}

#[test]
fn insecure_steps_need_the_security_insecure_entitlement() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let dockerfile = "FROM flags:test\nRUN echo first > /first\n\
RUN --security=insecure grep CapEff /proc/self/status > /caps\n";
    let none = SshAgents::none();
    let error = build(
        dir.path(),
        &store,
        dockerfile,
        &none,
        Entitlements::default(),
    )
    .unwrap_err();
    match &error {
        EngineError::Step { vertex, source, .. } => {
            assert!(vertex.contains("RUN --security=insecure"), "{vertex}");
            assert_eq!(source.to_string(), "security.insecure is not allowed");
        }
        other => panic!("expected a step error, got {other:?}"),
    }
    // Refused before anything ran: the first step is not in the cache either.
    let allow = Entitlements::parse(&["security.insecure".to_owned()]).unwrap();
    let out = build(dir.path(), &store, dockerfile, &none, allow).unwrap();
    // Every capability hoist itself has (the machine may withhold some from hoist too), not Docker's 14.
    let own = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap()
        .to_owned();
    assert_ne!(own, "CapEff:\t00000000a80425fb");
    assert_eq!(
        fs::read_to_string(out.join("caps")).unwrap(),
        format!("{own}\n")
    );
}

#[test]
fn host_network_steps_need_the_network_host_entitlement() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"from-host\n");
        }
    });
    let dockerfile =
        format!("FROM flags:test\nRUN --network=host nc 127.0.0.1 {port} </dev/null > /answer\n");
    let none = SshAgents::none();
    let error = build(
        dir.path(),
        &store,
        &dockerfile,
        &none,
        Entitlements::default(),
    )
    .unwrap_err();
    let chain = hoist_engine::error_chain(&error);
    assert!(chain.contains("network.host is not allowed"), "{chain}");
    let allow = Entitlements::parse(&["network.host".to_owned()]).unwrap();
    let out = build(dir.path(), &store, &dockerfile, &none, allow).unwrap();
    assert_eq!(
        fs::read_to_string(out.join("answer")).unwrap(),
        "from-host\n"
    );
}

/// Every regular file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if kind.is_file() {
            let bytes = fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_step_cannot_see_another_step_s_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let secrets = BTreeMap::from([("token".to_owned(), b"s3cret-value".to_vec())]);
    let dockerfile = "FROM flags:test\n\
RUN --mount=type=secret,id=token grep -c s3cret /run/secrets/token > /used\n\
RUN --mount=type=secret,id=token,env=TOKEN test -n \"$TOKEN\" && echo env-used > /env-used\n\
RUN cat /run/secrets/token > /leak 2>&1; echo $? > /status; echo \"token=$TOKEN\" > /env-after\n";
    let none = SshAgents::none();
    let out = build_to_dir(
        dir.path(),
        &store,
        dockerfile,
        &secrets,
        &none,
        Entitlements::default(),
    )
    .unwrap();
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    // The steps that mount it see it (so the checks below can fail)...
    assert_eq!(read("used"), "1\n");
    assert_eq!(read("env-used"), "env-used\n");
    // ...the next one sees neither the file nor the variable, and no layer holds the value.
    assert_ne!(read("status"), "0\n", "{}", read("leak"));
    assert_eq!(read("env-after"), "token=\n");
    assert!(!out.join("run/secrets/token").exists());
    assert_eq!(
        files_containing(&out, b"s3cret-value"),
        Vec::<PathBuf>::new()
    );
}
