"""Worker processes on one port: ``triosio run --workers N`` (see ``docs/architecture.md``).

- :mod:`.wire`: sans-I/O: the bus's frames, Redis-style glob patterns, the
  worker an Engine.IO session id belongs to, the ``sid`` of a request head;
- :mod:`.fds`: passing a connection's file descriptor between processes;
- :mod:`.acceptor`: the supervisor's accept loop, which routes each connection
  to the worker holding its session (sticky sessions without a proxy);
- :mod:`.hub` and :mod:`.bus`: the cluster bus between the workers of one
  machine (a Unix socket each, pub/sub through the supervisor), the same
  :class:`~triosio._cluster.bus.Bus` as Redis's for the same cluster protocol;
- :mod:`.supervisor`: starts, watches, restarts and stops the workers;
- :mod:`.worker`: one worker process.
"""
