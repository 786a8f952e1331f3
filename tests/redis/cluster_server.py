"""A triosio server with the Redis adapter, driven by the cluster tests.

    python tests/redis/cluster_server.py --redis redis://127.0.0.1:PORT/0 --name A
        [--adapter pubsub|streams|sharded] [--stream-count N] [--mode static|dynamic|...]

Prints one JSON line ``{"port": N}`` once it serves (on 127.0.0.1, a free port).
Also served as two workers of one port: ``python -m triosio run
cluster_server:workers_app --workers 2 [--redis URL]`` (:func:`workers_app`).
Its twin in Node is ``tests/js/redis_node_server.js``; both answer the same
control protocol on namespace ``/admin``: the event ``op`` with one object,
acknowledged with ``{"ok": result}`` or ``{"error": message, ...}``. Ops:

- ``emit`` ``{nsp, rooms, except, event, args, volatile, local}``
- ``emitWithAck`` ``{..., timeout}`` (ms): the responses, or an error with them
- ``fetchSockets`` ``{nsp, rooms, except, local}``: ``[{id, rooms, data, remote}]``
- ``socketsJoin`` / ``socketsLeave`` ``{nsp, rooms, except, change}``
- ``disconnectSockets`` ``{nsp, rooms, except, close}``
- ``serverSideEmit`` ``{nsp, event, args}``; ``serverSideEmitWithAck`` ``{..., timeout}``
- ``received`` ``{tag}``: the server-side events received whose first argument
  has that ``tag``: ``[[event, args], ...]``
- ``allRooms`` ``{nsp}``, ``serverCount`` ``{nsp}``
- ``remote`` ``{nsp, sid, action, event, args, rooms, close}``: through the
  socket view ``fetchSockets`` returns for ``sid`` (``emit``, ``join``,
  ``leave``, ``disconnect``)

Clients of ``/`` and ``/chat`` join the rooms listed in their ``auth.rooms``;
``socket.data`` is ``{name, test}`` from their auth. Server-side event ``sse``
is recorded and acknowledged with ``{"from": name, "args": args}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import trio

import triosio
from triosio.redis import RedisAdapter, RedisStreamsAdapter, ShardedRedisAdapter


def build(
    name: str,
    url: str | None,
    key: str,
    timeout: float,
    kind: str = "pubsub",
    stream_count: int = 1,
    mode: str = "dynamic",
) -> triosio.Server:
    adapter: RedisAdapter | RedisStreamsAdapter | ShardedRedisAdapter | None = None
    if url and kind == "sharded":
        adapter = ShardedRedisAdapter(
            url, channel_prefix=key, subscription_mode=mode, requests_timeout=timeout
        )
    elif url and kind == "streams":
        adapter = RedisStreamsAdapter(
            url,
            stream_name=key,
            channel_prefix=key,
            stream_count=stream_count,
            requests_timeout=timeout,
        )
    elif url:
        adapter = RedisAdapter(url, key_prefix=key, requests_timeout=timeout)
    sio = triosio.Server(
        adapter=adapter,
        ping_interval=5,
        ping_timeout=5,
    )
    received: list[list[Any]] = []

    async def connected(socket: triosio.Socket, auth: dict[str, Any] | None) -> None:
        auth = auth or {}
        socket.data.update({"name": auth.get("name"), "test": auth.get("test")})
        rooms = auth.get("rooms") or []
        if rooms:
            await socket.join(rooms)

    for nsp in ("/", "/chat"):
        sio.of(nsp).on("connection", connected)

        def sse(*args: Any, nsp: str = nsp) -> dict[str, Any]:
            received.append(["sse", list(args), nsp])
            return {"from": name, "args": list(args)}

        sio.of(nsp).on_server_side("sse", sse)

    def select(op: dict[str, Any]) -> triosio.BroadcastOperator:
        target = sio.of(op.get("nsp") or "/").to(op.get("rooms") or [])
        target = target.except_(op.get("except") or [])
        if op.get("volatile"):
            target = target.volatile
        if op.get("local"):
            target = target.local
        return target

    def describe(socket: triosio.Socket | triosio.RemoteSocket) -> dict[str, Any]:
        return {
            "id": socket.id,
            "rooms": sorted(socket.rooms),
            "data": socket.data,
            "auth": dict(socket.handshake.auth),
            "remote": isinstance(socket, triosio.RemoteSocket),
        }

    async def run(op: dict[str, Any]) -> Any:
        kind = op["op"]
        nsp = sio.of(op.get("nsp") or "/")
        if kind == "emit":
            await select(op).emit(op["event"], *op.get("args", []))
            return None
        if kind == "emitWithAck":
            return await select(op).emit_with_ack(
                op["event"], *op.get("args", []), timeout=op["timeout"] / 1000
            )
        if kind == "fetchSockets":
            return [describe(s) for s in await select(op).fetch_sockets()]
        if kind == "socketsJoin":
            await select(op).sockets_join(op["change"])
            return None
        if kind == "socketsLeave":
            await select(op).sockets_leave(op["change"])
            return None
        if kind == "disconnectSockets":
            await select(op).disconnect_sockets(bool(op.get("close")))
            return None
        if kind == "serverSideEmit":
            await nsp.server_side_emit(op["event"], *op.get("args", []))
            return None
        if kind == "serverSideEmitWithAck":
            return await nsp.server_side_emit_with_ack(
                op["event"], *op.get("args", []), timeout=op["timeout"] / 1000
            )
        if kind == "received":
            tag = op.get("tag")
            return [
                r
                for r in received
                if r[1] and isinstance(r[1][0], dict) and r[1][0].get("tag") == tag
            ]
        if kind == "allRooms":
            return sorted(await nsp.adapter.all_rooms())
        if kind == "serverCount":
            return await nsp.adapter.server_count()
        if kind == "remote":
            found = [s for s in await nsp.fetch_sockets() if s.id == op["sid"]]
            if not found:
                raise LookupError(f"no socket {op['sid']}")
            target = found[0]
            action = op["action"]
            if action == "emit":
                await target.emit(op["event"], *op.get("args", []))
            elif action == "join":
                await target.join(op["rooms"])
            elif action == "leave":
                await target.leave(op["rooms"])
            elif action == "disconnect":
                await target.disconnect(bool(op.get("close")))
            return {"remote": isinstance(target, triosio.RemoteSocket)}
        raise ValueError(f"unknown op {kind!r}")

    @sio.of("/admin").on("connection")
    async def admin(socket: triosio.Socket, auth: Any) -> None:
        @socket.on("op")
        async def on_op(op: dict[str, Any]) -> dict[str, Any]:
            try:
                return {"ok": await run(op)}
            except triosio.BroadcastAckTimeout as exc:
                return {"error": str(exc), "responses": exc.responses}
            except Exception as exc:
                return {"error": f"{type(exc).__name__}: {exc}"}

    return sio


def workers_app() -> triosio.Server:
    """The same server for ``triosio run cluster_server:workers_app --workers 2``.

    Worker 0 is "A", worker 1 "B"; the command line gives the adapter (Redis
    with ``--redis``, else the bus between the workers).
    """
    name = "AB"[int(os.environ.get("TRIOSIO_WORKER", "0")) % 2]
    return build(name, None, "socket.io", 5.0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--key", default="socket.io")
    parser.add_argument("--requests-timeout", type=float, default=5.0)
    parser.add_argument("--adapter", choices=("pubsub", "streams", "sharded"), default="pubsub")
    parser.add_argument("--stream-count", type=int, default=1)
    parser.add_argument("--mode", default="dynamic")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    sio = build(
        args.name,
        args.redis,
        args.key,
        args.requests_timeout,
        args.adapter,
        args.stream_count,
        args.mode,
    )
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(triosio.serve, sio, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        print(json.dumps({"port": port}), flush=True)


if __name__ == "__main__":
    trio.run(main)
