"""The panel's own database restarts in the middle of a running backup: the
heartbeat keeps going once it is back, progress waits, and the backup ends
succeeded with its files recorded, instead of being reaped as a dead worker.
The panel runs on a private PostgreSQL cluster, so restarting it touches
nothing else."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from drills.sandboxes import LocalSandboxes
from tests.conftest import PG, psql

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def manage(env, *args, **kwargs):
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300, **kwargs)


def meta_query(meta, statement):
    with psycopg.connect(host="127.0.0.1", port=meta.port, user="postgres", dbname="postgres", autocommit=True,
                         connect_timeout=3) as conn:
        return conn.execute(statement).fetchone()


def test_a_backup_survives_a_metadata_database_restart_in_its_middle(make_pg_database, tmp_path):
    meta = LocalSandboxes().create(15, extra_settings={"fsync": "on"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTORABLE_", "DATABASE_URL", "CELERY_"))}
    env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:{meta.port}/postgres",
               RESTORABLE_DATA_DIR=str(tmp_path / "panel"), RESTORABLE_HEARTBEAT_SECONDS="1")
    dbname = make_pg_database()
    psql(dbname, "CREATE TABLE t AS SELECT generate_series(1, 5000) AS i")
    locker = psycopg.connect(host=PG["host"], port=PG["port"], user=PG["user"], dbname=dbname)
    backup = None
    try:
        assert manage(env, "migrate", "-v0").returncode == 0
        assert manage(env, "add_storage", "disk", "--local", str(tmp_path / "backups")).returncode == 0
        added = manage({**env, "DSN": f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{dbname}"},
                       "add_database", "m0", "--dsn-env", "DSN", "--storage", "disk")
        assert added.returncode == 0, added.stderr

        # Hold pg_dump at its table lock, so the run is surely mid-way when the panel's database restarts.
        locker.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        backup = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "backup", "m0", "--inline", "--json"],
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = psql(dbname, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                                   "WHERE NOT l.granted AND a.query LIKE 'LOCK TABLE public.t IN ACCESS SHARE MODE%'")
            if waiting != "0":
                break
            time.sleep(0.2)
        else:
            activity = psql(dbname, "SELECT string_agg(application_name || ':' || coalesce(wait_event_type, '-') "
                                    "|| ':' || left(query, 60), ' | ') FROM pg_stat_activity WHERE datname = "
                                    "current_database()")
            backup.kill()
            pytest.fail(f"pg_dump never waited on the lock: {activity}; {backup.communicate()[1][-2000:]}")
        assert meta_query(meta, "SELECT status, phase FROM backups_backuprun")[0] == "running"

        restarted = meta.run_as_owner([str(meta.bin / "pg_ctl"), "-D", str(meta.datadir), "-m", "fast", "-w",
                                       "restart", "-l", str(meta.directory / "server.log")], timeout=120)
        assert restarted.returncode == 0, restarted.stderr
        time.sleep(3)  # a few heartbeats after the restart
        age = meta_query(meta, "SELECT extract(epoch FROM now() - heartbeat) FROM backups_backuprun")[0]
        assert age < 2.5, f"the heartbeat stopped after the restart ({age:.1f} s old)"

        locker.rollback()  # pg_dump goes on
        out, err = backup.communicate(timeout=120)
        assert backup.returncode == 0, err[-2000:]
        run = json.loads(out)
        assert run["status"] == "succeeded" and run["error"] == ""
        assert {a["name"] for a in run["artifacts"]} == {"schema.sql", "full.dump.zst", "manifest.json"}
        assert run["row_counts"]["public.t"] == {"rows": 5000, "exact": True}
        for artifact in run["artifacts"]:
            assert (tmp_path / "backups" / artifact["key"]).stat().st_size == artifact["size"]
        assert "could not record progress" in err or "heartbeat of" in err  # the log says what happened
    finally:
        if backup is not None and backup.poll() is None:
            backup.kill()
            backup.wait()
        locker.close()
        meta.remove()
