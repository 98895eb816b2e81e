# Sourced by .ci/run: start a real PostgreSQL server on 127.0.0.1 for the distributed tests and
# export NORMX_TEST_POSTGRES_URL. Installs Debian's postgresql package when it is missing.
# Works as root (the server runs as the postgres user) and as an ordinary user.

_normx_pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(_normx_pg_bindir)" ]; then
  echo "postgres.sh: installing postgresql (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
NORMX_PG_BIN="$(_normx_pg_bindir)"
NORMX_PG_DIR="$(mktemp -d /tmp/normx-pg.XXXXXX)"
NORMX_PG_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$NORMX_PG_DIR"
  _normx_pg() { runuser -u postgres -- "$@"; }
else
  _normx_pg() { "$@"; }
fi
_normx_pg "$NORMX_PG_BIN/initdb" -D "$NORMX_PG_DIR/data" -U postgres --auth-local=trust \
  --auth-host=scram-sha-256 >"$NORMX_PG_DIR/initdb.log"
_normx_pg "$NORMX_PG_BIN/pg_ctl" -D "$NORMX_PG_DIR/data" -l "$NORMX_PG_DIR/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $NORMX_PG_PORT -k $NORMX_PG_DIR -c max_connections=200 -c fsync=off" start >/dev/null
_normx_pg "$NORMX_PG_BIN/psql" -q -h "$NORMX_PG_DIR" -p "$NORMX_PG_PORT" -U postgres -d postgres \
  -c "CREATE ROLE normx LOGIN PASSWORD 'normx-ci'" -c "CREATE DATABASE normx OWNER normx"
export NORMX_TEST_POSTGRES_URL="postgresql+psycopg2://normx:normx-ci@127.0.0.1:$NORMX_PG_PORT/normx"
_normx_pg_stop() { _normx_pg "$NORMX_PG_BIN/pg_ctl" -D "$NORMX_PG_DIR/data" -m fast stop >/dev/null 2>&1 || true; }
trap _normx_pg_stop EXIT
echo "postgres.sh: PostgreSQL on 127.0.0.1:$NORMX_PG_PORT (data in $NORMX_PG_DIR)"
