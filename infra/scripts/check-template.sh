#!/usr/bin/env bash
# Template checks: `sam validate --lint` and the pinned cfn-lint, each from its own venv.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
sam_bin=$("$REPO_ROOT/infra/scripts/tools.sh" sam)
cfn_bin=$("$REPO_ROOT/infra/scripts/tools.sh" cfn-lint)
export SAM_CLI_TELEMETRY=0
# sam validate needs a region and some credentials to start; it contacts nothing with --lint.
AWS_REGION=${AWS_REGION:-us-east-1} AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} \
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test} \
    "$sam_bin/sam" validate --lint --template template.yaml
"$cfn_bin/cfn-lint" --version
"$cfn_bin/cfn-lint" template.yaml
echo "template checks: clean"
