#!/usr/bin/env bash
# Builds the JNI library (bindings/java, crate syros-java) and puts it where the jar carries it:
# <classes>/native/<os>-<arch>/, the folder io.syros.internal.NativeLoader extracts it from. One
# more platform is one more folder (built on that platform, or cross-compiled, and copied in).
#
#   build-native.sh <classes dir> [dev|release]      (Maven's generate-resources phase runs it)
set -euo pipefail
classes=$1
profile=${2:-dev}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v cargo >/dev/null || { echo "cargo not found: the Java SDK's native library is built from the Rust workspace (install Rust first)" >&2; exit 1; }
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$profile" in
  dev) out=debug ;;
  release) out=release ;;
  *) echo "unknown cargo profile $profile (dev or release)" >&2; exit 1 ;;
esac
(cd "$root" && CARGO_TARGET_DIR="$target_dir" cargo build --quiet -p syros-java --profile "$profile")
os=$(uname -s | tr '[:upper:]' '[:lower:]')
case "$(uname -m)" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) arch=$(uname -m) ;;
esac
case "$os" in
  darwin) lib=libsyros_java.dylib; os=macos ;;
  *) lib=libsyros_java.so ;;
esac
mkdir -p "$classes/native/$os-$arch"
cp "$target_dir/$out/$lib" "$classes/native/$os-$arch/$lib"
echo "syros-java: $classes/native/$os-$arch/$lib ($profile)"
