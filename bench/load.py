"""Driving load: wrk with ``bench/wrk.lua`` (saturation), hey at a fixed rate (latency)."""

from __future__ import annotations

import csv
import io
import json
import math
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


@dataclass
class OpenLoopRun:
    """One ``hey`` run at a fixed request rate: what was asked, what came back, how fast."""

    target_rps: float
    achieved_rps: float
    requests: int
    non_2xx: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def run_hey(
    url: str,
    *,
    rate: float,
    duration: float,
    workers: int,
    pinning: Pinning,
    headers: Mapping[str, str],
) -> OpenLoopRun:
    """``hey`` sending ``rate`` requests per second in all to ``url`` for ``duration`` seconds.

    hey paces each of its ``workers`` at ``rate / workers`` requests per second; a worker
    waits for its answer before its next request, so the rate holds only while answers come
    back faster than ``workers / rate`` seconds (the runner picks half of the limit's
    throughput, where they do). Every request's latency is in hey's CSV output, from which
    p50, p99 and p99.9 are exact.
    """
    argv = ["hey", "-z", f"{max(1, round(duration))}s", "-c", str(workers)]
    argv += ["-q", f"{rate / workers:.3f}", "-t", "10", "-o", "csv"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    proc = subprocess.run(  # noqa: S603 - argv built here
        pinning.wrap(argv, pinning.load),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hey failed ({proc.returncode}): {proc.stderr[-2000:]}")
    latencies: list[float] = []
    non_2xx = 0
    last_offset = 0.0
    for row in csv.DictReader(io.StringIO(proc.stdout)):
        latencies.append(float(row["response-time"]) * 1000)
        non_2xx += not row["status-code"].startswith("2")
        last_offset = max(last_offset, float(row["offset"]))
    latencies.sort()
    return OpenLoopRun(
        target_rps=rate,
        achieved_rps=len(latencies) / last_offset if last_offset else 0.0,
        requests=len(latencies),
        non_2xx=non_2xx,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        p999_ms=percentile(latencies, 0.999),
        max_ms=latencies[-1] if latencies else 0.0,
    )
