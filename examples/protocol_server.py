"""The server the official protocol test suites run against, in one process.

Run it with ``python examples/protocol_server.py [--host 127.0.0.1] [--port 3000]``,
then point the test suites of the protocol documents at it:

- https://github.com/socketio/socket.io/tree/main/docs/engine.io-protocol/v4-test-suite
  talks to ``/engine.io/``: an Engine.IO echo app (every message sent back
  unchanged, text as text, binary as binary).
- https://github.com/socketio/socket.io/tree/main/docs/socket.io-protocol/v5-test-suite
  talks to ``/socket.io/``: namespaces ``/`` and ``/custom``; on connect the
  server emits ``auth`` with the client's CONNECT payload (``{}`` without one);
  ``message`` is answered with ``message-back`` and the same arguments, and
  ``message-with-ack`` is acknowledged with the same arguments.

Both use the suites' settings: ``pingInterval`` 300 ms, ``pingTimeout`` 200 ms,
``maxPayload`` 1,000,000 bytes, CORS open to every origin.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import trio

import triosio

SETTINGS: dict[str, Any] = {
    "ping_interval": 0.3,
    "ping_timeout": 0.2,
    "max_http_buffer_size": 1_000_000,
    "cors_allowed_origins": "*",
}


class Echo:
    """An Engine.IO application that sends every message back as it came."""

    async def on_open(self, session: triosio.EngineSession) -> None:
        """Nothing to do: the client speaks first."""

    async def on_message(self, session: triosio.EngineSession, data: str | bytes) -> None:
        """Echo ``data`` (waits only if this client's queue is full)."""
        await session.send(data)

    async def on_close(
        self, session: triosio.EngineSession, reason: triosio.DisconnectReason
    ) -> None:
        """Nothing to clean up."""


def socketio_server(recovery: bool = False) -> triosio.Server:
    """The Socket.IO server of the v5 test suite (``recovery``: with connection
    state recovery on, to compare with the reference server's results)."""
    options: dict[str, Any] = dict(SETTINGS)
    if recovery:
        options["connection_state_recovery"] = triosio.ConnectionStateRecovery()
    sio = triosio.Server(**options)

    async def connection(socket: triosio.Socket, auth: Any) -> None:
        # Right after the CONNECT reply: what the client sent in its CONNECT.
        await socket.emit("auth", auth if auth is not None else {})

        async def message(*args: Any) -> None:
            await socket.emit("message-back", *args)

        async def message_with_ack(*args: Any) -> tuple[Any, ...]:
            return args  # a tuple: one acknowledgement argument per item

        socket.on("message", message)
        socket.on("message-with-ack", message_with_ack)

    sio.on("connection", connection)
    sio.of("/custom").on("connection", connection)
    return sio


def app(recovery: bool = False) -> triosio.App:
    """Both servers, mounted at their paths in one HTTP application."""
    engine = triosio.EngineServer(Echo(), path="/engine.io/", **SETTINGS)
    return triosio.App(engine, socketio_server(recovery))


async def main(host: str, port: int, recovery: bool = False) -> None:
    """Serve until interrupted."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(triosio.serve, app(recovery), host, port)
        bound = listeners[0].socket.getsockname()[1]
        print(f"protocol test server on http://{host}:{bound}/", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--verbose", action="store_true", help="log every session")
    parser.add_argument(
        "--recovery", action="store_true", help="connection state recovery on (Socket.IO)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        trio.run(main, args.host, args.port, args.recovery)
    except KeyboardInterrupt:
        pass
