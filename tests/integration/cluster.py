"""A private three-node RabbitMQ cluster on this machine, for the cluster test (test_cluster.py).

Each node is `rabbitmq-server` with its own node name (wcN-<token>@localhost), AMQP and
distribution ports, data and log directories under one temporary directory; the nodes share an
Erlang cookie through HOME; no plugin (no management port); the machine's own broker (5672, node
`rabbit@localhost`, /etc/rabbitmq) is never read or touched: RABBITMQ_CONF_ENV_FILE and
RABBITMQ_CONFIG_FILE point at files of our own. What was tried by hand, and works (RabbitMQ 3.10):

    HOME=$D RABBITMQ_CONF_ENV_FILE=$D/env.conf RABBITMQ_CONFIG_FILE=$D/n1.conf \\
      RABBITMQ_ENABLED_PLUGINS_FILE=$D/enabled_plugins RABBITMQ_NODENAME=wc1@localhost \\
      RABBITMQ_NODE_PORT=… RABBITMQ_DIST_PORT=… RABBITMQ_MNESIA_BASE=$D/n1/mnesia \\
      RABBITMQ_LOG_BASE=$D/n1/log /usr/lib/rabbitmq/bin/rabbitmq-server        # ×3
    rabbitmqctl -n wc2@localhost stop_app; … join_cluster wc1@localhost; … start_app
    rabbitmqctl -n wc1@localhost -q list_queues name leader                  # who leads a queue
    rabbitmqctl -n wc1@localhost stop                                        # a node goes

(/usr/sbin/rabbitmq-server, run as root, switches to the rabbitmq user, who cannot write our
directories: the scripts in /usr/lib/rabbitmq/bin are run directly. The distribution port must
not be the main node's, 25672 = 5672 + 20000: every port is chosen free. The nodes register with
the machine's epmd; if none runs, the first node starts one, which outlives the test, as epmd does.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.processes import free_port

SBIN = Path("/usr/lib/rabbitmq/bin")


def rabbitmq_script(name: str) -> str | None:
    """The script itself (not Debian's wrapper in /usr/sbin, which switches user)."""
    direct = SBIN / name
    if direct.exists():
        return str(direct)
    return shutil.which(name)


@dataclass
class Node:
    name: str
    amqp_port: int
    dist_port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    up: bool = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"


class Cluster:
    """Start with `start()`; `close()` stops every node and removes the directory, whatever state
    the nodes are in (used by a fixture's teardown, so it runs after a failed test too)."""

    def __init__(self, base: Path, size: int = 3) -> None:
        server, ctl = rabbitmq_script("rabbitmq-server"), rabbitmq_script("rabbitmqctl")
        if server is None or ctl is None:
            raise FileNotFoundError("rabbitmq-server / rabbitmqctl not installed")
        self.server, self.ctl_path = server, ctl
        self.base = base
        tag = secrets.token_hex(3)
        self.nodes = [
            Node(f"wc{i}-{tag}@localhost", free_port(), free_port(), base / f"n{i}")
            for i in range(1, size + 1)
        ]

    def _env(self, node: Node | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "HOME": str(self.base),  # .erlang.cookie: shared by the nodes and the CLI
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        if node is not None:
            env |= {
                "RABBITMQ_NODENAME": node.name,
                "RABBITMQ_NODE_PORT": str(node.amqp_port),
                "RABBITMQ_DIST_PORT": str(node.dist_port),
                "RABBITMQ_CONFIG_FILE": str(node.home / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.home / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(node.home / "mnesia"),
                "RABBITMQ_LOG_BASE": str(node.home / "log"),
                "RABBITMQ_PID_FILE": str(node.home / "pid"),
            }
        return env

    def ctl(self, node: Node, *args: str, timeout: float = 60.0) -> str:
        out = subprocess.run(
            [self.ctl_path, "-n", node.name, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)}: {out.stderr.strip()[-800:]}")
        return out.stdout

    def start(self, within_s: float = 120.0) -> Cluster:
        self.base.mkdir(parents=True, exist_ok=True)
        cookie = self.base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20).upper())
        cookie.chmod(0o400)
        (self.base / "env.conf").write_text("")
        (self.base / "enabled_plugins").write_text("[].\n")
        for node in self.nodes:
            (node.home / "log").mkdir(parents=True)
            (node.home / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}\n")
            with (node.home / "stdout.log").open("wb") as log:
                node.proc = subprocess.Popen(
                    [self.server],
                    env=self._env(node),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killed as one in close()
                    cwd=str(node.home),
                )
        for node in self.nodes:
            self._await_startup(node, within_s)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        running = self.ctl(first, "-q", "cluster_status", "--formatter", "json")
        for node in self.nodes:
            assert node.name in running, f"{node.name} not in the cluster: {running}"
        return self

    def _await_startup(self, node: Node, within_s: float) -> None:
        # await_startup fails at once while the node has not registered with epmd yet: retried
        deadline = time.monotonic() + within_s
        while True:
            assert node.proc is not None
            if node.proc.poll() is not None:
                raise RuntimeError(f"{node.name} exited at start; see {node.home}/stdout.log")
            try:
                self.ctl(node, "await_startup", "--timeout", "30", timeout=40)
                node.up = True
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.up]

    def leader_of(self, queue: str) -> Node:
        """The node leading a quorum queue now, as the cluster reports it."""
        out = self.ctl(self.alive()[0], "-q", "list_queues", "name", "leader")
        for line in out.splitlines():
            name, _, leader = line.partition("\t")
            if name == queue:
                return next(n for n in self.nodes if n.name == leader.strip())
        raise AssertionError(f"{queue} not listed: {out}")

    def stop(self, node: Node) -> None:
        """A graceful stop of the whole node (the Erlang VM exits), as an operator's `rabbitmqctl stop`."""
        self.ctl(node, "stop", timeout=120)
        node.up = False
        if node.proc is not None:
            node.proc.wait(timeout=60)

    def close(self) -> None:
        for node in self.nodes:
            if node.up:
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self.ctl(node, "stop", timeout=60)
                node.up = False
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGKILL)
                node.proc.wait(timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)
