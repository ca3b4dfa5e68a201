#!/usr/bin/env bash
# Installs a standard gRPC client (Python's grpcio with its reflection and health clients)
# into target/grpc-py, for tests/tests/operations.rs and docs/operations.md. Idempotent.
# Prints the folder to put on PYTHONPATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/target/grpc-py"
if ! PYTHONPATH="$dest" python3 -c 'import grpc, grpc_reflection, grpc_health' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$dest" \
        grpcio grpcio-reflection grpcio-health-checking >&2
fi
echo "$dest"
