#!/usr/bin/env bash
# The C# SDK end to end (Mono): builds syros-ffi (its cdylib libsyros_ffi.so is what the SDK
# P/Invokes) and syros-server, compiles sdks/csharp with mcs (warnings are errors, XML docs), runs
# its tests against real `syros serve` processes under a time limit (the process must exit by
# itself), the C# conformance runner (both backends when SYROS_TEST_REDIS_URL/SYROS_TEST_DATABASE_URL
# are set), packs the NuGet package with nuget (lib/netstandard2.0 + runtimes/linux-x64/native),
# installs it from a local folder feed and runs a consumer program built against the installed
# package, then every program in examples/csharp. Fails when a step fails or ran nothing. The last
# line is a one-line summary for scripts/test.
#
#   scripts/csharp-sdk.sh
set -euo pipefail
source "$(dirname "$0")/lib/sdk.sh"
# A Mono process that does not exit by itself within this is a failure (not a hang).
EXIT_LIMIT="${SYROS_CSHARP_TIME_LIMIT:-300}"

{ command -v mcs >/dev/null && command -v mono >/dev/null; } \
  || fail "mcs/mono not found: apt-get install -y --no-install-recommends mono-devel mono-mcs"

log "cargo build -p syros-server -p syros-ffi"
cargo build --quiet -p syros-server -p syros-ffi
export SYROS_BIN="$CARGO_TARGET_DIR/debug/syros"
NATIVE="$CARGO_TARGET_DIR/debug/libsyros_ffi.so"
[ -f "$NATIVE" ] || fail "$NATIVE was not built"

# run_mono LABEL OUT EXE ARGS...: runs a Mono program under the time limit (a hang at exit fails).
run_mono() {
  local label=$1 out=$2 status
  shift 2
  set +e
  timeout --signal=KILL "$EXIT_LIMIT" mono --debug "$@" 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" -ne 137 ] || fail "$label did not exit by itself within ${EXIT_LIMIT}s"
  return "$status"
}

log "mcs: sdks/csharp (Syros.Client.dll, warnings are errors)"
BIN="$WORK/bin"
mkdir -p "$BIN"
MCS_FLAGS=(-warnaserror+ -nologo -optimize+ -r:System.Runtime.Serialization.dll)
mcs "${MCS_FLAGS[@]}" -target:library -out:"$BIN/Syros.Client.dll" -doc:"$BIN/Syros.Client.xml" sdks/csharp/src/*.cs
cp "$NATIVE" "$BIN/"
mcs "${MCS_FLAGS[@]}" -out:"$BIN/Syros.Client.Tests.exe" -r:"$BIN/Syros.Client.dll" sdks/csharp/tests/*.cs
export LD_LIBRARY_PATH="$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

log "C# SDK tests (mono, real syros serve)"
run_mono "the C# SDK tests" "$WORK/tests.out" "$BIN/Syros.Client.Tests.exe" \
  || fail "C# SDK tests: $(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/tests.out" | tail -1)"
tests=$(grep -E '^[0-9]+ passed, 0 failed$' "$WORK/tests.out" | tail -1)
[ -n "$tests" ] || fail "the C# SDK tests printed no summary"

log "conformance (tests/conformance/csharp)"
mcs "${MCS_FLAGS[@]}" -out:"$BIN/ConformanceRunner.exe" -r:"$BIN/Syros.Client.dll" -r:System.Xml.dll -r:System.Xml.Linq.dll \
  tests/conformance/csharp/ConformanceRunner.cs sdks/csharp/tests/TestServer.cs
backends=(embedded)
[ -n "${SYROS_TEST_REDIS_URL:-}" ] && [ -n "${SYROS_TEST_DATABASE_URL:-}" ] && backends+=(redis-postgres)
conformance=""
for backend in "${backends[@]}"; do
  conf="$WORK/conformance-$backend.out"
  SYROS_TEST_BACKEND=$backend run_mono "the C# conformance runner ($backend)" "$conf" "$BIN/ConformanceRunner.exe" tests/conformance/scenarios \
    || fail "C# conformance runner ($backend): $(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$conf" | tail -1)"
  line=$(grep -E '^[0-9]+ passed, 0 failed$' "$conf" | tail -1)
  [ -n "$line" ] || fail "the C# conformance runner ($backend) printed no summary"
  conformance="${conformance:+$conformance, }$backend $line"
done

log "NuGet: pack sdks/csharp/Syros.Client.nuspec, install it from a folder feed, run a consumer built against it"
command -v nuget >/dev/null || fail "nuget not found: apt-get install -y --no-install-recommends nuget"
PKG="$WORK/package"
mkdir -p "$PKG/base" "$PKG/feed" "$PKG/installed" "$PKG/consumer"
cp "$BIN/Syros.Client.dll" "$BIN/Syros.Client.xml" "$PKG/base/"
# The debug library without its debug sections (a debug build's symbols make it ~10x larger).
strip --strip-debug -o "$PKG/base/libsyros_ffi.so" "$NATIVE" 2>/dev/null || cp "$NATIVE" "$PKG/base/"
# nuget 2.8 predates netstandard and warns that it does not know the lib/netstandard2.0 folder;
# the folder is what .NET's NuGet wants, and nuget 2.8 installs it as it is.
nuget pack sdks/csharp/Syros.Client.nuspec -BasePath "$PKG/base" -OutputDirectory "$PKG/feed" -NonInteractive
nupkg=$(ls "$PKG"/feed/Syros.Client.*.nupkg)
# (the listing is read whole first: grep -q closing the pipe early would fail it under pipefail)
listing=$(unzip -l "$nupkg")
grep -q 'lib/netstandard2.0/Syros.Client.dll' <<<"$listing" || fail "the package has no lib/netstandard2.0/Syros.Client.dll"
grep -q 'runtimes/linux-x64/native/libsyros_ffi.so' <<<"$listing" || fail "the package has no runtimes/linux-x64/native/libsyros_ffi.so"
nuget install Syros.Client -Source "$PKG/feed" -OutputDirectory "$PKG/installed" -NonInteractive
installed=$(ls -d "$PKG"/installed/Syros.Client.*)
mcs "${MCS_FLAGS[@]}" -out:"$PKG/consumer/Consumer.exe" -r:"$installed/lib/netstandard2.0/Syros.Client.dll" sdks/csharp/consumer/Program.cs
cp "$installed/lib/netstandard2.0/Syros.Client.dll" "$PKG/consumer/"
start_syros
address=$SYROS_GRPC_ADDR
# Only the installed package's native library is on the search path for the consumer.
LD_LIBRARY_PATH="$installed/runtimes/linux-x64/native" run_mono "the consumer program" "$WORK/consumer.out" "$PKG/consumer/Consumer.exe" "$address" \
  || fail "the consumer program built against the installed package"
grep -q '^consumer: .*cache round trip ok$' "$WORK/consumer.out" || fail "the consumer program printed no result"

log "examples/csharp against syros serve"
ran=0
for example in examples/csharp/*/; do
  name=$(basename "$example")
  echo "--- examples/csharp/$name"
  mcs "${MCS_FLAGS[@]}" -out:"$BIN/example-$name.exe" -r:"$BIN/Syros.Client.dll" "$example"*.cs
  run_mono "example $name" "$WORK/example-$name.out" "$BIN/example-$name.exe" "$address" || { tail -50 "$SYROS_DIR/syros.log"; fail "example $name"; }
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || fail "no example ran"

stop_syros

echo
echo "csharp-sdk: tests $tests (process exited by itself); conformance ${conformance}; NuGet package packed, installed from a folder feed, consumer ran; examples/csharp: $ran programs ran and checked their outcome"
