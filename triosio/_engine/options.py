"""The Engine.IO server's options, and the checks they configure.

:class:`EngineOptions` (with :class:`CookieOptions`) is what
:class:`~triosio._engine.server.EngineServer` and every
:class:`~triosio._engine.session.EngineSession` read; the functions below apply
its request policy: the ``Origin`` check and CORS headers
(:func:`cors_headers`, :func:`preflight_headers`) and ``allow_request``
(:func:`request_allowed`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from .._common import ids
from .deflate import HTTPCompression, PerMessageDeflate
from .exchange import Headers, Request

log = logging.getLogger("triosio.engine")

#: ``cors_allowed_origins``: ``None`` (same origin only), ``"*"``, a list of origins,
#: or a callable taking the Origin header and returning whether it is allowed.
CorsOrigins = None | Literal["*"] | Sequence[str] | Callable[[str], bool]
AllowRequest = Callable[[Request], "bool | Awaitable[bool]"]


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """The optional session cookie set on handshake responses (as engine.io's ``cookie``).

    Attributes:
        name: Cookie name.
        path: Cookie path.
        http_only: Add ``HttpOnly``.
        same_site: ``"Lax"``, ``"Strict"``, ``"None"`` or ``None`` to leave it out.
        secure: Add ``Secure``.
        max_age: ``Max-Age`` in seconds, or ``None`` for a session cookie.
    """

    name: str = "io"
    path: str = "/"
    http_only: bool = True
    same_site: str | None = "Lax"
    secure: bool = False
    max_age: int | None = None

    def header(self, sid: str) -> str:
        """The Set-Cookie header value for ``sid``."""
        parts = [f"{self.name}={sid}", f"Path={self.path}"]
        if self.http_only:
            parts.append("HttpOnly")
        if self.same_site:
            parts.append(f"SameSite={self.same_site}")
        if self.secure:
            parts.append("Secure")
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        return "; ".join(parts)


@dataclass(frozen=True)
class EngineOptions:
    """Options of the Engine.IO server; ``docs/engine.md`` explains each one.

    Times are in seconds. Where the reference server (engine.io 6) has the same
    option, the default is its default.

    Attributes:
        path: URL path prefix the server answers (a trailing ``/`` is added).
        ping_interval: Seconds between two PINGs the server sends.
        ping_timeout: Seconds the client has to answer a PING with a PONG.
        upgrade_timeout: Seconds a WebSocket probe may take to complete the upgrade.
        max_http_buffer_size: Largest polling POST body and largest WebSocket
            message, in bytes (also sent to clients as ``maxPayload``).
        max_packets_per_payload: Most packets in one polling POST body.
        transports: The transports clients may use: ``"polling"``, ``"websocket"``.
        allow_upgrades: Whether polling sessions may upgrade to WebSocket.
        cors_allowed_origins: ``None`` (same origin only), ``"*"``, a list of
            origins, or a callable taking the ``Origin`` header and returning
            whether it is allowed. Also checked on WebSocket handshakes.
        cors_credentials: Send ``Access-Control-Allow-Credentials: true``.
        cookie: The session cookie set on handshakes, or ``None`` for none.
        allow_request: ``allow_request(request) -> bool`` (or an awaitable of it),
            asked before each handshake; ``False`` refuses it (403, code 4).
        max_buffered_packets: Most packets queued for a polling client.
        max_buffered_bytes: Most bytes queued for a client (polling queue, or
            WebSocket bytes not yet taken by the kernel or TLS).
        shutdown_timeout: Seconds a closing session may spend saying goodbye.
        session_id_generator: Makes session ids (default: 120 random bits from
            :mod:`secrets`, URL-safe base64, 20 characters).
        per_message_deflate: WebSocket compression (RFC 7692): ``False`` (the
            default, as in the reference), ``True`` for the defaults of
            :class:`PerMessageDeflate`, or an instance of it.
        http_compression: gzip/deflate of long-polling responses: ``True``
            (the default, as in the reference: bodies of 1 KiB and more, when
            the client accepts it), ``False``, or an :class:`HTTPCompression`.
    """

    path: str = "/engine.io/"
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    upgrade_timeout: float = 10.0
    max_http_buffer_size: int = 1_000_000
    max_packets_per_payload: int = 1000
    transports: tuple[str, ...] = ("polling", "websocket")
    allow_upgrades: bool = True
    cors_allowed_origins: CorsOrigins = None
    cors_credentials: bool = False
    cookie: CookieOptions | None = None
    allow_request: AllowRequest | None = None
    max_buffered_packets: int = 4096
    max_buffered_bytes: int = 4 * 1024 * 1024
    shutdown_timeout: float = 2.0
    session_id_generator: Callable[[], str] = field(default=lambda: ids.token_urlsafe(15))
    per_message_deflate: bool | PerMessageDeflate = False
    http_compression: bool | HTTPCompression = True

    @property
    def deflate(self) -> PerMessageDeflate | None:
        """The permessage-deflate options in force, or None when it is off."""
        value = self.per_message_deflate
        if value is True:
            return _DEFAULT_DEFLATE
        return value or None

    @property
    def compression(self) -> HTTPCompression | None:
        """The polling responses' compression in force, or None when it is off."""
        value = self.http_compression
        if value is True:
            return _DEFAULT_HTTP_COMPRESSION
        return value or None

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError("path must start with '/'")
        if not self.path.endswith("/"):
            object.__setattr__(self, "path", self.path + "/")
        for name in ("ping_interval", "ping_timeout", "upgrade_timeout", "shutdown_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not isinstance(self.per_message_deflate, (bool, PerMessageDeflate)):
            raise TypeError("per_message_deflate must be a bool or a PerMessageDeflate")
        if not isinstance(self.http_compression, (bool, HTTPCompression)):
            raise TypeError("http_compression must be a bool or an HTTPCompression")
        unknown = set(self.transports) - {"polling", "websocket"}
        if unknown or not self.transports:
            raise ValueError(f"transports must be 'polling' and/or 'websocket', not {unknown}")


_DEFAULT_DEFLATE = PerMessageDeflate()
_DEFAULT_HTTP_COMPRESSION = HTTPCompression()

# ------------------------------------------------------------ request policy


async def request_allowed(options: EngineOptions, request: Request) -> bool:
    """Whether ``options.allow_request`` lets this handshake through (yes without one).

    A hook that raises refuses the request (the error is logged).
    """
    hook = options.allow_request
    if hook is None:
        return True
    try:
        result = hook(request)
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        log.exception("allow_request raised; refusing the request")
        return False
    return bool(result)


def cors_headers(options: EngineOptions, request: Request) -> Headers | None:
    """CORS response headers, ``[]`` for a request without Origin, None if refused."""
    origin = request.header("origin")
    if origin is None:
        return []
    if not _origin_allowed(options, origin, request):
        return None
    allowed = options.cors_allowed_origins
    if allowed is None:
        return []  # same origin: the browser needs no CORS headers
    headers: Headers = []
    if allowed == "*" and not options.cors_credentials:
        headers.append(("access-control-allow-origin", "*"))
    else:
        headers.append(("access-control-allow-origin", origin))
        headers.append(("vary", "Origin"))
    if options.cors_credentials:
        headers.append(("access-control-allow-credentials", "true"))
    return headers


def preflight_headers(request: Request) -> Headers:
    """The headers a preflight ``OPTIONS`` adds to :func:`cors_headers`."""
    headers = [("access-control-allow-methods", "GET,HEAD,PUT,PATCH,POST,DELETE")]
    asked = request.header("access-control-request-headers")
    if asked:
        headers.append(("access-control-allow-headers", asked))
    headers.append(("content-length", "0"))
    return headers


def _origin_allowed(options: EngineOptions, origin: str, request: Request) -> bool:
    allowed = options.cors_allowed_origins
    if allowed is None:
        # Same origin only: the Origin's host[:port] must be the Host header.
        host = request.header("host")
        return host is not None and _same_host(origin, host)
    if allowed == "*":
        return True
    if callable(allowed):
        try:
            return bool(allowed(origin))
        except Exception:
            log.exception("cors_allowed_origins callable raised; refusing %r", origin)
            return False
    return origin in allowed


_DEFAULT_PORTS = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}


def _same_host(origin: str, host: str) -> bool:
    # Compares host[:port], ignoring the scheme (a TLS-terminating proxy in front
    # of us makes an https page talk to a plain-HTTP server under the same name)
    # and an explicit default port of the Origin's scheme on either side.
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.netloc:
        return False  # e.g. "null" (sandboxed frames, file: pages)
    return parts.netloc.lower().removesuffix(default) == host.lower().removesuffix(default)
