"""What the Engine.IO server needs from an HTTP front end, as two small interfaces.

The built-in server (h11 on Trio streams, :mod:`.h11server`) and the
ASGI front end (:mod:`.asgi_transport`) both implement :class:`Exchange` (one HTTP
request and its response) and :class:`WebSocket` (an accepted WebSocket), so
the Engine.IO server and its sessions run unchanged over either.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Callable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl

from .deflate import PerMessageDeflate
from .packet import OutPacket

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request head, as the front end received it.

    Attributes:
        method: ``GET``, ``POST``...
        path: The URL path, percent-decoding not applied.
        query_string: The raw query string (without ``?``).
        headers: ``(name, value)`` pairs, names lower-cased, in arrival order.
        client: The peer's ``(host, port)``, when known.
        secure: Whether the connection is TLS.
        time: Wall-clock time (``time.time()``) when the request arrived.
    """

    method: str
    path: str
    query_string: str = ""
    headers: Headers = field(default_factory=list)
    client: tuple[str, int] | None = None
    secure: bool = False
    time: float = field(default_factory=time.time)
    # The parsed query string, once asked for (the engine and each socket's
    # handshake ask; parse_qsl is a few microseconds per connection).
    _query: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or ``None``."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the first value of each name).

        Parsed once and shared (with each socket's handshake): read it, do
        not change it.
        """
        parsed = self._query
        if parsed is None:
            parsed = {}
            for key, value in parse_qsl(self.query_string, keep_blank_values=True):
                parsed.setdefault(key, value)
            object.__setattr__(self, "_query", parsed)  # frozen: a cache, not state
        return parsed

    @property
    def url(self) -> str:
        """The request target: path and query string."""
        return self.path + ("?" + self.query_string if self.query_string else "")

    @property
    def is_websocket_upgrade(self) -> bool:
        """Whether this is a WebSocket opening handshake."""
        upgrade = self.header("upgrade") or ""
        return self.method == "GET" and upgrade.lower() == "websocket"


class RequestAborted(Exception):
    """The client went away, or stalled, before its request body was complete.

    Raised by :meth:`Exchange.body`; the front end drops the connection.
    """


class Exchange(abc.ABC):
    """One HTTP request and the response to it.

    Exactly one of :meth:`respond` and :meth:`accept_websocket` is called once.
    """

    request: Request

    @abc.abstractmethod
    def body(self) -> AsyncIterator[bytes]:
        """The request body, chunk by chunk.

        Raises:
            RequestAborted: the client closed the connection or stopped sending.
        """

    @abc.abstractmethod
    async def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        """Send the whole response."""

    @abc.abstractmethod
    async def wait_client_gone(self) -> None:
        """Return when the client closes its connection (used by long-polls)."""

    @abc.abstractmethod
    async def accept_websocket(
        self, headers: Headers, deflate: PerMessageDeflate | None = None, *, hold: bool = False
    ) -> WebSocket:
        """Complete the WebSocket handshake; the connection now belongs to the caller.

        ``deflate``: accept the client's permessage-deflate offer with these
        options (where the transport does the framing itself). ``hold``: the
        answer may wait for the WebSocket's first write and go out with it
        (the built-in server then makes one system call of the two); the
        caller writes at once.
        """


class WebSocketClosed(Exception):
    """The WebSocket ended; ``code`` is its close code (1006 when the TCP link broke)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed ({code}) {reason}".strip())
        self.code = code
        self.reason = reason


class _Flag(Protocol):
    # A subclass's "nothing queued" event: a trio.Event or a LazyEvent.
    def set(self) -> None: ...

    async def wait(self) -> None: ...


class WebSocket(abc.ABC):
    """An accepted WebSocket, as an Engine.IO session uses it.

    Writes never wait: :meth:`write_nowait` writes through when it can and queues
    otherwise. When bytes get queued (or the socket breaks) and no writer runs,
    the WebSocket calls :attr:`start_writer`, which starts :meth:`run_writer`
    as a task in the session's nursery; that task drains the queue and ends.
    An idle connection has no writer task. :attr:`backlog` is what is queued,
    for the session's limits.
    """

    __slots__ = ("_writer_running", "start_writer")

    #: Called with this WebSocket when a writer task is needed (see
    #: :meth:`set_writer_starter`). Returns whether it started one. Subclasses
    #: set it to None in __init__.
    start_writer: Callable[[WebSocket], bool] | None
    #: Whether a writer task runs (or was asked for). Subclasses set it in __init__.
    _writer_running: bool

    def set_writer_starter(self, start: Callable[[WebSocket], bool]) -> None:
        """Give the WebSocket the way to start a writer task (the session's)."""
        self.start_writer = start
        if self.backlog or self.broken:
            self._need_writer()  # bytes queued before the session took over

    def _need_writer(self) -> None:
        if not self._writer_running and self.start_writer is not None:
            self._writer_running = True  # one writer at a time, from now on
            if not self.start_writer(self):
                self._writer_running = False  # no session to run it: close() flushes

    #: Bytes (or messages) queued and not yet handed to the transport.
    backlog: int = 0
    #: Set when a write failed: the connection is unusable.
    broken: bool = False
    # Subclasses set these in __init__: the queued writes, whether the
    # connection is closed, and an event that is set while nothing is queued.
    _queue: Sized
    _closed: bool
    _drained: _Flag

    async def run_writer(self) -> None:
        """Drain the queued writes, then return (a task started on demand)."""
        self._writer_running = True
        try:
            while self._queue and not self._closed and not self.broken:
                await self._write_some()
            if not self._queue or self.broken:
                self._drained.set()
        finally:
            self._writer_running = False

    async def wait_drained(self) -> None:
        """Return once the queue is empty (or the socket is broken)."""
        await self._drained.wait()

    async def _flush(self) -> None:
        # For close(): the writer task, if one runs, empties the queue;
        # otherwise the closing task writes what is left itself.
        if self._writer_running:
            await self.wait_drained()
        else:
            while self._queue and not self.broken:
                await self._write_some()

    @abc.abstractmethod
    async def _write_some(self) -> None:
        """Hand the transport what it takes of the queue in one go."""

    @abc.abstractmethod
    async def receive(self, max_size: int) -> str | bytes:
        """The next whole message.

        Raises:
            WebSocketClosed: the peer closed, the link broke, or a message was
                larger than ``max_size`` (code 1009) or malformed (1002/1007).
        """

    @abc.abstractmethod
    def write_nowait(self, packets: Sequence[OutPacket]) -> None:
        """Write (or queue) the packets, in order, without waiting."""

    @abc.abstractmethod
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush what is queued (briefly), send a close frame, close the connection."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Close the connection at once."""
