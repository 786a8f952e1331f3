"""A private Redis Cluster for the tests: three ``redis-server`` masters on loopback.

Each node has its own free port and temporary directory (``cluster-enabled
yes``); ``redis-cli --cluster create`` forms the cluster (no replicas), and
:class:`RedisCluster` waits until every node reports ``cluster_state:ok``.
A node can be restarted (same port, same ``nodes.conf``): it rejoins.
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
    def __init__(self, binary: str) -> None:
        self.binary = binary
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
                "--cluster-node-timeout", "2000",
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
    """Three masters forming one cluster; ``url`` names the first node."""

    def __init__(self, server_binary: str, cli_binary: str, size: int = 3) -> None:
        self.cli = cli_binary
        self.nodes: list[RedisClusterNode] = []
        try:
            for _ in range(size):
                self.nodes.append(RedisClusterNode(server_binary))
            for node in self.nodes:
                self._wait(node, lambda out: out.startswith("PONG"), "PING")
            subprocess.run(
                [self.cli, "--cluster", "create",
                 *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
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

    def owner_of(self, channel: str) -> int:
        """The index of the node that serves ``channel``'s hash slot."""
        slot = int(self._cli(self.nodes[0], "cluster", "keyslot", channel).strip())
        for line in self._cli(self.nodes[0], "cluster", "nodes").splitlines():
            fields = line.split()
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

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
