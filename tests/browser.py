"""Headless Chromium for page tests: one browser fixture, logging in, and
rendering a page at the two widths every page must hold (1280 and 390 px).

tests/conftest.py imports the fixture, so any test can ask for `browser`.
Screenshots go to test-output/screenshots.
"""

import os
import re
import threading
from pathlib import Path

import pytest
from django.db.backends.signals import connection_created
from playwright.sync_api import expect, sync_playwright

SHOTS = Path(__file__).resolve().parents[1] / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
WIDTHS = (1280, 390)
PASSWORD = "correct-horse-battery"  # what tests.conftest.make_user gives everyone

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    opened = []

    def remember(sender, connection, **kwargs):
        opened.append(connection)

    # Playwright's event loop runs in the test's thread, where Django then
    # refuses ORM calls: allow them, for this test only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    connection_created.connect(remember)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"])
            yield browser
            browser.close()
    finally:
        connection_created.disconnect(remember)
        close_context_connections(opened)
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def close_context_connections(opened) -> None:
    """Close what the test body opened in Playwright's context.

    Once sync_playwright() has started, the test body runs in another
    contextvars context than pytest-django's fixtures, so Django gives it a
    connection of its own that nothing closes: the suite ended with 'database
    test_restorable is being accessed by other users'. Connections of the live
    server's request threads are theirs to close.
    """
    for connection in opened:
        if connection._thread_ident == threading.get_ident() and connection.connection is not None:
            connection.close()


def log_in(browser, base, username, password=PASSWORD, width=1280):
    """A new page at `width` px, logged in and on the overview."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login/"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Overview")
    return page


def shot(page, name):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def at_both_widths(browser, base, username, path, name, check, password=PASSWORD):
    """Open `path` at 1280 and at 390 px, run check(page) on each, screenshot both.

    Fails on a server error or a console error, which a check of the text
    alone would miss (an HTMX swap that failed).
    """
    for width in WIDTHS:
        page = log_in(browser, base, username, password, width)
        errors = []
        page.on("console", lambda msg, errors=errors: msg.type == "error" and errors.append(msg.text))
        page.on("response", lambda r, errors=errors: r.status >= 500 and errors.append(f"{r.status} {r.url}"))
        response = page.goto(base + path)
        assert response.status < 400, f"{path} answered {response.status} at {width} px"
        check(page)
        shot(page, f"{name}-{width}")
        assert not errors, f"{path} at {width} px: {errors}"
        page.close()
