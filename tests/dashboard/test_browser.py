"""The panel walked as a new user would, in headless Chromium, against a live
server and a real Celery worker. Screenshots go to test-output/screenshots."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, needs_chromium, shot
from tests.conftest import PG, make_user

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]


def test_a_new_admin_protects_a_database_end_to_end(browser, live_server, celery_worker, make_pg_database,
                                                    tmp_path, django_user_model):
    from django.contrib.auth.models import Group

    from tests.conftest import psql

    dbname = make_pg_database()
    psql(dbname, "CREATE TABLE orders (id serial PRIMARY KEY, total int);"
                 "INSERT INTO orders (total) SELECT i FROM generate_series(1, 500) i;")
    admin = django_user_model.objects.create_user("root-admin", password="pw-admin-123456")
    admin.groups.add(Group.objects.get(name="admin"))
    page = log_in(browser, live_server.url, "root-admin", "pw-admin-123456")
    expect(page.locator("text=No database is protected yet")).to_be_visible()
    shot(page, "01-empty-overview")

    page.click("text=Add a storage")
    page.fill("input[name=name]", "disk")
    page.select_option("select[name=kind]", "local")
    page.fill("input[name=path]", "relative/path")
    page.click("main button[type=submit]")
    expect(page.locator(".errorlist")).to_contain_text("absolute directory path")
    page.fill("input[name=path]", str(tmp_path / "backups"))
    page.click("main button[type=submit]")
    expect(page.locator("#toasts")).to_contain_text("Storage disk saved")
    shot(page, "02-storages")

    page.goto(live_server.url + "/databases/add/")
    page.fill("input[name=name]", "shop")
    page.fill("input[name=host]", PG["host"])
    page.fill("input[name=port]", "1")
    page.fill("input[name=dbname]", dbname)
    page.fill("input[name=user]", PG["user"])
    page.select_option("select[name=primary_storage]", label="disk")
    page.click("main button[type=submit]")
    shot(page, "03a-database-error")
    expect(page.locator("[role=alert]")).to_contain_text("unreachable")  # a form error, never a 500
    page.fill("input[name=port]", str(PG["port"]))
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_contain_text("shop")
    shot(page, "03-database")

    page.click("#backup-now")
    expect(page).to_have_url(re.compile(r"/runs/\d+/"))
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=60_000)
    expect(page.locator(".badge-passed").first).to_have_text("Verified", timeout=60_000)
    shot(page, "04-run-verified")

    page.goto(live_server.url + "/databases/shop/")
    page.click("#drill-now")
    expect(page).to_have_url(re.compile(r"/drills/\d+/"))
    expect(page.locator("#drill-status")).to_have_text("Succeeded", timeout=60_000)
    expect(page.locator("#drill-rto")).to_contain_text(" s")
    shot(page, "05-drill")

    page.goto(live_server.url + "/")
    expect(page.locator("#overview-table")).to_contain_text("shop")
    shot(page, "06-overview")

    page.goto(live_server.url + "/databases/shop/")
    page.locator("table.grid a", has_text="#").first.click()
    page.click("#restore-button")
    page.fill("input[name=keep_hours]", "1")
    page.fill("input[name=confirm_source]", "wrong")
    page.click("#start-restore")
    expect(page.locator(".errorlist")).to_contain_text("Type shop exactly")
    page.fill("input[name=confirm_source]", "shop")
    shot(page, "07-restore-form")
    page.click("#start-restore")
    expect(page.locator("#restore-status")).to_have_text("Succeeded", timeout=60_000)
    expect(page.locator("#one-time-password")).to_be_visible()
    shot(page, "08-restore-done")
    page.reload()
    expect(page.locator("#one-time-password")).to_have_count(0)  # shown once
    page.goto(live_server.url + "/audit/")
    expect(page.locator("table")).to_contain_text("Restore of backup")
    shot(page, "09-audit-log")

    from drills.models import Restore
    from drills.sandboxes import reap_sandboxes

    restore = Restore.objects.get()
    Restore.objects.filter(pk=restore.pk).update(expires=None)
    import json
    import time

    label = Path(restore.details["sandbox"]) / "restorable-sandbox.json"
    info = json.loads(label.read_text())
    label.write_text(json.dumps({**info, "expires": time.time() - 1}))
    assert reap_sandboxes() == 1  # the kept sandbox goes once its hours are up


def test_a_viewer_sees_no_restore_button_and_is_denied(browser, live_server, source_database):
    from backups.models import BackupRun
    from controlpanel.jobs import Status

    run = BackupRun.objects.create(database=source_database, status=Status.SUCCEEDED, verified="passed")
    make_user("vic", "viewer")
    page = log_in(browser, live_server.url, "vic", "correct-horse-battery")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    expect(page.locator("#restore-button")).to_have_count(0)
    expect(page.locator("#verify-now")).to_have_count(0)
    response = page.goto(f"{live_server.url}/runs/{run.pk}/restore/")
    assert response.status == 403
    page.goto(f"{live_server.url}/databases/app/")
    expect(page.locator("#backup-now")).to_have_count(0)
    shot(page, "10-viewer-database")


def test_an_admin_edits_schedules_with_a_live_preview_and_adds_an_alert_channel(browser, live_server,
                                                                               source_database, panel_admin):
    from tests.controlpanel.test_alerts import Receiver

    source_database.timezone = "Asia/Tokyo"
    source_database.save()
    page = log_in(browser, live_server.url, panel_admin.username, "correct-horse-battery")
    page.goto(live_server.url + "/databases/app/")
    page.click("#edit-schedule")
    expect(page.locator("#next-dump_cron")).to_contain_text("03:15")  # the default, drawn on load
    page.fill("input[name=dump_cron]", "10 22 * * 5")
    expect(page.locator("#next-dump_cron")).to_contain_text("Fri")
    expect(page.locator("#next-dump_cron")).to_contain_text("22:10 ")
    page.fill("input[name=drill_cron]", "0 0 31 2 *")
    expect(page.locator("#next-drill_cron")).to_contain_text("never fires")
    shot(page, "11-schedule-preview")
    page.click("#save-schedule")
    expect(page.locator(".errorlist")).to_contain_text("never fires")
    page.fill("input[name=drill_cron]", "0 5 1-7 * 0")
    page.click("#save-schedule")
    expect(page.locator("#toasts")).to_contain_text("Schedules of app saved")
    expect(page.locator("main")).to_contain_text("10 22 * * 5")

    receiver = Receiver()
    try:
        page.click("nav >> text=Alerts")
        page.click("#add-channel")
        page.fill("input[name=name]", "oncall")
        page.fill("input[name=url]", f"json://127.0.0.1:{receiver.port}/hook")
        page.check("input[value=backup_failed]")
        page.click("#save-channel")
        expect(page.locator("table.grid")).to_contain_text("backup_failed")
        page.click("#test-oncall")
        expect(page.locator("#toasts")).to_contain_text("test message sent")
        assert len(receiver.on("/hook")) == 1
        shot(page, "12-alert-channels")
    finally:
        receiver.close()


def test_an_operator_cancels_a_queued_backup_from_its_page(browser, live_server, source_database, operator):
    from backups.services import create_backup_run

    run = create_backup_run(source_database)  # no worker takes it: it stays queued
    page = log_in(browser, live_server.url, operator.username, "correct-horse-battery")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_text("Queued")
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel backup #... of app?"
    page.click("#cancel-job")
    expect(page.locator("#run-status")).to_have_text("Cancelled", timeout=10_000)
    expect(page.locator("#cancel-job")).to_have_count(0)
    shot(page, "13-cancelled-run")
    run.refresh_from_db()
    assert run.status == "cancelled" and run.cancel_requested
