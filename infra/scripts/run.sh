#!/usr/bin/env bash
# `make run`: the local system. Today: services, migrations and the tenancy audit; the local
# cloud (functions under a Lambda runtime emulator, HTTP gateway, SQS and schedules) extends it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/infra/scripts/services.sh" up
# shellcheck disable=SC1091
. "$LOCAL_DIR/env"
cargo build --quiet -p inlet-infra --bin inlet
inlet="$REPO_ROOT/target/debug/inlet"
"$inlet" migrate --dir migrations
"$inlet" db audit
"$inlet" db seed-demo
"$inlet" status
"$inlet" local resources --template template.yaml
echo "demo sources (local only):"
"$inlet" sources seed-demo
cat <<TXT

Inlet's local services are running:
  Postgres   $DATABASE_URL   (application role; owner: $DATABASE_ADMIN_URL)
  SQS/DynamoDB (moto)   $AWS_ENDPOINT_URL
Use them from a shell:   . .local/env
Stop them:               make services-stop
TXT
