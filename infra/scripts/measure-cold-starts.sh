#!/usr/bin/env bash
# Cold starts of the webhook functions as release binaries under `inlet local`: each run starts a
# fresh stack, invokes every webhook function once with its (re-signed) sample and keeps the
# REPORT lines. Prints Init Duration and Max Memory Used per function and the medians.
# Usage: infra/scripts/measure-cold-starts.sh [runs]   (needs `make services`; builds release)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
runs=${1:-3}
"$REPO_ROOT/infra/scripts/services.sh" up >/dev/null
# shellcheck disable=SC1091
. "$LOCAL_DIR/env"
cargo build --quiet --release --workspace --bins
inlet="$REPO_ROOT/target/release/inlet"
"$inlet" migrate --dir migrations >/dev/null
"$inlet" companies add demo_company --name "Demo Company" --exists-ok >/dev/null
"$inlet" local resources >/dev/null
"$inlet" sources seed-demo >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp events/*.json "$work/"
"$inlet" events refresh --dir "$work" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for run in $(seq "$runs"); do
    "$inlet" local --bin-dir target/release --quiet --port "$port" > "$work/run$run.log" 2>&1 &
    stack=$!
    for _ in $(seq 100); do grep -q "ready: gateway" "$work/run$run.log" && break; sleep 0.1; done
    # Every provider with a webhook function (the provider table's checklist keeps them in step).
    for provider in $(ls functions | sed -n 's/^webhook-//p'); do
        function="Webhook${provider^}Function"
        "$inlet" local invoke "$function" --event "$work/webhook-$provider.json" --url "http://127.0.0.1:$port" >/dev/null
    done
    kill -TERM "$stack"; wait "$stack" || true
done
grep -h "^\[Webhook.*REPORT.*Init Duration" "$work"/run*.log \
    | sed -E 's/^\[([A-Za-z]+)\].*Max Memory Used: ([0-9]+) MB.*Init Duration: ([0-9.]+) ms.*/\1 \3 \2/' \
    | sort | python3 -c '
import statistics, sys
rows = [line.split() for line in sys.stdin if line.strip()]
for name, init, memory in rows:
    print(f"{name:<26} Init Duration {float(init):6.2f} ms   Max Memory Used {memory} MB")
inits = [float(r[1]) for r in rows]
memory = [int(r[2]) for r in rows]
print(f"cold starts: {len(rows)}  median Init Duration: {statistics.median(inits):.2f} ms (max {max(inits):.2f})"
      f"  median Max Memory Used: {statistics.median(memory):.0f} MB (max {max(memory)})")
'
