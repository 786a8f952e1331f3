"""The protocol between the servers of a cluster, whatever carries it.

It is the protocol of the JavaScript ``@socket.io/redis-adapter`` 8.3.0 (its
channels, messages and values), but nothing here talks to Redis: a bus moves
the bytes (:mod:`triosio.redis` wires it to Redis pub/sub).

- :mod:`.values`: values as the JavaScript adapters encode them (MessagePack
  in notepack's dialect, JSON as ``JSON.stringify`` writes it);
- :mod:`.channels`: channel names and ids;
- :mod:`.messages`: broadcasts, requests and responses (sans-I/O);

Not to be confused with ``_server/cluster.py``, the server's side of
scale-out (the ``Adapter`` protocol and the ``ClusterPort``), which this
package uses and which never imports it.
"""
