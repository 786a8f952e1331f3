"""Drives tests/js/server_clients.js: many npm socket.io-client sockets in one node.

One node process per test module (a sync, module-scoped fixture starts it); each
test talks to it from its own Trio run through :class:`NodeClients`, over
duplicates of the process's pipes, and leaves it clean (``reset``) at the end.
Values cross as JSON, bytes as ``{"$bytes": base64}`` (see ``node_codec``).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from node_codec import from_wire, require_peers, to_wire

import triosio

JS_DIR = Path(__file__).resolve().parent.parent / "js"
SCRIPT = JS_DIR / "server_clients.js"
TIMEOUT = 15.0


class NodeProcess:
    """``node server_clients.js``, started once per test module."""

    def __init__(self) -> None:
        require_peers()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT)],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )

    def stderr(self) -> str:
        """What node wrote on stderr so far (for failure messages)."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def close(self) -> None:
        """End the process: it exits when its stdin closes; else it is killed by PID."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


class NodeError(Exception):
    """A command failed on the node side."""


class NodeClients:
    """The node process as seen from one test: commands and the notices so far.

    Attributes:
        notes: Every notice (connect, connect_error, disconnect, event, upgrade),
            in arrival order.
    """

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        assert node.proc.stdin is not None
        assert node.proc.stdout is not None
        self._out = trio.lowlevel.FdStream(os.dup(node.proc.stdin.fileno()))
        self._in = trio.lowlevel.FdStream(os.dup(node.proc.stdout.fileno()))
        self._ids = itertools.count()
        self._pending: dict[int, list[Any]] = {}
        self._lock = trio.Lock()
        self._changed = trio.Event()
        self.notes: list[dict[str, Any]] = []

    async def _read(self) -> None:
        buffer = b""
        while True:
            chunk = await self._in.receive_some(65536)
            if not chunk:
                raise RuntimeError(f"node exited:\n{self.node.stderr()}")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "id" in message:
                    slot = self._pending.pop(message["id"])
                    slot.append(message)
                else:
                    message = {k: from_wire(v) for k, v in message.items()}
                    self.notes.append(message)
                self._changed.set()
                self._changed = trio.Event()

    async def call(self, op: str, **fields: Any) -> Any:
        """Run one command; its result (bytes decoded), or raise :class:`NodeError`."""
        command_id = next(self._ids)
        slot: list[Any] = []
        self._pending[command_id] = slot
        line = json.dumps({"id": command_id, "op": op, **to_wire(fields)}) + "\n"
        async with self._lock:
            await self._out.send_all(line.encode("utf-8"))
        with trio.fail_after(TIMEOUT):
            while not slot:
                await self._changed.wait()
        reply = slot[0]
        if "error" in reply:
            raise NodeError(reply["error"])
        return from_wire(reply["result"])

    async def wait_until(self, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        """Wait until ``check()`` is truthy (re-checked at each notice); return it."""
        with trio.fail_after(timeout):
            while not (result := check()):
                await self._changed.wait()
        return result

    # ------------------------------------------------------------ conveniences

    async def connect(
        self,
        client: str,
        url: str,
        acks: dict[str, Any] | None = None,
        quiet: bool = False,
        **opts: Any,
    ) -> dict[str, Any]:
        """Connect a socket; ``{"sid": ...}`` or ``{"error": {"message", "data"}}``.

        ``opts`` go to ``io(url, opts)``; a ``quiet`` socket only counts its
        events (see ``counts``).
        """
        result: dict[str, Any] = await self.call(
            "connect", client=client, url=url, opts=opts, acks=acks or {}, quiet=quiet
        )
        return result

    async def connect_shared(
        self, client: str, share: str, nsp: str, acks: dict[str, Any] | None = None, **opts: Any
    ) -> dict[str, Any]:
        """Connect namespace ``nsp`` on the connection of client ``share``."""
        result: dict[str, Any] = await self.call(
            "connect", client=client, share=share, nsp=nsp, url="", opts=opts, acks=acks or {}
        )
        return result

    async def emit(self, client: str, event: str, *args: Any) -> None:
        """``socket.emit(event, ...args)`` in node."""
        await self.call("emit", client=client, event=event, args=list(args))

    async def emit_with_ack(
        self, client: str, event: str, *args: Any, timeout: int = 5000
    ) -> list[Any]:
        """``socket.timeout(t).emitWithAck(...)``: the ack's arguments."""
        result: list[Any] = await self.call(
            "emitWithAck", client=client, event=event, args=list(args), timeout=timeout
        )
        return result

    def of(self, client: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The notices of ``client`` (of one kind, if given)."""
        return [n for n in self.notes if n["client"] == client and kind in (None, n["note"])]

    def events(self, client: str, event: str | None = None) -> list[list[Any]]:
        """The args of each event ``client`` received (of one name, if given)."""
        return [
            n["args"]
            for n in self.of(client, "event")
            if event is None or n["event"] == event
        ]

    async def wait_events(
        self, client: str, event: str, count: int = 1, timeout: float = TIMEOUT
    ) -> list[list[Any]]:
        """Wait until ``client`` received ``count`` ``event`` events; their args."""
        await self.wait_until(lambda: len(self.events(client, event)) >= count, timeout)
        return self.events(client, event)

    async def wait_disconnect(self, client: str, timeout: float = TIMEOUT) -> str:
        """Wait for ``client``'s ``disconnect``; the reason."""
        notes = await self.wait_until(lambda: self.of(client, "disconnect"), timeout)
        reason: str = notes[0]["reason"]
        return reason

    async def reset(self) -> None:
        """Disconnect and forget every socket."""
        with trio.move_on_after(TIMEOUT):
            await self.call("reset")

    async def aclose(self) -> None:
        """Close this test's ends of the pipes (once the reader is stopped)."""
        await self._out.aclose()
        await self._in.aclose()


@asynccontextmanager
async def node_clients(node: NodeProcess) -> AsyncIterator[NodeClients]:
    """:class:`NodeClients` with its reader running, reset at the end."""
    clients = NodeClients(node)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(clients._read)
            try:
                yield clients
            finally:
                with trio.CancelScope(shield=True):
                    await clients.reset()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await clients.aclose()


@asynccontextmanager
async def running(sio: triosio.Server | triosio.App) -> AsyncIterator[str]:
    """Serve ``sio`` on 127.0.0.1 (a free port); yield its base URL."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(triosio.serve, sio, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            nursery.cancel_scope.cancel()


TRANSPORTS: dict[str, dict[str, Any]] = {
    "polling": {"transports": ["polling"]},
    "websocket": {"transports": ["websocket"]},
    "upgrade": {"transports": ["polling", "websocket"]},
}
