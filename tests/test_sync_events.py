"""Events made on demand (``set_once`` / ``waitable``), as sessions and sockets keep them."""

from __future__ import annotations

import trio
import trio.testing

from triosio._common.sync import LazyEvent, set_once, waitable


async def test_set_before_anyone_waits_needs_no_event_of_its_own() -> None:
    event: LazyEvent | None = None
    event = set_once(event)
    other: LazyEvent | None = set_once(None)
    assert event is other and event.is_set()  # one shared, set instance
    with trio.testing.assert_checkpoints():
        await waitable(event).wait()  # returns at once (a checkpoint)


async def test_waiters_before_the_set_are_woken() -> None:
    holder: list[LazyEvent | None] = [None]
    woken: list[int] = []

    async def waiter(i: int) -> None:
        event = holder[0] = waitable(holder[0])
        await event.wait()
        woken.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(waiter, i)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == [] and holder[0] is not None and not holder[0].is_set()
        own = holder[0]
        holder[0] = set_once(holder[0])
        assert holder[0] is own  # the waiters' own event, now set
    assert sorted(woken) == [0, 1, 2]
    assert set_once(None) is not own
