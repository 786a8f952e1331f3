"""The command line: ``triosio run module:attr`` (also ``python -m triosio``)."""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ._engine.app import App, Mountable, serve
from ._version import __version__
from ._workers.supervisor import Supervisor, WorkerSpec
from ._workers.target import TargetError, give_adapter, load, socketio_servers, with_static

log = logging.getLogger("triosio")

_DESCRIPTION = """\
Serve a Socket.IO application over HTTP/1.1 (long-polling and WebSocket).

TARGET is module:attribute, as in `chat:sio`: a triosio.Server, a triosio.App,
an EngineServer, or a function that returns one of these or an ASGI application
(served by Hypercorn). The module is imported from the current folder.
"""

_EPILOG = """\
examples:
  triosio run chat:sio                       one process on 127.0.0.1:5000
  triosio run chat:sio --static public       ... and the files of ./public at /
  triosio run chat:sio --host 0.0.0.0 --port 8000 --workers 4
                                             4 processes on one port; sticky
                                             sessions, broadcasts between them
  triosio run chat:sio --workers 4 --redis redis://127.0.0.1:6379/0
                                             ... one cluster with other machines
  triosio run chat:sio --certfile cert.pem --keyfile key.pem
                                             HTTPS and WSS

With --workers N, one process accepts the connections and hands each to the
worker that holds its session (no proxy needed); broadcasts, rooms and
fetch_sockets reach every worker, through Redis with --redis. A worker that
dies is restarted. SIGINT (Ctrl-C) or SIGTERM closes every session
(reason "server shutting down") and exits.
More: docs/deployment.md.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triosio",
        description="triosio: Socket.IO for Trio.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"triosio {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="serve an application",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("target", metavar="TARGET", help="module:attribute to serve")
    where = run.add_argument_group("where")
    where.add_argument(
        "--host", default="127.0.0.1", help="address (default 127.0.0.1; 0.0.0.0 for all)"
    )
    where.add_argument(
        "--port", type=int, default=5000, help="TCP port (default 5000; 0 picks one)"
    )
    scale = run.add_argument_group("processes")
    scale.add_argument(
        "--workers", type=_positive, default=1, metavar="N",
        help="worker processes sharing the port (default 1)",
    )  # fmt: skip
    scale.add_argument(
        "--redis", metavar="URL",
        help="join a cluster through Redis (redis://host:port/db); "
        "without it the workers of this machine form the cluster",
    )  # fmt: skip
    serving = run.add_argument_group("serving")
    serving.add_argument("--static", metavar="DIR", help="also serve the files of DIR at /")
    serving.add_argument(
        "--log-level", default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="default info",
    )  # fmt: skip
    tls = run.add_argument_group("TLS (HTTPS and WSS)")
    tls.add_argument("--certfile", metavar="PEM", help="certificate chain")
    tls.add_argument("--keyfile", metavar="PEM", help="private key (default: in --certfile)")
    tls.add_argument("--keyfile-password", metavar="TEXT", help="password of the private key")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """The ``triosio`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "run":
        parser.print_help()
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except TargetError as exc:
        print(f"triosio: error: {exc}", file=sys.stderr)
        return 2


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.certfile:
        if args.keyfile:
            raise TargetError("--keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.certfile, args.keyfile, args.keyfile_password)
    except (OSError, ssl.SSLError) as exc:
        raise TargetError(f"cannot load the certificate: {exc}") from None
    return context


def _run(args: argparse.Namespace) -> int:
    if args.workers > 1:
        if args.certfile:
            raise TargetError(
                "TLS with --workers > 1 is not supported: the acceptor routes each connection "
                "by the session id in its first request, which TLS hides. Terminate TLS in "
                "front (a load balancer, stunnel, nginx) or use --workers 1."
            )
        target = load(args.target)  # fail here, once, rather than in every worker
        if not isinstance(target, (App, Mountable)):
            raise TargetError("an ASGI application runs with --workers 1 (Hypercorn serves it)")
        spec = WorkerSpec(
            target=args.target, log_level=args.log_level, static=args.static, redis=args.redis
        )
        trio.run(_supervise, spec, args)
        return 0
    context = _tls(args)
    target = load(args.target)
    if not isinstance(target, (App, Mountable)):
        if args.static or args.redis:
            raise TargetError("--static and --redis apply to triosio applications, not ASGI ones")
        trio.run(_serve_asgi, target, args, context)
        return 0
    app = with_static(target, args.static)
    if args.redis:
        from .redis import RedisAdapter

        for server in socketio_servers(app):
            give_adapter(server, RedisAdapter(args.redis))
    trio.run(_serve_one, app, args, context)
    return 0


def _announce(args: argparse.Namespace, listeners: Sequence[Any], tls: bool) -> None:
    scheme = "https" if tls else "http"
    for listener in listeners:
        sock = getattr(listener, "transport_listener", listener).socket
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        workers = f" with {args.workers} workers" if args.workers > 1 else ""
        log.info("serving %s on %s://%s:%d%s", args.target, scheme, shown, port, workers)


async def _until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s: closing every session", signal.Signals(signum).name)
            return


async def _serve_one(app: App | Mountable, args: argparse.Namespace, context: Any) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: serve(
                app, args.host, args.port, ssl_context=context, task_status=task_status
            )
        )
        _announce(args, listeners, context is not None)
        await _until_signal()
        nursery.cancel_scope.cancel()  # serve() closes every session first


async def _supervise(spec: WorkerSpec, args: argparse.Namespace) -> None:
    listeners = await trio.open_tcp_listeners(args.port, host=args.host)
    async with trio.open_nursery() as nursery:
        # Announced once every worker has started: the port then serves.
        await nursery.start(Supervisor(spec, args.workers).run, listeners)
        _announce(args, listeners, False)


async def _serve_asgi(app: Callable[..., Any], args: argparse.Namespace, context: Any) -> None:
    try:
        from hypercorn.config import Config
        from hypercorn.trio import serve as hypercorn_serve
    except ImportError:
        raise TargetError(
            "serving an ASGI application needs Hypercorn: pip install hypercorn"
        ) from None
    import socket

    # Bound here, so that the port (0: any free one) is known and logged.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)  # (Hypercorn listens again: harmless)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    if args.certfile:
        config.certfile = args.certfile
        config.keyfile = args.keyfile
        config.keyfile_password = args.keyfile_password
    config.loglevel = args.log_level.upper()
    host, port = sock.getsockname()[:2]
    scheme = "https" if args.certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    log.info("serving %s on %s://%s:%d (ASGI, Hypercorn)", args.target, scheme, shown, port)
    await hypercorn_serve(app, config, shutdown_trigger=_until_signal)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
