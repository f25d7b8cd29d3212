//! The child's program: every mount, directory and id change, decided and encoded in the parent.
//!
//! [`Plan::build`] turns a [`Container`] into a list of [`Op`]s whose strings are already `CString`s, so the child
//! (see `sys`) only executes them. Keeping decisions here, in safe code, also lets unit tests check the mount plan
//! without a kernel (as youki's recording `Syscall` does), while the integration tests check the real thing.

use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::container::{Capabilities, Container, Network, RootFs};
use crate::error::Error;

/// Paths masked as runc does by default (Docker's `DefaultSpec`): a directory gets an empty read-only tmpfs over
/// it, a file `/dev/null`.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only as runc does by default.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Host device nodes bind-mounted into the container's `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Host device nodes a privileged container ([`Capabilities::All`], BuildKit's `--security=insecure`) also gets,
/// when the host has them (BuildKit's insecure mode adds the same ones).
pub const PRIVILEGED_DEVICES: &[&str] = &["fuse", "net/tun", "loop-control", "kvm", "kmsg"];

/// Docker's default capabilities (moby `oci/caps/defaults.go`), with their numbers: every other capability is
/// dropped from the bounding set, so the command, even as root, can never hold it.
pub const DEFAULT_CAPABILITIES: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_RAW", 13),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_MKNOD", 27),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_SETFCAP", 31),
];

/// `$PATH` when the container's environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One step the child performs. Paths before [`Op::PivotRoot`] are host paths; after it, container paths.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Wait until the parent has written the user namespace's id maps (rootless): close our copy of the write end,
    /// then read one byte.
    WaitForParent { read: RawFd, write: RawFd },
    /// Start a new session: the container leaves hoist's process group and terminal, so a Ctrl-C at hoist's
    /// terminal reaches hoist only, which forwards it to the container's PID 1 (as `docker run` does).
    NewSession,
    /// Make standard input (a pseudo-terminal from `hoist run -t`) the session's controlling terminal.
    ControllingTerminal,
    /// Make every mount in the new mount namespace private, so nothing propagates back to the host.
    MakeMountsPrivate,
    /// A new file system (`proc`, `tmpfs`, `overlay`, …).
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// The overlay root (see [`OverlayMount`]).
    MountOverlay(OverlayMount),
    /// Before `pivot_root`: a detached copy of the host mount tree at `source` (`open_tree(OPEN_TREE_CLONE)`), kept
    /// in slot `slot` of [`Plan::trees`] until it is attached inside the container.
    DetachTree { source: CString, slot: usize },
    /// After `pivot_root`: attach the tree of slot `slot` on `target` (`move_mount`), optionally read-only and
    /// without devices, recursively (`mount_setattr`: a read-only `/sys` keeps no writable submount such as the
    /// host's cgroup hierarchies).
    AttachTree {
        slot: usize,
        target: CString,
        read_only: bool,
        nodev: bool,
    },
    /// Refuse to open device files on every mount at `path` (`nodev`, recursively): a node made with `CAP_MKNOD`
    /// in the container cannot reach a host device (what Docker's device cgroup prevents).
    NoDevices { path: CString },
    /// Detach the old root (kept at `path` while the container's mounts were made) and remove its directory.
    UnmountOldRoot { path: CString },
    /// A recursive bind mount, optionally made read-only.
    Bind {
        source: CString,
        target: CString,
        read_only: bool,
    },
    /// `mkdir`, ignoring an existing directory.
    Mkdir { path: CString, mode: libc::mode_t },
    /// Create an empty file if missing (a bind-mount target).
    Touch { path: CString },
    /// `symlink(target, link)`, ignoring an existing link.
    Symlink { target: CString, link: CString },
    /// Hide a path (see [`MASKED_PATHS`]); absent paths are skipped.
    Mask { path: CString },
    /// Make a path read-only (see [`READONLY_PATHS`]); absent paths are skipped.
    ReadOnly { path: CString },
    /// `pivot_root` into `root`, the old root going to the directory `old_root` (relative to `root`, created).
    PivotRoot { root: CString, old_root: CString },
    /// Set the UTS namespace's host name.
    SetHostname { name: CString },
    /// Bring up `lo` in a new network namespace.
    LoopbackUp,
    /// Change directory.
    Chdir { path: CString },
    /// Join a new, empty session keyring (as runc does): the container does not share hoist's session keyring
    /// and the keys in it.
    NewSessionKeyring,
    /// Drop every capability from 0 to `last` whose bit is not in `keep` from the bounding set.
    DropCapabilities { keep: u64, last: u32 },
    /// Install a seccomp filter (see `seccomp`), while the child still has `CAP_SYS_ADMIN`.
    Seccomp {
        program: Vec<crate::seccomp::Instruction>,
    },
    /// Supplementary groups (unless `set_groups` is false: a single-id user namespace denies `setgroups`), then
    /// gid, then uid.
    SetIds {
        uid: libc::uid_t,
        gid: libc::gid_t,
        groups: Vec<libc::gid_t>,
        set_groups: bool,
    },
    /// Descriptors to place on 0, 1, 2 (`None`: inherited).
    Stdio { fds: [Option<RawFd>; 3] },
    /// `execve` each candidate in turn (the command resolved along `$PATH`).
    Exec {
        candidates: Vec<CString>,
        argv: Vec<*const c_char>,
        envp: Vec<*const c_char>,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |s: &CString| s.to_string_lossy().into_owned();
        match self {
            Self::WaitForParent { .. } => write!(f, "wait for the user namespace's id maps"),
            Self::NewSession => write!(f, "start a new session"),
            Self::ControllingTerminal => write!(f, "take the terminal on standard input"),
            Self::MakeMountsPrivate => write!(f, "make mounts private"),
            Self::Mount { target, fstype, .. } => {
                write!(f, "mount {} on {}", show(fstype), show(target))
            }
            Self::MountOverlay(overlay) => write!(f, "mount overlay on {}", show(&overlay.target)),
            Self::Bind { source, target, .. } => {
                write!(f, "bind-mount {} on {}", show(source), show(target))
            }
            Self::Mkdir { path, .. } => write!(f, "create directory {}", show(path)),
            Self::Touch { path } => write!(f, "create file {}", show(path)),
            Self::Symlink { link, .. } => write!(f, "create symlink {}", show(link)),
            Self::Mask { path } => write!(f, "mask {}", show(path)),
            Self::ReadOnly { path } => write!(f, "make {} read-only", show(path)),
            Self::PivotRoot { root, .. } => write!(f, "pivot_root into {}", show(root)),
            Self::DetachTree { source, .. } => {
                write!(f, "clone the mount tree of {}", show(source))
            }
            Self::AttachTree { target, .. } => write!(f, "attach a mount on {}", show(target)),
            Self::NoDevices { path } => write!(f, "forbid devices under {}", show(path)),
            Self::UnmountOldRoot { .. } => write!(f, "detach the old root"),
            Self::SetHostname { name } => write!(f, "set hostname {}", show(name)),
            Self::LoopbackUp => write!(f, "bring up the loopback interface"),
            Self::Chdir { path } => write!(f, "change directory to {}", show(path)),
            Self::NewSessionKeyring => write!(f, "join a new session keyring"),
            Self::DropCapabilities { keep, .. } => write!(f, "limit capabilities to {keep:#x}"),
            Self::Seccomp { .. } => write!(f, "install the seccomp filter"),
            Self::SetIds { uid, gid, .. } => write!(f, "switch to user {uid}:{gid}"),
            Self::Stdio { .. } => write!(f, "set up standard input and output"),
            Self::Exec { candidates, .. } => match candidates.first() {
                Some(first) => write!(f, "execute {}", show(first)),
                None => write!(f, "execute"),
            },
        }
    }
}

/// The ops, plus the strings the `Exec` pointer arrays point into.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) ops: Vec<Op>,
    /// Descriptors of detached mount trees, written by the child between `DetachTree` and `AttachTree` (atomics so
    /// the child can store into memory it only borrows, without allocating).
    pub(crate) trees: Vec<std::sync::atomic::AtomicI32>,
    /// Owns the argv strings `Op::Exec::argv` points into.
    _argv: Vec<CString>,
    /// Owns the environment strings `Op::Exec::envp` points into.
    _env: Vec<CString>,
}

/// How the child is started, beyond the container itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StartOptions {
    /// Descriptors to place on 0, 1, 2.
    pub(crate) stdio: [Option<RawFd>; 3],
    /// Rootless: the child is in a new user namespace and waits on this pipe (read end, write end) for its id maps.
    pub(crate) user_namespace: Option<(RawFd, RawFd)>,
    /// The user namespace maps one id only, so `setgroups` is denied.
    pub(crate) single_id: bool,
}

/// Host files generated for the container and bind-mounted over `/etc/…`.
#[derive(Debug, Clone)]
pub(crate) struct EtcFiles {
    pub(crate) hosts: PathBuf,
    pub(crate) resolv_conf: PathBuf,
    pub(crate) hostname: PathBuf,
}

fn cstring(bytes: impl Into<Vec<u8>>, what: &str) -> Result<CString, Error> {
    CString::new(bytes).map_err(|_| Error::NulByte {
        what: what.to_owned(),
    })
}

fn path_cstring(path: &Path) -> Result<CString, Error> {
    cstring(path.as_os_str().as_bytes(), "path")
}

/// `root` joined with an absolute container path, lexically (`..` cannot climb above `root`).
pub(crate) fn join_in_root(root: &Path, path: &str) -> PathBuf {
    let mut joined = root.to_path_buf();
    let mut depth = 0usize;
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => {
                joined.push(name);
                depth += 1;
            }
            Component::ParentDir if depth > 0 => {
                joined.pop();
                depth -= 1;
            }
            _ => {}
        }
    }
    joined
}

impl Plan {
    /// Builds the child's ops for `container`, whose root file system is assembled at `root` (a host directory).
    pub(crate) fn build(
        container: &Container,
        root: &Path,
        etc: &EtcFiles,
        start: StartOptions,
    ) -> Result<Plan, Error> {
        // Everything inside the container's root is done after `pivot_root`, with container paths: a symlink in the
        // image (`etc -> /var/lib/x`) then resolves inside the root and can never make the sandbox create or mount
        // anything on the host. Host files the container needs (device nodes, generated /etc files, bind mounts)
        // are cloned as detached mount trees before the pivot and attached after it.
        let mut ops = Vec::new();
        let mut detached = Vec::new();
        let mut inside = Vec::new();
        let mut slots = 0usize;
        let at = |path: &str| path_cstring(&join_in_root(Path::new("/"), path));
        let host = |path: &str| cstring(path, "path");
        let rootc = path_cstring(root)?;

        if let Some((read, write)) = start.user_namespace {
            ops.push(Op::WaitForParent { read, write });
        }
        ops.push(Op::NewSession);
        ops.push(Op::MakeMountsPrivate);
        ops.push(Op::Stdio { fds: start.stdio });
        if container.terminal {
            ops.push(Op::ControllingTerminal);
        }
        match &container.rootfs {
            RootFs::Directory(dir) => ops.push(Op::Bind {
                source: path_cstring(dir)?,
                target: rootc.clone(),
                read_only: false,
            }),
            RootFs::Overlay { .. } => {
                let overlay =
                    OverlayMount::new(&container.rootfs, root, start.user_namespace.is_some())?
                        .expect("an overlay root");
                ops.push(Op::MountOverlay(overlay));
            }
        }
        // A privileged container (BuildKit's insecure mode) has every device, no masked or read-only path and a
        // writable /sys.
        let privileged = container.capabilities == Capabilities::All;
        // Without cgroups there is no device allow-list: device files are refused on every mount but the device
        // nodes hoist binds into /dev.
        let nodev = !privileged;
        if nodev {
            ops.push(Op::NoDevices {
                path: rootc.clone(),
            });
        }

        let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        mount_new(
            &mut inside,
            at("/proc")?,
            0o555,
            "proc",
            "proc",
            nosuid_nodev_noexec,
            None,
        )?;
        mount_new(
            &mut inside,
            at("/dev")?,
            0o755,
            "tmpfs",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_STRICTATIME | if nodev { libc::MS_NODEV } else { 0 },
            Some("mode=755,size=65536k"),
        )?;
        let extra: &[&str] = if privileged { PRIVILEGED_DEVICES } else { &[] };
        let present = |device: &&&str| Path::new("/dev").join(device).exists();
        for device in DEVICES.iter().chain(extra.iter().filter(present)) {
            if let Some((dir, _)) = device.split_once('/') {
                inside.push(Op::Mkdir {
                    path: at(&format!("/dev/{dir}"))?,
                    mode: 0o755,
                });
            }
            let target = at(&format!("/dev/{device}"))?;
            inside.push(Op::Touch {
                path: target.clone(),
            });
            bind(
                &mut detached,
                &mut inside,
                &mut slots,
                host(&format!("/dev/{device}"))?,
                target,
                false,
                false,
            );
        }
        mount_new(
            &mut inside,
            at("/dev/pts")?,
            0o755,
            "devpts",
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )?;
        inside.push(Op::Symlink {
            target: host("pts/ptmx")?,
            link: at("/dev/ptmx")?,
        });
        mount_new(
            &mut inside,
            at("/dev/shm")?,
            0o1777,
            "shm",
            "tmpfs",
            nosuid_nodev_noexec,
            Some("mode=1777,size=65536k"),
        )?;
        mount_new(
            &mut inside,
            at("/dev/mqueue")?,
            0o755,
            "mqueue",
            "mqueue",
            nosuid_nodev_noexec,
            None,
        )?;
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ] {
            inside.push(Op::Symlink {
                target: host(target)?,
                link: at(link)?,
            });
        }
        inside.push(Op::Mkdir {
            path: at("/sys")?,
            mode: 0o555,
        });
        if container.network == Network::Host {
            // sysfs shows the network namespace of whoever mounts it; without a namespace of our own, a read-only
            // bind of the host's /sys shows the same thing.
            bind(
                &mut detached,
                &mut inside,
                &mut slots,
                host("/sys")?,
                at("/sys")?,
                !privileged,
                nodev,
            );
        } else {
            inside.push(Op::Mount {
                source: host("sysfs")?,
                target: at("/sys")?,
                fstype: host("sysfs")?,
                flags: nosuid_nodev_noexec | if privileged { 0 } else { libc::MS_RDONLY },
                data: None,
            });
        }

        inside.push(Op::Mkdir {
            path: at("/etc")?,
            mode: 0o755,
        });
        for (file, source) in [
            ("/etc/hosts", &etc.hosts),
            ("/etc/resolv.conf", &etc.resolv_conf),
            ("/etc/hostname", &etc.hostname),
        ] {
            inside.push(Op::Touch { path: at(file)? });
            bind(
                &mut detached,
                &mut inside,
                &mut slots,
                path_cstring(source)?,
                at(file)?,
                false,
                nodev,
            );
        }
        for mount in &container.mounts {
            let target = at(&mount.destination)?;
            if mount.source.is_dir() {
                for prefix in prefixes(&mount.destination) {
                    inside.push(Op::Mkdir {
                        path: at(&prefix)?,
                        mode: 0o755,
                    });
                }
            } else {
                for prefix in prefixes(&mount.destination).iter().rev().skip(1).rev() {
                    inside.push(Op::Mkdir {
                        path: at(prefix)?,
                        mode: 0o755,
                    });
                }
                inside.push(Op::Touch {
                    path: target.clone(),
                });
            }
            bind(
                &mut detached,
                &mut inside,
                &mut slots,
                path_cstring(&mount.source)?,
                target,
                mount.read_only,
                nodev,
            );
        }
        if !privileged {
            for path in MASKED_PATHS {
                inside.push(Op::Mask { path: at(path)? });
            }
            for path in READONLY_PATHS {
                inside.push(Op::ReadOnly { path: at(path)? });
            }
        }

        let old_root = old_root_name();
        ops.append(&mut detached);
        ops.push(Op::PivotRoot {
            root: rootc,
            old_root: cstring(old_root.as_str(), "path")?,
        });
        ops.append(&mut inside);
        ops.push(Op::UnmountOldRoot {
            path: cstring(format!("/{old_root}"), "path")?,
        });
        ops.push(Op::SetHostname {
            name: cstring(container.hostname.as_str(), "hostname")?,
        });
        if container.network != Network::Host {
            ops.push(Op::LoopbackUp);
        }
        let cwd = if container.cwd.is_empty() {
            "/"
        } else {
            container.cwd.as_str()
        };
        for prefix in prefixes(cwd) {
            ops.push(Op::Mkdir {
                path: host(&prefix)?,
                mode: 0o755,
            });
        }
        ops.push(Op::Chdir {
            path: cstring(cwd, "working directory")?,
        });
        ops.push(Op::NewSessionKeyring);
        if container.capabilities == Capabilities::Default {
            ops.push(Op::DropCapabilities {
                keep: DEFAULT_CAPABILITIES
                    .iter()
                    .fold(0, |mask, (_, bit)| mask | (1u64 << bit)),
                last: last_capability(),
            });
            if let Some(program) = crate::seccomp::filter() {
                ops.push(Op::Seccomp { program });
            }
        }
        ops.push(Op::SetIds {
            uid: container.user.uid,
            gid: container.user.gid,
            groups: container.user.additional_gids.clone(),
            set_groups: !start.single_id || !container.user.additional_gids.is_empty(),
        });

        let argv: Vec<CString> = container
            .args
            .iter()
            .map(|arg| cstring(arg.as_str(), "argument"))
            .collect::<Result<_, _>>()?;
        let env: Vec<CString> = container
            .env
            .iter()
            .map(|var| cstring(var.as_str(), "environment variable"))
            .collect::<Result<_, _>>()?;
        let program = container.args.first().ok_or(Error::NoCommand)?;
        let candidates = exec_candidates(program, &container.env)
            .into_iter()
            .map(|candidate| cstring(candidate, "command"))
            .collect::<Result<_, _>>()?;
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|s| s.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<*const c_char> = env.iter().map(|s| s.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        ops.push(Op::Exec {
            candidates,
            argv: argv_ptrs,
            envp: env_ptrs,
        });
        Ok(Plan {
            ops,
            trees: (0..slots)
                .map(|_| std::sync::atomic::AtomicI32::new(-1))
                .collect(),
            _argv: argv,
            _env: env,
        })
    }
}

/// Mounts a file system of the container's own (`proc`, `tmpfs`, `devpts`, `mqueue`: `source`, `fstype`, `MS_*`
/// `flags` and option string `data`) on `target`, after creating the directory (`mode`) it goes on. Both use the
/// container path, after `pivot_root`.
fn mount_new(
    inside: &mut Vec<Op>,
    target: CString,
    mode: libc::mode_t,
    source: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), Error> {
    inside.push(Op::Mkdir {
        path: target.clone(),
        mode,
    });
    inside.push(Op::Mount {
        source: cstring(source, "path")?,
        target,
        fstype: cstring(fstype, "path")?,
        flags,
        data: data.map(|data| cstring(data, "path")).transpose()?,
    });
    Ok(())
}

/// A host mount tree cloned before `pivot_root` (into `detached`) and attached on `target` after it (in `inside`).
fn bind(
    detached: &mut Vec<Op>,
    inside: &mut Vec<Op>,
    slots: &mut usize,
    source: CString,
    target: CString,
    read_only: bool,
    nodev: bool,
) {
    detached.push(Op::DetachTree {
        source,
        slot: *slots,
    });
    inside.push(Op::AttachTree {
        slot: *slots,
        target,
        read_only,
        nodev,
    });
    *slots += 1;
}

/// A name for the old root's directory that an image cannot predict (so no symlink in it can point there).
fn old_root_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!(".hoist-old-root-{:016x}", hasher.finish())
}

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`; 63 if unreadable, the
/// unknown ones then fail harmlessly with `EINVAL`).
fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(63)
        .min(63)
}

/// An overlay mount, prepared for the child: the layers for the new mount API (`fsconfig` `lowerdir+`, one layer
/// at a time, with no length limit; Linux 6.8+) and the classic option string as the fallback (limited to one page:
/// about 40 layers with the store's path lengths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OverlayMount {
    pub(crate) target: CString,
    /// Top layer first.
    pub(crate) lower: Vec<CString>,
    pub(crate) upper: CString,
    pub(crate) work: CString,
    pub(crate) userxattr: bool,
    /// Mounted with `volatile` (see [`RootFs::Overlay`]).
    pub(crate) volatile: bool,
    /// `lowerdir=…,upperdir=…,workdir=…` and the options, for `mount(2)`: what to try, in order, while the kernel
    /// answers `EINVAL` (an option it does not know): all of them, then without [`OFF_FEATURES`], then without
    /// `volatile` either (before Linux 5.10).
    pub(crate) legacy: Vec<CString>,
}

/// overlayfs features turned off explicitly on a root-owned mount, whatever the kernel's defaults (its module
/// parameters, or the distribution's build options): with `metacopy`, a `chown` or `chmod` copies up only the
/// metadata, and the upper file that becomes the layer has no data (a zero-filled binary in the image); with
/// `redirect_dir`, a renamed directory is recorded as a redirect the layer writer does not translate; `index` is
/// off as Docker's overlay2 keeps it. A `userxattr` mount has all three off already (the kernel forbids them).
pub(crate) const OFF_FEATURES: [(&CStr, &CStr); 3] = [
    (c"redirect_dir", c"off"),
    (c"index", c"off"),
    (c"metacopy", c"off"),
];

impl OverlayMount {
    /// The mount of `rootfs` on `target`, or `None` for a directory root.
    pub(crate) fn new(
        rootfs: &RootFs,
        target: &Path,
        userxattr: bool,
    ) -> Result<Option<OverlayMount>, Error> {
        let RootFs::Overlay {
            lower,
            upper,
            work,
            volatile,
        } = rootfs
        else {
            return Ok(None);
        };
        let base = overlay_options(lower, upper, work, userxattr);
        let features: String = if userxattr {
            String::new()
        } else {
            OFF_FEATURES
                .iter()
                .map(|(key, value)| {
                    format!(",{}={}", key.to_string_lossy(), value.to_string_lossy())
                })
                .collect()
        };
        let volatile_option = if *volatile { ",volatile" } else { "" };
        let mut candidates = vec![format!("{base}{features}{volatile_option}")];
        if !features.is_empty() {
            candidates.push(format!("{base}{volatile_option}"));
        }
        if *volatile {
            candidates.push(base);
        }
        let legacy = candidates
            .into_iter()
            .map(|options| cstring(options, "overlay options"))
            .collect::<Result<_, _>>()?;
        Ok(Some(OverlayMount {
            target: path_cstring(target)?,
            lower: lower
                .iter()
                .rev()
                .map(|dir| path_cstring(dir))
                .collect::<Result<_, _>>()?,
            upper: path_cstring(upper)?,
            work: path_cstring(work)?,
            userxattr,
            volatile: *volatile,
            legacy,
        }))
    }
}

/// Lets a volatile overlay root be mounted again. overlayfs leaves `work/incompat/volatile` in its work directory
/// and refuses another mount while that is there, in case the system crashed in between and the upper directory
/// lost data. A volatile upper is a [`Snapshot`](crate::Snapshot)'s scratch, which lives no longer than its
/// process (after a crash `Snapshot::remove_stale` deletes it): another run on the same snapshot always follows a
/// clean unmount, so the marker can go.
pub(crate) fn clear_volatile_marker(rootfs: &RootFs) -> Result<(), Error> {
    let RootFs::Overlay {
        work,
        volatile: true,
        ..
    } = rootfs
    else {
        return Ok(());
    };
    let marker = work.join("work/incompat/volatile");
    match std::fs::remove_dir_all(&marker) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(Error::Prepare {
            action: "remove",
            path: marker,
            source,
        }),
        _ => Ok(()),
    }
}

/// The overlayfs mount options for an overlay root's layers: `lowerdir` top layer first,
/// and `userxattr` in a user namespace, where overlayfs keeps its whiteout and opaque markers in `user.overlay.*`
/// ([`OverlayMount`] adds [`OFF_FEATURES`] and `volatile`).
fn overlay_options(lower: &[PathBuf], upper: &Path, work: &Path, user_namespace: bool) -> String {
    let lower: Vec<String> = lower
        .iter()
        .rev()
        .map(|dir| escape_overlay_path(dir))
        .collect();
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape_overlay_path(upper),
        escape_overlay_path(work)
    );
    if user_namespace {
        data.push_str(",userxattr");
    }
    data
}

/// `/a/b/c` → `/a`, `/a/b`, `/a/b/c`.
fn prefixes(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        current.push('/');
        current.push_str(part);
        out.push(current.clone());
    }
    out
}

/// Where `execve` looks for `program`: itself if it has a `/`, else each `$PATH` directory of the container's
/// environment (Docker's default `$PATH` if unset), as `execvp` would inside the container.
fn exec_candidates(program: &str, env: &[String]) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_owned()];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|var| var.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
        .collect()
}

/// overlayfs option values escape `,` and `:` with a backslash.
fn escape_overlay_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::User;

    fn container(network: Network) -> Container {
        Container {
            rootfs: RootFs::Directory(PathBuf::from("/img")),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/bin:/usr/bin".into()],
            cwd: "/work/dir".into(),
            user: User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10],
            },
            hostname: "box".into(),
            network,
            ..Container::default()
        }
    }

    fn etc() -> EtcFiles {
        EtcFiles {
            hosts: "/run/h".into(),
            resolv_conf: "/run/r".into(),
            hostname: "/run/n".into(),
        }
    }

    fn plan(network: Network) -> Vec<String> {
        Plan::build(
            &container(network),
            Path::new("/mnt/root"),
            &etc(),
            StartOptions::default(),
        )
        .unwrap()
        .ops
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn devices_are_refused_except_the_bound_nodes_unless_the_step_is_privileged() {
        let attached = |container: &Container| -> Vec<(String, bool, bool)> {
            Plan::build(
                container,
                Path::new("/mnt/root"),
                &etc(),
                StartOptions::default(),
            )
            .unwrap()
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::AttachTree {
                    target,
                    read_only,
                    nodev,
                    ..
                } => Some((target.to_string_lossy().into_owned(), *read_only, *nodev)),
                _ => None,
            })
            .collect()
        };
        let default = attached(&container(Network::Host));
        assert!(default.contains(&("/dev/null".to_owned(), false, false)));
        assert!(default.contains(&("/sys".to_owned(), true, true)));
        assert!(default.contains(&("/etc/hosts".to_owned(), false, true)));
        let mut privileged = container(Network::Host);
        privileged.capabilities = Capabilities::All;
        let attached_privileged = attached(&privileged);
        assert!(attached_privileged.iter().all(|(_, _, nodev)| !nodev));
        assert!(attached_privileged.contains(&("/sys".to_owned(), false, false)));
        let ops = Plan::build(
            &privileged,
            Path::new("/mnt/root"),
            &etc(),
            StartOptions::default(),
        )
        .unwrap()
        .ops;
        assert!(!ops.iter().any(|op| matches!(
            op,
            Op::NoDevices { .. } | Op::Mask { .. } | Op::ReadOnly { .. }
        )));
    }

    #[test]
    fn host_files_are_cloned_before_pivot_and_everything_else_happens_inside_the_root() {
        let ops = plan(Network::None);
        let position = |wanted: &str| ops.iter().position(|op| op == wanted);
        let pivot = position("pivot_root into /mnt/root").unwrap();
        assert_eq!(ops[0], "start a new session");
        assert_eq!(ops[1], "make mounts private");
        assert_eq!(ops[3], "bind-mount /img on /mnt/root");
        // No device file on the root's mounts opens (hoist has no device cgroup).
        assert_eq!(ops[4], "forbid devices under /mnt/root");
        // Before the pivot: only the root itself and clones of host mount trees.
        for op in &ops[5..pivot] {
            assert!(
                op.starts_with("clone the mount tree of "),
                "{op} before pivot_root"
            );
        }
        assert!(position("clone the mount tree of /dev/null").unwrap() < pivot);
        assert!(position("clone the mount tree of /run/h").unwrap() < pivot);
        // After it, with container paths only: a symlink in the image resolves inside the root.
        let detach = position("detach the old root").unwrap();
        for op in &ops[pivot + 1..] {
            assert!(
                !op.contains("/mnt/root"),
                "{op} uses a host path after pivot_root"
            );
        }
        for wanted in [
            "mount proc on /proc",
            "attach a mount on /dev/null",
            "mount devpts on /dev/pts",
            "mount sysfs on /sys",
            "attach a mount on /etc/hosts",
            "mask /proc/kcore",
            "make /proc/sys read-only",
        ] {
            let index = position(wanted).unwrap_or_else(|| panic!("{wanted} missing: {ops:?}"));
            assert!(pivot < index && index < detach, "{wanted} out of place");
        }
        let tail: Vec<&str> = ops[detach + 1..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "set hostname box",
                "bring up the loopback interface",
                "create directory /work",
                "create directory /work/dir",
                "change directory to /work/dir",
                "join a new session keyring",
                "limit capabilities to 0xa80425fb",
                "install the seccomp filter",
                "switch to user 1000:1000",
                "execute /bin/sh",
            ]
        );
    }

    #[test]
    fn host_network_keeps_the_host_sysfs_and_no_loopback_setup() {
        let ops = plan(Network::Host);
        assert!(ops.contains(&"clone the mount tree of /sys".to_owned()));
        assert!(ops.contains(&"attach a mount on /sys".to_owned()));
        assert!(!ops.iter().any(|op| op.contains("loopback")));
    }

    #[test]
    fn a_scratch_upper_is_mounted_volatile_with_a_plain_fallback() {
        let rootfs = RootFs::Overlay {
            lower: vec!["/l1".into()],
            upper: "/u".into(),
            work: "/w".into(),
            volatile: true,
        };
        let overlay = OverlayMount::new(&rootfs, Path::new("/mnt/root"), false)
            .unwrap()
            .unwrap();
        assert!(overlay.volatile);
        assert_eq!(
            overlay.legacy,
            [
                c"lowerdir=/l1,upperdir=/u,workdir=/w,redirect_dir=off,index=off,metacopy=off,volatile"
                    .to_owned(),
                c"lowerdir=/l1,upperdir=/u,workdir=/w,volatile".to_owned(),
                c"lowerdir=/l1,upperdir=/u,workdir=/w".to_owned(),
            ]
        );
    }

    #[test]
    fn rootless_waits_for_id_maps_first_and_skips_denied_setgroups() {
        let mut rootless = container(Network::None);
        rootless.user = User::default();
        rootless.rootfs = RootFs::Overlay {
            lower: vec!["/l1".into(), "/l2".into()],
            upper: "/u".into(),
            work: "/w".into(),
            volatile: false,
        };
        let start = StartOptions {
            user_namespace: Some((7, 8)),
            single_id: true,
            ..StartOptions::default()
        };
        let plan = Plan::build(&rootless, Path::new("/mnt/root"), &etc(), start).unwrap();
        assert_eq!(plan.ops[0], Op::WaitForParent { read: 7, write: 8 });
        let overlay = plan.ops.iter().find_map(|op| match op {
            Op::MountOverlay(overlay) => Some(overlay.clone()),
            _ => None,
        });
        let overlay = overlay.unwrap();
        assert!(overlay.userxattr);
        assert_eq!(overlay.lower, [c"/l2".to_owned(), c"/l1".to_owned()]);
        assert!(!overlay.volatile);
        assert_eq!(
            overlay.legacy,
            [c"lowerdir=/l2:/l1,upperdir=/u,workdir=/w,userxattr".to_owned()]
        );
        assert!(plan.ops.iter().any(|op| matches!(
            op,
            Op::SetIds {
                set_groups: false,
                ..
            }
        )));

        let rooted = Plan::build(
            &rootless,
            Path::new("/mnt/root"),
            &etc(),
            StartOptions::default(),
        )
        .unwrap();
        assert_eq!(rooted.ops[0], Op::NewSession);
        assert!(rooted.ops.iter().any(|op| matches!(
            op,
            Op::SetIds {
                set_groups: true,
                ..
            }
        )));
    }

    #[test]
    fn commands_are_searched_along_the_container_path() {
        let env = vec!["PATH=/usr/bin:/bin/".to_owned()];
        assert_eq!(exec_candidates("ls", &env), ["/usr/bin/ls", "/bin/ls"]);
        assert_eq!(exec_candidates("./x", &env), ["./x"]);
        assert_eq!(exec_candidates("ls", &[]).len(), 6);
    }

    #[test]
    fn joins_stay_inside_the_root() {
        assert_eq!(
            join_in_root(Path::new("/r"), "/../../etc/x"),
            Path::new("/r/etc/x")
        );
        assert_eq!(join_in_root(Path::new("/r"), "a/../b"), Path::new("/r/b"));
        assert_eq!(escape_overlay_path(Path::new("/a:b,c")), "/a\\:b\\,c");
    }
}
