#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what is needed, build the binaries the
# end-to-end tests spawn, then run every test (unit, integration, end to end) and the lints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "==> formatting and lints"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "==> building binaries for the end-to-end tests"
cargo build --locked --workspace --bins
echo "==> tests"
cargo test --locked --workspace -- --test-threads "${ONSHI_TEST_THREADS:-4}"
