#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store's contract tests (ctest
# fixture; docs/api-postgres.md "Tests").
#
#   scripts/pg-test.sh start DIR        initdb a cluster in DIR, start it, create a
#                                       database; prints its URL and writes it to DIR/url
#   scripts/pg-test.sh stop DIR         stop the cluster (pg_ctl stop -m fast), remove DIR
#   scripts/pg-test.sh run DIR CMD...   run CMD with SPHERE_TEST_STORE_URL=$(cat DIR/url)
#
# The cluster listens only on a Unix socket in DIR (mode 0700, trust auth for
# the cluster's own superuser "sphere"): nothing is reachable over TCP. As root
# it runs as the `postgres` OS user (initdb refuses root). A stale cluster left
# by an aborted run is stopped and removed by the next start.
set -euo pipefail

usage() {
	echo "usage: $0 start DIR | stop DIR | run DIR CMD [ARG...]" >&2
	exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
case "$dir" in
/*) ;;
*) dir="$PWD/$dir" ;;
esac

DB=sphere_test
SUPERUSER=sphere

# The server binaries: $PG_BINDIR, else Debian's newest /usr/lib/postgresql/*/bin,
# else whatever is on PATH.
find_bindir() {
	local d
	if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then
		echo "$PG_BINDIR"
		return 0
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

die() {
	echo "pg-test: $*" >&2
	exit 1
}

# Runs a server-side command as the cluster's owner.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Stops whatever cluster DIR holds (if any) and removes DIR. Idempotent.
cleanup() {
	local bindir=$1 sock=""
	if [ -f "$dir/data/postmaster.pid" ] && [ -n "$bindir" ]; then
		as_owner "$bindir/pg_ctl" stop -D "$dir/data" -m fast -w -t 30 >/dev/null 2>&1 ||
			as_owner "$bindir/pg_ctl" stop -D "$dir/data" -m immediate -w -t 30 >/dev/null 2>&1 ||
			true
	fi
	if [ -f "$dir/data/postmaster.pid" ]; then
		# No pg_ctl, or it failed: end the postmaster by its recorded pid.
		local pid
		pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
		if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
			kill -QUIT "$pid" 2>/dev/null || true
			sleep 1
		fi
	fi
	[ -f "$dir/sockdir" ] && sock=$(cat "$dir/sockdir")
	case "$sock" in /tmp/sphere-pg.*) rm -rf "$sock" ;; esac
	rm -rf "$dir"
}

start() {
	local bindir sock url
	bindir=$(find_bindir) || die "PostgreSQL server binaries (initdb, pg_ctl) not found:" \
		"run scripts/deps.sh (as root) to install postgresql, or set PG_BINDIR"
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		die "running as root but there is no 'postgres' user to own the cluster:" \
			"run scripts/deps.sh (the postgresql package creates it)"
	fi
	cleanup "$bindir" # a stale cluster from an aborted run
	mkdir -p "$dir"
	chmod 0700 "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	# A Unix socket path holds at most 107 bytes: a deep build tree gets a
	# short socket directory in /tmp, removed by stop.
	sock=$dir
	if [ ${#dir} -gt 80 ]; then
		sock=$(mktemp -d /tmp/sphere-pg.XXXXXX)
		chmod 0700 "$sock"
		[ "$(id -u)" -eq 0 ] && chown postgres: "$sock"
	fi
	echo "$sock" >"$dir/sockdir"
	as_owner "$bindir/initdb" -D "$dir/data" -U "$SUPERUSER" -A trust -E UTF8 \
		--locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
	# Only the socket; durability stays at PostgreSQL's defaults (fsync,
	# synchronous_commit on) so the kill -9 tests mean something.
	cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$sock'
unix_socket_permissions = 0700
max_connections = 64
fsync = on
synchronous_commit = on
EOF
	as_owner "$bindir/pg_ctl" start -D "$dir/data" -l "$dir/server.log" -w -t 60 >/dev/null ||
		{ cat "$dir/server.log" >&2 || true; die "pg_ctl start failed"; }
	"$bindir/createdb" -h "$sock" -U "$SUPERUSER" -E UTF8 -T template0 "$DB" ||
		die "createdb failed"
	url="postgresql:///$DB?host=$sock&user=$SUPERUSER"
	echo "$url" >"$dir/url"
	echo "$url"
}

case "$cmd" in
start)
	start
	;;
stop)
	cleanup "$(find_bindir || true)"
	;;
run)
	[ $# -ge 1 ] || usage
	[ -s "$dir/url" ] || die "no cluster in $dir (the pg fixture's start failed?)"
	SPHERE_TEST_STORE_URL=$(cat "$dir/url")
	export SPHERE_TEST_STORE_URL
	exec "$@"
	;;
*)
	usage
	;;
esac
