"""Traces: the spans of a login, of a cached request, a caller's trace continued and passed on,
no secret in any span, and nothing of OpenTelemetry's SDK loaded while tracing is off."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.observability.tracing import (
    SPAN_FLIGHT_WAIT,
    SPAN_LOCAL_HIT,
    SPAN_REFRESH,
    SPAN_RESOLVE,
    SPAN_VALIDATE,
    TIER,
    Tracing,
    tracing_requested,
)
from bench.otlp_sink import Received, create_sink
from tests.conftest import RunningEmulator, start_emulator
from tests.e2e.conftest import ADMIN, VIEWER, bearer
from tests.e2e.test_browser_sessions import FROM_SPA, SPA, VENUE, browser_login, cookie
from tests.e2e.test_token_validation import direct_token
from tests.emulator.auth_helpers import demo_tenant
from tests.observability.test_logging import LogCapture, json_logs
from tests.servers import UvicornThread
from tests.users.routes.helpers import login_as, sign_up

__all__ = ["json_logs"]

Factory = Callable[..., Any]

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
NEW_PASSWORD = "An0ther-Passw0rd!"
CALLER_BAGGAGE = "user.email=viewer%40venues.local,session=eyJhbGciOiJIUzI1NiJ9.e30.c2ln"


class Spans:
    """The spans one test's gateways recorded, exported as each ends."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracing = Tracing(self.exporter, batch=False)

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.all() if span.name == name]

    def server(self, name: str) -> ReadableSpan:
        found = [s for s in self.all() if s.kind == SpanKind.SERVER and s.name == name]
        assert len(found) == 1, [s.name for s in self.all()]
        return found[0]

    def of_trace(self, trace_id: int) -> list[ReadableSpan]:
        return [span for span in self.all() if span.context.trace_id == trace_id]

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def spans() -> Iterator[Spans]:
    """A tracer provider exporting to memory, for the test's gateways."""
    recorded = Spans()
    yield recorded
    recorded.tracing.shutdown()


def attribute(span: ReadableSpan, *names: str) -> Any:
    """The first of ``names`` the span has (old or stable semantic conventions)."""
    attributes = span.attributes or {}
    for name in names:
        if name in attributes:
            return attributes[name]
    return None


async def test_login_spans_route_auth0_and_session_store(
    gateway_factory: Factory, spans: Spans
) -> None:
    gateway, _ = await gateway_factory(tracing=spans.tracing)
    spans.clear()  # startup's statements (migrations, the revocation load)
    login = await gateway.post("/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]})
    assert login.status_code == 200

    server = spans.server("POST /auth/login")
    assert attribute(server, "http.route") == "/auth/login"
    assert attribute(server, "http.status_code", "http.response.status_code") == 200
    trace = spans.of_trace(server.context.trace_id)
    clients = [s for s in trace if s.kind == SpanKind.CLIENT]
    auth0 = [s for s in clients if "/oauth/token" in str(attribute(s, "http.url", "url.full"))]
    assert len(auth0) == 1, [s.name for s in clients]
    assert auth0[0].parent is not None
    statements = [s for s in trace if attribute(s, "db.system", "db.system.name") == "sqlite"]
    assert any("INSERT" in str(attribute(s, "db.statement", "db.query.text")) for s in statements)
    # every span of the login is in the route's trace, under its server span
    ids = {s.context.span_id for s in trace}
    assert all(s.parent is not None and s.parent.span_id in ids for s in trace if s is not server)


async def test_the_tier_that_answered(
    gateway_factory: Factory, spans: Spans, emulator_http: httpx.AsyncClient
) -> None:
    namespace = {"namespace": "traced-tiers"}
    first, _ = await gateway_factory(cache={"namespace": namespace["namespace"]})
    login = await first.post("/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]})
    token = login.json()["access_token"]
    # a second worker of the same deployment: the token is in memcached, not in its own tier
    second, _ = await gateway_factory(tracing=spans.tracing, cache=namespace)

    spans.clear()
    assert (await second.get("/auth/me", headers=bearer(token))).status_code == 200
    [resolved] = spans.named(SPAN_RESOLVE)
    assert resolved.attributes is not None
    assert resolved.attributes[TIER] == "memcached"
    gets = [s for s in spans.all() if s.name == "memcached get"]
    assert [attribute(s, "gateway.cache.hit") for s in gets] == [True]
    assert not spans.named(SPAN_VALIDATE)

    spans.clear()
    assert (await second.get("/auth/me", headers=bearer(token))).status_code == 200
    [local] = spans.named(SPAN_LOCAL_HIT)
    assert local.attributes is not None
    assert local.attributes[TIER] == "local"
    assert not spans.named(SPAN_RESOLVE)
    assert not [s for s in spans.all() if s.name.startswith("memcached")]

    spans.clear()
    fresh = await direct_token(emulator_http)
    assert (await second.get("/auth/me", headers=bearer(fresh))).status_code == 200
    [resolved] = spans.named(SPAN_RESOLVE)
    assert resolved.attributes is not None
    assert resolved.attributes[TIER] == "validation"
    [validated] = spans.named(SPAN_VALIDATE)
    assert validated.parent is not None
    assert validated.parent.span_id == resolved.context.span_id
    operations = [s.name for s in spans.all() if s.name.startswith("memcached")]
    # the miss, the lock, the answer (and the user's profile, kept for later validations)
    assert operations[:2] == ["memcached get", "memcached add"]
    assert "memcached set" in operations


async def test_a_request_joining_a_validation_in_flight(
    gateway_factory: Factory, spans: Spans, emulator_http: httpx.AsyncClient
) -> None:
    gateway, _ = await gateway_factory(tracing=spans.tracing)
    token = await direct_token(emulator_http)
    # the validation asks /userinfo for the profile: held long enough for the second to join
    fault = {"path": "/userinfo", "status": None, "delay_ms": 400, "count": 1}
    assert (await emulator_http.post("/__emulator/faults", json=fault)).status_code < 300
    spans.clear()
    answers = await asyncio.gather(
        *(gateway.get("/auth/me", headers=bearer(token)) for _ in range(2))
    )
    assert [a.status_code for a in answers] == [200, 200]
    tiers = {s.attributes[TIER]: s for s in spans.named(SPAN_RESOLVE) if s.attributes}
    assert set(tiers) == {"validation", "single_flight"}
    [wait] = spans.named(SPAN_FLIGHT_WAIT)
    assert wait.parent is not None
    assert wait.parent.span_id == tiers["single_flight"].context.span_id
    assert len(spans.named(SPAN_VALIDATE)) == 1


class RecordingProxy:
    """A real HTTP hop in front of the emulator that notes each request's ``traceparent`` and
    ``baggage``."""

    def __init__(self, upstream: str) -> None:
        self.traceparents: list[str | None] = []
        self.baggage: list[str | None] = []
        self._upstream = upstream
        self.server = UvicornThread(
            Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST"])])
        )

    async def _forward(self, request: Request) -> Response:
        self.traceparents.append(request.headers.get("traceparent"))
        self.baggage.append(request.headers.get("baggage"))
        dropped = ("host", "traceparent", "tracestate", "baggage")
        headers = {k: v for k, v in request.headers.items() if k not in dropped}
        async with httpx.AsyncClient(base_url=self._upstream) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=request.query_params,
                content=await request.body(),
                headers=headers,
            )
        kept = {k: v for k, v in answer.headers.items() if k in ("content-type", "cache-control")}
        return Response(answer.content, status_code=answer.status_code, headers=kept)


@pytest.fixture
def auth0_proxy(emulator: RunningEmulator) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(emulator.url)
    proxy.server.start()
    yield proxy
    proxy.server.stop()


async def test_a_callers_trace_continues_and_is_passed_on(
    gateway_factory: Factory,
    spans: Spans,
    auth0_proxy: RecordingProxy,
    json_logs: LogCapture,
) -> None:
    gateway, _ = await gateway_factory(
        tracing=spans.tracing, auth0={"domain": auth0_proxy.server.url}
    )
    spans.clear()
    auth0_proxy.traceparents.clear()
    auth0_proxy.baggage.clear()
    answer = await gateway.post(
        "/auth/login",
        json={"username": VIEWER[0], "password": "Not-The-Passw0rd!"},
        headers={
            "traceparent": TRACEPARENT,
            "baggage": CALLER_BAGGAGE,
            "X-Request-ID": "traced-login-1",
        },
    )
    assert answer.status_code == 401

    server = spans.server("POST /auth/login")
    assert format(server.context.trace_id, "032x") == CALLER_TRACE
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CALLER_SPAN
    assert server.parent.is_remote
    # Auth0 got the trace: the parent it was given is the gateway's client span of that call
    [call] = [s for s in spans.all() if s.kind == SpanKind.CLIENT and s.name.startswith("POST")]
    assert auth0_proxy.traceparents == [
        f"00-{CALLER_TRACE}-{format(call.context.span_id, '016x')}-01"
    ]
    # but not the caller's baggage: what a caller put there is not for the identity provider
    assert auth0_proxy.baggage == [None]

    lines = [line for line in json_logs.records() if line.get("request_id") == "traced-login-1"]
    assert any(line["logger"] == "app.access" for line in lines)
    for line in lines:
        assert line.get("trace_id") == CALLER_TRACE, line
        assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"])
        assert line["trace_sampled"] is True


async def test_an_unsampled_request_is_in_the_logs_by_its_trace_id(
    gateway_factory: Factory,
    spans: Spans,
    json_logs: LogCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller that did not sample its trace finds its request by the trace id it sent; the
    lines say no span of it was kept."""
    gateway, _ = await gateway_factory(tracing=spans.tracing)
    spans.clear()
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    answer = await gateway.post(
        "/auth/login",
        json={"username": VIEWER[0], "password": "Not-The-Passw0rd!"},
        headers={"traceparent": unsampled, "X-Request-ID": "unsampled-login-1"},
    )
    assert answer.status_code == 401
    assert not spans.of_trace(int(CALLER_TRACE, 16)), "the caller's decision (not sampled) is kept"

    lines = [line for line in json_logs.records() if line.get("request_id") == "unsampled-login-1"]
    assert any(line["logger"] == "app.access" for line in lines)
    for line in lines:
        assert line.get("trace_id") == CALLER_TRACE, line
        assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"])
        assert line["span_id"] != CALLER_SPAN, "the gateway's own span, a child of the caller's"
        assert line["trace_sampled"] is False

    # and a request without a traceparent, not sampled here: a trace id the gateway drew
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    sampler_off = Spans()
    quiet, _ = await gateway_factory(tracing=sampler_off.tracing)
    assert (await quiet.get("/venues", headers={"X-Request-ID": "unsampled-2"})).status_code == 401
    sampler_off.tracing.shutdown()
    assert not sampler_off.all()
    [access] = [
        line
        for line in json_logs.records()
        if line.get("request_id") == "unsampled-2" and line["logger"] == "app.access"
    ]
    assert re.fullmatch(r"[0-9a-f]{32}", access["trace_id"])
    assert access["trace_id"] != CALLER_TRACE
    assert access["trace_sampled"] is False


async def test_no_secret_in_any_span(
    gateway_factory: Factory,
    spans: Spans,
    emulator: RunningEmulator,
    emulator_http: httpx.AsyncClient,
) -> None:
    gateway, settings = await gateway_factory(tracing=spans.tracing)
    spans.clear()  # the migrations' statements, which hold constants of their own
    wrong_password = "Wrong-Passw0rd!-9731"
    await gateway.post("/auth/login", json={"username": VIEWER[0], "password": wrong_password})
    await gateway.post(
        "/auth/login",
        data={"grant_type": "password", "username": ADMIN[0], "password": ADMIN[1]},
    )
    viewer = await gateway.post("/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]})
    token = viewer.json()["access_token"]
    cookie = "session=cookie-secret-5f2a9c"
    await gateway.get("/auth/me", headers={**bearer(token), "Cookie": cookie})
    # a token in a query string, where a careless client might put it
    await gateway.get(f"/venues?access_token={token}&q=Zanzibar-7731", headers=bearer(token))
    refreshed = await gateway.post("/auth/refresh", headers=bearer(token))
    new_token = refreshed.json()["access_token"]
    await gateway.post("/auth/logout", headers=bearer(new_token))
    await gateway.get("/auth/me", headers=bearer(new_token))
    other = await direct_token(emulator_http)
    await gateway.get("/auth/me", headers=bearer(other))
    assert spans.named(SPAN_REFRESH), "the refresh exchange has a span"

    # the search term would be in a statement's parameters, which are never recorded
    secrets = [wrong_password, VIEWER[1], ADMIN[1], token, new_token, other, "cookie-secret"]
    secrets.append("Zanzibar-7731")
    secrets += list(emulator.tenant.refresh_tokens)
    assert settings.auth0.client_secret is not None
    secrets.append(settings.auth0.client_secret.get_secret_value())
    recorded = spans.all()
    assert len(recorded) > 50
    assert_no_secret(recorded, secrets)
    statements = [s for s in recorded if attribute(s, "db.statement", "db.query.text")]
    assert any("LIKE" in str(attribute(s, "db.statement")) for s in statements)


class IssuedTokens:
    """Every token the emulator hands out: access tokens (JWTs, the encrypted ones), ID tokens,
    the Management API's; refresh tokens are in ``tenant.refresh_tokens``."""

    def __init__(self, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tokens: list[str] = []
        tenant = emulator.tenant
        for method in ("sign", "encrypt_userinfo_token"):
            monkeypatch.setattr(tenant, method, self._recording(getattr(tenant, method)))

    def _recording(self, issue: Callable[..., str]) -> Callable[..., str]:
        def recorded(*args: Any, **kwargs: Any) -> str:
            token = issue(*args, **kwargs)
            self.tokens.append(token)
            return token

        return recorded


class TestNoSecretInTheSpansOfEveryFlow:
    """Cookie mode, sign-up, a password change, an admin's Management call, and the bearer
    session: every span of them holds no token, password, handle or secret they used."""

    @pytest.fixture
    def emulator(self) -> Iterator[RunningEmulator]:
        """The demo tenant with a roomy Management API limit: the flows make several calls."""
        data = demo_tenant()
        data["limits"].update({"management_burst": 100, "management_per_second": 100})
        running = start_emulator(data)
        yield running
        running.server.stop()

    async def test_every_flow(
        self,
        gateway_factory: Factory,
        spans: Spans,
        emulator: RunningEmulator,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        issued = IssuedTokens(emulator, monkeypatch)
        gateway, settings = await gateway_factory(tracing=spans.tracing, cors_origins=[SPA])
        spans.clear()  # the migrations' statements

        # cookie mode: log in, a read, a change with the CSRF headers, log out
        handle, _ = await browser_login(gateway, ADMIN)
        assert (await gateway.get("/auth/me", headers=cookie(handle))).status_code == 200
        created = await gateway.post("/venues", json=VENUE, headers=cookie(handle, **FROM_SPA))
        assert created.status_code == 201, created.text
        ended = await gateway.delete("/auth/session", headers=cookie(handle, **FROM_SPA))
        assert ended.status_code < 300, ended.text

        # sign-up, then a password change (which ends the account's other sessions)
        email, password, account = await sign_up(gateway)
        mine = await login_as(gateway, email, password)
        changed = await gateway.post(
            "/users/me/password",
            headers=bearer(mine),
            json={"current_password": password, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 204, changed.text

        # an admin's Management API call, the user's id in the path
        admin = await login_as(gateway, *ADMIN)
        user_id = quote(account["user_id"], safe="")
        looked_up = await gateway.get(f"/users/{user_id}", headers=bearer(admin))
        assert looked_up.status_code == 200, looked_up.text

        # the bearer session: login, refresh, logout
        token = await login_as(gateway, *VIEWER)
        refreshed = await gateway.post("/auth/refresh", headers=bearer(token))
        assert refreshed.status_code == 200, refreshed.text
        renewed = refreshed.json()["access_token"]
        assert (await gateway.post("/auth/logout", headers=bearer(renewed))).status_code < 300

        assert len(issued.tokens) >= 6, "logins, refresh, the Management API's token"
        secrets = [*issued.tokens, *emulator.tenant.refresh_tokens, handle]
        secrets += [ADMIN[1], VIEWER[1], password, NEW_PASSWORD]
        assert settings.auth0.client_secret is not None
        secrets.append(settings.auth0.client_secret.get_secret_value())
        secrets += [key.get_secret_value() for key in settings.session.keys]
        recorded = spans.all()
        names = {span.name for span in recorded}
        assert {"POST /auth/session", "DELETE /auth/session", "POST /users"} <= names, names
        assert {"POST /users/me/password", "GET /users/{user_id}", "POST /auth/refresh"} <= names
        assert_no_secret(recorded, secrets)


def assert_no_secret(recorded: list[ReadableSpan], secrets: list[str]) -> None:
    """No span's name, attributes, events or status holds any of ``secrets``, a JWT, a refresh
    token, a query string or a credential header."""
    text = "\n".join(_span_text(span) for span in recorded)
    for secret in secrets:
        assert secret not in text
    assert not re.search(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.", text), "a JWT in a span"
    assert not re.search(r"v1\.[A-Za-z0-9_-]{16,}", text), "a refresh token in a span"
    assert "access_token=" not in text
    for span in recorded:
        for name, value in (span.attributes or {}).items():
            assert "authorization" not in name.lower()
            assert "cookie" not in name.lower()
            if name in ("http.url", "url.full", "http.target"):
                assert "?" not in str(value) or str(value).endswith("?REDACTED"), value


def _span_text(span: ReadableSpan) -> str:
    parts = [span.name, json.dumps(dict(span.attributes or {}), default=str)]
    parts += [event.name + json.dumps(dict(event.attributes or {})) for event in span.events]
    parts.append(str(span.status.description))
    return "\n".join(parts)


def test_scrub_masks_queries_and_credential_headers(spans: Spans) -> None:
    span = spans.tracing.tracer.start_span(
        "GET",
        attributes={
            "url.full": "https://tenant/api/v2/users?q=email:a@b&access_token=t0k",
            "http.target": "/venues?access_token=t0k",
            "url.query": "access_token=t0k",
            "url.path": "/venues/7",
            "http.request.header.authorization": ("Bearer t0k",),
            "http.request.header.x_api_key": ("k3y",),
            "http.request.header.accept": ("application/json",),
        },
    )
    span.end()
    [recorded] = spans.all()
    assert dict(recorded.attributes or {}) == {
        "url.full": "https://tenant/api/v2/users?REDACTED",
        "http.target": "/venues?REDACTED",
        "url.query": "REDACTED",
        "url.path": "/venues/7",
        "http.request.header.authorization": "REDACTED",
        "http.request.header.x_api_key": "REDACTED",
        "http.request.header.accept": ("application/json",),
    }


async def test_captured_credential_headers_are_masked(
    gateway_factory: Factory, spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "authorization,cookie,accept"
    )
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "content-type")
    gateway, _ = await gateway_factory(tracing=spans.tracing)
    headers = {**bearer("not-a-token-31337"), "Cookie": "sid=c00kie", "Accept": "text/plain"}
    assert (await gateway.get("/auth/me", headers=headers)).status_code == 401
    server = spans.server("GET /auth/me")
    captured = {k: v for k, v in (server.attributes or {}).items() if k.startswith("http.re")}
    assert captured["http.request.header.accept"] == ("text/plain",)
    assert "application/json" in str(captured["http.response.header.content_type"])
    text = _span_text(server)
    assert "31337" not in text
    assert "c00kie" not in text


class TestConfiguration:
    @pytest.mark.parametrize(
        ("environ", "on"),
        [
            ({}, False),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
            ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
            (
                {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
                False,
            ),
            ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ],
    )
    def test_on_only_with_an_endpoint(self, environ: dict[str, str], on: bool) -> None:
        assert tracing_requested(environ) is on

    def test_off_loads_and_wraps_nothing(self) -> None:
        program = (
            "import sys\n"
            "from app.main import create_app\n"
            "from settings import load_settings\n"
            "app = create_app(load_settings())\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
            "'opentelemetry.instrumentation', 'opentelemetry.exporter')))\n"
            "assert not loaded, loaded\n"
            "names = [m.cls.__name__ for m in app.user_middleware]\n"
            "assert 'OpenTelemetryMiddleware' not in names, names\n"
            "assert not app._native_telemetry.enabled()\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GATEWAY_"))}
        env["GATEWAY_ENV"] = "local"
        result = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
            [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr

    @pytest.mark.parametrize(
        ("propagators", "fields"),
        [
            (None, "traceparent,tracestate"),
            ("tracecontext,baggage", "baggage,traceparent,tracestate"),
            ("baggage", "baggage"),
        ],
    )
    def test_trace_context_alone_unless_the_operator_says_otherwise(
        self, propagators: str | None, fields: str
    ) -> None:
        """The headers read from requests and written on calls: a caller's ``baggage`` passes
        only when ``OTEL_PROPAGATORS`` names it (read at import: a process of its own)."""
        program = (
            "from opentelemetry.propagate import get_global_textmap\n"
            "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
            "InMemorySpanExporter\n"
            "from app.observability.tracing import Tracing\n"
            "Tracing(InMemorySpanExporter(), batch=False).shutdown()\n"
            "print(','.join(sorted(get_global_textmap().fields)))\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        if propagators is not None:
            env["OTEL_PROPAGATORS"] = propagators
        result = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
            [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == fields


@pytest.fixture
def otlp_sink() -> Iterator[tuple[str, Received]]:
    received = Received()
    server = UvicornThread(create_sink(received)).start()
    yield server.url, received
    server.stop()


@pytest.fixture
async def environment_tracing(
    otlp_sink: tuple[str, Received], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Tracing]:
    url, _ = otlp_sink
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1.0")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    tracing = Tracing.from_environment()
    assert tracing is not None
    yield tracing
    tracing.shutdown()


async def test_exported_over_otlp_http_as_the_environment_says(
    gateway_factory: Factory,
    environment_tracing: Tracing,
    otlp_sink: tuple[str, Received],
) -> None:
    _, received = otlp_sink
    gateway, _ = await gateway_factory(tracing=environment_tracing)
    answer = await gateway.get("/venues", headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 401
    environment_tracing.flush()
    assert received.services == {"venue-gateway"}
    assert "GET /venues" in received.span_names
    assert CALLER_TRACE in received.trace_ids
