"""A second "host" on this machine, and a network partition between it and this one.

A Linux network namespace with a veth pair is a machine of its own as far as TCP is concerned:
its own interfaces and addresses. A process started in it (``ip netns exec``) reaches Redis and
PostgreSQL on this host only through the pair, by way of small TCP relays listening on the
host's end; so cutting the pair cuts it off from both, and nothing else. The cut is what a real
partition does: nftables drops every packet in both directions (no reset, no error: the peer's
packets simply never arrive), until the rule is deleted.

Needs root, ``ip`` (iproute2) and ``nft`` (nftables); tests/tools.py skips with a hint elsewhere
and fails in CI.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import threading
from collections.abc import Iterator
from types import TracebackType

from tests.tools import missing, require_binary

#: The rule set a cut loads into the namespace: drop everything but its own loopback.
CUT_RULES = """table inet tasklab_partition {
  chain in { type filter hook input priority 0; policy drop; iifname "lo" accept; }
  chain out { type filter hook output priority 0; policy drop; oifname "lo" accept; }
}
"""
RELAY_BUFFER_BYTES = 65536


def require_partition_tools() -> None:
    """Skip (or, in CI, fail) unless network namespaces and nftables are available here."""
    require_binary("ip", "iproute2 (apt-get install iproute2)")
    require_binary("nft", "nftables (apt-get install nftables)")
    if os.geteuid() != 0:
        missing("root (network namespaces and nftables)", "run the partition tests as root, as CI does")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Relay:
    """Forwards TCP connections from ``listen_host`` (a port of its own) to ``127.0.0.1:target_port``."""

    def __init__(self, listen_host: str, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server((listen_host, 0))
        self.port: int = self.server.getsockname()[1]
        self._closing = False
        threading.Thread(target=self._accept, daemon=True, name=f"relay-{self.port}").start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(RELAY_BUFFER_BYTES):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing = True
        self.server.close()


class OtherHost:
    """A network namespace joined to this host by a veth pair (a /30 of 10.213.0.0/16)."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}{random.randrange(100)}"
        self.namespace = f"tlpart{tag}"
        self.host_link, self.other_link = f"tlh{tag}", f"tln{tag}"
        subnet = random.randrange(0, 16384) * 4
        self.host_address = f"10.213.{subnet // 256}.{subnet % 256 + 1}"
        self.other_address = f"10.213.{subnet // 256}.{subnet % 256 + 2}"
        self.relays: list[Relay] = []
        self.is_cut = False

    def __enter__(self) -> OtherHost:
        ip("netns", "add", self.namespace)
        try:
            ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.other_link)
            ip("link", "set", self.other_link, "netns", self.namespace)
            ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
            ip("link", "set", self.host_link, "up")
            self.run("ip", "addr", "add", f"{self.other_address}/30", "dev", self.other_link)
            self.run("ip", "link", "set", self.other_link, "up")
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def run(self, *command: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.namespace, *command], check=True, capture_output=True)

    def command(self, *command: str) -> list[str]:
        """``command`` as run on the other host (for Popen)."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def reach(self, url_port: int) -> int:
        """A port on this host's end of the pair that relays to ``127.0.0.1:url_port``."""
        relay = Relay(self.host_address, url_port)
        self.relays.append(relay)
        return relay.port

    def cut(self) -> None:
        """Drop every packet between the two hosts, both ways, from now on."""
        subprocess.run(["ip", "netns", "exec", self.namespace, "nft", "-f", "-"], input=CUT_RULES.encode(), check=True)
        self.is_cut = True

    def cut_port(self, port: int) -> None:
        """Drop only the packets to and from one port of this host's end (one store), both ways."""
        rules = f"""table inet tasklab_partition {{
  chain in {{ type filter hook input priority 0; policy accept; ip saddr {self.host_address} tcp sport {port} drop; }}
  chain out {{ type filter hook output priority 0; policy accept; ip daddr {self.host_address} tcp dport {port} drop; }}
}}
"""
        subprocess.run(["ip", "netns", "exec", self.namespace, "nft", "-f", "-"], input=rules.encode(), check=True)
        self.is_cut = True

    def heal(self) -> None:
        self.run("nft", "delete", "table", "inet", "tasklab_partition")
        self.is_cut = False

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for relay in self.relays:
            relay.close()
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("link", "del", self.host_link)
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("netns", "del", self.namespace)


@contextlib.contextmanager
def other_host() -> Iterator[OtherHost]:
    require_partition_tools()
    with OtherHost() as host:
        yield host
