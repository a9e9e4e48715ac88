# shellcheck shell=bash
# Source, then resmtp_pg_up: a private PostgreSQL cluster in a temporary
# directory, run by the unprivileged user "postgres" on a loopback port (no
# system service), for the pgstore module's tests. It exports
#   RESMTP_PG_URL  postgres://resmtp@127.0.0.1:PORT/resmtp?sslmode=disable
# and resmtp_pg_down stops it and removes the directory. It needs root to
# install the package (postgresql) and to run the cluster as postgres.

_resmtp_pg_log() { printf '[pg-up] %s\n' "$*" >&2; }

resmtp_pg_install() {
	if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
		return 0
	fi
	resmtp_apt_install postgresql
}

resmtp_pg_up() {
	resmtp_pg_install || return 1
	local bin dir port
	bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
	dir=$(mktemp -d /tmp/resmtp-pg.XXXXXX)
	chown postgres: "$dir"
	port=$(_resmtp_free_ports 1) || return 1
	runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U resmtp --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		return 1
	}
	runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null || {
		tail -n 30 "$dir/server.log" >&2
		return 1
	}
	runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$port" -U resmtp resmtp || return 1
	export RESMTP_PG_DIR=$dir RESMTP_PG_BIN=$bin
	export RESMTP_PG_URL="postgres://resmtp@127.0.0.1:$port/resmtp?sslmode=disable"
	_resmtp_pg_log "up: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (dir $dir)"
}

resmtp_pg_down() {
	local dir=${RESMTP_PG_DIR:-}
	[[ -n $dir ]] || return 0
	runuser -u postgres -- "$RESMTP_PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
	unset RESMTP_PG_DIR RESMTP_PG_BIN RESMTP_PG_URL
	rm -rf "$dir"
}
