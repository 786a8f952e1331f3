"""A private Redis Cluster for the tests: three ``redis-server`` masters on loopback.

Each node has its own free port and temporary directory (``cluster-enabled
yes``); ``redis-cli --cluster create`` forms the cluster (no replicas unless
asked), and :class:`RedisCluster` waits until every node reports
``cluster_state:ok``. A node can be restarted (same port, same ``nodes.conf``):
it rejoins; or, with replicas, a master killed for good and its replica
promoted (:meth:`RedisCluster.fail_over`).
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
                # A replica takes over however long ago it last heard its master.
                "--cluster-replica-validity-factor", "0",
                "--save", "",
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
    """Three masters (``replicas`` each) forming one cluster; ``url`` names the first node."""

    def __init__(
        self,
        server_binary: str,
        cli_binary: str,
        size: int = 3,
        *,
        replicas: int = 0,
        node_timeout_ms: int = 2000,
    ) -> None:
        self.cli = cli_binary
        self.nodes: list[RedisClusterNode] = []
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

    def wait_ok(self) -> None:
        """Until every node says ``cluster_state:ok``."""
        for node in self.nodes:
            self._wait(node, lambda out: "cluster_state:ok" in out, "cluster", "info")

    def url_of(self, index: int) -> str:
        return f"redis://127.0.0.1:{self.nodes[index].port}"

    def alive(self) -> list[int]:
        """The indexes of the nodes still running."""
        return [i for i, n in enumerate(self.nodes) if n.proc is not None and n.proc.poll() is None]

    def masters(self) -> list[int]:
        """The indexes of the nodes that are masters serving slots (as a live node sees it)."""
        ask = self.nodes[self.alive()[0]]
        found = []
        for line in self._cli(ask, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
                port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                found.append(next(i for i, n in enumerate(self.nodes) if n.port == port))
        return sorted(found)

    def owner_of(self, channel: str) -> int:
        """The index of the node that serves ``channel``'s hash slot."""
        ask = self.nodes[self.alive()[0]]
        slot = int(self._cli(ask, "cluster", "keyslot", channel).strip())
        for line in self._cli(ask, "cluster", "nodes").splitlines():
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

    def fail_over(self, index: int, timeout: float = 20) -> int:
        """Kill master ``index`` (SIGKILL) for good; wait for its replica to serve its slots.

        Returns the index of the promoted replica.
        """
        lost = self.nodes[index]
        lost_id = self._cli(lost, "cluster", "myid").strip()
        replicas = [
            i
            for i, node in enumerate(self.nodes)
            if i != index
            and any(
                "myself,slave" in line and lost_id in line
                for line in self._cli(node, "cluster", "nodes").splitlines()
            )
        ]
        assert replicas, f"node {lost.port} has no replica"
        lost.kill()
        deadline = time.monotonic() + timeout
        while True:
            promoted = [
                i
                for i in replicas
                if "myself,master" in self._cli(self.nodes[i], "cluster", "nodes")
            ]
            if promoted and all(
                "cluster_state:ok" in self._cli(self.nodes[i], "cluster", "info")
                for i in self.alive()
            ):
                return promoted[0]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica of {lost.port} took over in {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
