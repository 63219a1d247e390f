#!/usr/bin/env bash
# A/B of two builds of the C ABI library on one server (not a test): the Go bench (syros row
# only) linked with OLD_DIR/libsyros_ffi.a and with NEW_DIR/libsyros_ffi.a, alternating for three
# rounds, each under `perf stat` (context switches, task clock); then the Rust client core's row.
# Redis, PostgreSQL and the release server are pinned to CPU 0, the bench to CPU 1.
#
#   bench/go/ab_ffi.sh OLD_DIR NEW_DIR [seconds per measurement]
#
# E.g. OLD_DIR: a copy of target/release after `cargo build --release -p syros-ffi` on main.
# Needs target/release/syros (and lock_bench) and linux-perf.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OLD_DIR NEW_DIR [seconds]" >&2; exit 1; }
OLD=$(cd "$1" && pwd) NEW=$(cd "$2" && pwd) seconds=${3:-3}
cd "$(dirname "$0")/../.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}/release"
source scripts/lib/services.sh
trap stop_services EXIT
DIR=$(mktemp -d)
SERVICE_DIRS+=("$DIR")
for v in old new; do
  lib=$OLD; [ $v = new ] && lib=$NEW
  (cd bench/go && CGO_LDFLAGS="-L$lib" go build -o "$DIR/locks.$v" .)
done
start_redis
start_postgres
for pid in "${STARTED_PIDS[@]}"; do taskset -a -p -c 0 "$pid" >/dev/null; done
(cd "$DIR" && REDIS_URL="$SYROS_TEST_REDIS_URL" DATABASE_URL="$SYROS_TEST_DATABASE_URL" GRPC_PORT=0 REST_PORT=0 WS_PORT=0 \
   SYROS_DATA_DIR="$DIR" SYROS_READY_FILE="$DIR/ready.json" LOG_LEVEL=warn exec taskset -c 0 "$TARGET/syros" serve >"$DIR/syros.log" 2>&1) &
STARTED_PIDS+=($!)
wait_until 60 "syros serve" test -s "$DIR/ready.json"
sleep 0.2
address=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$DIR/ready.json")
for round in 1 2 3; do
  for v in old new; do
    echo "== round $round, $v library"
    BENCH_ONLY=syros BENCH_BUILD="release, pinned" perf stat -e context-switches,task-clock -x, -o "$DIR/stat" \
      taskset -c 1 "$DIR/locks.$v" "$address" "$SYROS_TEST_REDIS_URL" "$seconds" | grep cycles/s
    grep -E "context-switches|task-clock" "$DIR/stat" | cut -d, -f1,3
  done
done
if [ -x "$TARGET/lock_bench" ]; then
  cycles=$((16000 * seconds))
  echo "== Rust client core (lock_bench load), same server"
  taskset -c 1 /usr/bin/time -f "lock_bench process CPU: %U s user + %S s system for $cycles cycles" \
    "$TARGET/lock_bench" load "$address" "$cycles" 32
fi
