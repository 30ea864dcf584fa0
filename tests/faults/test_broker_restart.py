"""The broker restarts while runs are queued (a Redis without persistence loses
them): the reaper sends them again, and each runs exactly once."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups.models import BackupRun, Database
from backups.services import create_backup_run
from controlpanel.jobs import Status
from drills.sandboxes import free_port
from tests.conftest import PG, psql

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def in_panel(env: dict, code: str) -> None:
    """Run panel code in a process of its own, configured for the private broker."""
    subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code], env=env, cwd=ROOT, check=True,
                   capture_output=True)


def start_redis(port: int, tmp_path) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
        if ping.stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    raise RuntimeError("redis did not start")


def test_runs_queued_before_a_broker_restart_run_exactly_once(worker_env, local_storage, make_pg_database, tmp_path):
    port = free_port()
    redis_proc = start_redis(port, tmp_path)
    broker = f"redis://127.0.0.1:{port}/0"
    env = {**worker_env, "CELERY_BROKER_URL": broker, "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
           "RESTORABLE_QUEUE_REDELIVER_SECONDS": "30"}
    runs = []
    for i in range(3):
        dbname = make_pg_database()
        psql(dbname, "CREATE TABLE t AS SELECT 1 AS i")
        db = Database.objects.create(name=f"b{i}", dbname=dbname, host=PG["host"], port=PG["port"], user=PG["user"],
                                     primary_storage=local_storage, server_version=150000)
        runs.append(create_backup_run(db))
    ids = [r.pk for r in runs]
    worker = None
    try:
        in_panel(env, f"from backups.tasks import backup\nfor pk in {ids}: backup.delay(pk)")
        redis_proc.kill()  # the broker dies with the messages (no persistence)
        redis_proc.wait()
        redis_proc = start_redis(port, tmp_path)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlpanel", "worker", "-Q", "dumps,drills",
             "--concurrency", "2", "-n", f"restart{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(3)
        assert BackupRun.objects.filter(pk__in=ids, status=Status.QUEUED).count() == 3  # lost with the broker
        BackupRun.objects.filter(pk__in=ids).update(created=timezone.now() - timedelta(minutes=5))
        in_panel(env, "from controlpanel.tasks import reap_dead_jobs\nreap_dead_jobs()")  # sends them again
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not BackupRun.objects.filter(pk__in=ids, status__in=("queued", "running")).exists():
                break
            time.sleep(0.5)
        in_panel(env, "from controlpanel.tasks import reap_dead_jobs\nreap_dead_jobs()")  # must start nothing again
        time.sleep(2)
        for run in runs:
            run.refresh_from_db()
            assert run.status == Status.SUCCEEDED, run.error
            assert run.artifacts.filter(name="full.dump.zst").count() == 1
        assert BackupRun.objects.count() == 3
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        redis_proc.kill()
        redis_proc.wait()
