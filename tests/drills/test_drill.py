"""Restore drills with measured RTO, budgets, schedules, and one-click restores."""

import hashlib
import json
import subprocess
from datetime import UTC, datetime

import pytest
import zstandard
from django.core.management import call_command

from backups.models import Artifact
from backups.schedules import next_runs
from backups.services import create_backup_run
from backups.storage import backend_for
from controlpanel.jobs import Status
from controlpanel.models import AuditEvent
from drills.models import Drill, Restore
from drills.services import create_restore
from tests.conftest import PG, psql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def verified_run(source_database, s3_storage):
    psql(source_database.dbname, """
        CREATE TABLE orders (id serial PRIMARY KEY, total numeric, created_at timestamptz DEFAULT now());
        INSERT INTO orders (total) SELECT i FROM generate_series(1, 2500) i;
        CREATE TABLE users (id serial PRIMARY KEY, email text);
        INSERT INTO users (email) SELECT 'u' || i || '@example.com' FROM generate_series(1, 300) i;
    """)
    source_database.offsite_storages.add(s3_storage)
    run = create_backup_run(source_database)
    run.execute(inline=True)
    run.refresh_from_db()
    assert run.verified == "passed", run.error
    return run


def test_a_drill_passes_on_a_good_backup_and_records_its_rto(verified_run):
    database = verified_run.database
    database.smoke_sql = "SELECT count(*) FROM public.orders -- expect: 2500\nSELECT max(total) FROM public.orders"
    database.save()
    drill = (Drill.objects.create(database=database)).execute()
    assert drill.status == Status.SUCCEEDED, drill.error
    assert drill.source_run == verified_run and drill.storage.name == "offsite"
    assert drill.row_counts_match and drill.mismatches == []
    assert 0 < drill.download_seconds and 0 < drill.restore_seconds and 0 < drill.checks_seconds
    assert drill.rto_seconds >= drill.download_seconds + drill.restore_seconds
    assert drill.within_budget
    assert [s["value"] for s in drill.smoke_results] == ["2500", "2500"] and all(s["ok"] for s in drill.smoke_results)


def tamper_with_stored_dump(run, make_pg_database, tmp_path, sql: str) -> None:
    """Change a table's data inside every stored copy, with matching checksums,
    the way a bug or an attacker would: only the drill can notice."""
    artifact = run.artifacts.get(storage__name="offsite", name="full.dump.zst")
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(
        b"".join(backend_for(artifact.storage).read(artifact.key)))
    (tmp_path / "original.dump").write_bytes(raw)
    scratch = make_pg_database("rs_tamper")
    subprocess.run(["pg_restore", "-h", PG["host"], "-U", PG["user"], "-d", scratch, "--no-owner",
                    str(tmp_path / "original.dump")], check=True, capture_output=True)
    psql(scratch, sql)
    dumped = subprocess.run(["pg_dump", "-h", PG["host"], "-U", PG["user"], "-Fc", "-Z0", scratch],
                            check=True, capture_output=True).stdout
    tampered = zstandard.ZstdCompressor(level=1).compress(dumped)
    for copy in run.artifacts.filter(name="full.dump.zst"):
        backend_for(copy.storage).put_bytes(copy.key, tampered)
        Artifact.objects.filter(pk=copy.pk).update(sha256=hashlib.sha256(tampered).hexdigest(), size=len(tampered))


def test_a_drill_fails_naming_the_table_whose_stored_data_changed(verified_run, make_pg_database, tmp_path):
    tamper_with_stored_dump(verified_run, make_pg_database, tmp_path, "DELETE FROM orders WHERE id > 2400")
    drill = (Drill.objects.create(database=verified_run.database)).execute()
    assert drill.status == Status.FAILED
    assert drill.mismatches == [{"table": "public.orders", "expected": 2500, "actual": 2400}]
    assert "public.orders: expected 2500 rows, restored 2400" in drill.error
    assert drill.row_counts_match is False


def test_drill_cli_json_and_exit_status(verified_run, capsys):
    call_command("drill", "app", "--inline", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded" and result["row_counts_match"] is True
    assert result["rto_seconds"] > 0 and result["restore_seconds"] > 0 and result["mismatches"] == []


def test_a_slow_drill_is_flagged_over_budget(verified_run):
    database = verified_run.database
    database.rto_budget_seconds = 0
    database.save()
    drill = (Drill.objects.create(database=database)).execute()
    assert drill.status == Status.SUCCEEDED and drill.within_budget is False
    assert "over the 0 s budget" in drill.details["warnings"][0]


def test_the_first_sunday_schedule_fires_on_the_right_dates_for_a_year():
    fired = next_runs("0 5 1-7 * 0", "Europe/Berlin", datetime(2027, 1, 1, tzinfo=UTC), 12)
    assert [t.date().isoformat() for t in fired] == [
        "2027-01-03", "2027-02-07", "2027-03-07", "2027-04-04", "2027-05-02", "2027-06-06",
        "2027-07-04", "2027-08-01", "2027-09-05", "2027-10-03", "2027-11-07", "2027-12-05",
    ]
    assert all(t.hour == 5 and t.weekday() == 6 for t in fired)  # 05:00 local, also across DST


def test_restore_to_a_kept_sandbox_shows_the_password_once(verified_run):
    job = (create_restore(verified_run, target=Restore.Target.SANDBOX, keep_hours=2)).execute()
    try:
        assert job.status == Status.SUCCEEDED, job.error
        from backups.pgtools import ConnInfo, connect
        from drills.restores import take_password

        password = take_password(job)
        assert password and take_password(Restore.objects.get(pk=job.pk)) == ""
        c = job.connection
        with connect(ConnInfo(c["host"], c["port"], c["dbname"], c["user"], password, "disable")) as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 2500
        assert (job.expires - job.finished).total_seconds() == pytest.approx(7200, abs=120)
        actions = list(AuditEvent.objects.filter(object_id=str(job.pk)).values_list("action", flat=True))
        assert "restore.start" in actions and "restore.finished" in actions
    finally:
        from pathlib import Path

        from drills.sandboxes import Sandbox

        Sandbox(major=15, directory=Path(job.details["sandbox"]), port=0).remove()


def test_restore_into_an_existing_database_needs_its_name_typed(verified_run, make_pg_database):
    existing = make_pg_database("rs_existing")
    psql(existing, "CREATE TABLE precious (id int); INSERT INTO precious VALUES (1)")
    job = (create_restore(verified_run, target=Restore.Target.NEW_DATABASE, target_dbname=existing)).execute()
    assert job.status == Status.FAILED and "only overwritten when its name is typed" in job.error
    assert psql(existing, "SELECT count(*) FROM precious") == "1"
    job = (create_restore(verified_run, target=Restore.Target.NEW_DATABASE, target_dbname=existing,
                                         confirmation=existing)).execute()
    assert job.status == Status.SUCCEEDED, job.error
    assert psql(existing, "SELECT count(*) FROM orders") == "2500"


def test_a_table_only_restore_brings_back_that_table_and_nothing_else(verified_run, make_pg_database):
    target = make_pg_database("rs_tables")
    psql("postgres", f'DROP DATABASE "{target}"')  # the restore creates it
    job = (create_restore(verified_run, target=Restore.Target.NEW_DATABASE, target_dbname=target,
                                         tables=["public.orders"])).execute()
    assert job.status == Status.SUCCEEDED, job.error
    assert psql(target, "SELECT count(*) FROM orders") == "2500"
    tables = psql(target, "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'")
    assert tables == "orders"


def test_restore_cli_into_a_new_database_from_a_dsn(verified_run, make_pg_database, monkeypatch, capsys):
    target = make_pg_database("rs_cli")
    psql("postgres", f'DROP DATABASE "{target}"')
    monkeypatch.setenv("TARGET_DSN", f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/postgres")
    call_command("restore", str(verified_run.pk), "--to-dsn-env", "TARGET_DSN", "--new-database", target,
                 "--table", "users", "--inline", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded" and result["connection"]["dbname"] == target
    assert psql(target, "SELECT count(*) FROM users") == "300"


def test_viewers_and_operators_cannot_restore(client, viewer, operator, panel_admin, verified_run):
    url = f"/runs/{verified_run.pk}/restore/"
    for user in (viewer, operator):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, {"target": "sandbox", "keep_hours": 1}).status_code == 403
    assert not Restore.objects.exists()
    client.force_login(panel_admin)
    assert client.get(url).status_code == 200


def test_the_restore_form_refuses_an_existing_name_without_confirmation(client, panel_admin, verified_run,
                                                                         make_pg_database):
    existing = make_pg_database("rs_existing")
    client.force_login(panel_admin)
    response = client.post(f"/runs/{verified_run.pk}/restore/", {
        "target": "new_database", "keep_hours": 4, "target_database": verified_run.database.pk,
        "target_dbname": existing, "confirm_source": verified_run.database.name})
    assert response.status_code == 200 and "type its name to confirm" in response.content.decode()
    assert not Restore.objects.exists()


def test_a_failed_restore_into_a_new_database_leaves_no_half_restored_database(verified_run, make_pg_database,
                                                                               monkeypatch):
    from drills.pgrestore import RestoreFailed

    target = make_pg_database("rs_half")
    psql("postgres", f'DROP DATABASE "{target}"')

    def restore_half_then_fail(dump, conninfo, major, selection=()):
        psql(conninfo.dbname, "CREATE TABLE half_done (id int)")  # some of it went in
        raise RestoreFailed("pg_restore failed (exit 1): out of disk space")

    monkeypatch.setattr("drills.restores.pg_restore", restore_half_then_fail)
    restore = Restore.objects.create(database=verified_run.database, source_run=verified_run,
                                     target=Restore.Target.NEW_DATABASE, target_database=verified_run.database,
                                     target_dbname=target)
    restore = restore.execute()
    assert restore.status == Status.FAILED
    assert "out of disk space" in restore.error and "the half-restored database was dropped" in restore.error
    assert psql("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{target}'") == "0"
