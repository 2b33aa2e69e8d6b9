#!/usr/bin/env bash
# Intake CPU in instructions (callgrind), beside the HMAC-SHA256 floor, for 2 KiB and 64 KiB
# Stripe events. Instructions per request = (Ir at 2N iterations - Ir at N) / N: set-up cancels.
# Usage: infra/scripts/intake-instructions.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
command -v valgrind >/dev/null || die "valgrind is missing: sudo apt-get install valgrind"
cargo build --release --quiet -p inlet-tools --bin intake-instructions
bin="$REPO_ROOT/target/release/intake-instructions"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total instructions of one run (callgrind's summary line).
instructions() {
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$bin" "$@" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

per_request() { # mode size n
    local a b
    a=$(instructions --mode "$1" --size "$2" --iterations "$3")
    b=$(instructions --mode "$1" --size "$2" --iterations $(($3 * 2)))
    echo $(((b - a) / $3))
}

printf '%-8s %14s %14s %8s\n' body pipeline hmac-floor ratio
for spec in "2048 2000" "65536 200"; do
    read -r size n <<<"$spec"
    p=$(per_request pipeline "$size" "$n")
    h=$(per_request hmac "$size" "$n")
    printf '%-8s %14d %14d %8s\n' "$((size / 1024)) KiB" "$p" "$h" \
        "$(awk -v p="$p" -v h="$h" 'BEGIN { printf "%.2fx", p / h }')"
done
