"""The protocol between the servers of a cluster, whatever carries it.

It is the protocol of the JavaScript ``@socket.io/redis-adapter`` 8.3.0 (its
channels, messages and values, and what a server does with them), but nothing
here talks to Redis: a bus moves the bytes (:mod:`triosio.redis` wires the
protocol to Redis pub/sub).

- :mod:`.values`: values as the JavaScript adapters encode them (MessagePack
  in notepack's dialect, JSON as ``JSON.stringify`` writes it);
- :mod:`.channels`: channel names and ids;
- :mod:`.messages`: broadcasts, requests and responses (sans-I/O);
- :mod:`.bus`: what the protocol needs of a transport;
- :mod:`.node`: one server's part: its own broadcasts and requests, and the
  answers it collects; a complete cluster adapter once given a bus;
- :mod:`.responder`: what a server does with the others' messages.

Not to be confused with ``_server/cluster.py``, the server's side of
scale-out (the ``Adapter`` protocol and the ``ClusterPort``), which this
package uses and which never imports it.
"""
