#!/usr/bin/env bash
# Installs the project's tools where they are missing and prints where they are.
#   tools.sh moto|sam|cfn-lint|peer|schemathesis|cargo-lambda -> prints the venv's bin directory
#   tools.sh rust                -> makes sure rustfmt, clippy and cargo-nextest exist
#   tools.sh browser             -> Debian's chromium and Playwright's driver; prints the
#                                   node_modules directory that holds playwright-core
set -euo pipefail
. "$(dirname "$0")/lib.sh"

case "${1:-}" in
    moto)     ensure_venv moto "${MOTO_PIP[@]}" ;;
    sam)      ensure_venv sam "${SAM_PIP[@]}" ;;
    cfn-lint) ensure_venv cfn-lint "${CFNLINT_PIP[@]}" ;;
    peer)     ensure_venv peer "${PEER_PIP[@]}" ;;
    schemathesis) ensure_venv schemathesis "${SCHEMATHESIS_PIP[@]}" ;;
    cargo-lambda) ensure_venv cargo-lambda "${CARGO_LAMBDA_PIP[@]}" ;;
    rust)
        command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
        if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
            say "adding rustfmt and clippy"
            rustup component add rustfmt clippy >&2
        fi
        if ! cargo nextest --version >/dev/null 2>&1; then
            say "installing cargo-nextest (first run only, a few minutes)"
            cargo install --locked cargo-nextest >&2
        fi
        ;;
    browser)
        if [[ ! -x /usr/bin/chromium ]]; then
            [[ $(id -u) -eq 0 ]] || die "chromium is missing; install it with: sudo apt-get install -y chromium"
            say "installing Debian's chromium (first run only) ..."
            export DEBIAN_FRONTEND=noninteractive
            mkdir -p "$LOCAL_DIR"
            timeout 600 apt-get update -qq >"$LOCAL_DIR/apt-chromium.log" 2>&1 || die "apt-get update failed (see $LOCAL_DIR/apt-chromium.log)"
            timeout 900 apt-get install -y -qq chromium >>"$LOCAL_DIR/apt-chromium.log" 2>&1 \
                || die "apt-get install chromium failed (see $LOCAL_DIR/apt-chromium.log)"
        fi
        command -v npm >/dev/null || die "npm is missing; install Node.js (apt-get install -y nodejs npm)"
        dir="$TOOLS_DIR/playwright"
        if [[ "$(cat "$dir/.inlet-requirements" 2>/dev/null)" != "$PLAYWRIGHT_NPM" ]]; then
            say "installing $PLAYWRIGHT_NPM into $dir (first run only) ..."
            rm -rf "$dir" && mkdir -p "$dir"
            (cd "$dir" && npm init -y >/dev/null && timeout 600 npm install --silent --no-audit --no-fund "$PLAYWRIGHT_NPM" >&2) \
                || die "npm could not install $PLAYWRIGHT_NPM (is the npm registry reachable?)"
            printf '%s\n' "$PLAYWRIGHT_NPM" > "$dir/.inlet-requirements"
        fi
        printf '%s\n' "$dir/node_modules"
        ;;
    *) die "usage: tools.sh moto|sam|cfn-lint|peer|schemathesis|cargo-lambda|rust|browser" ;;
esac
