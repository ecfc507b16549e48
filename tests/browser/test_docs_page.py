"""The docs page in a real headless Chromium: log in with "Authorize", then call the API.

The gateway and the emulator are served over real HTTP; Chromium is Debian's (no browser is
downloaded), driven by Playwright.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

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
        auth0={"domain": emulator.url},
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
    dialog = page.locator(".modal-ux")
    dialog.get_by_label("username:").fill(username)
    dialog.get_by_label("password:").fill(password)
    dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    return dialog


def test_viewer_authorizes_and_lists_venues(page: Page) -> None:
    dialog = authorize(page, *VIEWER)
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    expect(dialog).to_contain_text("Authorized")
    dialog.get_by_role("button", name="Close").click()

    operation = page.locator("#operations-venues-list_venues_venues_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Execute").click()

    status = operation.locator(".live-responses-table tbody .response-col_status")
    expect(status).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text('"items"')


def test_wrong_password_shows_the_error(page: Page) -> None:
    dialog = authorize(page, VIEWER[0], "Not-The-Passw0rd!")
    expect(dialog).to_contain_text("invalid_grant")
    expect(dialog).to_contain_text("Wrong username or password.")
    expect(dialog.get_by_role("button", name="Remove authorization")).to_have_count(0)
