//! The peers hoist is compared with (dockerd's BuildKit), and whether they are there.

use std::process::{Command, Stdio};

/// The Docker CLI of Debian's docker.io, which talks to the dockerd that `.ci/services.sh` starts.
const DOCKER: &str = "/usr/bin/docker";

/// Whether dockerd answers `docker info`. Without it a peer test fails (this panics, naming `.ci/services.sh`)
/// unless `HOIST_SKIP_PEER_TESTS=1`, which makes it return `false` and say SKIPPED on stderr.
#[allow(clippy::print_stderr, reason = "a skipped test must say so loudly")]
pub fn dockerd_available() -> bool {
    let answers = Command::new(DOCKER)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !answers && std::env::var_os("HOIST_SKIP_PEER_TESTS").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: dockerd is not running (HOIST_SKIP_PEER_TESTS=1)");
        return false;
    }
    assert!(
        answers,
        "dockerd is not running: run `bash .ci/services.sh` (or set HOIST_SKIP_PEER_TESTS=1)"
    );
    true
}
