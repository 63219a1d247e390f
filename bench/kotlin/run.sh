#!/usr/bin/env bash
# The Kotlin lock benchmark (not a test): starts its own Redis and PostgreSQL
# (scripts/lib/services.sh) and a `syros serve` on them, then bench/kotlin (Locks.kt): the syros
# Kotlin SDK against Redisson on the same Redis, 32 coroutines, prints both and the ratio. Stops
# what it started. Needs the Kotlin and Java SDKs installed in the local Maven repository (scripts/kotlin-sdk.sh,
# scripts/java-sdk.sh).
#
#   bench/kotlin/run.sh [seconds per side]      (SYROS_BIN: the server; default target/debug/syros)
#
# BENCH_JAVA_OPTS: extra JVM options (a profiler agent, JFR); BENCH_ONLY=syros|redisson|java|
# java-blocking: one side; BENCH_JAVA_SDK=1: also the Java SDK (JNI) from the same coroutines, its
# futures awaited and its blocking calls on Dispatchers.IO (needs sdks/java installed:
# scripts/java-sdk.sh; -Dsyros.native.library=... in BENCH_JAVA_OPTS picks its native library).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
source scripts/lib/services.sh
trap stop_services EXIT
SYROS_BIN="${SYROS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/syros}"
[ -x "$SYROS_BIN" ] || { echo "build the server first: cargo build -p syros-server" >&2; exit 1; }
SYROS_BIN=$(realpath "$SYROS_BIN") # the server starts in its own directory
DIR=$(mktemp -d)
SERVICE_DIRS+=("$DIR")
(cd bench/kotlin && mvn -B -q -Dkotlin.compiler.daemon=false package dependency:build-classpath -Dmdep.outputFile="$DIR/cp.txt") \
  || { echo "install the SDK first: scripts/kotlin-sdk.sh (or mvn -f sdks/kotlin/pom.xml install)" >&2; exit 1; }
start_redis
start_postgres
(cd "$DIR" && REDIS_URL="$SYROS_TEST_REDIS_URL" DATABASE_URL="$SYROS_TEST_DATABASE_URL" GRPC_PORT=0 REST_PORT=0 WS_PORT=0 \
   SYROS_DATA_DIR="$DIR" SYROS_READY_FILE="$DIR/ready.json" LOG_LEVEL=warn exec "$SYROS_BIN" serve >"$DIR/syros.log" 2>&1) &
STARTED_PIDS+=($!)
wait_until 60 "syros serve" test -s "$DIR/ready.json" || { tail -20 "$DIR/syros.log" >&2; exit 1; }
sleep 0.2
address=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['grpc'])" "$DIR/ready.json")
# shellcheck disable=SC2086 # BENCH_JAVA_OPTS is a list of options
java ${BENCH_JAVA_OPTS:-} -cp "bench/kotlin/target/classes:$(cat "$DIR/cp.txt")" LocksKt "$address" "$SYROS_TEST_REDIS_URL" "${1:-5}"
