#!/usr/bin/env bash
# The Go lock benchmark (not a test): starts its own Redis and PostgreSQL (scripts/lib/services.sh)
# and a `syros serve` on them, then bench/go (the Syros Go SDK against redsync 4 + go-redis 9 on
# the same Redis: 32 goroutines on distinct keys, and 32 on one hot key holding it 1 ms); prints
# both and the ratios. Stops what it started.
#
#   bench/go/run.sh [seconds per measurement]
#
# SYROS_PROFILE=release (default debug) links the release static library and runs the release
# server: `cargo build --release -p syros-server -p syros-ffi` first. Only release figures are
# worth comparing with redsync. SYROS_BIN overrides the server.
#
# BENCH_PIN=1 pins Redis, PostgreSQL and the server to CPU 0 and the bench to CPU 1 (taskset), as
# lock_bench does. When target/<profile>/lock_bench exists (cargo build -p syros-bench), the Rust
# client core's c32 row runs on the same server afterwards (`lock_bench load`, with its process
# CPU per cycle), the bound the Go SDK is measured against. BENCH_ONLY=syros and
# BENCH_CPUPROFILE=<file> are passed to the Go bench (see main.go).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
source scripts/lib/services.sh
trap stop_services EXIT
PROFILE="${SYROS_PROFILE:-debug}"
case "$PROFILE" in debug) flag="" ;; release) flag="--release " ;; *) echo "SYROS_PROFILE is debug or release" >&2; exit 1 ;; esac
SYROS_BIN="${SYROS_BIN:-$CARGO_TARGET_DIR/$PROFILE/syros}"
[ -x "$SYROS_BIN" ] || { echo "build the server first: cargo build ${flag}-p syros-server" >&2; exit 1; }
[ -f "$CARGO_TARGET_DIR/$PROFILE/libsyros_ffi.a" ] || { echo "build the static library first: cargo build ${flag}-p syros-ffi" >&2; exit 1; }
export CGO_LDFLAGS="-L$CARGO_TARGET_DIR/$PROFILE ${CGO_LDFLAGS:-}"
server_cpu=() bench_cpu=() pin_note=unpinned
if [ "${BENCH_PIN:-0}" = 1 ]; then
  server_cpu=(taskset -c 0) bench_cpu=(taskset -c 1) pin_note="pinned: server CPU 0, bench CPU 1"
fi
start_redis
start_postgres
if [ "${BENCH_PIN:-0}" = 1 ]; then
  for pid in "${STARTED_PIDS[@]}"; do taskset -a -p -c 0 "$pid" >/dev/null; done
fi
DIR=$(mktemp -d)
SERVICE_DIRS+=("$DIR")
(cd bench/go && go build -o "$DIR/locks" .)
(cd "$DIR" && REDIS_URL="$SYROS_TEST_REDIS_URL" DATABASE_URL="$SYROS_TEST_DATABASE_URL" GRPC_PORT=0 REST_PORT=0 WS_PORT=0 \
   SYROS_DATA_DIR="$DIR" SYROS_READY_FILE="$DIR/ready.json" LOG_LEVEL=warn exec "${server_cpu[@]}" "$SYROS_BIN" serve >"$DIR/syros.log" 2>&1) &
STARTED_PIDS+=($!)
wait_until 60 "syros serve" test -s "$DIR/ready.json"
sleep 0.2
address=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$DIR/ready.json")
seconds=${1:-5}
BENCH_BUILD="$PROFILE build, $pin_note" \
  "${bench_cpu[@]}" "$DIR/locks" "$address" "$SYROS_TEST_REDIS_URL" "$seconds"
LOCK_BENCH="$CARGO_TARGET_DIR/$PROFILE/lock_bench"
if [ -x "$LOCK_BENCH" ]; then
  # A fixed number of cycles (about the window at 16k cycles/s); /usr/bin/time gives its CPU.
  cycles=$((16000 * seconds))
  echo "Rust client core (lock_bench load), distinct keys, same server:"
  "${bench_cpu[@]}" /usr/bin/time -f "lock_bench process CPU: %U s user + %S s system for $cycles cycles" \
    "$LOCK_BENCH" load "$address" "$cycles" 32
fi
