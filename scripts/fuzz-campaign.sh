#!/usr/bin/env bash
# Runs every cargo-fuzz target in turn for SECONDS each (default 600), at low CPU priority,
# seeded from the committed corpus, new inputs written to a scratch folder (never into
# fuzz/corpus), and prints one line per target: executions, exec/s, coverage, corpus, and
# whether libFuzzer found a crash, timeout or leak. Needs the nightly toolchain or
# RUSTC_BOOTSTRAP=1 and cargo-fuzz (see docs/validation.md, "Fuzzing").
#
#   scripts/fuzz-campaign.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(certificate crl request apdu card_response kiosk_body oqs_request)
fi
case $seconds in '' | *[!0-9]*) echo "fuzz-campaign: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac
scratch=${FUZZ_SCRATCH:-$(mktemp -d /tmp/onshi-fuzz.XXXXXX)}
echo "fuzz-campaign: $seconds s per target, scratch corpus and logs in $scratch" >&2
export RUSTC_BOOTSTRAP=1
[ -n "${FUZZ_NO_BUILD:-}" ] || cargo fuzz build -O >&2   # FUZZ_NO_BUILD=1: use the binaries already built
bin=target/x86_64-unknown-linux-gnu/release
status=0
for t in "${targets[@]}"; do
    [ -x "$bin/$t" ] || { echo "fuzz-campaign: no target '$t'" >&2; exit 2; }
    mkdir -p "$scratch/$t" "$scratch/artifacts/$t"
    echo "fuzz-campaign: $t for $seconds s ($(date -u +%H:%M:%S))" >&2
    rc=0
    nice -n 19 "$bin/$t" "$scratch/$t" "corpus/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$scratch/artifacts/$t/" >"$scratch/$t.log" 2>&1 || rc=$?
    last=$(grep -E '^#[0-9]+' "$scratch/$t.log" | tail -1)
    execs=$(grep -E '^stat::number_of_executed_units' "$scratch/$t.log" | awk '{print $2}')
    rate=$(grep -E '^stat::average_exec_per_sec' "$scratch/$t.log" | awk '{print $2}')
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+\/[0-9a-zA-Z]+).*/\1 \/ \2, corpus \3/p' <<<"$last")
    found=none
    if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$scratch/artifacts/$t")" ]; then
        found="FOUND (exit $rc): $(ls "$scratch/artifacts/$t" | tr '\n' ' ')"
        status=1
    fi
    printf '%s: %s executions, %s exec/s, cov/ft %s, crashes/timeouts/leaks: %s\n' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$found"
done
exit $status
