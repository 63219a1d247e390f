"""Fixtures for the grpcio interop tests.

The client side is built from nothing but the .proto files in <repo>/proto: they are compiled
with grpc_tools.protoc into a temporary directory at the start of the session. The server side is
the real `syros` binary named by SYROS_BIN, started once per session on free local ports with an
empty data directory and no external databases.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import grpc
import pytest

PROTO_DIR = (Path(__file__).resolve().parent / ".." / ".." / "proto").resolve()

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0


def _proto_files() -> list[str]:
    """The .proto files to compile, relative to PROTO_DIR (what protoc expects with -I)."""
    syros = sorted(p.relative_to(PROTO_DIR).as_posix() for p in (PROTO_DIR / "syros" / "v1").glob("*.proto"))
    if not syros:
        raise RuntimeError(f"no .proto files found under {PROTO_DIR / 'syros' / 'v1'}")
    return syros + ["grpc/health/v1/health.proto"]


def generate_protos(gen_dir: Path) -> types.SimpleNamespace:
    """Compile the repository's protos into `gen_dir`, make them importable and import them.

    Usable outside pytest too (e.g. to check the generated code by hand).
    """
    gen_dir = Path(gen_dir)
    gen_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={gen_dir}",
        f"--grpc_python_out={gen_dir}",
        *_proto_files(),
    ]
    result = subprocess.run(cmd, cwd=PROTO_DIR, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"protoc failed (exit {result.returncode}):\n$ {' '.join(cmd)}\n{result.stdout}{result.stderr}"
        )

    # `syros` is ours alone: make it a regular package.
    for pkg in ("syros", "syros/v1"):
        (gen_dir / pkg / "__init__.py").touch()
    # `grpc` is also the name of the grpcio package itself, so the generated grpc/ directory must
    # not become a package of its own (it would shadow grpcio). Instead, graft it onto grpcio's
    # package path so that `grpc.health.v1` (imported that way by the generated health_pb2_grpc)
    # resolves to the generated code, while `grpc` stays grpcio.
    for pkg in ("grpc/health", "grpc/health/v1"):
        (gen_dir / pkg / "__init__.py").touch()
    gen_grpc = str(gen_dir / "grpc")
    if gen_grpc not in grpc.__path__:
        grpc.__path__.append(gen_grpc)

    if str(gen_dir) not in sys.path:
        sys.path.insert(0, str(gen_dir))
    importlib.invalidate_caches()

    modules = {}
    for pkg, names in (
        ("syros.v1", ("locks", "cache", "events", "sagas")),
        ("grpc.health.v1", ("health",)),
    ):
        for name in names:
            for suffix in ("_pb2", "_pb2_grpc"):
                modules[name + suffix] = importlib.import_module(f"{pkg}.{name}{suffix}")
    return types.SimpleNamespace(gen_dir=gen_dir, **modules)


@pytest.fixture(scope="session")
def protos(tmp_path_factory) -> types.SimpleNamespace:
    """The generated modules: protos.locks_pb2, protos.locks_pb2_grpc, ..., protos.health_pb2."""
    return generate_protos(tmp_path_factory.mktemp("gen"))


def _free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(path: Path, limit: int = 8000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<could not read {path}: {e}>"
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _health_status(protos, address: str):
    """One health check on a fresh channel (a fresh channel avoids grpcio's reconnect backoff)."""
    with grpc.insecure_channel(address) as channel:
        stub = protos.health_pb2_grpc.HealthStub(channel)
        return stub.Check(protos.health_pb2.HealthCheckRequest(service=""), timeout=1.0).status


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        warnings.warn(f"syros did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s of SIGTERM; killing it")
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def server(protos, tmp_path_factory) -> str:
    """Start `$SYROS_BIN serve` and yield its gRPC address, "127.0.0.1:PORT"."""
    binary = os.environ.get("SYROS_BIN")
    if not binary:
        pytest.fail(
            "SYROS_BIN is not set: point it at the syros server binary, "
            "e.g. SYROS_BIN=target/debug/syros pytest tests/interop",
            pytrace=False,
        )
    binary_path = Path(binary).resolve()
    if not binary_path.is_file() or not os.access(binary_path, os.X_OK):
        pytest.fail(f"SYROS_BIN={binary!r} ({binary_path}) is not an executable file", pytrace=False)

    tmp = tmp_path_factory.mktemp("syros")
    data_dir = tmp / "data"
    data_dir.mkdir()
    grpc_port, rest_port, ws_port = _free_ports(3)

    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(
        SERVER_HOST="127.0.0.1",
        GRPC_PORT=str(grpc_port),
        REST_PORT=str(rest_port),
        WS_PORT=str(ws_port),
        SYROS_DATA_DIR=str(data_dir),
        LOG_LEVEL="info",
    )
    address = f"127.0.0.1:{grpc_port}"
    stdout_path, stderr_path = tmp / "stdout.log", tmp / "stderr.log"

    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [str(binary_path), "serve"], env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )

    def logs() -> str:
        return (
            f"--- stderr ({stderr_path}) ---\n{_tail(stderr_path)}\n"
            f"--- stdout ({stdout_path}) ---\n{_tail(stdout_path)}"
        )

    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last = "no attempt yet"
        while True:
            code = proc.poll()
            if code is not None:
                pytest.fail(f"syros exited with code {code} during startup (last health check: {last})\n{logs()}",
                            pytrace=False)
            try:
                status = _health_status(protos, address)
                if status == protos.health_pb2.HealthCheckResponse.SERVING:
                    break
                last = protos.health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            except grpc.RpcError as e:
                last = f"{e.code()}: {e.details()}"
            if time.monotonic() > deadline:
                pytest.fail(
                    f"syros did not report SERVING on {address} within {STARTUP_TIMEOUT_S:.0f} s "
                    f"(last health check: {last})\n{logs()}",
                    pytrace=False,
                )
            time.sleep(0.1)
    except BaseException:
        _stop(proc)
        raise

    try:
        yield address
    finally:
        _stop(proc)
        print(f"\nsyros exited with code {proc.returncode}; logs: {stdout_path}, {stderr_path}")


@pytest.fixture
def channel(server):
    """A plain grpcio insecure channel to the server, closed after the test."""
    with grpc.insecure_channel(server) as ch:
        yield ch
