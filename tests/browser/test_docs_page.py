"""The docs page in a real headless Chromium: log in with "Authorize", then call the API.

The gateway and the emulator are served over real HTTP; Chromium is Debian's (no browser is
downloaded), driven by Playwright. After Authorize the password is nowhere in the browser's
storage; Logout ends the session at the gateway; an expired token is refreshed once, and a
session that cannot be refreshed is answered with "log in again".
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from app.main import create_app
from app.server import SERVER_OPTIONS
from settings import Environment, Settings
from tests.conftest import RunningEmulator
from tests.servers import UvicornThread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# the machine is offline: no background traffic to Google's services
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWER = ("viewer@venues.local", "Viewer-Passw0rd!")
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def gateway_url(emulator: RunningEmulator, tmp_path: Path) -> Iterator[str]:
    """The gateway over real HTTP, served as ``gateway serve`` serves it."""
    settings = Settings(
        env=Environment.LOCAL,
        # no leeway: a token of a few seconds' life is refused as soon as it expires
        auth0={"domain": emulator.url, "leeway_s": 0},
        cache={"url": "memory://"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'venues.db'}"},
    )
    server = UvicornThread(create_app(settings), **SERVER_OPTIONS).start()
    yield server.url
    server.stop()


@pytest.fixture
def page(browser: Browser, gateway_url: str) -> Iterator[Page]:
    """The docs page in a fresh browser context."""
    context = browser.new_context(base_url=gateway_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/docs")
    yield page
    context.close()


def authorize(page: Page, username: str, password: str) -> Locator:
    """Open "Authorize", log in with the password flow; the dialog."""
    page.get_by_role("button", name="Authorize").first.click()
    # the password flow's block; the dialog also holds introspection's HTTP Basic
    dialog = page.locator(".modal-ux .auth-container").filter(has_text="AuthLogin")
    dialog.get_by_label("username:").fill(username)
    dialog.get_by_label("password:").fill(password)
    dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    return dialog


def test_viewer_authorizes_and_lists_venues(page: Page) -> None:
    dialog = authorize(page, *VIEWER)
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    expect(dialog).to_contain_text("Authorized")
    dialog.get_by_role("button", name="Close").first.click()

    operation = list_venues(page)
    expect(status_of(operation)).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text('"items"')


def test_wrong_password_shows_the_error(page: Page) -> None:
    dialog = authorize(page, VIEWER[0], "Not-The-Passw0rd!")
    expect(dialog).to_contain_text("invalid_grant")
    expect(dialog).to_contain_text("Wrong username or password.")
    expect(dialog.get_by_role("button", name="Remove authorization")).to_have_count(0)


def list_venues(page: Page) -> Locator:
    """Run "List venues" from the page; its operation block."""
    operation = page.locator("#operations-venues-listVenues")
    if not operation.locator(".opblock-body").is_visible():
        operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Execute").click()
    return operation


def status_of(operation: Locator) -> Locator:
    """The status cell of an operation's live response."""
    return operation.locator(".live-responses-table tbody .response-col_status")


def storage(page: Page) -> str:
    """Everything the page's origin keeps in the browser: both storages and the cookies."""
    kept = page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    cookies = json.dumps(page.context.cookies())
    return f"{kept}{cookies}{page.evaluate('() => document.cookie')}"


def stored_token(page: Page) -> str:
    """The access token Swagger UI keeps across reloads."""
    authorized = json.loads(page.evaluate("() => localStorage.getItem('authorized')") or "{}")
    token: str = authorized["AuthLogin"]["token"]["access_token"]
    return token


def authorized(page: Page) -> Locator:
    """Authorize as the viewer; the dialog, once it says so."""
    dialog = authorize(page, *VIEWER)
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    return dialog


def me(gateway_url: str, token: str) -> int:
    """The status of ``GET /auth/me`` with ``token``."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{gateway_url}/auth/me", headers=headers, timeout=10).status_code


def test_no_password_is_stored_and_logout_ends_the_session(page: Page, gateway_url: str) -> None:
    authorized(page).get_by_role("button", name="Close").first.click()
    token = stored_token(page)
    kept = storage(page)
    assert VIEWER[1] not in kept
    stored = json.loads(page.evaluate("() => localStorage.getItem('authorized')"))
    assert "password" not in stored["AuthLogin"]
    assert VIEWER[0] in kept  # the username is shown after a reload, so it stays

    page.reload()  # the authorization Swagger UI restores works, and still holds no password
    operation = list_venues(page)
    expect(status_of(operation)).to_have_text("200")
    assert VIEWER[1] not in storage(page)

    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux .auth-container").filter(has_text="AuthLogin")
    with page.expect_response("**/auth/logout") as ended:
        dialog.get_by_role("button", name="Remove authorization").click()
    assert ended.value.status == 204
    assert me(gateway_url, token) == 401
    assert page.evaluate("() => localStorage.getItem('authorized')") in (None, "{}")


def authorized_until_expiry(page: Page, gateway_url: str, emulator: RunningEmulator) -> str:
    """Authorize with tokens of two seconds' life, wait until the gateway refuses the token."""
    emulator.tenant.resource_servers["https://api.venues.local"].token_lifetime = 2
    authorized(page).get_by_role("button", name="Close").first.click()
    old = stored_token(page)
    deadline = time.monotonic() + 15
    while me(gateway_url, old) == 200:  # until the gateway says it has expired
        assert time.monotonic() < deadline, "the token never expired"
        time.sleep(0.2)
    return old


def test_an_expired_token_is_refreshed_once_then_an_ended_session_says_log_in_again(
    page: Page, gateway_url: str, emulator: RunningEmulator
) -> None:
    old = authorized_until_expiry(page, gateway_url, emulator)

    with page.expect_response("**/auth/refresh") as refreshed:
        operation = list_venues(page)
    assert refreshed.value.status == 200
    expect(status_of(operation)).to_have_text("200")
    new = stored_token(page)
    assert new != old
    assert VIEWER[1] not in storage(page)

    # the session ends elsewhere (another tab, an admin): no refresh can help
    ended = httpx.post(
        f"{gateway_url}/auth/logout", headers={"Authorization": f"Bearer {new}"}, timeout=10
    )
    assert ended.status_code == 204
    operation = list_venues(page)
    expect(status_of(operation)).to_have_text("401")
    expect(operation.locator(".live-responses-table")).to_contain_text(
        "Press Authorize and log in again."
    )
    assert page.evaluate("() => localStorage.getItem('authorized')") in (None, "{}")


def test_get_me_with_an_expired_token_is_refreshed_too(
    page: Page, gateway_url: str, emulator: RunningEmulator
) -> None:
    old = authorized_until_expiry(page, gateway_url, emulator)

    operation = page.locator("#operations-auth-getMe")
    operation.locator(".opblock-summary").click()
    with page.expect_response("**/auth/refresh") as refreshed:
        operation.get_by_role("button", name="Execute").click()
    assert refreshed.value.status == 200
    expect(status_of(operation)).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text(VIEWER[0])
    assert stored_token(page) != old
