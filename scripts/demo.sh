#!/usr/bin/env bash
# The main job, from a fresh machine: install what is needed, build, build a synthetic world,
# start a private pcscd (vpcd driver), the confirmation service and a virtual card, and run one
# PIN-mode confirmation through the real PC/SC stack, printing the eligibility result.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help)
    echo "usage: scripts/demo.sh [WORLD-DIR]   (default demo-world; rebuilt on every run)"
    echo "Installs what is missing, builds, and runs one real confirmation through a private pcscd."
    exit 0 ;;
esac
bash scripts/setup.sh
echo "==> building (first build takes a few minutes)"
cargo build --locked --workspace --bins
exec target/debug/onshi-demo "${1:-demo-world}"
