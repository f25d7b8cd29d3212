//! hoist-sandbox: hoist's own container runtime, for `RUN` steps and `hoist run`, with no daemon and no external
//! runtime.
//!
//! The one idea: **the parent decides, the child only executes.** [`Container::run`] turns a [`Container`] into a
//! plan of mounts, id changes and an `execve` (every string prepared in advance), then `clone(2)`s one child into
//! new mount, PID, UTS and IPC namespaces (a user namespace when not root, a network namespace for
//! [`Network::None`]). The child makes its mounts private, assembles the root (overlay or bind), clones the host
//! files it needs as detached mounts, `pivot_root`s, and only then, with container paths (so no symlink in the
//! image can reach the host), mounts `/proc`, a minimal `/dev`, a read-only `/sys` and the generated `/etc/hosts`,
//! `/etc/resolv.conf`, `/etc/hostname`, masks what runc masks, drops capabilities to Docker's set, switches user
//! and execs the command as PID 1. When it exits the kernel kills the rest of the container and drops its mount
//! namespace, so nothing is left on the host. [`Snapshot`] provides root file systems from an image's layers (each
//! unpacked once into the store, stacked with overlayfs, or copied where overlayfs is missing) and turns the
//! changes into the step's layer. [`Container::run_with_runtime`] runs the same container through `runc`.
//! [`launch`] is `hoist run` as library calls (a plain-data [`launch::RunRequest`] run in the foreground or
//! detached under a supervisor, with Docker's exit codes), and [`control`] is `ps`, `stop`, `rm` and `logs` on the
//! recorded containers. `docs/sandbox.md` explains the choices.
//!
//! `sys` is the only module with `unsafe` code.
//!
//! # Example
//!
//! ```no_run
//! use hoist_sandbox::{Container, Network, Snapshot, Stdio, resolve_user};
//! use hoist_oci::Store;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("/var/lib/hoist")?;
//! let image = store.read_image("busybox:latest")?;
//! let snapshot = Snapshot::new(&store, &image, "/var/tmp/hoist".as_ref())?;
//! let passwd = String::from_utf8(snapshot.read_file("/etc/passwd").unwrap_or_default())?;
//! let group = String::from_utf8(snapshot.read_file("/etc/group").unwrap_or_default())?;
//! let container = Container {
//!     rootfs: snapshot.rootfs(),
//!     args: vec!["sh".into(), "-c".into(), "echo hi > /greeting".into()],
//!     env: vec!["PATH=/bin".into()],
//!     user: resolve_user("1000", &passwd, &group)?.user,
//!     network: Network::None,
//!     ..Container::default()
//! };
//! let status = container.run(Stdio::default())?;
//! let mut layer = Vec::new();
//! snapshot.write_diff(&mut layer, hoist_layer::WriteOptions::new())?;
//! println!("exit {} and a {}-byte layer", status.code(), layer.len());
//! # Ok(()) }
//! ```

pub use container::{BindMount, Capabilities, Container, ExitStatus, Network, RootFs, Stdio, User};
pub use containers::{
    CONTAINERS_DIR, ContainerError, ContainerRecord, ContainerState, ContainerStore,
    EXIT_SUPERVISOR_DIED, LogEntry, LogReader, LogStream, LogWriter, NewContainer, SupervisorLock,
};
pub use error::{Error, Result};
pub use plan::{
    DEFAULT_CAPABILITIES, DEFAULT_PATH, DEVICES, MASKED_PATHS, PRIVILEGED_DEVICES, READONLY_PATHS,
};
pub use proxy::{PortMapping, Protocol, UDP_IDLE_TIMEOUT};
pub use run_options::{OptionError, parse_env_file, parse_signal, parse_volume, read_env_file};
pub use snapshot::{
    EXCLUDED_FROM_DIFF, Snapshot, SnapshotKind, can_hold_upper, kept_dir, kept_key, layer_key,
    overlay_supported, unpack_layers,
};
pub use terminal::{Attached, Terminal};
pub use user::{ResolvedUser, resolve_user};

pub mod control;
pub mod launch;

mod container;
mod containers;
mod copy;
mod error;
mod plan;
mod proxy;
mod run_options;
mod runc;
mod seccomp;
mod snapshot;
mod sys;
mod terminal;
mod user;
