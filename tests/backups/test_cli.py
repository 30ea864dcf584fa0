"""The operator CLI: add storages and databases, back up, show status."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from backups.models import BackupRun, Database, Storage
from controlpanel.jobs import Status
from tests.conftest import S3_KEYS

pytestmark = pytest.mark.django_db(transaction=True)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = 0
    try:
        call_command(*args)
    except SystemExit as exc:
        code = exc.code
    except CommandError as exc:
        code = 1
        print(exc, file=__import__("sys").stderr)
    out, err = capsys.readouterr()
    return code, out, err


def test_add_storages_and_database_then_back_up_with_json(capsys, tmp_path, monkeypatch, make_pg_database,
                                                          s3_endpoint, s3_bucket, s3_client):
    dbname = make_pg_database()
    code, out, _ = run_cli(capsys, "add_storage", "disk", "--local", str(tmp_path / "b"))
    assert code == 0, out
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEYS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_KEYS["aws_secret_access_key"])
    code, out, err = run_cli(capsys, "add_storage", "r2", "--s3-endpoint", s3_endpoint, "--bucket", s3_bucket,
                             "--prefix", "prod", "--region", "us-east-1", "--path-style", "--lifecycle-days", "90")
    assert code == 0, err
    assert Storage.objects.get(name="r2").secret_access_key == S3_KEYS["aws_secret_access_key"]
    rules = s3_client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]
    assert rules[0]["Expiration"]["Days"] == 90 and rules[0]["Filter"]["Prefix"] == "prod/"

    monkeypatch.setenv("APP_DSN", f"postgresql://postgres@127.0.0.1:5432/{dbname}")
    code, out, err = run_cli(capsys, "add_database", "app", "--dsn-env", "APP_DSN", "--storage", "disk",
                             "--offsite", "r2", "--timezone", "Europe/Berlin")
    assert code == 0, err
    assert "PostgreSQL 15" in out
    task = PeriodicTask.objects.get(name="app: dump")
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("15", "3", "Europe/Berlin")

    code, out, err = run_cli(capsys, "backup", "app", "--inline", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["verified"] == "passed"  # --inline verifies in the same process, and says so
    assert ({(a["storage"], a["name"]) for a in result["artifacts"]}
            >= {("disk", "full.dump.zst"), ("r2", "full.dump.zst")})
    r2_key = next(a["key"] for a in result["artifacts"] if a["storage"] == "r2" and a["name"] == "manifest.json")
    assert r2_key.startswith("prod/app/")

    code, out, _ = run_cli(capsys, "status", "--json")
    assert json.loads(out)[0]["last_run"]["status"] == "succeeded"


def test_secrets_never_travel_on_argv(capsys):
    with pytest.raises(CommandError):
        call_command("add_database", "app", "--dsn", "postgres://u:pw@h/db", "--storage", "x")


def test_bad_input_gives_clear_errors(capsys, tmp_path, monkeypatch):
    assert run_cli(capsys, "add_storage", "disk", "--local", "relative/path")[0] == 1
    code, _, err = run_cli(capsys, "add_storage", "Bad Name!", "--local", str(tmp_path))
    assert code == 1 and "name" in err
    code, _, err = run_cli(capsys, "add_storage", "r2", "--s3-endpoint", "http://127.0.0.1:1", "--bucket", "A_B")
    assert code == 1 and "bucket name" in err
    code, _, err = run_cli(capsys, "add_database", "app", "--dsn-env", "NOT_SET_VAR", "--storage", "disk")
    assert code == 1 and "NOT_SET_VAR is not set" in err
    code, _, err = run_cli(capsys, "backup", "nosuch")
    assert code == 1 and "No database named 'nosuch'" in err


def test_add_database_refuses_an_unreachable_server(capsys, tmp_path, monkeypatch):
    run_cli(capsys, "add_storage", "disk", "--local", str(tmp_path))
    monkeypatch.setenv("BAD_DSN", "postgresql://postgres@127.0.0.1:1/app")
    code, _, err = run_cli(capsys, "add_database", "app", "--dsn-env", "BAD_DSN", "--storage", "disk")
    assert code == 1 and "unreachable" in err
    assert not Database.objects.exists()


def test_storage_test_explains_a_missing_bucket(capsys, s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    code, _, err = run_cli(capsys, "add_storage", "r2", "--s3-endpoint", s3_endpoint, "--bucket", "not-there",
                           "--path-style", "--region", "us-east-1")
    assert code == 1 and "Bucket 'not-there' does not exist" in err


def test_backup_wait_follows_a_real_worker(capsys, celery_worker, source_database):
    code, out, err = run_cli(capsys, "backup", "app", "--wait", "--json")
    assert code == 0, (err, celery_worker.log.read_text()[-2000:])
    result = json.loads(out)
    assert result["status"] == Status.SUCCEEDED and result["trigger"] == "api"
    assert BackupRun.objects.get(pk=result["id"]).celery_task_id


def test_schedules_follow_the_database_however_it_is_edited(source_database):
    from backups.models import BackupPolicy

    task = PeriodicTask.objects.get(name="app: dump")
    assert task.crontab.hour == "3" and task.crontab.minute == "15"
    policy = BackupPolicy.objects.get(database=source_database)
    policy.dump_cron = "0 */6 * * *"
    policy.save()
    assert PeriodicTask.objects.get(name="app: dump").crontab.hour == "*/6"
    source_database.delete()
    assert not PeriodicTask.objects.filter(name="app: dump").exists()


def test_running_add_storage_again_keeps_what_it_does_not_set(capsys, tmp_path):
    assert run_cli(capsys, "add_storage", "disk", "--local", str(tmp_path / "b"), "--retention-days", "90")[0] == 0
    Storage.objects.filter(name="disk").update(multipart_chunk_mb=64)
    assert run_cli(capsys, "add_storage", "disk", "--local", str(tmp_path / "b2"))[0] == 0
    storage = Storage.objects.get(name="disk")
    assert (storage.path, storage.retention_days, storage.multipart_chunk_mb) == (str(tmp_path / "b2"), 90, 64)
    assert run_cli(capsys, "add_storage", "disk", "--local", str(tmp_path / "b2"), "--retention-days", "7")[0] == 0
    assert Storage.objects.get(name="disk").retention_days == 7


def test_running_add_database_again_keeps_what_it_does_not_set(capsys, tmp_path, monkeypatch, make_pg_database,
                                                               s3_endpoint, s3_bucket):
    dbname = make_pg_database()
    monkeypatch.setenv("APP_DSN", f"postgresql://postgres@127.0.0.1:5432/{dbname}")
    for key, value in S3_KEYS.items():
        monkeypatch.setenv(key.upper(), value)
    assert run_cli(capsys, "add_storage", "disk", "--local", str(tmp_path / "b"))[0] == 0
    assert run_cli(capsys, "add_storage", "r2", "--s3-endpoint", s3_endpoint, "--bucket", s3_bucket,
                   "--region", "us-east-1", "--path-style")[0] == 0
    assert run_cli(capsys, "add_database", "app", "--dsn-env", "APP_DSN", "--storage", "disk", "--offsite", "r2",
                   "--timezone", "America/New_York", "--globals", "--no-test")[0] == 0
    Database.objects.filter(name="app").update(smoke_sql="SELECT 1", agent_queue="agent.db1", rto_budget_seconds=600,
                                               tables_that_matter=["public.orders"])
    code, _, err = run_cli(capsys, "add_database", "app", "--dsn-env", "APP_DSN", "--storage", "disk", "--no-test")
    assert code == 0, err
    database = Database.objects.get(name="app")
    assert (database.timezone, database.include_globals, database.smoke_sql, database.agent_queue,
            database.rto_budget_seconds, database.tables_that_matter) == (
        "America/New_York", True, "SELECT 1", "agent.db1", 600, ["public.orders"])
    assert [s.name for s in database.offsite_storages.all()] == ["r2"]
    assert str(PeriodicTask.objects.get(name="app: dump").crontab.timezone) == "America/New_York"


def test_impossible_target_times_are_refused_plainly(capsys, source_database):
    for command in (("drill", "app", "--pitr"), ("pitr", "app")):
        for moment in ("2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-24T10:00:00"):
            code, _, err = run_cli(capsys, *command, "--target-time", moment, "--inline")
            assert code == 1 and "ISO 8601 with a time zone" in err and "Traceback" not in err
