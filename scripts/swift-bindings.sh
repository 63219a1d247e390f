#!/usr/bin/env bash
# Regenerates the committed Swift bindings of the UniFFI bridge (sdks/swift/Sources/SyrosFFI and
# SyrosFFIC) from the built library; scripts/kotlin-sdk.sh fails while they differ from what this
# writes. Run it after changing bindings/uniffi (or the binding API records it declares).
#
#   scripts/swift-bindings.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet -p syros-uniffi -p syros-uniffi-bindgen
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --no-format --library "$CARGO_TARGET_DIR/debug/libsyros_uniffi.so" \
  --language swift --out-dir "$out"
cp "$out/SyrosFFI.swift" sdks/swift/Sources/SyrosFFI/SyrosFFI.swift
cp "$out/SyrosFFIC.h" sdks/swift/Sources/SyrosFFIC/SyrosFFIC.h
echo "sdks/swift: bindings regenerated"
