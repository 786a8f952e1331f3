"""The supervisor of ``triosio run --workers N``: one port, N worker processes.

It listens on the port and runs the :class:`~.acceptor.Acceptor` (which hands
each connection to its worker) and, unless ``--redis`` was given, the local
bus's :class:`~.hub.Hub`. It starts the workers, restarts one that dies
(after 0.1 s, longer if it keeps dying at once), and on SIGTERM or SIGINT
stops accepting, asks every worker to stop (SIGTERM: each closes its sessions
and exits), and waits for them, killing any still running after ``grace``
seconds.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from . import fds
from .acceptor import Acceptor
from .hub import Hub

log = logging.getLogger("triosio.workers")


@dataclass
class WorkerSpec:
    """What every worker is told (see :mod:`.worker`)."""

    target: str
    log_level: str = "info"
    static: str | None = None
    redis: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)


class Supervisor:
    """Runs ``workers`` worker processes behind one acceptor.

    Args:
        spec: What the workers serve.
        workers: How many.
        grace: Seconds the workers have to stop before they are killed.
    """

    def __init__(self, spec: WorkerSpec, workers: int, *, grace: float = 10.0) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.spec = spec
        self.workers = workers
        self.grace = grace
        self.acceptor = Acceptor(
            workers,
            max_head_size=int(spec.limits.get("max_head_size", 16384)),
            head_timeout=float(spec.limits.get("head_timeout", 10.0)),
            idle_timeout=float(spec.limits.get("idle_timeout", 60.0)),
        )
        self.hub = None if spec.redis else Hub()
        #: The running workers' processes, by index.
        self.processes: dict[int, trio.Process] = {}
        self._stopping = False

    async def run(
        self,
        listeners: Sequence[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on ``listeners`` until SIGTERM/SIGINT or cancellation; then stop the workers."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                accepting = trio.CancelScope()
                for index in range(self.workers):
                    await nursery.start(self._keep_running, index)

                async def accept() -> None:
                    with accepting:
                        await self.acceptor.serve(list(listeners))

                nursery.start_soon(accept)
                task_status.started()
                try:
                    async for signum in signals:
                        log.info("%s: stopping the workers", signal.Signals(signum).name)
                        break
                finally:
                    with trio.CancelScope(shield=True):
                        accepting.cancel()
                        await self._stop_all()
                    nursery.cancel_scope.cancel()

    def stopping(self) -> bool:
        """Whether the workers are being stopped (none is restarted then)."""
        return self._stopping

    async def _stop_all(self) -> None:
        self._stopping = True
        for process in self.processes.values():
            _signal(process, signal.SIGTERM)
        with trio.move_on_after(self.grace):
            for process in list(self.processes.values()):
                await process.wait()
        for index, process in list(self.processes.items()):
            if process.returncode is None:
                log.warning("worker %d (pid %d) did not stop in time: killed", index, process.pid)
                _signal(process, signal.SIGKILL)
                await process.wait()

    async def _keep_running(
        self,
        index: int,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        delay = 0.1
        while not self._stopping:
            started = trio.current_time()
            returncode = await self._run_worker(index, task_status)
            task_status = trio.TASK_STATUS_IGNORED
            if self.stopping():
                break
            log.warning("worker %d exited (%s); restarting it", index, _describe(returncode))
            # A worker that dies at once (a broken app) is retried ever more slowly.
            delay = min(delay * 2, 5.0) if trio.current_time() - started < 1.0 else 0.1
            await trio.sleep(delay)

    async def _run_worker(self, index: int, task_status: trio.TaskStatus[None]) -> int:
        ours, theirs = fds.pair()
        inherited = [theirs]
        bus_ours: socket.socket | None = None
        config: dict[str, Any] = {
            "target": self.spec.target,
            "index": index,
            "log_level": self.spec.log_level,
            "static": self.spec.static,
            "redis": self.spec.redis,
            "limits": self.spec.limits,
            "handoff_fd": theirs.fileno(),
            "bus_fd": None,
        }
        if self.hub is not None:
            bus_ours, bus_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            inherited.append(bus_theirs)
            config["bus_fd"] = bus_theirs.fileno()
        try:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "triosio._workers.worker", json.dumps(config)],
                pass_fds=[s.fileno() for s in inherited],
                env={**os.environ, "TRIOSIO_WORKER": str(index)},
                # Not in the terminal's process group: Ctrl-C reaches the supervisor
                # alone, which stops the workers (a worker that stopped on its own
                # would be restarted). Orphaned, a worker stops too (see .worker).
                start_new_session=True,
            )
        finally:
            for sock in inherited:
                sock.close()
        self.processes[index] = process
        log.info("worker %d started (pid %d)", index, process.pid)
        channel = self.acceptor.attach(index, ours)
        task_status.started()
        async with trio.open_nursery() as own:
            own.start_soon(self.acceptor.serve_returns, index, channel)
            if self.hub is not None and bus_ours is not None:
                own.start_soon(self.hub.serve, f"worker {index}", bus_ours)
            try:
                returncode = await process.wait()
            finally:
                self.acceptor.detach(index)
                own.cancel_scope.cancel()
        return returncode


def _signal(process: trio.Process, signum: int) -> None:
    if process.returncode is None:
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
