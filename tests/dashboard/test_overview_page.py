"""The overview: its polled fragment keeps the table, in every state, and a
backup started while the page is open shows up and finishes without a reload."""

import pytest
from playwright.sync_api import expect

from backups.models import BackupRun
from backups.services import start_backup
from controlpanel.jobs import Status
from tests.browser import at_both_widths, log_in, needs_chromium, shot
from tests.conftest import psql


@pytest.mark.django_db
def test_the_polled_fragment_carries_the_element_it_replaces(client, source_database, viewer):
    client.force_login(viewer)
    idle = client.get("/", headers={"HX-Request": "true"})
    assert idle.status_code == 200
    assert 'id="overview"' in idle.text and 'hx-swap="outerHTML"' in idle.text
    assert "every 10s" in idle.text and "hx-select" not in idle.text
    assert "overview-table" in idle.text and source_database.name in idle.text
    BackupRun.objects.create(database=source_database)  # queued
    busy = client.get("/", headers={"HX-Request": "true"})
    assert 'id="overview"' in busy.text and "every 2s" in busy.text
    page = client.get("/")
    assert page.text.count('id="overview"') == 1  # the page includes the fragment, not a second wrapper


@pytest.mark.django_db
def test_an_empty_overview_polls_too(client, viewer):
    client.force_login(viewer)
    response = client.get("/", headers={"HX-Request": "true"})
    assert 'id="overview"' in response.text and "No database is protected yet" in response.text


@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_the_overview_renders_empty_idle_and_busy_at_both_widths(browser, live_server, viewer, source_database):  # noqa: F811
    BackupRun.objects.all().delete()
    source_database.delete()
    at_both_widths(browser, live_server.url, viewer.username, "/", "overview-empty",
                   lambda page: expect(page.locator("#overview")).to_contain_text("No database is protected yet"))


@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_the_overview_renders_with_runs_at_both_widths(browser, live_server, viewer, source_database):  # noqa: F811
    BackupRun.objects.create(database=source_database, status=Status.FAILED, error="pg_dump: no such table")
    BackupRun.objects.create(database=source_database)  # queued: the page polls every 2 s

    def check(page):
        expect(page.locator("#overview-table")).to_contain_text(source_database.name)
        expect(page.locator("#overview-table")).to_contain_text("queued")
        with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true", timeout=5000):
            pass  # one poll answered and swapped the fragment: the table must still be there
        expect(page.locator("#overview-table")).to_contain_text(source_database.name)

    at_both_widths(browser, live_server.url, viewer.username, "/", "overview-busy", check)


@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_a_backup_started_while_the_overview_is_open_shows_and_finishes(browser, live_server, celery_worker,  # noqa: F811
                                                                        source_database, viewer):
    psql(source_database.dbname, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);")
    page = log_in(browser, live_server.url, viewer.username)
    expect(page.locator("#overview-table")).to_contain_text("never")  # nothing ran yet: polling slowly
    start_backup(source_database)  # from elsewhere (a schedule, the CLI, another tab)
    table = page.locator("#overview-table")
    expect(table.locator(".badge-succeeded")).to_be_visible(timeout=60_000)
    expect(table.locator(".badge-passed")).to_be_visible(timeout=60_000)  # then verified, still without a reload
    expect(table).to_contain_text(source_database.name)
    shot(page, "overview-after-backup")
