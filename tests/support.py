"""Shared test helpers (import them with ``from support import ...``).

Tests that need an outside tool (node and the npm peers in tests/js, redis-server,
chromium) call :func:`require`. Outside CI a missing tool skips the test with the
reason; under ``CI=true`` it fails, so CI never passes by skipping quietly.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"
NODE_MODULES = JS_DIR / "node_modules"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip (locally) or fail (under CI=true) when a needed tool is missing."""
    if condition:
        return
    message = f"{what} is not available (scripts/run-tests.sh installs it)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_node_modules(*packages: str) -> Path:
    """The path of tests/js/node_modules, after checking node and ``packages``."""
    require(shutil.which("node") is not None, "node")
    for package in packages:
        require((NODE_MODULES / package / "package.json").exists(), f"npm package {package}")
    return NODE_MODULES


def require_binary(name: str) -> str:
    """The path of an executable on PATH, e.g. ``redis-server`` or ``chromium``."""
    path = shutil.which(name)
    require(path is not None, name)
    assert path is not None
    return path


class WorkersProcess:
    """``python -m triosio run TARGET --workers N --port 0``, stopped by its PID.

    Attributes:
        port: The port it serves (read from its log).
        url: ``http://127.0.0.1:port``.
        pids: The pid of each worker, by index (the latest, after restarts).
    """

    def __init__(
        self, target: str, workers: int, *args: str, cwd: Path, env: dict[str, str] | None = None
    ) -> None:
        import subprocess
        import sys
        import tempfile

        self.log_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._final_log = ""
        self.workers = workers
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "triosio",
                "run",
                target,
                "--port",
                "0",
                "--workers",
                str(workers),
                *args,
            ],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=self.log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.pids: dict[int, int] = {}
        self.port = 0
        try:
            self.wait_for(lambda: self.port != 0 and len(self.pids) == workers, 30)
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What it wrote so far (the supervisor's and the workers' logs)."""
        if self.log_file.closed:
            return self._final_log
        self.log_file.seek(0)
        text = self.log_file.read().decode("utf-8", "replace")
        import re

        for match in re.finditer(r"serving \S+ on http://127\.0\.0\.1:(\d+)", text):
            self.port = int(match.group(1))
        for match in re.finditer(r"worker (\d+) started \(pid (\d+)\)", text):
            self.pids[int(match.group(1))] = int(match.group(2))
        return text

    def wait_for(self, condition: Any, timeout: float) -> None:
        """Poll the log until ``condition()`` holds (blocking; for set-up and tear-down)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            self.log()
            if condition():
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"triosio run did not get there:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM to the supervisor (by PID), bounded; SIGKILL to whatever is left."""
        import signal
        import subprocess

        self.log()
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                code = None
        for pid in self.pids.values():
            # Only a worker the supervisor left behind (never a recycled pid).
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"triosio._workers.worker" in f.read():
                        os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        if not self.log_file.closed:
            self._final_log = self.log()
            self.log_file.close()
        return code


async def until(check: Any, timeout: float = 10.0) -> None:
    """Poll ``check()`` (a bool, or an awaitable of one) until it holds; fail after ``timeout``.

    For conditions in other processes, which no event of ours can signal.
    """
    import inspect

    import trio

    with trio.fail_after(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await trio.sleep(0.01)


def require_import(name: str) -> Any:
    """The module ``name``, imported; skip (locally) or fail (CI) if it is missing.

    For optional extras (``triosio[metrics]``, ``triosio[otel]``).
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"{name} ({exc})")


async def relay(target: int, counts: Counter[str], *, task_status: Any) -> None:
    """A loopback TCP relay to ``target`` that counts the bytes each way
    (``counts["up"]``: to the server, ``counts["down"]``: from it)."""

    async def handle(client: trio.SocketStream) -> None:
        async with (
            client,
            await trio.open_tcp_stream("127.0.0.1", target) as server,
            trio.open_nursery() as nursery,
        ):

            async def pump(src: trio.SocketStream, dst: trio.SocketStream, key: str) -> None:
                try:
                    while data := await src.receive_some(65536):
                        counts[key] += len(data)
                        await dst.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(pump, client, server, "up")
            nursery.start_soon(pump, server, client, "down")

    await trio.serve_tcp(handle, 0, host="127.0.0.1", task_status=task_status)
