#!/usr/bin/env bash
# The Python lock benchmark (not a test): builds a release wheel of the SDK into its own venv
# (.venv-bench), starts its own Redis and PostgreSQL (scripts/lib/services.sh) and a `syros serve`
# on them (scripts/lib/syros.sh), then bench/python/locks.py: the Syros Python SDK (asyncio)
# against redis-py's asyncio lock on the same Redis, in the same run — once with
# opentelemetry-api installed (the SDK wraps each call in a client span) and once without.
# Stops what it started.
#
#   bench/python/run.sh        (SYROS_BIN: the server; default target/release/syros)
#
# Pin it like the peers harness for figures worth comparing: taskset -c 1 bench/python/run.sh
# with the servers on the other CPU is not possible from one script, so it leaves placement to
# the scheduler and the ratios of one run are what count.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SYROS_BIN="${SYROS_BIN:-$CARGO_TARGET_DIR/release/syros}"
[ -x "$SYROS_BIN" ] || { echo "build the server first: cargo build --release -p syros-server" >&2; exit 1; }
export SYROS_BIN
VENV="$ROOT/.venv-bench"
source scripts/lib/services.sh
source scripts/lib/syros.sh
cleanup() { stop_syros; stop_services; }
trap cleanup EXIT

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/python/requirements.txt
WHEELS=$(mktemp -d)
SERVICE_DIRS+=("$WHEELS")
(cd sdks/python && "$VENV/bin/maturin" build --release --interpreter "$VENV/bin/python" --out "$WHEELS")
"$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$WHEELS"/syros-*.whl

start_redis
start_postgres
start_syros REDIS_URL="$SYROS_TEST_REDIS_URL" DATABASE_URL="$SYROS_TEST_DATABASE_URL" LOG_LEVEL=warn
"$VENV/bin/python" bench/python/locks.py "$SYROS_GRPC_ADDR" "$SYROS_TEST_REDIS_URL"
BENCH_SIDES=syros BENCH_NO_OTEL=1 "$VENV/bin/python" bench/python/locks.py "$SYROS_GRPC_ADDR" "$SYROS_TEST_REDIS_URL"
