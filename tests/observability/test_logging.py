"""Logs: one JSON object a line, a request id on each, and never a credential."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.auth.cipher import generate_key
from app.observability.logging import (
    MASK,
    JsonLineFormatter,
    json_handler,
    redact,
    register_secrets,
    register_settings_secrets,
    uvicorn_log_config,
)
from settings import Settings
from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, VIEWER, bearer
from tests.e2e.test_token_validation import direct_token

Factory = Callable[..., Any]

JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhdXRoMHwxMjMifQ."
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)
REFRESH = "v1.MRrTbNTiMn-dV5Vd1H-sT2cyL8hqTnplFlYdpEYSRhQ2UnwP6V4xB0a"


class LogCapture:
    """Every line the JSON handler writes while attached to the root logger."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        """Each line parsed; fails when a line is not one JSON object."""
        lines = [line for line in self.text.splitlines() if line]
        parsed = [json.loads(line) for line in lines]
        assert all(isinstance(item, dict) for item in parsed)
        return parsed

    def access(self) -> list[dict[str, Any]]:
        """The access lines."""
        return [item for item in self.records() if item["logger"] == "app.access"]


@pytest.fixture
def json_logs() -> Iterator[LogCapture]:
    """The production handler (JSON, request id, redaction) on the root logger at DEBUG."""
    capture = LogCapture()
    handler = json_handler(capture.stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(handler)
    root.setLevel(previous)


class TestRedact:
    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            (f"token {JWT} rejected", JWT),
            (f"rotated {REFRESH}", REFRESH),
            ("Authorization: Bearer abcdefghijklmnop123", "abcdefghijklmnop123"),
            ("authorization=Basic dmVudWUtc2VydmljZTpzZWNyZXQ=", "dmVudWUtc2VydmljZTpzZWNyZXQ="),
            ("username=jane&password=Hunter2-secret&grant_type=password", "Hunter2-secret"),
            ('{"password": "Hunter2-secret"}', "Hunter2-secret"),
            ("client_secret: s3cr3t-value-here", "s3cr3t-value-here"),
            ("refresh_token='opaque-refresh-value'", "opaque-refresh-value"),
        ],
    )
    def test_credentials_are_masked(self, text: str, secret: str) -> None:
        masked = redact(text)
        assert secret not in masked
        assert MASK in masked

    @pytest.mark.parametrize(
        "text",
        [
            "username and password are required.",
            'Bearer realm="venue-gateway", error="invalid_token"',
            "GET /venues/{venue_id} 200",
            "token_type Bearer, expires_in 3600",
            "version v1.2.3",
        ],
    )
    def test_ordinary_text_is_kept(self, text: str) -> None:
        assert redact(text) == text

    def test_registered_secrets_are_masked(self) -> None:
        register_secrets(["configured-secret-value", None, "abc"])
        assert redact("secret is configured-secret-value!") == f"secret is {MASK}!"
        assert redact("abc") == "abc"  # too short to mask without garbling text

    def test_every_secret_the_settings_hold_is_masked(self) -> None:
        secrets = {
            "introspection": "introspection-secret-0123456789abcdefXYZ",
            "client": "auth0-client-secret-0123456789abcdef",
            "session key": generate_key(),
            "database password": "db-password-0123456789",
        }
        settings = Settings(
            introspection={"clients": {"venue-service": secrets["introspection"]}},
            auth0={"client_secret": secrets["client"]},
            session={"keys": [secrets["session key"]]},
            database={"url": f"postgresql+asyncpg://gw:{secrets['database password']}@db/gw"},
        )
        register_settings_secrets(settings)
        for name, secret in secrets.items():
            assert redact(f"the {name} is {secret}.") == f"the {name} is {MASK}.", name


class TestJsonLines:
    def test_a_careless_log_call_is_masked_and_stays_json(self, json_logs: LogCapture) -> None:
        log = logging.getLogger("app.test")
        log.warning("login failed for %s with %s", "jane", f"Bearer {JWT}")
        log.info("form", extra={"password": "Hunter2-secret", "note": f"rt {REFRESH}"})
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            log.exception("boom")

        assert JWT not in json_logs.text
        assert REFRESH not in json_logs.text
        assert "Hunter2-secret" not in json_logs.text
        first, second, third = json_logs.records()
        assert first["message"] == f"login failed for jane with Bearer {MASK}"
        assert first["level"] == "WARNING"
        assert first["logger"] == "app.test"
        assert {"timestamp", "pid"} <= set(first)
        assert second["password"] == MASK
        assert second["note"] == f"rt {MASK}"
        assert "ValueError" in third["exc_info"]

    def test_uvicorn_config_is_json_without_its_access_log(self) -> None:
        config = uvicorn_log_config("info")
        assert config["root"]["level"] == "INFO"
        formatter = config["formatters"]["json"]["()"]
        assert formatter.endswith("JsonLineFormatter")
        assert config["handlers"]["stdout"]["filters"] == ["context", "redact"]
        assert config["loggers"]["uvicorn.access"]["propagate"] is False

    def test_uvicorn_colour_copy_is_dropped(self) -> None:
        record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started", None, None)
        record.color_message = "\x1b[36mStarted\x1b[0m"
        line = json.loads(JsonLineFormatter().format(record))
        assert "color_message" not in line


async def test_full_flow_logs_no_credential(
    gateway_factory: Factory,
    emulator: RunningEmulator,
    emulator_http: httpx.AsyncClient,
    json_logs: LogCapture,
) -> None:
    gateway, settings = await gateway_factory()
    wrong_password = "Wrong-Passw0rd!-9731"
    responses: list[httpx.Response] = []

    responses.append(
        await gateway.post("/auth/login", json={"username": VIEWER[0], "password": wrong_password})
    )
    responses.append(
        await gateway.post(
            "/auth/login",
            data={"grant_type": "password", "username": ADMIN[0], "password": ADMIN[1]},
        )
    )
    viewer = await gateway.post("/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]})
    responses.append(viewer)
    token = viewer.json()["access_token"]
    responses.append(await gateway.get("/auth/me", headers=bearer(token)))
    responses.append(await gateway.get("/venues", headers=bearer(token)))
    refreshed = await gateway.post("/auth/refresh", headers=bearer(token))
    responses.append(refreshed)
    new_token = refreshed.json()["access_token"]
    responses.append(await gateway.post("/auth/logout", headers=bearer(new_token)))
    responses.append(await gateway.get("/auth/me", headers=bearer(new_token)))
    responses.append(await gateway.get("/auth/me", headers=bearer(token + "x")))
    other = await direct_token(emulator_http)
    responses.append(await gateway.get("/auth/me", headers=bearer(other)))
    # a token smuggled in as a request id is not echoed into the logs
    responses.append(await gateway.get("/healthz", headers={"X-Request-ID": other}))

    assert [r.status_code for r in responses] == [
        401,
        200,
        200,
        200,
        200,
        200,
        204,
        401,
        401,
        200,
        200,
    ]
    text = json_logs.text
    secrets = [wrong_password, VIEWER[1], ADMIN[1], token, new_token, other]
    secrets += list(emulator.tenant.refresh_tokens)
    assert settings.auth0.client_secret is not None
    secrets.append(settings.auth0.client_secret.get_secret_value())
    assert len(emulator.tenant.refresh_tokens) >= 2
    for secret in secrets:
        assert secret not in text
    assert not re.search(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.", text), "a JWT in the logs"
    assert not re.search(r"v1\.[A-Za-z0-9_-]{16,}", text), "a refresh token in the logs"

    access = json_logs.access()
    assert [line["status"] for line in access] == [r.status_code for r in responses]
    me = access[3]
    assert me["route"] == "/auth/me"
    assert me["method"] == "GET"
    assert me["sub"] == "auth0|demo-viewer"
    assert me["client_ip"] == "127.0.0.1"
    assert isinstance(me["duration_ms"], float)
    assert me["request_id"] == responses[3].headers["x-request-id"]
    assert access[0]["sub"] is None
    assert access[-1]["request_id"] != other


class TestRequestId:
    async def test_generated_returned_and_logged(
        self, gateway_factory: Factory, json_logs: LogCapture
    ) -> None:
        gateway, _ = await gateway_factory()
        response = await gateway.get("/auth/me")
        request_id = response.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert json_logs.access()[-1]["request_id"] == request_id

    async def test_a_sane_incoming_id_is_kept(
        self, gateway_factory: Factory, json_logs: LogCapture
    ) -> None:
        gateway, _ = await gateway_factory()
        response = await gateway.get("/auth/me", headers={"X-Request-ID": "spa-42.retry:1"})
        assert response.headers["x-request-id"] == "spa-42.retry:1"
        assert json_logs.access()[-1]["request_id"] == "spa-42.retry:1"

    @pytest.mark.parametrize(
        "incoming", ["x" * 129, "has space", "-leading-dash", "ok\u00e9", "a/b"]
    )
    async def test_an_insane_incoming_id_is_replaced(
        self, gateway_factory: Factory, incoming: str
    ) -> None:
        gateway, _ = await gateway_factory()
        response = await gateway.get("/healthz", headers={"X-Request-ID": incoming.encode()})
        assert response.headers["x-request-id"] != incoming
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
