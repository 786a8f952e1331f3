"""``triosio.connect``: the one-call way to a connected client socket."""

from __future__ import annotations

import math
import ssl as _ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from .._engine.eio_client import Connector
from .._proto.sio import Parser
from .manager import Manager, parse_url
from .socket import Auth, ClientSocket


@asynccontextmanager
async def connect(
    url: str,
    *,
    auth: Auth = None,
    ack_timeout: float | None = None,
    retries: int = 0,
    max_buffer: int = 1000,
    path: str = "/socket.io",
    transports: Sequence[str] = ("polling", "websocket"),
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    ssl: _ssl.SSLContext | None = None,
    connect_timeout: float = 20.0,
    reconnection: bool = True,
    reconnection_attempts: float = math.inf,
    reconnection_delay: float = 1.0,
    reconnection_delay_max: float = 5.0,
    randomization_factor: float = 0.5,
    random: Callable[[], float] | None = None,
    retry_connect: bool = False,
    parser: str | Parser | None = None,
    connector: Connector | None = None,
    max_message_size: int = 16 * 2**20,
) -> AsyncIterator[ClientSocket]:
    """Connect to a Socket.IO server; yield the connected socket.

    The URL's path is the namespace (``http://host:3000/chat`` -> ``/chat``;
    ``/`` when there is none). Other namespaces share the connection:
    ``client.manager.socket("/admin")``. Leaving the block disconnects cleanly
    and cancels every task of the client (handlers included).

    Example::

        async with triosio.connect("http://localhost:3000", auth={"token": "t"}) as client:

            @client.on("news")
            def news(item):
                print(item)

            print(await client.emit_with_ack("hello", "world", timeout=5))

    The socket options (``auth``, ``ack_timeout``, ``retries``, ``max_buffer``)
    are those of :meth:`Manager.socket`; the others those of :class:`Manager`.

    Raises:
        ConnectError: the connection failed, or the server refused the namespace
            (``message`` and ``data`` are the server's).
    """
    namespace = parse_url(url)[3]
    manager = Manager(
        url,
        path=path,
        transports=transports,
        query=query,
        headers=headers,
        ssl=ssl,
        connect_timeout=connect_timeout,
        reconnection=reconnection,
        reconnection_attempts=reconnection_attempts,
        reconnection_delay=reconnection_delay,
        reconnection_delay_max=reconnection_delay_max,
        randomization_factor=randomization_factor,
        random=random,
        retry_connect=retry_connect,
        parser=parser,
        connector=connector,
        max_message_size=max_message_size,
    )
    async with manager:
        socket = manager.socket(
            namespace,
            auth=auth,
            ack_timeout=ack_timeout,
            retries=retries,
            max_buffer=max_buffer,
        )
        # Events that come with the CONNECT reply wait until the block has run up
        # to its first await, so handlers registered at its top get them (as
        # handlers registered right after io() do in JavaScript).
        manager._dispatcher.pause()
        try:
            await socket.connect()
        finally:
            manager._dispatcher.resume()
        yield socket
