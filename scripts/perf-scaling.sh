#!/usr/bin/env bash
# How the service's cost grows with the population and with the number of terminals
# (docs/performance.md "Scaling"). Release build; worlds are built under $DIR when missing
# (the 10 million one takes about 6 minutes and 7.4 GB). Each line is one 10 s closed-loop run
# of PIN-mode confirmations against a service started on a copy of the world's store.
#
#   scripts/perf-scaling.sh [DIR]        # default DIR: /tmp/onshi-scaling
#   POPULATIONS="1000 100000" TERMINALS="10 100" scripts/perf-scaling.sh   # "" skips a table
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/onshi-scaling}
POPULATIONS=${POPULATIONS-"1000 100000 1000000 10000000"}
TERMINALS=${TERMINALS-"10 100 500 2000"}
DURATION=${DURATION:-10}
mkdir -p "$DIR"
cargo build --release -q -p onshi-testbed -p onshi-confirm-service -p onshi-loadgen
bin=target/release

world() { # persons → world dir, built once
    local w="$DIR/world-$1"
    if [[ ! -f "$w/world.json" ]]; then
        echo "perf-scaling: building a world of $1 persons in $w" >&2
        "$bin/testbed" build --out "$w" --persons "$1" --cards 64 --force >&2
    fi
    echo "$w"
}

summary() { # report.json → one table row
    python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["targets"][0]
lat = t["latency"]
cpu = t.get("server_cpu") or {}
print(f"| {sys.argv[2]} | {t['throughput_per_s']:,.0f} | {lat['p50_us'] / 1000:.1f} ms | {lat['p99_us'] / 1000:.1f} ms "
      f"| {cpu.get('us_per_request', float('nan')):.0f} µs | {t['unexpected_errors']} |")
PY
}

run() { # label world extra-args...
    local label=$1 w=$2; shift 2
    local json="$DIR/run-${label// /_}.json"
    "$bin/loadgen" run --world "$w" --start-service --mix pin=1 --duration "$DURATION" \
        --quiet --json "$json" "$@" >/dev/null
    summary "$json" "$label"
}

echo "| persons | req/s | p50 | p99 | server CPU / req | unexpected |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in $POPULATIONS; do
    run "$n" "$(world "$n")" --terminals 16 --streams 4
done
echo
echo "| terminals (connections), 64 in flight | req/s | p50 | p99 | server CPU / req | unexpected |"
echo "|---:|---:|---:|---:|---:|---:|"
w=$(world 100000)
for t in $TERMINALS; do
    run "$t" "$w" --terminals "$t" --concurrency 64
done
