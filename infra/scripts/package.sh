#!/usr/bin/env bash
# `make package`: what `sam build` deploys, built here. SAM's Rust builder runs
# `cargo lambda build --release --bin <Binary>` from the workspace root for every function
# (cargo-lambda and zig come from PyPI, in their own venv), then this checks that every
# function of template.yaml got its `bootstrap` and prints its size.
# The architecture comes from the template's Architecture parameter (default arm64); this
# machine has only the x86_64 Rust standard library, so ARCH defaults to x86_64 here:
#   make package               # x86_64
#   make package ARCH=arm64    # needs `rustup target add aarch64-unknown-linux-gnu`
# Not part of `make test`: release builds of every function take a while on 2 cores.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
sam_bin=$("$REPO_ROOT/infra/scripts/tools.sh" sam)
lambda_bin=$("$REPO_ROOT/infra/scripts/tools.sh" cargo-lambda)
arch=${ARCH:-x86_64}
build_dir="$REPO_ROOT/.aws-sam/build"
export SAM_CLI_TELEMETRY=0 SAM_CLI_BETA_RUST_CARGO_LAMBDA=1
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
say "sam build (Architecture=$arch) into $build_dir"
PATH="$lambda_bin:$PATH" "$sam_bin/sam" build --template template.yaml --build-dir "$build_dir" \
    --parameter-overrides "Architecture=$arch" >&2
missing=0
functions=$(python3 - <<'PY'
import re
text = open("template.yaml").read()
print("\n".join(re.findall(r"^  (\w+):\n    Type: AWS::Serverless::Function", text, re.M)))
PY
)
for function in $functions; do
    bootstrap="$build_dir/$function/bootstrap"
    if [[ -x "$bootstrap" ]]; then
        printf '%-28s %8s KiB  %s\n' "$function" "$(( $(stat -c %s "$bootstrap") / 1024 ))" "$(file -b "$bootstrap" | cut -d, -f1-2)"
    else
        printf '%-28s MISSING\n' "$function"; missing=1
    fi
done
[[ $missing -eq 0 ]] || die "some functions have no bootstrap"
say "every function has its bootstrap"
