#!/usr/bin/env bash
# Builds the s3s-fs test S3 server once and prints where its binary is.
#
# The binary goes to ${KUBEGRES_RESTORE_CACHE:-$HOME/.cache/kubegres-restore}/s3s-fs/bin/s3s-fs.
# Running the script again when the binary exists does nothing but print the path.
set -euo pipefail

CACHE="${KUBEGRES_RESTORE_CACHE:-$HOME/.cache/kubegres-restore}/s3s-fs"
BIN="$CACHE/bin/s3s-fs"

if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
echo "building s3s-fs 0.14.1 into $CACHE (this takes a few minutes)" >&2
cargo install s3s-fs@0.14.1 --locked --features binary --root "$CACHE" >&2

if [ ! -x "$BIN" ]; then
    echo "s3s-fs build finished but $BIN is missing" >&2
    exit 1
fi
echo "$BIN"
