#!/usr/bin/env bash
# The Python SDK end to end: builds the wheel (maturin, debug profile, the shared CARGO_TARGET_DIR)
# in the repo's .venv, installs it, runs pytest on sdks/python/tests and the Python conformance
# runner against `syros serve` (SYROS_BIN; on the embedded store, and on Redis + PostgreSQL too
# when SYROS_TEST_REDIS_URL and SYROS_TEST_DATABASE_URL are set), then runs every program in
# examples/python against a server this script starts (the shell form of the one test launcher,
# scripts/lib/syros.sh) and stops by PID. Prints pytest's summary lines; fails when a test fails
# or none ran. The last line is a one-line summary for scripts/test.
#
#   scripts/python-sdk.sh                  everything
#   scripts/python-sdk.sh -k locks         extra arguments go to pytest
set -euo pipefail
source "$(dirname "$0")/lib/sdk.sh"
VENV="$ROOT/.venv"

command -v python3 >/dev/null || fail "python3 not found"

log "Python tools (.venv: sdks/python/requirements-dev.txt)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r sdks/python/requirements-dev.txt

log "cargo build -p syros-server"
cargo build --quiet -p syros-server
export SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"

log "fork safety: tokio without parking_lot (see the workspace Cargo.toml)"
# With it, forked children inherit parking_lot's table of the parent's parked threads and crash or
# hang (issue 11 item 15); a dependency enabling it again must fail here, not 1 run in 5.
# Read whole first (`cargo tree | grep -q` is false under pipefail when grep stops early: SIGPIPE).
if grep -q 'tokio feature "parking_lot"' <<<"$(cargo tree -p syros-python -e features -i tokio)"; then
  cargo tree -p syros-python -e features -i tokio | grep -B1 -A6 'tokio feature "parking_lot"' >&2
  fail "tokio's parking_lot feature is enabled for the Python binding (breaks fork safety)"
fi

log "maturin build (debug) and pip install the wheel"
(cd sdks/python && "$VENV/bin/maturin" build --interpreter "$VENV/bin/python" --out "$WORK/wheels")
wheel=$(ls "$WORK"/wheels/syros-*.whl)
"$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
"$VENV/bin/python" -c 'import syros; print("syros", syros.__version__, "from", syros.__file__)'

# pytest and the conformance runner run on the embedded store, and on Redis + PostgreSQL when
# scripts/test started them (SYROS_TEST_REDIS_URL / SYROS_TEST_DATABASE_URL).
backends=(embedded)
[ -n "${SYROS_TEST_REDIS_URL:-}" ] && [ -n "${SYROS_TEST_DATABASE_URL:-}" ] && backends+=(redis-postgres)

summary=""
for backend in "${backends[@]}"; do
  log "pytest sdks/python/tests ($backend)"
  out="$WORK/pytest-$backend.out"
  set +e
  (cd sdks/python && SYROS_TEST_BACKEND=$backend "$VENV/bin/python" -m pytest -p no:cacheprovider -q tests "$@") 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
  line=$(grep -E '^=*[ ]*[0-9]+ (passed|failed|deselected)' "$out" | tail -1 | sed -E 's/^=+ //; s/ =+$//' || true)
  [ "$status" -eq 0 ] || fail "pytest sdks/python/tests on $backend (exit $status): ${line:-no summary}"
  echo "$line" | grep -qE '[0-9]+ passed' || fail "pytest ran no test on $backend"
  summary="${summary:+$summary, }$backend $line"
done

log "conformance (tests/conformance/python/runner.py)"
conformance=""
for backend in "${backends[@]}"; do
  conf="$WORK/conformance-$backend.out"
  set +e
  SYROS_TEST_BACKEND=$backend "$VENV/bin/python" tests/conformance/python/runner.py 2>&1 | tee "$conf"
  status=${PIPESTATUS[0]}
  set -e
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$conf" | tail -1)
  [ "$status" -eq 0 ] || fail "Python conformance runner ($backend): ${line:-no summary}"
  conformance="${conformance:+$conformance, }$backend $line"
done

log "examples/python against syros serve"
start_syros
ran=0
for example in examples/python/*.py; do
  echo "--- $example"
  "$VENV/bin/python" "$example" "$SYROS_GRPC_ADDR" || { tail -50 "$SYROS_DIR/syros.log"; fail "example $example"; }
  ran=$((ran + 1))
done
stop_syros
[ "$ran" -gt 0 ] || fail "no example ran"

echo
echo "python-sdk: pytest $summary; conformance $conformance; examples/python: $ran programs ran and checked their outcome"
