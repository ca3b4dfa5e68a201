#!/usr/bin/env bash
# The reception computer's file interface, shown once: build, make a world, start the
# confirmation service and `reader-agent oqs` on a folder, drop one OQSsiquc01req file into
# req/ as reception software does, and print the answer it gets in res/ (converted from
# Shift_JIS for the terminal). Needs no card reader. Everything it started is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help)
    echo "usage: scripts/oqs-demo.sh [WORK-DIR]   (default oqs-demo; rebuilt on every run)"
    echo "Answers one Shift_JIS request file through reader-agent oqs (docs/oqs-files.md)."
    exit 0 ;;
esac
work="${1:-oqs-demo}"
echo "==> building"
cargo build --locked -p onshi-reader-agent -p onshi-confirm-service -p onshi-testbed --bins
rm -rf "$work"
mkdir -p "$work"
target/debug/testbed build --force --persons 60 --cards 8 --out "$work/world" > /dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "==> confirmation service"
target/debug/confirm-service serve --config "$work/world/service.toml" --listen 127.0.0.1:0 \
  > "$work/service.out" 2> "$work/service.log" &
pids+=($!)
for _ in $(seq 1 200); do grep -q "listening on" "$work/service.out" 2>/dev/null && break; sleep 0.05; done
addr=$(sed -n 's/^confirm-service: listening on //p' "$work/service.out" | head -1)
[ -n "$addr" ] || { echo "the service did not start: see $work/service.log"; exit 1; }

echo "==> reader-agent oqs --dir $work/oqs"
target/debug/reader-agent oqs --config "$work/world/terminals/1340123452-T01/agent.toml" \
  --service "https://$addr" --dir "$work/oqs" > "$work/agent.out" 2> "$work/agent.log" &
pids+=($!)
for _ in $(seq 1 200); do grep -q "oqs: serving" "$work/agent.out" 2>/dev/null && break; sleep 0.05; done

# The world's validity-1 example (a card-less query that answers 有効).
example() { awk -v k="\"$1\"" '/"case": "validity-1"/{f=1} f && index($0,k){gsub(/[",]/,"",$2); print $2; exit}' "$work/world/world.json"; }
insurer=$(example insurer_number); symbol=$(example symbol); number=$(example number)
branch=$(example branch); birth=$(example birth_date)

name="OQSsiquc01req_$(date +%Y%m%d%H%M%S).xml"
printf '%s\r\n' '<?xml version="1.0" encoding="Shift_JIS" standalone="no"?>' \
  "<XmlMsg><MessageHeader><MedicalInstitutionCode>1340123452</MedicalInstitutionCode><ArbitraryFileIdentifier>DEMO-1</ArbitraryFileIdentifier></MessageHeader><MessageBody><QualificationConfirmSearchInfo><InsurerNumber>$insurer</InsurerNumber><InsuredCardSymbol>$symbol</InsuredCardSymbol><InsuredIdentificationNumber>$number</InsuredIdentificationNumber><InsuredBranchNumber>$branch</InsuredBranchNumber><Birthdate>$birth</Birthdate><LimitApplicationCertificateRelatedConsFlg>1</LimitApplicationCertificateRelatedConsFlg></QualificationConfirmSearchInfo></MessageBody></XmlMsg>" \
  > "$work/$name.writing"
echo "==> request: req/$name"
mv "$work/$name.writing" "$work/oqs/req/$name"
answer="$work/oqs/res/${name/req_/res_}"
for _ in $(seq 1 200); do [ -f "$answer" ] && break; sleep 0.05; done
[ -f "$answer" ] || { echo "no answer: see $work/agent.log"; exit 1; }
echo "==> answer: res/$(basename "$answer") (Shift_JIS, shown as UTF-8)"
iconv -f CP932 -t UTF-8 "$answer"
echo "==> agent log"
cat "$work/agent.out"
