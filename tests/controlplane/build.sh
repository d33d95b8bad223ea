#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and etcd from
# their published Go modules (through the Go module proxy) into a cache outside
# the checkout, and prints their paths.
#
#   ${KUBEGRES_RESTORE_CACHE:-$HOME/.cache/kubegres-restore}/controlplane/<KUBE_VERSION>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,etcd}
#
# Idempotent: when every binary exists it only prints the paths. A cold build
# takes a long time on a small machine (see README.md next to this script).
# The Go module and build caches live in the same cache directory, so an
# interrupted build resumes quickly.
set -euo pipefail

# Pinned versions. KUBE_VERSION is the newest patch on the proxy of the newest
# Kubernetes minor that k8s-openapi has a feature for (v1_37); ETCD_VERSION is
# the etcd that this Kubernetes tag pins in build/dependencies.yaml.
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.0

here="$(cd "$(dirname "$0")" && pwd)"
ROOT="${KUBEGRES_RESTORE_CACHE:-$HOME/.cache/kubegres-restore}/controlplane"
OUT="$ROOT/$KUBE_VERSION"
BIN="$OUT/bin"

# The Kubernetes commands built from k8s.io/kubernetes, all at KUBE_VERSION.
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler)

print_paths() {
    local c
    for c in "${KUBE_COMMANDS[@]}"; do echo "$BIN/$c"; done
    echo "$BIN/etcd"
}

all_built() {
    local c
    for c in "${KUBE_COMMANDS[@]}" etcd; do [ -x "$BIN/$c" ] || return 1; done
}

if all_built; then
    print_paths
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "controlplane: the go command is required to build kube-apiserver and etcd" >&2
    exit 1
fi

mkdir -p "$BIN" "$OUT/src"
# Outside any go.mod, so `go mod download` works in module mode.
cd "$OUT/src"
# Two test processes may ask for the build at once: one builds, the other waits.
exec 9>"$ROOT/.build.lock"
flock 9
if all_built; then
    print_paths
    exit 0
fi

export GOMODCACHE="$ROOT/go/mod"
export GOCACHE="$ROOT/go/build"
export GOFLAGS="-trimpath -buildvcs=false -modcacherw"
export CGO_ENABLED=0
export GOMAXPROCS=2
export GOTOOLCHAIN=local
export GOWORK=off
export GO111MODULE=on

started=$(date +%s)
log() { echo "controlplane: $*" >&2; }

# mod_field MODULE@VERSION FIELD: downloads a module and prints one field of
# `go mod download -json` (Dir: its source, Info: its .info file).
mod_field() {
    go mod download -json "$1" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p"
}
mod_dir() { mod_field "$1" Dir; }

# Prints the `go` and `godebug` directives of a go.mod, so that our module
# builds with the same language version and GODEBUG defaults as upstream.
go_directives() {
    grep -E '^(go|godebug) ' "$1"
}

# render TEMPLATE DEST GO_MOD REPLACES: fills a go.mod template.
render() {
    local template=$1 dest=$2 upstream=$3 replaces=$4
    local directives
    directives=$(go_directives "$upstream")
    awk -v directives="$directives" -v replaces="$replaces" \
        -v kube="$KUBE_VERSION" -v etcd="$ETCD_VERSION" '
        /^@GO_DIRECTIVES@$/ { print directives; next }
        /^@REPLACES@$/ { print replaces; next }
        { gsub(/@KUBE_VERSION@/, kube); gsub(/@ETCD_VERSION@/, etcd); print }
    ' "$template" >"$dest"
}

# --- kube-apiserver, kube-controller-manager, kube-scheduler ------------------
build_kubernetes() {
    log "downloading k8s.io/kubernetes@$KUBE_VERSION"
    local kdir
    kdir=$(mod_dir "k8s.io/kubernetes@$KUBE_VERSION")
    [ -n "$kdir" ] && [ -f "$kdir/go.mod" ] || { log "k8s.io/kubernetes@$KUBE_VERSION has no go.mod in the module cache"; exit 1; }

    # The tag must pair with the pinned etcd.
    local paired
    paired=$(awk '/name: "etcd"/ { f = 1; next } f && /version:/ { print $2; exit }' "$kdir/build/dependencies.yaml")
    if [ "v$paired" != "$ETCD_VERSION" ]; then
        log "k8s.io/kubernetes@$KUBE_VERSION pins etcd $paired in build/dependencies.yaml but this script pins $ETCD_VERSION"
        exit 1
    fi

    # Every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.Y.Z`.
    local staging_version="v0.${KUBE_VERSION#v1.}"
    local replaces
    replaces=$(awk -v v="$staging_version" '
        $2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }
    ' "$kdir/go.mod")
    if [ "$(printf '%s\n' "$replaces" | grep -c '=>')" -lt 20 ]; then
        log "found too few staging replaces in $kdir/go.mod:"
        printf '%s\n' "$replaces" >&2
        exit 1
    fi

    local src="$OUT/src/kube-apiserver"
    mkdir -p "$src"
    render "$here/kube-apiserver.go.mod.tmpl" "$src/go.mod" "$kdir/go.mod" "$replaces"
    rm -f "$src/go.sum"

    log "resolving the dependencies of ${KUBE_COMMANDS[*]}"
    local c pkgs=()
    for c in "${KUBE_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c@$KUBE_VERSION"); done
    (cd "$src" && go get "${pkgs[@]}")

    # The same version variables hack/lib/version.sh sets; the build date is
    # the tag's date on the proxy, so the build is reproducible.
    local minor tagtime ldflags=("-s" "-w")
    minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
    tagtime=$(sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$(mod_field "k8s.io/kubernetes@$KUBE_VERSION" Info)")
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=("-X" "$pkg.gitVersion=$KUBE_VERSION"
            "-X" "$pkg.gitMajor=1"
            "-X" "$pkg.gitMinor=$minor"
            "-X" "$pkg.gitTreeState=clean"
            "-X" "$pkg.gitCommit="
            "-X" "$pkg.buildDate=${tagtime:-1970-01-01T00:00:00Z}")
    done

    for c in "${KUBE_COMMANDS[@]}"; do
        [ -x "$BIN/$c" ] && continue
        log "building $c $KUBE_VERSION (the first one is the long part; the others share its build cache)"
        (cd "$src" && go build -p 2 -ldflags "${ldflags[*]}" -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c")
        mv -f "$BIN/$c.tmp" "$BIN/$c"
    done
}

# --- etcd ---------------------------------------------------------------------
build_etcd() {
    log "downloading go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    local edir
    edir=$(mod_dir "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
    [ -n "$edir" ] && [ -f "$edir/go.mod" ] || { log "go.etcd.io/etcd/server/v3@$ETCD_VERSION has no go.mod in the module cache"; exit 1; }

    # Every `go.etcd.io/etcd/x/v3 => ../x` becomes `go.etcd.io/etcd/x/v3 => go.etcd.io/etcd/x/v3 vX.Y.Z`.
    local replaces
    replaces=$(awk -v v="$ETCD_VERSION" '
        $2 == "=>" && $3 ~ /^\.\.\// { printf "\t%s => %s %s\n", $1, $1, v }
    ' "$edir/go.mod")

    local src="$OUT/src/etcd"
    mkdir -p "$src"
    render "$here/etcd.go.mod.tmpl" "$src/go.mod" "$edir/go.mod" "$replaces"
    rm -f "$src/go.sum"

    log "resolving etcd's dependencies"
    (cd "$src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION")

    log "building etcd $ETCD_VERSION"
    (cd "$src" && go build -p 2 \
        -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
        -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
    mv -f "$BIN/etcd.tmp" "$BIN/etcd"
}

[ -x "$BIN/etcd" ] || build_etcd
all_built || build_kubernetes

log "built in $(( $(date +%s) - started ))s"
for c in "${KUBE_COMMANDS[@]}" etcd; do "$BIN/$c" --version >&2; done
print_paths
