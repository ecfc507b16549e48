"""The venue API over the real gateway: real tokens from the emulator, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.venues.cursor import Cursor
from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, VIEWER, Recorder, bearer, gateway_settings
from tests.servers import MemcachedProcess
from tests.venues.conftest import TEMPODROM, VenueClient, fullwidth

ROUTES = [
    ("GET", "/venues"),
    ("GET", "/venues/{id}"),
    ("POST", "/venues"),
    ("PATCH", "/venues/{id}"),
    ("DELETE", "/venues/{id}"),
]
WRITES = [route for route in ROUTES if route[0] != "GET"]
BODIES: dict[str, dict[str, Any]] = {
    "POST": {**TEMPODROM, "city": "Hamburg"},
    "PATCH": {"capacity": 1},
}


INVALID_FIELDS: list[dict[str, Any]] = [
    {"owner": "me"},
    {"capacity": "3500"},
    {"capacity": 35.5},
    {"capacity": True},
    {"capacity": -1},
    {"capacity": 0},
    {"capacity": 10**12},
    {"country": "XX"},
    {"country": "DEU"},
    {"timezone": "Europe/Springfield"},
    {"timezone": "Factory"},
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 201},
    {"name": "Tempo\x00drom"},
    {"name": 42},
    {"city": None},
    {"address": ["Möckernstraße 10"]},
]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is ``status`` in the one error shape with ``code``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert body["error_description"]
    return body


class TestPermissions:
    async def test_anonymous_is_401_with_a_challenge(self, venues: VenueClient) -> None:
        venue = await venues.create()
        for method, path in ROUTES:
            response = await venues.request(
                method,
                path.format(id=venue["id"]),
                user=None,
                json=BODIES.get(method),
                headers={"If-Match": '"1"'},
            )
            assert_error(response, 401, "invalid_request")
            assert response.headers["www-authenticate"].startswith("Bearer"), method

    async def test_viewer_may_read_but_not_write(self, venues: VenueClient) -> None:
        venue = await venues.create()
        for method, path in WRITES:
            response = await venues.request(
                method,
                path.format(id=venue["id"]),
                user=VIEWER,
                json=BODIES.get(method),
                headers={"If-Match": '"1"'},
            )
            assert_error(response, 403, "insufficient_scope")
            permission = {"POST": "create", "PATCH": "update", "DELETE": "delete"}[method]
            assert f'scope="{permission}:venues"' in response.headers["www-authenticate"]
        unchanged = await venues.request("GET", f"/venues/{venue['id']}", user=VIEWER)
        assert unchanged.json() == venue
        listed = await venues.request("GET", "/venues", user=VIEWER)
        assert [v["id"] for v in listed.json()["items"]] == [venue["id"]]

    async def test_a_garbage_token_is_401_invalid_token(self, venues: VenueClient) -> None:
        response = await venues.http.get("/venues", headers=bearer("not.a.jwt"))
        assert_error(response, 401, "invalid_token")


class TestCreateVenue:
    async def test_admin_creates_with_location_and_etag(self, venues: VenueClient) -> None:
        response = await venues.request("POST", "/venues", json=TEMPODROM)
        assert response.status_code == 201
        body = response.json()
        assert {k: body[k] for k in TEMPODROM} == TEMPODROM
        assert body["created_by"] == "auth0|demo-admin"
        assert body["version"] == 1
        assert response.headers["etag"] == '"1"'
        assert response.headers["location"] == f"/venues/{body['id']}"
        created = datetime.fromisoformat(body["created_at"])
        assert created.utcoffset() is not None
        assert body["updated_at"] == body["created_at"]
        fetched = await venues.request("GET", response.headers["location"], user=VIEWER)
        assert fetched.json() == body

    async def test_a_capacity_written_as_a_whole_float_is_that_integer(
        self, venues: VenueClient
    ) -> None:
        # JSON has numbers: 3500.0 is the integer the schema asks for; 3500.5 is not
        assert (await venues.create(capacity=3500.0))["capacity"] == 3500
        response = await venues.request("POST", "/venues", json={**TEMPODROM, "capacity": 1.5})
        assert_error(response, 422, "invalid_request")

    async def test_values_are_normalised(self, venues: VenueClient) -> None:
        body = await venues.create(name="  Tempodrom ", country="de", timezone="europe/berlin")
        assert (body["name"], body["country"], body["timezone"]) == (
            "Tempodrom",
            "DE",
            "Europe/Berlin",
        )

    async def test_same_name_in_the_same_city_is_409(self, venues: VenueClient) -> None:
        await venues.create()
        response = await venues.request(
            "POST", "/venues", json={**TEMPODROM, "name": "TEMPODROM", "address": "elsewhere"}
        )
        assert_error(response, 409, "conflict")
        listed = await venues.request("GET", "/venues")
        assert len(listed.json()["items"]) == 1

    async def test_lookalike_names_are_409(self, venues: VenueClient) -> None:
        await venues.create()
        for name in ("Tempo\u200bdrom", fullwidth("Tempodrom"), "\U0001d413empodrom"):
            response = await venues.request(
                "POST", "/venues", json={**TEMPODROM, "name": name, "city": "Ber\u00adlin"}
            )
            assert_error(response, 409, "conflict")
        listed = (await venues.request("GET", "/venues", params={"q": fullwidth("tempo")})).json()
        assert [venue["name"] for venue in listed["items"]] == ["Tempodrom"]

    async def test_text_is_stored_normalised(self, venues: VenueClient) -> None:
        body = await venues.create(
            name="\U0001d413empo\u200bdrom",
            city=fullwidth("Hamburg"),
            address="Möckern\u00adstraße ①",
        )
        assert (body["name"], body["city"], body["address"]) == (
            "Tempodrom",
            "Hamburg",
            "Möckernstraße 1",
        )
        assert (await venues.request("GET", f"/venues/{body['id']}")).json() == body

    async def test_bidi_controls_are_422(self, venues: VenueClient) -> None:
        for field, value in (("name", "Tempo\u202edrom"), ("city", "\u2067Berlin\u2069")):
            response = await venues.request("POST", "/venues", json={**TEMPODROM, field: value})
            body = assert_error(response, 422, "invalid_request")
            assert body["details"][0]["loc"] == ["body", field], body
        assert (await venues.request("GET", "/venues")).json()["items"] == []

    async def test_same_name_in_another_city_is_fine(self, venues: VenueClient) -> None:
        await venues.create()
        other = await venues.create(city="Hamburg")
        assert other["city"] == "Hamburg"

    async def test_concurrent_duplicates_give_one_venue(self, venues: VenueClient) -> None:
        await venues.headers(ADMIN)
        responses = await asyncio.gather(
            *(venues.request("POST", "/venues", json=TEMPODROM) for _ in range(4))
        )
        assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]

    async def test_invalid_fields_are_422(self, venues: VenueClient) -> None:
        for change in INVALID_FIELDS:
            response = await venues.request("POST", "/venues", json={**TEMPODROM, **change})
            body = assert_error(response, 422, "invalid_request")
            field = next(iter(change))
            assert any(field in detail["loc"] for detail in body["details"]), (change, body)
        # a lone surrogate, which PostgreSQL could not store (sent as JSON's \u escape)
        lone_surrogate = json.dumps({**TEMPODROM, "name": "Tempo\ud800drom"}).encode()
        response = await venues.request(
            "POST", "/venues", content=lone_surrogate, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "invalid_request")
        assert (await venues.request("GET", "/venues")).json()["items"] == []

    async def test_missing_field_is_422(self, venues: VenueClient) -> None:
        body = {k: v for k, v in TEMPODROM.items() if k != "timezone"}
        response = await venues.request("POST", "/venues", json=body)
        details = assert_error(response, 422, "invalid_request")["details"]
        assert details[0]["loc"] == ["body", "timezone"]

    async def test_a_body_that_is_not_an_object_is_422(self, venues: VenueClient) -> None:
        for content in (b"[]", b'"Tempodrom"', b""):
            response = await venues.request(
                "POST", "/venues", content=content, headers={"Content-Type": "application/json"}
            )
            assert_error(response, 422, "invalid_request")

    async def test_a_body_that_is_not_json_is_400(self, venues: VenueClient) -> None:
        response = await venues.request(
            "POST", "/venues", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400, "invalid_request")

    async def test_an_oversized_body_is_413(self, venues: VenueClient) -> None:
        response = await venues.request(
            "POST", "/venues", json={**TEMPODROM, "address": "x" * 70_000}
        )
        assert_error(response, 413, "request_too_large")

    async def test_an_oversized_streamed_body_is_413(self, venues: VenueClient) -> None:
        async def chunks() -> Any:
            yield b'{"name": "'
            for _ in range(20):
                yield b"x" * 4096
            yield b'"}'

        response = await venues.request(
            "POST", "/venues", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert_error(response, 413, "request_too_large")
        assert (await venues.request("GET", "/venues")).json()["items"] == []


class TestGetVenue:
    async def test_viewer_reads_with_etag(self, venues: VenueClient) -> None:
        venue = await venues.create()
        response = await venues.request("GET", f"/venues/{venue['id']}", user=VIEWER)
        assert response.status_code == 200
        assert response.json() == venue
        assert response.headers["etag"] == '"1"'

    async def test_unknown_id_is_404(self, venues: VenueClient) -> None:
        response = await venues.request("GET", f"/venues/{uuid.uuid4()}", user=VIEWER)
        assert_error(response, 404, "not_found")

    async def test_an_id_that_is_not_a_uuid_is_422(self, venues: VenueClient) -> None:
        response = await venues.request("GET", "/venues/42", user=VIEWER)
        body = assert_error(response, 422, "invalid_request")
        assert body["details"][0]["loc"] == ["path", "venue_id"]


class TestListVenues:
    async def test_pages_by_name_follow_the_next_link(self, venues: VenueClient) -> None:
        names = ["Zenith", "arena", "Bühne", "Columbiahalle", "Astra", "Huxleys", "Lido"]
        for name in names:
            await venues.create(name=name)
        seen: list[str] = []
        link: str | None = "/venues?limit=3"
        pages = 0
        while link is not None:
            response = await venues.request("GET", link, user=VIEWER)
            assert response.status_code == 200
            page = response.json()
            assert len(page["items"]) <= 3
            seen += [v["name"] for v in page["items"]]
            link = page["next"]
            pages += 1
        assert seen == sorted(names, key=str.casefold)
        assert pages == 3

    async def test_filters(self, venues: VenueClient) -> None:
        await venues.create(name="Tempodrom")
        await venues.create(name="Columbiahalle")
        await venues.create(name="Tempo 100%", city="Hamburg")
        await venues.create(name="Olympia", city="Paris", country="FR", timezone="Europe/Paris")

        async def names(query: str) -> list[str]:
            response = await venues.request("GET", f"/venues?{query}", user=VIEWER)
            assert response.status_code == 200, response.text
            return [v["name"] for v in response.json()["items"]]

        assert await names("city=berlin") == ["Columbiahalle", "Tempodrom"]
        assert await names("country=fr") == ["Olympia"]
        assert await names("q=TEMPO") == ["Tempo 100%", "Tempodrom"]
        assert await names("q=100%25") == ["Tempo 100%"]
        # LIKE's wildcards are plain characters in q
        assert await names("q=o%25d") == []
        assert await names("q=_") == []
        assert await names("q=tempo&city=Hamburg") == ["Tempo 100%"]

    async def test_next_link_keeps_the_filters(self, venues: VenueClient) -> None:
        for name in ("A1", "A2", "A3"):
            await venues.create(name=name)
        await venues.create(name="A4", city="Hamburg")
        first = (await venues.request("GET", "/venues?city=Berlin&q=a&limit=2")).json()
        assert first["next"].startswith("/venues?")
        second = (await venues.request("GET", first["next"])).json()
        assert [v["name"] for v in first["items"] + second["items"]] == ["A1", "A2", "A3"]
        assert second["next"] is None

    async def test_bad_parameters_are_422(self, venues: VenueClient) -> None:
        for query in (
            "limit=101",
            "limit=0",
            "limit=ten",
            "country=XX",
            "q=",
            "q=%20%20",
            "q=a%00b",
            "city=Ber%00lin",
            "cursor=" + "a" * 3000,
        ):
            response = await venues.request("GET", f"/venues?{query}", user=VIEWER)
            assert_error(response, 422, "invalid_request")

    async def test_a_tampered_cursor_is_400(self, venues: VenueClient) -> None:
        nul = Cursor("a\x00", uuid.uuid4()).encode()
        # not base64 JSON; a list with a bad id; an object; null; a NUL in the name
        for cursor in ("garbage!", "WyJhIiwibm90LWEtdXVpZCJd", "e30", "bnVsbA", nul):
            response = await venues.request("GET", f"/venues?cursor={cursor}", user=VIEWER)
            assert_error(response, 400, "invalid_request")


class TestUpdateVenue:
    async def test_admin_updates_with_if_match(self, venues: VenueClient) -> None:
        venue = await venues.create()
        response = await venues.request(
            "PATCH",
            f"/venues/{venue['id']}",
            json={"capacity": 4000, "name": "Tempodrom Berlin"},
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["capacity"], body["name"], body["version"]) == (4000, "Tempodrom Berlin", 2)
        assert body["address"] == venue["address"]
        assert body["created_at"] == venue["created_at"]
        updated = datetime.fromisoformat(body["updated_at"])
        assert updated > datetime.fromisoformat(venue["updated_at"])
        assert response.headers["etag"] == '"2"'
        fetched = await venues.request("GET", f"/venues/{venue['id']}")
        assert fetched.json() == body

    async def test_missing_if_match_is_428(self, venues: VenueClient) -> None:
        venue = await venues.create()
        response = await venues.request("PATCH", f"/venues/{venue['id']}", json={"capacity": 4000})
        assert_error(response, 428, "precondition_required")

    async def test_a_stale_etag_is_412(self, venues: VenueClient) -> None:
        venue = await venues.create()
        for if_match in ('"2"', 'W/"1"', '"0", "7"'):
            response = await venues.request(
                "PATCH",
                f"/venues/{venue['id']}",
                json={"capacity": 4000},
                headers={"If-Match": if_match},
            )
            assert_error(response, 412, "precondition_failed")
        assert (await venues.request("GET", f"/venues/{venue['id']}")).json() == venue

    async def test_an_etag_spelt_differently_is_412(self, venues: VenueClient) -> None:
        venue = await venues.create()
        for if_match in ('"01"', '" 1"', '"1 "', '"+1"', '"01", W/"1"'):
            response = await venues.request(
                "PATCH",
                f"/venues/{venue['id']}",
                json={"capacity": 4000},
                headers={"If-Match": if_match},
            )
            assert_error(response, 412, "precondition_failed")
            response = await venues.request(
                "DELETE", f"/venues/{venue['id']}", headers={"If-Match": if_match}
            )
            assert_error(response, 412, "precondition_failed")
        assert (await venues.request("GET", f"/venues/{venue['id']}")).json() == venue

    async def test_star_or_a_list_with_the_current_etag_matches(self, venues: VenueClient) -> None:
        venue = await venues.create()
        for version, if_match in enumerate(("*", '"9", "2"'), start=2):
            response = await venues.request(
                "PATCH",
                f"/venues/{venue['id']}",
                json={"capacity": 4000 + version},
                headers={"If-Match": if_match},
            )
            assert response.status_code == 200, if_match
            assert response.json()["capacity"] == 4000 + version
            assert response.headers["etag"] == f'"{version}"'

    async def test_a_malformed_if_match_is_400(self, venues: VenueClient) -> None:
        venue = await venues.create()
        response = await venues.request(
            "PATCH", f"/venues/{venue['id']}", json={"capacity": 1}, headers={"If-Match": "1"}
        )
        assert_error(response, 400, "invalid_request")

    async def test_concurrent_patches_with_one_etag_have_one_winner(
        self, venues: VenueClient
    ) -> None:
        venue = await venues.create()
        capacities = [1000, 2000, 3000, 4000, 5000]
        responses = await asyncio.gather(
            *(
                venues.request(
                    "PATCH",
                    f"/venues/{venue['id']}",
                    json={"capacity": capacity},
                    headers={"If-Match": '"1"'},
                )
                for capacity in capacities
            )
        )
        statuses = [r.status_code for r in responses]
        assert sorted(statuses) == [200, 412, 412, 412, 412], [r.text for r in responses]
        winner = capacities[statuses.index(200)]
        stored = (await venues.request("GET", f"/venues/{venue['id']}")).json()
        assert (stored["capacity"], stored["version"]) == (winner, 2)

    async def test_renaming_onto_another_venue_is_409(self, venues: VenueClient) -> None:
        await venues.create()
        other = await venues.create(name="Columbiahalle")
        response = await venues.request(
            "PATCH",
            f"/venues/{other['id']}",
            json={"name": "tempodrom"},
            headers={"If-Match": '"1"'},
        )
        assert_error(response, 409, "conflict")
        assert (await venues.request("GET", f"/venues/{other['id']}")).json() == other

    async def test_renaming_onto_a_lookalike_is_409(self, venues: VenueClient) -> None:
        await venues.create()
        other = await venues.create(name="Columbiahalle")
        response = await venues.request(
            "PATCH",
            f"/venues/{other['id']}",
            json={"name": fullwidth("Tempo") + "\u2060drom"},
            headers={"If-Match": '"1"'},
        )
        assert_error(response, 409, "conflict")
        response = await venues.request(
            "PATCH",
            f"/venues/{other['id']}",
            json={"name": "Columbia\u202ehalle"},
            headers={"If-Match": '"1"'},
        )
        assert_error(response, 422, "invalid_request")
        assert (await venues.request("GET", f"/venues/{other['id']}")).json() == other

    async def test_invalid_changes_are_422(self, venues: VenueClient) -> None:
        venue = await venues.create()
        for change in ({}, {"capacity": None}, {"id": str(uuid.uuid4())}, {"version": 7}):
            response = await venues.request(
                "PATCH", f"/venues/{venue['id']}", json=change, headers={"If-Match": '"1"'}
            )
            assert_error(response, 422, "invalid_request")
        for change in INVALID_FIELDS:
            response = await venues.request(
                "PATCH", f"/venues/{venue['id']}", json=change, headers={"If-Match": '"1"'}
            )
            assert_error(response, 422, "invalid_request")
        assert (await venues.request("GET", f"/venues/{venue['id']}")).json() == venue

    async def test_unknown_venue_is_404(self, venues: VenueClient) -> None:
        response = await venues.request(
            "PATCH", f"/venues/{uuid.uuid4()}", json={"capacity": 1}, headers={"If-Match": "*"}
        )
        assert_error(response, 404, "not_found")


class TestDeleteVenue:
    async def test_admin_deletes(self, venues: VenueClient) -> None:
        venue = await venues.create()
        response = await venues.request("DELETE", f"/venues/{venue['id']}")
        assert response.status_code == 204
        assert response.content == b""
        gone = await venues.request("GET", f"/venues/{venue['id']}")
        assert_error(gone, 404, "not_found")
        again = await venues.request("DELETE", f"/venues/{venue['id']}")
        assert_error(again, 404, "not_found")

    async def test_a_stale_if_match_keeps_the_venue(self, venues: VenueClient) -> None:
        venue = await venues.create()
        response = await venues.request(
            "DELETE", f"/venues/{venue['id']}", headers={"If-Match": '"5"'}
        )
        assert_error(response, 412, "precondition_failed")
        assert (await venues.request("GET", f"/venues/{venue['id']}")).status_code == 200


class TestDurability:
    async def test_data_survives_a_restart(
        self,
        emulator: RunningEmulator,
        memcached_server: MemcachedProcess,
        recorder: Recorder,
        database_url: str,
    ) -> None:
        settings = gateway_settings(emulator, memcached_server.url, database_url=database_url)

        async def run(check: Any) -> Any:
            app = create_app(settings)
            async with (
                LifespanManager(app) as manager,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app),
                    base_url="http://gateway",
                    event_hooks={"response": [recorder]},
                ) as client,
            ):
                return await check(VenueClient(client))

        created = await run(lambda api: api.create())
        fetched = await run(lambda api: api.request("GET", f"/venues/{created['id']}"))
        assert fetched.status_code == 200
        assert fetched.json() == created
        assert fetched.headers["etag"] == '"1"'
