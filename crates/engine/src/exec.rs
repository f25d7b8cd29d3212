//! RUN steps: the [`Executor`] trait the solver calls, and [`SandboxExecutor`], its implementation on
//! hoist-sandbox (an overlay snapshot over the input's unpacked layers; the upper directory is the step's diff).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use hoist_instructions::{Network as RunNetwork, Security};
use hoist_plan::op::Exec;
use hoist_sandbox::{BindMount, Capabilities, Container, Network, Snapshot, SnapshotKind, Stdio};

use crate::error::{EngineError, Result};

/// One RUN step to execute.
#[derive(Debug)]
pub struct ExecRequest<'a> {
    /// The command, environment, user, working directory and isolation.
    pub exec: &'a Exec,
    /// The root filesystem: unpacked layer directories, bottom first (read-only; changes go elsewhere).
    pub lower: &'a [PathBuf],
    /// A directory for the step's scratch space (upper and work directories, inline files).
    pub scratch: &'a Path,
    /// `RUN --mount`s, prepared as host directories (see [`RunMount`]).
    pub mounts: &'a [RunMount],
    /// `NAME=value` the mounts add (secret mounts with `env=`, `SSH_AUTH_SOCK` for ssh mounts): in the
    /// environment, never in the cache key.
    pub secret_env: &'a [String],
}

/// A `RUN --mount` made ready by the solver: a host directory or file to bind at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// The host path: the context directory, a copy of another stage's files, a cache directory, an empty
    /// directory for tmpfs.
    pub source: PathBuf,
    /// The absolute path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What a finished step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOutcome {
    /// Entries in the diff written (for [`Diff::Directory`], at its top); 0 means the step changed nothing.
    pub entries: u64,
}

/// Where a step's filesystem changes go.
pub enum Diff<'a> {
    /// Written as an uncompressed layer tar, whiteouts as `.wh.` entries.
    Tar(&'a mut (dyn Write + Send)),
    /// Kept as a directory in overlayfs's format (whiteouts as 0/0 character devices, opaque directories marked
    /// with the `overlay.opaque` attribute), created at this path, which must not exist yet and is on the file
    /// system of the request's scratch directory. Its tar is written later, and only if an export needs it: it must
    /// then be, byte for byte, the one [`Diff::Tar`] would have received (`hoist_layer::write_layer` over the
    /// directory with `SourceKind::OverlayUpper`).
    Directory(&'a Path),
}

/// Runs RUN steps: executes `request` on a writable root prepared from its lower layers, streams the command's
/// output to `logs`, and hands the filesystem changes to `diff`. A non-zero exit is [`EngineError::ExecFailed`].
pub trait Executor: Sync {
    /// Runs one step.
    fn execute(
        &self,
        request: &ExecRequest<'_>,
        logs: &(dyn Fn(&[u8]) + Sync),
        diff: Diff<'_>,
    ) -> Result<ExecOutcome>;

    /// Whether [`execute`](Executor::execute) takes [`Diff::Directory`] (else the solver only passes
    /// [`Diff::Tar`]).
    fn keeps_directories(&self) -> bool {
        false
    }
}

/// The [`Executor`] on hoist-sandbox: namespaces, `pivot_root`, overlayfs (or a copy where overlayfs is missing).
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxExecutor;

fn sandbox_error(what: &str) -> impl FnOnce(hoist_sandbox::Error) -> EngineError + '_ {
    move |source| EngineError::Sandbox {
        what: what.to_owned(),
        source: Box::new(source),
    }
}

impl Executor for SandboxExecutor {
    /// Overlay snapshots keep their upper directory (a copy snapshot, on a kernel without overlayfs, diffs into
    /// one too, but a tar written once is as cheap there).
    fn keeps_directories(&self) -> bool {
        SnapshotKind::detect() == SnapshotKind::Overlay
    }

    fn execute(
        &self,
        request: &ExecRequest<'_>,
        logs: &(dyn Fn(&[u8]) + Sync),
        diff: Diff<'_>,
    ) -> Result<ExecOutcome> {
        let exec = request.exec;
        let snapshot = Snapshot::from_layers(
            distinct_layers(request.lower),
            request.scratch,
            SnapshotKind::detect(),
        )
        .map_err(sandbox_error("failed to prepare the root filesystem"))?;
        let text = |path: &str| {
            String::from_utf8_lossy(&snapshot.read_file(path).unwrap_or_default()).into_owned()
        };
        let user =
            hoist_sandbox::resolve_user(&exec.user, &text("/etc/passwd"), &text("/etc/group"))
                .map_err(sandbox_error("failed to resolve the user"))?;

        let inline_dir = tempfile::Builder::new()
            .prefix("inline-")
            .tempdir_in(request.scratch)
            .map_err(|e| EngineError::io("create a directory in", request.scratch, e))?;
        let mut mounts: Vec<BindMount> = request
            .mounts
            .iter()
            .map(|m| BindMount {
                source: m.source.clone(),
                destination: m.target.clone(),
                read_only: m.read_only,
            })
            .collect();
        for (i, file) in exec.inline_files.iter().enumerate() {
            let path = inline_dir.path().join(i.to_string());
            std::fs::write(&path, &file.content).map_err(|e| EngineError::io("write", &path, e))?;
            std::fs::set_permissions(
                &path,
                std::os::unix::fs::PermissionsExt::from_mode(file.mode),
            )
            .map_err(|e| EngineError::io("set the mode of", &path, e))?;
            mounts.push(BindMount {
                source: path,
                destination: file.path.clone(),
                read_only: true,
            });
        }

        let mut env = exec.env.clone();
        env.extend(exec.proxy_env.iter().map(|(k, v)| format!("{k}={v}")));
        env.extend(request.secret_env.iter().cloned());
        user.set_home_if_unset(&mut env);
        let container = Container {
            rootfs: snapshot.rootfs(),
            args: exec.args.clone(),
            env,
            cwd: if exec.cwd.is_empty() {
                "/".to_owned()
            } else {
                exec.cwd.clone()
            },
            user: user.user,
            hostname: "buildkitsandbox".to_owned(),
            network: match exec.network {
                RunNetwork::None => Network::None,
                RunNetwork::Default | RunNetwork::Host => Network::Host,
            },
            mounts,
            capabilities: match exec.security {
                Security::Insecure => Capabilities::All,
                Security::Sandbox => Capabilities::Default,
            },
            ..Container::default()
        };

        let (mut reader, writer) =
            std::io::pipe().map_err(|e| EngineError::io("create a pipe in", request.scratch, e))?;
        let stdout: OwnedFd = writer
            .try_clone()
            .map_err(|e| EngineError::io("create a pipe in", request.scratch, e))?
            .into();
        let stderr: OwnedFd = writer.into();
        let status = std::thread::scope(|scope| {
            let forward = scope.spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    logs(&buf[..n]);
                }
            });
            let status = container.run(Stdio {
                stdin: None,
                stdout: Some(stdout),
                stderr: Some(stderr),
            });
            let _ = forward.join();
            status
        })
        .map_err(sandbox_error("failed to run the step"))?;
        if status.code() != 0 {
            return Err(EngineError::ExecFailed {
                args: exec.args.clone(),
                code: status.code(),
            });
        }
        // What is mounted over is the mount's, not the step's: the mount points stay out of the layer, and so do
        // the directories that were only copied up to hold them (current BuildKit removes its mount stubs and
        // keeps their parents' times, so `RUN true` on a base without `/etc/hosts` adds no layer).
        let mount_points: Vec<&str> = request
            .mounts
            .iter()
            .map(|m| m.target.as_str())
            .chain(exec.inline_files.iter().map(|f| f.path.as_str()))
            .chain(hoist_sandbox::EXCLUDED_FROM_DIFF.iter().copied())
            .collect();
        let stub_parents = stub_parents(&snapshot.upper(), request.lower, &mount_points);
        let excluded: Vec<&str> = mount_points
            .iter()
            .copied()
            .chain(stub_parents.iter().map(String::as_str))
            .collect();
        let entries = match diff {
            Diff::Tar(out) => {
                let options = excluded
                    .iter()
                    .fold(hoist_layer::WriteOptions::new(), |o, target| {
                        o.with_exclude(target)
                    });
                snapshot
                    .write_diff(out, options)
                    .map_err(sandbox_error("failed to write the step's changes"))?
                    .entries
            }
            Diff::Directory(dest) => snapshot
                .keep_upper(dest, &excluded)
                .map_err(sandbox_error("failed to keep the step's changes"))?,
        };
        Ok(ExecOutcome { entries })
    }
}

/// The layer directories with each one kept once, at its topmost place: overlayfs refuses a lower directory
/// listed twice (`ELOOP`), and a build can stack the same layer twice (the same COPY repeated, two steps that
/// changed nothing the same way). Applying a layer again on top makes its earlier copy redundant.
fn distinct_layers(lower: &[PathBuf]) -> Vec<PathBuf> {
    let mut kept: Vec<PathBuf> = Vec::with_capacity(lower.len());
    for (i, dir) in lower.iter().enumerate() {
        if !lower[i + 1..].contains(dir) {
            kept.push(dir.clone());
        }
    }
    kept
}

/// Relative path without the leading `/` and `.` components.
fn relative(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Directories of the upper layer that hold nothing but mount points (or other such directories) and that the
/// step did not change: absent from the lower layers (made for a mount point) or there with the same type, mode
/// and owner, and not made opaque. Only their times changed, when the mount points were created in them.
fn stub_parents(upper: &Path, lower: &[PathBuf], mount_points: &[&str]) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut skip: std::collections::BTreeSet<String> =
        mount_points.iter().map(|p| relative(p)).collect();
    let mut candidates: Vec<String> = Vec::new();
    for point in &skip {
        let mut parent = point.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            if !candidates.iter().any(|c| c == dir) {
                candidates.push(dir.to_owned());
            }
            parent = dir;
        }
    }
    // Deepest first, so a directory whose only child is an untouched directory is seen after that child.
    candidates.sort_by_key(|c| std::cmp::Reverse(c.matches('/').count()));
    let mut untouched = Vec::new();
    for dir in candidates {
        let path = upper.join(&dir);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || is_opaque(&path) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        let only_stubs = entries
            .flatten()
            .all(|entry| skip.contains(&format!("{dir}/{}", entry.file_name().to_string_lossy())));
        if !only_stubs {
            continue;
        }
        let below = lower
            .iter()
            .rev()
            .find_map(|layer| std::fs::symlink_metadata(layer.join(&dir)).ok());
        let same = below.is_none_or(|old| {
            old.is_dir()
                && old.mode() == meta.mode()
                && old.uid() == meta.uid()
                && old.gid() == meta.gid()
        });
        if same {
            skip.insert(dir.clone());
            untouched.push(dir);
        }
    }
    untouched
}

/// Whether overlayfs marked `dir` opaque (as root: `trusted.overlay.opaque`; in a user namespace: `user.`).
fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 8];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| rustix::fs::lgetxattr(dir, *name, &mut value).is_ok())
}
