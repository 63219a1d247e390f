# Sourced by scripts that need a running `syros serve` (scripts/test, scripts/schemathesis.sh):
# the shell form of the one test launcher (tests/launcher). The server binds ephemeral loopback
# ports and reports them in its ready file (SYROS_READY_FILE); nothing guesses a free port or
# polls a socket.
#
#   start_syros [VAR=value ...]   start with a clean environment plus these settings; exports
#                                 SYROS_GRPC_ADDR, SYROS_REST_ADDR, SYROS_WS_ADDR (host:port),
#                                 SYROS_PID, SYROS_DIR (data, ready file, syros.log inside)
#   stop_syros                    SIGTERM, SIGKILL after 10 s, remove SYROS_DIR
#
# The binary is $SYROS_BIN, else $CARGO_TARGET_DIR/debug/syros.

start_syros() {
  local bin=${SYROS_BIN:-${CARGO_TARGET_DIR:?}/debug/syros}
  [ -x "$bin" ] || { echo "start_syros: $bin does not exist (cargo build -p syros-server)" >&2; return 1; }
  SYROS_DIR=$(mktemp -d)
  local ready="$SYROS_DIR/ready.json"
  env -i PATH="$PATH" SERVER_HOST=127.0.0.1 GRPC_PORT=0 REST_PORT=0 WS_PORT=0 \
    SYROS_DATA_DIR="$SYROS_DIR/data" SYROS_READY_FILE="$ready" LOG_LEVEL=info "$@" \
    "$bin" serve >"$SYROS_DIR/syros.log" 2>&1 &
  SYROS_PID=$!
  local deadline=$((SECONDS + 60))
  until [ -s "$ready" ]; do
    kill -0 "$SYROS_PID" 2>/dev/null \
      || { cat "$SYROS_DIR/syros.log" >&2; echo "syros serve exited before it was ready" >&2; return 1; }
    [ $SECONDS -lt $deadline ] \
      || { cat "$SYROS_DIR/syros.log" >&2; echo "syros serve was not ready within 60 s" >&2; return 1; }
    sleep 0.05
  done
  # The file is written atomically (rename), so a non-empty file is a complete report.
  read -r SYROS_GRPC_ADDR SYROS_REST_ADDR SYROS_WS_ADDR < <(python3 -c \
    'import json, sys; r = json.load(open(sys.argv[1])); print(r["grpc"], r["rest"], r["websocket"])' \
    "$ready")
  export SYROS_GRPC_ADDR SYROS_REST_ADDR SYROS_WS_ADDR SYROS_PID SYROS_DIR
  echo "syros serve pid $SYROS_PID: gRPC $SYROS_GRPC_ADDR, REST $SYROS_REST_ADDR, WebSocket $SYROS_WS_ADDR"
}

stop_syros() {
  if [ -n "${SYROS_PID:-}" ] && kill -0 "$SYROS_PID" 2>/dev/null; then
    kill -TERM "$SYROS_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SYROS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SYROS_PID" 2>/dev/null || true
  fi
  [ -n "${SYROS_DIR:-}" ] && rm -rf "$SYROS_DIR"
  SYROS_PID=""
  SYROS_DIR=""
}
