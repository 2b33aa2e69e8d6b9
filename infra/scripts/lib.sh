# Shared helpers for Inlet's scripts. Source it; do not run it.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="$REPO_ROOT/.local"
TOOLS_DIR="$LOCAL_DIR/tools"   # venvs: survive `make reset`
STATE_DIR="$LOCAL_DIR/state"   # service data: removed by `make reset`

say()  { printf '%s\n' "inlet: $*" >&2; }
die()  { printf '%s\n' "inlet: error: $*" >&2; exit 1; }

# Pinned tool versions: one place to bump them.
MOTO_PIP=("moto[sqs,dynamodb,sns,s3]==5.2.5" "flask==3.1.3" "flask-cors==6.0.2")
SAM_PIP=("aws-sam-cli==1.170.0")
CFNLINT_PIP=("cfn-lint==1.53.3")   # 1.54+ stopped transforming SAM templates
# bench-intake's peer: the intake a team would write with Powertools for AWS Lambda (Python).
PEER_PIP=("aws-lambda-powertools==3.37.0" "stripe==16.1.0" "boto3==1.44.8")
# The tenant API's contract checks: schemathesis against the served document, and a validator
# of the document itself (OpenAPI 3.1).
SCHEMATHESIS_PIP=("schemathesis==4.32.5" "openapi-spec-validator==0.9.0")
# The console's browser tests: Playwright's driver only (its own browser download fails here),
# driving Debian's chromium.
PLAYWRIGHT_NPM="playwright-core@1.64.1"
CARGO_LAMBDA_PIP=("cargo-lambda==1.9.2" "ziglang==0.14.1")   # make package: sam build's Rust builder

# ensure_venv NAME PIP_ARGS... : a venv under .local/tools/NAME with exactly these packages.
# Re-installs when the requested packages change; prints the venv's bin directory.
ensure_venv() {
    local name=$1; shift
    local venv="$TOOLS_DIR/$name" stamp want
    stamp="$venv/.inlet-requirements"
    want="$(printf '%s\n' "$@")"
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        printf '%s\n' "$venv/bin"; return 0
    fi
    command -v python3 >/dev/null || die "python3 is required to create the $name tools venv; install it (apt-get install -y python3 python3-venv)"
    say "installing $name into $venv (first run only) ..."
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || die "python3 -m venv failed; on Debian: apt-get install -y python3-venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --timeout 60 "$@" >&2 \
        || die "pip could not install $* into $venv (is PyPI reachable?)"
    printf '%s\n' "$want" > "$stamp"
    printf '%s\n' "$venv/bin"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_until SECONDS DESCRIPTION COMMAND...: bounded wait; never waits forever.
wait_until() {
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS >= deadline )); then
            return 1
        fi
        sleep 0.2
    done
    say "$what is ready"
}
