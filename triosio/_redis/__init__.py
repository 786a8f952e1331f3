"""The Redis adapter's private parts: the wire format (sans-I/O) and the Redis link.

The public entry point is :mod:`triosio.redis`.
"""
