#!/usr/bin/env bash
# Regenerates the kiosk screenshots in docs/kiosk/ by running the kiosk's browser tests with
# ONSHI_SCREENSHOTS set (headless Chromium, real pcscd, real service).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
cargo build --locked --workspace --bins
ONSHI_SCREENSHOTS="$PWD/docs/kiosk" cargo test --locked -p onshi-e2e --test kiosk -- --test-threads 2
ls -1 docs/kiosk
