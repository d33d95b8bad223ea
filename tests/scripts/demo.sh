#!/usr/bin/env bash
# The demo: the exact kind of backup Kubegres writes (`pg_dumpall -c | gzip`
# named <name>-backup-DD_MM_YYYY_HH_MM_SS.gz) of the Pagila sample database,
# restored by restore-agent into a brand-new PostgreSQL, with live progress,
# then checked row by row against the source.
#
# `make demo-agent` runs this; `make demo` is the whole system on the local
# cluster (tests/src/bin/demo.rs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/pgcluster.sh"
AGENT="${AGENT:-$repo/target/release/restore-agent}"
PAGILA="${PAGILA:-$repo/../shared/testdata/pagila}"
WORK="$(mktemp -d /tmp/kubegres-restore-demo.XXXXXX)"
chmod 755 "$WORK"
bin="$(pg_bindir)"
trap 'pg_down "$WORK/source"; pg_down "$WORK/target"; rm -rf "$WORK"' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting a source PostgreSQL and loading Pagila"
src=$(pg_up "$WORK/source")
"$bin/createdb" -h 127.0.0.1 -p "$src" -U postgres pagila
"$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$src" -U postgres -d pagila -f "$PAGILA/pagila-schema.sql" >/dev/null
"$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$src" -U postgres -d pagila -f "$PAGILA/pagila-data.sql" >/dev/null

backup="$WORK/backups/mycluster-backup-$(date +%d_%m_%Y_%H_%M_%S).gz"
mkdir -p "$WORK/backups"
say "taking a Kubegres-style backup: pg_dumpall -c | gzip > $(basename "$backup")"
"$bin/pg_dumpall" -h 127.0.0.1 -p "$src" -U postgres -c | gzip > "$backup"
ls -l "$backup"

say "restore-agent inspect"
"$AGENT" inspect --source "$WORK/backups" --pick latest || true

say "starting an empty target PostgreSQL and restoring the newest backup"
dst=$(pg_up "$WORK/target")
"$AGENT" restore --source "$WORK/backups" --pick latest \
    --target "postgres://postgres@127.0.0.1:$dst/postgres" --progress json --progress-interval 0.2 \
  | python3 -c '
import json, sys
last = None
for line in sys.stdin:
    e = json.loads(line)
    p = e.get("progress", {})
    if e["event"] == "progress":
        shown = "  %3s%%  %7d rows  db=%-9s %s" % (p.get("percent", "?"), p.get("rowsCopied", 0),
              p.get("currentDatabase", ""), p.get("currentObject", ""))
        if shown != last:
            print(shown, flush=True)
        last = shown
    else:
        print("  %s: %s" % (e["event"], json.dumps(e.get("summary") or e.get("failure"))))
'

say "checking the restored rows against the source"
tables=$("$bin/psql" -X -At -h 127.0.0.1 -p "$src" -U postgres -d pagila -c \
  "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
fail=0
for t in $tables; do
    q="SELECT count(*) || ' rows, md5 ' || md5(string_agg(x::text, E'\n' ORDER BY x::text)) FROM $t x"
    a=$("$bin/psql" -X -At -h 127.0.0.1 -p "$src" -U postgres -d pagila -c "$q")
    b=$("$bin/psql" -X -At -h 127.0.0.1 -p "$dst" -U postgres -d pagila -c "$q")
    if [ "$a" = "$b" ]; then printf '  ok   %-28s %s\n' "$t" "$a"; else printf '  DIFF %-28s %s vs %s\n' "$t" "$a" "$b"; fail=1; fi
done
[ "$fail" -eq 0 ] && say "the restored database matches the source, table by table and row by row" || { say "MISMATCH"; exit 1; }
