"""Fixtures: a real ``syros serve`` (the binary named by SYROS_BIN), started through the one
test launcher (tests/launcher/syros_launcher.py: ephemeral ports read from its ready file, an
empty data directory, the backend SYROS_TEST_BACKEND names), and clients connected to it.

Without SYROS_BIN the run stops at once with a usage error: these tests never skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

import syros

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "tests" / "launcher"))

from syros_launcher import SyrosServer, syros_bin  # noqa: E402

#: A ``syros serve`` child process; same ports and data across restarts (``kill`` + ``start``).
Server = SyrosServer


def pytest_configure(config: pytest.Config) -> None:
    try:
        syros_bin()
    except RuntimeError as err:
        raise pytest.UsageError(f"{err} (scripts/python-sdk.sh does this)") from None


def free_port() -> int:
    """A loopback port nothing listens on (for "the server is unreachable" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Quick retries bounded by a deadline, so tests about unavailability finish quickly.
FAST_RETRY = syros.RetryPolicy(initial_interval=0.02, multiplier=2.0, max_interval=0.3, max_attempts=100, deadline=20.0)
FAST_RESUBSCRIBE = syros.RetryPolicy(initial_interval=0.02, multiplier=2.0, max_interval=0.3, max_attempts=2**32 - 1, deadline=None)


def client_options() -> dict:
    return dict(connect_timeout=2.0, call_timeout=5.0, retry=FAST_RETRY, resubscribe=FAST_RESUBSCRIBE)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = Server().start()
    yield srv
    srv.stop()
    srv.close()


@pytest.fixture
def dedicated_server() -> Iterator[Server]:
    """A server of one test's own, for tests that kill it."""
    srv = Server().start()
    yield srv
    srv.close()


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


def default_sigint() -> None:
    """``preexec_fn`` for a child that must see Ctrl-C: Python turns SIGINT into
    KeyboardInterrupt only when its parent left SIGINT at its default, and a shell runs
    background jobs (e.g. ``scripts/test &`` in a non-interactive script) with SIGINT ignored,
    which children inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def python_script(path: Path, *args: str, timeout: float = 120, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
