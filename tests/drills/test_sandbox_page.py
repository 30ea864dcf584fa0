"""The Sandboxes page lists what runs on this host (kept restores may outlive
the panel), with its expiry and its Restore, in each state at both widths;
connection details as the restore page shows them, never a password."""

import json
import time

import pytest
from playwright.sync_api import expect

from controlpanel.jobs import Status
from drills.models import Restore
from drills.sandboxes import LABEL, LocalSandboxes, reap_sandboxes
from tests.browser import at_both_widths, needs_chromium
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "s3cret-one-time-pw"


@pytest.fixture
def kept_restore(source_database):
    """A real sandbox kept for a finished restore, as run_restore leaves it."""
    restore = Restore.objects.create(database=source_database, status=Status.SUCCEEDED, keep_hours=1,
                                     one_time_password=PASSWORD)
    sandbox = LocalSandboxes().create(15, password=PASSWORD, keep=True, ttl_seconds=3600, job=restore)
    restore.connection = {"host": sandbox.host, "port": sandbox.port, "dbname": "app_copy", "user": sandbox.user}
    restore.save()
    yield restore, sandbox
    sandbox.remove()


def expire(sandbox) -> None:
    """What an hour passing does to the label."""
    path = sandbox.directory / LABEL
    path.write_text(json.dumps({**json.loads(path.read_text()), "expires": time.time() - 60}))


def test_the_page_says_so_when_no_sandbox_runs(client, viewer):
    client.force_login(viewer)
    page = client.get("/sandboxes/").content.decode()
    assert 'id="no-sandboxes"' in page and 'href="/sandboxes/"' in page  # and the nav links to it


def test_a_kept_sandbox_shows_its_restore_expiry_and_connection_but_no_password(client, viewer, kept_restore):
    restore, sandbox = kept_restore
    client.force_login(viewer)
    page = client.get("/sandboxes/").content.decode()
    assert f'id="sandbox-{sandbox.name}"' in page and f'href="/restores/{restore.pk}/"' in page
    assert f"host=127.0.0.1 port={sandbox.port} dbname=app_copy user=postgres" in page
    assert "kept" in page and "expired" not in page
    assert PASSWORD not in page


def test_without_the_right_to_see_restores_only_the_port_shows(client, kept_restore):
    restore, sandbox = kept_restore
    client.force_login(make_user("nora", None))
    page = client.get("/sandboxes/").content.decode()
    assert f"127.0.0.1:{sandbox.port}" in page and "dbname=app_copy" not in page and PASSWORD not in page


def test_an_expired_kept_sandbox_is_listed_as_such_until_the_reaper_removes_it(client, viewer, kept_restore):
    restore, sandbox = kept_restore
    expire(sandbox)
    client.force_login(viewer)
    page = client.get("/sandboxes/").content.decode()
    assert f'id="sandbox-{sandbox.name}"' in page and "the reaper removes it within 5 minutes" in page
    assert reap_sandboxes() == 1
    assert 'id="no-sandboxes"' in client.get("/sandboxes/").content.decode()


@needs_chromium
def test_the_sandbox_page_renders_in_each_state_at_both_widths(browser, live_server, viewer,  # noqa: F811
                                                                source_database):
    def fits(page):
        # The page's own content; the top bar is base.html's and static/css/app.css's.
        wide = page.evaluate("""[...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.tagName + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))""")
        assert not wide, f"the page's content scrolls sideways: {wide}"

    def shows(selector, text):
        def check(page):
            expect(page.locator(selector)).to_contain_text(text)
            fits(page)
        return check

    at_both_widths(browser, live_server.url, viewer.username, "/sandboxes/", "sandboxes-empty",
                   shows("#no-sandboxes", "No sandbox is running"))
    restore = Restore.objects.create(database=source_database, status=Status.SUCCEEDED, keep_hours=1)
    with LocalSandboxes().create(15, keep=True, ttl_seconds=3600, job=restore) as sandbox:
        restore.connection = {"host": sandbox.host, "port": sandbox.port, "dbname": "app_copy", "user": sandbox.user}
        restore.save()
        card = f"#sandbox-{sandbox.name}"
        at_both_widths(browser, live_server.url, viewer.username, "/sandboxes/", "sandboxes-kept",
                       shows(card, f"Restore #{restore.pk}"))
        expire(sandbox)
        at_both_widths(browser, live_server.url, viewer.username, "/sandboxes/", "sandboxes-expired",
                       shows(card, "the reaper removes it"))
