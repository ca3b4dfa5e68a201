#!/usr/bin/env bash
# Profiles the release confirm-service under the load harness's closed loop and draws a flame
# graph (docs/performance.md "Where the time goes").
#
#   scripts/profile.sh                     # WORLD=target/perf-world OUT=docs/perf/service-flame.svg
#   WORLD=dir OUT=file.svg SECONDS_SAMPLED=8 FREQ=499 scripts/profile.sh
#   TARGET=reference OUT=docs/perf/reference-flame.svg scripts/profile.sh   # the bare reference
#
# Only the measured phase is sampled: the run prepares every request in one window (a
# preparation's IssueChallenge calls and TLS traffic would otherwise be mixed in), and sampling
# starts at the target's second measured second.
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
TARGET=${TARGET:-service}
WORK=target/profile/$TARGET
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
case "$TARGET" in
    service) PATTERN='confirm-service'; EXTRA=(); PER_SECOND=8000 ;;
    reference) PATTERN='reference-server'; EXTRA=(--reference); PER_SECOND=14000 ;;
    *) echo "profile.sh: TARGET is service or reference, not $TARGET" >&2; exit 2 ;;
esac
DURATION=$((SECONDS_SAMPLED + 6))
# One window: more requests are prepared before the clock starts than the target answers in
# the run (about 5,500/s for the service and 11,500/s for the reference on the 2-core machine).
target/release/loadgen run --world "$WORLD" --start-service --terminals 16 --streams 4 \
    --duration "$DURATION" --prepare $((PER_SECOND * DURATION)) "${EXTRA[@]}" \
    >"$WORK/loadgen.out" 2>"$WORK/loadgen.err" &
LOADGEN=$!
trap 'kill "$LOADGEN" 2>/dev/null || true' EXIT

# The target is the load generator's child; sample it from its second measured second on.
PID=""
for _ in $(seq 1 1200); do
    PID=$(pgrep -P "$LOADGEN" -f "$PATTERN" | head -n 1 || true)
    if [ -n "$PID" ] && grep -Eq "^loadgen: +$TARGET +2 s " "$WORK/loadgen.err" 2>/dev/null; then
        break
    fi
    PID=""
    sleep 0.5
done
[ -n "$PID" ] || { echo "profile.sh: the $TARGET never reached its measured phase (see $WORK/loadgen.err)" >&2; exit 1; }
perf record -F "$FREQ" --call-graph dwarf,16384 -p "$PID" -o "$WORK/perf.data" \
    -- sleep "$SECONDS_SAMPLED" 2>"$WORK/perf-record.err"
wait "$LOADGEN" || true
trap - EXIT

perf script -i "$WORK/perf.data" 2>/dev/null >"$WORK/perf.script"
"$INFERNO/inferno-collapse-perf" "$WORK/perf.script" >"$WORK/folded.txt"
"$INFERNO/inferno-flamegraph" --minwidth 1.5 --title "$TARGET, closed loop 16 x 4, measured phase" \
    "$WORK/folded.txt" >"$OUT"
# The same samples summed by layer, in µs per request (the loadgen report's server CPU).
CPU=$(sed -n 's/^ *server CPU .*: \([0-9.]*\) µs per request$/\1/p' "$WORK/loadgen.out" | head -n 1)
scripts/perf-compare.py "$WORK/folded.txt" "${CPU:-100}" >"$WORK/layers.md" || true
echo "flame graph: $OUT; layers: $WORK/layers.md; loadgen report: $WORK/loadgen.out"
