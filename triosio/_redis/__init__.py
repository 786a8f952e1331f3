"""The Redis adapter's private parts: how its messages travel through Redis.

The messages themselves are
:mod:`triosio._cluster`'s; the public entry point is :mod:`triosio.redis`.
"""
