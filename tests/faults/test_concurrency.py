"""Many clicks, many databases, duplicate deliveries: one run each, all verified."""

import threading
import time

import pytest
from django.db import connection

from backups.models import BackupRun, Database
from backups.services import create_backup_run
from backups.tasks import backup
from controlpanel.jobs import Status
from tests.conftest import PG, psql

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_simultaneous_back_up_now_clicks_make_one_run(source_database, operator, monkeypatch):
    from django.test import Client

    monkeypatch.setattr("controlpanel.jobs.send", lambda job, queue: type("R", (), {"id": "t"})())
    barrier = threading.Barrier(20)
    statuses = []

    def click():
        client = Client()
        client.force_login(operator)
        barrier.wait()
        statuses.append(client.post(f"/databases/{source_database.name}/backup/").status_code)
        connection.close()

    threads = [threading.Thread(target=click) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 20 and set(statuses) == {302}
    assert BackupRun.objects.count() == 1


def test_a_duplicate_delivery_does_not_make_two_backups(source_database):
    run = create_backup_run(source_database)
    backup.apply(args=[run.pk])
    backup.apply(args=[run.pk])  # the broker delivered the same message again
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert run.artifacts.filter(name="full.dump.zst").count() == 1
    assert BackupRun.objects.count() == 1
    assert run.verifications.count() == 1  # what follows a backup follows it once


def test_ten_databases_at_once_on_two_workers_all_verified(celery_worker, local_storage, make_pg_database,
                                                           django_capture_on_commit_callbacks):
    from backups.services import start_backup

    databases = []
    for i in range(10):
        dbname = make_pg_database()
        psql(dbname, f"CREATE TABLE t AS SELECT generate_series(1, {1000 + i}) AS i")
        databases.append(Database.objects.create(name=f"db{i}", dbname=dbname, host=PG["host"], port=PG["port"],
                                                 user=PG["user"], primary_storage=local_storage,
                                                 server_version=150000))
    with django_capture_on_commit_callbacks(execute=True):
        runs = [start_backup(db) for db in databases]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        done = BackupRun.objects.filter(pk__in=[r.pk for r in runs]).exclude(verified="pending").count()
        if done == 10:
            break
        time.sleep(0.5)
    results = list(BackupRun.objects.filter(pk__in=[r.pk for r in runs]).values_list("status", "verified"))
    assert results == [(Status.SUCCEEDED, "passed")] * 10, celery_worker.log.read_text()[-3000:]
