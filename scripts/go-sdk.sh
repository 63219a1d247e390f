#!/usr/bin/env bash
# The C ABI and the Go SDK end to end: builds syros-ffi (debug, the shared CARGO_TARGET_DIR: its
# staticlib is what sdks/go links), checks that the committed ffi/include/syros.h equals the
# header cbindgen generates, runs the ABI's own Rust test (tests/abi.rs), compiles the C smoke test with cc against the staticlib and runs it
# against `syros serve`, then `go vet` and `go test -race` of sdks/go (real servers), the Go
# conformance runner (both backends when SYROS_TEST_REDIS_URL/SYROS_TEST_DATABASE_URL are set) and
# every program in examples/go. Fails when a step fails or ran nothing. The last line is a
# one-line summary for scripts/test.
#
#   scripts/go-sdk.sh
set -euo pipefail
source "$(dirname "$0")/lib/sdk.sh"

command -v cc >/dev/null || fail "cc not found: install a C compiler (apt-get install gcc)"
command -v go >/dev/null || fail "go not found: install Go 1.24 or newer (https://go.dev/dl)"

log "cargo build -p syros-server -p syros-ffi"
cargo build --quiet -p syros-server -p syros-ffi
export SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"
STATICLIB="$CARGO_TARGET_DIR/debug/libsyros_ffi.a"
[ -f "$STATICLIB" ] || fail "$STATICLIB was not built"
# sdks/go links the staticlib from ../../target/debug by default; point cgo at this target dir.
export CGO_LDFLAGS="-L$CARGO_TARGET_DIR/debug ${CGO_LDFLAGS:-}"
export CGO_ENABLED=1

log "header check: ffi/include/syros.h equals the cbindgen output"
cargo test --quiet -p syros-ffi --test header >"$WORK/header.out" 2>&1 \
  || { cat "$WORK/header.out"; fail "ffi/include/syros.h is out of date: SYROS_BLESS_HEADER=1 cargo test -p syros-ffi --test header"; }

log "C ABI promises (cargo test -p syros-ffi --test abi: callbacks exactly once, NULL handles)"
cargo test --quiet -p syros-ffi --test abi

log "syros serve for the C smoke test and the examples"
start_syros
address=$SYROS_GRPC_ADDR

log "C smoke test (cc, linked against the staticlib)"
cc -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -o "$WORK/smoke" ffi/tests/c/smoke.c -Iffi/include "$STATICLIB" -lpthread -ldl -lm
"$WORK/smoke" "$address" | tee "$WORK/smoke.out"
smoke=$(grep -E '^c-smoke: [0-9]+ passed, 0 failed$' "$WORK/smoke.out" | sed 's/^c-smoke: //')
[ -n "$smoke" ] || fail "the C smoke test printed no summary"

log "go vet (sdks/go, tests/conformance/go, examples/go)"
(cd sdks/go && go vet ./...)
(cd tests/conformance/go && go vet ./...)
(cd examples/go && go vet ./...)
unformatted=$(gofmt -l sdks/go tests/conformance/go examples/go bench/go 2>/dev/null || true)
[ -z "$unformatted" ] || fail "gofmt: $unformatted"

log "go test -race (sdks/go, real syros serve)"
out="$WORK/go-test.out"
set +e
(cd sdks/go && go test -race -count=1 -v ./...) 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
pass=$(grep -cE '^--- PASS: ' "$out" || true)
failed=$(grep -cE '^--- FAIL: ' "$out" || true)
[ "$status" -eq 0 ] || fail "go test -race (exit $status): $pass passed, $failed failed"
[ "$pass" -gt 0 ] || fail "go test ran no test"

log "conformance (tests/conformance/go)"
backends=(embedded)
[ -n "${SYROS_TEST_REDIS_URL:-}" ] && [ -n "${SYROS_TEST_DATABASE_URL:-}" ] && backends+=(redis-postgres)
(cd tests/conformance/go && go build -o "$WORK/conformance" .)
conformance=""
for backend in "${backends[@]}"; do
  conf="$WORK/conformance-$backend.out"
  set +e
  (cd tests/conformance/go && SYROS_TEST_BACKEND=$backend "$WORK/conformance") 2>&1 | tee "$conf"
  status=${PIPESTATUS[0]}
  set -e
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$conf" | tail -1)
  [ "$status" -eq 0 ] || fail "Go conformance runner ($backend): ${line:-no summary}"
  conformance="${conformance:+$conformance, }$backend $line"
done

log "examples/go against syros serve"
ran=0
for example in examples/go/*/; do
  name=$(basename "$example")
  echo "--- examples/go/$name"
  (cd examples/go && go build -o "$WORK/$name" "./$name")
  "$WORK/$name" "$address" || { tail -50 "$SYROS_DIR/syros.log"; fail "example $name"; }
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || fail "no example ran"

stop_syros

echo
echo "go-sdk: header equals cbindgen output; C smoke test $smoke; go test -race $pass passed, $failed failed; conformance ${conformance}; examples/go: $ran programs ran and checked their outcome"
