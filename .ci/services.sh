#!/usr/bin/env bash
# Installs and starts what hoist's compatibility tests (crates/cli/tests/compat.rs) talk to:
# docker (dockerd + containerd + runc), skopeo, umoci and a static busybox for test rootfs tarballs.
#
# Idempotent: every step checks whether its result already exists, so it is safe on a fresh machine and on one
# where everything already runs. No systemd here: dockerd is started by hand (setsid + nohup), logging to
# $HOIST_SERVICES_DIR/dockerd.log, and we wait until `/usr/bin/docker info` answers.
#
# Env: HOIST_SERVICES_DIR (default /tmp/hoist-services): log and pid files.
# Uses /usr/bin/docker (Debian's client, matching Debian's dockerd), never /usr/local/bin/docker.
set -euo pipefail

SERVICES_DIR=${HOIST_SERVICES_DIR:-/tmp/hoist-services}
DOCKER=/usr/bin/docker
PKGS="docker.io containerd runc skopeo umoci busybox-static docker-registry apache2-utils python3 python3-pip file pigz zstd golang-go openssl openssh-client hyperfine gcc libc6-dev keyutils uidmap attr libcap2-bin"

log() { printf '[services %s] %s\n' "$(date +%T)" "$*"; }
mkdir -p "$SERVICES_DIR"

# ---------------------------------------------------------------- 1. packages
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=""
for p in $PKGS; do is_installed "$p" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # `apt-get update` only when the package lists are stale or absent (first install attempt fails).
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  if ! apt-get install -y --no-install-recommends $missing; then
    log "apt-get install failed; running apt-get update once and retrying"
    apt-get update
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $missing
  fi
else
  log "packages already installed: $PKGS"
fi
for bin in "$DOCKER" /usr/sbin/dockerd /usr/bin/skopeo /usr/bin/umoci /bin/busybox; do
  [ -x "$bin" ] || { log "ERROR: $bin missing after install"; exit 1; }
done

# ---------------------------------------------------------------- 2. dockerd
docker_ok() { "$DOCKER" info >/dev/null 2>&1; }
if docker_ok; then
  log "dockerd already running"
else
  started=0
  # Plain `dockerd` (overlay2, bridge + iptables) works on this kind of VM; the other flag sets are fallbacks for
  # hosts without overlayfs or iptables.
  for flags in "" "--storage-driver=vfs" "--storage-driver=vfs --iptables=false --bridge=none"; do
    log "starting dockerd ${flags:-(default flags)}"
    # shellcheck disable=SC2086 # flags are several words
    setsid nohup /usr/sbin/dockerd $flags >>"$SERVICES_DIR/dockerd.log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 120); do
      docker_ok && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if docker_ok; then
      echo "$pid" >"$SERVICES_DIR/dockerd.pid"
      started=1
      break
    fi
    log "dockerd ${flags:-(default flags)} did not come up; last log lines:"
    tail -5 "$SERVICES_DIR/dockerd.log" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$started" != 1 ]; then
    log "ERROR: dockerd could not be started; see $SERVICES_DIR/dockerd.log"
    exit 1
  fi
fi

log "ready: $("$DOCKER" version --format 'docker {{.Server.Version}}' 2>/dev/null)," \
  "$(skopeo --version 2>/dev/null)," "$(umoci --version 2>/dev/null)"

# ---------------------------------------------------------------- Lambda runtime clients (crates/lambda/tests)
# PyPI's awslambdaric (a manylinux wheel, no native build). Debian's own python3 refuses plain `pip install`
# (PEP 668), hence the second form.
if python3 -c 'import awslambdaric' 2>/dev/null; then
  log "awslambdaric already installed"
else
  log "installing awslambdaric"
  python3 -m pip install --quiet awslambdaric || python3 -m pip install --quiet --break-system-packages awslambdaric
fi
