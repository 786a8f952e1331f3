"""A triosio server for the client's interoperability tests.

Usage: python triosio_peer_server.py <port>   (0: any free port)
Prints "listening <port>" once it accepts connections. The triosio twin of
pysio_server.py and tests/js/client_peer_server.js (see pysio_server.py for the
behaviour all three implement); PARSER, PING_INTERVAL, PING_TIMEOUT, TLS_CERT
and TLS_KEY in the environment as there.
"""

from __future__ import annotations

import os
import ssl
import sys
from typing import Any

import trio

import triosio


def build(ping_interval: float, ping_timeout: float, parser: str) -> triosio.Server:
    sio = triosio.Server(
        parser=parser,
        cors_allowed_origins="*",
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=10_000_000,
    )
    for name in ("/", "/chat", "/private"):
        register(sio.of(name))
    return sio


def register(nsp: triosio.Namespace) -> None:
    if nsp.name == "/private":

        @nsp.use
        def token_required(socket: triosio.Socket) -> None:
            if socket.handshake.auth.get("token") != "secret":
                raise triosio.ConnectionRefused(
                    "unauthorized", data={"code": 401, "hint": "send a token"}
                )

    @nsp.on("connection")
    async def connected(socket: triosio.Socket, auth: dict[str, Any]) -> None:
        @socket.on("echo")
        def echo(*args: Any) -> tuple[Any, ...]:
            return args

        @socket.on("echo-back")
        async def echo_back(*args: Any) -> None:
            await socket.emit("echo", *args)

        @socket.on("auth")
        def get_auth() -> Any:
            return dict(socket.handshake.auth)

        @socket.on("whoami")
        def whoami() -> dict[str, str]:
            return {"sid": socket.id, "nsp": nsp.name, "eio": socket.conn.sid}

        @socket.on("ask")
        async def ask(question: Any) -> None:
            try:
                answer = await socket.emit_with_ack("question", question, timeout=5)
            except triosio.AckTimeout:
                answer = "timeout"
            await socket.emit("answer", answer)

        @socket.on("push")
        async def push(n: int) -> None:
            for i in range(n):
                await socket.emit("pushed", i)

        @socket.on("kick")
        async def kick() -> None:
            await socket.disconnect()


async def main(port: int) -> None:
    sio = build(
        float(os.environ.get("PING_INTERVAL", "25000")) / 1000,
        float(os.environ.get("PING_TIMEOUT", "20000")) / 1000,
        os.environ.get("PARSER", "json"),
    )
    tls = None
    if os.environ.get("TLS_CERT"):
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: triosio.serve(
                sio, "127.0.0.1", port, ssl_context=tls, task_status=task_status
            )
        )
        actual = (
            listeners[0].transport_listener.socket.getsockname()[1]
            if tls
            else (listeners[0].socket.getsockname()[1])
        )
        print(f"listening {actual}", flush=True)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
