"""Fixtures: a real ``syros serve`` (the binary named by SYROS_BIN) on free loopback ports with
an empty data directory, and clients connected to it.

Without SYROS_BIN the run stops at once with a usage error: these tests never skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

import syros

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("SYROS_BIN")
    if not path:
        raise pytest.UsageError(
            "SYROS_BIN is not set: build the server (cargo build -p syros-server) and export "
            "SYROS_BIN=<target dir>/debug/syros (scripts/python-sdk.sh does this)"
        )
    if not Path(path).is_file():
        raise pytest.UsageError(f"SYROS_BIN={path} does not exist: run cargo build -p syros-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``syros serve`` child process; same port and data across restarts."""

    def __init__(self, data_dir: Path, port: Optional[int] = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.data_dir / f"syros-{self.port}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Server":
        assert self.proc is None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SERVER_HOST": "127.0.0.1",
            "GRPC_PORT": str(self.port),
            "REST_PORT": str(free_port()),
            "WS_PORT": str(free_port()),
            "SYROS_DATA_DIR": str(self.data_dir),
            "LOG_LEVEL": "info",
        }
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.environ["SYROS_BIN"], "serve"],
            env=env,
            cwd=self.data_dir,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"syros exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"syros did not listen within 60 s:\n{self.log()}")
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


#: Quick retries bounded by a deadline, so tests about unavailability finish quickly.
FAST_RETRY = syros.RetryPolicy(initial_interval=0.02, multiplier=2.0, max_interval=0.3, max_attempts=100, deadline=20.0)
FAST_RESUBSCRIBE = syros.RetryPolicy(initial_interval=0.02, multiplier=2.0, max_interval=0.3, max_attempts=2**32 - 1, deadline=None)


def client_options() -> dict:
    return dict(connect_timeout=2.0, call_timeout=5.0, retry=FAST_RETRY, resubscribe=FAST_RESUBSCRIBE)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("syros-data")).start()
    yield srv
    srv.stop()


@pytest.fixture
def dedicated_server(tmp_path: Path) -> Iterator[Server]:
    """A server of one test's own, for tests that kill it."""
    srv = Server(tmp_path / "syros-data").start()
    yield srv
    srv.kill()


@pytest.fixture(scope="session")
def client(server: Server) -> syros.Client:
    return syros.Client([server.address], **client_options())


@pytest.fixture
def address(server: Server) -> str:
    return server.address


@pytest.fixture
def name() -> str:
    """A unique name prefix, so tests sharing the session server never see each other's data."""
    return f"t{uuid.uuid4().hex[:12]}"


def run_async(coro):
    """Run one test coroutine on a fresh event loop."""
    import asyncio

    return asyncio.run(coro)


def python_script(path: Path, *args: str, timeout: float = 120, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
