"""Random ids: cut from a pool of CSPRNG bytes, never the same bytes twice."""

from __future__ import annotations

import os
import sys

import pytest

from triosio._common import ids


def test_pooled_ids_are_distinct_across_refills() -> None:
    # 2,000 ids of 15 bytes span several 4 KiB refills of the pool.
    chunks = [ids.random_bytes(15) for _ in range(2000)]
    assert all(len(c) == 15 for c in chunks)
    assert len(set(chunks)) == len(chunks)
    assert len(ids.random_bytes(1000)) == 1000  # large requests bypass the pool


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_does_not_reuse_the_parents_pool() -> None:
    ids.random_bytes(15)  # the pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.write(write, ids.random_bytes(15))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 15)
    os.close(read)
    os.close(write)
    # Without the reset, the child's next bytes would be the parent's next ones.
    assert child != ids.random_bytes(15)
