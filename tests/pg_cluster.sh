#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the PostgreSQL runs of the tests (docs/testing.md).
#   tests/pg_cluster.sh start DIR   initdb into DIR/data, start it on 127.0.0.1 and a free port,
#                                   write its admin URL to DIR/url (log: DIR/log)
#   tests/pg_cluster.sh stop DIR    stop it (fast) and remove DIR
#   tests/pg_cluster.sh restart DIR stop it (fast: every connection is dropped) and start it again
#                                   on the same port (a test's "server restart")
# Both are idempotent: start first stops and removes a cluster left in DIR by an earlier run.
# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system user
# (runuser), otherwise to the current user; either way trust authentication on loopback and
# the socket directory only, superuser named in the URL. Not for anything but tests: fsync is
# off (the server is never crashed by a test, only its clients are).
# PG_CLUSTER_DURABLE=1 (benchmarks, tests/bench/run.sh postgresql): fsync and full_page_writes
# stay on, so a commit is as durable as SQLite's synchronous=full (the default: both off).
# PG_CLUSTER_STATEMENTS=1: loads pg_stat_statements (CREATE EXTENSION pg_stat_statements in a
# database to read it), for counting a benchmark's statements.
# The binaries: $PG_BINDIR if set, else `pg_config --bindir`, else the newest
# /usr/lib/postgresql/*/bin.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|restart DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
command="$1"
case "$2" in
  /*) dir="$2" ;;
  *) dir="$PWD/$2" ;;
esac

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then
    echo "$PG_BINDIR"
    return
  fi
  local candidate
  if command -v pg_config >/dev/null; then
    candidate="$(pg_config --bindir 2>/dev/null || true)"
    if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then
      echo "$candidate"
      return
    fi
  fi
  candidate="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then
    echo "$candidate"
    return
  fi
  echo "pg_cluster: no PostgreSQL server binaries (initdb) found; install the Debian package" \
    "postgresql (packaging/install-deps.sh) or set PG_BINDIR" >&2
  exit 1
}

# The cluster's owner: postgres when we are root, else ourselves. Its files live in DIR, or, when
# the owner cannot reach DIR (a checkout under /root, mode 700), in a directory of its own under
# /tmp named in DIR/home; DIR keeps the url either way.
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  id -u "$owner" >/dev/null 2>&1 ||
    { echo "pg_cluster: running as root but there is no '$owner' user to own the cluster" >&2; exit 1; }
  run_as_owner() { runuser -u "$owner" -- "$@"; }
else
  owner="$(id -un)"
  run_as_owner() { "$@"; }
fi
home="$dir"
[ -f "$dir/home" ] && home="$(cat "$dir/home")"
as_owner() { (cd "$home" && run_as_owner "$@"); }

stop_cluster() {
  [ -e "$dir" ] || return 0
  if [ -f "$home/data/postmaster.pid" ]; then
    local bindir
    bindir="$(find_bindir)"
    as_owner "$bindir/pg_ctl" stop -D "$home/data" -m fast -w -t 60 >/dev/null 2>&1 || true
    # A postmaster that did not go away (or a stale pid file): make sure nothing is left running.
    local pid
    pid="$(head -n 1 "$home/data/postmaster.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
      grep -qs "$home/data" "/proc/$pid/cmdline"; then
      kill -QUIT "$pid" 2>/dev/null || true
      sleep 1
    fi
  fi
  [ "$home" != "$dir" ] && rm -rf "$home"
  rm -rf "$dir"
  home="$dir"
}

start_cluster() {
  local bindir
  bindir="$(find_bindir)"
  stop_cluster
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown "$owner:" "$dir"; fi
  if ! run_as_owner test -w "$dir" -a -x "$dir" 2>/dev/null || [ ${#dir} -gt 80 ]; then
    # Out of the owner's reach, or too long a path for the socket (107 bytes with its name).
    home="$(mktemp -d /tmp/allocation-relay-pg.XXXXXX)"
    chmod 755 "$home"
    if [ "$(id -u)" -eq 0 ]; then chown "$owner:" "$home"; fi
    echo "$home" >"$dir/home"
  fi
  if ! as_owner "$bindir/initdb" -D "$home/data" --auth=trust -U "$owner" -E UTF8 \
    --locale=C --no-sync >"$home/initdb.log" 2>&1; then
    cat "$home/initdb.log" >&2
    echo "pg_cluster: initdb into $home/data failed (as $owner)" >&2
    exit 1
  fi
  cat >>"$home/data/postgresql.conf" <<EOF

# tests/pg_cluster.sh: a throwaway cluster for tests
listen_addresses = '127.0.0.1'
unix_socket_directories = '$home'
max_connections = 400
shared_buffers = 128MB
EOF
  if [ "${PG_CLUSTER_DURABLE:-0}" = 1 ]; then
    cat >>"$home/data/postgresql.conf" <<EOF
# PG_CLUSTER_DURABLE=1: commits reach the disk (PostgreSQL's defaults)
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
  else
    cat >>"$home/data/postgresql.conf" <<EOF
fsync = off
full_page_writes = off
EOF
  fi
  if [ "${PG_CLUSTER_STATEMENTS:-0}" = 1 ]; then
    cat >>"$home/data/postgresql.conf" <<EOF
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
EOF
  fi
  # A free port: the OS gives none to a postmaster, so try random ones until one starts (a port
  # in use makes the start fail at once).
  local port attempt
  for attempt in $(seq 1 25); do
    port=$((20000 + RANDOM % 40000))
    if as_owner "$bindir/pg_ctl" start -D "$home/data" -l "$home/log" -w -t 60 \
      -o "-p $port" >/dev/null 2>&1; then
      echo "postgresql://$owner@127.0.0.1:$port/postgres" >"$dir/url"
      echo "pg_cluster: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') in $dir" \
        "on 127.0.0.1:$port ($(cat "$dir/url"))"
      return 0
    fi
    # Not started: a taken port, or a real problem (then the log says which).
    if ! grep -qs 'could not bind\|could not create any TCP/IP sockets\|Address already in use' \
      "$home/log"; then
      cat "$home/log" >&2 || true
      echo "pg_cluster: the server did not start (attempt $attempt, port $port)" >&2
      exit 1
    fi
    : >"$home/log"
  done
  cat "$home/log" >&2 || true
  echo "pg_cluster: no free port found in 25 attempts" >&2
  exit 1
}

restart_cluster() {
  local bindir
  bindir="$(find_bindir)"
  as_owner "$bindir/pg_ctl" restart -D "$home/data" -l "$home/log" -m fast -w -t 60 >/dev/null
}

case "$command" in
  start) start_cluster ;;
  stop) stop_cluster ;;
  restart) restart_cluster ;;
  *) usage ;;
esac
