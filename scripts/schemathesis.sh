#!/usr/bin/env bash
# Property-based API tests: schemathesis (from PyPI, into .venv) generates requests from the
# REST API's own /openapi.json and runs them against a real `syros serve` on loopback. It fails
# on any 5xx answer and on any answer that does not match the documented schema.
#
#   scripts/schemathesis.sh                      (SCHEMATHESIS_MAX_EXAMPLES=N to change the bound)
#
# Starts one server on ephemeral ports (scripts/lib/syros.sh: it reports them in its ready file)
# with its data in a temporary directory, and stops only that process. A generated lock acquire waits at most 200 ms (scripts/schemathesis_hooks.py), so a
# request for a held key cannot block the run for minutes.
#
# Authentication is on (JWT_SECRET set, as the OpenAPI document's bearer scheme declares) and
# every request carries an admin token minted here; SCHEMATHESIS_AUTH=off runs the server with
# authentication off instead. Refusals (401/403/429) are covered by core/server/tests/security_*.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
AUTH="${SCHEMATHESIS_AUTH:-on}"

VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'

cargo build --quiet -p syros-server
export SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"

AUTH_ENV=()
AUTH_HEADER=()
if [ "$AUTH" != "off" ]; then
  SECRET=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))')
  # An HS256 admin token valid for two hours, made with the standard library only.
  TOKEN=$("$VENV/bin/python" - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b64(json.dumps({"sub": "schemathesis", "roles": ["admin"], "exp": int(time.time()) + 7200}).encode())
signature = hmac.new(sys.argv[1].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
print(f"{header}.{claims}.{b64(signature)}")
PY
)
  AUTH_ENV=(JWT_SECRET="$SECRET")
  AUTH_HEADER=(--header "Authorization: Bearer $TOKEN")
fi

source scripts/lib/syros.sh
trap stop_syros EXIT
# start_syros gives the server a clean environment plus these settings.
start_syros LOG_LEVEL=warn ${AUTH_ENV[@]+"${AUTH_ENV[@]}"}
BASE="http://$SYROS_REST_ADDR"
DATA=$SYROS_DIR

set +e
# Run from the temporary directory: schemathesis keeps a .schemathesis/ cache in its working dir.
# One worker: with two, hypothesis' lambda introspection hit a CPython 3.11 AST SystemError.
(cd "$DATA" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$ROOT/scripts" \
  "$VENV/bin/st" run "$BASE/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --phases examples,coverage,fuzzing \
    --request-timeout 30 \
    ${AUTH_HEADER[@]+"${AUTH_HEADER[@]}"} \
    --workers 1)
status=$?
set -e
if ! kill -0 "$SYROS_PID" 2>/dev/null; then
  echo "syros died during the run:" >&2
  cat "$DATA/syros.log" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "--- server log (warnings and errors) ---" >&2
  tail -50 "$DATA/syros.log" >&2
fi
exit "$status"
