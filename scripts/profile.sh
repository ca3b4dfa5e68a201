#!/usr/bin/env bash
# Profiles the release confirm-service under the load harness's closed loop and draws a flame
# graph (docs/performance.md "Where the time goes").
#
#   scripts/profile.sh                     # WORLD=target/perf-world OUT=docs/perf/service-flame.svg
#   WORLD=dir OUT=file.svg SECONDS_SAMPLED=8 FREQ=499 scripts/profile.sh
#
# Idempotent: installs perf (Debian's linux-perf) and inferno (into target/inferno) only when
# they are missing. The release binaries must be built first:
#   cargo build --release -p onshi-confirm-service -p onshi-loadgen -p onshi-testbed
# The release profile keeps line tables (debug = 1); call graphs are unwound from DWARF.
set -euo pipefail
cd "$(dirname "$0")/.."

WORLD=${WORLD:-target/perf-world}
OUT=${OUT:-docs/perf/service-flame.svg}
SECONDS_SAMPLED=${SECONDS_SAMPLED:-8}
FREQ=${FREQ:-499}
WORK=target/profile
INFERNO=target/inferno/bin

if ! command -v perf >/dev/null 2>&1; then
    apt-get install -y linux-perf
fi
if [ ! -x "$INFERNO/inferno-flamegraph" ]; then
    cargo install inferno --locked --root target/inferno
fi
for bin in loadgen confirm-service; do
    [ -x "target/release/$bin" ] || { echo "profile.sh: build target/release/$bin first" >&2; exit 2; }
done
[ -d "$WORLD" ] || { echo "profile.sh: no world at $WORLD (testbed build --out $WORLD --persons 100000 --cards 64)" >&2; exit 2; }

mkdir -p "$WORK" "$(dirname "$OUT")"
# A closed loop long enough to cover the preparation and the sampled seconds.
target/release/loadgen run --world "$WORLD" --start-service --terminals 16 --streams 4 \
    --duration $((SECONDS_SAMPLED + 12)) >"$WORK/loadgen.out" 2>"$WORK/loadgen.err" &
LOADGEN=$!
trap 'kill "$LOADGEN" 2>/dev/null || true' EXIT

# The service is the load generator's child; sample it once the measured phase runs.
SERVICE=""
for _ in $(seq 1 600); do
    SERVICE=$(pgrep -P "$LOADGEN" -f 'confirm-service' | head -n 1 || true)
    if [ -n "$SERVICE" ] && grep -q ' req/s ' "$WORK/loadgen.err" 2>/dev/null; then
        break
    fi
    sleep 0.5
done
[ -n "$SERVICE" ] || { echo "profile.sh: the service never started (see $WORK/loadgen.err)" >&2; exit 1; }
sleep 2
perf record -F "$FREQ" --call-graph dwarf,16384 -p "$SERVICE" -o "$WORK/perf.data" \
    -- sleep "$SECONDS_SAMPLED" 2>"$WORK/perf-record.err"
wait "$LOADGEN" || true
trap - EXIT

perf script -i "$WORK/perf.data" 2>/dev/null >"$WORK/perf.script"
"$INFERNO/inferno-collapse-perf" "$WORK/perf.script" >"$WORK/folded.txt"
"$INFERNO/inferno-flamegraph" --title "confirm-service, closed loop 16 x 4" \
    "$WORK/folded.txt" >"$OUT"
# The same samples summed by the function they land in (no call graph).
perf script -i "$WORK/perf.data" -F comm,ip,sym 2>/dev/null | scripts/perf-summary.py \
    >"$WORK/summary.txt" || true
echo "flame graph: $OUT; summary: $WORK/summary.txt; loadgen report: $WORK/loadgen.out"
