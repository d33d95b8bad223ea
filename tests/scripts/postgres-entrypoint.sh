#!/usr/bin/env bash
# The official postgres image's docker-entrypoint.sh, reduced, for the
# process kubelet (harness::kubelet::Program::postgres): as root it prepares
# PGDATA and the socket directory and re-execs itself as `postgres`
# (setpriv instead of gosu); as postgres it runs initdb when PGDATA is empty
# (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, POSTGRES_INITDB_ARGS,
# POSTGRES_HOST_AUTH_METHOD, /docker-entrypoint-initdb.d) and then execs
# postgres listening on the Pod's IP ($PROCESS_KUBELET_POD_IP: there is no
# network namespace, so `*` would clash with every other Pod).
set -Eeo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 00700 "$PGDATA"
	mkdir -p /var/run/postgresql
	chown postgres:postgres /var/run/postgresql
	chmod 03775 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.

			       See PostgreSQL documentation about "trust":
			       https://www.postgresql.org/docs/current/auth-trust.html
		EOE
		exit 1
	fi

	auth_method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
	# Every Pod connects from 127.0.0.1 here (no network namespace): initdb's
	# `host ... 127.0.0.1/32 trust` would let any Pod in without a password,
	# so loopback TCP uses the same method as any other host.
	auth_host=()
	case " ${POSTGRES_INITDB_ARGS:-} " in
		*' --auth'*|*' -A '*) ;;
		*) auth_host=(--auth-host="$auth_method") ;;
	esac
	# The password goes through a process substitution, never a command line.
	# shellcheck disable=SC2086
	initdb --username="${POSTGRES_USER:-postgres}" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
		"${auth_host[@]}" ${POSTGRES_INITDB_ARGS:-}
	printf '\nhost all all all %s\n' "$auth_method" >> "$PGDATA/pg_hba.conf"

	# What the image's entrypoint exports for the init scripts (Kubegres's
	# use POSTGRES_USER and POSTGRES_DB; PGPASSWORD serves an hba_file that
	# asks local connections for a password, as Kubegres's pg_hba.conf does).
	export POSTGRES_USER="${POSTGRES_USER:-postgres}"
	export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
	export PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD:-}}"
	# A temporary server on the unix socket only, with the container's own
	# arguments (config_file, hba_file...) as the image's entrypoint starts it
	# (none: no empty word, which postgres refuses as an invalid argument).
	own_args=''
	if [ "$#" -gt 1 ]; then
		own_args="$(printf '%q ' "${@:2}")"
	fi
	pg_ctl -D "$PGDATA" -o "$own_args -c listen_addresses='' -c unix_socket_directories=/var/run/postgresql -p ${PGPORT:-5432}" -w start
	psql_cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc
		--host /var/run/postgresql --port "${PGPORT:-5432}")
	db="$POSTGRES_DB"
	if [ "$db" != 'postgres' ]; then
		"${psql_cmd[@]}" --dbname postgres --set db="$db" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh) echo "$0: running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
			*.sql) echo "$0: running $f"; "${psql_cmd[@]}" --dbname "$db" -f "$f" ;;
			*.sql.gz) echo "$0: running $f"; gunzip -c "$f" | "${psql_cmd[@]}" --dbname "$db" ;;
			*) [ -e "$f" ] && echo "$0: ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGPASSWORD
	echo
	echo 'PostgreSQL init process complete; ready for start up.'
	echo
fi

shift
if [ -n "${PROCESS_KUBELET_POD_IP:-}" ]; then
	# Last on the command line, so it wins over any earlier listen_addresses.
	exec postgres -c unix_socket_directories=/var/run/postgresql "$@" -c listen_addresses="$PROCESS_KUBELET_POD_IP"
fi
exec postgres "$@"
