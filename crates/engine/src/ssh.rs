//! `RUN --mount=type=ssh`: the agents `hoist build --ssh` forwards ([`SshAgents`]), and the relay socket a step
//! sees in their place.
//!
//! A step never gets the agent's own socket: it gets a socket of its own (in a scratch directory, bind-mounted at
//! the mount's target) with the mount's `uid`, `gid` and `mode`, and every connection to it is relayed by a thread
//! of hoist's to a new connection to the agent, as BuildKit relays to the client's agent over its session. So the
//! agent's socket, its directory and its owner stay out of the container, and nothing of the agent reaches the
//! step's layer or cache key (the mount target is left out of the layer like every mount target).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};

/// The id a `--ssh` value or an ssh mount without one stands for.
pub const DEFAULT_SSH_ID: &str = "default";

/// The SSH agents a build forwards, by id (`hoist build --ssh`, docker's flag). Agents started here for key files
/// are stopped when this is dropped.
#[derive(Debug, Default)]
pub struct SshAgents {
    sockets: BTreeMap<String, PathBuf>,
    started: Vec<StartedAgent>,
}

impl SshAgents {
    /// No agent at all (a build without `--ssh`).
    pub fn none() -> SshAgents {
        SshAgents::default()
    }

    /// Reads docker's `--ssh` values: `default` or `ID` (the agent at `$SSH_AUTH_SOCK`), `ID=SOCKET` (an agent's
    /// socket), or `ID=KEY[,KEY…]` (private key files without a passphrase, loaded into an `ssh-agent` started
    /// for the build, which needs OpenSSH's `ssh-agent` and `ssh-add` on `$PATH`). `scratch` holds the sockets
    /// of started agents.
    pub fn from_specs(specs: &[String], scratch: &Path) -> Result<SshAgents> {
        let mut agents = SshAgents::default();
        for spec in specs {
            let (id, paths) = match spec.split_once('=') {
                Some((id, paths)) => (id, paths.split(',').filter(|p| !p.is_empty()).collect()),
                None => (spec.as_str(), Vec::new()),
            };
            let id = if id.is_empty() { DEFAULT_SSH_ID } else { id };
            let socket = match paths.as_slice() {
                [] => {
                    let socket = std::env::var_os("SSH_AUTH_SOCK").unwrap_or_default();
                    if socket.is_empty() {
                        return Err(EngineError::invalid(format!(
                            "invalid empty ssh agent socket for --ssh {spec}: make sure SSH_AUTH_SOCK is set"
                        )));
                    }
                    PathBuf::from(socket)
                }
                [single] if is_socket(Path::new(single)) => PathBuf::from(single),
                keys => {
                    if let Some(missing) = keys.iter().find(|k| !Path::new(k).is_file()) {
                        return Err(EngineError::invalid(format!(
                            "invalid --ssh {spec}: {missing} is neither an agent socket nor a key file"
                        )));
                    }
                    let agent = StartedAgent::with_keys(keys, scratch, agents.started.len())?;
                    let socket = agent.socket.clone();
                    agents.started.push(agent);
                    socket
                }
            };
            agents.sockets.insert(id.to_owned(), socket);
        }
        Ok(agents)
    }

    /// The agent socket forwarded under `id`.
    pub fn socket(&self, id: &str) -> Option<&Path> {
        self.sockets.get(id).map(PathBuf::as_path)
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// An `ssh-agent` started for `--ssh ID=KEY…`, killed on drop.
#[derive(Debug)]
struct StartedAgent {
    socket: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl StartedAgent {
    fn with_keys(keys: &[&str], scratch: &Path, index: usize) -> Result<StartedAgent> {
        std::fs::create_dir_all(scratch).map_err(|e| EngineError::io("create", scratch, e))?;
        let dir = tempfile::Builder::new()
            .prefix("ssh-agent-")
            .tempdir_in(scratch)
            .map_err(|e| EngineError::io("create a directory in", scratch, e))?;
        let socket = dir.path().join(format!("agent.{index}"));
        let failed = |what: &str, e: io::Error| {
            EngineError::invalid(format!("failed to {what} for --ssh keys {keys:?}: {e}"))
        };
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed("start ssh-agent", e))?;
        let mut agent = StartedAgent {
            socket,
            child,
            _dir: dir,
        };
        // The socket file appears at bind(2), before the agent listens: wait until it accepts a connection.
        let deadline = Instant::now() + Duration::from_secs(5);
        while UnixStream::connect(&agent.socket).is_err() {
            if Instant::now() > deadline || agent.child.try_wait().ok().flatten().is_some() {
                return Err(failed("start ssh-agent", io::ErrorKind::TimedOut.into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let added = Command::new("ssh-add")
            .args(keys)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env("SSH_ASKPASS_REQUIRE", "never")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(|e| failed("run ssh-add", e))?;
        if !added.status.success() {
            let message = String::from_utf8_lossy(&added.stderr).trim().to_owned();
            agent.stop();
            return Err(EngineError::invalid(format!(
                "failed to load ssh keys {keys:?}: {message}"
            )));
        }
        Ok(agent)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StartedAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A socket for one step that relays each connection to an agent; stops (and joins its threads) when dropped.
#[derive(Debug)]
pub(crate) struct SshRelay {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl SshRelay {
    /// Listens on a new socket in `dir` with the given owner and mode, relaying to `agent`.
    pub(crate) fn start(
        agent: &Path,
        dir: tempfile::TempDir,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<SshRelay> {
        let path = dir.path().join("agent");
        let listener =
            UnixListener::bind(&path).map_err(|e| EngineError::io("listen on", &path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| EngineError::io("set the mode of", &path, e))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|e| EngineError::io("change the owner of", &path, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let acceptor = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut relays = Vec::new();
                for client in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    // A dead agent closes the step's connection, as an unreachable agent would.
                    let Ok(upstream) = UnixStream::connect(&agent) else {
                        continue;
                    };
                    relays.push(std::thread::spawn(move || relay(client, upstream)));
                }
                for handle in relays {
                    let _ = handle.join();
                }
            }
        });
        Ok(SshRelay {
            path,
            stop,
            acceptor: Some(acceptor),
            _dir: dir,
        })
    }

    /// The socket to bind into the container.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SshRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocked accept; the step (and every process that could hold a connection) has ended.
        let _ = UnixStream::connect(&self.path);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Copies bytes both ways. The step closing its end ends the connection to the agent too (so a relay never waits
/// on an agent that keeps its end open); the agent closing its end is passed on as end of file.
fn relay(client: UnixStream, upstream: UnixStream) {
    let (Ok(mut client_read), Ok(mut upstream_read)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let mut upstream_write = upstream;
    let to_agent = std::thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(std::net::Shutdown::Both);
    });
    let mut client_write = client;
    let _ = io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = to_agent.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_an_agent_socket_or_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        let spec = format!("work={}", socket.display());
        let agents = SshAgents::from_specs(&[spec], dir.path()).unwrap();
        assert_eq!(agents.socket("work"), Some(socket.as_path()));
        assert_eq!(agents.socket(DEFAULT_SSH_ID), None);
        let missing = SshAgents::from_specs(&["k=/nonexistent/key".to_owned()], dir.path());
        assert_eq!(
            missing.unwrap_err().to_string(),
            "invalid --ssh k=/nonexistent/key: /nonexistent/key is neither an agent socket nor a key file"
        );
        // A file that is no key: ssh-add refuses it.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not a key").unwrap();
        let refused = SshAgents::from_specs(&[format!("k={}", junk.display())], dir.path());
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .starts_with("failed to load ssh keys")
        );
    }

    #[test]
    fn the_relay_carries_bytes_both_ways_with_the_mount_s_mode() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent.sock");
        let agent = UnixListener::bind(&agent_path).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut stream, _) = agent.accept().unwrap();
            let mut request = [0u8; 4];
            stream.read_exact(&mut request).unwrap();
            stream.write_all(&request.map(|b| b + 1)).unwrap();
        });
        let relay =
            SshRelay::start(&agent_path, tempfile::tempdir().unwrap(), 0, 0, 0o640).unwrap();
        let mode = std::fs::metadata(relay.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        let mut client = UnixStream::connect(relay.path()).unwrap();
        client.write_all(b"abcd").unwrap();
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"bcde");
        echo.join().unwrap();
        drop(client);
        drop(relay);
    }
}
