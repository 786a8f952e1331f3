"""triosio.testing.deterministic: the same seed, the same run, task for task;
and a client cut right after it connected (its upgrade maybe in flight) comes
back in every one of 200 runs, each with its own scheduling order."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

import triosio
import triosio.testing


async def chatty_scenario(log: list[Any]) -> None:
    """Three clients, a room, broadcasts and a cut: one log for everything."""
    sio = triosio.Server()

    @sio.on("connection")
    async def connected(socket: triosio.Socket, auth: dict[str, Any]) -> None:
        log.append((trio.current_time(), "server connect", auth["name"], socket.id))
        await socket.join("room")

        @socket.on("say")
        async def say(text: str) -> None:
            await sio.to("room").emit("said", auth["name"], text)

    async with triosio.testing.serve_memory(sio) as server:
        clients = []
        for name in ("ann", "bob", "cy"):
            client = await server.client(auth={"name": name}, reconnection_delay=1)
            client.on("said", lambda *args, n=name: log.append((trio.current_time(), n, *args)))
            clients.append(client)
        # All at once: their order is the scheduler's choice.
        async with trio.open_nursery() as nursery:
            for client, text in zip(clients, ("one", "two", "three"), strict=True):
                nursery.start_soon(client.emit, "say", text)
        server.link(clients[1]).cut()
        await trio.sleep(5)
        await clients[1].emit("say", "back")
        await trio.sleep(1)
        log.append(("ids", tuple(c.id for c in clients)))


def run_scenario(seed: int | None) -> list[Any]:
    log: list[Any] = []
    clock = trio.testing.MockClock(autojump_threshold=0)
    if seed is None:
        trio.run(chatty_scenario, log, clock=clock)
    else:
        with triosio.testing.deterministic(seed):
            trio.run(chatty_scenario, log, clock=trio.testing.MockClock(autojump_threshold=0))
    return log


def test_the_same_seed_gives_the_same_run() -> None:
    first = run_scenario(7)
    assert len(first) > 10
    for _ in range(5):
        assert run_scenario(7) == first


def test_another_seed_gives_other_ids_and_without_one_ids_are_random() -> None:
    ids = {run_scenario(seed)[-1] for seed in range(5)}
    assert len(ids) == 5
    unseeded = {run_scenario(None)[-1] for _ in range(3)}
    assert len(unseeded) == 3


def test_the_context_restores_what_it_changed() -> None:
    from trio._core import _run

    from triosio._common import ids

    state, source = _run._r.getstate(), ids.random_bytes
    with triosio.testing.deterministic(3):
        assert ids.random_bytes is not source
    assert _run._r.getstate() == state and ids.random_bytes is source


async def cut_right_after_connecting() -> None:
    sio = triosio.Server()
    async with triosio.testing.serve_memory(sio) as server:
        ann = await server.client(reconnection_delay=1, randomization_factor=0)
        reconnected = trio.Event()
        ann.on("connect", reconnected.set)
        server.link(ann).cut()  # the polling-to-WebSocket upgrade may be in flight
        with trio.fail_after(60):
            await reconnected.wait()
        assert ann.connected


def test_a_cut_right_after_connecting_comes_back_in_200_runs_of_200() -> None:
    for seed in range(200):
        with triosio.testing.deterministic(seed):
            trio.run(cut_right_after_connecting, clock=trio.testing.MockClock(autojump_threshold=0))
