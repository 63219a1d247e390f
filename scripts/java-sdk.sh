#!/usr/bin/env bash
# The Java SDK end to end: `mvn install` of sdks/java (its build-native.sh builds the JNI library
# in debug with the shared CARGO_TARGET_DIR and puts it in the jar under /native/<os>-<arch>/;
# Surefire runs the JUnit 5 tests against `syros serve` from SYROS_BIN), the Java conformance
# runner (on Redis + PostgreSQL too when SYROS_TEST_REDIS_URL/SYROS_TEST_DATABASE_URL are set),
# every program in examples/java against the installed jar, and the consumer project
# (examples/java/consumer) that only declares the dependency: built by Maven and run.
# Fails when a step fails or ran nothing. The last line is a one-line summary for scripts/test.
#
#   scripts/java-sdk.sh
set -euo pipefail
source "$(dirname "$0")/lib/sdk.sh"
SDK="$ROOT/sdks/java"
MVN=(mvn -B -ntp)
SDK_CLEANUP_PATHS+=("$ROOT/examples/java/consumer/target")

require_jdk

log "cargo build -p syros-server"
cargo build --quiet -p syros-server
export SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"

log "mvn install (sdks/java): native library, compile, JUnit 5 via Surefire, jar, local repository"
out="$WORK/mvn.out"
set +e
"${MVN[@]}" -f "$SDK/pom.xml" install 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
surefire=$(grep -E '^\[(INFO|ERROR|WARNING)\] Tests run: [0-9]+, Failures: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+$' "$out" | tail -1 | sed -E 's/^\[[A-Z]+\] //')
[ "$status" -eq 0 ] || fail "mvn install (exit $status): ${surefire:-no Surefire summary}"
[ -n "$surefire" ] || fail "Surefire printed no summary"
ran=$(echo "$surefire" | sed -E 's/Tests run: ([0-9]+).*/\1/')
[ "$ran" -gt 0 ] || fail "Surefire ran no test"
JAR="$SDK/target/syros-client-0.1.0.jar"
# The listing is read whole first: `unzip | grep -q` fails under pipefail when grep stops reading
# at its match and unzip gets SIGPIPE on a long listing.
grep -q 'native/linux-x86_64/libsyros_java.so' <<<"$(unzip -l "$JAR")" || fail "the jar carries no native library"
CLASSES="$SDK/target/classes:$SDK/target/test-classes"

log "conformance (tests/conformance/java/ConformanceRunner.java)"
backends=(embedded)
[ -n "${SYROS_TEST_REDIS_URL:-}" ] && [ -n "${SYROS_TEST_DATABASE_URL:-}" ] && backends+=(redis-postgres)
conformance=""
for backend in "${backends[@]}"; do
  conf="$WORK/conformance-$backend.out"
  set +e
  SYROS_TEST_BACKEND=$backend java -cp "$CLASSES" tests/conformance/java/ConformanceRunner.java tests/conformance/scenarios 2>&1 | tee "$conf"
  status=${PIPESTATUS[0]}
  set -e
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$conf" | tail -1)
  [ "$status" -eq 0 ] || fail "Java conformance runner ($backend): ${line:-no summary}"
  conformance="${conformance:+$conformance, }$backend $line"
done

log "a syros serve for the examples and the consumer project"
start_syros
address=$SYROS_GRPC_ADDR

log "examples/java against the jar"
examples=0
for example in examples/java/*.java; do
  echo "--- $example"
  timeout 300 java -cp "$JAR" "$example" "$address" || { tail -50 "$SYROS_DIR/syros.log"; fail "example $example"; }
  examples=$((examples + 1))
done
[ "$examples" -gt 0 ] || fail "no example ran"

log "the consumer project (examples/java/consumer): only the dependency, from the local repository"
"${MVN[@]}" -q -f examples/java/consumer/pom.xml package dependency:build-classpath \
  -Dmdep.outputFile="$WORK/consumer.cp" || fail "the consumer project does not build"
grep -q "syros-client-0.1.0.jar" "$WORK/consumer.cp" || fail "the consumer does not resolve io.syros:syros-client"
timeout 120 java -cp "examples/java/consumer/target/syros-consumer-1.0.0.jar:$(cat "$WORK/consumer.cp")" \
  com.example.App "$address" || fail "the consumer project does not run"

stop_syros

echo
echo "java-sdk: surefire ${surefire}; conformance ${conformance}; examples/java: $examples programs ran and checked their outcome; consumer project built against the installed jar and ran"
