"""The triosio benchmark server as a ``triosio run`` target (``benchmarks/workers.py``).

cd benchmarks/servers && python -m triosio run triosio_workers:app --workers 2
"""

from __future__ import annotations

from triosio_server import build

import triosio


def app() -> triosio.Server:
    """A factory: each worker builds its own server."""
    return build(25.0, 20.0)


def app_async() -> triosio.Server:
    """The same, with ``echo`` an ``async def`` handler (a task switch per event)."""
    return build(25.0, 20.0, async_echo=True)
