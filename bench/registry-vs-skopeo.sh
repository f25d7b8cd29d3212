#!/usr/bin/env bash
# Registry push and pull: hoist against skopeo, both talking to a local docker-registry.
#
#   bench/registry-vs-skopeo.sh          # build hoist (release), make the image, run, print a summary
#
# Needs: hyperfine, skopeo, docker-registry (Debian's distribution), GNU time (/usr/bin/time), python3, curl
#   (apt-get install -y hyperfine skopeo docker-registry time curl).
# Env: SIZE_MB (default 500: the image's total size), ROUNDS (default 5), BENCH_DIR (default
#      /dev/shm/hoist-registry-bench), HOIST (default target/release/hoist, built if missing).
#
# The image: 5 layers of SIZE_MB/5 each, every layer 10 files of random bytes (incompressible, so gzip neither
# helps nor hides anything), built by `hoist build` from a Dockerfile of `FROM scratch` and five `COPY` steps and
# saved as an OCI layout directory for skopeo, so both tools move the same blobs (same digests).
#
# The registry is Debian's `docker-registry` on a free 127.0.0.1 port, storage on tmpfs (BENCH_DIR), no blob
# descriptor cache; before every push its storage is wiped, so each push uploads every blob. Before every pull the
# destination (hoist: an empty store; skopeo: an empty `oci:` directory) is removed.
#
#   push: hoist push IMAGE --tag 127.0.0.1:PORT/bench/hoist:1
#         skopeo copy --dest-tls-verify=false oci:DIR:bench docker://127.0.0.1:PORT/bench/skopeo:1
#   pull: hoist pull 127.0.0.1:PORT/bench/image:1                  (into an empty store)
#         skopeo copy --src-tls-verify=false docker://127.0.0.1:PORT/bench/image:1 oci:DIR:bench
#
# hoist's pull does a little more than skopeo's: it also decompresses each layer and walks its tar to record its
# sizes in the store (the diff IDs the config announces are recorded unverified and checked at the first unpack,
# as containerd does); both hash only the compressed blobs.
#
# Runs are interleaved: ROUNDS rounds, each one hyperfine run of every command (hoist, skopeo, hoist, …), after
# one warm-up round; the summary gives the median and range per command. Peak RSS and CPU time (user + system)
# come from one extra run of each under `/usr/bin/time -v`.
set -euo pipefail

cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-500}
ROUNDS=${ROUNDS:-5}
BENCH_DIR=${BENCH_DIR:-/dev/shm/hoist-registry-bench}
HOIST=${HOIST:-$PWD/target/release/hoist}
LAYERS=5
FILES=10

for tool in hyperfine skopeo docker-registry python3 curl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hyperfine skopeo docker-registry time curl)" >&2; exit 1; }
done
if [ ! -x "$HOIST" ]; then
  cargo build --release -p hoist >&2
fi

mkdir -p "$BENCH_DIR"
WORK=$BENCH_DIR/work
RESULTS=$BENCH_DIR/results
rm -rf "$WORK" "$RESULTS" && mkdir -p "$WORK" "$RESULTS"
export DOCKER_CONFIG=$WORK/docker-config HOIST_REGISTRIES_CONF=$WORK/registries.conf
mkdir -p "$DOCKER_CONFIG" && : > "$HOIST_REGISTRIES_CONF"

# The image, made once per size.
DATA=$BENCH_DIR/data-$SIZE_MB
SOURCE_STORE=$DATA/store
OCI_DIR=$DATA/oci
if [ ! -f "$DATA/.done" ]; then
  echo "making a $SIZE_MB MB, $LAYERS-layer image in $DATA" >&2
  rm -rf "$DATA" && mkdir -p "$DATA/context"
  file_kb=$(( SIZE_MB * 1024 / LAYERS / FILES ))
  dockerfile="FROM scratch"
  for layer in $(seq 1 $LAYERS); do
    mkdir -p "$DATA/context/l$layer"
    for file in $(seq 1 $FILES); do
      head -c "${file_kb}K" /dev/urandom > "$DATA/context/l$layer/f$file.bin"
    done
    dockerfile="$dockerfile"$'\n'"COPY l$layer /l$layer/"
  done
  printf '%s\n' "$dockerfile" > "$DATA/context/Dockerfile"
  "$HOIST" --root "$SOURCE_STORE" build --progress quiet -t bench/image:1 "$DATA/context" >/dev/null
  "$HOIST" --root "$SOURCE_STORE" save --format oci -o "$OCI_DIR/" bench/image:1
  rm -rf "$DATA/context"
  touch "$DATA/.done"
fi
# skopeo reads the layout by the name in its index (`org.opencontainers.image.ref.name`).
OCI_NAME=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["manifests"][0]; print(m.get("annotations",{}).get("org.opencontainers.image.ref.name",""))' "$OCI_DIR/index.json")
OCI_SRC="oci:$OCI_DIR${OCI_NAME:+:$OCI_NAME}"

# The registry.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REGISTRY=127.0.0.1:$PORT
STORAGE=$WORK/registry
cat > "$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STORAGE
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
trap 'kill "$REGISTRY_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$REGISTRY/v2/" >/dev/null

PULL_STORE=$WORK/pull-store
PULL_OCI=$WORK/pull-oci
HOIST_PUSH="$HOIST --root $SOURCE_STORE push -q bench/image:1 --tag $REGISTRY/bench/hoist:1"
SKOPEO_PUSH="skopeo copy -q --dest-tls-verify=false $OCI_SRC docker://$REGISTRY/bench/skopeo:1"
HOIST_PULL="$HOIST --root $PULL_STORE pull -q $REGISTRY/bench/image:1"
SKOPEO_PULL="skopeo copy -q --src-tls-verify=false docker://$REGISTRY/bench/image:1 oci:$PULL_OCI:bench"
WIPE="rm -rf $STORAGE/docker"
SEED="$HOIST --root $SOURCE_STORE push -q bench/image:1 --tag $REGISTRY/bench/image:1"

# Rounds: warm-up (round 0, not counted), then ROUNDS interleaved rounds.
for round in $(seq 0 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  hyperfine --runs 1 --style none --export-json "$RESULTS/push-$round.json" \
    --prepare "$WIPE" -n hoist-push "$HOIST_PUSH" -n skopeo-push "$SKOPEO_PUSH" >/dev/null
  # The image to pull, pushed once by hoist after the push runs wiped the storage.
  $SEED >/dev/null
  hyperfine --runs 1 --style none --export-json "$RESULTS/pull-$round.json" \
    --prepare "rm -rf $PULL_STORE $PULL_OCI" -n hoist-pull "$HOIST_PULL" -n skopeo-pull "$SKOPEO_PULL" >/dev/null
done

# Peak RSS, one run each.
rss() { # name, prepare, command
  eval "$2"
  /usr/bin/time -v $3 2> "$RESULTS/rss-$1.txt" >/dev/null
  awk -F': ' '/Maximum resident set size/ {print $2}' "$RESULTS/rss-$1.txt" > "$RESULTS/rss-$1"
  awk -F': ' '/User time|System time/ {cpu += $2} END {print cpu}' "$RESULTS/rss-$1.txt" > "$RESULTS/cpu-$1"
}
rss hoist-push "$WIPE" "$HOIST_PUSH"
rss skopeo-push "$WIPE" "$SKOPEO_PUSH"
$SEED >/dev/null
rss hoist-pull "rm -rf $PULL_STORE $PULL_OCI" "$HOIST_PULL"
rss skopeo-pull "rm -rf $PULL_STORE $PULL_OCI" "$SKOPEO_PULL"

echo
echo "image: $SIZE_MB MB in $LAYERS layers of random data; registry $REGISTRY on tmpfs; $ROUNDS interleaved rounds"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RESULTS" "$ROUNDS" "$SIZE_MB" <<'PY'
import json, statistics, sys
results, rounds, size_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = {}
for op in ("push", "pull"):
    for r in range(1, rounds + 1):
        for result in json.load(open(f"{results}/{op}-{r}.json"))["results"]:
            times.setdefault(result["command"], []).append(result["times"][0])
def rss(name):
    return int(open(f"{results}/rss-{name}").read()) / 1024
def cpu(name):
    return float(open(f"{results}/cpu-{name}").read())
print(f"| command | median | min–max | throughput | peak RSS | CPU (user+sys) |")
print(f"| --- | --- | --- | --- | --- | --- |")
for name, values in times.items():
    median = statistics.median(values)
    print(f"| {name} | {median:.2f} s | {min(values):.2f}–{max(values):.2f} s | "
          f"{size_mb / median:.0f} MB/s | {rss(name):.0f} MB | {cpu(name):.2f} s |")
for op in ("push", "pull"):
    hoist, skopeo = statistics.median(times[f"hoist-{op}"]), statistics.median(times[f"skopeo-{op}"])
    print(f"{op}: hoist is {skopeo / hoist:.2f}x skopeo (median)")
PY
