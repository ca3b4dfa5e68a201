# Puts the workspace's binaries (reader-agent, confirm-service, virtual-card, testbed,
# loadgen) on PATH for this shell, so the README's commands run as written:
#
#   cargo build --workspace --bins && source scripts/env.sh
#
# Source it (`source scripts/env.sh` or `. scripts/env.sh`); running it as a program changes
# nothing. ONSHI_PROFILE=release selects target/release instead of target/debug.
_onshi_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_onshi_bin="$_onshi_root/target/${ONSHI_PROFILE:-debug}"
if [ ! -x "$_onshi_bin/reader-agent" ]; then
  echo "scripts/env.sh: no binaries in $_onshi_bin yet; run: cargo build --workspace --bins" >&2
fi
case ":$PATH:" in
  *":$_onshi_bin:"*) ;;
  *) export PATH="$_onshi_bin:$PATH" ;;
esac
unset _onshi_root _onshi_bin
