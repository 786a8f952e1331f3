"""One worker process of ``triosio run --workers N``.

Started by the supervisor as ``python -m triosio._workers.worker CONFIG``
(JSON; ``TRIOSIO_WORKER`` in its environment is its index), with two
inherited file descriptors: its end of the connection socket pair
(:mod:`.fds`) and, unless ``--redis`` was given, its end of the local bus
(:mod:`.bus`). It serves the connections the acceptor hands it until SIGTERM
or SIGINT (then every session is closed, as ``serve`` does on cancellation)
or until the supervisor is gone.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
from functools import partial
from typing import Any

import trio

from .._cluster.node import ClusterNode
from .._engine.app import serve_handoffs
from .._engine.h11server import HTTPLimits
from . import fds
from .bus import UnixBus
from .target import (
    TargetError,
    give_adapter,
    load,
    make_sids_name,
    socketio_servers,
    with_static,
)
from .wire import worker_of

log = logging.getLogger("triosio.workers")


class _Handoff:
    """This worker's connections, from the acceptor (an ``_engine.app.Handoff``)."""

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self._channel = trio.socket.from_stdlib_socket(sock)
        self.gone = trio.Event()

    async def receive(self) -> tuple[trio.SocketStream, bytes]:
        got = await fds.receive(self._channel)
        if got is None:
            self.gone.set()
            await trio.sleep_forever()
        assert got is not None
        conn, data = got
        return trio.SocketStream(trio.socket.from_stdlib_socket(conn)), data

    def mine(self, sid: str) -> bool:
        owner = worker_of(sid)
        # A sid no worker made is unknown everywhere: answered here.
        return owner is None or owner == self.index

    async def give_back(self, stream: trio.SocketStream, data: bytes) -> None:
        try:
            await fds.send(self._channel, stream.socket, data)
        except OSError:
            pass  # the supervisor is gone: the client sees the connection close
        finally:
            stream.socket.close()


async def run_worker(config: dict[str, Any]) -> None:
    """Serve until told to stop (see the module's docstring)."""
    index = int(config["index"])
    app = with_static(load(config["target"]), config.get("static"))  # type: ignore[arg-type]
    make_sids_name(app, index)
    servers = socketio_servers(app)
    if config.get("redis"):
        from ..redis import RedisAdapter

        for server in servers:
            if server.adapter is None:
                give_adapter(server, RedisAdapter(config["redis"]))
    elif config.get("bus_fd") is not None:
        bus = socket.socket(fileno=int(config["bus_fd"]))
        needing = [s for s in servers if s.adapter is None]
        if len(needing) > 1:
            raise TargetError("several Socket.IO servers in one App need --redis with --workers")
        if needing:
            give_adapter(needing[0], ClusterNode(UnixBus(bus)))
        else:
            bus.close()
    handoff = _Handoff(index, socket.socket(fileno=int(config["handoff_fd"])))
    limits = HTTPLimits(**config.get("limits", {}))
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_handoffs, app, handoff, limits=limits))

            async def stop_on_signal() -> None:
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()

            async def stop_when_orphaned() -> None:
                await handoff.gone.wait()
                log.warning("worker %d: the supervisor is gone; stopping", index)
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            nursery.start_soon(stop_when_orphaned)
    log.debug("worker %d stopped", index)


def main(argv: list[str] | None = None) -> None:
    """Run one worker (the supervisor starts it)."""
    config = json.loads((argv or sys.argv[1:])[0])
    logging.basicConfig(
        level=config.get("log_level", "INFO").upper(),
        format=f"%(asctime)s worker {config['index']} %(levelname)s %(name)s: %(message)s",
    )
    try:
        trio.run(run_worker, config)
    except TargetError as exc:
        log.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
