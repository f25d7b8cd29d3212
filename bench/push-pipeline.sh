#!/bin/bash
# First pushes of a large built image, timed: compression and upload overlapped or not (docs/registry.md,
# "Measured: compression and upload overlapped").
#
#   bench/push-pipeline.sh HOIST_BINARY LABEL [RUNS] [UPLINK_BYTES_PER_SECOND]
#
# Builds (once, into $WORK/store0) FROM scratch + three COPYs of 96 MiB base64 files, then per run: a fresh copy of
# that store (no recorded gzip variants), a fresh docker-registry on 127.0.0.1, optionally behind
# bench/throttle-proxy.py (client->registry bytes limited to UPLINK bytes/s), and `hoist push -q` under
# /usr/bin/time. Appends one line per run to $WORK/times.txt.
set -euo pipefail
BIN=$1
LABEL=$2
RUNS=${3:-3}
UPLINK=${4:-}
WORK=${WORK:-/tmp/push-pipeline}
HERE=$(cd "$(dirname "$0")" && pwd)
export DOCKER_CONFIG=$WORK/docker HOIST_REGISTRIES_CONF=$WORK/registries.conf TMPDIR=$WORK/tmp
mkdir -p "$WORK/docker" "$WORK/tmp"
: > "$WORK/registries.conf"
if [ ! -d "$WORK/store0" ]; then
    mkdir -p "$WORK/ctx"
    for i in 1 2 3; do head -c 72M /dev/urandom | base64 -w 0 > "$WORK/ctx/l$i"; done
    printf 'FROM scratch\nCOPY l1 /l1\nCOPY l2 /l2\nCOPY l3 /l3\n' > "$WORK/ctx/Dockerfile"
    HOIST_ROOT=$WORK/store0 "$BIN" build -q -t big:1 "$WORK/ctx" > /dev/null
fi
for run in $(seq "$RUNS"); do
    rm -rf "$WORK/store" "$WORK/reg"
    cp -a "$WORK/store0" "$WORK/store"
    mkdir -p "$WORK/reg"
    port=$((15000 + RANDOM % 1000))
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$WORK/reg/storage" "$port" > "$WORK/reg/config.yml"
    docker-registry serve "$WORK/reg/config.yml" > "$WORK/reg/log" 2>&1 < /dev/null &
    pids=$!
    target=$port
    if [ -n "$UPLINK" ]; then
        target=$((port + 1000))
        python3 "$HERE/throttle-proxy.py" "$target" "$port" "$UPLINK" > /dev/null 2>&1 < /dev/null &
        pids="$pids $!"
    fi
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$target/v2/" && break; sleep 0.1; done
    sync
    /usr/bin/time -f "$LABEL run $run: %e s wall, %U s user, %S s sys" -a -o "$WORK/times.txt" \
        env HOIST_ROOT="$WORK/store" "$BIN" push -q big:1 --tag "127.0.0.1:$target/big:1" > /dev/null
    kill $pids
    wait 2> /dev/null || true
    tail -1 "$WORK/times.txt"
done
