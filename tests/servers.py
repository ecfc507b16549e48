"""Real servers for tests: uvicorn on a free loopback port, and a memcached process."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Any

import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def wait_until_stopped(pid: int, *, stopped: bool, timeout_s: float = 5.0) -> None:
    """Wait until ``/proc`` reports the process stopped by a signal (state T), or not."""
    deadline = time.monotonic() + timeout_s
    while True:
        with open(f"/proc/{pid}/stat") as stat:
            # the state follows the parenthesised command name, which may itself hold spaces
            state = stat.read().rpartition(")")[2].split()[0]
        if (state == "T") == stopped:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} is in state {state}")
        time.sleep(0.005)


class UvicornThread:
    """Serve an ASGI app with uvicorn in a background thread, on 127.0.0.1:port."""

    def __init__(self, app: Any, port: int | None = None, **options: Any) -> None:
        """``options`` go to :class:`uvicorn.Config` (e.g. ``app.server.SERVER_OPTIONS``)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> UvicornThread:
        """Start serving and wait until the port accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.should_exit = True
        self._thread.join(timeout=10)


def memcached_stats(port: int) -> dict[str, int]:
    """memcached's own counters (``stats``): ``get_hits``, ``get_misses``, ``curr_items``..."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    stats = {}
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT" and parts[2].isdigit():
            stats[parts[1]] = int(parts[2])
    return stats


class LoopbackProcess:
    """A server program of the tests on a loopback ``port``: started, waited for, stopped."""

    port: int
    _proc: subprocess.Popen[bytes] | None = None

    def _launch(self, argv: list[str]) -> None:
        """Run ``argv`` (its output dropped) and wait until ``port`` accepts connections."""
        self._proc = subprocess.Popen(  # noqa: S603 - argv built by the tests, no shell
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def _end(self, *, kill: bool = False, timeout_s: float = 5) -> None:
        """SIGKILL (``kill``) or SIGTERM, then wait; nothing when not running."""
        if self._proc is not None:
            if kill:
                self._proc.kill()
            else:
                self._proc.terminate()
            self._proc.wait(timeout=timeout_s)
            self._proc = None


class MemcachedProcess(LoopbackProcess):
    """A real memcached on 127.0.0.1, which tests may stop and start again on the same port."""

    def __init__(self, port: int | None = None, *, memory_mb: int = 64) -> None:
        binary = shutil.which("memcached") or "/usr/bin/memcached"
        self.binary = binary
        self.memory_mb = memory_mb
        self.port = port or free_port()
        self.url = f"memcached://127.0.0.1:{self.port}"

    def start(self) -> MemcachedProcess:
        """Start memcached and wait for its port."""
        self._launch(
            [
                self.binary,
                "-l",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "0",
                "-m",
                str(self.memory_mb),
                "-u",
                "root",
                "-c",
                "1024",
            ]
        )
        return self

    def stop(self) -> None:
        """Kill memcached (its data is gone)."""
        self._end(kill=True)

    def pause(self) -> None:
        """Freeze memcached (SIGSTOP): connections open, no answers, its data kept."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)
            # the signal is delivered asynchronously: wait until the kernel reports it stopped
            wait_until_stopped(self._proc.pid, stopped=True)

    def resume(self) -> None:
        """Let a paused memcached answer again (SIGCONT)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
            wait_until_stopped(self._proc.pid, stopped=False)

    def exchange(self, payload: bytes, until: bytes, timeout_s: float = 2) -> bytes:
        """Send raw protocol bytes on a new connection; read the reply up to ``until``."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s) as sock:
            sock.sendall(payload)
            reply = b""
            while not reply.endswith(until):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply

    def command(self, line: bytes, data: bytes | None = None) -> bytes:
        """Send one raw command (``data`` as its data block) and return the first reply line."""
        block = data + b"\r\n" if data is not None else b""
        return self.exchange(line + b"\r\n" + block, b"\r\n").strip()

    def fill(self, count: int, sizes: range) -> None:
        """Write ``count`` filler items of every size in ``sizes`` (bytes) over one connection:
        memcached evicts per slab class, so pressure must reach the classes that matter."""
        batch = b"".join(
            f"set filler:{size}:{i} 0 600 {size} noreply\r\n".encode() + b"f" * size + b"\r\n"
            for size in sizes
            for i in range(count)
        )
        # a closing command with a reply: memcached has taken every set once it answers
        self.exchange(batch + b"version\r\n", b"\r\n", timeout_s=10)

    def get(self, key: str) -> bytes | None:
        """The raw value under ``key``."""
        data = self.exchange(b"get " + key.encode() + b"\r\n", b"END\r\n")
        if not data.startswith(b"VALUE "):
            return None
        header, _, rest = data.partition(b"\r\n")
        length = int(header.split()[3])
        return rest[:length]

    def set(self, key: str, value: bytes, ttl_s: int = 300) -> None:
        """Store a raw value, as anyone who can reach memcached can."""
        reply = self.command(f"set {key} 0 {ttl_s} {len(value)}".encode(), value)
        assert reply == b"STORED", reply

    def keys(self) -> list[str]:
        """Every key memcached holds (``lru_crawler metadump all``).

        The crawler's dump now and then comes back empty although memcached holds items (seen
        with one fresh item after a restart): an empty dump is retried while ``stats`` counts
        items.
        """
        keys: list[str] = []
        for _ in range(20):
            keys = self._dump_keys()
            if keys or not self._item_count():
                break
            time.sleep(0.05)
        return keys

    def _item_count(self) -> int:
        data = self.exchange(b"stats\r\n", b"END\r\n")
        for line in data.decode().splitlines():
            if line.startswith("STAT curr_items "):
                return int(line.split()[2])
        return 0

    def _dump_keys(self) -> list[str]:
        data = self.exchange(b"lru_crawler metadump all\r\n", b"END\r\n")
        keys = []
        for line in data.decode().splitlines():
            if line.startswith("key="):
                from urllib.parse import unquote

                keys.append(unquote(line.split(" ", 1)[0][4:]))
        return keys


class TwemproxyProcess(LoopbackProcess):
    """twemproxy (Debian's ``nutcracker``) on 127.0.0.1 in front of memcached ``backends``.

    Consistent hashing (ketama) over the backends, a failed backend ejected for two seconds.
    """

    def __init__(self, backends: list[int], directory: str) -> None:
        self.binary = shutil.which("nutcracker") or "/usr/sbin/nutcracker"
        self.port = free_port()
        self.stats_port = free_port()
        self.url = f"memcached://127.0.0.1:{self.port}"
        self.config = f"{directory}/nutcracker.yml"
        servers = "".join(f"    - 127.0.0.1:{port}:1\n" for port in backends)
        with open(self.config, "w") as config:
            config.write(
                "gateway:\n"
                f"  listen: 127.0.0.1:{self.port}\n"
                "  hash: fnv1a_64\n"
                "  distribution: ketama\n"
                "  timeout: 400\n"
                "  auto_eject_hosts: true\n"
                "  server_retry_timeout: 2000\n"
                "  server_failure_limit: 1\n"
                f"  servers:\n{servers}"
            )

    def start(self) -> TwemproxyProcess:
        """Start twemproxy and wait for its port."""
        self._launch(
            [
                self.binary,
                "-c",
                self.config,
                "-a",
                "127.0.0.1",
                "-s",
                str(self.stats_port),
                "-v",
                "4",
            ]
        )
        return self

    def stop(self) -> None:
        """Stop twemproxy."""
        self._end()
