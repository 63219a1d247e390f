#!/usr/bin/env bash
# The Node.js SDK end to end: npm ci in sdks/node (committed package-lock.json), builds the napi
# addon in debug with the shared CARGO_TARGET_DIR (no crate rebuilt per language), type-checks the
# declarations (tsc), runs `node --test` against `syros serve` (SYROS_BIN), the Node conformance
# runner, every program in examples/node, and the packaging smoke test: `npm pack` of the package
# and its linux-x64-gnu platform package, installed into an empty project that runs a client.
# Fails when a step fails or ran nothing. The last line is a one-line summary for scripts/test.
#
#   scripts/node-sdk.sh
set -euo pipefail
source "$(dirname "$0")/lib/sdk.sh"
SDK="$ROOT/sdks/node"
SDK_CLEANUP_PATHS+=("$SDK/npm/linux-x64-gnu/syros.linux-x64-gnu.node")

command -v node >/dev/null || fail "node not found: install Node.js 20 or newer"
command -v npm >/dev/null || fail "npm not found"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || fail "Node.js >= 20 needed, found $(node --version)"

log "cargo build -p syros-server"
cargo build --quiet -p syros-server
export SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"

log "npm ci (sdks/node) and the addon (cargo build -p syros-node, debug)"
(cd "$SDK" && SYROS_NODE_SKIP_BUILD=1 npm ci --no-audit --no-fund --loglevel=error)
# The package's own install script builds the addon with cargo for the host, in the shared
# target dir, reusing the workspace build (napi's CLI would build for an explicit target triple,
# i.e. every dependency again in target/<triple>).
rm -f "$SDK"/syros.*.node
(cd "$SDK" && SYROS_NODE_PROFILE=debug node scripts/install.js)
node -e "const s = require('$SDK'); console.log('syros', s.coreVersion, 'loaded')"

log "tsc: index.d.ts against test/types/usage.ts"
(cd "$SDK" && npx tsc -p test/types) || fail "the TypeScript declarations do not type-check"

log "node --test (sdks/node/test)"
out="$WORK/node-test.out"
set +e
(cd "$SDK" && node --test --test-concurrency=1 test/*.test.js) 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
pass=$(grep -E '^# pass [0-9]+' "$out" | awk '{print $3}' | tail -1)
failed=$(grep -E '^# fail [0-9]+' "$out" | awk '{print $3}' | tail -1)
[ "$status" -eq 0 ] || fail "node --test (exit $status): ${pass:-0} passed, ${failed:-?} failed"
[ "${pass:-0}" -gt 0 ] || fail "node --test ran no test"

log "conformance (tests/conformance/node/runner.js)"
# On the embedded store, and on Redis + PostgreSQL when scripts/test started them.
backends=(embedded)
[ -n "${SYROS_TEST_REDIS_URL:-}" ] && [ -n "${SYROS_TEST_DATABASE_URL:-}" ] && backends+=(redis-postgres)
conformance=""
for backend in "${backends[@]}"; do
  conf="$WORK/conformance-$backend.out"
  set +e
  SYROS_TEST_BACKEND=$backend node tests/conformance/node/runner.js 2>&1 | tee "$conf"
  status=${PIPESTATUS[0]}
  set -e
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$conf" | tail -1)
  [ "$status" -eq 0 ] || fail "Node conformance runner ($backend): ${line:-no summary}"
  conformance="${conformance:+$conformance, }$backend $line"
done

log "examples/node against syros serve"
start_syros
address=$SYROS_GRPC_ADDR
ran=0
for example in examples/node/*.js; do
  echo "--- $example"
  node "$example" "$address" || { tail -50 "$SYROS_DIR/syros.log"; fail "example $example"; }
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || fail "no example ran"

log "npm pack + install into an empty project (the published layout)"
cp "$SDK/syros.linux-x64-gnu.node" "$SDK/npm/linux-x64-gnu/"
(cd "$SDK/npm/linux-x64-gnu" && npm pack --silent --pack-destination "$WORK" >/dev/null)
node "$SDK/scripts/stage.js" "$WORK/stage"
(cd "$WORK/stage" && npm pack --silent --pack-destination "$WORK" >/dev/null)
mkdir -p "$WORK/app"
cat >"$WORK/app/package.json" <<'JSON'
{ "name": "syros-smoke", "version": "1.0.0", "private": true, "type": "module" }
JSON
cat >"$WORK/app/smoke.mjs" <<'JS'
import { Client, LockTimeout } from 'syros';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { Client: CjsClient } = require('syros');
if (CjsClient !== Client) throw new Error('require and import disagree');
const client = await Client.connect({ addresses: [process.argv[2]] });
const lease = await client.lock(`smoke-${process.pid}`, { ttl: 5_000 });
if (typeof lease.fencingToken !== 'bigint') throw new Error('fencing token is not a bigint');
await client.lock(`smoke-${process.pid}`, { wait: 100 }).then(
  () => { throw new Error('a held lock was granted'); },
  (err) => { if (!(err instanceof LockTimeout)) throw err; },
);
await lease.release();
await client.cache.set('smoke', 'ok');
if ((await client.cache.get('smoke')).toString() !== 'ok') throw new Error('cache');
await client.close();
console.log('smoke test passed from', require.resolve('syros'));
JS
(cd "$WORK/app" && npm install --no-audit --no-fund --loglevel=error \
   "$WORK/syros-0.1.0.tgz" "$WORK/syros-linux-x64-gnu-0.1.0.tgz")
[ -f "$WORK/app/node_modules/syros-linux-x64-gnu/syros.linux-x64-gnu.node" ] || fail "the platform package was not installed"
[ ! -e "$WORK/app/node_modules/syros/syros.linux-x64-gnu.node" ] || fail "the main package must not carry the addon"
(cd "$WORK/app" && node smoke.mjs "$address") || fail "the packed tarball does not run"

stop_syros

echo
echo "node-sdk: node --test ${pass} passed, ${failed:-0} failed; conformance ${conformance}; examples/node: $ran programs ran and checked their outcome; npm pack tarballs installed into an empty project and ran"
