"""Two network namespaces joined by a veth pair, made by a test and removed after it, for load runs whose
master and workers talk over a real network hop (tests/load/test_distributed_netns.py).

``master`` (``10.213.N.1/30``) and ``workers`` (``10.213.N.2/30``) are the only addresses; N comes from the
process id, so concurrent runs do not collide. A server in the root namespace (the session's embedded vLLM
on 127.0.0.1) is reached from both namespaces at ``workers``' address through :class:`Relay`: a listening
socket made inside the workers' namespace, handed to this process, whose connections are relayed to the
server. Nothing but these addresses is ever a target.

Needs root (``ip netns``): a machine that cannot make namespaces raises :class:`NamespaceError` naming why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

#: Makes a listening socket inside the namespace it runs in and sends it over a Unix socket (by path: a
#: path is seen from every network namespace) to the process that asked.
_BIND_AND_SEND = """
import socket, sys
address, path = sys.argv[1], sys.argv[2]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((address, 0))
listener.listen(64)
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
    channel.connect(path)
    socket.send_fds(channel, [str(listener.getsockname()[1]).encode()], [listener.fileno()])
"""


class NamespaceError(RuntimeError):
    """This machine cannot make the namespaces (not root, no ``ip``, no veth support)."""


@dataclasses.dataclass(frozen=True)
class Namespaces:
    master_ns: str
    workers_ns: str
    master: str  # the master's address, in master_ns
    workers: str  # the workers' address, in workers_ns

    def run_in(self, namespace: str, argv: list[str]) -> list[str]:
        """``argv`` as a command that runs inside ``namespace``."""
        return ["ip", "netns", "exec", namespace, *argv]


def _ip(*args: str) -> None:
    try:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise NamespaceError("the `ip` command (iproute2) is not installed") from exc
    if result.returncode != 0:
        raise NamespaceError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()} (network namespaces need "
                             "root, or CAP_SYS_ADMIN and CAP_NET_ADMIN)")


@contextlib.contextmanager
def namespaces() -> Iterator[Namespaces]:
    tag = os.getpid() % 250 + 1
    made = Namespaces(f"geopool-master-{os.getpid()}", f"geopool-workers-{os.getpid()}",
                      f"10.213.{tag}.1", f"10.213.{tag}.2")
    veth = (f"gpm{os.getpid()}"[:15], f"gpw{os.getpid()}"[:15])
    try:
        _ip("netns", "add", made.master_ns)
        _ip("netns", "add", made.workers_ns)
        _ip("link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
        for device, namespace, address in ((veth[0], made.master_ns, made.master),
                                           (veth[1], made.workers_ns, made.workers)):
            _ip("link", "set", device, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{address}/30", "dev", device)
            _ip("-n", namespace, "link", "set", device, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")  # a namespace reaches its own addresses through lo
        yield made
    finally:
        for namespace in (made.master_ns, made.workers_ns):  # the veth pair goes with them
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=30)


class Relay:
    """A port on ``address`` inside ``namespace`` whose connections are relayed to ``upstream`` (host, port)
    of this process's namespace. Counts the connections it relayed (``connections``)."""

    def __init__(self, made: Namespaces, namespace: str, address: str, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections = 0
        self.listener, self.port = self._socket_from(made, namespace, address)
        self.url = f"http://{address}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netns-relay", daemon=True)

    @staticmethod
    def _socket_from(made: Namespaces, namespace: str, address: str) -> tuple[socket.socket, int]:
        with tempfile.TemporaryDirectory() as folder, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
            path = str(Path(folder) / "fd.sock")
            channel.bind(path)
            channel.listen(1)
            channel.settimeout(30)
            helper = subprocess.Popen(made.run_in(namespace, [sys.executable, "-c", _BIND_AND_SEND, address, path]),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                connection, _ = channel.accept()
            except TimeoutError as exc:
                helper.kill()
                raise NamespaceError(f"no listening socket from {namespace}: {helper.communicate()[1]}") from exc
            with connection:
                port, fds, _, _ = socket.recv_fds(connection, 16, 1)
            helper.wait(timeout=30)
        return socket.socket(fileno=fds[0]), int(port)

    def __enter__(self) -> Relay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self.listener.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._relay, sock=self.listener)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 10)
        except (OSError, TimeoutError):
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()
