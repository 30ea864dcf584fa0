"""PITR in the dashboard: the database page's card, base backups, PITR drills and
point-in-time restores from a form, on a real archiving cluster."""

import re
import time
import zoneinfo
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from backups.models import BaseBackup, PitrSetup
from backups.pgbackrest import PgBackRest
from backups.pitr import recovery_window
from backups.tasks import check_wal
from controlpanel.jobs import Status
from controlpanel.models import AuditEvent
from drills.models import Drill, Restore
from drills.pitr import remove_sandbox
from drills.sandboxes import Sandbox
from tests.conftest import make_user
from tests.drills.conftest import sql

pytestmark = pytest.mark.django_db(transaction=True)


class Sent:
    """Records what would have gone to the broker."""

    def __init__(self):
        self.calls = []

    def __call__(self, job, queue):
        self.calls.append((job.task_name, job.pk, queue))
        return type("AsyncResult", (), {"id": f"task-{len(self.calls)}"})()


@pytest.fixture
def sent(monkeypatch):
    sent = Sent()
    monkeypatch.setattr("controlpanel.jobs.send", sent)
    return sent


def test_the_card_shows_archiving_the_window_and_base_backups(client, archiving_cluster, viewer):
    database, cluster, setup = archiving_cluster
    client.force_login(viewer)
    page = client.get("/databases/app/").content.decode()
    assert "Point-in-time recovery" in page and "no base backup yet" in page
    assert "Restore to a point in time" not in page and "Base backup now" not in page  # a viewer's page

    job = (BaseBackup.objects.create(database=database, kind="full")).execute()
    assert job.status == Status.SUCCEEDED, job.error
    sql(cluster, "CREATE TABLE t AS SELECT 1")
    PgBackRest(setup).check()
    check_wal()
    setup = PitrSetup.objects.get(pk=setup.pk)
    window = recovery_window(setup)
    assert window.earliest == job.backup_stop + timedelta(seconds=1)
    assert window.latest >= window.earliest

    page = client.get("/databases/app/").content.decode()
    assert job.label in page and setup.archiver["last_archived_wal"] in page
    assert "→" in page and "no base backup yet" not in page
    database.timezone = "America/New_York"
    database.save()
    window_text = client.get("/databases/app/").content.decode().split('id="recovery-window">')[1].split("</dd>")[0]
    # Shown in the zone the restore form reads moments in (EST or EDT), not the panel's UTC.
    assert "UTC" not in window_text and window_text.count(" E") == 2


def test_base_backup_and_pitr_drill_buttons_queue_audited_jobs(client, archiving_cluster, operator, sent):
    database, cluster, setup = archiving_cluster
    client.force_login(operator)
    page = client.get("/databases/app/").content.decode()
    assert 'id="base-backup-now"' in page and 'id="pitr-restore"' not in page  # restores are for admins

    response = client.post("/databases/app/pitr/base-backup/", {"kind": "diff"}, follow=True)
    job = BaseBackup.objects.get()
    assert job.kind == "diff" and job.status == Status.QUEUED and job.celery_task_id == "task-1"
    # pgBackRest runs on the database host: its agent's queue (this one has none set: the default agent).
    assert sent.calls[0] == ("backups.tasks.base_backup", job.pk, settings.AGENT_QUEUE)
    assert f"base backup #{job.pk} of app queued" in response.content.decode()
    assert AuditEvent.objects.filter(action="base_backup.start", user=operator).exists()

    response = client.post("/databases/app/pitr/base-backup/", {"kind": "full"}, follow=True)
    assert "already queued" in response.content.decode() and BaseBackup.objects.count() == 1

    response = client.post("/databases/app/pitr/drill/")
    drill = Drill.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/drills/{drill.pk}/"
    assert drill.details == {"pitr": True} and drill.database == database


def test_an_admin_restores_to_a_moment_typed_in_the_database_time_zone(client, archiving_cluster, panel_admin, sent):
    database, cluster, setup = archiving_cluster
    database.timezone = "America/New_York"
    database.save()
    (BaseBackup.objects.create(database=database, kind="full")).execute()
    sql(cluster, "CREATE TABLE events (id serial, at timestamptz DEFAULT clock_timestamp())")
    sql(cluster, "INSERT INTO events SELECT FROM generate_series(1, 40)")
    time.sleep(1.2)
    target = sql(cluster, "SELECT clock_timestamp()")
    time.sleep(1.2)
    sql(cluster, "INSERT INTO events SELECT FROM generate_series(1, 10)")
    PgBackRest(setup).check()
    check_wal()

    client.force_login(panel_admin)
    form = client.get("/databases/app/pitr/restore/").content.decode()
    assert "Recovery window" in form and 'type="datetime-local"' in form and "America/New_York" in form

    # The wall clock of the moment in New York, to the second, as a browser sends it.
    wall_clock = target.astimezone(zoneinfo.ZoneInfo("America/New_York")).strftime("%Y-%m-%dT%H:%M:%S")
    response = client.post("/databases/app/pitr/restore/", {
        "target_time": wall_clock, "keep_hours": 1, "confirm_source": "app"})
    restore = Restore.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/restores/{restore.pk}/"
    assert restore.pitr and restore.pitr_target == target.replace(microsecond=0)
    assert restore.requested_by == panel_admin and restore.keep_hours == 1
    assert sent.calls == [("drills.tasks.restore", restore.pk, None)]  # None: the drills route
    assert AuditEvent.objects.get(action="restore.start").user == panel_admin

    restore = restore.execute()  # what the drills worker does with the message
    assert restore.status == Status.SUCCEEDED, restore.error
    sandbox = Sandbox(major=15, directory=Path(restore.details["sandbox"]), port=restore.connection["port"])
    try:
        assert sql(sandbox, "SELECT count(*) FROM events") == 40
    finally:
        remove_sandbox(sandbox)
    page = client.get(f"/restores/{restore.pk}/").content.decode()
    assert "Recovered to" in page and "Point in time" in page


def test_the_restore_form_refuses_moments_outside_the_window_and_a_wrong_name(client, archiving_cluster,
                                                                              panel_admin, sent):
    database, cluster, setup = archiving_cluster
    client.force_login(panel_admin)
    response = client.post("/databases/app/pitr/restore/", {"latest": "on", "keep_hours": 1, "confirm_source": "app"})
    assert "holds no base backup yet" in response.content.decode()

    (BaseBackup.objects.create(database=database, kind="full")).execute()
    earliest = recovery_window(PitrSetup.objects.get(pk=setup.pk)).earliest
    assert earliest is not None
    # A window that ended five minutes ago, as the cached state would show after archiving stalled.
    stop = (timezone.now() - timedelta(minutes=10)).timestamp()
    PitrSetup.objects.filter(pk=setup.pk).update(
        info={"backup": [{"timestamp": {"start": stop - 60, "stop": stop}}]},
        archiver={"last_archived_time": (timezone.now() - timedelta(minutes=5)).isoformat()})
    cases = {
        "before the end of the oldest base backup": timezone.now() - timedelta(minutes=15),
        "in the future": timezone.now() + timedelta(hours=2),
        "after the last archived WAL segment": timezone.now() - timedelta(minutes=2),
    }
    for message, moment in cases.items():
        response = client.post("/databases/app/pitr/restore/", {
            "target_time": moment.strftime("%Y-%m-%dT%H:%M:%S"), "keep_hours": 1, "confirm_source": "app"})
        assert response.status_code == 200 and message in response.content.decode()
    for data, message in (({"keep_hours": 1, "confirm_source": "app"}, "Choose a moment"),
                          ({"latest": "on", "keep_hours": 1, "confirm_source": "ap"}, "Type app exactly"),
                          ({"target_time": "yesterday", "keep_hours": 1, "confirm_source": "app"}, "valid date")):
        response = client.post("/databases/app/pitr/restore/", data)
        assert response.status_code == 200 and re.search(message, response.content.decode()), message
    assert not Restore.objects.exists() and not sent.calls


@pytest.mark.parametrize("role, allowed", [("viewer", set()), ("operator", {"base", "drill"}),
                                           ("admin", {"base", "drill", "restore"})])
def test_who_may_do_what_with_pitr(client, source_database, sent, role, allowed):
    PitrSetup.objects.create(database=source_database, stanza="app", repo_path="/nonexistent", enabled=timezone.now(),
                             info={"backup": [{"timestamp": {"start": 1, "stop": 2}}]})
    client.force_login(make_user(f"u-{role}", role))
    actions = {"base": ("post", "/databases/app/pitr/base-backup/"), "drill": ("post", "/databases/app/pitr/drill/"),
               "restore": ("get", "/databases/app/pitr/restore/")}
    for name, (method, url) in actions.items():
        status = getattr(client, method)(url).status_code
        assert (status != 403) == (name in allowed), (role, name, status)
    assert client.post("/databases/app/pitr/restore/", {"latest": "on", "keep_hours": 1,
                                                        "confirm_source": "app"}).status_code == (
        302 if "restore" in allowed else 403)


def test_pitr_pages_of_a_database_without_pitr_are_not_found(client, source_database, panel_admin):
    client.force_login(panel_admin)
    assert "Point-in-time recovery" not in client.get("/databases/app/").content.decode()
    assert client.get("/databases/app/pitr/restore/").status_code == 404
    assert client.post("/databases/app/pitr/base-backup/").status_code == 404
    assert client.post("/databases/app/pitr/drill/").status_code == 404


def test_the_moment_is_read_in_the_database_zone_whatever_the_panel_zone(settings, source_database):
    from backups.pitr import RecoveryWindow
    from drills.forms import PitrRestoreForm

    settings.TIME_ZONE = "Europe/Berlin"  # 02:30 on these days does not exist / happens twice in Berlin
    window = RecoveryWindow(timezone.now() - timedelta(days=3000), timezone.now())
    for wall_clock in ("2026-03-29T02:30:00", "2026-10-25T02:30:00"):
        form = PitrRestoreForm({"target_time": wall_clock, "keep_hours": 1, "confirm_source": "app"},
                               database=source_database, window=window)  # the database runs on UTC
        assert form.is_valid(), form.errors
        assert form.cleaned_data["target_time"].isoformat() == wall_clock + "+00:00"
    source_database.timezone = "Europe/Berlin"
    form = PitrRestoreForm({"target_time": "2026-03-29T02:30:00", "keep_hours": 1, "confirm_source": "app"},
                           database=source_database, window=window)
    assert not form.is_valid() and "Europe/Berlin" in str(form.errors["target_time"])
