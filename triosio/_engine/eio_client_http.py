"""HTTP/1.1 for the Engine.IO client's long-polling transport: h11 on a Trio stream.

One :class:`HttpConnection` is one keep-alive connection that carries one request
at a time. The polling transport keeps two of them, so that a long-poll GET and a
POST can be in flight together, as a browser's connection pool allows.

Streams come from the client's *connector* (see :data:`Connector`), so the same
code runs over TCP, TLS and in-memory streams.

Responses may come gzip- or deflate-encoded (``Accept-Encoding`` says the client
takes them, as browsers do; engine.io and triosio servers compress long-poll
answers of 1 KiB and more): they are inflated within the same ``max_body``.
"""

from __future__ import annotations

import ssl
import zlib
from collections.abc import Awaitable, Callable

import h11
import trio

#: Opens a byte stream to ``(host, port)``, with TLS when a context is given.
Connector = Callable[[str, int, "ssl.SSLContext | None"], Awaitable[trio.abc.Stream]]

_RECEIVE_SIZE = 65536


class HttpError(Exception):
    """A polling request failed: no connection, a broken one, or a bad response.

    A bad response is a malformed or too large one; a response with an error
    status is returned to the caller, which judges it.
    """


def describe(exc: BaseException) -> str:
    """A one-line description of a connection failure (TLS errors come wrapped)."""
    cause = exc.__cause__
    if isinstance(exc, trio.BrokenResourceError) and cause is not None:
        return describe(cause)
    return str(exc) or type(exc).__name__


async def default_connector(host: str, port: int, tls: ssl.SSLContext | None) -> trio.abc.Stream:
    """Open a TCP connection, wrapped in TLS (with SNI and verification) if ``tls`` is set.

    This is the default ``connector`` of :class:`triosio.Manager`.
    """
    stream = await trio.open_tcp_stream(host, port)
    if tls is None:
        return stream
    ssl_stream = trio.SSLStream(stream, tls, server_hostname=host, https_compatible=True)
    try:
        await ssl_stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return ssl_stream


class HttpConnection:
    """One keep-alive HTTP/1.1 client connection, opened on first use.

    Args:
        connector: Opens the byte stream.
        host: Host to connect to.
        port: Port to connect to.
        tls: TLS context, or ``None`` for plain HTTP.
        max_body: Largest response body accepted, in bytes.
    """

    def __init__(
        self,
        connector: Connector,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        max_body: int,
    ) -> None:
        self._connector = connector
        self._host = host
        self._port = port
        self._tls = tls
        self._max_body = max_body
        self._stream: trio.abc.Stream | None = None
        self._h11: h11.Connection | None = None

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request and read the whole response.

        A request on a reused connection that fails before any byte of the
        response arrived is retried once on a fresh connection: that is how an
        idle keep-alive connection closed by the server shows itself.

        Returns:
            The status, the response headers and the body.

        Raises:
            HttpError: the connection failed or the response was malformed.
        """
        reused = self._stream is not None
        try:
            return await self._request_once(method, target, headers, body)
        except _NoResponse as exc:
            await self.aclose()
            if not reused:
                raise HttpError(str(exc)) from exc.__cause__
        try:
            return await self._request_once(method, target, headers, body)
        except _NoResponse as exc:
            await self.aclose()
            raise HttpError(str(exc)) from exc.__cause__

    async def _request_once(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if self._stream is None:
            try:
                self._stream = await self._connector(self._host, self._port, self._tls)
            except Exception as exc:  # whatever the connector raises is a failed connection
                raise HttpError(
                    f"cannot connect to {self._host}:{self._port}: {describe(exc)}"
                ) from exc
            self._h11 = h11.Connection(h11.CLIENT)
        stream, conn = self._stream, self._h11
        assert conn is not None
        all_headers = [*headers, ("Content-Length", str(len(body)))]
        if not any(name.lower() == "accept-encoding" for name, _ in headers):
            all_headers.append(("Accept-Encoding", "gzip, deflate"))
        started = False
        try:
            data = conn.send(h11.Request(method=method, target=target, headers=all_headers))
            data += conn.send(h11.Data(data=body)) if body else b""
            data += conn.send(h11.EndOfMessage())
            await stream.send_all(data)
            status = 0
            response_headers: list[tuple[bytes, bytes]] = []
            chunks: list[bytes] = []
            size = 0
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    received = await stream.receive_some(_RECEIVE_SIZE)
                    if not received and not started:
                        # Closed before answering: how an idle keep-alive
                        # connection the server closed shows itself.
                        raise _NoResponse("connection closed before the response")
                    started = True
                    conn.receive_data(bytes(received))
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    response_headers = list(event.headers)
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > self._max_body:
                        raise HttpError(f"response body above {self._max_body} bytes")
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise _NoResponse("connection closed before the response")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            await self.aclose()
            if not started:
                raise _NoResponse(f"connection failed: {exc!r}") from exc
            raise HttpError(f"connection failed: {exc!r}") from exc
        except _NoResponse:
            await self.aclose()
            if started:
                raise HttpError("connection closed in the middle of the response") from None
            raise
        except h11.ProtocolError as exc:
            await self.aclose()
            raise HttpError(f"malformed HTTP response: {exc}") from exc
        except BaseException:
            # Cancelled, or HttpError from above: the connection is unusable now.
            await self.aclose()
            raise
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.aclose()
        return status, response_headers, self._decoded(response_headers, b"".join(chunks))

    def _decoded(self, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
        encoding = next((v for k, v in headers if k.lower() == b"content-encoding"), b"")
        encoding = encoding.strip().lower()
        if encoding in (b"", b"identity"):
            return body
        if encoding not in (b"gzip", b"x-gzip", b"deflate"):
            raise HttpError(f"unknown Content-Encoding {encoding.decode('latin-1')!r}")
        # 47: zlib's header detection (gzip or zlib); a "deflate" body without
        # the zlib header (some servers send raw deflate) is tried raw.
        for bits in (47, -15):
            inflater = zlib.decompressobj(bits)
            try:
                out = inflater.decompress(body, self._max_body + 1)
            except zlib.error:
                continue
            if len(out) > self._max_body or inflater.unconsumed_tail:
                raise HttpError(f"response body above {self._max_body} bytes once inflated")
            if not inflater.eof:
                raise HttpError("truncated compressed response body")
            return out
        raise HttpError(f"invalid {encoding.decode('latin-1')} response body")

    async def aclose(self) -> None:
        """Close the connection (the next request opens a new one)."""
        stream, self._stream, self._h11 = self._stream, None, None
        if stream is not None:
            await trio.aclose_forcefully(stream)


class _NoResponse(Exception):
    """No byte of the response arrived (the request may be retried once)."""
