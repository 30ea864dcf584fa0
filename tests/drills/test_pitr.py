"""Point-in-time recovery with pgBackRest on a real cluster run as postgres."""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups.models import BaseBackup, PitrSetup
from backups.pgbackrest import PgBackRest, PitrError
from backups.pitr import enable, setup_for, wal_health
from backups.tasks import check_wal
from controlpanel.jobs import Status
from drills.models import Restore
from drills.pitr import remove_sandbox, restore_to_sandbox
from drills.sandboxes import LocalSandboxes
from tests.drills.conftest import sql

pytestmark = pytest.mark.django_db(transaction=True)


def test_enable_reports_plainly_when_archiving_is_not_set_up(source_database):
    setup = setup_for(source_database, repo_path="/tmp/restorable-unused-repo")
    report = enable(setup)
    assert not report.ok
    failed = next(s for s in report.steps if not s.ok)
    assert failed.step in ("archive settings", "discover")
    assert any(line.startswith("archive_command = 'pgbackrest --config=") for line in report.postgresql_conf) \
        or failed.step == "discover"


def test_restore_to_a_point_in_time_brings_back_exactly_the_rows_before_it(archiving_cluster):
    database, cluster, setup = archiving_cluster
    job = (BaseBackup.objects.create(database=database, kind="full")).execute()
    assert job.status == Status.SUCCEEDED, job.error
    assert job.label and job.wal_start and job.backup_stop
    sql(cluster, "CREATE TABLE events (id serial, at timestamptz DEFAULT clock_timestamp())")
    sql(cluster, "INSERT INTO events SELECT FROM generate_series(1, 100)")
    time.sleep(2)
    target = sql(cluster, "SELECT clock_timestamp()")
    time.sleep(1.2)
    sql(cluster, "INSERT INTO events SELECT FROM generate_series(1, 50)")
    PgBackRest(setup).check()  # switches WAL and waits until it is archived

    sandbox, recovered_to = restore_to_sandbox(setup, target, 600, keep=False)
    try:
        assert sql(sandbox, "SELECT count(*) FROM events") == 100
        assert sql(sandbox, "SELECT pg_is_in_recovery()") is False
        assert sql(sandbox, "SHOW archive_mode") == "off"  # never writes into the source's archive
        assert recovered_to <= target and target - recovered_to < timedelta(seconds=5)
    finally:
        remove_sandbox(sandbox)

    health = wal_health(setup)
    assert health.ok and health.exposure_seconds < 60


def test_unreachable_targets_fail_loudly(archiving_cluster):
    database, cluster, setup = archiving_cluster
    before_any_backup = timezone.now() - timedelta(hours=1)
    with pytest.raises(PitrError, match="no base backup yet"):
        restore_to_sandbox(setup, before_any_backup, 600, keep=False)
    (BaseBackup.objects.create(database=database, kind="full")).execute()
    with pytest.raises(PitrError, match="before the earliest point a restore can reach"):
        restore_to_sandbox(setup, before_any_backup, 600, keep=False)
    with pytest.raises(PitrError, match="in the future"):
        restore_to_sandbox(setup, timezone.now() + timedelta(hours=1), 600, keep=False)
    sql(cluster, "CREATE TABLE late (id int)")
    time.sleep(1.2)
    sql(cluster, "INSERT INTO late VALUES (1)")
    not_archived_yet = sql(cluster, "SELECT clock_timestamp()")
    with pytest.raises(PitrError, match="after the last archived WAL"):
        restore_to_sandbox(setup, not_archived_yet, 600, keep=False)


def test_pitr_cli_restores_latest_into_a_sandbox(archiving_cluster, capsys):
    import json

    from django.core.management import call_command

    database, cluster, setup = archiving_cluster
    call_command("base_backup", "app", "--inline", "--json")
    sql(cluster, "CREATE TABLE t AS SELECT generate_series(1, 7) AS i")
    PgBackRest(setup).check()
    capsys.readouterr()
    call_command("pitr", "app", "--target-time", "latest", "--hours", "1", "--inline", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded", result["error"]
    assert result["recovered_to"] and result["rto_seconds"] > 0 and "password" not in json.dumps(result)
    restore = Restore.objects.get(pk=result["id"])
    from drills.sandboxes import Sandbox

    sandbox = Sandbox(major=15, directory=Path(restore.details["sandbox"]), port=result["connection"]["port"])
    try:
        assert sql(sandbox, "SELECT count(*) FROM t") == 7
    finally:
        remove_sandbox(sandbox)


def test_failing_archiving_shows_in_wal_health_and_alerts_once(archiving_cluster, monkeypatch):
    database, cluster, setup = archiving_cluster
    sent = []
    monkeypatch.setattr("controlpanel.notify.send", lambda name, summary, **ctx: sent.append((name, summary)) or 1)
    repo = Path(setup.repo_path)
    repo.rename(repo.with_name(repo.name + "-gone"))  # the repository becomes unreachable
    try:
        sql(cluster, "CREATE TABLE x AS SELECT 1")
        sql(cluster, "SELECT pg_switch_wal()")
        for _ in range(100):
            if sql(cluster, "SELECT failed_count FROM pg_stat_archiver"):
                break
            time.sleep(0.2)
        health = wal_health(setup)
        assert not health.ok and "WAL archiving is failing" in health.detail
        assert check_wal() == 1 and check_wal() == 1
        assert [name for name, _ in sent] == ["wal"]
        assert "failing" in sent[0][1]
    finally:
        repo.with_name(repo.name + "-gone").rename(repo)


@pytest.fixture
def tls_s3(s3_endpoint, tmp_path):
    """moto's S3 server behind stunnel: pgBackRest's S3 client speaks only TLS."""
    import subprocess

    from drills.sandboxes import free_port

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    conf = tmp_path / "stunnel.conf"
    conf.write_text(f"foreground = yes\npid =\n[s3]\naccept = 127.0.0.1:{port}\n"
                    f"connect = {s3_endpoint.removeprefix('http://')}\ncert = {cert}\nkey = {key}\n")
    proc = subprocess.Popen(["stunnel", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"https://127.0.0.1:{port}"
    proc.terminate()
    proc.wait()


def test_base_backups_also_land_in_the_offsite_s3_repository(archiving_cluster, tls_s3, s3_storage, s3_bucket,
                                                             s3_client):
    database, cluster, setup = archiving_cluster
    s3_storage.endpoint_url = tls_s3
    s3_storage.save()
    setup = setup_for(database, repo_path=setup.repo_path, offsite=s3_storage, verify_tls=False)
    report = enable(setup)
    assert report.ok, [s.__dict__ for s in report.steps]
    job = (BaseBackup.objects.create(database=database, kind="full")).execute()
    assert job.status == Status.SUCCEEDED, job.error
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert any("/pgbackrest/backup/app/" in k for k in keys) and any("/pgbackrest/archive/app/" in k for k in keys)
    repos = {r["key"]: r["status"]["code"] for r in PitrSetup.objects.get(pk=setup.pk).info["repo"]}
    assert repos == {1: 0, 2: 0}
    config = PgBackRest(setup).config_path
    assert oct(config.stat().st_mode & 0o777) == "0o600"  # it holds the repository keys


def test_a_pitr_drill_records_rto_and_measured_rpo(archiving_cluster, capsys):
    import json

    from django.core.management import call_command
    from django_celery_beat.models import PeriodicTask

    database, cluster, setup = archiving_cluster
    call_command("base_backup", "app", "--inline")
    time.sleep(2)  # the drill's target (the last archived WAL) must come after the backup ended
    sql(cluster, "CREATE TABLE orders AS SELECT generate_series(1, 30) AS id")
    PgBackRest(setup).check()
    sql(cluster, "INSERT INTO orders VALUES (31)")  # a commit after the target, so recovery can stop there
    PgBackRest(setup).check()
    database.smoke_sql = "SELECT count(*) >= 30 FROM orders -- expect: True"
    database.save()
    capsys.readouterr()
    call_command("drill", "app", "--pitr", "--inline", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded", result["error"]
    assert result["pitr"] and result["rto_seconds"] > 0 and result["restore_seconds"] > 0
    assert result["rpo_seconds"] is not None and 0 <= result["rpo_seconds"] < 120
    assert result["smoke"][0]["ok"]
    assert PeriodicTask.objects.get(name="app: pitr drill").queue == "drills"


def test_the_heartbeat_table_makes_the_pitr_drill_rpo_exact(archiving_cluster):
    from django_celery_beat.models import PeriodicTask

    from backups.tasks import write_pitr_heartbeat
    from drills.models import Drill

    database, cluster, setup = archiving_cluster
    setup.heartbeat_seconds = 10
    setup.save()
    assert PeriodicTask.objects.get(name="app: pitr heartbeat").interval.every == 10
    (BaseBackup.objects.create(database=database, kind="full")).execute()
    time.sleep(2)
    write_pitr_heartbeat(database.pk)
    beat_at = sql(cluster, "SELECT at FROM restorable_heartbeat")
    time.sleep(1.2)
    target = sql(cluster, "SELECT clock_timestamp()")
    write_pitr_heartbeat(database.pk)  # the commit after the target
    PgBackRest(setup).check()
    drill = (Drill.objects.create(database=database, pitr_target=target, details={"pitr": True})).execute()
    assert drill.status == Status.SUCCEEDED, drill.error
    assert drill.details["rpo_from"] == "heartbeat table"
    assert drill.rpo_seconds == pytest.approx((target - beat_at).total_seconds(), abs=0.01)


def test_pitr_restore_into_a_new_data_directory(archiving_cluster, tmp_path, capsys):
    import json

    from django.core.management import call_command

    from drills.sandboxes import Sandbox

    database, cluster, setup = archiving_cluster
    call_command("base_backup", "app", "--inline")
    time.sleep(2)
    sql(cluster, "CREATE TABLE kept AS SELECT generate_series(1, 12) AS i")
    time.sleep(1.1)
    target = sql(cluster, "SELECT clock_timestamp()")
    sql(cluster, "INSERT INTO kept VALUES (13)")
    PgBackRest(setup).check()
    import shutil
    import uuid

    from django.conf import settings as django_settings

    datadir = Path(django_settings.DATA_DIR) / f"restored-{uuid.uuid4().hex[:8]}" / "data"
    capsys.readouterr()
    call_command("pitr", "app", "--target-time", target.isoformat(), "--to-datadir", str(datadir), "--inline", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded", result["error"]
    assert result["datadir"] == str(datadir) and result["recovered_to"]
    assert not (datadir / "postmaster.pid").exists()  # left stopped, for the operator
    auto_conf = (datadir / "postgresql.auto.conf").read_text()
    assert "pitr-dir" not in auto_conf and "archive_mode = 'off'" in auto_conf  # no trace of the check run
    with pytest.raises(Exception, match="not empty"):
        from drills.pitr import restore_to_directory

        restore_to_directory(setup, target, datadir)
    check = Sandbox(major=15, directory=datadir.parent, port=0, data_path=datadir)
    (datadir.parent / "socket").mkdir()
    shutil.chown(datadir.parent, "postgres")
    shutil.chown(datadir.parent / "socket", "postgres")
    try:
        LocalSandboxes()._start(check, __import__("drills.sandboxes", fromlist=["bin_dir"]).bin_dir(15), {},
                                keep_existing=True)
        assert sql(check, "SELECT count(*) FROM kept") == 12
    finally:
        check.stop()
        shutil.rmtree(datadir.parent, ignore_errors=True)


def test_weekly_pgbackrest_verify_records_its_result(archiving_cluster):
    from backups.tasks import pgbackrest_verify

    database, cluster, setup = archiving_cluster
    (BaseBackup.objects.create(database=database, kind="full")).execute()
    pgbackrest_verify(database.pk)
    result = PitrSetup.objects.get(pk=setup.pk).info["verify"]
    assert result["ok"] is True and result["at"]


def test_a_failed_restore_into_a_data_directory_leaves_it_empty(archiving_cluster, monkeypatch):
    import shutil
    import uuid

    from django.conf import settings as django_settings

    from drills.pitr import restore_to_directory

    database, cluster, setup = archiving_cluster
    (BaseBackup.objects.create(database=database, kind="full")).execute()
    PgBackRest(setup).check()

    def recovery_fails(sandbox, target):
        raise PitrError("recovery stopped: the archive ran out of WAL")

    monkeypatch.setattr("drills.pitr.start_restored", recovery_fails)
    datadir = Path(django_settings.DATA_DIR) / f"restored-{uuid.uuid4().hex[:8]}" / "data"
    try:
        with pytest.raises(PitrError, match="ran out of WAL"):
            restore_to_directory(setup, None, datadir)
        assert datadir.is_dir() and list(datadir.iterdir()) == []  # not a half-restored cluster
    finally:
        shutil.rmtree(datadir.parent, ignore_errors=True)
