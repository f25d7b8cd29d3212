//! Published ports (`-p HOST:CONTAINER[/udp]`): a userland TCP and UDP proxy from a host port into the
//! container's own network namespace, like Docker's `docker-proxy`, but with no veth pair, bridge or NAT to set up
//! and tear down.
//!
//! The listener is bound on the host before the container starts (so "port already in use" is reported at once).
//! An accepting thread hands each connection to a dialing thread, which asks a small helper process for a socket
//! connected to the container's `127.0.0.1:PORT`: the helper has joined the container's network namespace (and,
//! rootless, its user namespace first), and a socket belongs to the namespace it was created in, so the connected
//! socket it passes back (`SCM_RIGHTS`) reaches into the container. Two copying threads then shuttle bytes each
//! way. (A thread cannot do the joining itself: a multi-threaded process may not enter a user namespace.)
//!
//! UDP has no connections, so the proxy keeps one session per client address, as `docker-proxy` does: the first
//! datagram from a client gets a UDP socket connected to the container's port (from the same helper), later ones
//! reuse it, and a thread sends the container's replies back to that client from the published port. A session
//! idle for [`UDP_IDLE_TIMEOUT`] is dropped.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::process::Pid;

use crate::error::{Error, Result};
use crate::sys;

/// How long a UDP session may stay without traffic either way before it is dropped (`docker-proxy`'s 90 s).
pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How often a UDP session's thread wakes to check for the idle timeout and the proxy's end.
const UDP_POLL: Duration = Duration::from_millis(500);

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (the default, as with Docker).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// One published port: `[IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// Host address to listen on (default `0.0.0.0`).
    pub host_ip: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container (reached on its loopback).
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    /// `IP:HOST:CONTAINER/PROTOCOL`, which parses back to the same mapping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = match self.host_ip {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        write!(
            f,
            "{ip}:{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

impl FromStr for PortMapping {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let invalid = || Error::InvalidPort {
            spec: spec.to_owned(),
        };
        let (body, protocol) = match spec.rsplit_once('/') {
            Some((body, "tcp")) => (body, Protocol::Tcp),
            Some((body, "udp")) => (body, Protocol::Udp),
            Some(_) => return Err(invalid()),
            None => (spec, Protocol::Tcp),
        };
        let parts: Vec<&str> = body.rsplitn(3, ':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [container, host] => (None, *host, *container),
            [container, host, ip] => (Some(*ip), *host, *container),
            _ => return Err(invalid()),
        };
        let host_ip = match ip {
            None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(ip) => ip.trim_matches(['[', ']']).parse().map_err(|_| invalid())?,
        };
        Ok(Self {
            host_ip,
            host_port: host.parse().map_err(|_| invalid())?,
            container_port: container.parse().map_err(|_| invalid())?,
            protocol,
        })
    }
}

impl PortMapping {
    /// As `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
    pub fn describe(&self) -> String {
        format!(
            "{}->{}/{}",
            SocketAddr::new(self.host_ip, self.host_port),
            self.container_port,
            self.protocol
        )
    }

    /// Binds the host side.
    pub(crate) fn bind(&self) -> Result<(PortMapping, Listener)> {
        let address = SocketAddr::new(self.host_ip, self.host_port);
        let bound = match self.protocol {
            Protocol::Tcp => TcpListener::bind(address).map(Listener::Tcp),
            Protocol::Udp => UdpSocket::bind(address).map(Listener::Udp),
        };
        bound
            .map(|listener| (*self, listener))
            .map_err(|source| Error::Publish {
                host: format!("{address}/{}", self.protocol),
                source,
            })
    }
}

/// A bound host socket of a published port.
#[derive(Debug)]
pub(crate) enum Listener {
    /// Accepts TCP connections.
    Tcp(TcpListener),
    /// Receives UDP datagrams.
    Udp(UdpSocket),
}

impl Listener {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tcp(listener) => listener.local_addr(),
            Self::Udp(socket) => socket.local_addr(),
        }
    }
}

/// What the dialing thread is asked for.
enum Request {
    /// Connect this accepted host connection to the container's TCP port and copy both ways.
    Tcp(TcpStream, u16),
    /// Reply with a UDP socket connected to the container's port.
    Udp(u16, mpsc::Sender<io::Result<OwnedFd>>),
}

/// The running proxy for all published ports of one container.
#[derive(Debug)]
pub(crate) struct Proxy {
    stop: Arc<AtomicBool>,
    listeners: Vec<(SocketAddr, Protocol, JoinHandle<()>)>,
    dialer: JoinHandle<()>,
    helper: libc::pid_t,
}

impl Proxy {
    /// Starts proxying each listener to the container `pid`'s loopback.
    pub(crate) fn start(pid: Pid, listeners: Vec<(PortMapping, Listener)>) -> Result<Proxy> {
        let open = |kind: &str| -> Result<OwnedFd> {
            let path = format!("/proc/{}/ns/{kind}", pid.as_raw_nonzero());
            File::open(&path)
                .map(OwnedFd::from)
                .map_err(|source| Error::Prepare {
                    action: "open",
                    path: path.into(),
                    source,
                })
        };
        let network = open("net")?;
        // Rootless: the container has a user namespace of its own, which the helper joins first.
        let user = if rustix::process::geteuid().is_root() {
            None
        } else {
            Some(open("user")?)
        };
        let (helper, socket) =
            sys::spawn_dialer(user.as_ref(), &network).map_err(|source| Error::System {
                action: "enter the container's network namespace",
                source,
            })?;
        let (dial_tx, dial_rx) = mpsc::channel::<Request>();
        let dialer = thread::spawn(move || dialer(&socket, &dial_rx));

        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for (mapping, listener) in listeners {
            let address = listener.local_addr().map_err(|source| Error::Publish {
                host: mapping.to_string(),
                source,
            })?;
            let stop = Arc::clone(&stop);
            let dial_tx = dial_tx.clone();
            let port = mapping.container_port;
            let handle = match listener {
                Listener::Tcp(listener) => {
                    thread::spawn(move || accept_tcp(&listener, port, &dial_tx, &stop))
                }
                Listener::Udp(socket) => {
                    thread::spawn(move || forward_udp(socket, port, &dial_tx, &stop))
                }
            };
            handles.push((address, mapping.protocol, handle));
        }
        Ok(Proxy {
            stop,
            listeners: handles,
            dialer,
            helper,
        })
    }

    /// Stops accepting: each listening thread is woken by one last connection (or an empty datagram) and ends.
    /// Connections in flight end when the container's side closes (the container is gone by then); UDP sessions
    /// end within [`UDP_POLL`].
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for (address, protocol, handle) in self.listeners {
            let wake = match address.ip() {
                ip if ip.is_unspecified() && ip.is_ipv4() => {
                    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port())
                }
                ip if ip.is_unspecified() => {
                    SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), address.port())
                }
                _ => address,
            };
            let woken = match protocol {
                Protocol::Tcp => TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok(),
                Protocol::Udp => {
                    let any: SocketAddr = match wake {
                        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
                    };
                    UdpSocket::bind(any)
                        .and_then(|waker| waker.send_to(&[], wake))
                        .is_ok()
                }
            };
            if woken {
                let _ = handle.join();
            }
        }
        // With every listening thread gone, the dialing thread's queue ends, it closes the helper's socket and the
        // helper exits.
        if self.dialer.join().is_ok() {
            sys::reap_helper(self.helper);
        }
    }
}

fn accept_tcp(listener: &TcpListener, port: u16, dial: &mpsc::Sender<Request>, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => {
                if dial.send(Request::Tcp(stream, port)).is_err() {
                    break;
                }
            }
            Err(error) => tracing::debug!(%error, "accept failed"),
        }
    }
}

/// One client's UDP session: a socket connected to the container's port, and when it was last used.
struct UdpSession {
    upstream: UdpSocket,
    last_used: Mutex<Instant>,
}

impl UdpSession {
    fn touch(&self) {
        if let Ok(mut last) = self.last_used.lock() {
            *last = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map_or(Duration::MAX, |last| last.elapsed())
    }
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSession>>>>;

/// Receives datagrams on the published port and forwards each to its client's session, opening one on a client's
/// first datagram.
fn forward_udp(socket: UdpSocket, port: u16, dial: &mpsc::Sender<Request>, stop: &Arc<AtomicBool>) {
    let socket = Arc::new(socket);
    let sessions: Sessions = Arc::default();
    let mut buffer = vec![0u8; 65536];
    loop {
        let (length, client) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::debug!(%error, "receiving on a published UDP port failed");
                break;
            }
        };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let existing = sessions
            .lock()
            .ok()
            .and_then(|sessions| sessions.get(&client).cloned());
        let session = match existing {
            Some(session) => session,
            None => match open_udp_session(port, dial) {
                Ok(session) => {
                    let session = Arc::new(session);
                    if let Ok(mut map) = sessions.lock() {
                        map.insert(client, Arc::clone(&session));
                    }
                    let replies = ReplyPath {
                        host: Arc::clone(&socket),
                        client,
                        session: Arc::clone(&session),
                        sessions: Arc::clone(&sessions),
                        stop: Arc::clone(stop),
                    };
                    thread::spawn(move || replies.run());
                    session
                }
                Err(error) => {
                    tracing::debug!(%error, port, "no UDP socket into the container");
                    continue;
                }
            },
        };
        session.touch();
        if let Err(error) = session.upstream.send(&buffer[..length]) {
            // ECONNREFUSED: an earlier datagram found no listener in the container; this one may.
            tracing::debug!(%error, port, "forwarding a datagram failed");
        }
    }
}

fn open_udp_session(port: u16, dial: &mpsc::Sender<Request>) -> io::Result<UdpSession> {
    let (reply_tx, reply_rx) = mpsc::channel();
    dial.send(Request::Udp(port, reply_tx))
        .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
    let upstream = UdpSocket::from(
        reply_rx
            .recv()
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))??,
    );
    upstream.set_read_timeout(Some(UDP_POLL))?;
    Ok(UdpSession {
        upstream,
        last_used: Mutex::new(Instant::now()),
    })
}

/// Sends a session's replies from the container back to its client, until the session is idle too long or the
/// proxy stops.
struct ReplyPath {
    host: Arc<UdpSocket>,
    client: SocketAddr,
    session: Arc<UdpSession>,
    sessions: Sessions,
    stop: Arc<AtomicBool>,
}

impl ReplyPath {
    fn run(self) {
        let mut buffer = vec![0u8; 65536];
        loop {
            match self.session.upstream.recv(&mut buffer) {
                Ok(length) => {
                    self.session.touch();
                    let _ = self.host.send_to(&buffer[..length], self.client);
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(error) => {
                    tracing::debug!(%error, "receiving from the container failed");
                    break;
                }
            }
            if self.stop.load(Ordering::SeqCst) || self.session.idle_for() > UDP_IDLE_TIMEOUT {
                break;
            }
        }
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&self.client);
        }
    }
}

/// Serves the listening threads' requests through the helper in the container's namespaces.
fn dialer(helper: &OwnedFd, requests: &mpsc::Receiver<Request>) {
    for request in requests {
        match request {
            Request::Tcp(client, port) => match sys::dial(helper, port, false) {
                Ok(upstream) => splice(client, TcpStream::from(upstream)),
                Err(error) => {
                    tracing::debug!(%error, port, "container port refused the connection");
                    let _ = client.shutdown(Shutdown::Both);
                }
            },
            Request::Udp(port, reply) => {
                let _ = reply.send(sys::dial(helper, port, true));
            }
        }
    }
}

/// Copies bytes both ways until each side closes.
fn splice(client: TcpStream, upstream: TcpStream) {
    let pair = client
        .try_clone()
        .and_then(|c| upstream.try_clone().map(|u| (c, u)));
    let Ok((client_read, upstream_write)) = pair else {
        return;
    };
    thread::spawn(move || copy_then_shutdown(client_read, upstream_write));
    thread::spawn(move || copy_then_shutdown(upstream, client));
}

fn copy_then_shutdown(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_like_docker() {
        let m: PortMapping = "9000:8080".parse().unwrap();
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port, m.protocol),
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9000, 8080, Protocol::Tcp)
        );
        let m: PortMapping = "127.0.0.1:9000:80/tcp".parse().unwrap();
        assert_eq!(m.host_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let m: PortMapping = "5353:53/udp".parse().unwrap();
        assert_eq!((m.host_port, m.protocol), (5353, Protocol::Udp));
        assert_eq!(m.describe(), "0.0.0.0:5353->53/udp");
        let m: PortMapping = "[::1]:80:8080".parse().unwrap();
        assert_eq!(m.to_string(), "[::1]:80:8080/tcp");
        assert_eq!(m.to_string().parse::<PortMapping>().unwrap(), m);
        for bad in ["80", "a:80", "1:2/sctp", "70000:1", "x:1:2"] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad}");
        }
    }
}
