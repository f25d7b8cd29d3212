//! [`Container`]: what to run and how it is isolated; [`Container::run`] starts it, forwards signals, and waits.

use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions, kill_process, pidfd_open, waitpid};

use crate::error::{Error, Result};
use crate::plan::{EtcFiles, Op, Plan, StartOptions};
use crate::proxy::{Listener, PortMapping, Proxy};
use crate::sys;

/// The root file system of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootFs {
    /// A plain directory, bind-mounted (changes are made in place).
    Directory(PathBuf),
    /// An overlay of read-only layer directories (bottom first) with a writable upper directory; `work` is
    /// overlayfs's scratch directory on the same file system as `upper`.
    Overlay {
        /// Layer directories, bottom layer first.
        lower: Vec<PathBuf>,
        /// Receives every change.
        upper: PathBuf,
        /// overlayfs's work directory.
        work: PathBuf,
        /// The upper directory is scratch, thrown away with the container (every [`Snapshot`](crate::Snapshot)'s
        /// is): mount with overlayfs's `volatile` option, so unmounting does not sync the whole file system that
        /// holds it (Linux 5.10+; where the kernel lacks the option the overlay is mounted without it). After a
        /// crash such an upper directory cannot be mounted again, which does not matter for scratch.
        volatile: bool,
    },
}

/// The network a container sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network namespace: outbound access, as BuildKit's RUN steps have without CNI.
    #[default]
    Host,
    /// A network namespace of its own with only a loopback interface: `--network none`, and the namespace
    /// published ports are proxied into.
    None,
}

/// The identity the command runs as, already resolved (see [`resolve_user`](crate::resolve_user)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
}

/// The capabilities the command may have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Capabilities {
    /// Docker's default set ([`DEFAULT_CAPABILITIES`](crate::DEFAULT_CAPABILITIES)); the rest are dropped from the
    /// bounding set.
    #[default]
    Default,
    /// Privileged, as BuildKit's `--security=insecure`: every capability, device files usable (and the host's
    /// [`PRIVILEGED_DEVICES`](crate::PRIVILEGED_DEVICES) bound into `/dev`), no masked or read-only path, a
    /// writable `/sys`.
    All,
}

/// A host path bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The host file or directory.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Descriptors for the command's standard input, output and error; `None` inherits hoist's.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Standard input.
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: Option<OwnedFd>,
    /// Standard error.
    pub stderr: Option<OwnedFd>,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// The exit code as a shell (and `docker run`) reports it: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(signal) => 128 + signal,
        }
    }
}

/// A container to run: its root file system, command, environment and isolation.
#[derive(Debug, Clone)]
pub struct Container {
    /// The root file system.
    pub rootfs: RootFs,
    /// The command and its arguments (already the image's entrypoint + cmd). The command is searched along the
    /// container's `$PATH` when it has no `/`.
    pub args: Vec<String>,
    /// The environment, `KEY=value`.
    pub env: Vec<String>,
    /// The working directory inside the container (created if missing, as Docker does).
    pub cwd: String,
    /// Who the command runs as.
    pub user: User,
    /// The host name in the container's UTS namespace (and in its `/etc/hosts` and `/etc/hostname`).
    pub hostname: String,
    /// The network.
    pub network: Network,
    /// Extra bind mounts.
    pub mounts: Vec<BindMount>,
    /// Published ports: host TCP ports proxied to the container's loopback (needs [`Network::None`]).
    pub ports: Vec<PortMapping>,
    /// The capabilities the command may have.
    pub capabilities: Capabilities,
    /// Standard input is a pseudo-terminal (see [`Terminal`](crate::Terminal), `hoist run -t`) that becomes the
    /// controlling terminal of the command's session. Either way the command runs in a session of its own.
    pub terminal: bool,
    /// After a forwarded termination signal, how long the command may take to exit before it is killed.
    pub stop_timeout: Duration,
}

impl Default for Container {
    fn default() -> Self {
        Self {
            rootfs: RootFs::Directory(PathBuf::new()),
            args: Vec::new(),
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: User::default(),
            hostname: "hoist".to_owned(),
            network: Network::Host,
            mounts: Vec::new(),
            ports: Vec::new(),
            capabilities: Capabilities::Default,
            terminal: false,
            stop_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) fn prepare(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Prepare {
        action,
        path,
        source,
    }
}

pub(crate) fn system(action: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::System { action, source }
}

/// Writes `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` for the container into `dir`.
pub(crate) fn write_etc_files(container: &Container, dir: &Path) -> Result<EtcFiles> {
    let files = EtcFiles {
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
        hostname: dir.join("hostname"),
    };
    let name = &container.hostname;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n"
    );
    fs::write(&files.hosts, hosts).map_err(prepare("write", &files.hosts))?;
    // The host's resolver configuration, as Docker copies it; a private network namespace has no resolver.
    let resolv = match container.network {
        Network::Host => fs::read("/etc/resolv.conf").unwrap_or_default(),
        Network::None => Vec::new(),
    };
    fs::write(&files.resolv_conf, resolv).map_err(prepare("write", &files.resolv_conf))?;
    fs::write(&files.hostname, format!("{name}\n")).map_err(prepare("write", &files.hostname))?;
    Ok(files)
}

impl Container {
    /// Runs the container to completion with `stdio`, and returns how its command ended.
    ///
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to this process while it waits are forwarded to the command; if it
    /// has not exited [`stop_timeout`](Container::stop_timeout) later (or a second signal arrives), it is killed.
    /// When the command (PID 1 of the container's PID namespace) ends, the kernel kills every other process in the
    /// container, and its mount namespace, with every mount made for it, disappears.
    pub fn run(&self, stdio: Stdio) -> Result<ExitStatus> {
        self.run_and_notify(stdio, &mut |_| {})
    }

    /// [`run`](Container::run), calling `started` with the host pid of the container's PID 1 once its command has
    /// been executed and its ports are published (`hoist run -d` records it then, for `hoist stop`).
    pub fn run_and_notify(&self, stdio: Stdio, started: &mut dyn FnMut(u32)) -> Result<ExitStatus> {
        if !self.ports.is_empty() && self.network == Network::Host {
            return Err(Error::Publish {
                host: self.ports[0].to_string(),
                source: io::Error::other("published ports need a network namespace (network none)"),
            });
        }
        let state = tempfile::Builder::new()
            .prefix("hoist-sandbox-")
            .tempdir()
            .map_err(prepare("create", &std::env::temp_dir()))?;
        let root = state.path().join("rootfs");
        fs::create_dir(&root).map_err(prepare("create", &root))?;
        let etc = write_etc_files(self, state.path())?;
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map(AsRawFd::as_raw_fd);
        let rootless = !rustix::process::geteuid().is_root();
        let id_maps = rootless.then(IdMaps::for_caller);
        let sync = match rootless {
            true => Some(
                rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                    .map_err(|e| system("create a pipe")(e.into()))?,
            ),
            false => None,
        };
        let start = StartOptions {
            stdio: [raw(&stdio.stdin), raw(&stdio.stdout), raw(&stdio.stderr)],
            user_namespace: sync.as_ref().map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd())),
            single_id: id_maps.as_ref().is_some_and(IdMaps::is_single),
        };
        crate::plan::clear_volatile_marker(&self.rootfs)?;
        let plan = Plan::build(self, &root, &etc, start)?;
        let listeners = self
            .ports
            .iter()
            .map(PortMapping::bind)
            .collect::<Result<Vec<_>>>()?;

        let (report_read, report_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| system("create a pipe")(e.into()))?;
        let (signals, old_mask) =
            sys::block_forwarded_signals().map_err(system("block signals"))?;
        let child = ChildPipes {
            report_read,
            report_write,
            sync,
            id_maps,
        };
        let result = self.start_and_wait(&plan, child, &signals, listeners, started);
        sys::restore_signal_mask(&old_mask);
        drop(stdio);
        result
    }

    fn start_and_wait(
        &self,
        plan: &Plan,
        child: ChildPipes,
        signals: &OwnedFd,
        listeners: Vec<(PortMapping, Listener)>,
        started: &mut dyn FnMut(u32),
    ) -> Result<ExitStatus> {
        let ChildPipes {
            report_read,
            report_write,
            sync,
            id_maps,
        } = child;
        let flags = sys::CloneFlags {
            network: self.network != Network::Host,
            user: sync.is_some(),
        };
        let pid = sys::clone_container(flags, plan, &report_write)
            .map_err(system("clone the container process"))?;
        drop(report_write);
        let pid = Pid::from_raw(pid).expect("clone returned a positive pid");
        if let (Some((sync_read, sync_write)), Some(id_maps)) = (sync, id_maps) {
            drop(sync_read);
            let mapped = id_maps.write(pid).and_then(|()| {
                rustix::io::write(&sync_write, &[1])
                    .map(drop)
                    .map_err(io::Error::from)
            });
            if let Err(source) = mapped {
                kill_and_reap(pid);
                return Err(Error::System {
                    action: "set up the user namespace",
                    source,
                });
            }
        }
        tracing::debug!(pid = pid.as_raw_nonzero().get(), "container started");

        let mut report = Vec::new();
        let read = std::fs::File::from(report_read).read_to_end(&mut report);
        if report.len() >= sys::REPORT_SIZE {
            let _ = waitpid(Some(pid), WaitOptions::empty());
            let index = u32::from_ne_bytes(report[..4].try_into().expect("four bytes"));
            let errno = i32::from_ne_bytes(report[4..8].try_into().expect("four bytes"));
            let source = io::Error::from_raw_os_error(errno);
            let op = plan.ops.get(index as usize);
            return Err(match op {
                Some(Op::Exec { .. }) => Error::Exec {
                    program: self.args.first().cloned().unwrap_or_default(),
                    source,
                },
                Some(op) => Error::Setup {
                    step: op.to_string(),
                    source,
                },
                None => Error::Setup {
                    step: format!("step {index}"),
                    source,
                },
            });
        }
        if let Err(source) = read {
            kill_and_reap(pid);
            return Err(Error::System {
                action: "read the setup report",
                source,
            });
        }

        let proxy = if listeners.is_empty() {
            None
        } else {
            match Proxy::start(pid, listeners) {
                Ok(proxy) => Some(proxy),
                Err(error) => {
                    kill_and_reap(pid);
                    return Err(error);
                }
            }
        };
        started(pid.as_raw_nonzero().get().unsigned_abs());
        let kill = |pidfd: &OwnedFd| {
            let _ = rustix::process::pidfd_send_signal(pidfd.as_fd(), Signal::KILL);
        };
        let status = wait_forwarding_signals(pid, signals, self.stop_timeout, &kill);
        if let Some(proxy) = proxy {
            proxy.stop();
        }
        status
    }
}

/// Waits for `pid` to exit, forwarding the signals read from `signals` to it; `kill` (given its pidfd) ends it
/// `stop_timeout` after the first signal, or at the second.
pub(crate) fn wait_forwarding_signals(
    pid: Pid,
    signals: &OwnedFd,
    stop_timeout: Duration,
    kill: &dyn Fn(&OwnedFd),
) -> Result<ExitStatus> {
    {
        let pidfd =
            pidfd_open(pid, PidfdFlags::empty()).map_err(|e| system("open a pidfd")(e.into()))?;
        let mut kill_at: Option<Instant> = None;
        loop {
            let timeout = kill_at.map(|deadline| {
                let left = deadline.saturating_duration_since(Instant::now());
                rustix::event::Timespec {
                    tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(left.subsec_nanos()),
                }
            });
            let mut fds = [
                PollFd::new(&pidfd, PollFlags::IN),
                PollFd::new(signals, PollFlags::IN),
            ];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(system("wait for the container")(errno.into())),
            }
            let exited = !fds[0].revents().is_empty();
            let signalled = !fds[1].revents().is_empty();
            if exited {
                return reap(pid);
            }
            if signalled {
                while let Some(signal) = sys::read_signal(signals) {
                    let forwarded = Signal::from_named_raw(signal).unwrap_or(Signal::TERM);
                    if kill_at.is_some() {
                        tracing::debug!(signal, "second signal: killing the container");
                        kill(&pidfd);
                    } else {
                        tracing::debug!(signal, "forwarding signal to the container");
                        let _ = rustix::process::pidfd_send_signal(pidfd.as_fd(), forwarded);
                        kill_at = Some(Instant::now() + stop_timeout);
                    }
                }
            }
            if let Some(deadline) = kill_at
                && Instant::now() >= deadline
            {
                tracing::debug!("stop timeout reached: killing the container");
                kill(&pidfd);
                kill_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }
}

/// The pipes between parent and child.
struct ChildPipes {
    /// Error report from the child (end of file: `execve` succeeded).
    report_read: OwnedFd,
    report_write: OwnedFd,
    /// Rootless: the child waits on it for its id maps.
    sync: Option<(OwnedFd, OwnedFd)>,
    id_maps: Option<IdMaps>,
}

/// The id maps of a rootless container's user namespace: the caller is root inside; with `newuidmap` and
/// `newgidmap` installed and subordinate ids in `/etc/subuid` and `/etc/subgid`, ids 1… map to those ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdMaps {
    uid: u32,
    gid: u32,
    /// (helper, first subordinate id, count) for uids and gids.
    sub_uids: Option<(PathBuf, u32, u32)>,
    sub_gids: Option<(PathBuf, u32, u32)>,
}

impl IdMaps {
    fn for_caller() -> IdMaps {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let name = fs::read_to_string("/etc/passwd").ok().and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.get(2) == Some(&uid.to_string().as_str())).then(|| fields[0].to_owned())
            })
        });
        let helper = |program: &str, file: &str, id: u32| {
            let path = std::env::var_os("PATH")?;
            let helper = std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())?;
            let ranges = fs::read_to_string(file).ok()?;
            ranges.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                let owner = *fields.first()?;
                if owner != id.to_string() && Some(owner) != name.as_deref() {
                    return None;
                }
                Some((
                    helper.clone(),
                    fields.get(1)?.parse().ok()?,
                    fields.get(2)?.parse().ok()?,
                ))
            })
        };
        let sub_uids = helper("newuidmap", "/etc/subuid", uid);
        let sub_gids = helper("newgidmap", "/etc/subgid", gid);
        let both = sub_uids.is_some() && sub_gids.is_some();
        IdMaps {
            uid,
            gid,
            sub_uids: if both { sub_uids } else { None },
            sub_gids: if both { sub_gids } else { None },
        }
    }

    fn is_single(&self) -> bool {
        self.sub_uids.is_none()
    }

    /// Writes the maps of the user namespace of `pid`.
    fn write(&self, pid: Pid) -> io::Result<()> {
        let proc = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
        match (&self.sub_uids, &self.sub_gids) {
            (Some(uids), Some(gids)) => {
                for ((helper, first, count), own) in [(uids, self.uid), (gids, self.gid)] {
                    let status = std::process::Command::new(helper)
                        .arg(pid.as_raw_nonzero().to_string())
                        .args([
                            "0",
                            &own.to_string(),
                            "1",
                            "1",
                            &first.to_string(),
                            &count.to_string(),
                        ])
                        .status()?;
                    if !status.success() {
                        return Err(io::Error::other(format!(
                            "{} failed: {status}",
                            helper.display()
                        )));
                    }
                }
                Ok(())
            }
            _ => {
                fs::write(proc.join("uid_map"), format!("0 {} 1\n", self.uid))?;
                fs::write(proc.join("setgroups"), "deny")?;
                fs::write(proc.join("gid_map"), format!("0 {} 1\n", self.gid))
            }
        }
    }
}

pub(crate) fn reap(pid: Pid) -> Result<ExitStatus> {
    loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(ExitStatus::Exited(code));
                }
                if let Some(signal) = status.terminating_signal() {
                    return Ok(ExitStatus::Signaled(signal));
                }
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(system("wait for the container")(errno.into())),
        }
    }
}

fn kill_and_reap(pid: Pid) {
    let _ = kill_process(pid, Signal::KILL);
    let _ = waitpid(Some(pid), WaitOptions::empty());
}
