"""A CLI restore to a server given by connection string is audited once, naming
that server and the new database, never its password."""

import json

import pytest
from django.core.management import call_command

from backups.models import BackupRun
from backups.services import create_backup_run
from controlpanel.jobs import Status
from controlpanel.models import AuditEvent
from drills.models import Restore
from tests.conftest import admin_conn, psql

PASSWORD = "Sup3r-s3cret-pw"


def everything_audited() -> str:
    return json.dumps([[e.action, e.summary, e.details] for e in AuditEvent.objects.all()])


def test_a_queued_restore_to_a_dsn_names_its_server_and_database(source_database, monkeypatch, capsys):
    run = BackupRun.objects.create(database=source_database, status=Status.SUCCEEDED, verified="passed")
    monkeypatch.setenv("TARGET_DSN", f"postgresql://restorer:{PASSWORD}@db-target.example.internal:6543/postgres")
    call_command("restore", str(run.pk), "--to-dsn-env", "TARGET_DSN", "--new-database", "restored_copy")

    job = Restore.objects.get()
    event = AuditEvent.objects.get(action="restore.start")
    assert event.summary == (f"Restore of backup #{run.pk} (everything) into database 'restored_copy' on "
                             "db-target.example.internal:6543")
    assert event.object_id == str(job.pk)
    assert job.target_dsn.endswith("db-target.example.internal:6543/postgres")  # kept, encrypted, for the worker
    assert PASSWORD not in everything_audited() and PASSWORD not in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_an_inline_restore_to_a_dsn_lands_there_and_says_so(source_database, monkeypatch, capsys):
    psql(source_database.dbname, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1), (2)")
    run = create_backup_run(source_database)
    run.execute(inline=True)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.error
    source_database.host = "localhost"  # the source's own host must not be what the entry names
    source_database.server_version = int(psql("postgres", "SHOW server_version_num"))  # as add_database detects
    source_database.save()
    # The local server trusts loopback: the password is carried along, never checked, never shown.
    monkeypatch.setenv("TARGET_DSN", f"host=127.0.0.1 port=5432 user=postgres password={PASSWORD} dbname=postgres")
    target = f"{source_database.dbname}_copy"
    try:
        call_command("restore", str(run.pk), "--to-dsn-env", "TARGET_DSN", "--new-database", target, "--inline")
        job = Restore.objects.get()
        assert job.status == Status.SUCCEEDED, job.error
        assert psql(target, "SELECT count(*) FROM orders") == "2"
        started = AuditEvent.objects.filter(action="restore.start")
        assert [e.summary for e in started] == [
            f"Restore of backup #{run.pk} (everything) into database '{target}' on 127.0.0.1:5432"]
        assert PASSWORD not in everything_audited() and PASSWORD not in capsys.readouterr().out
    finally:
        with admin_conn() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')

