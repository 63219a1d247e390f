#!/usr/bin/env bash
# Kernel side of a lock cycle: syscalls, context switches and CPU ticks per cycle (acquire +
# release) of a release `syros serve` (embedded store) pinned to CPU 0, driven by `lock_bench load`
# on CPU 1 (docs/performance.md, "Server CPU per lock call (kernel time)").
#
#   bash bench/server_syscalls.sh [cycles] [workers]      # default 40000 cycles, 32 workers
#
# Two runs on fresh servers: one without tracing (per thread: voluntary and involuntary context
# switches per cycle from /proc/<pid>/task/*/status, user and system ticks from .../stat), one
# under `strace -c -f` (syscalls per cycle by kind; strace slows the server, so its wall-clock
# rate means nothing). SYROS_BIN picks another server binary; extra server environment goes in
# SYROS_ENV (e.g. SYROS_ENV=TOKIO_WORKER_THREADS=2). Needs: strace, taskset, a release build.
set -euo pipefail
cycles=${1:-40000}
workers=${2:-32}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=$(realpath "${SYROS_BIN:-$target/release/syros}")
bench=$target/release/lock_bench
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
start_server() {
  local dir
  dir=$(mktemp -d -p "$work")
  port=$(free_port)
  # shellcheck disable=SC2086 # SYROS_ENV is a list of NAME=value words
  (cd "$dir" && exec env SERVER_HOST=127.0.0.1 GRPC_PORT="$port" REST_PORT="$(free_port)" \
    WS_PORT="$(free_port)" SYROS_DATA_DIR="$dir" LOG_LEVEL=warn ${SYROS_ENV:-} \
    taskset -c 0 "$bin" serve) >"$dir/log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  taskset -c 1 "$bench" load "127.0.0.1:$port" 500 "$workers" >/dev/null # warm-up
}
stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; server=; }
threads() {
  for task in /proc/"$server"/task/*; do
    echo "$(basename "$task") $(tr ' ' _ <"$task/comm")" \
      "$(awk '/^voluntary/{v=$2} /^nonvoluntary/{n=$2} END{print v, n}' "$task/status")" \
      "$(awk '{print $14, $15}' "$task/stat")"
  done | sort
}

start_server
threads >"$work/before"
taskset -c 1 "$bench" load "127.0.0.1:$port" "$cycles" "$workers"
threads >"$work/after"
echo "per cycle, by thread (no tracing):"
join "$work/before" "$work/after" | awk -v n="$cycles" '{printf "  %-16s voluntary %5.2f  involuntary %5.2f  user %4d ticks  system %4d ticks\n",
  $2, ($8-$3)/n, ($9-$4)/n, $10-$5, $11-$6}'
stop_server

start_server
strace -c -f -p "$server" -o "$work/strace" 2>/dev/null &
tracer=$!
sleep 0.5
taskset -c 1 "$bench" load "127.0.0.1:$port" "$cycles" "$workers" >/dev/null
kill -INT "$tracer"
wait "$tracer" || true
echo "syscalls per cycle (strace -c -f):"
awk -v n="$cycles" '$NF != "total" && $4 ~ /^[0-9]+$/ {printf "  %-14s %7.2f\n", $NF, $4/n}' \
  "$work/strace" | sort -k2 -rn | head -12
stop_server
