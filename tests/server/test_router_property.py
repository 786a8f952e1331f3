"""Property: whatever is cancelled or cut, and when, the router's tables stay exact.

Clients connect, join and leave rooms (through their handlers), the server
joins sockets to rooms and broadcasts, and meanwhile clients are cut off,
cancelled, kicked or leave, at random points, with many operations in flight.
Links also freeze (nothing gets through: only heartbeats notice), pause and
resume (the client stops reading), and some clients reconnect by themselves
after a fault; clients ask for acknowledgements throughout. Afterwards the
router's room tables must be exactly what the surviving sockets should have,
every acknowledgement asked for must have been answered or failed, every gone
socket must be gone everywhere, and once every client has left no task of the
server may be left behind.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
import trio.testing
from conftest import serving, settle
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import triosio
from triosio._server.lifecycle import SocketState
from triosio.testing import MemoryConnection, MemoryNetwork

CLIENTS = 6
ROOMS = ["r0", "r1", "r2"]

client_ids = st.integers(0, CLIENTS - 1)
rooms = st.sampled_from(ROOMS)
connects = st.tuples(
    st.just("connect"),
    client_ids,
    st.sampled_from(["websocket", "polling"]),
    st.sampled_from(["once", "once", "reconnecting"]),
)
actions = st.one_of(
    connects,
    connects,
    connects,
    st.tuples(st.just("join"), client_ids, rooms),
    st.tuples(st.just("leave"), client_ids, rooms),
    st.tuples(st.just("server join"), client_ids, rooms),
    st.tuples(st.just("server leave"), client_ids, rooms),
    st.tuples(st.just("broadcast"), rooms),
    st.tuples(st.just("broadcast ack"), rooms),
    st.tuples(st.just("cut"), client_ids),
    st.tuples(st.just("cancel"), client_ids),
    st.tuples(st.just("leave namespace"), client_ids),
    st.tuples(st.just("kick"), client_ids),
    st.tuples(st.just("close"), client_ids),
    st.tuples(st.just("freeze"), client_ids),
    st.tuples(st.just("pause"), client_ids),
    st.tuples(st.just("resume"), client_ids),
    st.tuples(st.just("client ack"), client_ids),
    st.tuples(st.just("client ack"), client_ids),
    st.tuples(st.just("check")),
)
# Pause before starting the next action: often none, so that many are in flight.
pauses = st.sampled_from([0, 0, 0.001, 0.01, 0.05, 0.2, 0.5])


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def count_tasks(task: trio.lowlevel.Task) -> int:
    return 1 + sum(count_tasks(t) for n in task.child_nurseries for t in n.child_tasks)


def task_names(task: trio.lowlevel.Task) -> list[str]:
    return [task.name] + [
        name for n in task.child_nurseries for t in n.child_tasks for name in task_names(t)
    ]


class Scenario:
    def __init__(self, steps: list[tuple[tuple[Any, ...], float]]) -> None:
        self.steps = steps
        self.net = MemoryNetwork()
        self.sio = triosio.Server(ping_interval=5, ping_timeout=5)
        # socket id -> the rooms it should be in (besides its own), per its handlers.
        self.model: dict[str, set[str]] = {}
        self.sockets: dict[str, triosio.Socket] = {}
        self.by_client: dict[int, str] = {}  # client number -> its current socket id
        self.scopes: dict[int, trio.CancelScope] = {}
        self.connections: dict[int, list[MemoryConnection]] = {}
        self.leave: dict[int, trio.Event] = {}
        self.clients: dict[int, Any] = {}
        self.all_leaves: list[trio.Event] = []
        self.checks = 0
        # Acknowledgements asked for by clients, and how each ended.
        self.acks_asked = 0
        self.acks_ended: dict[str, int] = {}
        self.locks: dict[str, trio.Lock] = {}
        sio = self.sio

        @sio.on("connection")
        def connection(socket: triosio.Socket, auth: dict[str, Any]) -> None:
            self.sockets[socket.id] = socket
            self.model[socket.id] = set()
            self.by_client[auth["n"]] = socket.id

        @sio.on("join")
        async def join(socket: triosio.Socket, room: str) -> str:
            await socket.join(room)
            self.model[socket.id].add(room)
            return room

        @sio.on("leave")
        async def leave(socket: triosio.Socket, room: str) -> None:
            await socket.leave(room)
            self.model[socket.id].discard(room)

        @sio.on("echo")
        async def echo(socket: triosio.Socket, value: int) -> int:
            await trio.sleep(0.01)
            return value

        @sio.on("disconnecting")
        async def disconnecting(socket: triosio.Socket, reason: Any) -> None:
            # Broadcasts from a closing socket's handler, to its rooms.
            await socket.to(socket.rooms - {socket.id}).emit("gone", socket.id)

    async def run_client(
        self, n: int, transport: str, mode: str, done: trio.Event, scope: trio.CancelScope
    ) -> None:
        async def connector(host: str, port: int, tls: object = None) -> trio.abc.Stream:
            stream = await self.net.connect()
            self.connections.setdefault(n, []).append(stream.connection)
            return stream

        with scope:
            try:
                async with triosio.connect(
                    "http://test/",
                    auth={"n": n},
                    connector=connector,
                    transports=(transport,),
                    reconnection=mode == "reconnecting",
                    reconnection_delay=0.5,
                    reconnection_attempts=5,
                ) as client:
                    client.on("ask", lambda *args: args)
                    for room in ROOMS:
                        client.on(room, lambda *args: None)
                    self.clients[n] = client
                    await done.wait()
                    await client.disconnect()
            except (triosio.ConnectError, triosio.Disconnected):
                pass

    async def client_emit(self, n: int, event: str, room: str) -> None:
        client = self.clients.get(n)
        if client is None or not client.connected:
            return
        try:
            await client.emit(event, room)
        except triosio.TriosioError:
            pass  # it was disconnected meanwhile

    async def client_ack(self, n: int) -> None:
        client = self.clients.get(n)
        if client is None or not client.connected:
            return
        self.acks_asked += 1
        try:
            assert await client.emit_with_ack("echo", n, timeout=3) == n
            outcome = "answered"
        except triosio.AckTimeout:
            outcome = "timed out"
        except (triosio.Disconnected, triosio.BufferFull):
            outcome = "failed"
        self.acks_ended[outcome] = self.acks_ended.get(outcome, 0) + 1

    async def act(self, nursery: trio.Nursery, action: tuple[Any, ...]) -> None:
        kind = action[0]
        sio = self.sio
        if kind == "connect":
            _, n, transport, mode = action
            if n not in self.scopes or self.leave[n].is_set() or self.scopes[n].cancel_called:
                done = self.leave[n] = trio.Event()
                scope = self.scopes[n] = trio.CancelScope()
                self.all_leaves.append(done)
                nursery.start_soon(self.run_client, n, transport, mode, done, scope)
            return
        if kind == "broadcast":
            await sio.to(action[1]).emit(action[1], "news")
            return
        if kind == "check":
            # Once every task is blocked (the others' operations are either
            # done or waiting on the network or a timer), the tables are exact.
            await settle()
            self.checks += 1
            self.check_tables(final=False)
            return
        if kind == "broadcast ack":
            try:
                await sio.to(action[1]).timeout(1).emit_with_ack("ask", 1)
            except triosio.BroadcastAckTimeout:
                pass
            return
        n = action[1]
        sid = self.by_client.get(n)
        socket = self.sockets.get(sid) if sid else None
        if kind in ("join", "leave"):
            await self.client_emit(n, kind, action[2])
        elif kind in ("server join", "server leave"):
            # Server-side changes use rooms of their own ("s-..."), so that the
            # model's order of changes is the router's order.
            if socket is not None and socket.connected:
                room = "s-" + action[2]
                # One at a time per socket, so that the model changes in the
                # order the router applied the changes.
                async with self.locks.setdefault(socket.id, trio.Lock()):
                    if kind == "server join":
                        await sio.in_(socket.id).sockets_join(room)
                        self.model[socket.id].add(room)
                    else:
                        await socket.leave(room)
                        self.model[socket.id].discard(room)
        elif kind == "cut":
            for connection in self.connections.get(n, []):
                connection.cut()
        elif kind == "freeze":
            for connection in self.connections.get(n, []):
                connection.freeze()
        elif kind == "pause":
            for connection in self.connections.get(n, []):
                connection.pause_client()
        elif kind == "resume":
            for connection in self.connections.get(n, []):
                connection.resume_client()
        elif kind == "client ack":
            await self.client_ack(n)
        elif kind == "cancel":
            if n in self.scopes:
                self.scopes[n].cancel()
        elif kind == "leave namespace":
            if n in self.leave:
                self.leave[n].set()
        elif kind == "kick" and socket is not None:
            await socket.disconnect()
        elif kind == "close" and socket is not None:
            await socket.disconnect(close=True)

    async def main(self) -> None:
        errors = ErrorLog()
        logging.getLogger("triosio").addHandler(errors)
        try:
            with trio.fail_after(3600):
                await self._main()
        finally:
            logging.getLogger("triosio").removeHandler(errors)
        assert not errors.records, [r.getMessage() for r in errors.records]

    async def _main(self) -> None:
        async with trio.open_nursery() as outer:
            await outer.start(self._serve)
            baseline = count_tasks(trio.lowlevel.current_root_task())
            async with trio.open_nursery() as clients:
                async with trio.open_nursery() as actions:
                    for action, pause in self.steps:
                        actions.start_soon(self.act, clients, action)
                        if pause:
                            await trio.sleep(pause)
                            # After each step that gave the others time: once
                            # every task is blocked, the tables match the model.
                            await settle()
                            self.checks += 1
                            self.check_tables(final=False)
                # Long enough for every ping timeout to fire.
                await trio.sleep(30)
                await settle()
                self.check_tables()
                for event in self.all_leaves:
                    event.set()
            # A frozen link passes not even a close: the server notices it when
            # the HTTP connection's idle_timeout (60 s) or a heartbeat runs out.
            await trio.sleep(90)
            await settle()
            self.check_all_gone()
            # Every acknowledgement a client asked for was answered or failed.
            assert sum(self.acks_ended.values()) == self.acks_asked
            assert count_tasks(trio.lowlevel.current_root_task()) == baseline, task_names(
                trio.lowlevel.current_root_task()
            )
            outer.cancel_scope.cancel()

    async def _serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        async with serving(self.sio, self.net):
            task_status.started()
            await trio.sleep_forever()

    def check_tables(self, final: bool = True) -> None:
        router = self.sio.router
        live = {sid: s for sid, s in self.sockets.items() if s.state is SocketState.CONNECTED}
        assert set(router.sockets("/")) == set(live)
        expected = {sid: self.model[sid] | {sid} for sid in live}
        assert router.socket_rooms("/") == expected
        inverse: dict[str, set[str]] = {}
        for sid, names in expected.items():
            for room in names:
                inverse.setdefault(room, set()).add(sid)
        assert router.room_members("/") == inverse  # and so no empty room is left
        for sid, socket in self.sockets.items():
            if sid not in live:
                assert socket.state is not SocketState.CONNECTING
            if final:
                assert socket.state is SocketState.CONNECTED or socket.reason is not None
                assert len(socket.acks) == 0  # broadcast acks (1 s timeout) are over
        if final:
            for client in {s.client for s in self.sockets.values()}:
                assert not client.closer.pending
                assert all(s.connected for s in client.sockets.values())

    def check_all_gone(self) -> None:
        router = self.sio.router
        assert router.sockets("/") == {}
        assert router.room_members("/") == {}
        assert router.socket_rooms("/") == {}
        assert self.sio.engine.sessions == {}
        assert all(s.state is SocketState.DISCONNECTED for s in self.sockets.values())


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    # A failure prints its whole example; shrinking one can take many minutes.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.tuples(actions, pauses), min_size=20, max_size=80))
def test_tables_stay_exact(steps: list[tuple[tuple[Any, ...], float]]) -> None:
    scenario = Scenario(steps)
    trio.run(scenario.main, clock=trio.testing.MockClock(autojump_threshold=0))
