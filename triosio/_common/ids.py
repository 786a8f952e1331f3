"""Where triosio's random ids come from: one place, so tests can seed it.

Session ids, socket ids, private ids and the like are unguessable in
production (``secrets``). ``triosio.testing.deterministic(seed)`` swaps the
source for a seeded one, so that a test's ids — and a log that prints them —
are the same on every run.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable

# Ids are cut from a pool of bytes read from the OS's CSPRNG 4 KiB at a time
# (as engine.io's base64id does): one system call per ~270 session ids, not
# one per id (os.urandom per id was 5 % of the CPU of a WebSocket connection).
# A forked child (``triosio run --workers N``) starts with an empty pool, so
# no two processes hand out the same bytes.
_POOL_SIZE = 4096
_pool = b""
_used = 0
_lock = threading.Lock()


def _pooled_bytes(n: int) -> bytes:
    global _pool, _used
    if n > 256:
        return os.urandom(n)
    with _lock:
        end = _used + n
        if end > len(_pool):
            _pool = os.urandom(_POOL_SIZE)
            end = n
        chunk = _pool[end - n : end]
        _used = end
    return chunk


def _forget_pool() -> None:
    global _pool, _used
    _pool = b""
    _used = 0


os.register_at_fork(after_in_child=_forget_pool)

#: Returns ``n`` random bytes (from the OS's CSPRNG). Replaced only by
#: ``triosio.testing``.
random_bytes: Callable[[int], bytes] = _pooled_bytes


def token_urlsafe(n: int) -> str:
    """``n`` random bytes as URL-safe base64 without padding (like ``secrets``)."""
    return base64.urlsafe_b64encode(random_bytes(n)).rstrip(b"=").decode("ascii")


def token_hex(n: int) -> str:
    """``n`` random bytes as hex."""
    return random_bytes(n).hex()
