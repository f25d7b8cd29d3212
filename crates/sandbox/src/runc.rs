//! The same [`Container`] through an external OCI runtime (`runc`, `crun`): an OCI runtime bundle is generated with
//! `oci-spec`'s runtime types, and `RUNTIME run --bundle DIR ID` runs it in the foreground.
//!
//! The bundle's `config.json` asks for what the built-in runtime does: the same namespaces, `/proc`, a `tmpfs`
//! `/dev` (the runtime adds the standard device nodes), `devpts`, `/dev/shm`, a read-only `/sys`, the generated
//! `/etc` files bind-mounted, the masked and read-only paths, Docker's default capabilities, the user, environment
//! and working directory. For an overlay root, the runtime is started in a private mount namespace of its own where
//! hoist has mounted the overlay, so the host never sees that mount either.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use rustix::process::{Pid, Signal};

use crate::container::{
    Capabilities, Container, ExitStatus, Network, RootFs, Stdio, prepare, system,
    wait_forwarding_signals, write_etc_files,
};
use crate::error::{Error, Result};
use crate::plan::{DEFAULT_CAPABILITIES, EtcFiles, MASKED_PATHS, OverlayMount, READONLY_PATHS};
use crate::sys;

/// Every capability name Linux defines (up to `CAP_CHECKPOINT_RESTORE`), for [`Capabilities::All`].
const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn spec_error(error: oci_spec::OciSpecError) -> Error {
    Error::RuntimeSpec {
        message: error.to_string(),
    }
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(spec_error)
}

/// The runtime spec for `container`, whose root is `root`.
pub(crate) fn runtime_spec(container: &Container, root: &Path, etc: &EtcFiles) -> Result<Spec> {
    let names: Vec<&str> = match container.capabilities {
        Capabilities::Default => DEFAULT_CAPABILITIES
            .iter()
            .map(|(name, _)| name.trim_start_matches("CAP_"))
            .collect(),
        Capabilities::All => ALL_CAPABILITIES.to_vec(),
    };
    let capabilities: HashSet<Capability> =
        names.iter().filter_map(|name| name.parse().ok()).collect();
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(container.args.clone())
        .env(container.env.clone())
        .cwd(if container.cwd.is_empty() {
            "/"
        } else {
            container.cwd.as_str()
        })
        .user(
            UserBuilder::default()
                .uid(container.user.uid)
                .gid(container.user.gid)
                .additional_gids(container.user.additional_gids.clone())
                .build()
                .map_err(spec_error)?,
        )
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(capabilities.clone())
                .effective(capabilities.clone())
                .permitted(capabilities)
                .build()
                .map_err(spec_error)?,
        )
        .no_new_privileges(false)
        .build()
        .map_err(spec_error)?;

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
    ];
    mounts.push(match container.network {
        Network::None => mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        Network::Host => mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?,
    });
    for (destination, source) in [
        ("/etc/hosts", &etc.hosts),
        ("/etc/resolv.conf", &etc.resolv_conf),
        ("/etc/hostname", &etc.hostname),
    ] {
        mounts.push(mount(
            destination,
            "bind",
            &source.to_string_lossy(),
            &["rbind", "rprivate"],
        )?);
    }
    for bind in &container.mounts {
        let mode = if bind.read_only { "ro" } else { "rw" };
        mounts.push(mount(
            &bind.destination,
            "bind",
            &bind.source.to_string_lossy(),
            &["rbind", mode],
        )?);
    }

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if container.network == Network::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| {
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(spec_error)
        })
        .collect::<Result<Vec<_>>>()?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(spec_error)?;
    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(root)
                .readonly(false)
                .build()
                .map_err(spec_error)?,
        )
        .process(process)
        .hostname(container.hostname.clone())
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(spec_error)
}

impl Container {
    /// Runs the container with the external OCI runtime `runtime` (e.g. `runc`) instead of the built-in one.
    /// Signals are forwarded to the runtime (which forwards them to the container); after
    /// [`stop_timeout`](Container::stop_timeout) the container is killed with `RUNTIME kill ID KILL`, and
    /// `RUNTIME delete --force ID` cleans up afterwards. Published ports and rootless mode are built-in only.
    pub fn run_with_runtime(&self, runtime: &Path, stdio: Stdio) -> Result<ExitStatus> {
        if !self.ports.is_empty() || !rustix::process::geteuid().is_root() {
            return Err(Error::RuntimeSpec {
                message: "published ports and rootless containers need the built-in runtime"
                    .to_owned(),
            });
        }
        let state = tempfile::Builder::new()
            .prefix("hoist-bundle-")
            .tempdir()
            .map_err(prepare("create", &std::env::temp_dir()))?;
        let etc = write_etc_files(self, state.path())?;
        let (root, overlay) = match &self.rootfs {
            RootFs::Directory(dir) => (dir.clone(), None),
            RootFs::Overlay { .. } => {
                let target = state.path().join("rootfs");
                std::fs::create_dir(&target).map_err(prepare("create", &target))?;
                crate::plan::clear_volatile_marker(&self.rootfs)?;
                let overlay = OverlayMount::new(&self.rootfs, &target, false)?;
                (target, overlay)
            }
        };
        let spec = runtime_spec(self, &root, &etc)?;
        let bundle = state.path().join("bundle");
        std::fs::create_dir(&bundle).map_err(prepare("create", &bundle))?;
        spec.save(bundle.join("config.json")).map_err(spec_error)?;
        let id = format!(
            "hoist-{}",
            state
                .path()
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let id = id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");

        let mut command = Command::new(runtime);
        command.arg("run").arg("--bundle").arg(&bundle).arg(&id);
        let Stdio {
            stdin,
            stdout,
            stderr,
        } = stdio;
        let to_stdio = |fd: Option<OwnedFd>| {
            fd.map_or_else(std::process::Stdio::inherit, std::process::Stdio::from)
        };
        command
            .stdin(to_stdio(stdin))
            .stdout(to_stdio(stdout))
            .stderr(to_stdio(stderr));
        sys::in_private_mount_namespace(&mut command, overlay);

        let (signals, old_mask) =
            sys::block_forwarded_signals().map_err(system("block signals"))?;
        let result = run_runtime(&mut command, runtime, &id, &signals, self.stop_timeout);
        sys::restore_signal_mask(&old_mask);
        let _ = Command::new(runtime)
            .args(["delete", "--force", &id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        result
    }
}

fn run_runtime(
    command: &mut Command,
    runtime: &Path,
    id: &str,
    signals: &OwnedFd,
    stop_timeout: std::time::Duration,
) -> Result<ExitStatus> {
    let child = command.spawn().map_err(|source| Error::Exec {
        program: runtime.display().to_string(),
        source,
    })?;
    let pid = Pid::from_child(&child);
    let runtime: PathBuf = runtime.to_owned();
    let id = id.to_owned();
    let attempts = std::cell::Cell::new(0u32);
    let kill = move |pidfd: &OwnedFd| {
        attempts.set(attempts.get() + 1);
        if attempts.get() == 1 {
            // Killing the container's init ends its PID namespace; the runtime then exits with 137 by itself.
            let _ = Command::new(&runtime)
                .args(["kill", &id, "KILL"])
                .stderr(std::process::Stdio::null())
                .status();
        } else {
            // Still running a second later (e.g. the container never started): end the runtime itself.
            let _ = rustix::process::pidfd_send_signal(pidfd, Signal::KILL);
        }
    };
    // std's Command resets the signal mask in the child, so the runtime itself receives forwarded signals.
    wait_forwarding_signals(pid, signals, stop_timeout, &kill)
}
