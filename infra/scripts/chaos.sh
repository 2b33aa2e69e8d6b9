#!/usr/bin/env bash
# `make chaos`: the fault-injection suite against the local stack (see docs/CHAOS.md).
# A replay storm of signed Stripe events (each delivered 1-3 times by concurrent senders), with
# function processes killed (kill -9) and Postgres restarted during it, and poison messages
# beside it. Exits non-zero when an accepted event is lost or doubled, a delivery never gets a
# 2xx, or the DLQ holds anything but the poison.
# Extra flags (e.g. --events 10000 --kills 5): make chaos ARGS="..."
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/infra/scripts/services.sh" up >/dev/null
# shellcheck disable=SC1091
. "$LOCAL_DIR/env"
cargo build --quiet --workspace --bins
# shellcheck disable=SC2086
target/debug/chaos ${ARGS:-}
