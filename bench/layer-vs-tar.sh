#!/usr/bin/env bash
# Layer creation and extraction: hoist-layer against GNU tar + gzip/pigz/zstd.
#
#   bench/layer-vs-tar.sh            # generate data (once), build, run, print a summary
#
# Needs: hyperfine, pigz, zstd, GNU tar, GNU time (/usr/bin/time), python3
#   (apt-get install -y hyperfine pigz zstd time).
# Env: BENCH_DIR (default /tmp/hoist-layer-bench), EXTRACT_DIR (default /dev/shm/hoist-layer-extract),
#      RUNS (default 5).
#
# The data set (1 GiB, generated once): 30 000 small files (100 B–32 KiB, 60 % text-like, 40 %
# random) in 2 100 directories, plus 6 large files of 143 MiB (2 random, 2 text-like, 2
# half-and-half). Creation reads it with a warm page cache (one warm-up run); extraction writes
# to tmpfs (EXTRACT_DIR, default under /dev/shm) so both measure CPU and syscall cost, not the
# disk. One extra run of each plain extraction into BENCH_DIR (on disk) is printed for reference.
#
# Caveat on the `tar -c > /dev/null` baseline: GNU tar notices that its archive is /dev/null and
# then does not read file contents at all. `tar -c | cat > /dev/null` is the baseline that reads
# the data, like every other command here; both are reported.
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/hoist-layer-bench}
RUNS=${RUNS:-5}
SRC=$BENCH_DIR/data
OUT=$BENCH_DIR/out
DST=${EXTRACT_DIR:-/dev/shm/hoist-layer-extract}
mkdir -p "$OUT"

for tool in hyperfine pigz zstd python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hyperfine pigz zstd time)" >&2; exit 1; }
done

if [ ! -f "$BENCH_DIR/.data-v2" ]; then
  echo "generating ~1 GiB of test data in $SRC" >&2
  rm -rf "$SRC" && mkdir -p "$SRC"
  python3 - "$SRC" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(1234)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 10)))
         for _ in range(5000)] + ['\n', '{', '}', '(', ')', ';', '=', '0', '1', 'return', 'if']
def text(n):
    out, size = [], 0
    while size < n:
        chunk = ' '.join(rng.choices(words, k=4096))
        out.append(chunk); size += len(chunk) + 1
    return ' '.join(out).encode()[:n]
for i in range(30000):
    d = os.path.join(root, 'small', f'd{i % 300:03d}', f'e{i % 7}')
    os.makedirs(d, exist_ok=True)
    size = int(10 ** rng.uniform(2, 4.5))
    data = text(size) if rng.random() < 0.6 else rng.randbytes(size)
    with open(os.path.join(d, f'f{i:05d}.dat'), 'wb') as f:
        f.write(data)
os.makedirs(os.path.join(root, 'large'), exist_ok=True)
M = 1 << 20
for i in range(6):
    with open(os.path.join(root, 'large', f'big{i}.bin'), 'wb') as f:
        for block in range(143):
            kind = i % 3
            if kind == 0 or (kind == 2 and block % 2):
                f.write(os.urandom(M))
            else:
                f.write(text(M))
PY
  touch "$BENCH_DIR/.data-v2"
fi
echo "data: $(du -sh --apparent-size "$SRC" | cut -f1), $(find "$SRC" -type f | wc -l) files" >&2

cargo build --quiet -p hoist-bench --release --bin layer-create --bin layer-apply
BIN=$PWD/target/release

echo "== create ==" >&2
hyperfine --warmup 1 --runs "$RUNS" --export-json "$OUT/create.json" \
  -n "hoist gzip"        "$BIN/layer-create $SRC gzip > /dev/null" \
  -n "tar | gzip -6"     "tar -C $SRC -cf - . | gzip -6 > /dev/null" \
  -n "tar | pigz -6"     "tar -C $SRC -cf - . | pigz -6 > /dev/null" \
  -n "hoist zstd"        "$BIN/layer-create $SRC zstd > /dev/null" \
  -n "tar | zstd -3 -T0" "tar -C $SRC -cf - . | zstd -q -3 -T0 > /dev/null" \
  -n "hoist none"        "$BIN/layer-create $SRC none > /dev/null" \
  -n "tar | cat"         "tar -C $SRC -cf - . | cat > /dev/null" \
  -n "tar | sha256sum"   "tar -C $SRC -cf - . | sha256sum > /dev/null" \
  -n "tar > /dev/null"   "tar -C $SRC -cf - . > /dev/null"

"$BIN/layer-create" "$SRC" none "$OUT/layer.tar" 2>"$OUT/none.txt"
"$BIN/layer-create" "$SRC" gzip "$OUT/layer.tar.gz" 2>"$OUT/gzip.txt"
"$BIN/layer-create" "$SRC" zstd "$OUT/layer.tar.zst" 2>"$OUT/zstd.txt"
tar -C "$SRC" -cf - . | gzip -6 > "$OUT/gnu.tar.gz"

echo "== extract ==" >&2
hyperfine --warmup 1 --runs "$RUNS" --export-json "$OUT/extract.json" \
  --prepare "rm -rf $DST && mkdir -p $DST" \
  -n "hoist apply tar"   "$BIN/layer-apply $OUT/layer.tar $DST" \
  -n "tar -x"            "tar -xf $OUT/layer.tar -C $DST" \
  -n "hoist apply gzip"  "$BIN/layer-apply $OUT/layer.tar.gz $DST" \
  -n "tar -xzf (gzip)"   "tar -xzf $OUT/layer.tar.gz -C $DST" \
  -n "pigz -dc | tar -x" "pigz -dc $OUT/layer.tar.gz | tar -xf - -C $DST" \
  -n "hoist apply zstd"  "$BIN/layer-apply $OUT/layer.tar.zst $DST"

rss() { # peak RSS in MB of a command
  /usr/bin/time -v sh -c "$1" 2>&1 >/dev/null | awk -F: '/Maximum resident/ {printf "%.1f", $2/1024}'
}
echo "== peak RSS (MB) ==" >&2
{
  echo "hoist gzip create:  $(rss "$BIN/layer-create $SRC gzip > /dev/null")"
  echo "hoist zstd create:  $(rss "$BIN/layer-create $SRC zstd > /dev/null")"
  echo "hoist none create:  $(rss "$BIN/layer-create $SRC none > /dev/null")"
  rm -rf "$DST" && mkdir -p "$DST"
  echo "hoist apply gzip:   $(rss "$BIN/layer-apply $OUT/layer.tar.gz $DST")"
  rm -rf "$DST" && mkdir -p "$DST"
  echo "hoist apply zstd:   $(rss "$BIN/layer-apply $OUT/layer.tar.zst $DST")"
} | tee "$OUT/rss.txt"
rm -rf "$DST"

echo "== extract to disk ($BENCH_DIR), one run each ==" >&2
DISK=$BENCH_DIR/extract
for cmd in "$BIN/layer-apply $OUT/layer.tar $DISK" "tar -xf $OUT/layer.tar -C $DISK"; do
  rm -rf "$DISK" && mkdir -p "$DISK" && sync
  /usr/bin/time -f "%e s wall, %U s user, %S s sys: $cmd" sh -c "$cmd" 2>&1 | tail -1
done | tee "$OUT/disk.txt"
rm -rf "$DISK"

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def means(name):
    with open(os.path.join(out, name)) as f:
        return {r['command']: (r['mean'], r['stddev']) for r in json.load(f)['results']}
c, x = means('create.json'), means('extract.json')
size = lambda p: os.path.getsize(os.path.join(out, p)) / 2**20
print('\n| create | mean ± σ (s) |\n|---|---|')
for k, (m, s) in c.items(): print(f'| {k} | {m:.2f} ± {s:.2f} |')
print('\n| extract | mean ± σ (s) |\n|---|---|')
for k, (m, s) in x.items(): print(f'| {k} | {m:.2f} ± {s:.2f} |')
r = lambda a, b, d: d[a][0] / d[b][0]
print('\nratios (>1 means hoist is faster):')
print(f'  gzip create: tar|gzip -6 / hoist gzip = {r("tar | gzip -6", "hoist gzip", c):.2f}x (target >= 1.5x)')
print(f'  gzip create: tar|pigz -6 / hoist gzip = {r("tar | pigz -6", "hoist gzip", c):.2f}x')
print(f'  zstd create: tar|zstd -T0 / hoist zstd = {r("tar | zstd -3 -T0", "hoist zstd", c):.2f}x')
print(f'  none create: hoist none / tar>/dev/null = {r("hoist none", "tar > /dev/null", c):.2f}x slower (target <= 1.3x)')
print(f'  none create: hoist none / tar|cat = {r("hoist none", "tar | cat", c):.2f}x slower')
print(f'  none create: hoist none / tar|sha256sum = {r("hoist none", "tar | sha256sum", c):.2f}x slower')
print(f'  extract tar: tar -x / hoist = {r("tar -x", "hoist apply tar", x):.2f}x')
print(f'  extract gzip: tar -xzf / hoist = {r("tar -xzf (gzip)", "hoist apply gzip", x):.2f}x')
print(f'  extract gzip: pigz|tar / hoist = {r("pigz -dc | tar -x", "hoist apply gzip", x):.2f}x')
print(f'\nsizes (MiB): tar {size("layer.tar"):.0f}, hoist gzip {size("layer.tar.gz"):.1f}, '
      f'gzip -6 {size("gnu.tar.gz"):.1f}, hoist zstd {size("layer.tar.zst"):.1f}')
PY
