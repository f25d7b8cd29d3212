#!/bin/sh
# The ci stage's check: the built program answers with the version it was built from.
set -e
out=$("$1" ci)
want="hello from the lifecycle example, version $(cat VERSION), ci"
[ "$out" = "$want" ] || { echo "unexpected output: $out (want: $want)"; exit 1; }
echo "ci: ok"
