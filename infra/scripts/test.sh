#!/usr/bin/env bash
# `make test`: install what is missing, start the local services, then every check.
# Exits non-zero on the first failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/infra/scripts/tools.sh" rust
# The tenant API's contract run needs schemathesis (its test finds the venv through tools.sh).
"$REPO_ROOT/infra/scripts/tools.sh" schemathesis >/dev/null
# The console's browser tests: Debian's chromium and Playwright's driver.
"$REPO_ROOT/infra/scripts/tools.sh" browser >/dev/null
"$REPO_ROOT/infra/scripts/services.sh" up
# shellcheck disable=SC1091
. "$LOCAL_DIR/env"
"$REPO_ROOT/infra/scripts/services.sh" drop-test-databases

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "building the function binaries (tests run them as Lambdas)"
cargo build --workspace --bins --locked
say "migrations: apply to the local database, then verify them (recorded in migration_verifications)"
target/debug/inlet migrate --dir migrations
target/debug/inlet migrate verify --dir migrations
say "tests (unit and integration against Postgres and moto)"
cargo nextest run --workspace --locked --no-fail-fast
say "chaos, short (make chaos runs the full size)"
target/debug/chaos --events 200 --kills 2 --postgres-restarts 1 --patience-secs 120
say "template checks"
"$REPO_ROOT/infra/scripts/check-template.sh"
say "all checks passed"
