"""The Dockerfile passes hadolint; compose.yaml passes the Compose schema and wires what
operators rely on. The files are checked here; tests/ops/test_image.py builds and runs the image."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(shutil.which("hadolint") or ROOT / ".venv/bin/hadolint").parent
SCHEMA = ROOT / "ops/compose-spec.json"


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own linters, fixed argv
        [str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False
    )


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


class TestDockerfile:
    def test_hadolint_passes(self) -> None:
        result = run(BIN / "hadolint", ROOT / "Dockerfile")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_hadolint_would_catch_a_regression(self, tmp_path: Path) -> None:
        bad = tmp_path / "Dockerfile"
        bad.write_text(
            dockerfile().replace("WORKDIR /src", "RUN apt-get install curl\nWORKDIR /src")
        )
        assert run(BIN / "hadolint", bad).returncode != 0

    def test_multi_stage_slim_and_unprivileged(self) -> None:
        text = dockerfile()
        assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
        assert "slim" in re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.MULTILINE)[1]  # type: ignore[index]
        users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
        assert users, "no USER"
        assert users[-1].split(":")[0] not in {"0", "root"}
        assert "COPY --from=build /opt/venv /opt/venv" in text

    def test_healthcheck_and_the_app_factory(self) -> None:
        text = dockerfile()
        healthcheck = re.search(r"^HEALTHCHECK (?:.*\\\n)*.*", text, re.MULTILINE)
        assert healthcheck is not None
        # one word per argument: podman's Docker API splits exec-form arguments on spaces
        assert healthcheck[0].endswith('CMD ["gateway", "healthcheck"]')
        assert 'ENTRYPOINT ["gateway"]' in text
        assert 'CMD ["serve"]' in text

    def test_installs_the_lock_file_before_the_code(self) -> None:
        text = dockerfile()
        assert "# syntax=" not in text, "BuildKit would fetch a frontend from Docker Hub"
        lock = text.index("COPY requirements.lock")
        assert lock < text.index("COPY app ./app")
        assert "--require-hashes" in text
        assert "--without-pip /opt/venv" in text

    def test_the_emulator_example_names_its_issuer(self) -> None:
        example = next(
            line for line in dockerfile().splitlines() if "run venue-gateway emulator" in line
        )
        assert "--issuer" in example

    def test_build_context_is_an_allow_list(self) -> None:
        lines = (ROOT / ".dockerignore").read_text().splitlines()
        assert lines[lines.index("*")] == "*"
        expected = {"!app/", "!settings/", "!emulator/", "!pyproject.toml", "!requirements.lock"}
        assert expected <= set(lines)


class TestCompose:
    def test_valid_against_the_compose_schema(self) -> None:
        result = run(BIN / "check-jsonschema", "--schemafile", SCHEMA, ROOT / "compose.yaml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_the_schema_would_catch_a_mistake(self, tmp_path: Path) -> None:
        data = compose()
        data["services"]["gateway"]["depends_on"]["memcached"] = {"condtion": "service_healthy"}
        bad = tmp_path / "compose.yaml"
        bad.write_text(yaml.safe_dump(data))
        assert run(BIN / "check-jsonschema", "--schemafile", SCHEMA, bad).returncode != 0

    def test_gateway_and_memcached_always_emulator_only_local(self) -> None:
        services = compose()["services"]
        assert set(services) == {"gateway", "memcached", "emulator"}
        assert "profiles" not in services["gateway"]
        assert "profiles" not in services["memcached"]
        assert services["emulator"]["profiles"] == ["local"]
        depends = services["gateway"]["depends_on"]
        assert depends["memcached"] == {"condition": "service_healthy"}
        assert depends["emulator"]["required"] is False

    def test_gateway_wiring(self) -> None:
        gateway = compose()["services"]["gateway"]
        env = gateway["environment"]
        # a default that .env overrides, like every other setting here
        assert env["GATEWAY_CACHE__URL"] == "${GATEWAY_CACHE__URL:-memcached://memcached:11211}"
        assert "http://emulator:8001" in env["GATEWAY_AUTH0__DOMAIN"]
        assert gateway["healthcheck"]["test"] == ["CMD", "gateway", "healthcheck"]
        assert gateway["user"].split(":")[0] not in {"0", "root"}
        assert gateway["read_only"] is True
        assert gateway["tmpfs"] == ["/tmp"]  # noqa: S108 - the workers' metrics directory
        # the stop grace outlasts `gateway serve`'s graceful timeout (20 s)
        assert int(gateway["stop_grace_period"].rstrip("s")) > 20

    def test_emulator_issuer_is_what_the_gateway_calls(self) -> None:
        services = compose()["services"]
        command = services["emulator"]["command"]
        issuer = command[command.index("--issuer") + 1]
        domain = services["gateway"]["environment"]["GATEWAY_AUTH0__DOMAIN"]
        assert issuer == re.search(r":-(.+)\}", domain)[1] + "/"  # type: ignore[index]

    @pytest.mark.parametrize("service", ["gateway", "memcached", "emulator"])
    def test_every_service_has_a_healthcheck(self, service: str) -> None:
        healthcheck = compose()["services"][service]["healthcheck"]
        assert healthcheck["test"]
        assert healthcheck["start_interval"] == "1s"

    def test_the_image_is_built_once(self) -> None:
        services = compose()["services"]
        assert "build" in services["gateway"]
        assert "build" not in services["emulator"]
        assert services["emulator"]["image"] == services["gateway"]["image"]
        assert services["emulator"]["pull_policy"] == "never"

    def test_says_which_compose_it_needs(self) -> None:
        assert "Compose 2.24 or newer" in (ROOT / "compose.yaml").read_text()
