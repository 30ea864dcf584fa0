"""A worker killed with SIGKILL in the middle of a dump: the run fails within a
few heartbeats with a clear reason, no multipart upload stays open, no
partial object stays behind, and the next run succeeds."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backups.models import BackupRun
from controlpanel.jobs import Status
from controlpanel.tasks import reap_dead_jobs
from tests.conftest import psql

ROOT = Path(__file__).resolve().parents[2]
VICTIM_QUEUE = f"victim-{os.getpid()}"
pytestmark = pytest.mark.django_db(transaction=True)


def start_worker(env, log):
    return subprocess.Popen(
        # A queue of its own: the suite's shared worker must not take the task.
        [sys.executable, "-m", "celery", "-A", "controlpanel", "worker", "-Q", VICTIM_QUEUE, "--concurrency", "1",
         "--loglevel", "INFO", "-n", f"victim{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_sigkill_mid_upload_fails_the_run_and_leaves_nothing(worker_env, source_database, s3_storage, s3_client,
                                                             tmp_path, settings):
    psql(source_database.dbname,
         "CREATE TABLE blobs AS SELECT i, decode(string_agg(md5(random()::text || j), ''), 'hex') b "
         "FROM generate_series(1, 3000) i, generate_series(1, 4096) j GROUP BY i")
    source_database.offsite_storages.add(s3_storage)
    env = {**worker_env, "RESTORABLE_HEARTBEAT_SECONDS": "1"}
    log = open(tmp_path / "worker.log", "wb")
    worker = start_worker(env, log)
    try:
        from backups.services import create_backup_run
        from backups.tasks import backup

        run = create_backup_run(source_database)
        backup.apply_async(args=[run.pk], queue=VICTIM_QUEUE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status == Status.RUNNING and run.bytes_uploaded > 6 * 1024 * 1024:
                break
            time.sleep(0.05)
        assert run.status == Status.RUNNING, (tmp_path / "worker.log").read_text()[-2000:]
        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, children included
        worker.wait()
        uploads = s3_client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", [])
        assert uploads, "the test meant to kill the worker mid-upload"

        settings.HEARTBEAT_GRACE = 3
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not reap_dead_jobs():
            time.sleep(0.5)
        run.refresh_from_db()
        assert run.status == Status.FAILED and "stopped responding" in run.error
        assert s3_client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []
        assert s3_client.list_objects_v2(Bucket=s3_storage.bucket).get("KeyCount", 0) == 0
        local = Path(source_database.primary_storage.path)
        assert not local.exists() or [p for p in local.rglob("*") if p.is_file()] == []

        worker = start_worker(env, log)  # the next run succeeds
        second = create_backup_run(source_database)
        backup.apply_async(args=[second.pk], queue=VICTIM_QUEUE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            second.refresh_from_db()
            if not second.is_active:
                break
            time.sleep(0.2)
        assert second.status == Status.SUCCEEDED, second.error
        assert BackupRun.objects.filter(status=Status.SUCCEEDED).count() == 1
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)


def test_sigkill_during_a_drill_fails_it_and_its_sandbox_is_reaped(worker_env, source_database, tmp_path, settings):
    from backups.services import create_backup_run
    from drills.models import Drill
    from drills.sandboxes import reap_sandboxes, sandbox_root
    from drills.tasks import drill

    psql(source_database.dbname, "CREATE TABLE big AS SELECT i, md5(i::text) AS t FROM generate_series(1, 3000000) i")
    run = create_backup_run(source_database)
    run.execute(inline=True)
    run.refresh_from_db()
    assert run.verified == "passed"
    log = open(tmp_path / "worker.log", "wb")
    worker = start_worker({**worker_env, "RESTORABLE_HEARTBEAT_SECONDS": "1"}, log)
    try:
        job = Drill.objects.create(database=source_database)
        drill.apply_async(args=[job.pk], queue=VICTIM_QUEUE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.phase == "restore" and list(sandbox_root().iterdir()):
                break
            time.sleep(0.05)
        assert job.phase == "restore", (tmp_path / "worker.log").read_text()[-2000:]
        os.killpg(worker.pid, signal.SIGKILL)  # mid pg_restore
        worker.wait()
        settings.HEARTBEAT_GRACE = 3
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not reap_dead_jobs():
            time.sleep(0.5)
        job.refresh_from_db()
        assert job.status == Status.FAILED and "stopped responding" in job.error
        assert reap_sandboxes() >= 1
        assert list(sandbox_root().iterdir()) == []
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
