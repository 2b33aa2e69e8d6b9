#!/usr/bin/env bash
# `make load`: the load test. Starts a stack of its own (release binaries, a fresh database, its
# own queue and table names) and drives it with wrk: every provider's signed webhooks, 10% sent
# twice, 200 connections for 60 s; then checks that every accepted event is stored once and the
# DLQ is empty, and prints throughput, latency, answers by code and CPU per 1,000 events.
# Extra flags for the load-test binary (e.g. --duration-secs 30): make load ARGS="..."
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

if ! command -v wrk >/dev/null; then
    say "installing wrk from Debian's packages"
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y -qq wrk >&2; else sudo apt-get install -y -qq wrk >&2; fi
fi
"$REPO_ROOT/infra/scripts/services.sh" up >/dev/null
# shellcheck disable=SC1091
. "$LOCAL_DIR/env"

db="inlet_load_$$"
admin_url="${DATABASE_ADMIN_URL%/*}/$db"
prefix="load$$_"
port=$(free_port)
log="$LOCAL_DIR/load-test-stack.log"
psql_admin() { "$PG_BIN/psql" "$DATABASE_ADMIN_URL" -qAt "$@"; }
passed=0
cleanup() {
    if [[ -n "${stack:-}" ]]; then kill -TERM "$stack" 2>/dev/null || true; wait "$stack" 2>/dev/null || true; fi
    if [[ $passed -eq 1 ]]; then
        psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    else
        say "kept the database $db and $log for a look"
    fi
}
trap cleanup EXIT

say "building release binaries (the functions, inlet, load-test)"
cargo build --release --quiet --workspace --bins
psql_admin -c "CREATE DATABASE $db"
target/release/inlet migrate --dir migrations --database-url "$admin_url" >/dev/null
DATABASE_ADMIN_URL="$admin_url" target/release/inlet companies add demo_company --name "Demo Company" >/dev/null

DATABASE_URL="${DATABASE_URL%/*}/$db" \
SCHEDULER_DATABASE_URL="${SCHEDULER_DATABASE_URL%/*}/$db" \
OPS_DATABASE_URL="${OPS_DATABASE_URL%/*}/$db" \
    target/release/inlet local --release --quiet --port "$port" --resource-prefix "$prefix" \
        --template template.yaml >"$log" 2>&1 &
stack=$!
wait_until 120 "the load test's stack" grep -q "ready: gateway" "$log" \
    || die "the stack did not start; see $log"
DATABASE_ADMIN_URL="$admin_url" target/release/inlet sources seed-demo \
    --table "${prefix}SourcesTable" --base-url "http://127.0.0.1:$port" >/dev/null

# shellcheck disable=SC2086
target/release/load-test --url "http://127.0.0.1:$port" --resource-prefix "$prefix" \
    --database-url "$admin_url" ${ARGS:-}
passed=1
