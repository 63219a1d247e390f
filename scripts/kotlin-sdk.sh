#!/usr/bin/env bash
# The Kotlin and Swift SDKs end to end: `mvn install` of sdks/kotlin (cargo builds the UniFFI
# bridge and the uniffi-bindgen bin crate in debug with the shared CARGO_TARGET_DIR, the bindgen
# generates the Kotlin bindings, kotlin-maven-plugin compiles them with the idiomatic layer,
# Surefire runs the JUnit tests against `syros serve` (SYROS_BIN), and the jar with the native
# library inside is installed into the local Maven repository); the Kotlin conformance runner
# (on Redis + PostgreSQL too when SYROS_TEST_REDIS_URL/SYROS_TEST_DATABASE_URL are set); every
# program in examples/kotlin, built against the installed jar; and the check that the committed
# Swift bindings (sdks/swift) are what the bindgen generates now.
# Fails when a step fails or ran nothing. The last line is a one-line summary for scripts/test.
#
#   scripts/kotlin-sdk.sh
set -euo pipefail
source "$(dirname "$0")/lib/sdk.sh"
SDK="$ROOT/sdks/kotlin"

require_jdk
# The Kotlin compiler runs inside Maven, not as a daemon that would outlive this script (and CI).
MVN=(mvn -B -q -Dstyle.color=never -Dkotlin.compiler.daemon=false)

log "cargo build -p syros-server"
cargo build --quiet -p syros-server
export SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"

log "mvn install (sdks/kotlin): bridge + bindgen (cargo), generated Kotlin, JUnit tests, jar"
out="$WORK/mvn.out"
set +e
(cd "$SDK" && mvn -B -Dstyle.color=never -Dkotlin.compiler.daemon=false install) 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# Surefire's closing line: "Tests run: N, Failures: F, Errors: E, Skipped: S" (no " -- in").
summary=$(grep -E '^\[(INFO|ERROR|WARNING)\] Tests run: [0-9]+, Failures: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+$' "$out" | tail -1 | sed 's/^\[[A-Z]*\] //')
[ "$status" -eq 0 ] || fail "mvn install (exit $status): ${summary:-no test summary}"
ran=$(echo "$summary" | sed -E 's/Tests run: ([0-9]+),.*/\1/')
[ "${ran:-0}" -gt 0 ] || fail "Surefire ran no test"
jar="$SDK/target/syros-kotlin-0.1.0.jar"
# Read whole first (`jar tf | grep -q` fails under pipefail when grep stops early: SIGPIPE).
grep -q 'linux-x86-64/libsyros_uniffi.so' <<<"$(jar tf "$jar")" || fail "the jar does not carry the native library"

log "conformance (tests/conformance/kotlin)"
(cd "$SDK" && "${MVN[@]}" dependency:build-classpath -Dmdep.outputFile="$WORK/test-cp.txt" -Dmdep.includeScope=test)
CP="$SDK/target/test-classes:$SDK/target/classes:$(cat "$WORK/test-cp.txt")"
backends=(embedded)
[ -n "${SYROS_TEST_REDIS_URL:-}" ] && [ -n "${SYROS_TEST_DATABASE_URL:-}" ] && backends+=(redis-postgres)
conformance=""
for backend in "${backends[@]}"; do
  conf="$WORK/conformance-$backend.out"
  set +e
  SYROS_TEST_BACKEND=$backend java -cp "$CP" io.syros.kotlin.conformance.RunnerKt "$ROOT/tests/conformance/scenarios" 2>&1 | tee "$conf"
  status=${PIPESTATUS[0]}
  set -e
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$conf" | tail -1)
  [ "$status" -eq 0 ] || fail "Kotlin conformance runner ($backend): ${line:-no summary}"
  conformance="${conformance:+$conformance, }$backend $line"
done

log "examples/kotlin against syros serve (built against the installed jar)"
(cd examples/kotlin && "${MVN[@]}" package dependency:build-classpath -Dmdep.outputFile="$WORK/example-cp.txt")
grep -q "syros-kotlin-0.1.0.jar" "$WORK/example-cp.txt" || fail "the examples do not use the installed jar"
start_syros
address=$SYROS_GRPC_ADDR
examples=0
for source in examples/kotlin/src/main/kotlin/*.kt; do
  main="$(basename "$source" .kt)Kt"
  echo "--- $main"
  timeout 120 java -cp "examples/kotlin/target/classes:$(cat "$WORK/example-cp.txt")" "$main" "$address" \
    || { tail -50 "$SYROS_DIR/syros.log"; fail "example $main"; }
  examples=$((examples + 1))
done
[ "$examples" -gt 0 ] || fail "no example ran"
stop_syros

log "the committed Swift bindings (sdks/swift) are current"
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --no-format --library "$CARGO_TARGET_DIR/debug/libsyros_uniffi.so" \
  --language swift --out-dir "$WORK/swift" >/dev/null
swift_files=0
for pair in "SyrosFFI.swift:sdks/swift/Sources/SyrosFFI/SyrosFFI.swift" "SyrosFFIC.h:sdks/swift/Sources/SyrosFFIC/SyrosFFIC.h"; do
  generated="$WORK/swift/${pair%%:*}"
  committed="$ROOT/${pair#*:}"
  diff -u "$committed" "$generated" >"$WORK/swift.diff" \
    || { head -40 "$WORK/swift.diff"; fail "${pair#*:} is stale: run scripts/swift-bindings.sh and commit"; }
  swift_files=$((swift_files + 1))
done

echo
echo "kotlin-sdk: surefire ${summary}; conformance ${conformance}; examples/kotlin: $examples programs ran and checked their outcome; jar carries the native library; generated Swift current ($swift_files files)"
