# Sourced by scripts/test.sh (under `set -euo pipefail`): start a throw-away PostgreSQL server
# for the registry tests and export NOISECORR_TEST_POSTGRES_URL.
#
# - installs PostgreSQL with apt-get when no /usr/lib/postgresql/*/bin/initdb exists (root only);
# - creates a cluster in a fresh folder under /tmp (never inside the checkout), owned by the
#   `postgres` user when run as root (initdb refuses root), trust authentication;
# - starts it with pg_ctl on 127.0.0.1 only, at a free port chosen now, with its socket in
#   that folder; creates database noisecorr_test;
# - stops the server and deletes the folder on exit. Exit hooks are a list
#   (noisecorr_on_exit FUNCTION) run by one EXIT trap that also keeps any EXIT trap set
#   before it; a watchdog stops the server too if this shell dies without running its trap.
# Tests read NOISECORR_TEST_POSTGRES_URL and create their own databases on that server.

# shellcheck source=../lib/exit_hooks.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/exit_hooks.sh"

_noisecorr_postgres_stop() {
    if [ -n "${_NOISECORR_PG_DIR:-}" ] && [ -d "$_NOISECORR_PG_DIR" ]; then
        _noisecorr_pg_as "$_NOISECORR_PG_BIN/pg_ctl" -D "$_NOISECORR_PG_DIR/data" stop -m fast -w -t 30 \
            >/dev/null 2>&1 || true
        rm -rf "$_NOISECORR_PG_DIR"
    fi
}

_noisecorr_pg_as() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_noisecorr_postgres_start() {
    local bin dir port try python
    if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        if [ "$(id -u)" != 0 ]; then
            echo "postgres.sh: PostgreSQL is not installed and installing it needs root" >&2
            return 1
        fi
        echo "postgres.sh: installing PostgreSQL (apt-get)" >&2
        # no default cluster: this script makes its own and nothing keeps running afterwards
        mkdir -p /etc/postgresql-common
        grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
            || echo "create_main_cluster = false" >>/etc/postgresql-common/createcluster.conf
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold \
            postgresql >/dev/null
    fi
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    dir="$(mktemp -d /tmp/noisecorr-postgres.XXXXXX)"
    _NOISECORR_PG_BIN="$bin"
    _NOISECORR_PG_DIR="$dir"
    noisecorr_on_exit _noisecorr_postgres_stop
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$dir"
    fi
    if ! _noisecorr_pg_as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        return 1
    fi
    python="${VENV:+$VENV/bin/}python3"
    command -v "$python" >/dev/null || python=python3
    for try in 1 2 3 4 5; do
        port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        # fsync off: a test server whose data is thrown away
        if _noisecorr_pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
            -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            >/dev/null 2>&1; then
            break
        fi
        if [ "$try" = 5 ]; then
            echo "postgres.sh: the server did not start:" >&2
            cat "$dir/server.log" >&2
            return 1
        fi
    done
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres noisecorr_test
    # watchdog: stop the server if this shell goes away without running its EXIT trap
    (
        trap - EXIT
        while kill -0 "$$" 2>/dev/null; do sleep 2; done
        _noisecorr_postgres_stop
    ) </dev/null >/dev/null 2>&1 &
    disown $! 2>/dev/null || true
    export NOISECORR_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/noisecorr_test"
    echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $NOISECORR_TEST_POSTGRES_URL" >&2
}

_noisecorr_postgres_start
