"""The OpenAPI document as a contract: valid OpenAPI 3.1, named operations and schemas, error
codes declared by the routes, and a document no looser than the server.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import Depends, FastAPI
from openapi_spec_validator import OpenAPIV31SpecValidator

from app.auth.principal import Principal
from app.clients.auth0_errors import AUTH0_BRUTE_FORCE, AUTH0_SUSPICIOUS_IP
from app.clients.jwks import KEYS_UNAVAILABLE
from app.deps.security import RequireScopes
from app.http.body_limit import too_deep
from app.http.errors import Conflict, MalformedJson, NotFound
from app.http.openapi import METADATA, complete_responses
from app.http.responses import error_responses
from app.main import create_app
from emulator.grants import SUSPICIOUS_IP, TOO_MANY_ATTEMPTS
from settings import Environment, Settings
from tests.e2e.conftest import ADMIN, bearer, login
from tests.http.test_body_limits import nested
from tests.servers import free_port
from tests.tokens import mint, user_claims

VENUE = "00000000-0000-4000-8000-000000000000"
# (method, a path to call, the path in the document)
BODY_ROUTES = [
    ("post", "/auth/login", "/auth/login"),
    ("post", "/venues", "/venues"),
    ("patch", f"/venues/{VENUE}", "/venues/{venue_id}"),
    ("post", "/users", "/users"),
    ("patch", "/users/me", "/users/me"),
    ("post", "/users/me/password", "/users/me/password"),
    ("delete", "/users/me", "/users/me"),
    ("patch", "/users/auth0%7Cx", "/users/{user_id}"),
]
FORM_ROUTES = [("post", "/tokens/introspect", "/tokens/introspect")]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """What ``/openapi.json`` serves."""
    document: dict[str, Any] = json.loads(
        json.dumps(create_app(Settings(env=Environment.LOCAL)).openapi())
    )
    return document


def error_codes(spec: dict[str, Any], response: dict[str, Any]) -> list[str]:
    """The codes a documented error response names (its schema is a named component)."""
    ref = response["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    codes: list[str] = schema["properties"]["error"]["enum"]
    return codes


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    errors = [str(e).splitlines()[0] for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []


def test_servers_license_contact_and_described_tags(spec: dict[str, Any]) -> None:
    info = spec["info"]
    assert info["license"]["identifier"]
    assert info["contact"]["name"]
    assert spec["servers"] == [{"url": "/", "description": "This gateway."}]
    used = {tag for _, _, operation in operations(spec) for tag in operation.get("tags", [])}
    described = {tag["name"]: tag["description"] for tag in spec["tags"]}
    assert used <= set(described)
    assert all(described.values())


def test_operation_ids_are_the_route_names_in_camel_case(spec: dict[str, Any]) -> None:
    ids = {(m, p): o["operationId"] for p, m, o in operations(spec)}
    assert ids[("post", "/auth/login")] == "login"
    assert ids[("get", "/venues")] == "listVenues"
    assert ids[("patch", "/venues/{venue_id}")] == "updateVenue"
    assert ids[("post", "/tokens/introspect")] == "introspectToken"
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"[a-z]+([A-Z][a-z0-9]*)*", i) for i in ids.values()), ids


def test_a_route_added_later_gets_a_named_operation_and_documents_its_errors() -> None:
    app = FastAPI(**METADATA)

    @app.delete("/things/{thing_id}", responses=error_responses(NotFound, Conflict))
    async def delete_thing(
        thing_id: int, _: Annotated[Principal, Depends(RequireScopes("delete:things"))]
    ) -> None:
        """Delete a thing."""

    complete_responses(app)
    document = app.openapi()
    operation = document["paths"]["/things/{thing_id}"]["delete"]
    assert operation["operationId"] == "deleteThing"
    codes = {
        status: error_codes(document, response)
        for status, response in operation["responses"].items()
        if status[0] in "45" and status != "422"
    }
    assert codes == {
        # the session cookie is taken too: its session may be over, or its refresh refused
        "401": ["invalid_grant", "invalid_request", "invalid_token"],
        "403": ["csrf_failed", "insufficient_scope", "user_blocked"],
        "404": ["not_found"],
        "409": ["conflict"],
        "429": ["too_many_requests"],
        "502": ["upstream_misconfigured"],
        "503": ["session_store_unavailable", "upstream_unavailable"],
    }
    assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["schema"]


def test_schema_components_are_named(spec: dict[str, Any]) -> None:
    names = set(spec["components"]["schemas"])
    assert {"LoginRequest", "TokenResponse", "VenueUpdate", "IntrospectionRequest"} <= names
    assert not [n for n in names if n.startswith("Body_") or "Post" in n]
    # one component per kind of error, shared by the routes that give it
    assert "Error401InvalidRequestInvalidToken" in names
    assert "Error422InvalidRequestWithDetails" in names


def test_routes_document_their_own_error_codes(spec: dict[str, Any]) -> None:
    def codes(method: str, path: str, status: str) -> list[str]:
        return error_codes(spec, spec["paths"][path][method]["responses"][status])

    assert codes("post", "/auth/login", "401") == ["invalid_grant"]
    assert "insufficient_scope" not in codes("post", "/auth/login", "403")
    assert "user_blocked" in codes("post", "/auth/login", "403")
    assert codes("post", "/auth/login", "415") == ["unsupported_media_type"]
    assert codes("post", "/tokens/introspect", "401") == ["invalid_client"]
    assert codes("patch", "/venues/{venue_id}", "428") == ["precondition_required"]
    assert codes("patch", "/venues/{venue_id}", "412") == ["precondition_failed"]
    assert "Retry-After" in spec["paths"]["/auth/login"]["post"]["responses"]["429"]["headers"]


def test_introspection_declares_http_basic(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["IntrospectionClient"]
    assert scheme == scheme | {"type": "http", "scheme": "basic"}
    assert spec["paths"]["/tokens/introspect"]["post"]["security"] == [{"IntrospectionClient": []}]


def test_every_answer_declares_its_headers_with_a_schema(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            assert "X-Request-ID" in headers, (method, path, status)
            assert all("schema" in h for h in headers.values()), (method, path, status)


def test_the_document_is_as_strict_as_the_server(spec: dict[str, Any]) -> None:
    patch = spec["paths"]["/venues/{venue_id}"]["patch"]
    if_match = next(p for p in patch["parameters"] if p["name"] == "If-Match")
    assert if_match["required"] is True
    assert set(patch["requestBody"]["content"]) == {"application/merge-patch+json"}
    delete = spec["paths"]["/venues/{venue_id}"]["delete"]
    assert next(p for p in delete["parameters"] if p["name"] == "If-Match")["required"] is False
    schemas = spec["components"]["schemas"]
    for patch_body in ("VenueUpdate", "SelfPatch", "AdminPatch"):
        schema = schemas[patch_body]
        nullable = [
            name
            for name, field in schema["properties"].items()
            if {"type": "null"} in field.get("anyOf", []) or field.get("type") == "null"
        ]
        assert nullable == [], f"{patch_body}: fields the server refuses as null"
        assert schema["minProperties"] == 1, f"{patch_body}: an empty patch is refused"
    create = schemas["VenueCreate"]["properties"]
    assert "DE" in create["country"]["enum"]
    assert "XX" not in create["country"]["enum"]
    assert all("pattern" in create[field] for field in ("name", "address", "city"))
    for _, _, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            assert "anyOf" not in schema, parameter
            if schema.get("type") == "string" and parameter["in"] == "query":
                assert "maxLength" in schema, parameter
            if schema.get("type") == "integer":
                assert {"minimum", "maximum"} <= set(schema), parameter


def documented(spec: dict[str, Any], method: str, path: str, status: int) -> list[Any]:
    """The example bodies the document gives for ``status`` of an operation."""
    response = spec["paths"][path][method]["responses"][str(status)]
    return [e["value"] for e in response["content"]["application/json"]["examples"].values()]


class TestBodies:
    """Every route that takes a body, before any credentials are looked at: the answers are the
    document's own examples, word for word."""

    @pytest.mark.parametrize(("method", "path", "template"), BODY_ROUTES)
    async def test_malformed_json_is_400(
        self, gateway: httpx.AsyncClient, spec: dict[str, Any], method: str, path: str,
        template: str,
    ) -> None:  # fmt: skip
        response = await gateway.request(
            method, path, content=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "The body is not valid JSON.",
        }
        assert response.json() in documented(spec, method, template, 400)

    @pytest.mark.parametrize(("method", "path", "template"), BODY_ROUTES + FORM_ROUTES)
    async def test_an_unsupported_content_type_is_415(
        self, gateway: httpx.AsyncClient, spec: dict[str, Any], method: str, path: str,
        template: str,
    ) -> None:  # fmt: skip
        response = await gateway.request(
            method, path, content=b"name=x", headers={"content-type": "text/plain"}
        )
        assert response.status_code == 415, response.text
        assert response.json()["error"] == "unsupported_media_type"
        assert response.json() in documented(spec, method, template, 415)


async def test_merge_patch_and_a_form_login_still_work(gateway: httpx.AsyncClient) -> None:
    form = {"grant_type": "password", "username": "admin@venues.local"}
    answer = await gateway.post("/auth/login", data={**form, "password": "Admin-Passw0rd!"})
    assert answer.status_code == 200, answer.text
    token = await login(gateway, ("admin@venues.local", "Admin-Passw0rd!"))
    headers = {"Authorization": f"Bearer {token}"}
    venue = {
        "name": "Merge Hall",
        "address": "1 Patch Street",
        "city": "Berlin",
        "country": "DE",
        "timezone": "Europe/Berlin",
        "capacity": 10,
    }
    created = await gateway.post("/venues", json=venue, headers=headers)
    assert created.status_code == 201, created.text
    changed = await gateway.patch(
        created.headers["Location"],
        content=b'{"capacity": 20}',
        headers={
            **headers,
            "content-type": "application/merge-patch+json",
            "If-Match": created.headers["ETag"],
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["capacity"] == 20


async def test_pages_carry_next_cursor_beside_next(gateway: httpx.AsyncClient) -> None:
    token = await login(gateway, ("admin@venues.local", "Admin-Passw0rd!"))
    headers = {"Authorization": f"Bearer {token}"}
    for n in range(3):
        venue = {
            "name": f"Cursor Hall {n}",
            "address": "1 Page Street",
            "city": "Berlin",
            "country": "DE",
            "timezone": "Europe/Berlin",
            "capacity": 10,
        }
        assert (await gateway.post("/venues", json=venue, headers=headers)).status_code == 201
    seen: list[str] = []
    page: dict[str, Any] = (await gateway.get("/venues?limit=2", headers=headers)).json()
    while True:
        seen += [v["name"] for v in page["items"]]
        if page["next_cursor"] is None:
            assert page["next"] is None
            break
        assert page["next"].endswith(urlencode({"cursor": page["next_cursor"]}))
        following = await gateway.get(
            "/venues", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers
        )
        page = following.json()
    assert seen == [f"Cursor Hall {n}" for n in range(3)]


def bearer_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """Operations taking the bearer token: (method, a path to call, the template, operation)."""
    for template, method, operation in operations(spec):
        if {"AuthLogin": []} in operation["security"]:
            path = template.replace("{venue_id}", VENUE).replace("{user_id}", "auth0%7Cx")
            yield method, path, template, operation


def _pattern(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(_pattern(part) or ".+" for part in node.values)
    return None


def server_texts() -> list[re.Pattern[str]]:
    """Every text the gateway's code holds (an f-string's values match anything)."""
    found = set()
    for source in Path("app").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Constant | ast.JoinedStr):
                pattern = _pattern(node)
                if pattern:
                    found.add(pattern)
    return [re.compile(p, re.DOTALL) for p in found]


def test_every_example_is_a_text_the_server_sends(spec: dict[str, Any]) -> None:
    texts = server_texts()
    unknown = set()
    for path, method, operation in operations(spec):
        for status in operation["responses"]:
            if status[0] not in "45" or path == "/readyz":
                continue
            for example in documented(spec, method, path, int(status)):
                description = example["error_description"]
                if not any(text.fullmatch(description) for text in texts):
                    unknown.add((method, path, status, description))
    assert unknown == set()
    # and Auth0's own texts, which the gateway passes on, are the ones its emulator sends
    assert (AUTH0_BRUTE_FORCE, AUTH0_SUSPICIOUS_IP) == (TOO_MANY_ATTEMPTS, SUSPICIOUS_IP)


# (method, a path to call, the path in the document, the request's body) for each route's 422
INVALID: list[tuple[str, str, str, dict[str, Any]]] = [
    ("post", "/auth/login", "/auth/login", {"json": {"username": "x"}}),
    ("post", "/auth/session", "/auth/session", {"json": {"username": "x"}}),
    ("post", "/tokens/introspect", "/tokens/introspect", {"data": {"token_type_hint": "x"}}),
    ("get", "/venues?limit=", "/venues", {}),
    ("post", "/venues", "/venues", {"json": {}}),
    ("get", "/venues/x", "/venues/{venue_id}", {}),
    ("patch", f"/venues/{VENUE}", "/venues/{venue_id}", {"json": {}}),
    ("delete", "/venues/x", "/venues/{venue_id}", {}),
    ("post", "/users", "/users", {"json": {}}),
    ("get", "/users?q=" + "x" * 5000, "/users", {}),
    ("patch", "/users/me", "/users/me", {"json": {}}),
    ("post", "/users/me/password", "/users/me/password", {"json": {}}),
    ("delete", "/users/me", "/users/me", {"json": {}}),
    ("get", "/users/" + "x" * 5000, "/users/{user_id}", {}),
    ("patch", "/users/auth0%7Cx", "/users/{user_id}", {"json": {}}),
    ("delete", "/users/" + "x" * 5000, "/users/{user_id}", {}),
]


class TestAnswersAsDocumented:
    """Each route's documented 422, 413 and 503, provoked: the answer is one of its examples."""

    def test_every_documented_422_is_provoked_here(self, spec: dict[str, Any]) -> None:
        documenting = {(m, p) for p, m, o in operations(spec) if "422" in o["responses"]}
        assert documenting == {(method, template) for method, _, template, _ in INVALID}

    async def test_invalid_fields_answer_the_documented_example(
        self, gateway: httpx.AsyncClient, spec: dict[str, Any]
    ) -> None:
        headers = bearer(await login(gateway, ADMIN))
        for method, path, template, body in INVALID:
            response = await gateway.request(method, path, headers=headers, **body)
            assert response.status_code == 422, (method, path, response.text)
            assert response.json() in documented(spec, method, template, 422), (method, path)

    async def test_a_body_over_the_limit_answers_the_documented_413(
        self, gateway: httpx.AsyncClient, spec: dict[str, Any]
    ) -> None:
        checked = 0
        for template, method, operation in operations(spec):
            if "413" not in operation["responses"]:
                continue
            path = template.replace("{venue_id}", VENUE).replace("{user_id}", "auth0%7Cx")
            media = next(iter(operation["requestBody"]["content"]))
            big = b"x" * 70_000
            body = b"token=" + big if "form" in media else b'{"name": "' + big + b'"}'
            response = await gateway.request(
                method, path, content=body, headers={"content-type": media}
            )
            assert response.status_code == 413, (method, path, response.text)
            assert response.json() in documented(spec, method, template, 413), (method, path)
            checked += 1
        assert checked == 10

    async def test_a_route_that_reads_no_body_ignores_one(
        self, gateway: httpx.AsyncClient, spec: dict[str, Any]
    ) -> None:
        checked = 0
        for template, method, operation in operations(spec):
            if method == "get" or "requestBody" in operation:
                continue
            assert not {"413", "415"} & set(operation["responses"]), (method, template)
            bad_bodies = [MalformedJson().description, too_deep().description]
            bad_requests = documented(spec, method, template, 400) if "400" in operation else []
            assert not [e for e in bad_requests if e["error_description"] in bad_bodies]
            path = template.replace("{venue_id}", VENUE).replace("{user_id}", "auth0%7Cx")
            answers = set()
            for body in (None, b"x" * 70_000, nested(40).encode()):
                # an admin's fresh session each time: refresh and logout end the one they get
                headers = {
                    **bearer(await login(gateway, ADMIN)),
                    "content-type": "application/json",
                }
                response = await gateway.request(method, path, content=body, headers=headers)
                assert str(response.status_code) in operation["responses"], (method, path)
                error = response.json().get("error") if response.content else None
                answers.add((response.status_code, error))
            # not read: past authentication, the same answer as without a body
            assert len(answers) == 1, (method, path, answers)
            checked += 1
        assert checked == 5

    async def test_signing_keys_out_of_reach_answer_the_documented_503(
        self, gateway_factory: Callable[..., Any], spec: dict[str, Any]
    ) -> None:
        unreachable = f"http://127.0.0.1:{free_port()}"
        gateway, _ = await gateway_factory(auth0={"domain": unreachable, "timeout_s": 0.5})
        headers = bearer(mint(user_claims()))
        checked = 0
        for method, path, template, _ in bearer_operations(spec):
            response = await gateway.request(method, path, headers=headers)
            assert response.status_code == 503, (method, path, response.text)
            keys_down = {"error": "upstream_unavailable", "error_description": KEYS_UNAVAILABLE}
            assert response.json() == keys_down
            assert response.json() in documented(spec, method, template, 503), (method, path)
            checked += 1
        assert checked == 16
