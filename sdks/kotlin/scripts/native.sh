#!/usr/bin/env bash
# Run by `mvn` (generate-sources): builds the UniFFI bridge (bindings/uniffi) and the
# uniffi-bindgen bin crate with cargo, generates the Kotlin bindings from the built library into
# $1, and copies the library into $2/linux-x86-64/ (a jar resource: JNA loads it from the class
# path). Uses CARGO_TARGET_DIR when set (the workspace's target/ otherwise); debug unless
# SYROS_CARGO_PROFILE=release.
#
#   scripts/native.sh <generated-sources dir> <native resources dir>
set -euo pipefail
GENERATED=${1:?generated sources dir}
NATIVE=${2:?native resources dir}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${SYROS_CARGO_PROFILE:-debug}"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

cargo_args=(build --quiet --manifest-path "$ROOT/Cargo.toml" -p syros-uniffi -p syros-uniffi-bindgen)
[ "$PROFILE" = release ] && cargo_args+=(--release)
cargo "${cargo_args[@]}"
LIB="$CARGO_TARGET_DIR/$PROFILE/libsyros_uniffi.so"
[ -f "$LIB" ] || { echo "$LIB was not built" >&2; exit 1; }

rm -rf "$GENERATED"
mkdir -p "$GENERATED" "$NATIVE/linux-x86-64"
# cargo metadata (run by the bindgen to find bindings/uniffi/uniffi.toml) reads the workspace.
(cd "$ROOT" && "$CARGO_TARGET_DIR/$PROFILE/uniffi-bindgen" generate --no-format \
   --library "$LIB" --language kotlin --out-dir "$GENERATED")
# One call status per thread instead of a JNA allocation per call (see the script).
python3 "$(dirname "$0")/patch-bindings.py" "$GENERATED/io/syros/kotlin/ffi/syros.kt"
# Without its debug sections: the jar carries a third of the size, stack traces keep symbols.
if command -v objcopy >/dev/null; then
  objcopy --strip-debug "$LIB" "$NATIVE/linux-x86-64/libsyros_uniffi.so"
else
  cp "$LIB" "$NATIVE/linux-x86-64/libsyros_uniffi.so"
fi
