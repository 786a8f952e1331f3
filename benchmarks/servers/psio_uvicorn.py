"""python-socketio as an ASGI app on uvicorn, the benchmark behaviour.

uvicorn runs with what `uvicorn[standard]` brings, which is how it is usually deployed:
the uvloop event loop, httptools, and the websockets library through uvicorn's
`websockets-sansio` protocol (the future default, and the fastest of uvicorn's three
websocket implementations with python-socketio on this machine: `--ws` picks another).

    python benchmarks/servers/psio_uvicorn.py --port 5000
"""

from __future__ import annotations

import argparse

import socketio  # type: ignore[import-untyped]
import uvicorn
from _common import parse_args
from psio_common import build


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ws", default="websockets-sansio", choices=["websockets", "websockets-sansio", "wsproto"]
    )


def main() -> None:
    args = parse_args(__doc__ or "", extra=_extra)
    sio = build("asgi", args.ping_interval, args.ping_timeout)
    app = socketio.ASGIApp(sio, socketio_path="socket.io")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws=args.ws,
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
