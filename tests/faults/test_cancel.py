"""Cancelling jobs: a queued one at once, a running one through its worker,
which stops pg_dump, removes what it stored and ends as cancelled, with no
failure alert. Real PostgreSQL and pg_dump, held at a table lock."""

import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from backups.models import BackupRun
from backups.services import create_backup_run
from controlpanel.jobs import Status
from controlpanel.models import AuditEvent
from drills.models import Restore
from tests.conftest import PG, psql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alerts(monkeypatch):
    sent = []
    monkeypatch.setattr("controlpanel.notify.send", lambda name, summary, **ctx: sent.append(name) or 1)
    return sent


def wait_for(condition, timeout=30.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_a_running_backup_is_stopped_cleaned_up_and_cancelled(client, operator, source_database, s3_storage, alerts,
                                                               s3_client):
    source_database.offsite_storages.add(s3_storage)
    psql(source_database.dbname, "CREATE TABLE t AS SELECT generate_series(1, 20000) AS i")
    run = create_backup_run(source_database)
    locker = psycopg.connect(host=PG["host"], port=PG["port"], user=PG["user"], dbname=source_database.dbname)
    locker.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # pg_dump and the row count wait here

    def execute():  # as a worker process would, then close this thread's own connection
        try:
            run.execute()
        finally:
            connection.close()

    worker = threading.Thread(target=execute)
    try:
        worker.start()
        wait_for(lambda: psql(source_database.dbname, "SELECT count(*) FROM pg_locks WHERE NOT granted") >= "2",
                 what="pg_dump to wait on the lock")
        client.force_login(operator)
        page = client.get(f"/runs/{run.pk}/").content.decode()
        assert 'id="cancel-job"' in page
        response = client.post(f"/runs/{run.pk}/cancel/", HTTP_HX_REQUEST="true")
        assert response.status_code == 204 and "Stopping Backup #" in response["HX-Trigger"]
        assert 'id="cancel-state"' in client.get(f"/runs/{run.pk}/").content.decode()
        started = time.monotonic()
        worker.join(timeout=30)
        assert not worker.is_alive(), "the cancelled backup did not stop while the lock was still held"
        assert time.monotonic() - started < 10
    finally:
        locker.close()
        worker.join(timeout=30)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and "Cancelled before it finished" in run.error
    assert not run.artifacts.exists()
    local = Path(source_database.primary_storage.path)
    assert not [p for p in local.rglob("*") if p.is_file()]  # nothing left, not even a .partial
    assert s3_client.list_objects_v2(Bucket=s3_storage.bucket).get("KeyCount", 0) == 0
    assert not s3_client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads")
    assert alerts == []  # a cancel is nobody's failure
    assert AuditEvent.objects.filter(action="backuprun.cancel", user=operator).exists()
    assert psql(source_database.dbname, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") == "0"


def test_a_queued_backup_is_cancelled_at_once_and_never_runs(client, operator, source_database, alerts):
    run = create_backup_run(source_database)
    client.force_login(operator)
    response = client.post(f"/runs/{run.pk}/cancel/", follow=True)
    assert "cancelled before it started" in response.content.decode()
    run.execute()  # the message reaches a worker anyway
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and run.started is None and not run.stamp
    assert alerts == []
    response = client.post(f"/runs/{run.pk}/cancel/", follow=True)
    assert "had already ended (cancelled)" in response.content.decode()
    assert AuditEvent.objects.filter(action="backuprun.cancel").count() == 1


def test_who_may_cancel_what(client, viewer, operator, source_database):
    run = create_backup_run(source_database)
    restore = Restore.objects.create(database=source_database, target=Restore.Target.SANDBOX)
    client.force_login(viewer)
    assert 'id="cancel-job"' not in client.get(f"/runs/{run.pk}/").content.decode()
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 403
    client.force_login(operator)
    assert client.post(f"/restores/{restore.pk}/cancel/").status_code == 403  # restores are for admins
    assert client.post(f"/databases/{run.pk}/cancel/").status_code == 404
    assert client.post("/runs/999999/cancel/").status_code == 404
    assert client.get(f"/runs/{run.pk}/cancel/").status_code == 405
    assert BackupRun.objects.get(pk=run.pk).status == Status.QUEUED
    restore.refresh_from_db()
    assert restore.status == Status.QUEUED


def test_the_cancel_command(source_database, capsys):
    restore = Restore.objects.create(database=source_database, target=Restore.Target.SANDBOX)
    call_command("cancel", "restore", str(restore.pk))
    assert "cancelled before it started" in capsys.readouterr().out
    restore.refresh_from_db()
    assert restore.status == Status.CANCELLED
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No drill #424242"):
        call_command("cancel", "drill", "424242")


def test_a_cancel_stops_every_process_a_tool_started():
    import subprocess

    from controlpanel import cancel

    token = cancel.CancelToken()
    cancel._current = token
    try:
        threading.Timer(1.0, token.cancel).start()
        started = time.monotonic()
        with pytest.raises(cancel.JobCancelled):
            # runuser and a shell with a child of its own, as pgBackRest runs under runuser
            cancel.run_tool(["runuser", "-u", "nobody", "--", "sh", "-c", "sleep 317.5 & sleep 317.6; wait"])
        assert time.monotonic() - started < 8
    finally:
        cancel._current = None
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", "sleep 317.[56]"], capture_output=True, text=True).stdout.split()
    assert left == [], "processes of the cancelled tool are still running"


def test_a_cancel_asked_just_before_a_failure_still_ends_cancelled_and_is_not_retried(source_database, alerts):
    from controlpanel.jobs import run_job

    run = create_backup_run(source_database)

    def fails_after_the_request(job):
        type(job).objects.filter(pk=job.pk).update(cancel_requested=timezone.now())  # before the next poll
        raise RuntimeError("an S3 endpoint went away")

    run_job(run, fails_after_the_request)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED

    other = create_backup_run(source_database)
    BackupRun.objects.filter(pk=other.pk).update(status=Status.FAILED, cancel_requested=timezone.now(),
                                                 details={"transient": True})
    other.refresh_from_db()
    assert other.requeue() is False and other.status == Status.FAILED


def test_a_restore_cancelled_while_queued_sends_no_started_alert(source_database, alerts):

    restore = Restore.objects.create(database=source_database, target=Restore.Target.SANDBOX)
    restore.request_cancel()
    restore.execute()
    assert alerts == [] and restore.status == Status.CANCELLED
