"""The OpenAPI document behind the docs page: the login flow, every permission, every error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from app.auth.principal import Principal
from app.deps.security import RequireScopes
from app.http.openapi import complete_responses
from app.main import create_app
from settings import Environment, Settings

Operation = tuple[str, str, dict[str, Any]]
# /readyz answers 503 with its readiness report, not an error
NOT_ERRORS = {("/readyz", "get", "503")}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The gateway's OpenAPI document (what /openapi.json serves)."""
    return create_app(Settings(env=Environment.LOCAL)).openapi()


def client(app: FastAPI) -> httpx.AsyncClient:
    """A client of ``app`` (the docs page needs no lifespan)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


def operations(spec: dict[str, Any]) -> Iterator[Operation]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


def has_example(spec: dict[str, Any], media: dict[str, Any]) -> bool:
    """A media type shows an example: its own, its schema's, or its properties'."""
    if "example" in media or "examples" in media:
        return True
    schema = resolve(spec, media.get("schema", {}))
    if "example" in schema or "examples" in schema:
        return True
    if schema.get("type") == "array":
        return has_example(spec, {"schema": schema.get("items", {})})
    properties = schema.get("properties", {})
    return any("examples" in p or "example" in p or "$ref" in p for p in properties.values())


def check_all(
    spec: dict[str, Any], check: Callable[[str, str, dict[str, Any]], str | None]
) -> None:
    failures = [
        f"{m.upper()} {p}: {why}" for p, m, o in operations(spec) if (why := check(p, m, o))
    ]
    assert not failures, "\n".join(failures)


def test_authorize_is_the_password_flow_on_login(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["AuthLogin"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"] == {"password": {"scopes": {}, "tokenUrl": "/auth/login"}}
    # JSON only in the document (one schema generators handle); the docs page posts a form
    login = spec["paths"]["/auth/login"]["post"]["requestBody"]["content"]
    assert login == {"application/json": {"schema": {"$ref": "#/components/schemas/LoginRequest"}}}


def test_every_operation_says_what_it_does(spec: dict[str, Any]) -> None:
    check_all(spec, lambda p, m, o: None if o.get("description") else "no description")


def test_every_error_is_in_the_one_shape_with_an_example(spec: dict[str, Any]) -> None:
    def check(path: str, method: str, operation: dict[str, Any]) -> str | None:
        for status, response in operation["responses"].items():
            if int(status) < 400 or (path, method, status) in NOT_ERRORS:
                continue
            media = response.get("content", {}).get("application/json", {})
            schema = resolve(spec, media.get("schema", {}))
            if schema.get("required") != ["error", "error_description"]:
                return f"{status} is not the one error shape"
            codes = schema["properties"]["error"].get("enum")
            examples = [e["value"] for e in media.get("examples", {}).values()]
            if not codes or sorted({e["error"] for e in examples}) != codes:
                return f"{status}: its codes {codes} are not those of its examples"
            if any(not e["error_description"] for e in examples):
                return f"{status} has an example without a description"
        return None

    check_all(spec, check)


def test_protected_operations_document_401_and_503(spec: dict[str, Any]) -> None:
    def check(path: str, method: str, operation: dict[str, Any]) -> str | None:
        if {"AuthLogin": []} not in operation.get("security", []):
            return None
        missing = {"401", "503"} - set(operation["responses"])
        return f"missing {sorted(missing)}" if missing else None

    check_all(spec, check)


def test_permissioned_operations_document_403_and_name_the_permission(
    spec: dict[str, Any],
) -> None:
    def check(path: str, method: str, operation: dict[str, Any]) -> str | None:
        permissions = operation.get("x-permissions", [])
        if not permissions:
            return None
        if "403" not in operation["responses"]:
            return "no 403"
        missing = [p for p in permissions if p not in operation["description"]]
        return f"description does not name {missing}" if missing else None

    check_all(spec, check)
    expected = {
        ("/venues", "get"): ["read:venues"],
        ("/venues", "post"): ["create:venues"],
        ("/venues/{venue_id}", "patch"): ["update:venues"],
        ("/venues/{venue_id}", "delete"): ["delete:venues"],
    }
    for (path, method), permissions in expected.items():
        operation = spec["paths"][path][method]
        assert operation["x-permissions"] == permissions
        forbidden = operation["responses"]["403"]["content"]["application/json"]
        codes = resolve(spec, forbidden["schema"])["properties"]["error"]["enum"]
        # a change can also come with the session cookie, which must pass the CSRF check;
        # the cookie's refresh is refused for a blocked account
        assert codes == (
            ["insufficient_scope", "user_blocked"]
            if method == "get"
            else ["csrf_failed", "insufficient_scope", "user_blocked"]
        )


def test_every_json_body_has_an_example(spec: dict[str, Any]) -> None:
    def check(path: str, method: str, operation: dict[str, Any]) -> str | None:
        bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
        bodies += [
            (status, response.get("content", {}))
            for status, response in operation["responses"].items()
            if status.startswith("2")
        ]
        for where, content in bodies:
            media = content.get("application/json")
            if media is not None and not has_example(spec, media):
                return f"{where} body has no example"
        return None

    check_all(spec, check)


class TestDocsPage:
    @pytest.mark.parametrize("env", [Environment.LOCAL, Environment.DEV, Environment.INT])
    async def test_on_outside_prod(self, env: Environment, monkeypatch: pytest.MonkeyPatch) -> None:
        async with client(create_app(deployed(env, monkeypatch))) as gateway:
            assert (await gateway.get("/docs")).status_code == 200
            assert (await gateway.get("/openapi.json")).status_code == 200

    async def test_off_in_prod(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async with client(create_app(deployed(Environment.PROD, monkeypatch))) as gateway:
            assert (await gateway.get("/docs")).status_code == 404
            assert (await gateway.get("/openapi.json")).status_code == 404
            assert (await gateway.get("/docs/assets/swagger-ui-bundle.js")).status_code == 404

    async def test_a_setting_turns_it_on_in_prod(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_DOCS_ENABLED", "true")
        async with client(create_app(deployed(Environment.PROD, monkeypatch))) as gateway:
            assert (await gateway.get("/docs")).status_code == 200

    async def test_served_from_the_gateway_itself(self) -> None:
        async with client(create_app(Settings(env=Environment.LOCAL))) as gateway:
            page = await gateway.get("/docs")
            assert "/docs/assets/swagger-ui-bundle.js" in page.text
            assert "cdn." not in page.text
            assert '"persistAuthorization": true' in page.text
            policy = page.headers["content-security-policy"]
            assert "script-src 'self';" in policy  # no inline script runs on the page
            assert page.text.count("<script") == 3  # the JSON config, the bundle, docs_page.js
            script = await gateway.get("/docs/session.js")
            assert script.headers["content-type"].startswith("text/javascript")
            assert "withoutSecrets" in script.text
            for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
                assert (await gateway.get(f"/docs/assets/{asset}")).status_code == 200


def deployed(env: Environment, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Valid settings for ``env`` (the Auth0 tenant is never called by these tests)."""
    monkeypatch.setenv("GATEWAY_SESSION__KEYS", "k" * 44)
    monkeypatch.setenv("GATEWAY_CACHE__URL", "memcached://cache:11211")
    database = {} if env is not Environment.PROD else {"url": "postgresql://u:p@db/venues"}
    return Settings(
        env=env,
        company="acme",
        auth0={"client_id": "c", "client_secret": "s", "audience": "https://api"},
        database=database,
    )


def test_answers_from_outside_the_route_are_documented(spec: dict[str, Any]) -> None:
    def check(path: str, method: str, operation: dict[str, Any]) -> str | None:
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content and "400" not in operation["responses"]:
            return "a JSON body but no 400 for one that is not JSON"
        return None

    check_all(spec, check)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    introspect = spec["paths"]["/tokens/introspect"]["post"]["responses"]["422"]
    schema = resolve(spec, introspect["content"]["application/json"]["schema"])
    details = schema["properties"]["details"]
    assert details["items"] == {"$ref": "#/components/schemas/ValidationIssue"}


def test_a_route_that_forgets_its_security_answers_gets_them() -> None:
    app = FastAPI()

    @app.get("/things")
    async def list_things(
        _: Annotated[Principal, Depends(RequireScopes("read:things"))],
    ) -> dict[str, str]:
        """List things."""
        return {}

    complete_responses(app)
    operation = app.openapi()["paths"]["/things"]["get"]
    assert {"401", "403", "503"} <= set(operation["responses"])
    assert operation["x-permissions"] == ["read:things"]
    assert operation["description"].endswith("**Permission:** `read:things`")
    forbidden = operation["responses"]["403"]["content"]["application/json"]["examples"]
    assert {
        "error": "insufficient_scope",
        "error_description": "This route needs the permission(s): read:things.",
    } in [e["value"] for e in forbidden.values()]
