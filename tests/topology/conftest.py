"""The production topology as real processes on loopback: three memcached, PostgreSQL, three
``gateway serve`` replicas (one worker each) behind HAProxy, health-checked on ``/readyz``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import RunningEmulator, start_emulator
from tests.servers import LoopbackProcess, MemcachedProcess, free_port, wait_for_port

REPLICAS = 3


@dataclass
class Replica:
    """One ``gateway serve`` process (one worker), which tests may stop and start again."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
                [sys.executable, "-m", "app", "serve", "--port", str(self.port), "--workers", "1"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout_s=30)

    def stop(self) -> int:
        """SIGTERM, and wait for the graceful stop: the exit status."""
        assert self.proc is not None
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code


class Haproxy(LoopbackProcess):
    """HAProxy (Debian's package) in front of the replicas, with its runtime API on a socket."""

    def __init__(self, replicas: list[Replica], directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = directory / "haproxy.sock"
        self.config = directory / "haproxy.cfg"
        servers = "".join(
            f"    server {replica.name} 127.0.0.1:{replica.port} check\n" for replica in replicas
        )
        self.config.write_text(
            "global\n"
            "    maxconn 4096\n"
            f"    stats socket {self.socket} mode 600 level admin\n"
            "defaults\n"
            "    mode http\n"
            "    timeout connect 2s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            # a refused connection (a replica that has just stopped listening) is tried again
            # on another replica; requests are never replayed once a replica has taken them
            "    retries 3\n"
            "    option redispatch 1\n"
            "    retry-on conn-failure\n"
            # one connection per request to the replica, so draining one takes effect at once
            "    option http-server-close\n"
            "frontend gateway\n"
            f"    bind 127.0.0.1:{self.port}\n"
            "    default_backend replicas\n"
            "backend replicas\n"
            "    balance roundrobin\n"
            "    option httpchk\n"
            "    http-check send meth GET uri /readyz\n"
            "    http-check expect status 200\n"
            "    default-server inter 250ms fall 2 rise 2\n"
            f"{servers}"
        )
        self.binary = shutil.which("haproxy") or "/usr/sbin/haproxy"

    def start(self) -> Haproxy:
        check = subprocess.run(  # noqa: S603 - fixed argv
            [self.binary, "-c", "-f", str(self.config)], capture_output=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
        self._launch([self.binary, "-db", "-f", str(self.config)])
        return self

    def stop(self) -> None:
        self._end(timeout_s=10)

    def command(self, line: str) -> str:
        """One command on the runtime API."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """Each replica's row of ``show stat``: status (UP, DOWN, DRAIN...), scur (sessions)..."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: row
            for row in rows
            if row.get("pxname") == "replicas" and row["svname"] not in {"BACKEND", "FRONTEND"}
        }

    def wait_for_status(self, name: str, status: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while (current := self.servers()[name]["status"]) != status:
            assert time.monotonic() < deadline, f"{name} is {current}, not {status}"
            time.sleep(0.05)


@dataclass
class Topology:
    """Everything running; ``replicas`` by name."""

    haproxy: Haproxy
    replicas: list[Replica]
    memcached: list[MemcachedProcess]
    emulator: RunningEmulator
    database_url: str
    logs: list[Path] = field(default_factory=list)


@pytest.fixture(scope="module")
def topology(
    postgres_module_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    directory = tmp_path_factory.mktemp("topology")
    emulator = start_emulator()
    memcached = [MemcachedProcess().start() for _ in range(3)]
    cache_url = "memcached://" + ",".join(f"127.0.0.1:{server.port}" for server in memcached)
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PROMETHEUS_"))},
        "GATEWAY_ENV": "local",
        "GATEWAY_AUTH0__DOMAIN": emulator.url,
        "GATEWAY_CACHE__URL": cache_url,
        "GATEWAY_CACHE__BREAKER_COOLDOWN_S": "1",
        "GATEWAY_DATABASE__URL": postgres_module_database,
        "GATEWAY_SESSION__KEYS": Fernet.generate_key().decode(),
        "GATEWAY_GRACEFUL_TIMEOUT_S": "10",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    replicas = []
    for index in range(REPLICAS):
        tmp = directory / f"r{index + 1}"
        tmp.mkdir()
        replicas.append(
            Replica(
                f"r{index + 1}",
                free_port(),
                {**base_env, "TMPDIR": str(tmp)},
                directory / f"r{index + 1}.log",
            )
        )
    haproxy = Haproxy(replicas, directory)
    try:
        for replica in replicas:
            replica.start()
        haproxy.start()
        for replica in replicas:
            haproxy.wait_for_status(replica.name, "UP")
        yield Topology(haproxy, replicas, memcached, emulator, postgres_module_database)
    finally:
        haproxy.stop()
        for replica in replicas:
            if replica.proc is not None:
                replica.stop()
        for server in memcached:
            server.stop()
        emulator.server.stop()
