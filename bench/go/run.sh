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
start_redis
start_postgres
DIR=$(mktemp -d)
SERVICE_DIRS+=("$DIR")
(cd bench/go && go build -o "$DIR/locks" .)
(cd "$DIR" && REDIS_URL="$SYROS_TEST_REDIS_URL" DATABASE_URL="$SYROS_TEST_DATABASE_URL" GRPC_PORT=0 REST_PORT=0 WS_PORT=0 \
   SYROS_DATA_DIR="$DIR" SYROS_READY_FILE="$DIR/ready.json" LOG_LEVEL=warn exec "$SYROS_BIN" serve >"$DIR/syros.log" 2>&1) &
STARTED_PIDS+=($!)
wait_until 60 "syros serve" test -s "$DIR/ready.json"
sleep 0.2
address=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$DIR/ready.json")
"$DIR/locks" "$address" "$SYROS_TEST_REDIS_URL" "${1:-5}"
