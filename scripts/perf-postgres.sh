#!/usr/bin/env bash
# The service on PostgreSQL under the closed loop (docs/performance.md "PostgreSQL"): one
# instance, then two instances sharing the store, each run driven by one loadgen whose
# virtual terminals are spread over the instances. Everything runs on this machine: a private
# PostgreSQL cluster (durable commits: fsync and synchronous_commit on) on a Unix socket in
# $WORK, the world's store copied into it, and the service instances; all of them are stopped
# (by pid) and $WORK's cluster removed at the end, even on failure.
#
#   scripts/perf-postgres.sh                       # WORLD=target/perf-world DURATION=15
#   WORLD=dir DURATION=30 INSTANCES="1 2" scripts/perf-postgres.sh
#
# Needs the release binaries (cargo build --release -p onshi-confirm-service -p onshi-loadgen)
# and Debian's postgresql (scripts/setup.sh installs it). The instances get the protections a
# service started by `loadgen run --start-service` gets: the per-terminal rate limit and the
# look-up quota lifted as far as the load needs, the per-RPC log line on (to a file per
# instance), a long challenge lifetime.
set -euo pipefail
cd "$(dirname "$0")/.."
WORLD=${WORLD:-target/perf-world}
DURATION=${DURATION:-15}
INSTANCES=${INSTANCES:-"1 2"}
WORK=$(pwd)/target/perf-postgres
BIN=$(pwd)/target/release
PORT=5432

for b in confirm-service loadgen; do
    [ -x "$BIN/$b" ] || { echo "perf-postgres: build $BIN/$b first" >&2; exit 2; }
done
[ -f "$WORLD/world.json" ] || { echo "perf-postgres: no world at $WORLD" >&2; exit 2; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] || { echo "perf-postgres: PostgreSQL is not installed (scripts/setup.sh)" >&2; exit 2; }

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    if [ -f "$WORK/pg/data/postmaster.pid" ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK/pg"
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK/pg"
chown postgres "$WORK/pg"
echo "perf-postgres: a private cluster in $WORK/pg" >&2
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -U postgres -E UTF8 \
    --locale=C >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -w -l "$WORK/pg/server.log" \
    -o "-p $PORT -k $WORK/pg -c listen_addresses= -c fsync=on -c synchronous_commit=on -c max_connections=200" \
    start >/dev/null
runuser -u postgres -- "$PGBIN/createdb" -h "$WORK/pg" -p "$PORT" onshi
HOST=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$WORK/pg")
URL="postgres://postgres@$HOST:$PORT/onshi"

# The world's copy, its store copied into PostgreSQL and its configuration pointed there.
mkdir -p "$WORK/world"
cp -r "$WORLD"/. "$WORK/world/"
rm -rf "$WORK/world"/.loadgen-run-*
echo "perf-postgres: copying the store into PostgreSQL" >&2
"$BIN/confirm-service" store copy --from "$WORK/world/store/onshi.sqlite" --to "$URL" >&2
python3 - "$WORK/world/service.toml" "$URL" <<'PY'
import sys
path, url = sys.argv[1], sys.argv[2]
lines = [l for l in open(path, encoding="utf-8").read().splitlines()]
out, section = [], None
for l in lines:
    s = l.strip()
    if s.startswith("["):
        section = s
    key = s.split("=", 1)[0].strip() if "=" in s else None
    if section is None and key in ("store", "challenge_ttl_seconds"):
        continue
    if section in ("[rate_limit]",) and key in ("per_second", "burst"):
        continue
    if section == "[quotas]" and key == "lookups_per_day":
        continue
    out.append(l)
text = "\n".join(out) + "\n"
# 16 terminals at up to 12,500 confirmations/s (two RPCs-worth of headroom), as loadgen lifts
# the limits of a service it starts.
head = f'store = "{url}"\nchallenge_ttl_seconds = 3600\n'
if "[rate_limit]" in text:
    text = text.replace("[rate_limit]", "[rate_limit]\nper_second = 6250.0\nburst = 6250", 1)
else:
    text += "\n[rate_limit]\nper_second = 6250.0\nburst = 6250\n"
if "[quotas]" in text:
    text = text.replace("[quotas]", "[quotas]\nlookups_per_day = 73500000", 1)
else:
    text += "\n[quotas]\nlookups_per_day = 73500000\n"
open(path, "w", encoding="utf-8").write(head + text)
PY

start_instance() { # name → sets URL_<name> and PID_<name>
    local log="$WORK/service-$1.log" out="$WORK/service-$1.out"
    RUST_LOG=info "$BIN/confirm-service" serve --config "$WORK/world/service.toml" \
        --listen 127.0.0.1:0 >"$out" 2>"$log" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 300); do
        if grep -q '^confirm-service: listening on ' "$out"; then
            eval "URL_$1=https://$(sed -n 's/^confirm-service: listening on //p' "$out" | head -n 1)"
            eval "PID_$1=$pid"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.2
    done
    echo "perf-postgres: instance $1 did not start" >&2
    cat "$log" >&2
    exit 1
}

# CPU seconds of every PostgreSQL process (the server and its backends), from /proc.
pg_cpu() {
    local ticks total=0 f
    ticks=$(getconf CLK_TCK)
    for p in $(pgrep -u postgres || true); do
        f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
        total=$((total + ${f:-0}))
    done
    python3 -c "print($total / $ticks)"
}

start_instance a
for n in $INSTANCES; do
    args=(--service "$URL_a" --service-pid "$PID_a")
    if [ "$n" = 2 ]; then
        [ -n "${PID_b:-}" ] || start_instance b
        args+=(--service "$URL_b" --service-pid "$PID_b")
    fi
    echo "perf-postgres: $n instance(s), closed loop 16 x 4, $DURATION s" >&2
    # One window, prepared before the clock starts: more than the instances answer in it.
    "$BIN/loadgen" run --world "$WORK/world" "${args[@]}" --terminals 16 --streams 4 \
        --duration "$DURATION" --window "$DURATION" --prepare $((7000 * DURATION)) \
        --json "$WORK/run-$n.json" >"$WORK/run-$n.out" 2>"$WORK/run-$n.err" &
    LOADGEN=$!
    # PostgreSQL's CPU over the measured phase: from the first measured second to the end.
    until grep -Eq '^loadgen: +service +1 s ' "$WORK/run-$n.err" 2>/dev/null; do
        kill -0 "$LOADGEN" 2>/dev/null || break
        sleep 0.2
    done
    before=$(pg_cpu)
    wait "$LOADGEN" || true
    after=$(pg_cpu)
    grep -E '^  (measured|latency|server CPU|loadgen CPU)' "$WORK/run-$n.out" | sed "s/^/[$n] /"
    python3 - "$WORK/run-$n.json" "$before" "$after" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["targets"][0]
cpu = float(sys.argv[3]) - float(sys.argv[2])
# Read from the end of the first measured second: the requests of that second are left out.
seconds = r["seconds"]
n = r["requests"] - (seconds[0]["completed"] if seconds else 0)
print(f"[{sys.argv[4]}]   PostgreSQL CPU {cpu:.2f} s after the first measured second: "
      f"{cpu * 1e6 / max(n, 1):.1f} µs per request")
PY
done
echo "perf-postgres: reports in $WORK" >&2
