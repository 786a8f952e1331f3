"""Where triosio's random ids come from: one place, so tests can seed it.

Session ids, socket ids, private ids and the like are unguessable in
production (``secrets``). ``triosio.testing.deterministic(seed)`` swaps the
source for a seeded one, so that a test's ids — and a log that prints them —
are the same on every run.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

#: Returns ``n`` random bytes. Replaced only by ``triosio.testing``.
random_bytes: Callable[[int], bytes] = secrets.token_bytes


def token_urlsafe(n: int) -> str:
    """``n`` random bytes as URL-safe base64 without padding (like ``secrets``)."""
    return base64.urlsafe_b64encode(random_bytes(n)).rstrip(b"=").decode("ascii")


def token_hex(n: int) -> str:
    """``n`` random bytes as hex."""
    return random_bytes(n).hex()
