"""The pages of a backup run, a verification and a restore (one job page and
one header since issue 22) in every state, as a full page and as the fragment
their polling fetches, and in Chromium at both widths."""

import html
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from backups.models import BackupRun
from controlpanel.jobs import ACTIVE_STATES, Status
from drills.models import Restore, Verification
from tests.browser import at_both_widths, needs_chromium

NOW = timezone.now()
ENDED = {"started": NOW - timedelta(seconds=5), "finished": NOW}
STATES = {
    "queued": ({}, ["Queued"]),
    "running": ({"status": Status.RUNNING, "phase": "Uploading to offsite", "started": NOW}, ["Running", "Uploading"]),
    "succeeded": ({"status": Status.SUCCEEDED, **ENDED}, ["Succeeded"]),
    "failed": ({"status": Status.FAILED, "error": "pg_dump: permission denied for table orders", **ENDED},
               ["Failed", "permission denied for table orders"]),
    "cancelled": ({"status": Status.CANCELLED, "error": "Cancelled by ada.", **ENDED},
                  ["Cancelled", "Cancelled by ada."]),
}


def make(kind: str, database, fields: dict):
    if kind == "run":
        return BackupRun.objects.create(database=database, size_bytes=1234567, **fields)
    run = BackupRun.objects.create(database=database, status=Status.SUCCEEDED, verified="passed")
    if kind == "verification":
        checks = [{"storage": "local", "artifact": "full.dump.zst", "check": "sha256", "ok": True, "detail": "matches",
                   "seconds": 0.1}] if fields.get("status") == Status.SUCCEEDED else []
        return Verification.objects.create(run=run, checks=checks, **fields)
    extra = {"connection": {"host": "127.0.0.1", "port": 54321, "dbname": "app", "user": "postgres"},
             "expires": NOW + timedelta(hours=4)} if fields.get("status") == Status.SUCCEEDED else {}
    return Restore.objects.create(database=database, source_run=run, tables=["public.orders"], **extra, **fields)


URLS = {"run": "/runs/{}/", "verification": "/verifications/{}/", "restore": "/restores/{}/"}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", URLS)
@pytest.mark.parametrize("state", STATES)
def test_each_job_page_and_its_fragment_render_in_every_state(client, source_database, panel_admin, kind, state):
    fields, texts = STATES[state]
    job = make(kind, source_database, fields)
    client.force_login(panel_admin)
    url = URLS[kind].format(job.pk)
    page = client.get(url)
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert page.status_code == 200
    polls = job.is_active or (kind == "run" and state == "succeeded")  # a run waits for its verification too
    assert fragment.status_code == (200 if polls else 286)
    assert (f'hx-get="{url}"' in page.text) == polls
    assert f'id="{job.page_name}-status"' in page.text and f'id="{job.page_name}-progress"' in page.text
    for text in texts:
        assert text in html.unescape(page.text) and text in html.unescape(fragment.text), (kind, state, text)
    assert ('id="cancel-job"' in page.text) == job.is_active  # an admin may cancel what still runs


@pytest.mark.django_db(transaction=True)
@needs_chromium
@pytest.mark.parametrize("kind", URLS)
def test_each_job_page_renders_in_chromium_at_both_widths(browser, live_server, source_database, panel_admin, kind):
    for state, (fields, texts) in STATES.items():
        # One active run per database: end the previous state's before making the next.
        BackupRun.objects.filter(status__in=ACTIVE_STATES).update(status=Status.CANCELLED)
        job = make(kind, source_database, fields)

        def check(page, texts=texts, job=job):
            expect(page.locator(f"#{job.page_name}-status")).to_have_text(texts[0])
            for text in texts[1:]:
                expect(page.locator("main")).to_contain_text(text)

        at_both_widths(browser, live_server.url, panel_admin.username, URLS[kind].format(job.pk),
                       f"{kind}-{state}", check)
