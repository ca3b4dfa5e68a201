#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what is needed, check formatting and
# lints, build the binaries the end-to-end tests spawn, then run every test (unit,
# integration, end to end through a private pcscd) and print one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
echo "==> formatting and lints"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "==> building binaries for the end-to-end tests"
cargo build --locked --workspace --bins
echo "==> tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --workspace --no-fail-fast -- --test-threads "${ONSHI_TEST_THREADS:-4}" 2>&1 | tee "$log" || status=$?
passed=$(grep -oE '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "onshi: ${passed} passed, ${failed} failed"
exit "$status"
