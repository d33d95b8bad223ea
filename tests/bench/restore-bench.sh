#!/usr/bin/env bash
# Restore benchmark: the agent beside `gunzip -c | psql` and `pg_restore -j2`.
#
# Builds a pgbench database (SCALE, default 50), dumps it as a Kubegres backup
# (`pg_dumpall -c | gzip`, Kubegres's file name) and as a custom archive, then
# restores into a fresh cluster per run, in turn, and prints the times, the
# ratios to gunzip|psql and the agent's peak RSS. RUNS repeats each (median).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/tests/scripts/pgcluster.sh"

SCALE="${SCALE:-50}"
RUNS="${RUNS:-1}"
AGENT="${AGENT:-$repo/target/release/restore-agent}"
WORK="${BENCH_DIR:-/tmp/kubegres-restore-bench}"
[ -x "$AGENT" ] || { echo "build the agent first: cargo build --release -p restore-agent" >&2; exit 1; }
bin="$(pg_bindir)"
mkdir -p "$WORK"; chmod 755 "$WORK"
trap 'for d in "$WORK"/pg-*; do [ -d "$d" ] && pg_down "$d"; done' EXIT

backup="$WORK/bench-backup-24_11_2026_03_00_00.gz"
custom="$WORK/bench-scale$SCALE.dump"
if [ ! -s "$backup.scale$SCALE" ] || [ ! -s "$custom" ]; then
    echo "== building a pgbench database, scale $SCALE"
    port=$(pg_up "$WORK/pg-source")
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
    "$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -q -s "$SCALE" bench 2>&1 | tail -1
    "$bin/pg_dumpall" -h 127.0.0.1 -p "$port" -U postgres -c | gzip > "$backup"
    "$bin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres -Fc -f "$custom" bench
    cp "$backup" "$backup.scale$SCALE"
    pg_down "$WORK/pg-source"
else
    cp "$backup.scale$SCALE" "$backup"
fi
echo "== dumps: $(du -h "$backup" | cut -f1) Kubegres backup (gzip), $(du -h "$custom" | cut -f1) custom archive"

accounts() { "$bin/psql" -X -At -h 127.0.0.1 -p "$1" -U postgres -d bench -c "SELECT count(*), sum(abalance) FROM pgbench_accounts"; }

run_one() { # tool -> prints "seconds rss_kb"
    local tool="$1" dir="$WORK/pg-target" port t0 t1 rss=0
    port=$(pg_up "$dir")
    t0=$(date +%s.%N)
    case "$tool" in
        agent)
            /usr/bin/time -f '%M' -o "$WORK/rss" "$AGENT" restore --progress none --log warn \
                --source "$backup" --target "postgres://postgres@127.0.0.1:$port/postgres"
            rss=$(cat "$WORK/rss");;
        psql)
            gunzip -c "$backup" | "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres >/dev/null 2>"$WORK/psql.err" || true;;
        pg_restore)
            "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
            "$bin/pg_restore" -j2 -h 127.0.0.1 -p "$port" -U postgres -d bench "$custom";;
    esac
    t1=$(date +%s.%N)
    local got; got=$(accounts "$port")
    [ "$got" = "$expected" ] || { echo "$tool restored $got, expected $expected" >&2; exit 1; }
    pg_down "$dir"
    echo "$(echo "$t1 - $t0" | bc) $rss"
}

expected="$((SCALE * 100000))|0"
declare -A secs rss
for tool in agent psql pg_restore; do
    times=()
    for _ in $(seq "$RUNS"); do
        read -r s r < <(run_one "$tool")
        times+=("$s"); rss[$tool]=$r
        echo "   $tool: ${s}s"
    done
    secs[$tool]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
done

echo
echo "== restore of a pgbench scale-$SCALE database ($(nproc) cores, PostgreSQL $("$bin/postgres" --version | awk '{print $3}'), median of $RUNS)"
printf '%-34s %9s %9s %12s\n' tool seconds ratio peak-RSS
printf '%-34s %9.1f %9.2f %9d MB\n' "restore-agent (native, gzip)" "${secs[agent]}" "$(echo "${secs[agent]} / ${secs[psql]}" | bc -l)" "$((rss[agent] / 1024))"
printf '%-34s %9.1f %9.2f %12s\n' "gunzip -c | psql" "${secs[psql]}" 1 -
printf '%-34s %9.1f %9.2f %12s\n' "pg_restore -j2 (custom archive)" "${secs[pg_restore]}" "$(echo "${secs[pg_restore]} / ${secs[psql]}" | bc -l)" -
