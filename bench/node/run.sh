#!/usr/bin/env bash
# The Node lock benchmark (not a test): starts its own Redis and PostgreSQL (scripts/lib/services.sh)
# and a `syros serve` on them, then bench/node/locks.mjs: the syros Node SDK against redlock +
# ioredis on the same Redis, 32 async loops, prints both and the ratio. Stops what it started.
#
#   bench/node/run.sh [seconds per side]      (SYROS_BIN: the server; default target/debug/syros)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
source scripts/lib/services.sh
trap stop_services EXIT
SYROS_BIN="${SYROS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/syros}"
[ -x "$SYROS_BIN" ] || { echo "build the server first: cargo build -p syros-server" >&2; exit 1; }
[ -f sdks/node/syros.linux-x64-gnu.node ] || { echo "build the addon first: scripts/node-sdk.sh (or npm run build in sdks/node)" >&2; exit 1; }
(cd bench/node && npm ci --no-audit --no-fund --loglevel=error)
start_redis
start_postgres
DIR=$(mktemp -d)
SERVICE_DIRS+=("$DIR")
(cd "$DIR" && REDIS_URL="$SYROS_TEST_REDIS_URL" DATABASE_URL="$SYROS_TEST_DATABASE_URL" GRPC_PORT=0 REST_PORT=0 WS_PORT=0 \
   SYROS_DATA_DIR="$DIR" SYROS_READY_FILE="$DIR/ready.json" LOG_LEVEL=warn exec "$SYROS_BIN" serve >"$DIR/syros.log" 2>&1) &
STARTED_PIDS+=($!)
wait_until 60 "syros serve" test -s "$DIR/ready.json"
sleep 0.2
address=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$DIR/ready.json','utf8')).grpc)")
node bench/node/locks.mjs "$address" "$SYROS_TEST_REDIS_URL" "${1:-5}"
