"""The drill page in every state it can be in, as a full page and as the HTMX
fragment its polling fetches; then watched in Chromium to its end."""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from backups.models import BackupRun
from controlpanel.jobs import Status
from drills.models import Drill
from tests.browser import at_both_widths, log_in, needs_chromium, shot
from tests.conftest import psql

PASSING = {"query": "SELECT count(*) FROM public.orders", "value": "2500", "expected": "2500", "ok": True}
UNCHECKED = {"query": "SELECT max(total) FROM public.orders", "value": "2500", "expected": None, "ok": True}
NO_ROW = {"query": "SELECT id FROM public.orders WHERE false", "value": None, "expected": None, "ok": True}
FAILING = {"query": "SELECT count(*) FROM public.users", "value": "12", "expected": "300", "ok": False}
ERRORING = {"query": "SELECT * FROM nowhere", "value": None, "expected": None, "ok": False,
            "error": 'relation "nowhere" does not exist'}


def drill_in(database, state: str) -> Drill:
    """A drill row as the worker leaves it in `state`."""
    now = timezone.now()
    run = BackupRun.objects.create(database=database, status=Status.SUCCEEDED, verified="passed")
    fields = {"database": database, "source_run": run}
    if state == "queued":
        pass
    elif state == "running":
        fields |= {"status": Status.RUNNING, "phase": "Running smoke queries", "started": now,
                   "download_seconds": 0.4, "restore_seconds": 1.2}
    elif state == "passed":
        fields |= {"status": Status.SUCCEEDED, "started": now - timedelta(seconds=3), "finished": now,
                   "download_seconds": 0.4, "restore_seconds": 1.2, "checks_seconds": 0.3, "rto_seconds": 1.9,
                   "within_budget": True, "row_counts_match": True, "smoke_results": [PASSING, UNCHECKED, NO_ROW]}
    elif state == "failed":
        fields |= {"status": Status.FAILED, "started": now - timedelta(seconds=3), "finished": now,
                   "error": "2 smoke queries failed", "download_seconds": 0.4, "restore_seconds": 1.2,
                   "checks_seconds": 0.3, "rto_seconds": 1.9, "within_budget": True, "row_counts_match": False,
                   "mismatches": [{"table": "public.users", "expected": 300, "actual": None}],
                   "smoke_results": [PASSING, FAILING, ERRORING]}
    elif state == "cancelled":
        fields |= {"status": Status.CANCELLED, "started": now, "finished": now, "error": "Cancelled by ada."}
    elif state == "pitr":
        fields |= {"source_run": None, "status": Status.SUCCEEDED, "started": now, "finished": now,
                   "details": {"pitr": True}, "recovered_to": now, "rpo_seconds": 0.8, "rto_seconds": 4.2,
                   "within_budget": False, "row_counts_match": None, "smoke_results": [ERRORING]}
    return Drill.objects.create(**fields)


STATES = {
    "queued": ["Queued"],
    "running": ["Running", "Running smoke queries", "1.20 s"],
    "passed": ["Succeeded", "2500", "no row", "all match", "within"],
    "failed": ["Failed", "2 smoke queries failed", "12", 'relation "nowhere" does not exist',
               "public.users", "missing"],
    "cancelled": ["Cancelled", "Cancelled by ada."],
    "pitr": ["Succeeded", "RPO 0.8 s", "OVER", 'relation "nowhere" does not exist'],
}


@pytest.mark.django_db
@pytest.mark.parametrize("state", STATES)
def test_the_drill_page_and_its_fragment_render_in_every_state(client, source_database, viewer, state):
    drill = drill_in(source_database, state)
    client.force_login(viewer)
    page = client.get(f"/drills/{drill.pk}/")
    fragment = client.get(f"/drills/{drill.pk}/", headers={"HX-Request": "true"})
    assert page.status_code == 200
    # The fragment keeps polling while the drill is active and stops (286) once it ended.
    assert fragment.status_code == (200 if drill.is_active else 286)
    for text in STATES[state]:
        assert text in html.unescape(page.text), f"{text!r} missing from the page in state {state}"
        assert text in html.unescape(fragment.text), f"{text!r} missing from the fragment in state {state}"
    assert ('hx-trigger="every 1s"' in page.text) == drill.is_active


@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_every_drill_state_renders_in_chromium_at_both_widths(browser, live_server, source_database, viewer):  # noqa: F811
    for state, texts in STATES.items():
        drill = drill_in(source_database, state)

        def check(page, texts=texts):
            for text in texts:
                expect(page.locator("main")).to_contain_text(text)

        at_both_widths(browser, live_server.url, viewer.username, f"/drills/{drill.pk}/", f"drill-{state}", check)


@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_a_drill_with_smoke_sql_is_watched_to_its_end(browser, live_server, celery_worker, source_database,  # noqa: F811
                                                      operator):
    psql(source_database.dbname, "CREATE TABLE orders (id serial PRIMARY KEY, total int);"
                                 "INSERT INTO orders (total) SELECT i FROM generate_series(1, 2500) i;")
    source_database.smoke_sql = ("SELECT count(*) FROM public.orders -- expect: 2500\n"
                                 "SELECT max(total) FROM public.orders\n"
                                 "SELECT id FROM public.orders WHERE false")
    source_database.save()
    page = log_in(browser, live_server.url, operator.username)
    errors = []
    page.on("response", lambda r: r.status >= 500 and errors.append(f"{r.status} {r.url}"))
    page.goto(f"{live_server.url}/databases/{source_database.name}/")
    page.click("#backup-now")
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=60_000)
    expect(page.locator(".badge-passed").first).to_have_text("Verified", timeout=60_000)
    page.goto(f"{live_server.url}/databases/{source_database.name}/")
    page.click("#drill-now")
    expect(page).to_have_url(re.compile(r"/drills/\d+/"))
    expect(page.locator("#drill-status")).to_have_text("Succeeded", timeout=60_000)  # polled, not reloaded
    expect(page.locator("#drill-progress table.grid")).to_contain_text("2500")
    expect(page.locator("#drill-progress table.grid")).to_contain_text("no row")
    shot(page, "drill-smoke-watched")
    assert not errors, errors
    # The links that lead to the drill: the database page's "Last drill" and the overview's RTO.
    page.goto(f"{live_server.url}/databases/{source_database.name}/")
    page.locator("a[href^='/drills/']").first.click()
    expect(page.locator("#drill-status")).to_have_text("Succeeded")
