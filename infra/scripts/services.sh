#!/usr/bin/env bash
# Local services for development and tests: a throwaway Postgres cluster and a moto server
# (SQS + DynamoDB), on free loopback ports, all state under .local/.
#
#   services.sh up       start what is not running (idempotent); write .local/env
#   services.sh down     stop everything this script started; no process is left behind
#   services.sh status   say what runs where; exit 1 when something is down
#   services.sh reset    down, delete all service state, up
#   services.sh drop-test-databases   remove databases left by earlier test runs
#
# When DATABASE_URL (or AWS_ENDPOINT_URL) is already set by the caller, that service is used as
# it is and nothing is started for it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ENV_FILE="$LOCAL_DIR/env"
PORTS_FILE="$STATE_DIR/ports"
MOTO_PID_FILE="$STATE_DIR/moto/moto.pid"
MOTO_LOG="$STATE_DIR/moto/moto.log"
PG_ROOT_FILE="$STATE_DIR/pg-root"
START_TIMEOUT=${INLET_START_TIMEOUT:-60}

# Variables that came from our own env file do not count as "set by the caller".
if [[ "${INLET_LOCAL_ENV:-}" == 1 ]]; then
    unset DATABASE_URL DATABASE_ADMIN_URL SCHEDULER_DATABASE_URL OPS_DATABASE_URL AWS_ENDPOINT_URL
fi
EXTERNAL_DB=${DATABASE_URL:-}
EXTERNAL_DB_SCHEDULER=${SCHEDULER_DATABASE_URL:-}
EXTERNAL_DB_OPS=${OPS_DATABASE_URL:-}
EXTERNAL_DB_ADMIN=${DATABASE_ADMIN_URL:-}
EXTERNAL_AWS=${AWS_ENDPOINT_URL:-}

PG_PORT="" MOTO_PORT=""
load_ports() {
    if [[ -f "$PORTS_FILE" ]]; then
        # shellcheck disable=SC1090
        . "$PORTS_FILE"
    fi
}
save_ports() {
    mkdir -p "$STATE_DIR"
    printf 'PG_PORT=%s\nMOTO_PORT=%s\n' "$PG_PORT" "$MOTO_PORT" > "$PORTS_FILE"
}

# --- Postgres ---------------------------------------------------------------------------------

pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then printf '%s\n' "$dir"; return 0; fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"; return 0
    fi
    return 1
}

ensure_pg_installed() {
    if pg_bin >/dev/null; then return 0; fi
    if [[ $(id -u) -ne 0 ]]; then
        die "no Postgres server found; install it with: sudo apt-get install -y postgresql"
    fi
    say "no Postgres server found: installing Debian's postgresql package ..."
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq >&2 || die "apt-get update failed; check the network or install postgresql by hand"
    timeout 900 apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
    pg_bin >/dev/null || die "postgresql installed but initdb/pg_ctl not found under /usr/lib/postgresql"
}

# As root, Postgres must run as the unprivileged `postgres` user (initdb refuses root).
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# The cluster lives in .local/state/pg, unless the postgres user cannot reach that path (a
# checkout under a private home directory), then under /tmp, keyed by the checkout's path.
pg_root() {
    if [[ -f "$PG_ROOT_FILE" ]]; then cat "$PG_ROOT_FILE"; return; fi
    local root="$STATE_DIR/pg"
    mkdir -p "$root"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user (Debian's postgresql package creates it)"
        chown postgres: "$root"
        if ! runuser -u postgres -- test -w "$root"; then
            root="/tmp/inlet-pg-$(printf '%s' "$REPO_ROOT" | sha1sum | cut -c1-12)"
            mkdir -p "$root" && chown postgres: "$root" && chmod 700 "$root"
            say "the postgres user cannot reach $STATE_DIR; keeping the cluster in $root"
        fi
    fi
    printf '%s\n' "$root" > "$PG_ROOT_FILE"
    printf '%s\n' "$root"
}

pg_running() {
    local bin root
    bin=$(pg_bin) || return 1
    root=$(pg_root)
    [[ -f "$root/data/PG_VERSION" ]] && as_pg "$bin/pg_ctl" -D "$root/data" status >/dev/null 2>&1
}

pg_up() {
    ensure_pg_installed
    local bin root
    bin=$(pg_bin); root=$(pg_root)
    if [[ ! -f "$root/data/PG_VERSION" ]]; then
        say "creating a Postgres cluster in $root/data"
        as_pg mkdir -p "$root/data" "$root/run"
        as_pg "$bin/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$root/initdb.log" 2>&1 \
            || die "initdb failed; see $root/initdb.log"
    fi
    as_pg mkdir -p "$root/run"
    if pg_running; then
        return 0
    fi
    if [[ -z "$PG_PORT" ]] || port_busy "$PG_PORT"; then PG_PORT=$(free_port); fi
    say "starting Postgres on 127.0.0.1:$PG_PORT"
    # A throwaway cluster: durability settings off for speed.
    as_pg "$bin/pg_ctl" -D "$root/data" -l "$root/postgres.log" -w -t "$START_TIMEOUT" \
        -o "-p $PG_PORT -k $root/run -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || die "Postgres did not start within ${START_TIMEOUT}s; see $root/postgres.log"
    save_ports
    local psql=("$bin/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -tA)
    if [[ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'inlet'")" ]]; then
        "${psql[@]}" -c "CREATE DATABASE inlet" >/dev/null
    fi
}

pg_down() {
    local bin root
    bin=$(pg_bin) || return 0
    [[ -f "$PG_ROOT_FILE" ]] || return 0
    root=$(cat "$PG_ROOT_FILE")
    if pg_running; then
        say "stopping Postgres"
        as_pg "$bin/pg_ctl" -D "$root/data" -m fast -w -t 30 stop >/dev/null \
            || as_pg "$bin/pg_ctl" -D "$root/data" -m immediate -w -t 10 stop >/dev/null || true
    fi
}

# --- moto (SQS + DynamoDB) --------------------------------------------------------------------

moto_answers() {
    python3 - "$1" <<'PY'
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json", timeout=2).read()
PY
}

moto_running() {
    [[ -f "$MOTO_PID_FILE" ]] && kill -0 "$(cat "$MOTO_PID_FILE")" 2>/dev/null \
        && [[ -n "$MOTO_PORT" ]] && moto_answers "$MOTO_PORT"
}

moto_up() {
    if moto_running; then return 0; fi
    moto_down_quiet
    local bin
    bin=$("$REPO_ROOT/infra/scripts/tools.sh" moto)
    if [[ -z "$MOTO_PORT" ]] || port_busy "$MOTO_PORT"; then MOTO_PORT=$(free_port); fi
    mkdir -p "$(dirname "$MOTO_PID_FILE")"
    say "starting moto (SQS, DynamoDB) on 127.0.0.1:$MOTO_PORT"
    setsid "$bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 < /dev/null &
    echo $! > "$MOTO_PID_FILE"
    save_ports
    wait_until "$START_TIMEOUT" "moto" moto_answers "$MOTO_PORT" \
        || die "moto did not answer on port $MOTO_PORT within ${START_TIMEOUT}s; see $MOTO_LOG"
}

moto_down_quiet() {
    [[ -f "$MOTO_PID_FILE" ]] || return 0
    local pid
    pid=$(cat "$MOTO_PID_FILE")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$MOTO_PID_FILE"
}

moto_down() {
    if [[ -f "$MOTO_PID_FILE" ]]; then say "stopping moto"; fi
    moto_down_quiet
}

# --- env file ---------------------------------------------------------------------------------

write_env() {
    local db_url admin_url scheduler_url ops_url aws_url
    if [[ -n "$EXTERNAL_DB" ]]; then
        db_url=$EXTERNAL_DB
        admin_url=${EXTERNAL_DB_ADMIN:-$EXTERNAL_DB}
        scheduler_url=${EXTERNAL_DB_SCHEDULER:-$EXTERNAL_DB}
        ops_url=${EXTERNAL_DB_OPS:-$EXTERNAL_DB}
        [[ -n "$EXTERNAL_DB_ADMIN" ]] || say "DATABASE_ADMIN_URL is not set: migrations and test fixtures will use DATABASE_URL"
        [[ -n "$EXTERNAL_DB_SCHEDULER" ]] || say "SCHEDULER_DATABASE_URL is not set: schedule-reminders will connect as DATABASE_URL and be refused"
    else
        db_url="postgres://inlet_app@127.0.0.1:$PG_PORT/inlet"
        admin_url="postgres://postgres@127.0.0.1:$PG_PORT/inlet"
        scheduler_url="postgres://inlet_scheduler@127.0.0.1:$PG_PORT/inlet"
        ops_url="postgres://inlet_ops@127.0.0.1:$PG_PORT/inlet"
    fi
    aws_url=${EXTERNAL_AWS:-http://127.0.0.1:$MOTO_PORT}
    mkdir -p "$LOCAL_DIR"
    # A key ring for sealing secrets locally: made once, kept across `make reset`.
    local keyring="$LOCAL_DIR/keyring"
    if [[ ! -s "$keyring" ]]; then
        (umask 077 && python3 -c 'import base64, os; print("local1:" + base64.b64encode(os.urandom(32)).decode())' > "$keyring")
    fi
    cat > "$ENV_FILE" <<ENV
# Written by infra/scripts/services.sh; source it: . .local/env
export INLET_LOCAL_ENV=1
export INLET_ENV=\${INLET_ENV:-local}
export DATABASE_URL='$db_url'
export DATABASE_ADMIN_URL='$admin_url'
export SCHEDULER_DATABASE_URL='$scheduler_url'
export OPS_DATABASE_URL='$ops_url'
export AWS_ENDPOINT_URL='$aws_url'
export AWS_REGION=\${AWS_REGION:-us-east-1}
export AWS_DEFAULT_REGION=\${AWS_DEFAULT_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-test}
export INLET_KEYS='$(cat "$keyring")'
# Local names of template.yaml's resources (\`inlet local resources\` creates them).
export SOURCES_TABLE=SourcesTable
export IDEMPOTENCY_TABLE=IdempotencyTable
export RATE_LIMIT_TABLE=RateLimitTable
export EVENTS_QUEUE_URL='$aws_url/123456789012/EventsQueue'
export EVENTS_DLQ_URL='$aws_url/123456789012/EventsDLQ'
ENV
    # Tests that stop and start a database of their own (testing::ScratchPostgres) need the
    # server binaries and a directory the postgres user can write.
    local bin
    if [[ -z "$EXTERNAL_DB" ]] && bin=$(pg_bin); then
        printf "export PG_BIN='%s'\nexport INLET_SCRATCH_DIR='%s'\n" "$bin" "$(pg_root)/scratch" >> "$ENV_FILE"
    fi
}

# --- commands ---------------------------------------------------------------------------------

cmd_up() {
    load_ports
    if [[ -n "$EXTERNAL_DB" ]]; then say "using the caller's DATABASE_URL; not starting Postgres"; else pg_up; fi
    if [[ -n "$EXTERNAL_AWS" ]]; then say "using the caller's AWS_ENDPOINT_URL; not starting moto"; else moto_up; fi
    write_env
    cmd_status
}

cmd_down() {
    load_ports
    pg_down
    moto_down
}

cmd_status() {
    load_ports
    local ok=0
    if [[ -n "$EXTERNAL_DB" ]]; then
        printf 'postgres  external (DATABASE_URL from the environment)\n'
    elif pg_running; then
        printf 'postgres  running  127.0.0.1:%s  data %s/data\n' "$PG_PORT" "$(pg_root)"
    else
        printf 'postgres  stopped  (make services)\n'; ok=1
    fi
    if [[ -n "$EXTERNAL_AWS" ]]; then
        printf 'moto      external (AWS_ENDPOINT_URL=%s)\n' "$EXTERNAL_AWS"
    elif moto_running; then
        printf 'moto      running  http://127.0.0.1:%s  (SQS, DynamoDB)\n' "$MOTO_PORT"
    else
        printf 'moto      stopped  (make services)\n'; ok=1
    fi
    [[ -f "$ENV_FILE" ]] && printf 'env file  %s\n' "$ENV_FILE"
    return $ok
}

cmd_reset() {
    cmd_down
    local root=""
    [[ -f "$PG_ROOT_FILE" ]] && root=$(cat "$PG_ROOT_FILE")
    say "removing service state"
    [[ -n "$root" && "$root" == /tmp/inlet-pg-* ]] && rm -rf "$root"
    rm -rf "$STATE_DIR" "$ENV_FILE"
    PG_PORT="" MOTO_PORT=""
    cmd_up
}

cmd_drop_test_databases() {
    load_ports
    [[ -z "$EXTERNAL_DB" ]] || return 0
    pg_running || return 0
    local bin
    bin=$(pg_bin)
    local psql=("$bin/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tA)
    local db
    for db in $("${psql[@]}" -c "SELECT datname FROM pg_database WHERE datname LIKE 'inlet\_test\_%'"); do
        "${psql[@]}" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
    done
    # Scratch clusters a killed test run left behind.
    local scratch
    for scratch in "$(pg_root)"/scratch/*/data; do
        [[ -f "$scratch/PG_VERSION" ]] || continue
        as_pg "$bin/pg_ctl" -D "$scratch" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
        rm -rf "$(dirname "$scratch")"
    done
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    drop-test-databases) cmd_drop_test_databases ;;
    *) die "usage: services.sh up|down|status|reset|drop-test-databases" ;;
esac
