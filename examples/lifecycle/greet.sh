#!/bin/sh
# The example's whole program: a greeting stamped with the version at build time.
[ -n "$GREET_TRACE" ] && set -x
echo "hello from the lifecycle example, version @VERSION@${1:+, $1}"
