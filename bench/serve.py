"""Serve an app factory for the benchmark as ``gateway serve`` does, with N workers two ways.

The uvicorn options, the JSON log configuration and the per-worker metrics directory are the
ones of :mod:`app.server` (``gateway serve``), with uvloop and httptools named explicitly; only
the app factory differs (:mod:`bench.app` adds the limit route to the gateway).

``--launcher uvicorn`` is what ``gateway serve --workers N`` does: uvicorn's supervisor binds
one socket and every worker accepts from it. The kernel wakes whichever worker is idle, so a
burst of keep-alive connections (wrk opens all of its connections at once) can land unevenly,
even all on one worker, and stay there. ``--launcher reuseport`` starts N independent uvicorn
processes that each bind the port with ``SO_REUSEPORT``: the kernel hashes every new connection
to one of the N listening sockets, which spreads connections evenly.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

import uvicorn

from app.observability.logging import uvicorn_log_config
from app.server import SERVER_OPTIONS, multiprocess_metrics_dir


def _options(args: argparse.Namespace) -> dict[str, Any]:
    level = args.log_level.upper()
    return {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": uvicorn_log_config(level),
        "log_level": level.lower(),
        "timeout_graceful_shutdown": 5,
        **SERVER_OPTIONS,
    }


def _reuseport_worker(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((args.host, args.port))
    sock.set_inheritable(True)
    uvicorn.Server(uvicorn.Config(args.app, **_options(args))).run(sockets=[sock])


def _serve_reuseport(args: argparse.Namespace) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_reuseport_worker, args=(args,), name=f"bench-worker-{i}")
        for i in range(args.workers)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        del frame
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                worker.terminate()
        for worker in workers:
            worker.join(timeout=10)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.join()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m bench.serve --app module:factory --port P``."""
    parser = argparse.ArgumentParser(description="Serve an app factory for the benchmark.")
    parser.add_argument("--app", required=True, help="module:factory of the ASGI app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--launcher", choices=("uvicorn", "reuseport"), default="uvicorn")
    parser.add_argument("--log-level", default=os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    with multiprocess_metrics_dir(args.workers):
        if args.launcher == "reuseport" and args.workers > 1:
            _serve_reuseport(args)
        else:
            uvicorn.run(args.app, workers=args.workers, **_options(args))


if __name__ == "__main__":
    main()
