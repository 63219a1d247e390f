#!/usr/bin/env bash
# The `deploy` part of scripts/test: validates the deployment files and checks monitoring against
# a live server.
#   1. docker-compose config (Debian's docker-compose; no Docker engine is needed or used)
#   2. helm lint and helm template | k8s-validate (strict decoding against the Kubernetes types)
#   3. actionlint on .github/workflows
#   4. promtool check rules on deploy/prometheus/syros-alerts.yml
#   5. syros serve (embedded) and a real Prometheus scraping it every second on 127.0.0.1, then
#      pytest tests/deploy (chart, schema check, dashboard/alert metrics, Prometheus queries)
# Installs what it needs: apt (docker-compose, prometheus), `go install` of helm and actionlint
# into $SYROS_TOOLS_DIR (default ~/.cache/syros/deploy-tools), the pytest venv (.venv).
# Prints "deploy: <pytest summary>"; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
source scripts/lib/services.sh
source scripts/lib/syros.sh

HELM_VERSION=v3.22.0
ACTIONLINT_VERSION=v1.7.12
TOOLS="${SYROS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/syros/deploy-tools}"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

log() { printf '\n==> %s\n' "$*"; }

# --- tools ------------------------------------------------------------------------------------
missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "go not found: install Go 1.24 or newer" >&2; exit 1; }

# go_tool NAME MODULE VERSION: `go install MODULE@VERSION` unless that version is installed.
go_tool() {
  local name=$1 module=$2 version=$3
  if [ "$(cat "$BIN/$name.version" 2>/dev/null)" != "$version" ] || [ ! -x "$BIN/$name" ]; then
    log "go install $module@$version"
    GOBIN="$BIN" GOFLAGS=-mod=mod go install "$module@$version"
    echo "$version" >"$BIN/$name.version"
  fi
}
go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
log "building deploy/tools/k8s-validate"
(cd deploy/tools/k8s-validate && go build -o "$BIN/k8s-validate" .)
export HELM_BIN="$BIN/helm" K8S_VALIDATE_BIN="$BIN/k8s-validate"

# --- static checks -----------------------------------------------------------------------------
CHART=deploy/helm/syros
CI_VALUES=$CHART/ci/test-values.yaml
checks=0
log "docker-compose config"
JWT_SECRET=compose-config-check-0123456789 docker-compose -f docker-compose.yml config --quiet
checks=$((checks + 1))
log "helm lint"
"$HELM_BIN" lint --strict "$CHART" -f "$CI_VALUES" 2>&1 | grep -v 'found symbolic link in path'
checks=$((checks + 1))
log "helm template | k8s-validate"
rendered=$(mktemp)
# The chart's files/ are links to deploy/prometheus and deploy/grafana: helm notes each on stderr.
"$HELM_BIN" template syros "$CHART" -f "$CI_VALUES" 2>/dev/null >"$rendered"
"$K8S_VALIDATE_BIN" "$rendered"
rm -f "$rendered"
checks=$((checks + 1))
log "actionlint"
"$BIN/actionlint" -color=false
checks=$((checks + 1))
log "promtool check rules"
promtool check rules deploy/prometheus/syros-alerts.yml
checks=$((checks + 1))

# --- live: syros + Prometheus, then pytest -------------------------------------------------------
log "syros serve and Prometheus (1 s scrapes) on 127.0.0.1"
cargo build --quiet -p syros-server
export SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt

PROM_PID=""
cleanup() {
  if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
    kill -TERM "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  [ -n "${PROM_DIR:-}" ] && rm -rf "$PROM_DIR"
  stop_syros
}
trap cleanup EXIT
start_syros
PROM_DIR=$(mktemp -d)
PROM_PORT=$(free_port)
cat >"$PROM_DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/syros-alerts.yml
scrape_configs:
  - job_name: syros
    static_configs:
      - targets: ["$SYROS_REST_ADDR"]
YAML
prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$PROM_DIR/prometheus.log" 2>&1 &
PROM_PID=$!
export PROMETHEUS_URL="http://127.0.0.1:$PROM_PORT"
wait_until 30 "prometheus" curl -fsS "$PROMETHEUS_URL/-/ready" \
  || { cat "$PROM_DIR/prometheus.log" >&2; exit 1; }
echo "prometheus pid $PROM_PID on $PROMETHEUS_URL"

out=$(mktemp)
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/deploy 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
line=$(grep -E '[0-9]+ passed' "$out" | tail -1)
rm -f "$out"
if [ "$status" -ne 0 ]; then
  echo "--- syros log"; tail -50 "$SYROS_DIR/syros.log"
  echo "--- prometheus log"; tail -20 "$PROM_DIR/prometheus.log"
  exit "$status"
fi
[ -n "$line" ] || { echo "pytest tests/deploy ran no test" >&2; exit 1; }
echo "deploy: $checks static checks passed; pytest tests/deploy: $line"
