"""The result of a run as one table, and the machine it ran on."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15-minute load averages."""
    one, five, fifteen = os.getloadavg()
    return (one, five, fifteen)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions["auth0-fastapi-api"] = metadata.version("auth0-fastapi-api")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)  # noqa: S607
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "",
        "versions": versions,
    }


# -- output --------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(document: dict[str, Any]) -> str:
    """The run as one plain-text table, then the checks and the notes."""
    header = (
        f"{'scenario':<44} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'x(a0)':>5} {'x(a)':>5} "
        f"{'CPU us':>7} {'non2xx':>7} {'auth0':>6} {'RSS MiB':>8}  conns/worker"
    )
    lines = [header, "-" * len(header)]
    for row in document["rows"].values():
        if row["skipped"]:
            lines.append(f"{row['label']:<44} skipped: {row['skipped']}")
            continue
        conns = row["connections_per_worker"]
        cells = [
            f"{row['label'][:44]:<44}",
            f"{_fmt(row['rps'], ',.0f'):>8}",
            f"{_fmt(row['p50_ms'], '.2f'):>7}",
            f"{_fmt(row['p99_ms'], '.2f'):>7}",
            f"{_fmt(row['rps_vs_a0'], '.2f'):>5}",
            f"{_fmt(row['rps_vs_a'], '.2f'):>5}",
            f"{_fmt(row['cpu_us_per_request'], '.0f'):>7}",
            f"{row['non_2xx']:>7}",
            f"{row['auth0_calls']:>6}",
            f"{_fmt(row['peak_rss_mib'], '.1f'):>8} ",
            "/".join(map(str, conns)) if conns else "-",
        ]
        lines.append(" ".join(cells))
    c = document["rows"].get("c")
    if c is not None and "db_round_trips_per_read" in c.get("extra", {}):
        lines.append(
            f"(c) PostgreSQL statements per venue read: {c['extra']['db_round_trips_per_read']:.2f}"
        )
    open_loop = document.get("open_loop") or {}
    if open_loop.get("rows"):
        lines.append("")
        lines.append(
            f"at a fixed rate of {open_loop['rate_rps']:,.0f} req/s (hey, "
            f"{open_loop['workers']} workers):"
        )
        lines.append(
            f"{'':<6}{'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>9} {'max ms':>8}"
        )
        for key, run in open_loop["rows"].items():
            lines.append(
                f"({key}){'':<{4 - len(key)}}{run['achieved_rps']:>8,.0f} {run['p50_ms']:>7.2f} "
                f"{run['p99_ms']:>7.2f} {run['p999_ms']:>9.2f} {run['max_ms']:>8.1f}"
                + (f"  {run['non_2xx']} non-2xx" if run["non_2xx"] else "")
            )
    layers = (document.get("layers") or {}).get("table")
    if layers:
        lines.append("")
        lines.append("where the microseconds of (b) go (CPU per request, each layer switched off):")
        for item in layers:
            lines.append(f"  {_fmt(item['us'], '7.1f')}  {item['layer']}")
    e = document["rows"].get("e")
    if e is not None and not e["skipped"]:
        x = e["extra"]
        burst = x["burst"]
        lines.append(
            f"(e) {x['tokens_answered']} tokens answered ({x['tokens_sent']} sent): "
            f"{x['validations']} validations; Auth0 calls per token "
            f"{_fmt(x['auth0_calls_per_token'], '.5f')}"
        )
        if x.get("memcached_commands_per_validation") is not None:
            lines.append(
                f"(e) memcached commands per validation: "
                f"{x['memcached_commands_per_validation']:.2f}"
            )
        lines.append(
            f"(e) bursts: {burst['tokens']} new tokens x {burst['requests'] // burst['tokens']} "
            f"connections at once: {burst['validations']} validations, "
            f"{burst['auth0_calls']} Auth0 calls, {burst['non_200']} non-200"
        )
    soak = document["soak"]
    if soak["growth"] is not None:
        before, after = soak["rss_kib_before"] / 1024, soak["rss_kib_after"] / 1024
        lines.append(
            f"RSS over {soak['requests']:,} cached-token requests: {before:.1f} -> {after:.1f} "
            f"MiB ({soak['growth']:+.1%})"
        )
    lines.append("")
    for name, check in document["checks"].items():
        verdict = "met " if check["met"] else "MISS"
        value = check["value"]
        shown = _fmt(value, ".3f") if isinstance(value, float) else str(value)
        lines.append(f"[{verdict}] {name} = {shown} (target {check['target']})")
    lines.extend(f"note: {note}" for note in document["notes"])
    return "\n".join(lines)
