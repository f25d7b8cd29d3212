//! `RUN --mount`s made into host paths before a step runs: cache directories, tmpfs scratch, bind sources,
//! secrets, SSH agent relays.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hoist_instructions::{MountType, Sharing};
use hoist_oci::Area;
use hoist_plan::op::CopySource;
use rustix::fs::FlockOperation;

use crate::cache::CacheKey;
use crate::copy::{self, Tree};
use crate::error::{EngineError, Result};
use crate::exec::RunMount;
use crate::solver::{OpResult, Output, SolveRequest, Solver, context_tree};
use crate::ssh::{DEFAULT_SSH_ID, SshRelay};
use crate::view::{self, LayerView};

/// A step's mounts as host paths, with the temporary directories that hold them (deleted when this is dropped,
/// after the step).
pub(crate) struct PreparedMounts {
    pub(crate) mounts: Vec<RunMount>,
    /// Environment the mounts add: secrets with `env=`, and `SSH_AUTH_SOCK` for ssh mounts.
    pub(crate) secret_env: Vec<String>,
    _holders: Vec<Option<tempfile::TempDir>>,
    /// SSH agent relays, stopped after the step.
    _relays: Vec<SshRelay>,
    /// `sharing=locked|private` cache locks, released after the step.
    _locks: Vec<fs::File>,
}

impl Solver<'_> {
    /// Host directories for a step's `--mount`s; each comes with the temporary directory it lives in, if any,
    /// which must outlive the step.
    pub(crate) fn prepare_mounts(
        &self,
        request: &SolveRequest<'_>,
        exec: &hoist_plan::op::Exec,
        inputs: &[OpResult],
    ) -> Result<PreparedMounts> {
        let mut prepared = Vec::new();
        let mut secret_env = Vec::new();
        let mut held = Vec::new();
        let mut relays = Vec::new();
        let mut ssh_index = 0usize;
        for planned in &exec.mounts {
            let mount = &planned.mount;
            let (source, holder, read_only) = match mount.kind {
                MountType::Cache => {
                    let id = if mount.id.is_empty() {
                        &mount.target
                    } else {
                        &mount.id
                    };
                    let key = format!(
                        "mount-{}",
                        CacheKey::compute(id.as_bytes(), &[], None).hex()
                    );
                    let dir = match self
                        .store
                        .use_entry(Area::Cache, &key)
                        .map_err(|e| EngineError::store("failed to open a cache mount", e))?
                    {
                        Some(dir) => dir,
                        None => {
                            let entry = self.store.begin_entry(Area::Cache, &key).map_err(|e| {
                                EngineError::store("failed to create a cache mount", e)
                            })?;
                            let path = entry.path().to_path_buf();
                            let mode = mount.mode.unwrap_or(0o755);
                            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                                .map_err(|e| EngineError::io("set the mode of", &path, e))?;
                            std::os::unix::fs::chown(
                                &path,
                                Some(mount.uid.unwrap_or(0)),
                                Some(mount.gid.unwrap_or(0)),
                            )
                            .map_err(|e| EngineError::io("change the owner of", &path, e))?;
                            entry.commit().map_err(|e| {
                                EngineError::store("failed to create a cache mount", e)
                            })?
                        }
                    };
                    // `sharing=locked` waits for other users of the cache; `private` takes a fresh directory
                    // when it is in use. The lock files live in the scratch directory, beside no store data.
                    let sharing = mount.sharing.unwrap_or(Sharing::Shared);
                    if sharing == Sharing::Shared {
                        (dir, None, mount.read_only)
                    } else {
                        let locks = self.scratch.join("cache-locks");
                        fs::create_dir_all(&locks)
                            .map_err(|e| EngineError::io("create", &locks, e))?;
                        let path = locks.join(format!("{key}.lock"));
                        let file = fs::File::create(&path)
                            .map_err(|e| EngineError::io("create", &path, e))?;
                        let operation = if sharing == Sharing::Locked {
                            FlockOperation::LockExclusive
                        } else {
                            FlockOperation::NonBlockingLockExclusive
                        };
                        match rustix::fs::flock(&file, operation) {
                            Ok(()) => {
                                held.push(file);
                                (dir, None, mount.read_only)
                            }
                            Err(_) if sharing == Sharing::Private => {
                                let fresh = self.staging()?;
                                (fresh.path().to_path_buf(), Some(fresh), mount.read_only)
                            }
                            Err(e) => return Err(EngineError::io("lock", &path, e.into())),
                        }
                    }
                }
                MountType::Tmpfs => {
                    let dir = self.staging()?;
                    (dir.path().to_path_buf(), Some(dir), false)
                }
                MountType::Bind => {
                    let input = planned.input.and_then(|i| inputs.get(i)).ok_or_else(|| {
                        EngineError::invalid(format!(
                            "RUN --mount target {} has no source",
                            mount.target
                        ))
                    })?;
                    match &input.output {
                        Output::Context { root, .. } if mount.read_only => {
                            let source = root.join(view::clean(Path::new(&mount.source)));
                            (source, None, true)
                        }
                        output => {
                            // A copy: a writable bind's changes are discarded, and a stage's files need merging.
                            let tree = match output {
                                Output::Context { root, ignore } => context_tree(root, ignore)?,
                                Output::Layers(layers) => Tree::Layers {
                                    view: LayerView::new(view::unpack(self.store, layers)?),
                                },
                            };
                            let dir = self.staging()?;
                            let selection = hoist_plan::op::FileCopy {
                                from: hoist_plan::op::CopyFrom::Context("mount".to_owned()),
                                sources: vec![CopySource::Path {
                                    path: format!("/{}", mount.source.trim_start_matches('/')),
                                    input: 0,
                                }],
                                dest: "/".to_owned(),
                                chown: None,
                                chmod: None,
                                link: false,
                                parents: false,
                                exclude: Vec::new(),
                                unpack: Some(false),
                                checksum: None,
                                keep_git_dir: false,
                            };
                            copy::copy(
                                &selection,
                                false,
                                &[Some(tree)],
                                &LayerView::default(),
                                &LayerView::default(),
                                dir.path(),
                            )?;
                            (dir.path().to_path_buf(), Some(dir), mount.read_only)
                        }
                    }
                }
                MountType::Secret => {
                    // BuildKit: the id is `id`, else `source`, else the target's file name.
                    let id = [&mount.id, &mount.source]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .cloned()
                        .unwrap_or_else(|| {
                            Path::new(&mount.target)
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        });
                    let Some(value) = request.secrets.get(&id) else {
                        if mount.required {
                            return Err(EngineError::invalid(format!("secret {id} not found")));
                        }
                        continue;
                    };
                    if let Some(name) = &mount.env {
                        let name = if name.is_empty() { &id } else { name };
                        secret_env.push(format!("{name}={}", String::from_utf8_lossy(value)));
                        if mount.target.is_empty() {
                            continue;
                        }
                    }
                    let dir = self.staging()?;
                    let path = dir.path().join("secret");
                    fs::write(&path, value).map_err(|e| EngineError::io("write", &path, e))?;
                    fs::set_permissions(
                        &path,
                        fs::Permissions::from_mode(mount.mode.unwrap_or(0o400)),
                    )
                    .map_err(|e| EngineError::io("set the mode of", &path, e))?;
                    std::os::unix::fs::chown(
                        &path,
                        Some(mount.uid.unwrap_or(0)),
                        Some(mount.gid.unwrap_or(0)),
                    )
                    .map_err(|e| EngineError::io("change the owner of", &path, e))?;
                    let target = if mount.target.is_empty() {
                        format!("/run/secrets/{id}")
                    } else {
                        mount.target.clone()
                    };
                    prepared.push((
                        RunMount {
                            source: path,
                            target,
                            read_only: true,
                        },
                        Some(dir),
                    ));
                    continue;
                }
                MountType::Ssh => {
                    // BuildKit: the n-th ssh mount defaults to /run/buildkit/ssh_agent.n, and the first one's
                    // target becomes SSH_AUTH_SOCK unless the step's environment sets it.
                    let target = if mount.target.is_empty() {
                        format!("/run/buildkit/ssh_agent.{ssh_index}")
                    } else {
                        mount.target.clone()
                    };
                    if ssh_index == 0 && !exec.env.iter().any(|v| v.starts_with("SSH_AUTH_SOCK=")) {
                        secret_env.push(format!("SSH_AUTH_SOCK={target}"));
                    }
                    ssh_index += 1;
                    let id = if mount.id.is_empty() {
                        DEFAULT_SSH_ID
                    } else {
                        &mount.id
                    };
                    let Some(agent) = request.ssh.socket(id) else {
                        if mount.required {
                            return Err(EngineError::invalid(format!(
                                "no SSH key {id:?} forwarded from the client"
                            )));
                        }
                        continue;
                    };
                    let relay = SshRelay::start(
                        agent,
                        self.staging()?,
                        mount.uid.unwrap_or(0),
                        mount.gid.unwrap_or(0),
                        mount.mode.unwrap_or(0o600),
                    )?;
                    prepared.push((
                        RunMount {
                            source: relay.path().to_path_buf(),
                            target,
                            read_only: false,
                        },
                        None,
                    ));
                    relays.push(relay);
                    continue;
                }
            };
            prepared.push((
                RunMount {
                    source,
                    target: mount.target.clone(),
                    read_only,
                },
                holder,
            ));
        }
        let (mounts, holders) = prepared.into_iter().unzip();
        Ok(PreparedMounts {
            mounts,
            secret_env,
            _holders: holders,
            _relays: relays,
            _locks: held,
        })
    }
}
