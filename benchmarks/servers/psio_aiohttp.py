"""python-socketio on aiohttp (the stock asyncio event loop), the benchmark behaviour.

python benchmarks/servers/psio_aiohttp.py --port 5000
"""

from __future__ import annotations

import argparse

from _common import parse_args
from aiohttp import web
from psio_common import build


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")


def main() -> None:
    args = parse_args(__doc__ or "", extra=_extra)
    if args.uvloop:
        import uvloop

        uvloop.install()
    sio = build("aiohttp", args.ping_interval, args.ping_timeout)
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
