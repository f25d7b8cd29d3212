//! Published ports (`-p HOST:CONTAINER`): a userland TCP proxy from a host port into the container's own network
//! namespace, like Docker's `docker-proxy`, but with no veth pair, bridge or NAT to set up and tear down.
//!
//! The listener is bound on the host before the container starts (so "port already in use" is reported at once).
//! An accepting thread hands each connection to a dialing thread, which asks a small helper process for a socket
//! connected to the container's `127.0.0.1:PORT`: the helper has joined the container's network namespace (and,
//! rootless, its user namespace first), and a socket belongs to the namespace it was created in, so the connected
//! socket it passes back (`SCM_RIGHTS`) reaches into the container. Two copying threads then shuttle bytes each
//! way. (A thread cannot do the joining itself: a multi-threaded process may not enter a user namespace.)

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustix::process::Pid;

use crate::error::{Error, Result};
use crate::sys;

/// One published port: `[IP:]HOST_PORT:CONTAINER_PORT[/tcp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// Host address to listen on (default `0.0.0.0`).
    pub host_ip: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container (reached on its loopback).
    pub container_port: u16,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.host_ip, self.host_port, self.container_port
        )
    }
}

impl FromStr for PortMapping {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let invalid = || Error::InvalidPort {
            spec: spec.to_owned(),
        };
        let body = match spec.rsplit_once('/') {
            Some((body, "tcp")) => body,
            Some(_) => return Err(invalid()),
            None => spec,
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
        })
    }
}

impl PortMapping {
    /// Binds the host side.
    pub(crate) fn bind(&self) -> Result<(PortMapping, TcpListener)> {
        let address = SocketAddr::new(self.host_ip, self.host_port);
        TcpListener::bind(address)
            .map(|listener| (*self, listener))
            .map_err(|source| Error::Publish {
                host: address.to_string(),
                source,
            })
    }
}

/// The running proxy for all published ports of one container.
#[derive(Debug)]
pub(crate) struct Proxy {
    stop: Arc<AtomicBool>,
    listeners: Vec<(SocketAddr, JoinHandle<()>)>,
    dialer: JoinHandle<()>,
    helper: libc::pid_t,
}

impl Proxy {
    /// Starts proxying each listener to the container `pid`'s loopback.
    pub(crate) fn start(pid: Pid, listeners: Vec<(PortMapping, TcpListener)>) -> Result<Proxy> {
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
        let (dial_tx, dial_rx) = mpsc::channel::<(TcpStream, u16)>();
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
            let handle = thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match stream {
                        Ok(stream) => {
                            if dial_tx.send((stream, mapping.container_port)).is_err() {
                                break;
                            }
                        }
                        Err(error) => tracing::debug!(%error, "accept failed"),
                    }
                }
            });
            handles.push((address, handle));
        }
        Ok(Proxy {
            stop,
            listeners: handles,
            dialer,
            helper,
        })
    }

    /// Stops accepting: each accepting thread is woken by one last connection and ends. Connections in flight end
    /// when the container's side closes (the container is gone by then).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for (address, handle) in self.listeners {
            let wake = match address.ip() {
                ip if ip.is_unspecified() && ip.is_ipv4() => {
                    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port())
                }
                ip if ip.is_unspecified() => {
                    SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), address.port())
                }
                _ => address,
            };
            if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
                let _ = handle.join();
            }
        }
        // With every accepting thread gone, the dialing thread's queue ends, it closes the helper's socket and the
        // helper exits.
        if self.dialer.join().is_ok() {
            sys::reap_helper(self.helper);
        }
    }
}

/// Connects each accepted host connection to the container's loopback, through the helper in its namespaces.
fn dialer(helper: &OwnedFd, requests: &mpsc::Receiver<(TcpStream, u16)>) {
    for (client, port) in requests {
        match sys::dial(helper, port) {
            Ok(upstream) => splice(client, TcpStream::from(upstream)),
            Err(error) => {
                tracing::debug!(%error, port, "container port refused the connection");
                let _ = client.shutdown(Shutdown::Both);
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
            (m.host_ip, m.host_port, m.container_port),
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9000, 8080)
        );
        let m: PortMapping = "127.0.0.1:9000:80/tcp".parse().unwrap();
        assert_eq!(m.host_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        for bad in ["80", "a:80", "1:2/udp", "70000:1", "x:1:2"] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad}");
        }
    }
}
