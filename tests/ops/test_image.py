"""The image, built and run with podman: gateway and emulator containers read-only, without
capabilities, as uid 10001; a login through them; both HEALTHCHECKs; a graceful SIGTERM; the
migrations through the image. Skipped, saying why, where podman cannot run containers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import VIEWER, bearer
from tests.servers import MemcachedProcess, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
PODMAN = ROOT / "ops/container/podman.sh"
BASE_IMAGE = "localhost/venue-gateway-base:bookworm"
# one tag per checkout, so that test runs of several checkouts on one machine do not collide
IMAGE = f"localhost/venue-gateway:test-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}"
UID = "10001"
HARDENED = [
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    f"--user={UID}:{UID}",
    # loopback only: the containers and the test share the host's network namespace
    "--network=host",
]

# a first build installs every dependency (about 90 s here); later ones reuse the cached layers
pytestmark = pytest.mark.timeout(900)


def podman(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own wrapper, fixed argv
        [str(PODMAN), *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def why_podman_cannot_run() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (make system-packages installs it)"
    info = podman("info", timeout_s=60)
    if info.returncode != 0:
        return f"podman cannot run here: {info.stderr.strip()[-300:]}"
    if podman("image", "exists", BASE_IMAGE).returncode != 0:
        return f"no base image {BASE_IMAGE}: `make image-base` makes it"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    reason = why_podman_cannot_run()
    if reason is not None:
        pytest.skip(reason)
    # layers are cached: only what changed is rebuilt (the code, seconds; the lock file, a minute)
    built = podman("build", "-t", IMAGE, str(ROOT), timeout_s=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


class Container:
    """A detached container, removed at the end."""

    def __init__(self, image: str, *args: str, env: dict[str, str], options: list[str]) -> None:
        self.name = f"vg-test-{uuid.uuid4().hex[:10]}"
        environment = [f"--env={key}={value}" for key, value in env.items()]
        started = podman(
            "run", "-d", f"--name={self.name}", *HARDENED, *options, *environment, image, *args
        )
        assert started.returncode == 0, started.stderr

    def inspect(self) -> dict[str, Any]:
        result = podman("inspect", self.name)
        assert result.returncode == 0, result.stderr
        data: list[dict[str, Any]] = json.loads(result.stdout)
        return data[0]

    def logs(self) -> str:
        result = podman("logs", self.name)
        return result.stdout + result.stderr

    def healthy(self) -> bool:
        """Run the image's HEALTHCHECK now (no systemd here to run it on its interval)."""
        return podman("healthcheck", "run", self.name).returncode == 0

    def remove(self) -> None:
        podman("rm", "-f", "-t", "5", self.name)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's SQLite directory, the one writable path, owned by the image's user."""
    directory = tmp_path_factory.mktemp("image-data")
    shutil.chown(directory, int(UID), int(UID))
    return directory


def wait_healthy(container: Container, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not container.healthy():
        assert time.monotonic() < deadline, container.logs()
        time.sleep(0.5)


@pytest.fixture(scope="module")
def running(image: str, data_dir: Path) -> Iterator[tuple[Container, Container, str, str]]:
    memcached = MemcachedProcess().start()
    emulator_port, gateway_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    database_url = "sqlite+aiosqlite:////var/lib/venue-gateway/data/venues.db"
    volume = [f"--volume={data_dir}:/var/lib/venue-gateway/data:Z"]
    env = {
        "GATEWAY_ENV": "local",
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_AUTH0__DOMAIN": emulator_url,
        "GATEWAY_CACHE__URL": memcached.url,
        "GATEWAY_DATABASE__URL": database_url,
        "GATEWAY_GRACEFUL_TIMEOUT_S": "10",
    }
    containers: list[Container] = []
    try:
        # the migrations, through the image, as an operator runs them before serving
        upgrade = podman(
            "run",
            "--rm",
            *HARDENED,
            *volume,
            *[f"--env={k}={v}" for k, v in env.items()],
            image,
            "db",
            "upgrade",
        )
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        assert (data_dir / "venues.db").exists()

        emulator = Container(
            image,
            "emulator",
            "--host=127.0.0.1",
            f"--port={emulator_port}",
            f"--issuer={emulator_url}/",
            env={},
            options=[],
        )
        containers.append(emulator)
        wait_for_port(emulator_port, timeout_s=60)
        gateway = Container(image, env=env, options=volume)
        containers.append(gateway)
        wait_for_port(gateway_port, timeout_s=60)
        yield emulator, gateway, emulator_url, f"http://127.0.0.1:{gateway_port}"
    finally:
        for container in containers:
            container.remove()
        memcached.stop()


# a package's directory or an executable (pip, pip3, pip3.11), its metadata or its wheel
PACKAGING_TOOL = re.compile(
    r"(pip|setuptools)(\d[\d.]*)?|(pip|setuptools)-[^/]*\.(dist-info|egg-info|whl)"
)


def packaging_tools_in(image: str) -> list[str]:
    """Every path of the image's whole file system that is pip or setuptools, or part of one."""
    name = f"vg-test-{uuid.uuid4().hex[:10]}"
    created = podman("create", f"--name={name}", *HARDENED, "--entrypoint=true", image)
    assert created.returncode == 0, created.stderr
    try:
        # the merged file system, as the container sees it (files a later layer deleted are not
        # in it), read as the storage holds it: no directory is hidden by its permissions
        with subprocess.Popen(  # noqa: S603 - our own wrapper, fixed argv
            [str(PODMAN), "export", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as exported:
            assert exported.stdout is not None
            with tarfile.open(fileobj=exported.stdout, mode="r|") as archive:
                paths = [member.name for member in archive]
            status = exported.wait(timeout=300)
            errors = exported.stderr.read().decode() if exported.stderr else ""
            assert status == 0, errors
    finally:
        podman("rm", "-f", name)
    assert len(paths) > 1000, "the export is not the image's file system"
    return sorted(
        path
        for path in paths
        if any(PACKAGING_TOOL.fullmatch(part) for part in PurePosixPath(path).parts)
    )


def test_no_pip_or_setuptools_anywhere_in_the_image(image: str) -> None:
    # the base has them (the stand-in: Debian's wheels for venv; the official image: installed),
    # so the search finds what the Dockerfile must remove
    assert packaging_tools_in(BASE_IMAGE)
    assert packaging_tools_in(image) == []
    probe = "import importlib.util as u; print(u.find_spec('pip'), u.find_spec('setuptools'))"
    result = podman("run", "--rm", *HARDENED, "--entrypoint=python", image, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None None"


def test_the_image_keeps_its_healthcheck(image: str) -> None:
    result = podman("image", "inspect", image)
    inspected = json.loads(result.stdout)[0]
    # podman keeps it only in the Docker format (--format docker)
    assert inspected["Healthcheck"]["Test"] == ["CMD", "gateway", "healthcheck"]
    assert inspected["Config"]["User"] == f"{UID}:{UID}"


def test_both_containers_are_healthy_hardened_and_unprivileged(
    running: tuple[Container, Container, str, str],
) -> None:
    emulator, gateway, _, _ = running
    for container in (emulator, gateway):
        wait_healthy(container)
        host = container.inspect()["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert podman("exec", container.name, "id", "-u").stdout.strip() == UID
        status = podman("exec", container.name, "grep", "CapEff", "/proc/self/status").stdout
        assert status.split()[-1] == "0000000000000000", status
        assert podman("exec", container.name, "touch", "/opt/venv/x").returncode != 0


async def test_login_through_the_containers(running: tuple[Container, Container, str, str]) -> None:
    _, _, _, gateway_url = running
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        login = await client.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert login.status_code == 200, login.text
        me = await client.get("/auth/me", headers=bearer(login.json()["access_token"]))
        assert me.status_code == 200
        assert me.json()["sub"]
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text


async def test_sigterm_lets_the_request_in_flight_finish(
    running: tuple[Container, Container, str, str],
) -> None:
    _, gateway, emulator_url, gateway_url = running
    fault = {"path": "/oauth/token", "status": None, "delay_ms": 2000}
    async with httpx.AsyncClient(base_url=emulator_url) as control:
        assert (await control.post("/__emulator/faults", json=fault)).status_code < 300
    async with httpx.AsyncClient(base_url=gateway_url, timeout=15) as client:
        in_flight = asyncio.create_task(
            client.post("/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]})
        )
        await asyncio.sleep(0.7)
        stopped = await asyncio.to_thread(podman, "kill", "--signal=TERM", gateway.name)
        assert stopped.returncode == 0, stopped.stderr
        response = await in_flight
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    while (state := gateway.inspect()["State"])["Running"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    # uvicorn stops gracefully and then re-raises SIGTERM: 143 (128 + 15) or 0
    assert state["ExitCode"] in {0, 143}, gateway.logs()
    assert "Application shutdown complete." in gateway.logs()
