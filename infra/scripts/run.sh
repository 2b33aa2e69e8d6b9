#!/usr/bin/env bash
# `make run`: the whole system on this machine, as deployed, without Docker. Starts Postgres and
# moto (unless already running), applies migrations, seeds the demo company and one demo source
# per provider, then runs `inlet local`: every function of template.yaml as a real Lambda
# process, the HTTP gateway on 127.0.0.1:3000, SQS event sources and schedules.
# Ctrl-C stops the stack, then the services this script started.
# Extra flags for `inlet local` (e.g. --release, --quiet, --port 3001): make run ARGS="..."
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

services="$REPO_ROOT/infra/scripts/services.sh"
started_services=0
if ! "$services" status >/dev/null 2>&1; then
    started_services=1
fi
"$services" up
stop_services() {
    if [[ $started_services -eq 1 ]]; then
        "$services" down || true
    fi
}
trap stop_services EXIT
# shellcheck disable=SC1091
. "$LOCAL_DIR/env"
cargo build --quiet --workspace --bins
inlet="$REPO_ROOT/target/debug/inlet"
"$inlet" migrate --dir migrations
"$inlet" db audit
"$inlet" companies add demo_company --name "Demo Company" --exists-ok
"$inlet" status
"$inlet" local resources --template template.yaml >/dev/null
mkdir -p "$LOCAL_DIR"
# The demo sources' URLs and secrets: local only, shown once here and kept in .local/.
"$inlet" sources seed-demo | tee "$LOCAL_DIR/demo-sources.txt"
# A console key for the demo company (tenant views and the operator's), new on each run, expiring
# in a day; kept in .local/ like the demo secrets.
"$inlet" keys create --company demo_company --scopes admin,operator --expires 1d \
    --name "make run console" 2>/dev/null >"$LOCAL_DIR/console-key.txt"
port=3000
[[ "${ARGS:-}" =~ --port[=\ ]([0-9]+) ]] && port="${BASH_REMATCH[1]}"
cat <<TXT

Console: http://127.0.0.1:$port/console  (sign in with: $(cat "$LOCAL_DIR/console-key.txt"))
TXT
cat <<TXT

Send a signed event (another shell):
  . .local/env && target/debug/inlet send stripe --source demo_stripe --file events/payloads/stripe-invoice-payment-failed.json
Invoke one function:   target/debug/inlet local invoke WebhookStripeFunction --event events/webhook-stripe.json
Postgres: $DATABASE_URL    moto: $AWS_ENDPOINT_URL
TXT
# Not exec: the trap must run after Ctrl-C to stop the services started here.
# It builds the function binaries itself: debug (already fresh), or release with ARGS=--release.
# shellcheck disable=SC2086
"$inlet" local --template template.yaml ${ARGS:-} &
stack=$!
trap 'kill -TERM $stack 2>/dev/null || true' INT TERM
wait $stack || true
wait $stack 2>/dev/null || true
