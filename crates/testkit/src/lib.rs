//! hoist-testkit: fixtures shared by hoist's integration tests.
//!
//! The one idea: **a test states what its world holds, and the kit makes it the same way every time.** The pieces
//! that each test file used to write again live here, each small and real: a busybox root file system packed by
//! tar(1) ([`BusyboxRootfs`]), the `hoist` binary pointed at a private store, Docker configuration, registries
//! configuration and `$TMPDIR` ([`HoistCmd`], [`Run`]), loopback ports ([`free_port`], [`wait_for_port`],
//! [`http_get`]), polling ([`wait_until`]), whether dockerd is there to compare with ([`dockerd_available`]) and an error with its causes on one line ([`error_chain`]).
//!
//! Nothing here stands in for the thing under test: the rootfs is Debian's `/bin/busybox`, the archive is tar(1)'s,
//! and the binary is the one cargo built. A fixture that cannot do its job panics with what went wrong, which fails
//! the test that asked for it.
//!
//! ```no_run
//! use hoist_testkit::{BusyboxRootfs, HoistCmd};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let tar = BusyboxRootfs::new(dir.path().join("rootfs"))
//!     .applets(&["sh", "echo"])
//!     .passwd("root:x:0:0:root:/root:/bin/sh\n")
//!     .tar();
//! let hoist = HoistCmd::new(env!("CARGO_BIN_EXE_hoist")).isolated(dir.path());
//! hoist.ok(&["import", "--change", "ENV PATH=/bin", tar.to_str().unwrap(), "bb:1"]);
//! let run = hoist.run(&["run", "--rm", "bb:1", "echo", "hi"]);
//! assert_eq!(run.stdout, "hi\n");
//! ```
//!
//! Contents: [`BusyboxRootfs`] and [`tar_dir`] (images), [`HoistCmd`] and [`Run`] (the binary), [`free_port`],
//! [`wait_for_port`], [`http_get`] and [`wait_until`] (waiting on things), [`dockerd_available`] (peers),
//! [`error_chain`] (errors).

mod errors;
mod hoist;
mod net;
mod peers;
mod rootfs;

pub use errors::error_chain;
pub use hoist::{HoistCmd, Run};
pub use net::{free_port, http_get, wait_for_port, wait_until};
pub use peers::dockerd_available;
pub use rootfs::{BusyboxRootfs, tar_dir};
