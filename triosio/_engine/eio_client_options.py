"""Where and how the Engine.IO client connects: :class:`EngineClientOptions`.

The options the Socket.IO manager builds for each connection, and the request
headers they imply (cookies included: the server's ``Set-Cookie`` are kept
here and sent back, as a browser does).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from .._version import __version__
from .eio_client_http import Connector, default_connector

POLLING = "polling"
WEBSOCKET = "websocket"
TRANSPORTS = (POLLING, WEBSOCKET)


@dataclass(frozen=True, slots=True)
class EngineClientOptions:
    """Where and how to connect; built by the Socket.IO manager.

    Attributes:
        host: Host name or address (no brackets for IPv6).
        port: TCP port.
        secure: Whether to use TLS (``https`` / ``wss``).
        path: The Engine.IO path, with its trailing slash (``/socket.io/``).
        query: Extra query parameters, sent before ``EIO``/``transport``/``sid``.
        headers: Extra request headers (polling requests and the WebSocket handshake).
        transports: The transports to use: ``("polling", "websocket")`` opens with
            polling and upgrades; a single transport uses only that one.
        tls: The TLS context (``None`` for plain connections).
        connector: Opens byte streams.
        max_message_size: Largest message or polling response accepted, in bytes.
        cookies: Cookies the server set (``Set-Cookie``), sent back with every
            request; updated in place as responses arrive.
    """

    host: str
    port: int
    secure: bool = False
    path: str = "/socket.io/"
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    transports: tuple[str, ...] = TRANSPORTS
    tls: ssl.SSLContext | None = None
    connector: Connector = default_connector
    max_message_size: int = 100 * 2**20
    cookies: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the host, with its port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    def request_headers(self) -> list[tuple[str, str]]:
        """The headers of every request: Host, ours, the extra ones, the cookies."""
        headers = [
            ("Host", self.host_header),
            ("User-Agent", f"triosio/{__version__}"),
            ("Accept", "*/*"),
        ]
        headers.extend(self.headers)
        if self.cookies:
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            headers.append(("Cookie", cookie))
        return headers

    def store_cookies(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Keep the cookies a response sets (``Set-Cookie``), for the next requests."""
        for name, value in headers:
            if name.lower() == b"set-cookie":
                pair = value.decode("latin-1").split(";", 1)[0]
                key, sep, val = pair.partition("=")
                if sep and key.strip():
                    self.cookies[key.strip()] = val.strip()
