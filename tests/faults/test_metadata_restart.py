"""The metadata database restarts while runs are queued: nothing is lost or
run twice. The panel here runs on a private PostgreSQL cluster (a sandbox)
and a private Redis, so restarting them touches nothing else."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drills.sandboxes import LocalSandboxes, free_port
from tests.conftest import PG, psql
from tests.faults.test_broker_restart import start_redis

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def manage(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def status_of(env) -> list[dict]:
    result = manage(env, "shell", "-c", "import json; from backups.models import BackupRun; "
                    "print(json.dumps(list(BackupRun.objects.values('pk', 'status', 'error', 'stamp'))))")
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_queued_runs_survive_a_metadata_database_restart(make_pg_database, tmp_path):
    meta = LocalSandboxes().create(15, extra_settings={"fsync": "on"})
    redis_port = free_port()
    redis_proc = start_redis(redis_port, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTORABLE_", "DATABASE_URL", "CELERY_"))}
    env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:{meta.port}/postgres",
               CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0", RESTORABLE_DATA_DIR=str(tmp_path / "panel"),
               RESTORABLE_HEARTBEAT_SECONDS="1", RESTORABLE_QUEUE_REDELIVER_SECONDS="30")
    worker = None
    try:
        assert manage(env, "migrate", "-v0").returncode == 0
        assert manage(env, "add_storage", "disk", "--local", str(tmp_path / "backups")).returncode == 0
        for i in range(2):
            dbname = make_pg_database()
            psql(dbname, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i")
            added = manage({**env, "DSN": f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{dbname}"},
                           "add_database", f"m{i}", "--dsn-env", "DSN", "--storage", "disk")
            assert added.returncode == 0, added.stderr
            assert manage(env, "backup", f"m{i}").returncode == 0  # queued, no worker yet
        assert [r["status"] for r in status_of(env)] == ["queued", "queued"]

        restarted = meta.run_as_owner([str(meta.bin / "pg_ctl"), "-D", str(meta.datadir), "-m", "fast", "-w",
                                       "restart", "-l", str(meta.directory / "server.log")], timeout=120)
        assert restarted.returncode == 0, restarted.stderr

        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlpanel", "worker", "-Q", "dumps,drills",
             "--concurrency", "2", "-n", f"meta{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = status_of(env)
            if all(r["status"] not in ("queued", "running") for r in runs):
                break
            time.sleep(1)
        runs = status_of(env)
        assert [r["status"] for r in runs] == ["succeeded", "succeeded"], runs
        files = sorted(str(p.relative_to(tmp_path / "backups")) for p in (tmp_path / "backups").rglob("full.dump*"))
        assert [f.split("/")[0] for f in files] == ["m0", "m1"]  # each ran exactly once
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        redis_proc.kill()
        redis_proc.wait()
        meta.remove()
