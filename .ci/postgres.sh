#!/usr/bin/env bash
# Starts a throwaway local Postgres for the store conformance suite (installing Debian's package when missing) and
# prints its URL, and a trap that stops it and removes its files when the calling shell exits.
# Usage: eval "$(bash .ci/postgres.sh)"  -> exports TUNEFORGE_TEST_POSTGRES.
# Prints nothing (and the tests skip with a message) when Postgres cannot be had.
set -uo pipefail
# The first free port from 55432 (a server some other run left behind keeps its own).
port_free() { ! (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT="${TUNEFORGE_PG_PORT:-}"
if [ -z "$PORT" ]; then
  for p in $(seq 55432 55482); do port_free "$p" && { PORT=$p; break; }; done
  [ -n "$PORT" ] || { echo "postgres: no free port in 55432-55482; its tests will skip" >&2; exit 0; }
fi
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(bindir)" ]; then
  echo "postgres: installing Debian's postgresql package" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 || { echo "postgres: install failed; its tests will skip" >&2; exit 0; }
fi
BIN="$(bindir)"
[ -n "$BIN" ] || exit 0
DATA="$(mktemp -d /tmp/tuneforge-pg-XXXXXX)"
RUNAS=()
if [ "$(id -u)" = 0 ]; then
  # Postgres refuses to run as root: the cluster belongs to the postgres user the package creates.
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres >&2
  chown postgres "$DATA"
  RUNAS=(runuser -u postgres --)
fi
"${RUNAS[@]}" "$BIN/initdb" -D "$DATA" -U postgres -A trust --no-sync >/dev/null 2>&1 || { echo "postgres: initdb failed; its tests will skip" >&2; exit 0; }
"${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null 2>&1 \
  || { echo "postgres: server did not start (see $DATA/server.log); its tests will skip" >&2; exit 0; }
echo "export TUNEFORGE_TEST_POSTGRES=postgres://postgres@127.0.0.1:$PORT/postgres"
echo "trap '${RUNAS[*]} $BIN/pg_ctl -D $DATA -m fast stop >/dev/null 2>&1; rm -rf $DATA' EXIT"
