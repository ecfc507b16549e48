"""The processes of a benchmark run: free ports, core pinning, servers and their workers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check()`` until it is true, or raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, httpx.HTTPError):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s")


@dataclass(frozen=True)
class Pinning:
    """Which cores the servers and the load side (wrk, memcached, emulators) run on."""

    server: tuple[int, ...] | None
    load: tuple[int, ...] | None

    @classmethod
    def detect(cls) -> Pinning:
        """Servers on all cores but the last, the load on the last; none with one core."""
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(tuple(cores[:-1]), (cores[-1],))

    def wrap(self, argv: list[str], cores: tuple[int, ...] | None) -> list[str]:
        """``argv`` under ``taskset -c cores`` (unchanged without pinning)."""
        if cores is None:
            return argv
        return ["taskset", "-c", ",".join(map(str, cores)), *argv]

    def move(self, pid: int, cores: tuple[int, ...] | None) -> None:
        """Pin a running process and all its threads."""
        if cores is not None:
            subprocess.run(  # noqa: S603 - fixed argv
                ["taskset", "-a", "-p", "-c", ",".join(map(str, cores)), str(pid)],  # noqa: S607
                check=True,
                stdout=subprocess.DEVNULL,
            )


class Process:
    """One child process of the run; stopped (and its children with it) by :meth:`stop`.

    Its output goes to ``log``; with ``drop_stdout`` only its standard error does (a server's
    JSON log lines, one a request, would otherwise make the benchmark measure a file system
    too), so a crash's traceback is still there to show.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log: Path,
        *,
        drop_stdout: bool = False,
    ) -> None:
        self.name = name
        self.log = log
        self._dropped = drop_stdout
        self._log = log.open("wb")
        self.popen = subprocess.Popen(  # noqa: S603 - argv built by this module
            argv,
            env=dict(env),
            cwd=ROOT,
            stdout=subprocess.DEVNULL if drop_stdout else self._log,
            stderr=self._log,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def check_alive(self) -> None:
        """Raise, with the end of its log, if the process has exited."""
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            hint = " (its log lines: run with --keep-logs)" if self._dropped else ""
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}{hint}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 10 s."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._log.close()


class Server(Process):
    """A uvicorn app (``bench.serve``) whose workers announce themselves in ``stats_dir``."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log: Path,
        *,
        drop_stdout: bool,
        port: int,
        workers: int,
        stats_dir: Path,
    ) -> None:
        stats_dir.mkdir(parents=True)
        env = {**env, "BENCH_STATS_DIR": str(stats_dir)}
        super().__init__(name, argv, env, log, drop_stdout=drop_stdout)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workers = workers
        self.stats_dir = stats_dir

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every worker has started (its ``.ready`` file exists)."""

        def ready() -> bool:
            self.check_alive()
            return len(self.worker_pids()) >= self.workers

        wait_until(ready, f"{self.name} ({self.workers} workers)", timeout_s)

    def worker_pids(self) -> list[int]:
        """The pids of the serving processes."""
        return sorted(int(p.stem) for p in self.stats_dir.glob("*.ready"))

    def counters(self) -> dict[int, dict[str, Any]]:
        """Every worker's counters (``SIGUSR1`` -> ``<pid>.json``, see :mod:`bench.app`)."""
        pids = self.worker_pids()
        for pid in pids:
            (self.stats_dir / f"{pid}.json").unlink(missing_ok=True)
            os.kill(pid, signal.SIGUSR1)
        wait_until(
            lambda: all((self.stats_dir / f"{pid}.json").exists() for pid in pids),
            f"{self.name} counters",
            timeout_s=10,
        )
        return {pid: json.loads((self.stats_dir / f"{pid}.json").read_text()) for pid in pids}

    def cpu_seconds(self) -> float:
        """User and system CPU time the serving processes have used so far, summed."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                # the fields after the parenthesised command name: utime and stime are 12 and 13
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += int(fields[11]) + int(fields[12])
        return total / ticks

    def memory_kib(self) -> dict[str, int]:
        """Summed over the workers: ``VmRSS`` now and ``VmHWM`` (peak RSS so far), in KiB."""
        totals = {"rss": 0, "peak": 0}
        for pid in self.worker_pids():
            status = Path(f"/proc/{pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    totals["rss"] += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    totals["peak"] += int(line.split()[1])
        return totals

    def connections_per_worker(self) -> dict[int, int]:
        """Established client connections each worker holds on the server port right now."""
        established: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    if local_port == self.port and fields[3] == "01":  # 01: ESTABLISHED
                        established.add(fields[9])
        held = {}
        for pid in self.worker_pids():
            count = 0
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        link = os.readlink(f"/proc/{pid}/fd/{fd}")
                        if link.startswith("socket:[") and link[8:-1] in established:
                            count += 1
            held[pid] = count
        return held
