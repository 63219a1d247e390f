#!/usr/bin/env bash
# Instruction counts per lock cycle (acquire + release) of a release `syros serve`, under
# valgrind's callgrind: counts do not move with machine noise, unlike wall-clock numbers.
#
#   bash bench/callgrind.sh embedded|redis [cycles] [workers]
#
# Starts the server under callgrind (and a private redis-server for `redis`), warms it up with
# 200 cycles, zeroes the counters, runs `lock_bench load` for <cycles> (default 2000) split over
# <workers> (default 32) tasks on distinct keys, dumps, stops what it started (by pid) and prints
# instructions per cycle and the top inclusive functions. Output: target/callgrind/<store>.*
# SYROS_BIN picks another server binary (e.g. a copy of an older build to compare).
# Needs: valgrind, a release build (cargo build --release -p syros-server -p syros-bench).
set -euo pipefail
store=${1:?embedded or redis}
cycles=${2:-2000}
workers=${3:-32}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${SYROS_BIN:-$target/release/syros}
bench=$target/release/lock_bench
out=$target/callgrind
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

env_args=(SERVER_HOST=127.0.0.1 GRPC_PORT="$(free_port)" REST_PORT="$(free_port)"
  WS_PORT="$(free_port)" SYROS_DATA_DIR="$work" LOG_LEVEL=warn)
if [ "$store" = redis ]; then
  rport=$(free_port)
  redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$work" \
    >/dev/null 2>&1 &
  pids+=($!)
  env_args+=(REDIS_URL="redis://127.0.0.1:$rport" SYROS_NAMESPACE=cg)
fi
grpc_port=${env_args[1]#GRPC_PORT=}

(cd "$work" && exec env "${env_args[@]}" valgrind --tool=callgrind --quiet \
  --callgrind-out-file="$out/$store.%p" "$bin" serve) >"$out/$store.server.log" 2>&1 &
server=$!
pids+=($server)
for _ in $(seq 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null && break
  sleep 0.2
done
"$bench" load "127.0.0.1:$grpc_port" 200 "$workers"
callgrind_control -z "$server" >/dev/null
"$bench" load "127.0.0.1:$grpc_port" "$cycles" "$workers"
callgrind_control -d "$server" >/dev/null
sleep 1
dump=$(ls -t "$out/$store.$server".* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "$store: $total instructions for $cycles cycles = $((total / cycles)) per cycle (acquire + release)"
callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n '1,80p' >"$out/$store.inclusive.txt"
callgrind_annotate "$dump" 2>/dev/null | sed -n '1,60p' >"$out/$store.self.txt"
echo "top functions: $out/$store.inclusive.txt (inclusive), $out/$store.self.txt (self); dump: $dump"
