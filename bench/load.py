"""Driving load: wrk with ``bench/wrk.lua``, and what one wrk run reports."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import Pinning

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"


@dataclass
class Run:
    """One wrk run, as its Lua ``done()`` reported it."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    sent: int
    raw: dict[str, Any]

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int,
    pinning: Pinning,
    env: Mapping[str, str],
    during: Callable[[], object] | None = None,
) -> Run:
    """wrk against ``url`` with ``bench/wrk.lua``; ``during()`` is called halfway through."""
    argv = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(max(connections, threads)),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    proc = subprocess.Popen(  # noqa: S603 - argv built here
        pinning.wrap(argv, pinning.load),
        env={**os.environ, "BENCH_WRK_THREADS": str(threads), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sample: list[Any] = []
    if during is not None:
        timer = threading.Timer(duration / 2, lambda: sample.append(during()))
        timer.start()
    out, err = proc.communicate(timeout=duration + 60)
    if during is not None:
        timer.join()
    line = next((x for x in out.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err or out}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = raw["errors"]
    run = Run(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["latency_us"]["p50"] / 1000,
        p99_ms=raw["latency_us"]["p99"] / 1000,
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        sent=raw["sent"],
        raw=raw,
    )
    if sample:
        run.raw["sampled"] = sample[0]
    return run
