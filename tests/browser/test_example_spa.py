"""The example SPA (examples/spa, cookie mode) in a real headless Chromium.

The emulator, the gateway and the SPA's server are each served over real HTTP on their own
loopback port, as ``make dev`` runs them: the SPA's origin is another port of 127.0.0.1, the
same site as the gateway, so the SameSite=Strict session cookie goes along with its calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from app.example_spa import create_spa_app
from app.main import create_app
from app.server import SERVER_OPTIONS
from settings import Environment, Settings
from tests.browser.test_docs_page import CHROMIUM, TIMEOUT_MS, browser
from tests.conftest import RunningEmulator
from tests.servers import UvicornThread, free_port

__all__ = ["browser"]  # the module's Chromium, shared with the docs page's tests

ADMIN = ("admin@venues.local", "Admin-Passw0rd!")
COOKIE = "__Host-vg_session"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@dataclass
class Stack:
    """The three servers and a bearer client of the gateway (to seed and to race the SPA)."""

    spa_url: str
    gateway_url: str
    emulator: RunningEmulator
    api: httpx.Client

    def seed(self, count: int, token: str) -> None:
        """Create ``count`` venues through the API."""
        for n in range(count):
            response = self.api.post(
                "/venues", json=venue(f"Seeded Hall {n:02d}"), headers=bearer(token)
            )
            assert response.status_code == 201, response.text

    def login(self) -> str:
        """A bearer token of the admin, for the test's own calls."""
        response = self.api.post("/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def refresh_grants(self) -> int:
        """Refresh-token grants the emulator has served since its counters were reset."""
        with httpx.Client(base_url=self.emulator.url) as client:
            stats: dict[str, Any] = client.get("/__emulator/stats").json()
        return int(stats["grants"].get("refresh_token", 0))

    def reset_stats(self) -> None:
        """Zero the emulator's counters."""
        with httpx.Client(base_url=self.emulator.url) as client:
            client.post("/__emulator/stats/reset").raise_for_status()


def venue(name: str, city: str = "Berlin") -> dict[str, Any]:
    """A valid venue body."""
    return {
        "name": name,
        "address": "Möckernstraße 10",
        "city": city,
        "country": "DE",
        "timezone": "Europe/Berlin",
        "capacity": 3500,
    }


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def stack(emulator: RunningEmulator, tmp_path: Path) -> Iterator[Stack]:
    """The gateway (no refresh margin, no leeway: a token is refreshed once it has expired)
    and the SPA's server, each on a free loopback port."""
    spa_port = free_port()
    spa_url = f"http://127.0.0.1:{spa_port}"
    settings = Settings(
        env=Environment.LOCAL,
        auth0={"domain": emulator.url, "leeway_s": 0},
        cache={"url": "memory://"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'venues.db'}"},
        cors_origins=[spa_url],
        browser={"refresh_margin_s": 0},
    )
    gateway = UvicornThread(create_app(settings), **SERVER_OPTIONS).start()
    spa = UvicornThread(create_spa_app(gateway.url), port=spa_port).start()
    with httpx.Client(base_url=gateway.url) as api:
        yield Stack(spa.url, gateway.url, emulator, api)
    spa.stop()
    gateway.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (one cookie jar, shared by its tabs)."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def open_spa(context: BrowserContext, stack: Stack) -> Page:
    """A new tab on the SPA, started (its first call to the gateway answered)."""
    page = context.new_page()
    page.goto(stack.spa_url)
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    return page


def log_in(page: Page, user: tuple[str, str] = ADMIN) -> None:
    """Fill in and send the login form; wait for the venue list."""
    page.get_by_label("Email").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="All venues")).to_be_visible()


def fill_venue(page: Page, values: dict[str, Any]) -> None:
    """Fill in the venue form."""
    form = page.locator("#editor")
    for label, key in (
        ("Name", "name"),
        ("Address", "address"),
        ("City", "city"),
        ("Country", "country"),
        ("Time zone", "timezone"),
        ("Capacity", "capacity"),
    ):
        form.get_by_label(label, exact=True).fill(str(values[key]))


def loaded(page: Page) -> int:
    """How many times the tab's venue list has loaded."""
    return int(page.locator("#rows").get_attribute("data-loads") or 0)


def message(page: Page) -> Any:
    """The SPA's message line (a live region)."""
    return page.locator("#message")


def test_the_whole_flow(context: BrowserContext, stack: Stack) -> None:
    token = stack.login()
    stack.seed(5, token)
    page = open_spa(context, stack)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    log_in(page)
    expect(page.locator("#who")).to_have_text("Logged in as admin@venues.local")

    # the cookie: HttpOnly (no script sees it), Secure and __Host- even on http://127.0.0.1
    [cookie] = context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["secure"]) == (COOKIE, True, True)
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    assert "." not in cookie["value"]

    # create: the sixth venue, so the list has two pages of five
    fill_venue(page, venue("Tempodrom"))
    page.get_by_role("button", name="Create venue").click()
    expect(message(page)).to_have_text("Created Tempodrom.")
    rows = page.locator("#rows tr")
    expect(rows).to_have_count(5)
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Tempodrom")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()

    # edit with If-Match: the ETag read from the venue's answer
    page.get_by_role("button", name="Edit Tempodrom").click()
    expect(page.get_by_role("heading", name="Edit Tempodrom")).to_be_visible()
    page.locator("#editor").get_by_label("Capacity", exact=True).fill("4000")
    page.get_by_role("button", name="Save changes").click()
    expect(message(page)).to_have_text("Saved Tempodrom.")
    expect(rows.first).to_contain_text("4000")

    # 412: someone else changes the venue while the form is open
    page.get_by_role("button", name="Edit Tempodrom").click()
    listed = stack.api.get("/venues?q=tempodrom", headers=bearer(token)).json()["items"][0]
    changed = stack.api.patch(
        f"/venues/{listed['id']}",
        json={"capacity": 4200},
        headers={**bearer(token), "If-Match": f'"{listed["version"]}"'},
    )
    assert changed.status_code == 200, changed.text
    page.locator("#editor").get_by_label("Capacity", exact=True).fill("5000")
    page.get_by_role("button", name="Save changes").click()
    expect(message(page)).to_contain_text("Someone else changed this venue")
    expect(page.locator("#editor").get_by_label("Capacity", exact=True)).to_have_value("4200")
    page.get_by_role("button", name="Cancel").click()

    # 409: a second venue of that name in that city
    fill_venue(page, venue("Tempodrom"))
    page.get_by_role("button", name="Create venue").click()
    expect(message(page)).to_contain_text("already exists in this city")

    # a reload keeps the session: the cookie is all the page needs
    page.reload()
    expect(page.locator("#who")).to_have_text("Logged in as admin@venues.local")
    expect(rows).to_have_count(5)

    page.get_by_role("button", name="Log out").click()
    expect(message(page)).to_have_text("You are logged out.")
    assert context.cookies() == []
    page.reload()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_two_tabs_across_a_token_expiry_then_a_logout(
    context: BrowserContext, stack: Stack
) -> None:
    # the emulator's clock an hour less three seconds behind: the login's token expires in 3 s
    stack.emulator.tenant.clock_offset_s = -3597
    first = open_spa(context, stack)
    log_in(first)
    logged_in_at = time.time()  # the token's exp is at most three seconds after this
    stack.emulator.tenant.clock_offset_s = 0
    stack.reset_stats()
    second = open_spa(context, stack)
    expect(second.get_by_role("heading", name="All venues")).to_be_visible()  # same cookie
    while time.time() < logged_in_at + 3.1:  # until the access token has expired
        time.sleep(0.1)

    loads = [loaded(tab) for tab in (first, second)]
    for tab in (first, second):  # both at once: neither waits for the other's answer
        tab.get_by_role("button", name="Reload list").click()
    for tab, before in zip((first, second), loads, strict=True):
        expect(tab.locator("#rows")).to_have_attribute("data-loads", str(before + 1))
        expect(message(tab)).to_have_text("")
    # one refresh for both tabs (by the reloads; by the second tab's start under heavy load)
    assert stack.refresh_grants() == 1

    first.get_by_role("button", name="Log out").click()
    expect(message(first)).to_have_text("You are logged out.")
    second.get_by_role("button", name="Reload list").click()
    expect(message(second)).to_have_text("Your session has ended. Log in again.")
    expect(second.get_by_role("heading", name="Log in")).to_be_visible()
