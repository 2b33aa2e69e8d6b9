#!/usr/bin/env bash
# Installs the project's tools where they are missing and prints where they are.
#   tools.sh moto|sam|cfn-lint|peer|schemathesis|cargo-lambda -> prints the venv's bin directory
#   tools.sh rust                -> makes sure rustfmt, clippy and cargo-nextest exist
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
    *) die "usage: tools.sh moto|sam|cfn-lint|peer|schemathesis|cargo-lambda|rust" ;;
esac
