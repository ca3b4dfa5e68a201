#!/usr/bin/env bash
# Installs everything onshi needs on a fresh Debian machine: the PC/SC stack (pcscd, the
# vsmartcard vpcd driver, the client library headers), OpenSC and OpenSSL for the interop and
# differential checks, OpenJPEG's opj_compress/opj_decompress (the testbed encodes the card photos, a
# test decodes them), and the build tools. Idempotent: packages already present are skipped.
set -euo pipefail

PACKAGES=(pkg-config libpcsclite-dev pcscd vsmartcard-vpcd opensc opensc-pkcs11 openssl util-linux iproute2 postgresql libopenjp2-tools)
# --browser: also the headless browser the kiosk's page tests drive (Debian's Chromium and its
# WebDriver, and CJK fonts so the Japanese screens render); the test command asks for them.
if [ "${1:-}" = "--browser" ]; then
  PACKAGES+=(chromium chromium-driver fonts-noto-cjk)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing packages needs root (run as root or install: ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # --no-install-recommends keeps the footprint small; pcscd would otherwise pull in udev rules
  # and polkit that a private, per-run daemon never uses.
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "==> Debian packages present"
fi

# The Debian pcscd package may start a system daemon through systemd socket activation. onshi
# never uses it (every run starts a private daemon in its own mount namespace), so it is left
# alone rather than stopped: other software on the machine may rely on it.
command -v cargo >/dev/null || { echo "error: cargo not found; install the Rust toolchain" >&2; exit 1; }

# A standard gRPC client for tests/tests/operations.rs and docs/operations.md: Python's grpcio
# with its reflection and health clients, into target/grpc-py (from PyPI, through pip).
echo "==> Python grpcio (reflection, health) into $("$(dirname "$0")/grpc-tools.sh")"
