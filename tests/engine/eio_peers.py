"""Test-only peers for the Engine.IO server: a tiny HTTP client and a WebSocket client.

They speak raw HTTP/1.1 (h11) and RFC 6455 (wsproto) over any Trio stream, so the
same test can run over a real loopback socket or over the in-memory network of
``triosio._testing_net``. Nothing here mocks triosio: the server under test is
the real one (:func:`running_server`), and an :class:`Recorder` app records what
the engine reports upward and echoes every message back.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import trio
import wsproto
import wsproto.events as wse

from triosio import App, DisconnectReason, EngineServer, EngineSession, HTTPLimits, serve
from triosio._engine.packet import OutPacket
from triosio._engine.packet import message as _message
from triosio._engine.wsframes import unmask
from triosio.testing import MemoryNetwork

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
JS_DIR = TESTS / "js"
RS = "\x1e"


def root_conftest() -> ModuleType:
    """tests/conftest.py, loaded by path (every conftest.py is named "conftest")."""
    spec = importlib.util.spec_from_file_location("_triosio_engine_conftest", TESTS / "conftest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- HTTP client


@dataclass
class Response:
    """A complete HTTP response."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class HTTPClient:
    """One HTTP/1.1 connection (keep-alive), one request at a time."""

    def __init__(self, stream: trio.abc.Stream, host: str = "127.0.0.1") -> None:
        self.stream = stream
        self.host = host
        self.conn = h11.Connection(h11.CLIENT)

    async def send_request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> None:
        all_headers = [("host", self.host), *headers]
        if body is not None and not any(k.lower() == "content-length" for k, _ in headers):
            all_headers.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=all_headers))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)

    async def read_response(self) -> Response:
        status = 0
        headers: list[tuple[str, str]] = []
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = [(k.decode().lower(), v.decode()) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("connection closed before a response")
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return Response(status, headers, bytes(body))

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> Response:
        await self.send_request(method, target, headers, body)
        return await self.read_response()

    @property
    def reusable(self) -> bool:
        return self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE

    async def aclose(self) -> None:
        await self.stream.aclose()


async def read_raw_response(stream: trio.abc.Stream) -> bytes:
    """Every byte the server sends until it closes (for hand-written requests)."""
    out = bytearray()
    while True:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            break
        if not data:
            break
        out += data
    return bytes(out)


# ---------------------------------------------------------------- WebSocket client


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes = b"\x01\x02\x03\x04",
    rsv: int = 0,
    masked: bool = True,
    wide: int | None = None,
) -> bytes:
    """A client frame (masked unless told otherwise); ``wide`` forces a length form."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if wide == 126 or (wide is None and 126 <= n < 65536):
        head = struct.pack("!BBH", b0, 126 | (0x80 if masked else 0), n)
    elif wide == 127 or (wide is None and n >= 65536):
        head = struct.pack("!BBQ", b0, 127 | (0x80 if masked else 0), n)
    else:
        head = bytes((b0, n | (0x80 if masked else 0)))
    if not masked:
        return head + payload
    return head + mask + unmask(payload, mask)



class WSClosed(Exception):
    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class WSRejected(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"rejected {status}: {body!r}")
        self.status = status
        self.body = body


class WSClient:
    """A WebSocket client connection (wsproto) over a Trio stream."""

    def __init__(self, stream: trio.abc.Stream, conn: wsproto.WSConnection) -> None:
        self.stream = stream
        self.conn = conn
        self.events: list[wse.Event] = []
        self.closed: WSClosed | None = None
        self._parts: list[Any] = []
        #: Headers of the 101 answer (beyond the handshake's own).
        self.accept_headers: list[tuple[str, str]] = []
        #: Bytes read from the server after the handshake (what went on the wire).
        self.wire_bytes = 0
        #: The extensions the server accepted (wsproto's objects).
        self.extensions: list[Any] = []

    @classmethod
    async def open(
        cls,
        stream: trio.abc.Stream,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        host: str = "127.0.0.1",
        extensions: Sequence[Any] = (),
    ) -> WSClient:
        try:
            return await cls._open(stream, target, headers, host, extensions)
        except BaseException:
            await stream.aclose()
            raise

    @classmethod
    async def _open(
        cls,
        stream: trio.abc.Stream,
        target: str,
        headers: Sequence[tuple[str, str]],
        host: str,
        extensions: Sequence[Any] = (),
    ) -> WSClient:
        conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        extra = [(k.encode(), v.encode()) for k, v in headers]
        request = wse.Request(
            host=host, target=target, extra_headers=extra, extensions=list(extensions)
        )
        await stream.send_all(conn.send(request))
        client = cls(stream, conn)
        status = 0
        body = bytearray()
        while True:
            for event in conn.events():
                if isinstance(event, wse.AcceptConnection):
                    client.accept_headers = [
                        (k.decode().lower(), v.decode()) for k, v in event.extra_headers
                    ]
                    client.extensions = list(event.extensions)
                    return client
                if isinstance(event, wse.RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise WSRejected(status, b"")
                elif isinstance(event, wse.RejectData):
                    body += event.data
                    if event.body_finished:
                        raise WSRejected(status, bytes(body))
                else:
                    client.events.append(event)
            data = await stream.receive_some(65536)
            if not data:
                raise WSRejected(status, bytes(body))
            conn.receive_data(data)

    async def send(self, message: str | bytes) -> None:
        event: wse.Event
        event = (
            wse.TextMessage(data=message)
            if isinstance(message, str)
            else wse.BytesMessage(data=message)
        )
        await self.stream.send_all(self.conn.send(event))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self) -> str | bytes:
        """The next message; raises WSClosed when the server closes (or the link ends)."""
        while True:
            for event in self.conn.events():
                if isinstance(event, wse.Message):
                    self._parts.append(event.data)
                    if event.message_finished:
                        parts, self._parts = self._parts, []
                        if isinstance(event, wse.TextMessage):
                            return "".join(parts)
                        return b"".join(parts)
                elif isinstance(event, wse.Ping):
                    await self.stream.send_all(self.conn.send(event.response()))
                elif isinstance(event, wse.CloseConnection):
                    self.closed = WSClosed(event.code, event.reason or "")
                    try:
                        await self.stream.send_all(self.conn.send(event.response()))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    await self.stream.aclose()
                    raise self.closed
            if self.closed is not None:
                raise self.closed
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.closed = WSClosed(None, "eof")
                await self.stream.aclose()
                raise self.closed
            self.wire_bytes += len(data)
            self.conn.receive_data(data)

    async def receive_until_closed(self) -> list[str | bytes]:
        """Every message until the server closes."""
        out: list[str | bytes] = []
        try:
            while True:
                out.append(await self.receive())
        except WSClosed:
            return out

    async def close(self, code: int = 1000) -> None:
        try:
            await self.stream.send_all(self.conn.send(wse.CloseConnection(code=code)))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await self.stream.aclose()


# ---------------------------------------------------------------- the server under test


@dataclass
class Recorder:
    """An EngineApp that echoes every message and records the engine's reports."""

    echo: bool = True
    opened: list[EngineSession] = field(default_factory=list)
    messages: list[tuple[str, str | bytes]] = field(default_factory=list)
    closed: list[tuple[str, DisconnectReason, float]] = field(default_factory=list)
    open_times: dict[str, float] = field(default_factory=dict)
    message_event: trio.Event = field(default_factory=trio.Event)
    close_event: trio.Event = field(default_factory=trio.Event)
    open_event: trio.Event = field(default_factory=trio.Event)

    async def on_open(self, session: EngineSession) -> None:
        self.opened.append(session)
        self.open_times[session.sid] = trio.current_time()
        self.open_event.set()
        self.open_event = trio.Event()

    async def on_message(self, session: EngineSession, data: str | bytes) -> None:
        self.messages.append((session.sid, data))
        self.message_event.set()
        self.message_event = trio.Event()
        if self.echo:
            await session.send(data)

    async def on_close(self, session: EngineSession, reason: DisconnectReason) -> None:
        self.closed.append((session.sid, reason, trio.current_time()))
        self.close_event.set()
        self.close_event = trio.Event()

    def reasons(self, sid: str) -> list[DisconnectReason]:
        return [reason for s, reason, _ in self.closed if s == sid]

    async def wait_closed(self, sid: str) -> DisconnectReason:
        while not self.reasons(sid):
            await self.close_event.wait()
        return self.reasons(sid)[0]

    async def wait_messages(self, count: int) -> None:
        while len(self.messages) < count:
            await self.message_event.wait()


@dataclass
class RunningServer:
    engine: EngineServer
    app: Recorder
    port: int
    network: MemoryNetwork | None
    cancel_scope: trio.CancelScope

    async def connect(self) -> trio.abc.Stream:
        if self.network is not None:
            return await self.network.connect()
        return await trio.open_tcp_stream("127.0.0.1", self.port)

    async def http(self) -> HTTPClient:
        return HTTPClient(await self.connect())

    async def get(self, target: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
        """One request on a connection of its own."""
        client = await self.http()
        try:
            return await client.request("GET", target, headers)
        finally:
            await client.aclose()

    async def post(
        self, target: str, body: bytes | str, headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        client = await self.http()
        data = body.encode() if isinstance(body, str) else body
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers = [("content-type", "text/plain;charset=UTF-8"), *headers]
        try:
            return await client.request("POST", target, headers, data)
        finally:
            await client.aclose()

    async def ws(
        self,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        extensions: Sequence[Any] = (),
    ) -> WSClient:
        return await WSClient.open(await self.connect(), target, headers, extensions=extensions)

    async def handshake(
        self, headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[str, dict[str, Any]]:
        """A polling handshake; returns the sid and the OPEN packet's data."""
        response = await self.get("/engine.io/?EIO=4&transport=polling", headers)
        assert response.status == 200, response
        assert response.text.startswith("0")
        data = json.loads(response.text[1:])
        return data["sid"], data

    async def ws_handshake(self) -> tuple[WSClient, str]:
        ws = await self.ws("/engine.io/?EIO=4&transport=websocket")
        opening = await ws.receive()
        assert isinstance(opening, str)
        assert opening.startswith("0")
        return ws, json.loads(opening[1:])["sid"]


def poll_url(sid: str, transport: str = "polling") -> str:
    return f"/engine.io/?EIO=4&transport={transport}&sid={sid}"


def raw_post_head(sid: str, length: int) -> bytes:
    """The head of a polling POST announcing ``length`` body bytes."""
    return f"POST {poll_url(sid)} HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\r\n".encode()


@asynccontextmanager
async def running_server(
    *,
    memory: bool = False,
    limits: HTTPLimits | None = None,
    app: Recorder | None = None,
    static: dict[str, Any] | None = None,
    window: int | None = None,
    **options: Any,
) -> AsyncIterator[RunningServer]:
    """An Engine.IO server (echo app) served on loopback, or on a MemoryNetwork."""
    recorder = app or Recorder()
    engine = EngineServer(recorder, **options)
    network = None
    if memory:
        network = MemoryNetwork(window) if window else MemoryNetwork()
    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        if network is not None:
            await nursery.start(_serve_in, scope, App(engine, static=static), network, limits)
            port = 0
        else:
            listeners = await nursery.start(_serve_tcp, scope, App(engine, static=static), limits)
            port = listeners[0].socket.getsockname()[1]
        yield RunningServer(engine, recorder, port, network, scope)
        scope.cancel()


async def _serve_tcp(
    scope: trio.CancelScope,
    app: App,
    limits: HTTPLimits | None,
    *,
    task_status: trio.TaskStatus[Any],
) -> None:
    with scope:
        await serve(app, "127.0.0.1", 0, limits=limits, task_status=task_status)


async def _serve_in(
    scope: trio.CancelScope,
    app: App,
    network: MemoryNetwork,
    limits: HTTPLimits | None,
    *,
    task_status: trio.TaskStatus[Any],
) -> None:
    with scope:
        await serve(app, listeners=[network.listener], limits=limits, task_status=task_status)


def count_tasks() -> int:
    """The number of tasks alive in this Trio run."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    total = 0
    stack = [root]
    while stack:
        task = stack.pop()
        total += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return total


def message(data: str | bytes) -> OutPacket:
    """An Engine.IO MESSAGE packet to hand to ``EngineSession.send_nowait``."""
    return _message(data)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    """Wait until a condition on the server's state (same process) holds.

    Polling, because the condition depends on bytes crossing a real socket,
    which no Trio event announces.
    """
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.001)
