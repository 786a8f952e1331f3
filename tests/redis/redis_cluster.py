"""A private Redis Cluster for the tests: three ``redis-server`` masters on loopback.

Each node has its own free port and temporary directory (``cluster-enabled
yes``); ``redis-cli --cluster create`` forms the cluster (no replicas unless
asked: then each master gets that many), and :class:`RedisCluster` waits until
every node reports ``cluster_state:ok``. A node can be restarted (same port,
same ``nodes.conf``): it rejoins; or killed for good, so that its replica
takes over (:meth:`RedisCluster.fail_over`).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time

from cluster_peers import _stop, free_port


def _cluster_port() -> int:
    # A node also listens on port + 10000 (the cluster bus): both must be free.
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisClusterNode:
    def __init__(self, binary: str, node_timeout_ms: int = 2000) -> None:
        self.binary = binary
        self.node_timeout_ms = node_timeout_ms
        self.port = _cluster_port()
        self.dir = tempfile.TemporaryDirectory(prefix="triosio-rcluster-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", self.dir.name,
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--save", "",
                "--repl-diskless-sync-delay", "0",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
        self.dir.cleanup()


class RedisCluster:
    """Three masters forming one cluster; ``url`` names the first node."""

    def __init__(
        self,
        server_binary: str,
        cli_binary: str,
        size: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 2000,
    ) -> None:
        self.cli = cli_binary
        self.nodes: list[RedisClusterNode] = []
        self.dead: set[int] = set()
        try:
            for _ in range(size * (1 + replicas)):
                self.nodes.append(RedisClusterNode(server_binary, node_timeout_ms))
            for node in self.nodes:
                self._wait(node, lambda out: out.startswith("PONG"), "PING")
            subprocess.run(
                [self.cli, "--cluster", "create",
                 *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            self.wait_ok()
            if replicas:
                # A replica that never synced is not promoted (its data is too
                # old, cluster-replica-validity-factor): wait for every link.
                for node in self.nodes:
                    self._wait(
                        node,
                        lambda out: "role:master" in out or "master_link_status:up" in out,
                        "info",
                        "replication",
                    )
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def _cli(self, node: RedisClusterNode, *args: str) -> str:
        result = subprocess.run(
            [self.cli, "-p", str(node.port), *args], capture_output=True, timeout=5, check=False
        )
        return result.stdout.decode()

    def _wait(self, node: RedisClusterNode, ok: object, *args: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ok(self._cli(node, *args)):  # type: ignore[operator]
                    return
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis cluster node {node.port}: no {args} in time")
            time.sleep(0.05)

    def wait_ok(self, timeout: float = 20) -> None:
        """Until every live node says ``cluster_state:ok``."""
        for i, node in enumerate(self.nodes):
            if i not in self.dead:
                self._wait(
                    node, lambda out: "cluster_state:ok" in out, "cluster", "info", timeout=timeout
                )

    def owner_of(self, channel: str) -> int:
        """The index of the node that serves ``channel``'s hash slot."""
        asked = next(n for i, n in enumerate(self.nodes) if i not in self.dead)
        slot = int(self._cli(asked, "cluster", "keyslot", channel).strip())
        for line in self._cli(asked, "cluster", "nodes").splitlines():
            fields = line.split()
            if "fail" in fields[2]:
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return next(i for i, n in enumerate(self.nodes) if n.port == port)
        raise RuntimeError(f"no node serves slot {slot}")

    def restart(self, index: int) -> None:
        """Kill node ``index`` (SIGKILL) and start it again; it rejoins the cluster."""
        node = self.nodes[index]
        node.kill()
        node.start()
        self._wait(node, lambda out: out.startswith("PONG"), "PING")
        self.wait_ok()

    def fail_over(self, channel: str, timeout: float = 30) -> tuple[int, int]:
        """Kill the master of ``channel``'s slot for good (SIGKILL); wait for its
        replica to take over. Returns (the killed node, the new master)."""
        old = self.owner_of(channel)
        self.nodes[old].kill()
        self.dead.add(old)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.wait_ok(timeout=1)
                new = self.owner_of(channel)
                if new != old:
                    return old, new
            except (RuntimeError, ValueError, IndexError):
                pass  # not settled yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took {channel!r} over in time")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
