#!/usr/bin/env bash
# Benchmark (not a test): the Java SDK's lock cycles/s (32 threads, distinct keys) against
# Redisson on the same Redis, in one run; prints the ratio. Starts its own Redis + PostgreSQL
# (scripts/lib/services.sh) and a `syros serve` on them; needs `mvn -f sdks/java install` first.
# Pin with BENCH_SERVER_CPU / BENCH_CLIENT_CPU (taskset) for steadier figures.
#
#   bench/java/run.sh [threads] [seconds]
#
# SYROS_BIN: the server (default: target/debug/syros, built here). Only release figures are worth
# comparing with Redisson: `cargo build --release -p syros-server`, SYROS_BIN=target/release/syros,
# and the SDK installed with its release library (`mvn -f sdks/java install -DskipTests
# -Dsyros.cargo.profile=release`).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
source scripts/lib/services.sh
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  stop_services
  rm -rf "$WORK" "$ROOT/bench/java/target"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The command under `taskset` when a CPU is given (exec'd, so $! is the process itself).
pinned() { local cpu=$1; shift; if [ -n "$cpu" ] && command -v taskset >/dev/null; then echo taskset -c "$cpu" "$@"; else echo "$@"; fi; }

if [ -z "${SYROS_BIN:-}" ]; then
  cargo build --quiet -p syros-server
  SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"
fi
start_redis >/dev/null
start_postgres >/dev/null
SERVER_HOST=127.0.0.1 GRPC_PORT=0 REST_PORT=0 WS_PORT=0 SYROS_DATA_DIR="$WORK/data" SYROS_READY_FILE="$WORK/ready.json" \
   REDIS_URL="$SYROS_TEST_REDIS_URL" DATABASE_URL="$SYROS_TEST_DATABASE_URL" \
   $(pinned "${BENCH_SERVER_CPU:-}" "$SYROS_BIN" serve) >"$WORK/syros.log" 2>&1 &
SERVER_PID=$!
address=""
for _ in $(seq 1 300); do
  [ -s "$WORK/ready.json" ] && address=$(sed -nE 's/.*"grpc" *: *"([^"]+)".*/\1/p' "$WORK/ready.json")
  [ -n "$address" ] && break
  sleep 0.1
done
[ -n "$address" ] || { cat "$WORK/syros.log"; echo "syros serve did not get ready" >&2; exit 1; }
mvn -B -q -ntp -f bench/java/pom.xml package dependency:build-classpath -Dmdep.outputFile="$WORK/cp.txt"
$(pinned "${BENCH_CLIENT_CPU:-}" java) -cp "bench/java/target/syros-bench-java-0.1.0.jar:$(cat "$WORK/cp.txt")" \
  io.syros.bench.LockBench "$address" "${SYROS_TEST_REDIS_URL}" "${1:-32}" "${2:-5}"
