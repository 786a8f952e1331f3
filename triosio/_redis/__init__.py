"""The Redis adapter's private part: Redis pub/sub as the cluster's bus.

The protocol it carries is :mod:`triosio._cluster`'s; the public entry point
is :mod:`triosio.redis`.
"""
