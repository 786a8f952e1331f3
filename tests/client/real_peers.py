"""Real Socket.IO servers in subprocesses, for the client's interoperability tests.

Each kind is started on 127.0.0.1 (a free port, or a given one so that a test can
stop it and start it again on the same port) and stopped by its PID.

To add a kind (e.g. the triosio server, in-process), add its name to
``SERVER_KINDS`` in ``conftest.py`` and a branch to the ``server`` fixture there
that yields an object with the same ``url`` / ``start()`` / ``stop()`` shape.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import trio

HERE = Path(__file__).resolve().parent
JS_DIR = HERE.parent / "js"

COMMANDS = {
    "node": ["node", str(JS_DIR / "client_peer_server.js")],
    "python": [sys.executable, str(HERE / "pysio_server.py")],
    "triosio": [sys.executable, str(HERE / "triosio_peer_server.py")],
}


def root_conftest() -> ModuleType:
    """tests/conftest.py, loaded by path (every conftest.py is named "conftest")."""
    spec = importlib.util.spec_from_file_location(
        "_triosio_tests_conftest_client", HERE.parent / "conftest.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ServerProcess:
    """A server subprocess. ``await start()``, ``await stop()``, ``url``.

    Args:
        kind: ``"node"`` (npm socket.io 4.8) or ``"python"`` (python-socketio).
        ping_interval: Milliseconds, passed to the server.
        ping_timeout: Milliseconds, passed to the server.
        parser: ``"json"`` or ``"msgpack"``.
        tls: (certificate, key) PEM files: serve HTTPS with them.
        recovery: Connection state recovery on (the node server only).
    """

    def __init__(
        self,
        kind: str,
        *,
        ping_interval: int = 25000,
        ping_timeout: int = 20000,
        parser: str = "json",
        tls: tuple[Path, Path] | None = None,
        recovery: bool = False,
    ):
        self.kind = kind
        self.port = 0
        self.scheme = "https" if tls else "http"
        self.env = {
            **os.environ,
            "PING_INTERVAL": str(ping_interval),
            "PING_TIMEOUT": str(ping_timeout),
            "PARSER": parser,
            "RECOVERY": "1" if recovery else "0",
        }
        if tls is not None:
            self.env["TLS_CERT"], self.env["TLS_KEY"] = str(tls[0]), str(tls[1])
        self._process: trio.Process | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the server (on the same port as before, if it ran already)."""
        assert self._process is None
        process = await trio.lowlevel.open_process(
            [*COMMANDS[self.kind], str(self.port)],
            stdout=subprocess.PIPE,
            env=self.env,
        )
        self._process = process
        assert process.stdout is not None
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                if not chunk:
                    raise RuntimeError(f"the {self.kind} server exited before listening")
                line += chunk
        word, port = line.decode().split()
        assert word == "listening"
        self.port = int(port)

    async def stop(self) -> None:
        """Kill the server (by its PID) and wait until it is gone."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
                if process.stdout is not None:
                    await process.stdout.aclose()
