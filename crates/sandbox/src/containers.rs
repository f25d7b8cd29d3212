//! Detached containers (`hoist run -d`): their records, logs and supervisors, under `<store>/containers-v1/`.
//!
//! A detached container is held by a **supervisor**: a process of its own (the `hoist` binary re-executed) that
//! runs the container, copies its output into the log, and records its state. The supervisor keeps an exclusive
//! `flock` on the container's `supervisor.lock` for its whole life, and that lock, not a pid, is what says whether
//! the container still runs: the kernel drops it when the supervisor dies however it dies (`kill -9` included), and
//! a recycled pid cannot fake it. A record that says `running` while nobody holds the lock is corrected to
//! `exited (137)` the next time it is read (the container had `PR_SET_PDEATHSIG=SIGKILL` and died with it).
//!
//! ```text
//! containers-v1/
//! ├── lock                      flock: exclusive while records are created, changed or removed
//! └── <64-hex id>/
//!     ├── config.json           the ContainerRecord, replaced whole (write + rename)
//!     ├── request.json          the launch::RunRequest the supervisor runs (written once, by launch)
//!     ├── <id>-json.log         output, Docker's json-file format: {"log":"…\n","stream":"stdout","time":"…"}
//!     ├── supervisor.lock       flocked by the supervisor while it lives
//!     ├── supervisor.log        the supervisor's own standard error (hoist run -d points it there)
//!     └── scratch/              the container's writable layer (a Snapshot's scratch directory)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use hoist_oci::units::{human_duration, parse_timestamp};
use rustix::fs::{FlockOperation, flock};
use rustix::process::{Pid, Signal, kill_process};
use serde::{Deserialize, Serialize};

use crate::proxy::PortMapping;

/// The directory under the store root that holds detached containers.
pub const CONTAINERS_DIR: &str = "containers-v1";

/// The exit code recorded for a container whose supervisor died (it was killed with it: 128 + SIGKILL).
pub const EXIT_SUPERVISOR_DIED: i32 = 137;

/// Longest log line kept whole; longer lines are split, as Docker's json-file driver splits at 16 KiB.
const MAX_LOG_LINE: usize = 16 * 1024;

/// A container store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// A file or directory of the container store could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A record is not valid JSON.
    #[error("invalid container record {}: {source}", path.display())]
    Record {
        /// The record file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// `--name` is taken (Docker's message).
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse {
        /// The name.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// A name Docker would not accept.
    #[error("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// No container has this name, id or id prefix.
    #[error("No such container: {name}")]
    NotFound {
        /// What was asked for.
        name: String,
    },
    /// An id prefix matches several containers.
    #[error("Multiple IDs found with provided prefix: {prefix}")]
    Ambiguous {
        /// The prefix.
        prefix: String,
    },
    /// `rm` without `-f` on a running container (Docker's message).
    #[error(
        "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
    )]
    Running {
        /// The container.
        id: String,
    },
    /// Another supervisor already holds the container.
    #[error("container {id} already has a supervisor")]
    AlreadySupervised {
        /// The container.
        id: String,
    },
    /// Signalling the container failed.
    #[error("failed to signal container {id}: {source}")]
    Signal {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

type Result<T, E = ContainerError> = std::result::Result<T, E>;

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ContainerError {
    let path = path.to_owned();
    move |source| ContainerError::Io {
        action,
        path,
        source,
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Recorded, not started (or its command could not be started: see [`ContainerRecord::error`]).
    Created,
    /// Its command runs.
    Running,
    /// Its command ended (see [`ContainerRecord::exit_code`]).
    Exited,
}

/// What is known about one detached container (`config.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique among containers.
    pub name: String,
    /// The image as given on the command line.
    pub image: String,
    /// The image's ID (`sha256:…` of its config).
    pub image_id: String,
    /// The command: entrypoint and arguments.
    pub command: Vec<String>,
    /// When it was created, RFC 3339.
    pub created: String,
    /// When its command started, RFC 3339.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When its command ended, RFC 3339.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Where it is in its life.
    pub state: ContainerState,
    /// The command's exit code (128 + signal when killed).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why the command could not be started.
    #[serde(default)]
    pub error: Option<String>,
    /// The host pid of the container's PID 1, while it runs.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The supervisor's pid.
    #[serde(default)]
    pub supervisor_pid: Option<u32>,
    /// Published ports, as `IP:HOST:CONTAINER/PROTOCOL`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// The signal `hoist stop` sends first (the image's `STOPSIGNAL`, default SIGTERM).
    pub stop_signal: i32,
    /// Seconds `hoist stop` waits before SIGKILL when `-t` is not given.
    pub stop_timeout: u64,
    /// `--rm`: the record is removed when the container exits.
    #[serde(default)]
    pub auto_remove: bool,
    /// The `hoist run` arguments after `run` that ask for this container ([`RunRequest::to_args`]; the
    /// supervisor runs the request kept in `request.json`).
    ///
    /// [`RunRequest::to_args`]: crate::launch::RunRequest::to_args
    pub run_args: Vec<String>,
}

/// What `hoist run -d` knows before the container exists.
#[derive(Debug, Clone, Default)]
pub struct NewContainer {
    /// `--name`, or `None` for a generated `adjective_name`.
    pub name: Option<String>,
    /// The image as given.
    pub image: String,
    /// The image's ID.
    pub image_id: String,
    /// Entrypoint and arguments.
    pub command: Vec<String>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// The first signal of `hoist stop`.
    pub stop_signal: i32,
    /// Seconds before SIGKILL on `hoist stop`.
    pub stop_timeout: u64,
    /// `--rm`.
    pub auto_remove: bool,
    /// The `hoist run` arguments after `run`.
    pub run_args: Vec<String>,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

impl ContainerRecord {
    /// The first 12 hex digits, as `docker ps` shows the id.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    /// `docker ps`'s COMMAND column: the command quoted, cut to 20 characters with `…`.
    pub fn command_column(&self) -> String {
        let command = self.command.join(" ");
        let shown: String = if command.chars().count() > 20 {
            command.chars().take(19).chain(['…']).collect()
        } else {
            command
        };
        format!("\"{shown}\"")
    }

    /// `docker ps`'s CREATED column: `5 seconds ago`.
    pub fn created_column(&self, now: SystemTime) -> String {
        match parse_timestamp(&self.created) {
            Some(created) => format!(
                "{} ago",
                human_duration(now.duration_since(created).unwrap_or_default())
            ),
            None => "N/A".to_owned(),
        }
    }

    /// `docker ps`'s STATUS column: `Up 5 seconds`, `Exited (0) 3 seconds ago`, `Created`.
    pub fn status_column(&self, now: SystemTime) -> String {
        let since = |time: &Option<String>| {
            time.as_deref()
                .and_then(parse_timestamp)
                .map(|time| human_duration(now.duration_since(time).unwrap_or_default()))
        };
        match self.state {
            ContainerState::Created => "Created".to_owned(),
            ContainerState::Running => match since(&self.started_at) {
                Some(up) => format!("Up {up}"),
                None => "Up".to_owned(),
            },
            ContainerState::Exited => {
                let code = self.exit_code.unwrap_or(0);
                match since(&self.finished_at) {
                    Some(ago) => format!("Exited ({code}) {ago} ago"),
                    None => format!("Exited ({code})"),
                }
            }
        }
    }

    /// `docker ps`'s PORTS column (only while running, as Docker): `0.0.0.0:8080->80/tcp, …`.
    pub fn ports_column(&self) -> String {
        if self.state != ContainerState::Running {
            return String::new();
        }
        self.ports
            .iter()
            .map(|port| match port.parse::<PortMapping>() {
                Ok(mapping) => mapping.describe(),
                Err(_) => port.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The containers directory of a store, and its records.
#[derive(Debug, Clone)]
pub struct ContainerStore {
    dir: PathBuf,
}

/// Held by a supervisor while it lives (see the module docs); dropping it (or dying) releases the container.
#[derive(Debug)]
pub struct SupervisorLock {
    _file: File,
}

impl ContainerStore {
    /// The containers of the store rooted at `store_root` (`<store_root>/containers-v1`, created if missing).
    pub fn open(store_root: &Path) -> Result<ContainerStore> {
        let dir = store_root.join(CONTAINERS_DIR);
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        Ok(ContainerStore { dir })
    }

    /// A container's directory.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// A container's log file.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join(id).join(format!("{id}-json.log"))
    }

    /// Where a container's writable layer lives (the parent of its snapshot's scratch directory).
    pub fn scratch_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id).join("scratch")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(id).join("config.json")
    }

    fn lock(&self) -> Result<File> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|errno| io_error("lock", &path)(errno.into()))?;
        Ok(file)
    }

    fn write_record(&self, record: &ContainerRecord) -> Result<()> {
        let path = self.record_path(&record.id);
        let temporary = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(record).expect("a record always serializes");
        fs::write(&temporary, json).map_err(io_error("write", &temporary))?;
        fs::rename(&temporary, &path).map_err(io_error("rename", &temporary))
    }

    /// Reads one record as stored (`None` if it does not exist).
    fn read_record(&self, id: &str) -> Result<Option<ContainerRecord>> {
        let path = self.record_path(id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ContainerError::Record { path, source }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error("read", &path)(error)),
        }
    }

    fn ids(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.dir).map_err(io_error("read", &self.dir))?;
        Ok(entries
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect())
    }

    /// Records a new container: a fresh id, the name checked for uniqueness (or generated), state `created`.
    pub fn create(&self, new: NewContainer) -> Result<ContainerRecord> {
        if let Some(name) = &new.name {
            validate_name(name)?;
        }
        let _lock = self.lock()?;
        let existing: Vec<ContainerRecord> = self
            .ids()?
            .iter()
            .filter_map(|id| self.read_record(id).ok().flatten())
            .collect();
        let taken = |name: &str| existing.iter().find(|record| record.name == name);
        let name = match new.name {
            Some(name) => {
                if let Some(record) = taken(&name) {
                    return Err(ContainerError::NameInUse {
                        name,
                        id: record.id.clone(),
                    });
                }
                name
            }
            None => loop {
                let name = generate_name();
                if taken(&name).is_none() {
                    break name;
                }
            },
        };
        let id = loop {
            let id = random_hex(32).map_err(io_error("read", Path::new("/dev/urandom")))?;
            if !self.container_dir(&id).exists() {
                break id;
            }
        };
        let dir = self.container_dir(&id);
        fs::create_dir(&dir).map_err(io_error("create", &dir))?;
        let record = ContainerRecord {
            id,
            name,
            image: new.image,
            image_id: new.image_id,
            command: new.command,
            created: now_rfc3339(),
            started_at: None,
            finished_at: None,
            state: ContainerState::Created,
            exit_code: None,
            error: None,
            pid: None,
            supervisor_pid: None,
            ports: new.ports.iter().map(ToString::to_string).collect(),
            stop_signal: new.stop_signal,
            stop_timeout: new.stop_timeout,
            auto_remove: new.auto_remove,
            run_args: new.run_args,
        };
        self.write_record(&record)?;
        Ok(record)
    }

    /// Changes a record under the lock; `Ok(None)` if it no longer exists.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<Option<ContainerRecord>> {
        let _lock = self.lock()?;
        let Some(mut record) = self.read_record(id)? else {
            return Ok(None);
        };
        change(&mut record);
        self.write_record(&record)?;
        Ok(Some(record))
    }

    /// Marks a container started: `running`, with its PID 1 and the supervisor's pid.
    pub fn mark_running(&self, id: &str, pid: u32) -> Result<()> {
        self.update(id, |record| {
            record.state = ContainerState::Running;
            record.pid = Some(pid);
            record.supervisor_pid = Some(std::process::id());
            record.started_at = Some(now_rfc3339());
        })
        .map(drop)
    }

    /// Marks a container ended with `exit_code` (and `error` if its command could not be started); a `--rm`
    /// container that ran is removed instead (one that could not start keeps its record, so that `hoist run` can
    /// read the error; it removes the record then).
    pub fn mark_exited(&self, id: &str, exit_code: i32, error: Option<String>) -> Result<()> {
        let _lock = self.lock()?;
        let Some(mut record) = self.read_record(id)? else {
            return Ok(());
        };
        let never_started = error.is_some() && record.started_at.is_none();
        if record.auto_remove && !never_started {
            return remove_tree(&self.container_dir(id));
        }
        record.state = if never_started {
            ContainerState::Created
        } else {
            ContainerState::Exited
        };
        record.exit_code = Some(exit_code);
        record.error = error;
        record.pid = None;
        record.finished_at = Some(now_rfc3339());
        self.write_record(&record)
    }

    /// Takes the supervisor lock of a container (see [`SupervisorLock`]).
    pub fn claim(&self, id: &str) -> Result<SupervisorLock> {
        let path = self.container_dir(id).join("supervisor.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(SupervisorLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                Err(ContainerError::AlreadySupervised { id: id.to_owned() })
            }
            Err(errno) => Err(io_error("lock", &path)(errno.into())),
        }
    }

    /// Whether a live supervisor holds the container.
    pub fn is_supervised(&self, id: &str) -> bool {
        let Ok(file) = File::open(self.container_dir(id).join("supervisor.lock")) else {
            return false;
        };
        matches!(
            flock(&file, FlockOperation::NonBlockingLockShared),
            Err(rustix::io::Errno::WOULDBLOCK)
        )
    }

    /// A record as it really is: `running` with no live supervisor becomes `exited (137)` (written back, or the
    /// record removed for `--rm`). `None` once removed.
    fn observe(&self, record: ContainerRecord) -> Result<Option<ContainerRecord>> {
        if record.state != ContainerState::Running || self.is_supervised(&record.id) {
            return Ok(Some(record));
        }
        let _lock = self.lock()?;
        // Read again under the lock: a supervisor writes its final state under it before it exits.
        let Some(mut record) = self.read_record(&record.id)? else {
            return Ok(None);
        };
        if record.state != ContainerState::Running || self.is_supervised(&record.id) {
            return Ok(Some(record));
        }
        if record.auto_remove {
            remove_tree(&self.container_dir(&record.id))?;
            return Ok(None);
        }
        record.state = ContainerState::Exited;
        record.exit_code = Some(record.exit_code.unwrap_or(EXIT_SUPERVISOR_DIED));
        record.error = Some("the container's supervisor died".to_owned());
        record.pid = None;
        record.finished_at = Some(now_rfc3339());
        self.write_record(&record)?;
        Ok(Some(record))
    }

    /// Every container, newest first, with its real state.
    pub fn list(&self) -> Result<Vec<ContainerRecord>> {
        let mut records = Vec::new();
        for id in self.ids()? {
            if let Some(record) = self.read_record(&id)?
                && let Some(record) = self.observe(record)?
            {
                records.push(record);
            }
        }
        records.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    /// The container with this name, id, or unique id prefix (as Docker resolves them), with its real state.
    pub fn find(&self, name_or_id: &str) -> Result<ContainerRecord> {
        let records = self.list()?;
        let not_found = || ContainerError::NotFound {
            name: name_or_id.to_owned(),
        };
        if let Some(record) = records
            .iter()
            .find(|record| record.id == name_or_id || record.name == name_or_id)
        {
            return Ok(record.clone());
        }
        if name_or_id.is_empty() {
            return Err(not_found());
        }
        let mut matching = records
            .into_iter()
            .filter(|record| record.id.starts_with(name_or_id));
        match (matching.next(), matching.next()) {
            (Some(record), None) => Ok(record),
            (Some(_), Some(_)) => Err(ContainerError::Ambiguous {
                prefix: name_or_id.to_owned(),
            }),
            (None, _) => Err(not_found()),
        }
    }

    /// Waits until the container's supervisor is gone, at most `timeout`; true if it is.
    pub fn wait_unsupervised(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_supervised(id) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops a running container as `docker stop` does: `signal` (the image's `STOPSIGNAL`) to its PID 1, then
    /// SIGKILL if it is still running `timeout` later. Returns once its supervisor has recorded the exit. Stopping
    /// a container that does not run does nothing.
    pub fn stop(&self, record: &ContainerRecord, signal: i32, timeout: Duration) -> Result<()> {
        let Some(record) = self.observe(record.clone())? else {
            return Ok(());
        };
        if record.state != ContainerState::Running {
            return Ok(());
        }
        if let Some(pid) = record.pid {
            let signal = Signal::from_named_raw(signal).unwrap_or(Signal::TERM);
            self.signal(&record, pid, signal)?;
            if self.wait_unsupervised(&record.id, timeout) {
                return Ok(());
            }
        }
        self.kill(&record)
    }

    /// SIGKILLs a running container and waits for its supervisor to record the exit; a supervisor that does not
    /// finish in 10 s is killed too (the record then says 137).
    pub fn kill(&self, record: &ContainerRecord) -> Result<()> {
        if let Some(pid) = record.pid {
            self.signal(record, pid, Signal::KILL)?;
            if self.wait_unsupervised(&record.id, Duration::from_secs(10)) {
                return Ok(());
            }
        }
        if let Some(supervisor) = record.supervisor_pid
            && self.is_supervised(&record.id)
        {
            self.signal(record, supervisor, Signal::KILL)?;
            self.wait_unsupervised(&record.id, Duration::from_secs(5));
        }
        self.observe(record.clone()).map(drop)
    }

    fn signal(&self, record: &ContainerRecord, pid: u32, signal: Signal) -> Result<()> {
        // Only while the supervisor lives: then `pid` is still its child (a zombie at worst), never a recycled pid.
        if !self.is_supervised(&record.id) {
            return Ok(());
        }
        let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return Ok(());
        };
        match kill_process(pid, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(errno) => Err(ContainerError::Signal {
                id: record.id.clone(),
                source: errno.into(),
            }),
        }
    }

    /// Removes a container that does not run (its record, log and writable layer).
    pub fn remove(&self, record: &ContainerRecord) -> Result<()> {
        let _lock = self.lock()?;
        if self.is_supervised(&record.id) {
            return Err(ContainerError::Running {
                id: record.id.clone(),
            });
        }
        remove_tree(&self.container_dir(&record.id))
    }
}

/// Removes a directory tree; directories a rootless overlay left without permissions (its mode-000 `work/work`) are
/// given their owner's permissions back first.
fn remove_tree(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            grant_owner_access(dir);
            fs::remove_dir_all(dir).map_err(io_error("remove", dir))
        }
    }
}

fn grant_owner_access(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                grant_owner_access(&entry.path());
            }
        }
    }
}

/// Docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() >= 2;
    if valid {
        Ok(())
    } else {
        Err(ContainerError::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    File::open("/dev/urandom")?.read_exact(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// A Docker-style name: `adjective_scientist`.
fn generate_name() -> String {
    const LEFT: &[&str] = &[
        "admiring",
        "brave",
        "clever",
        "dazzling",
        "eager",
        "focused",
        "gallant",
        "happy",
        "jolly",
        "keen",
        "loving",
        "modest",
        "nifty",
        "optimistic",
        "quirky",
        "relaxed",
        "serene",
        "tender",
        "upbeat",
        "vibrant",
        "wizardly",
        "youthful",
        "zealous",
    ];
    const RIGHT: &[&str] = &[
        "babbage",
        "curie",
        "darwin",
        "euclid",
        "fermat",
        "galois",
        "hopper",
        "johnson",
        "kepler",
        "lovelace",
        "meitner",
        "noether",
        "pasteur",
        "ramanujan",
        "shannon",
        "turing",
        "wiles",
        "yonath",
    ];
    let random = random_hex(4)
        .ok()
        .and_then(|hex| usize::from_str_radix(&hex, 16).ok())
        .unwrap_or_else(|| std::process::id() as usize);
    format!(
        "{}_{}",
        LEFT[random % LEFT.len()],
        RIGHT[(random / LEFT.len()) % RIGHT.len()]
    )
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a container's log, as Docker's json-file driver writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The line, with its newline (the last one of a stream may have none).
    pub log: String,
    /// Where it came from.
    pub stream: LogStream,
    /// When it was read, RFC 3339 with nanoseconds.
    pub time: String,
}

/// Appends a container's output to its log, one JSON object per line; shared by the stdout and stderr copiers.
#[derive(Debug)]
pub struct LogWriter {
    file: Mutex<File>,
}

impl LogWriter {
    /// Creates (or appends to) the log at `path`.
    pub fn open(path: &Path) -> Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error("open", path))?;
        Ok(LogWriter {
            file: Mutex::new(file),
        })
    }

    /// Appends one line.
    pub fn write(&self, stream: LogStream, line: &[u8]) -> io::Result<()> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream,
            time: now_rfc3339(),
        };
        let mut json = serde_json::to_vec(&entry).expect("a log entry always serializes");
        json.push(b'\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| io::Error::other("log writer poisoned"))?;
        file.write_all(&json)
    }

    /// Copies `from` into the log line by line until end of file (lines over 16 KiB are split). `EIO`, how a
    /// pseudo-terminal's controlling side says the other side is closed, ends it too.
    pub fn copy(&self, stream: LogStream, from: impl Read) -> io::Result<()> {
        self.copy_mirrored(stream, from, io::sink())
    }

    /// [`copy`](LogWriter::copy), also writing everything to `mirror` as soon as it is read (a prompt without a
    /// newline included); a mirror that fails stops being written, the log goes on.
    pub fn copy_mirrored(
        &self,
        stream: LogStream,
        mut from: impl Read,
        mut mirror: impl Write,
    ) -> io::Result<()> {
        let mut buffer = [0u8; 8192];
        let mut pending: Vec<u8> = Vec::new();
        let mut mirroring = true;
        loop {
            let read = match from.read(&mut buffer) {
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.raw_os_error() == Some(libc::EIO) => 0,
                Err(error) => return Err(error),
            };
            if read == 0 {
                if !pending.is_empty() {
                    self.write(stream, &pending)?;
                }
                return Ok(());
            }
            if mirroring {
                mirroring = mirror
                    .write_all(&buffer[..read])
                    .and_then(|()| mirror.flush())
                    .is_ok();
            }
            pending.extend_from_slice(&buffer[..read]);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                self.write(stream, &line)?;
            }
            while pending.len() >= MAX_LOG_LINE {
                let part: Vec<u8> = pending.drain(..MAX_LOG_LINE).collect();
                self.write(stream, &part)?;
            }
        }
    }
}

/// Reads a container's log, from the start, then (when following) what is appended.
#[derive(Debug)]
pub struct LogReader {
    file: File,
    offset: u64,
    partial: Vec<u8>,
}

impl LogReader {
    /// Opens the log at `path`.
    pub fn open(path: &Path) -> Result<LogReader> {
        let file = File::open(path).map_err(io_error("open", path))?;
        Ok(LogReader {
            file,
            offset: 0,
            partial: Vec::new(),
        })
    }

    /// The complete entries written since the last call (malformed lines are skipped).
    pub fn read_new(&mut self) -> io::Result<Vec<LogEntry>> {
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        self.offset += self.file.read_to_end(&mut bytes)? as u64;
        self.partial.extend_from_slice(&bytes);
        let complete = match self.partial.iter().rposition(|&b| b == b'\n') {
            Some(end) => self.partial.drain(..=end).collect::<Vec<u8>>(),
            None => return Ok(Vec::new()),
        };
        Ok(complete
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: Option<&str>) -> NewContainer {
        NewContainer {
            name: name.map(str::to_owned),
            image: "bb:1".into(),
            image_id: "sha256:00".into(),
            command: vec!["sh".into(), "-c".into(), "echo hello; sleep 1000".into()],
            ports: vec!["8080:80".parse().unwrap()],
            stop_signal: 15,
            stop_timeout: 10,
            auto_remove: false,
            run_args: vec!["bb:1".into()],
        }
    }

    #[test]
    fn names_are_unique_and_ids_resolve_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let web = store.create(new(Some("web"))).unwrap();
        assert_eq!(web.id.len(), 64);
        assert_eq!(web.state, ContainerState::Created);
        let error = store.create(new(Some("web"))).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "Conflict. The container name \"/web\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                web.id
            )
        );
        let other = store.create(new(None)).unwrap();
        assert!(other.name.contains('_'), "{}", other.name);
        assert_ne!(other.id, web.id);
        assert_eq!(store.find("web").unwrap().id, web.id);
        assert_eq!(store.find(&web.id[..12]).unwrap().id, web.id);
        assert!(matches!(
            store.find("nope"),
            Err(ContainerError::NotFound { .. })
        ));
        assert!(store.create(new(Some("-bad"))).is_err());
        assert_eq!(store.list().unwrap().len(), 2);
        store.remove(&web).unwrap();
        assert!(!store.container_dir(&web.id).exists());
        store.create(new(Some("web"))).unwrap();
    }

    #[test]
    fn a_running_record_without_its_supervisor_reads_as_exited() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let record = store.create(new(Some("gone"))).unwrap();
        let lock = store.claim(&record.id).unwrap();
        assert!(store.is_supervised(&record.id));
        assert!(store.claim(&record.id).is_err());
        store.mark_running(&record.id, 1).unwrap();
        let running = store.find("gone").unwrap();
        assert_eq!(running.state, ContainerState::Running);
        assert!(running.status_column(SystemTime::now()).starts_with("Up "));
        assert_eq!(running.ports_column(), "0.0.0.0:8080->80/tcp");
        assert!(store.remove(&running).is_err());
        // The supervisor dies without recording anything.
        drop(lock);
        let exited = store.find("gone").unwrap();
        assert_eq!(exited.state, ContainerState::Exited);
        assert_eq!(exited.exit_code, Some(EXIT_SUPERVISOR_DIED));
        assert!(
            exited
                .status_column(SystemTime::now())
                .starts_with("Exited (137) ")
        );
        assert_eq!(exited.ports_column(), "");
        store.remove(&exited).unwrap();
    }

    #[test]
    fn auto_remove_drops_the_record_on_exit() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let mut spec = new(Some("temp"));
        spec.auto_remove = true;
        let record = store.create(spec).unwrap();
        store.mark_exited(&record.id, 0, None).unwrap();
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn columns_look_like_docker_ps() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let record = store.create(new(Some("cols"))).unwrap();
        assert_eq!(record.short_id().len(), 12);
        assert_eq!(record.command_column(), "\"sh -c echo hello; s…\"");
        let later = SystemTime::now() + Duration::from_secs(90);
        assert_eq!(record.created_column(later), "About a minute ago");
        assert_eq!(record.status_column(later), "Created");
        store.mark_exited(&record.id, 3, None).unwrap();
        let exited = store.find("cols").unwrap();
        assert_eq!(exited.status_column(later), "Exited (3) About a minute ago");
    }

    /// A supervisor for a plain host process: holds the lock, records the exit, releases the lock.
    fn supervise(
        store: &ContainerStore,
        script: &str,
    ) -> (ContainerRecord, std::thread::JoinHandle<()>) {
        use std::os::unix::process::ExitStatusExt;
        let record = store.create(new(None)).unwrap();
        let lock = store.claim(&record.id).unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", script])
            .spawn()
            .unwrap();
        store.mark_running(&record.id, child.id()).unwrap();
        let supervisor = {
            let store = store.clone();
            let id = record.id.clone();
            std::thread::spawn(move || {
                let status = child.wait().unwrap();
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap());
                store.mark_exited(&id, code, None).unwrap();
                drop(lock);
            })
        };
        (store.find(&record.id).unwrap(), supervisor)
    }

    #[test]
    fn stop_signals_then_kills_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();

        let (record, supervisor) =
            supervise(&store, "trap 'exit 3' USR1; while :; do sleep 0.05; done");
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        store
            .stop(&record, libc::SIGUSR1, Duration::from_secs(5))
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(4));
        supervisor.join().unwrap();
        assert_eq!(store.find(&record.id).unwrap().exit_code, Some(3));

        let (record, supervisor) = supervise(&store, "trap '' TERM; while :; do sleep 0.05; done");
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        store
            .stop(&record, libc::SIGTERM, Duration::from_millis(500))
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(500));
        supervisor.join().unwrap();
        let stopped = store.find(&record.id).unwrap();
        assert_eq!(stopped.state, ContainerState::Exited);
        assert_eq!(stopped.exit_code, Some(137));
        // Stopping it again does nothing.
        store
            .stop(&stopped, libc::SIGTERM, Duration::from_secs(5))
            .unwrap();
    }

    #[test]
    fn logs_round_trip_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let writer = LogWriter::open(&path).unwrap();
        writer
            .copy(LogStream::Stdout, &b"one\ntwo\nno newline"[..])
            .unwrap();
        writer.copy(LogStream::Stderr, &b"oops\n"[..]).unwrap();
        let mut reader = LogReader::open(&path).unwrap();
        let lines: Vec<(String, LogStream)> = reader
            .read_new()
            .unwrap()
            .into_iter()
            .map(|entry| (entry.log, entry.stream))
            .collect();
        assert_eq!(
            lines,
            [
                ("one\n".to_owned(), LogStream::Stdout),
                ("two\n".to_owned(), LogStream::Stdout),
                ("no newline".to_owned(), LogStream::Stdout),
                ("oops\n".to_owned(), LogStream::Stderr),
            ]
        );
        assert!(reader.read_new().unwrap().is_empty());
        let mut mirror = Vec::new();
        let long = "x".repeat(MAX_LOG_LINE + 10);
        writer
            .copy_mirrored(
                LogStream::Stdout,
                format!("prompt> {long}").as_bytes(),
                &mut mirror,
            )
            .unwrap();
        assert_eq!(mirror, format!("prompt> {long}").into_bytes());
        let split: Vec<usize> = reader
            .read_new()
            .unwrap()
            .iter()
            .map(|e| e.log.len())
            .collect();
        assert_eq!(split, [MAX_LOG_LINE, 18]);
        writer.write(LogStream::Stdout, b"more\n").unwrap();
        assert_eq!(reader.read_new().unwrap()[0].log, "more\n");
        let raw = fs::read_to_string(&path).unwrap();
        assert!(
            raw.starts_with("{\"log\":\"one\\n\",\"stream\":\"stdout\",\"time\":\""),
            "{raw}"
        );
    }
}
