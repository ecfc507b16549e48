"""``make bench``: the gateway against the limit of its stack and against a peer, in one run.

Starts memcached, the emulator (:mod:`bench.emulator`), the bare app (:mod:`bench.bare_app`),
the gateway (:mod:`bench.app`) and the peer (:mod:`bench.peer_app`) as processes on free
loopback ports, pins the servers and the load generator (wrk, with memcached and the emulators)
to different cores when there are two or more, warms up, drives each scenario with wrk and
prints one table, written as JSON to ``bench/results/<time>-w<workers>-<launcher>.json`` too:

(a0) the physical limit: ``GET /bench/limit`` of a bare FastAPI app (no middleware, no
    dependency) under the same uvicorn options, answering ``/auth/me``'s bytes;
(a) the gateway's stack without authentication: ``GET /bench/limit`` of the gateway, every
    middleware on, ``/auth/me``'s handler with a fixed principal (same bytes);
(b) ``GET /auth/me`` with a cached token (the in-process tier's hit path);
(c) ``GET /venues/{id}`` with a cached token, and the database round trips per read;
(d) the peer: ``GET /auth/me`` of a small app protected by ``auth0-fastapi-api``;
(e) cold tokens: each request a different valid token, under 100 connections, with the
    gateway's validations, the Auth0 calls and the memcached commands per distinct token;
(f) garbage tokens: rejected requests per second, and the Auth0 calls (must be zero);
(a2), (b2) (a) and (b) once more on a second gateway at log level WARNING: the access line's cost.

Each row: requests per second, p50 and p99 latency, the ratios to (a0) and to (a), the server's
CPU time per request, the Auth0 calls, the peak RSS and, with several workers, the connections
each worker held. Then the latency at a fixed rate (hey at half of (a0)'s throughput: p50, p99,
p99.9 of (a0), (b) and (d)) and the cost table (:mod:`bench.layers`: the microseconds of each
layer, measured by switching it off).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import glob
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth.cipher import generate_key
from app.clients.token_validator import TokenValidator
from bench.bare_app import BODY_ENV
from bench.emulator import AUDIENCE
from bench.layers import cost_table
from bench.load import OpenLoopRun, Run, run_hey, run_wrk
from bench.procs import ROOT, Pinning, Process, Server, free_port, wait_until
from bench.report import load_average, machine, table
from tests.db.postgres import PostgresProcess  # the tests' throw-away server, reused
from tests.servers import memcached_stats

RESULTS_DIR = ROOT / "bench" / "results"

#: a 1-minute load average above this before the run means someone else was using the cores
BUSY_LOAD = 0.5
#: (e)'s second half: this many new tokens, each sent on every connection at once
BURST_TOKENS = 20

ROW_ORDER = ["a0", "a", "b", "c", "d", "e", "f", "a2", "b2", "b3"]

#: memcached's counters of commands served, one per key (``stats``)
MEMCACHED_COMMANDS = (
    "cmd_get",
    "cmd_set",
    "cmd_touch",
    "incr_hits",
    "incr_misses",
    "decr_hits",
    "decr_misses",
    "delete_hits",
    "delete_misses",
    "cas_hits",
    "cas_misses",
    "cas_badval",
)

#: The targets for one worker, production defaults unless the name says otherwise.
TARGETS = {
    "b_rps_vs_a0": 0.70,  # at least
    "b2_rps_vs_a0": 0.80,  # at least: (b) at WARNING, no access line
    "b_rps_vs_d": 2.0,  # at least
    "open_loop_b_p99_vs_a0": 2.0,  # at most, at a fixed rate of half (a0)'s throughput
    "c_rps_vs_a0": 0.30,  # at least
    "c_db_round_trips": 1.0,  # at most, per venue read
    "e_rps_vs_a0": 0.25,  # at least
    "e_memcached_commands": 3.0,  # at most, per cold validation
    "rss_growth": 0.10,  # below, over soak_requests cached-token requests
}


@dataclass(frozen=True)
class Options:
    """What one run does; every duration is in seconds."""

    workers: int = 1
    launcher: str = "uvicorn"
    duration: float = 10.0
    rounds: int = 2
    warmup: float = 2.0
    cold_duration: float = 5.0
    cold_tokens: int = 20_000
    connections: int = 100
    threads: int = 1
    soak_requests: int = 200_000
    scenarios: str = "abcdef"
    open_loop_duration: float = 10.0
    open_loop_workers: int = 200
    layer_requests: int = 3000
    layer_repeats: int = 5
    log_level: str = "INFO"
    database: str = "auto"
    quiet_gateway: bool = True
    out_dir: Path = RESULTS_DIR
    strict: bool = False
    keep_logs: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """The options of ``python -m bench.run``."""
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=(__doc__ or "").split("\n\n", 1)[0]
    )
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument(
        "--launcher",
        choices=("uvicorn", "reuseport"),
        default=defaults.launcher,
        help="with --workers N: uvicorn's shared socket, or one SO_REUSEPORT socket per worker",
    )
    parser.add_argument("--duration", type=float, default=defaults.duration)
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="(a)-(d) run interleaved this many times, --duration/--rounds seconds each",
    )
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--cold-duration", type=float, default=defaults.cold_duration)
    parser.add_argument(
        "--cold-tokens",
        type=int,
        default=defaults.cold_tokens,
        help="distinct tokens minted for (e); more than (e) can use in --cold-duration",
    )
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="wrk threads")
    parser.add_argument("--soak-requests", type=int, default=defaults.soak_requests)
    parser.add_argument("--scenarios", default=defaults.scenarios, help="e.g. abd")
    parser.add_argument(
        "--open-loop-duration",
        type=float,
        default=defaults.open_loop_duration,
        help="seconds of hey at half of (a0)'s throughput per row (0: skip)",
    )
    parser.add_argument(
        "--open-loop-workers",
        type=int,
        default=defaults.open_loop_workers,
        help="hey's workers; each waits for its answer, so workers / rate must exceed the latency",
    )
    parser.add_argument(
        "--layer-requests",
        type=int,
        default=defaults.layer_requests,
        help="requests per variant and round of the cost table (0: skip it)",
    )
    parser.add_argument("--layer-repeats", type=int, default=defaults.layer_repeats)
    parser.add_argument(
        "--log-level",
        default=defaults.log_level,
        help="the servers' log level; INFO (gateway serve's default) logs every request",
    )
    parser.add_argument(
        "--database",
        choices=("auto", "postgres", "sqlite"),
        default=defaults.database,
        help="for (c): a throw-away PostgreSQL when installed (auto), or an SQLite file",
    )
    parser.add_argument(
        "--no-quiet-gateway",
        dest="quiet_gateway",
        action="store_false",
        help="skip (a2)/(b2): the same gateway at log level WARNING, without access lines",
    )
    parser.add_argument("--out-dir", type=Path, default=defaults.out_dir)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the processes' output, the servers' access lines too, in the scratch directory",
    )
    args = parser.parse_args(argv)
    if min(args.workers, args.connections, args.threads, args.rounds) < 1:
        parser.error("--workers, --connections, --threads and --rounds must be at least 1")
    return Options(**vars(args))


# -- tokens --------------------------------------------------------------------------------


def garbage_tokens(valid: str, kid: str, count: int = 1200) -> list[str]:
    """What an attacker or a broken client sends: none of it is a token the tenant issued.

    Six kinds in equal parts: random printable strings, three dot-separated random segments,
    over-long values, ``alg: none`` with the real claims, the real token with its signature
    bytes changed, and the real claims signed by a stranger's key under the tenant's ``kid``.
    Unknown ``kid`` values are left out on purpose: they are the key-rotation path (one JWKS
    refetch per 30 s at most), tested in ``tests/clients/test_jwks.py``. So are dot-less
    base64url strings, which the gateway takes for opaque tokens (asked at ``/userinfo``).
    """
    header, payload, signature = valid.split(".")
    claims = jwt.decode(valid, options={"verify_signature": False})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    printable = "".join(chr(c) for c in range(0x21, 0x7F))
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    out: list[str] = []
    for i in range(count):
        kind = i % 6
        if kind == 0:
            text = "".join(secrets.choice(printable) for _ in range(20 + i % 700))
            # garbage, not by chance the shape of an opaque token (which goes to /userinfo)
            out.append(text if TokenValidator.classify(text) == "malformed" else text + "!")
        elif kind == 1:
            out.append(".".join(secrets.token_urlsafe(8 + i % 300) for _ in range(3)))
        elif kind == 2:
            out.append(secrets.token_urlsafe(4200))
        elif kind == 3:
            out.append(f"{none_header}.{payload}.")
        elif kind == 4:
            flip = secrets.token_urlsafe(12)
            out.append(f"{header}.{payload}.{flip}{signature[len(flip) :]}")
        else:
            if i % 60 == 5:  # a handful of distinct signatures: RSA signing is slow
                forged = jwt.encode(
                    {**claims, "sub": f"auth0|forged-{i}"},
                    stranger,
                    algorithm="RS256",
                    headers={"kid": kid},
                )
            out.append(forged)
    return out


def limit_principal(emulator_url: str, token: str) -> str:
    """The principal ``/auth/me`` will answer for ``token``, built with the gateway's code."""
    claims = jwt.decode(token, options={"verify_signature": False})
    profile = httpx.get(
        f"{emulator_url}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    profile.raise_for_status()
    return TokenValidator.principal_from_claims(claims, profile.json()).model_dump_json()


async def burst(url: str, tokens: Sequence[str], connections: int) -> list[int]:
    """For each token in turn: ``connections`` concurrent ``GET /auth/me``; every status."""
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for token in tokens:
            headers = {"Authorization": f"Bearer {token}"}
            responses = await asyncio.gather(
                *(client.get("/auth/me", headers=headers) for _ in range(connections))
            )
            statuses.extend(r.status_code for r in responses)
    return statuses


# -- the run -------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table."""

    key: str
    label: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    rps_vs_a: float | None = None
    p99_vs_a: float | None = None
    rps_vs_a0: float | None = None
    p99_vs_a0: float | None = None
    cpu_us_per_request: float | None = None
    non_2xx: int | None = None
    socket_errors: int | None = None
    requests: int | None = None
    auth0_calls: int | None = None
    peak_rss_mib: float | None = None
    connections_per_worker: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    baseline: str = "a"  # the limit row this row's ratios are to


class Bench:
    """Owns the processes and the scratch directory of one run."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.pinning = Pinning.detect()
        self.tmp = Path(tempfile.mkdtemp(prefix="venue-gateway-bench-"))
        self.processes: list[Process] = []
        self.cleanups: list[Callable[[], None]] = []
        self.database_kind = "none"
        self.postgres: PostgresProcess | None = None
        self.rows: dict[str, Row] = {}
        self.notes: list[str] = []
        self.started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.load_before = load_average()

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        for cleanup in reversed(self.cleanups):
            cleanup()
        if self.options.keep_logs:
            print(f"bench: logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- setup ---------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Process:
        proc = Process(name, argv, {**os.environ, **(env or {})}, self.tmp / f"{name}.log")
        self.processes.append(proc)
        return proc

    def _server(
        self, name: str, app: str, env: Mapping[str, str], *, log_level: str | None = None
    ) -> Server:
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "bench.serve",
            "--app",
            app,
            "--port",
            str(port),
            "--workers",
            str(self.options.workers),
            "--launcher",
            self.options.launcher,
        ]
        argv += ["--log-level", log_level or self.options.log_level]
        server = Server(
            name,
            self.pinning.wrap(argv, self.pinning.server),
            {**os.environ, **env},
            self.tmp / f"{name}.log",
            drop_stdout=not self.options.keep_logs,
            port=port,
            workers=self.options.workers,
            stats_dir=self.tmp / f"{name}-stats",
        )
        self.processes.append(server)
        return server

    def _emulator(self, name: str, mint: int, issuer: str | None = None) -> tuple[str, Process]:
        port = free_port()
        tokens = self.tmp / f"{name}-tokens.txt"
        argv = [sys.executable, "-m", "bench.emulator", "--port", str(port)]
        argv += ["--mint", str(mint), "--tokens-out", str(tokens)]
        if issuer is not None:
            argv += ["--issuer", issuer.format(port=port)]
        # not pinned while it mints (one signing process per core), pinned once it serves
        return f"http://127.0.0.1:{port}", self._spawn(name, argv)

    def start(self) -> None:
        """Both emulators, memcached, the database, the gateway and the peer; all serving."""
        opts = self.options
        cold_count = opts.cold_tokens + BURST_TOKENS if "e" in opts.scenarios else 0
        self.emulator_url, emulator = self._emulator("emulator", 2 + cold_count)
        # the peer's tenant: an https issuer, which the plugin insists on (bench/peer_app.py)
        self.peer_emulator_url, peer_emulator = self._emulator(
            "peer-emulator", 1, issuer="https://127.0.0.1:{port}/"
        )
        for proc, url in ((emulator, self.emulator_url), (peer_emulator, self.peer_emulator_url)):
            tokens_file = self.tmp / f"{proc.name}-tokens.txt"

            def up(proc: Process = proc, url: str = url, tokens_file: Path = tokens_file) -> bool:
                proc.check_alive()
                return tokens_file.exists() and httpx.get(f"{url}/.well-known/jwks.json").is_success

            wait_until(up, proc.name, timeout_s=180)
            self.pinning.move(proc.pid, self.pinning.load)
        if self.pinning.load is not None:
            # this process is load side, and so is whatever it starts unless told otherwise
            os.sched_setaffinity(0, self.pinning.load)
        memcached_port = self.memcached_port = free_port()
        memcached = ["memcached", "-l", "127.0.0.1", "-p", str(memcached_port), "-U", "0"]
        memcached += ["-m", "256", "-c", "4096", "-t", "1"]
        if os.geteuid() == 0:
            memcached += ["-u", "root"]
        self._spawn("memcached", memcached)
        database_url = self._database()
        tokens = (self.tmp / "emulator-tokens.txt").read_text().split()
        self.token, self.admin_token = tokens[0], tokens[1]
        cold, self.burst_tokens = tokens[2:-BURST_TOKENS], tokens[-BURST_TOKENS:]
        if "e" not in opts.scenarios:
            cold, self.burst_tokens = [], []
        self.cold_file = self.tmp / "cold-tokens.txt"
        self.cold_file.write_text("\n".join(cold) + "\n")
        self.cold_count = len(cold)
        self.peer_token = (self.tmp / "peer-emulator-tokens.txt").read_text().split()[0]
        kid = jwt.get_unverified_header(self.token)["kid"]
        self.garbage_file = self.tmp / "garbage-tokens.txt"
        self.garbage_file.write_text("\n".join(garbage_tokens(self.token, kid)) + "\n")

        gateway_env = {
            "GATEWAY_ENV": "local",
            "GATEWAY_AUTH0__DOMAIN": self.emulator_url,
            "GATEWAY_CACHE__URL": f"memcached://127.0.0.1:{memcached_port}",
            "GATEWAY_CACHE__NAMESPACE": f"bench-{secrets.token_hex(4)}",
            "GATEWAY_DATABASE__URL": database_url,
            # one deployment: both gateways read each other's sealed cache entries
            "GATEWAY_SESSION__KEYS": generate_key(),
            "BENCH_LIMIT_PRINCIPAL": limit_principal(self.emulator_url, self.token),
        }
        self.gateway_env = gateway_env
        self.gateway = self._server("gateway", "bench.app:create_bench_app", gateway_env)
        self.quiet: Server | None = None
        if opts.log_level.upper() in {"DEBUG", "INFO"} and opts.quiet_gateway:
            # the same gateway without its per-request access line: what the line costs
            self.quiet = self._server(
                "gateway-quiet",
                "bench.app:create_bench_app",
                gateway_env,
                log_level="WARNING",
            )
        self.peer = self._server(
            "peer",
            "bench.peer_app:create_peer_app",
            {
                "BENCH_PEER_DOMAIN": self.peer_emulator_url.removeprefix("http://"),
                "BENCH_PEER_AUDIENCE": AUDIENCE,
            },
        )
        for server in (self.gateway, self.peer, self.quiet):
            if server is not None:
                server.wait_ready()
        # (a0) answers the very bytes the gateway answers for the bench token
        me = httpx.get(f"{self.gateway.url}/auth/me", headers=self._bearer(self.token), timeout=10)
        me.raise_for_status()
        self.gateway_env[BODY_ENV] = me.text
        self.bare = self._server("bare", "bench.bare_app:create_bare_app", {BODY_ENV: me.text})
        self.bare.wait_ready()
        self.client = httpx.Client(timeout=10)
        self._check_bodies()
        self.venue_path = self._venue_path() if "c" in self.options.scenarios else None

    def _traced_gateway(self) -> Server:
        """(b3): the gateway once more with tracing on, 10% of traces sampled, exported over
        OTLP/HTTP (batched) to a local receiver (:mod:`bench.otlp_sink`); what tracing costs."""
        port = free_port()
        sink = self._spawn("otlp-sink", [sys.executable, "-m", "bench.otlp_sink", f"--port={port}"])
        self.pinning.move(sink.pid, self.pinning.load)

        def sink_up() -> bool:
            sink.check_alive()
            return httpx.get(f"http://127.0.0.1:{port}/stats").is_success

        wait_until(sink_up, sink.name)
        tracing_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_SERVICE_NAME": "venue-gateway-bench",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
        app = "bench.app:create_bench_app"
        traced = self._server("gateway-traced", app, {**self.gateway_env, **tracing_env})
        traced.wait_ready()
        return traced

    def _database(self) -> str:
        """The venue database's URL: a throw-away PostgreSQL (what production runs) when the
        machine has one (``--database auto``), else an SQLite file."""
        choice = self.options.database
        if choice == "auto":
            choice = "postgres" if glob.glob("/usr/lib/postgresql/*/bin/initdb") else "sqlite"
        self.database_kind = choice
        if choice == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp / 'venues.db'}"
        # pg_stat_statements counts every statement (BEGIN and ROLLBACK too): round trips
        postgres = PostgresProcess(
            ["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track_utility=on"]
        ).start()
        self.cleanups.append(postgres.stop)
        self.postgres = postgres
        self._psql("CREATE EXTENSION pg_stat_statements")
        return postgres.url

    def _psql(self, sql: str) -> str:
        """One statement through ``psql`` on the bench's PostgreSQL; its output."""
        if self.postgres is None:
            raise RuntimeError("no PostgreSQL in this run")
        argv = [str(self.postgres.bindir / "psql"), "-h", "127.0.0.1"]
        argv += ["-p", str(self.postgres.port), "-U", "postgres", "-Atqc", sql]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603

    def _db_statements(self) -> int | None:
        """Statements PostgreSQL has run for the gateways so far (None on SQLite)."""
        if self.postgres is None:
            return None
        total = self._psql(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE query NOT LIKE '%pg_stat_statements%'"
        )
        return int(total)

    def _memcached_commands(self) -> int:
        """Commands memcached has served so far (a multi-key get counts once per key)."""
        stats = memcached_stats(self.memcached_port)
        return sum(stats.get(name, 0) for name in MEMCACHED_COMMANDS)

    def _check_bodies(self) -> None:
        me = self.client.get(f"{self.gateway.url}/auth/me", headers=self._bearer(self.token))
        limit = self.client.get(f"{self.gateway.url}/bench/limit")
        bare = self.client.get(f"{self.bare.url}/bench/limit")
        peer = self.client.get(f"{self.peer.url}/auth/me", headers=self._bearer(self.peer_token))
        for name, response in (("/auth/me", me), ("/bench/limit", limit), ("peer", peer)):
            if response.status_code != 200:
                raise RuntimeError(f"{name} answered {response.status_code}: {response.text}")
        if not me.content == limit.content == bare.content:
            raise RuntimeError("/bench/limit must answer /auth/me's body byte for byte")
        self.body_bytes = {"a_b": len(me.content), "d": len(peer.content)}

    def _venue_path(self) -> str | None:
        """``/venues/<id>`` of a venue made for the run, or None when the app has no venues."""
        schema = self.client.get(f"{self.gateway.url}/openapi.json").json()
        if "/venues/{venue_id}" not in schema.get("paths", {}):
            return None
        admin = self._bearer(self.admin_token)
        listed = self.client.get(f"{self.gateway.url}/venues", headers=admin)
        items = listed.json().get("items", []) if listed.is_success else []
        if not items:
            created = self.client.post(
                f"{self.gateway.url}/venues",
                headers=admin,
                json={
                    "name": "Bench Hall",
                    "address": "Benchstraße 1",
                    "city": "Berlin",
                    "country": "DE",
                    "timezone": "Europe/Berlin",
                    "capacity": 1200,
                },
            )
            if not created.is_success:
                self.notes.append(f"(c) skipped: creating a venue answered {created.status_code}")
                return None
            items = [created.json()]
        return f"/venues/{items[0]['id']}"

    @staticmethod
    def _bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # -- measuring -----------------------------------------------------------------------

    def _auth0_calls(self, url: str) -> dict[str, int]:
        """Requests per route the emulator at ``url`` served since the last reset."""
        requests: dict[str, int] = self.client.get(f"{url}/__emulator/stats").json()["requests"]
        return requests

    def _reset_auth0_calls(self, url: str) -> None:
        self.client.post(f"{url}/__emulator/stats/reset").raise_for_status()

    def _validations(self) -> int:
        return sum(c["validations"] for c in self.gateway.counters().values())

    def _wrk(self, server: Server, path: str, env: Mapping[str, str], seconds: float) -> Run:
        opts = self.options
        cpu_before = server.cpu_seconds()
        run = run_wrk(
            server.url + path,
            duration=seconds,
            connections=opts.connections,
            threads=opts.threads,
            pinning=self.pinning,
            env=env,
            during=server.connections_per_worker,
        )
        run.raw["server_cpu_s"] = server.cpu_seconds() - cpu_before
        return run

    def _record(
        self, key: str, label: str, server: Server, runs: list[Run], calls: Mapping[str, int]
    ) -> Row:
        """One row from one or more runs: their requests over their time, the median p50/p99."""
        seconds = sum(run.seconds for run in runs)
        requests = sum(run.requests for run in runs)
        statuses: Counter[str] = Counter()
        for run in runs:
            statuses.update(run.raw.get("statuses", {}))
        row = Row(
            key=key,
            label=label,
            rps=requests / seconds if seconds else 0.0,
            p50_ms=statistics.median(run.p50_ms for run in runs),
            p99_ms=statistics.median(run.p99_ms for run in runs),
            cpu_us_per_request=(
                sum(run.raw["server_cpu_s"] for run in runs) / requests * 1e6 if requests else None
            ),
            non_2xx=sum(run.non_2xx for run in runs),
            socket_errors=sum(run.socket_errors for run in runs),
            requests=requests,
            auth0_calls=sum(calls.values()),
            peak_rss_mib=server.memory_kib()["peak"] / 1024,
            connections_per_worker=list(runs[-1].raw.get("sampled", {}).values()),
            extra={
                "requests_sent": sum(run.sent for run in runs),
                "statuses": dict(statuses),
                "auth0_calls_by_route": dict(calls),
                "rounds": [
                    {"rps": round(run.rps, 1), "p50_ms": run.p50_ms, "p99_ms": run.p99_ms}
                    for run in runs
                ],
            },
        )
        self.rows[key] = row
        return row

    def _measure(
        self,
        key: str,
        label: str,
        server: Server,
        path: str,
        env: Mapping[str, str],
        *,
        emulator_url: str,
        seconds: float,
    ) -> Row:
        self._reset_auth0_calls(emulator_url)
        run = self._wrk(server, path, env, seconds)
        return self._record(key, label, server, [run], self._auth0_calls(emulator_url))

    def run(self) -> dict[str, Any]:
        """Every scenario; the result document.

        (a) to (d) run interleaved, ``--rounds`` times each for ``--duration / --rounds``, so
        that a slow spell of the machine does not fall on one scenario only; then (e), (f).
        """
        opts = self.options
        wanted = opts.scenarios
        cached = {"BENCH_WRK_MODE": "bearer", "BENCH_WRK_TOKEN": self.token}
        peer = {"BENCH_WRK_MODE": "bearer", "BENCH_WRK_TOKEN": self.peer_token}
        plain = {"BENCH_WRK_MODE": "none"}
        gateway, peer_server = self.gateway, self.peer
        plans: list[tuple[str, str, Server, str, Mapping[str, str], str]] = [
            ("a0", "(a0) bare FastAPI route, same bytes", self.bare, "/bench/limit", plain, ""),
            ("a", "(a) gateway stack, no auth: /bench/limit", gateway, "/bench/limit", plain, ""),
            ("b", "(b) GET /auth/me, cached token", gateway, "/auth/me", cached, ""),
        ]
        if self.venue_path is not None:
            label = f"(c) GET {self.venue_path}, cached"
            plans.append(("c", label, gateway, self.venue_path, cached, ""))
        elif "c" in wanted:
            self.rows["c"] = Row("c", "(c) GET /venues/{id}", skipped="the app has no venues")
        label = "(d) peer: auth0-fastapi-api GET /auth/me"
        plans.append(("d", label, peer_server, "/auth/me", peer, "peer"))
        if self.quiet is not None:
            label = "(a2) = (a), gateway without access log"
            plans.append(("a2", label, self.quiet, "/bench/limit", plain, ""))
            label = "(b2) = (b), gateway without access log"
            plans.append(("b2", label, self.quiet, "/auth/me", cached, ""))
        if "b" in wanted:
            label = "(b3) = (b), traced, 10% sampled, OTLP/HTTP"
            plans.append(("b3", label, self._traced_gateway(), "/auth/me", cached, ""))
        plans = [plan for plan in plans if plan[0][0] in wanted]

        for _, _, server, path, env, _ in plans:
            self._wrk(server, path, env, opts.warmup)
        soak_start = gateway.memory_kib()
        runs: dict[str, list[Run]] = {plan[0]: [] for plan in plans}
        calls: dict[str, Counter[str]] = {plan[0]: Counter() for plan in plans}
        statements: Counter[str] = Counter()
        for _ in range(opts.rounds):
            for key, _, server, path, env, which in plans:
                url = self.peer_emulator_url if which == "peer" else self.emulator_url
                self._reset_auth0_calls(url)
                before = self._db_statements()
                runs[key].append(self._wrk(server, path, env, opts.duration / opts.rounds))
                after = self._db_statements()
                if before is not None and after is not None:
                    statements[key] += after - before
                calls[key].update(self._auth0_calls(url))
        for key, label, server, _, _, _ in plans:
            row = self._record(key, label, server, runs[key], calls[key])
            row.baseline = "a2" if key.endswith("2") else "a"
        if "c" in runs and self.postgres is not None:
            # every statement of the interval, the background ones too (the revocation poll,
            # a few a second), over the reads: an upper bound on the round trips per read
            c = self.rows["c"]
            c.extra["db_statements"] = statements["c"]
            c.extra["db_round_trips_per_read"] = statements["c"] / (c.requests or 1)
        soaked = sum(run.requests for key in "abc" for run in runs.get(key, []))
        topped_up = 0
        while "b" in runs and soaked < opts.soak_requests and topped_up < 20:
            soaked += self._wrk(gateway, "/auth/me", cached, opts.duration).requests
            topped_up += 1
        soak_end = gateway.memory_kib()

        if "a0" in runs and opts.open_loop_duration > 0:
            self._open_loop(cached, peer)
        if opts.layer_requests > 0:
            self._layers()
        if "e" in wanted:
            self._cold()
        if "f" in wanted:
            garbage = {
                "BENCH_WRK_MODE": "tokens",
                "BENCH_WRK_TOKENS_FILE": str(self.garbage_file),
                "BENCH_WRK_STATUSES": "1",
            }
            self._measure(
                "f",
                "(f) garbage tokens, rejected",
                gateway,
                "/auth/me",
                garbage,
                emulator_url=self.emulator_url,
                seconds=opts.duration,
            )
        return self._document(soak_start, soak_end, soaked)

    def _open_loop(self, cached: Mapping[str, str], peer: Mapping[str, str]) -> None:
        """(a0), (b) and (d) at one fixed rate, half of (a0)'s throughput: their latencies."""
        opts = self.options
        rate = (self.rows["a0"].rps or 0) / 2
        self.open_loop: dict[str, dict[str, Any]] = {}
        targets: list[tuple[str, Server, str, Mapping[str, str]]] = [
            ("a0", self.bare, "/bench/limit", {})
        ]
        targets.append(("b", self.gateway, "/auth/me", cached))
        targets.append(("d", self.peer, "/auth/me", peer))
        for key, server, path, env in targets:
            if key not in self.rows:
                continue
            token = env.get("BENCH_WRK_TOKEN")
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            run: OpenLoopRun = run_hey(
                server.url + path,
                rate=rate,
                duration=opts.open_loop_duration,
                workers=opts.open_loop_workers,
                pinning=self.pinning,
                headers=headers,
            )
            self.open_loop[key] = asdict(run)

    def _layers(self) -> None:
        """The cost table: :mod:`bench.layers` on the server's core, with the gateway's settings."""
        opts = self.options
        argv = [sys.executable, "-m", "bench.layers", "--token", self.token]
        argv += ["--requests", str(opts.layer_requests), "--repeats", str(opts.layer_repeats)]
        argv += ["--log-level", opts.log_level]
        done = subprocess.run(  # noqa: S603 - argv built here
            self.pinning.wrap(argv, self.pinning.server),
            env={**os.environ, **self.gateway_env},
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if done.returncode != 0:
            self.notes.append(f"cost table skipped: bench.layers failed: {done.stderr[-500:]}")
            return
        self.layer_us: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])

    def _cold(self) -> None:
        """(e): a new token per request under wrk, then bursts of one new token on every
        connection at once; both count the gateway's validations and the Auth0 calls."""
        opts = self.options
        before = self._validations()
        commands_before = self._memcached_commands()
        env = {
            "BENCH_WRK_MODE": "tokens",
            "BENCH_WRK_TOKENS_FILE": str(self.cold_file),
            "BENCH_WRK_STATUSES": "1",
        }
        row = self._measure(
            "e",
            "(e) cold: a new valid token per request",
            self.gateway,
            "/auth/me",
            env,
            emulator_url=self.emulator_url,
            seconds=opts.cold_duration,
        )
        time.sleep(0.5)  # the requests wrk left in flight when it stopped finish
        validations = self._validations() - before
        commands = self._memcached_commands() - commands_before
        answered = row.requests or 0
        sent = int(row.extra["requests_sent"])
        reused = max(0, sent - self.cold_count)
        # Each token was sent once, so between "answered" and "sent" tokens reached the gateway:
        # fewer validations means a token was let through unvalidated, more means one twice.
        row.extra.update(
            tokens_minted=self.cold_count,
            tokens_answered=answered,
            tokens_sent=sent,
            validations=validations,
            validations_per_token=validations / answered if answered else None,
            one_validation_per_token=not reused and answered <= validations <= sent,
            auth0_calls_per_token=(row.auth0_calls or 0) / answered if answered else None,
            memcached_commands=commands,
            memcached_commands_per_validation=commands / validations if validations else None,
        )
        if reused:
            self.notes.append(
                f"(e) ran out of its {self.cold_count} tokens ({reused} requests reused one): "
                "raise --cold-tokens"
            )

        self._reset_auth0_calls(self.emulator_url)
        before = self._validations()
        statuses = asyncio.run(burst(self.gateway.url, self.burst_tokens, opts.connections))
        row.extra["burst"] = {
            "tokens": len(self.burst_tokens),
            "requests": len(statuses),
            "non_200": sum(1 for status in statuses if status != 200),
            "validations": self._validations() - before,
            "auth0_calls": sum(self._auth0_calls(self.emulator_url).values()),
        }

    # -- the result ----------------------------------------------------------------------

    def _document(
        self, soak_start: dict[str, int], soak_end: dict[str, int], soaked: int
    ) -> dict[str, Any]:
        rows = self.rows
        bare = rows.get("a0")
        for row in rows.values():
            limit = rows.get(row.baseline)
            if limit is not None and limit.rps and limit.p99_ms and row.rps is not None:
                row.rps_vs_a = row.rps / limit.rps
                row.p99_vs_a = (row.p99_ms or 0) / limit.p99_ms
            if bare is not None and bare.rps and bare.p99_ms and row.rps is not None:
                row.rps_vs_a0 = row.rps / bare.rps
                row.p99_vs_a0 = (row.p99_ms or 0) / bare.p99_ms
        growth = (soak_end["rss"] - soak_start["rss"]) / soak_start["rss"] if soaked else None
        checks: dict[str, dict[str, Any]] = {}

        def check(name: str, value: float | None, ok: bool | None, target: str) -> None:
            checks[name] = {"value": value, "target": target, "met": ok}

        b, c, d, e, f, b2 = (rows.get(k) for k in ("b", "c", "d", "e", "f", "b2"))

        def at_least(name: str, row: Row | None) -> None:
            key = f"{name}_rps_vs_a0"
            if row is not None and row.rps_vs_a0 is not None:
                target = TARGETS[key]
                check(key, row.rps_vs_a0, row.rps_vs_a0 >= target, f">= {target:.2f}")

        at_least("b", b)
        at_least("b2", b2)
        at_least("c", c)
        at_least("e", e)
        if b and d and b.rps and d.rps:
            ratio = b.rps / d.rps
            target = TARGETS["b_rps_vs_d"]
            check("b_rps_vs_d", ratio, ratio >= target, f">= {target:.1f}")
        open_loop = getattr(self, "open_loop", {})
        for key, run in open_loop.items():
            if run["achieved_rps"] < 0.95 * run["target_rps"]:
                self.notes.append(
                    f"fixed rate: ({key}) answered {run['achieved_rps']:,.0f} of "
                    f"{run['target_rps']:,.0f} req/s: it could not hold the rate, so its "
                    "latencies there are those of a saturated server"
                )
        if "a0" in open_loop and "b" in open_loop and open_loop["a0"]["p99_ms"]:
            ratio = open_loop["b"]["p99_ms"] / open_loop["a0"]["p99_ms"]
            target = TARGETS["open_loop_b_p99_vs_a0"]
            held = open_loop["b"]["achieved_rps"] >= 0.95 * open_loop["b"]["target_rps"]
            check(
                "open_loop_b_p99_vs_a0",
                ratio,
                ratio <= target and held,
                f"<= {target:.1f}, with (b) holding the rate",
            )
        if c is not None and "db_round_trips_per_read" in c.extra:
            trips = c.extra["db_round_trips_per_read"]
            target = TARGETS["c_db_round_trips"]
            check("c_db_round_trips", trips, trips <= target, f"<= {target:.0f} per read")
        if e is not None and e.extra.get("memcached_commands_per_validation") is not None:
            per = e.extra["memcached_commands_per_validation"]
            target = TARGETS["e_memcached_commands"]
            check("e_memcached_commands", per, per <= target, f"<= {target:.0f} per validation")
        if e is not None:
            one = bool(e.extra.get("one_validation_per_token"))
            check(
                "e_one_validation_per_token",
                e.extra.get("validations"),
                one,
                f"between answered ({e.extra['tokens_answered']}) "
                f"and sent ({e.extra['tokens_sent']})",
            )
            burst_run = e.extra["burst"]
            check(
                "e_burst_validations",
                burst_run["validations"],
                burst_run["validations"] == burst_run["tokens"] and not burst_run["non_200"],
                f"== {burst_run['tokens']} tokens x {self.options.connections} connections at once",
            )
        if f is not None:
            check("f_auth0_calls", f.auth0_calls, f.auth0_calls == 0, "== 0")
            statuses = f.extra["statuses"]
            check(
                "f_all_401",
                statuses,
                set(statuses) == {"401"},
                "every garbage token answered 401",
            )
        if growth is not None:
            check(
                "rss_growth",
                growth,
                growth < TARGETS["rss_growth"] and soaked >= self.options.soak_requests,
                f"< 10% over {self.options.soak_requests} requests (ran {soaked})",
            )
        for row in rows.values():
            if row.skipped is None and row.key != "f" and (row.non_2xx or row.socket_errors):
                self.notes.append(
                    f"{row.label}: {row.non_2xx} non-2xx answers, {row.socket_errors} socket errors"
                )
        busy = self.load_before[0] > BUSY_LOAD
        if busy:
            self.notes.append(
                f"the machine was busy before the run (load average {self.load_before[0]:.2f}): "
                "other processes competed for the cores, numbers are pessimistic and noisy"
            )
        return {
            "started_at": self.started_at,
            "machine": machine(),
            "load_average": {"before": self.load_before, "after": load_average()},
            "options": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.options).items()
            },
            "pinning": {"server_cores": self.pinning.server, "load_cores": self.pinning.load},
            "database": self.database_kind,
            "body_bytes": self.body_bytes,
            "rows": {k: asdict(rows[k]) for k in sorted(rows, key=ROW_ORDER.index)},
            "soak": {
                "requests": soaked,
                "rss_kib_before": soak_start["rss"],
                "rss_kib_after": soak_end["rss"],
                "growth": growth,
            },
            "open_loop": {
                "rate_rps": round((bare.rps or 0) / 2, 1) if bare else None,
                "workers": self.options.open_loop_workers,
                "rows": open_loop,
            },
            "layers": {
                "variants_us": getattr(self, "layer_us", None),
                "table": cost_table(self.layer_us, bare.cpu_us_per_request if bare else None)
                if getattr(self, "layer_us", None)
                else None,
            },
            "gateway_workers": self.gateway.counters(),
            "checks": checks,
            "notes": self.notes,
        }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table and write the JSON."""
    options = parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("memcached") is None:
        print("bench needs wrk and memcached (make bench installs them)", file=sys.stderr)
        return 2
    with Bench(options) as bench:
        print(
            f"bench: starting (workers={options.workers}, launcher={options.launcher}, "
            f"pinning server={bench.pinning.server} load={bench.pinning.load})",
            flush=True,
        )
        bench.start()
        print("bench: measuring", flush=True)
        document = bench.run()
    options.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = document["started_at"].replace(":", "").replace("-", "")
    path = options.out_dir / f"{stamp}-w{options.workers}-{options.launcher}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(table(document))
    print(f"\nwritten: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    missed = [name for name, check in document["checks"].items() if not check["met"]]
    return 1 if options.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
