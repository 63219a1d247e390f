# Sourced first by every scripts/<language>-sdk.sh: the preamble they share. Runs from the
# repository root with the shared debug CARGO_TARGET_DIR, a scratch directory $WORK, the shell
# test launcher (scripts/lib/syros.sh: start_syros / stop_syros), and an EXIT trap that stops the
# server it started and removes $WORK and whatever the script added to SDK_CLEANUP_PATHS.
#
#   source "$(dirname "$0")/lib/sdk.sh"
#   require mvn "install Maven 3.8 or newer"
#   SDK_CLEANUP_PATHS+=("$ROOT/examples/java/consumer/target")

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
WORK=$(mktemp -d)
SDK_CLEANUP_PATHS=()
# shellcheck source=syros.sh
source "$ROOT/scripts/lib/syros.sh"

log() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

# require COMMAND HOW-TO-INSTALL: fail with the hint when COMMAND is not on PATH.
require() { command -v "$1" >/dev/null || fail "$1 not found: $2"; }

# require_jdk: java and mvn on PATH, Java 17 or newer (the JVM SDKs' floor).
require_jdk() {
  require java "install a JDK 17 or newer"
  require mvn "install Maven 3.8 or newer"
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [ "${major%%.*}" -ge 17 ] 2>/dev/null || fail "Java 17 or newer needed, found ${major:-unknown}"
}

sdk_cleanup() {
  stop_syros
  rm -rf "$WORK" "${SDK_CLEANUP_PATHS[@]}"
}
trap sdk_cleanup EXIT

require cargo "install Rust (https://rustup.rs) first"
