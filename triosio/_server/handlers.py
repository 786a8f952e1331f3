"""The sentinel given to pending acknowledgements whose socket left."""

from __future__ import annotations

from typing import Any


class _Gone:
    def __repr__(self) -> str:
        return "GONE"


#: Given to pending acknowledgement callbacks when their socket disconnects.
GONE: Any = _Gone()
