"""Start real ``syros serve`` processes for Python tests: the Python face of ``tests/launcher``.

The server binds ephemeral ports and reports them in its ready file (``SYROS_READY_FILE``:
``{"grpc": ..., "rest": ..., "websocket": ..., "pid": ...}``), so no test guesses a free port or
polls a socket. Restarts reuse the first start's ports and data. The binary comes from
``SYROS_BIN``; ``SYROS_TEST_BACKEND=redis-postgres`` runs on ``SYROS_TEST_REDIS_URL`` and
``SYROS_TEST_DATABASE_URL`` (a fresh namespace per server). A server that cannot start raises with
its log: tests never skip.

Used by the Python SDK's tests, the Python conformance runner and the grpcio interop tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, Optional

READY_TIMEOUT_S = 60.0


def syros_bin() -> str:
    path = os.environ.get("SYROS_BIN")
    if not path:
        raise RuntimeError(
            "SYROS_BIN is not set: build the server (cargo build -p syros-server) and export "
            "SYROS_BIN=<target dir>/debug/syros (scripts/test does this)"
        )
    if not Path(path).is_file():
        raise RuntimeError(f"SYROS_BIN={path} does not exist: run cargo build -p syros-server")
    return path


def backend_from_env() -> str:
    backend = os.environ.get("SYROS_TEST_BACKEND", "embedded") or "embedded"
    if backend not in ("embedded", "redis-postgres"):
        raise RuntimeError(f"SYROS_TEST_BACKEND={backend!r}: expected embedded or redis-postgres")
    return backend


class SyrosServer:
    """A ``syros serve`` child process; same ports and data across restarts."""

    def __init__(
        self,
        data_dir: Optional[Path] = None,
        backend: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        namespace: Optional[str] = None,
    ) -> None:
        self._temp = tempfile.TemporaryDirectory(prefix="syros-")
        self.work_dir = Path(self._temp.name)
        self.data_dir = Path(data_dir) if data_dir else self.work_dir / "data"
        self.backend = backend or backend_from_env()
        self.namespace = namespace or f"t{uuid.uuid4().hex}"
        self.extra_env = dict(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self.ports: Optional[Dict[str, str]] = None
        self.starts = 0

    # --- addresses ---------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """The gRPC address, ``127.0.0.1:<port>`` (stable across restarts)."""
        return self._ports()["grpc"]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def rest_url(self, path: str = "") -> str:
        return f"http://{self._ports()['rest']}{path}"

    def ws_url(self, path: str = "") -> str:
        return f"ws://{self._ports()['websocket']}{path}"

    def _ports(self) -> Dict[str, str]:
        if self.ports is None:
            raise RuntimeError("the server was never started")
        return self.ports

    # --- life cycle --------------------------------------------------------------------------
    def _log_path(self, start: int) -> Path:
        return self.work_dir / f"syros-{start}.log"

    def start(self) -> "SyrosServer":
        if self.proc is not None:
            raise RuntimeError("already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = self.work_dir / "ready.json"
        ready.unlink(missing_ok=True)
        self.starts += 1
        grpc, rest, ws = ("0", "0", "0")
        if self.ports is not None:
            grpc, rest, ws = (self.ports[k].rsplit(":", 1)[1] for k in ("grpc", "rest", "websocket"))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SERVER_HOST": "127.0.0.1",
            "GRPC_PORT": grpc,
            "REST_PORT": rest,
            "WS_PORT": ws,
            "SYROS_DATA_DIR": str(self.data_dir),
            "SYROS_READY_FILE": str(ready),
            "LOG_LEVEL": "info",
        }
        if self.backend == "redis-postgres":
            for name, source in (("REDIS_URL", "SYROS_TEST_REDIS_URL"), ("DATABASE_URL", "SYROS_TEST_DATABASE_URL")):
                value = os.environ.get(source)
                if not value:
                    raise RuntimeError(f"{source} is not set: scripts/test starts Redis and PostgreSQL and exports it")
                env[name] = value
            env["SYROS_NAMESPACE"] = self.namespace
        env.update(self.extra_env)
        with open(self._log_path(self.starts), "ab") as log:
            self.proc = subprocess.Popen(
                [syros_bin(), "serve"], env=env, cwd=self.work_dir,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                report = json.loads(ready.read_text())
                self.ports = self.ports or {k: report[k] for k in ("grpc", "rest", "websocket")}
                return self
            except (OSError, ValueError, KeyError):
                pass
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"syros serve exited ({code}) before it was ready:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"syros serve was not ready within {READY_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code when it exited by itself."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self.proc = None

    def restart(self) -> "SyrosServer":
        """kill -9 and start again: same data, same ports."""
        self.kill()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        parts = []
        for start in range(1, self.starts + 1):
            try:
                parts.append(self._log_path(start).read_text(errors="replace"))
            except OSError:
                pass
        return "\n--- restart ---\n".join(parts)[-8000:]

    def close(self) -> None:
        self.kill()
        self._temp.cleanup()

    def __enter__(self) -> "SyrosServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
