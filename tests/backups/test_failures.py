"""Bad input ends as a clear message on the run and a non-zero CLI exit,
and a failed run leaves nothing that could pass for a backup."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backups import pipeline
from backups.models import Artifact, BackupRun, Storage
from backups.services import create_backup_run
from backups.storage import S3Writer, backend_for
from controlpanel.jobs import Status
from drills.sandboxes import LocalSandboxes
from tests.conftest import S3_KEYS, psql

pytestmark = pytest.mark.django_db(transaction=True)


def backup_inline(database) -> BackupRun:
    run = create_backup_run(database)
    run.execute(inline=True)
    run.refresh_from_db()
    return run


def cli_backup(name: str) -> int:
    try:
        call_command("backup", name, "--inline")
    except SystemExit as exc:
        return exc.code
    except CommandError:
        return 1
    return 0


def assert_failed_cleanly(run: BackupRun, *phrases: str) -> None:
    assert run.status == Status.FAILED
    for phrase in phrases:
        assert phrase in run.error, run.error
    assert not Artifact.objects.filter(run=run).exists()
    for storage in Storage.objects.all():
        leftovers = [o.key for o in backend_for(storage).list() if not o.key.endswith(".restorable-write-test")]
        assert leftovers == [], f"{storage}: {leftovers}"


@pytest.fixture
def password_server():
    sandbox = LocalSandboxes().create(15, password="right-password-9")
    yield sandbox
    sandbox.remove()


def test_wrong_password(source_database, password_server):
    source_database.port = password_server.port
    source_database.dbname = "postgres"
    source_database.password = "wrong-password-1"
    source_database.save()
    run = backup_inline(source_database)
    assert_failed_cleanly(run, "Wrong password for user 'postgres'")
    assert "wrong-password-1" not in run.error
    assert cli_backup("app") == 1


def test_unreachable_host(source_database):
    source_database.port = 1  # nothing listens there
    source_database.save()
    run = backup_inline(source_database)
    assert_failed_cleanly(run, "unreachable")


def test_missing_database(source_database):
    source_database.dbname = "no_such_db"
    source_database.save()
    assert_failed_cleanly(backup_inline(source_database), "Database 'no_such_db' does not exist")


def test_missing_bucket(source_database, s3_storage):
    s3_storage.bucket = "no-such-bucket-here"
    s3_storage.save()
    source_database.offsite_storages.add(s3_storage)
    run = backup_inline(source_database)
    assert run.status == Status.FAILED
    assert "Bucket 'no-such-bucket-here' does not exist" in run.error
    assert cli_backup("app") == 1


@pytest.fixture
def moto_with_auth(tmp_path):
    """A moto server that checks credentials (its IAM emulation) in a separate process."""
    port = __import__("drills.sandboxes", fromlist=["free_port"]).free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    import boto3
    import httpx

    for _ in range(100):
        try:
            httpx.get(endpoint + "/moto-api/", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)
    iam.create_user(UserName="backup")
    key = iam.create_access_key(UserName="backup")["AccessKey"]
    yield endpoint, key
    proc.terminate()
    proc.wait()


def test_wrong_s3_keys(source_database, moto_with_auth):
    endpoint, real_key = moto_with_auth
    storage = Storage.objects.create(name="r2", kind="s3", endpoint_url=endpoint, bucket="some-bucket",
                                     region="us-east-1", path_style=True,
                                     access_key_id="AKIAWRONGKEY0000", secret_access_key="wrong-secret-xyz")
    source_database.offsite_storages.add(storage)
    run = backup_inline(source_database)
    assert run.status == Status.FAILED
    assert "access key or secret" in run.error and "wrong-secret-xyz" not in run.error


@pytest.fixture
def moto_process():
    port = __import__("drills.sandboxes", fromlist=["free_port"]).free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)
    for _ in range(100):
        try:
            client.create_bucket(Bucket="offsite")
            break
        except Exception:
            time.sleep(0.1)
    yield proc, endpoint, client
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def incompressible_rows(database, megabytes: int) -> None:
    psql(database.dbname, f"CREATE TABLE blobs AS SELECT i, decode(string_agg(md5(random()::text || j), ''), 'hex') b "
                          f"FROM generate_series(1, {megabytes * 16}) i, generate_series(1, 4096) j GROUP BY i")


def test_s3_endpoint_down_mid_upload(source_database, moto_process, monkeypatch):
    proc, endpoint, client = moto_process
    incompressible_rows(source_database, 24)
    storage = Storage.objects.create(name="r2", kind="s3", endpoint_url=endpoint, bucket="offsite", region="us-east-1",
                                     path_style=True, multipart_chunk_mb=5,
                                     access_key_id="testing-key", secret_access_key="testing-secret")
    source_database.offsite_storages.add(storage)
    original = S3Writer._send_part

    def send_then_die(self, data):
        original(self, data)
        if len(self.futures) == 2 and proc.poll() is None:
            proc.kill()  # the endpoint goes away after two parts are on their way
            proc.wait()

    monkeypatch.setattr(S3Writer, "_send_part", send_then_die)
    run = backup_inline(source_database)
    assert run.status == Status.FAILED
    assert "S3 endpoint of storage 'r2'" in run.error and "unreachable" in run.error
    assert not Artifact.objects.filter(run=run).exists()
    local = backend_for(source_database.primary_storage).list()
    assert local == []


def test_pg_dump_killed_midway(source_database, monkeypatch):
    incompressible_rows(source_database, 8)
    started = []
    real_popen = pipeline.subprocess.Popen

    def recording_popen(argv, **kwargs):
        proc = real_popen(argv, **kwargs)
        started.append((argv, proc))
        return proc

    original_update = pipeline.Progress.update

    def kill_during_dump(self, dumped, stored, force=False):
        for argv, proc in started:
            if "--format=custom" in argv and dumped > 2 * 1024 * 1024 and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        original_update(self, dumped, stored, force)

    monkeypatch.setattr(pipeline.subprocess, "Popen", recording_popen)
    monkeypatch.setattr(pipeline.Progress, "update", kill_during_dump)
    run = backup_inline(source_database)
    assert_failed_cleanly(run, "pg_dump was killed by signal 9")


def test_disk_full_on_local_storage(source_database):
    run = create_backup_run(source_database)
    run.stamp = "2026-01-01T00-00-00Z"
    run.save()
    # The kernel's own "no space left on device": the partial file is /dev/full.
    target = backend_for(source_database.primary_storage)._path(f"app/{run.stamp}/full.dump.zst")
    target.parent.mkdir(parents=True)
    target.with_name("full.dump.zst.partial").symlink_to("/dev/full")
    run.execute(inline=True)
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "Storage 'local' is full (no space left on device" in run.error
    assert not Artifact.objects.filter(run=run).exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_local_storage_not_writable(source_database, tmp_path):
    storage = source_database.primary_storage
    storage.path = "/proc/restorable-cannot-write-here"
    storage.save()
    run = backup_inline(source_database)
    assert run.status == Status.FAILED
    assert "Cannot write to storage 'local'" in run.error


def test_second_trigger_says_a_run_is_already_going(source_database):
    from backups.services import AlreadyRunning

    first = create_backup_run(source_database)
    with pytest.raises(AlreadyRunning, match=f"already queued \\(run #{first.pk}\\)"):
        create_backup_run(source_database)
    with pytest.raises(CommandError, match="already queued"):
        call_command("backup", "app", "--inline")


def test_s3_down_then_back_is_retried_and_the_run_succeeds(source_database, moto_process, monkeypatch, settings):
    from backups import tasks

    proc, endpoint, client = moto_process
    port = endpoint.rsplit(":", 1)[1]
    incompressible_rows(source_database, 24)
    storage = Storage.objects.create(name="r2", kind="s3", endpoint_url=endpoint, bucket="offsite", region="us-east-1",
                                     path_style=True, multipart_chunk_mb=5,
                                     access_key_id="testing-key", secret_access_key="testing-secret")
    source_database.offsite_storages.add(storage)
    state = {"proc": proc}
    original_send, original_requeue = S3Writer._send_part, BackupRun.requeue

    def send_then_die(self, data):
        original_send(self, data)
        if len(self.futures) == 2 and state["proc"].poll() is None and not state.get("restarted"):
            state["proc"].kill()
            state["proc"].wait()

    def requeue_then_restart(run):  # BackupRun.requeue, called as the run's method
        state["restarted"] = True  # the outage ends before the retry
        state["proc"] = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                import boto3

                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k",
                             aws_secret_access_key="s").create_bucket(Bucket="offsite")
                break
            except Exception:
                time.sleep(0.1)
        return original_requeue(run)

    monkeypatch.setattr(S3Writer, "_send_part", send_then_die)
    monkeypatch.setattr(BackupRun, "requeue", requeue_then_restart)
    settings.RETRY_BACKOFF = 0
    run = create_backup_run(source_database)
    try:
        tasks.backup.apply(args=[run.pk])
        run.refresh_from_db()
        assert run.status == Status.SUCCEEDED, run.error
        assert "unreachable" in run.details["attempts"][0]
        assert run.artifacts.filter(storage=storage, name="full.dump.zst").exists()
    finally:
        if state["proc"].poll() is None:
            state["proc"].kill()
            state["proc"].wait()


def test_a_lasting_s3_outage_fails_the_run_after_the_retries(source_database, moto_process, settings):
    from backups import tasks

    proc, endpoint, client = moto_process
    proc.kill()
    proc.wait()
    storage = Storage.objects.create(name="r2", kind="s3", endpoint_url=endpoint, bucket="offsite", region="us-east-1",
                                     path_style=True, access_key_id="k", secret_access_key="s")
    source_database.offsite_storages.add(storage)
    settings.RETRY_BACKOFF = 0
    run = create_backup_run(source_database)
    tasks.backup.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.status == Status.FAILED and "unreachable" in run.error
    assert len(run.details["attempts"]) == 3
    assert not Artifact.objects.filter(run=run).exists()
