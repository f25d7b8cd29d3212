#!/usr/bin/env bash
# Container overheads: hoist against docker on the same busybox image.
#
#   bench/run-vs-docker.sh           # build (release, if missing), make the image, run, print a summary
#
# Needs: root, a running dockerd, hyperfine, /bin/busybox (busybox-static), python3.
# Env: BENCH_DIR (default /tmp/hoist-run-bench), RUNS (default 30), HOIST (default target/release/hoist, built if
#      missing), SNAPSHOT_DIFF (default target/release/snapshot-diff, built if missing), DOCKER (default
#      /usr/bin/docker: Debian's CLI, whose `docker build` has BuildKit built in).
#
# 1. Start-up: `hoist run --rm --network none IMAGE true` against `docker run --rm --network none IMAGE true`
#    (both make a network namespace; docker's default bridge also needs a veth pair, which some machines, like
#    the one the recorded numbers come from, do not allow). The image is made once with `hoist import` (busybox
#    and its applets) and loaded into docker with `hoist save | docker load`, so both run the same layer.
# 2. An empty RUN step: `hoist build --no-cache` of `FROM IMAGE` + `RUN true` against the same Dockerfile with
#    `ENV X=1` instead of the RUN (same export work, no container): the difference is what one step costs.
#    `docker build --network none --no-cache` (dockerd's BuildKit) of the RUN Dockerfile is printed for reference.
# 3. A step's snapshot and diff: 200 MB in 5,000 files (40 000 random bytes each) taken as a step's upper
#    directory and written as an uncompressed layer tar (`snapshot-diff`, hoist-sandbox's Snapshot::write_diff),
#    against `cp -a` of the same files, on the same file system, page cache warm: on BENCH_DIR's disk, then in
#    tmpfs (TMPFS_DIR, default /dev/shm/hoist-run-bench-diff; needs 400 MB of memory).
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/hoist-run-bench}
RUNS=${RUNS:-30}
HOIST=${HOIST:-$PWD/target/release/hoist}
SNAPSHOT_DIFF=${SNAPSHOT_DIFF:-$PWD/target/release/snapshot-diff}
DOCKER=${DOCKER:-/usr/bin/docker}
IMAGE=hoist-bench/busybox:run

for tool in hyperfine "$DOCKER" python3 /bin/busybox; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hyperfine docker.io busybox-static)" >&2; exit 1; }
done
[ -x "$HOIST" ] || cargo build --release -p hoist >&2
[ -x "$SNAPSHOT_DIFF" ] || cargo build --release -p hoist-bench --bin snapshot-diff >&2

mkdir -p "$BENCH_DIR"
STORE=$BENCH_DIR/store
RESULTS=$BENCH_DIR/results
rm -rf "$RESULTS" && mkdir -p "$RESULTS"

# The image, in hoist's store and in docker.
if ! "$HOIST" --root "$STORE" inspect "$IMAGE" >/dev/null 2>&1; then
  rootfs=$BENCH_DIR/rootfs
  rm -rf "$rootfs" && mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
  tar -C "$rootfs" -cf "$BENCH_DIR/rootfs.tar" .
  "$HOIST" --root "$STORE" import "$BENCH_DIR/rootfs.tar" "$IMAGE" >/dev/null
fi
"$HOIST" --root "$STORE" save "$IMAGE" | "$DOCKER" load -q >/dev/null

# 1. Start-up.
hyperfine --warmup 3 --runs "$RUNS" -N --export-json "$RESULTS/run.json" \
  -n "hoist run --rm" "$HOIST --root $STORE run --rm --network none $IMAGE true" \
  -n "docker run --rm" "$DOCKER run --rm --network none $IMAGE true"

# 2. An empty RUN step.
for kind in run env; do
  mkdir -p "$BENCH_DIR/ctx-$kind"
done
printf 'FROM %s\nRUN true\n' "$IMAGE" > "$BENCH_DIR/ctx-run/Dockerfile"
printf 'FROM %s\nENV X=1\n' "$IMAGE" > "$BENCH_DIR/ctx-env/Dockerfile"
hyperfine --warmup 2 --runs "$RUNS" -N --export-json "$RESULTS/step.json" \
  -n "hoist build RUN true" "$HOIST --root $STORE build --no-cache -q $BENCH_DIR/ctx-run" \
  -n "hoist build ENV (no step)" "$HOIST --root $STORE build --no-cache -q $BENCH_DIR/ctx-env"
hyperfine --warmup 1 --runs 10 --export-json "$RESULTS/docker-step.json" \
  -n "docker build RUN true" "DOCKER_BUILDKIT=1 $DOCKER build --network none --no-cache -q $BENCH_DIR/ctx-run"

# 3. Snapshot + diff of 200 MB in 5,000 files against cp -a.
DATA=$BENCH_DIR/diff-data
if [ ! -f "$BENCH_DIR/.diff-data-v1" ]; then
  rm -rf "$DATA" && mkdir -p "$DATA"
  python3 - "$DATA" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(50):
    os.makedirs(f"{root}/d{d:02}")
    for f in range(100):
        with open(f"{root}/d{d:02}/f{f:03}", "wb") as out:
            out.write(os.urandom(40000))
PY
  touch "$BENCH_DIR/.diff-data-v1"
fi
# On the disk BENCH_DIR is on, then in tmpfs (file creation on a busy disk dominates `cp -a`; in memory both
# are bound by copying bytes and making entries).
TMPFS_DIR=${TMPFS_DIR:-/dev/shm/hoist-run-bench-diff}
rm -rf "$TMPFS_DIR" && mkdir -p "$TMPFS_DIR" && cp -a "$DATA" "$TMPFS_DIR/diff-data"
for place in disk tmpfs; do
  if [ $place = disk ]; then dir=$BENCH_DIR; else dir=$TMPFS_DIR; fi
  mkdir -p "$dir/diff-scratch"
  hyperfine --warmup 2 --runs 10 -N --export-json "$RESULTS/diff-$place.json" \
    --prepare "rm -rf $dir/diff-copy $dir/diff.tar" \
    -n "snapshot + diff" "$SNAPSHOT_DIFF $dir/diff-data $dir/diff-scratch $dir/diff.tar" \
    -n "cp -a" "cp -a $dir/diff-data $dir/diff-copy"
  rm -rf "$dir/diff-copy" "$dir/diff.tar"
done
rm -rf "$TMPFS_DIR"

python3 - "$RESULTS" <<'PY'
import json, sys
results = sys.argv[1]
def times(name):
    return {r["command"]: r for r in json.load(open(f"{results}/{name}.json"))["results"]}
run = times("run")
hoist, docker = run["hoist run --rm"], run["docker run --rm"]
print()
print(f"start-up:  hoist run --rm {hoist['mean']*1000:.1f} ms ± {hoist['stddev']*1000:.1f}, "
      f"docker run --rm {docker['mean']*1000:.1f} ms ± {docker['stddev']*1000:.1f}: "
      f"ratio {hoist['mean']/docker['mean']:.3f} (target ≤ 0.5)")
step = times("step")
with_run, without = step["hoist build RUN true"], step["hoist build ENV (no step)"]
docker_step = times("docker-step")["docker build RUN true"]
print(f"RUN true:  build {with_run['mean']*1000:.1f} ms, without the step {without['mean']*1000:.1f} ms: "
      f"one empty step costs {(with_run['mean']-without['mean'])*1000:.1f} ms "
      f"(docker build --no-cache of the same: {docker_step['mean']*1000:.0f} ms)")
for place in ("disk", "tmpfs"):
    diff = times(f"diff-{place}")
    snap, cp = diff["snapshot + diff"], diff["cp -a"]
    print(f"diff ({place}): snapshot + diff {snap['mean']*1000:.0f} ms ± {snap['stddev']*1000:.0f}, "
          f"cp -a {cp['mean']*1000:.0f} ms ± {cp['stddev']*1000:.0f}: ratio {snap['mean']/cp['mean']:.2f} (target ≤ 1.5)")
PY
