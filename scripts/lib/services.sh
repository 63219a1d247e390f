# Sourced by scripts/test: install (if missing), start and stop Redis and PostgreSQL on 127.0.0.1.
# Each server gets a free port and a throw-away data directory; only processes started here are
# stopped, by PID.

STARTED_PIDS=()
SERVICE_DIRS=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  echo "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  return 1
}

ensure_service_packages() {
  local missing=()
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
  pg_bin >/dev/null || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  command -v redis-server >/dev/null || { echo "redis-server is still missing" >&2; return 1; }
  pg_bin >/dev/null || { echo "PostgreSQL is still missing" >&2; return 1; }
}

wait_until() { # seconds, description, command...
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "$what did not come up within ${seconds}s" >&2; return 1; }
    sleep 0.2
  done
}

start_redis() {
  local port dir
  port=$(free_port)
  dir=$(mktemp -d)
  SERVICE_DIRS+=("$dir")
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" &
  STARTED_PIDS+=($!)
  wait_until 20 "redis-server" redis-cli -h 127.0.0.1 -p "$port" ping
  export SYROS_TEST_REDIS_URL="redis://127.0.0.1:$port"
  echo "redis-server pid ${STARTED_PIDS[-1]} on 127.0.0.1:$port"
}

start_postgres() {
  local bin port dir os_user run
  bin=$(pg_bin)
  port=$(free_port)
  dir=$(mktemp -d)
  SERVICE_DIRS+=("$dir")
  run=()
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root: use the postgres account (created by the package).
    os_user=postgres
    id "$os_user" >/dev/null 2>&1 || useradd --system --no-create-home "$os_user"
    chown "$os_user" "$dir"
    run=(runuser -u "$os_user" --)
  fi
  "${run[@]}" "$bin/initdb" -D "$dir/data" -U syros --auth=trust --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  # fsync off: the tests crash syros, never PostgreSQL, and it halves the suite's time.
  "${run[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
    >"$dir/postgres.log" 2>&1 &
  local launcher=$!
  wait_until 30 "postgres" "$bin/pg_isready" -h 127.0.0.1 -p "$port" -U syros
  # Stop the postmaster itself (runuser's child), not the runuser wrapper.
  STARTED_PIDS+=("$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || echo "$launcher")")
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U syros syros_test
  export SYROS_TEST_DATABASE_URL="postgres://syros@127.0.0.1:$port/syros_test"
  echo "postgres pid ${STARTED_PIDS[-1]} on 127.0.0.1:$port"
}

stop_services() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
  local dir
  for dir in "${SERVICE_DIRS[@]}"; do rm -rf "$dir"; done
  SERVICE_DIRS=()
}
