"""Fixtures for the grpcio interop tests.

The client side is built from nothing but the .proto files in <repo>/proto: they are compiled
with grpc_tools.protoc into a temporary directory at the start of the session. The server side is
the real `syros` binary named by SYROS_BIN, started once per session through the one test
launcher (tests/launcher/syros_launcher.py: ephemeral ports read from its ready file, written once
the server reports SERVING; an empty data directory; the backend SYROS_TEST_BACKEND names,
embedded by default).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import grpc
import pytest

PROTO_DIR = (Path(__file__).resolve().parent / ".." / ".." / "proto").resolve()
sys.path.insert(0, str(PROTO_DIR.parent / "tests" / "launcher"))

from syros_launcher import SyrosServer  # noqa: E402

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


@pytest.fixture(scope="session")
def server(protos) -> str:
    """Start `$SYROS_BIN serve` and yield its gRPC address, "127.0.0.1:PORT"."""
    try:
        srv = SyrosServer().start()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield srv.address
    finally:
        code = srv.stop(timeout=SHUTDOWN_TIMEOUT_S)
        print(f"\nsyros exited with code {code}; log:\n{srv.log()[-2000:]}")
        srv.close()


@pytest.fixture
def channel(server):
    """A plain grpcio insecure channel to the server, closed after the test."""
    with grpc.insecure_channel(server) as ch:
        yield ch
