#!/usr/bin/env bash
# The kiosk for a person at a browser: install what is needed, build, build a world, start a
# private pcscd with a virtual-card rack, the confirmation service and the kiosk's pages, and
# let you place and pull cards by typing commands (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help)
    cargo run --quiet --locked -p onshi-e2e --bin onshi-kiosk -- --help 2>/dev/null \
      || echo "usage: scripts/kiosk.sh [--listen ADDR] [WORLD-DIR]"
    exit 0 ;;
esac
bash scripts/setup.sh
echo "==> building (first build takes a few minutes)"
cargo build --locked --workspace --bins
exec target/debug/onshi-kiosk "$@"
