"""A python-socketio server (AsyncServer on aiohttp) for triosio's client tests.

Usage: python pysio_server.py <port>   (0: any free port)
Prints "listening <port>" on stdout once it accepts connections. PARSER=msgpack
in the environment selects the msgpack serializer; TLS_CERT and TLS_KEY (PEM
paths) serve HTTPS. The twin of
tests/js/client_peer_server.js; the behaviour both implement:

    "/" and "/chat"       accept everyone; "/private" needs auth {"token": "secret"},
                          otherwise CONNECT_ERROR {message: "unauthorized", data: {...}}
    "echo" (*args)        acknowledges with the args
    "echo-back" (*args)   emits "echo" with the args
    "auth"                acknowledges with the auth the client sent on this connection
    "whoami"              acknowledges with {sid, nsp, eio} (eio: the Engine.IO session id)
    "ask" (question)      emits "question" with an ack request to the client, then
                          emits "answer" with what the client acknowledged
    "push" (n)            emits n events "pushed" (0..n-1)
    "kick"                disconnects this socket ("io server disconnect")
    "noack"               no handler: never acknowledged
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from typing import Any

import socketio
from aiohttp import web


def build(ping_interval: float, ping_timeout: float, parser: str) -> web.Application:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        serializer="msgpack" if parser == "msgpack" else "default",
        cors_allowed_origins="*",
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=10_000_000,
    )
    app = web.Application()
    sio.attach(app)

    for nsp in ("/", "/chat", "/private"):
        register(sio, nsp)
    return app


def register(sio: socketio.AsyncServer, nsp: str) -> None:
    @sio.on("connect", namespace=nsp)
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if nsp == "/private" and not (isinstance(auth, dict) and auth.get("token") == "secret"):
            raise socketio.exceptions.ConnectionRefusedError(
                "unauthorized", {"code": 401, "hint": "send a token"}
            )
        await sio.save_session(sid, {"auth": auth}, namespace=nsp)

    @sio.on("echo", namespace=nsp)
    async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    @sio.on("echo-back", namespace=nsp)
    async def echo_back(sid: str, *args: Any) -> None:
        await sio.emit("echo", args if len(args) != 1 else args[0], to=sid, namespace=nsp)

    @sio.on("auth", namespace=nsp)
    async def auth(sid: str) -> Any:
        session = await sio.get_session(sid, namespace=nsp)
        return session["auth"]

    @sio.on("whoami", namespace=nsp)
    async def whoami(sid: str) -> dict[str, str]:
        return {"sid": sid, "nsp": nsp, "eio": sio.manager.eio_sid_from_sid(sid, nsp)}

    @sio.on("ask", namespace=nsp)
    async def ask(sid: str, question: Any) -> None:
        try:
            answer = await sio.call("question", question, to=sid, namespace=nsp, timeout=5)
        except socketio.exceptions.TimeoutError:
            answer = "timeout"
        await sio.emit("answer", answer, to=sid, namespace=nsp)

    @sio.on("push", namespace=nsp)
    async def push(sid: str, n: int) -> None:
        for i in range(n):
            await sio.emit("pushed", i, to=sid, namespace=nsp)

    @sio.on("kick", namespace=nsp)
    async def kick(sid: str) -> None:
        await sio.disconnect(sid, namespace=nsp)


async def main(port: int) -> None:
    ping_interval = float(os.environ.get("PING_INTERVAL", "25000")) / 1000
    ping_timeout = float(os.environ.get("PING_TIMEOUT", "20000")) / 1000
    app = build(ping_interval, ping_timeout, os.environ.get("PARSER", "json"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tls = None
    if os.environ.get("TLS_CERT"):
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls)
    await site.start()
    server = site._server
    assert server is not None
    actual = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"listening {actual}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
