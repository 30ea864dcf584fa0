"""How long a sandbox lives, with the real reaper on real sandboxes: never
removed under a job that still runs (a PITR drill once lost its cluster after
an hour), removed when its owner died, and a kept one when it expires."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from backups.models import BaseBackup
from backups.pgbackrest import PgBackRest
from backups.pgtools import connect
from controlpanel.jobs import Status
from drills.models import Drill, Restore
from drills.sandboxes import LABEL, LocalSandboxes, Sandbox, reap_sandboxes
from tests.drills.conftest import sql

ROOT = Path(__file__).resolve().parents[2]
HOURS = 3600


def label_of(sandbox) -> dict:
    return json.loads((sandbox.directory / LABEL).read_text())


def answers(sandbox) -> bool:
    with connect(sandbox.conninfo()) as conn:
        return conn.execute("SELECT 1").fetchone()[0] == 1


def postmaster_gone(directory: Path, pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return not directory.exists()
        time.sleep(0.1)
    return False


def test_an_expired_sandbox_whose_owner_still_runs_is_kept():
    with LocalSandboxes().create(15, ttl_seconds=60) as sandbox:
        assert reap_sandboxes(now=time.time() + 2 * HOURS) == 0
        assert sandbox.directory.exists() and answers(sandbox)


def test_an_expired_sandbox_whose_owner_died_is_removed(worker_env):
    code = ("import django; django.setup(); from drills.sandboxes import LocalSandboxes; "
            "s = LocalSandboxes().create(15, ttl_seconds=60); print(s.directory, flush=True); "
            "import time; time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**worker_env, "DJANGO_SETTINGS_MODULE": "controlpanel.settings"})
    directory = Path(proc.stdout.readline().strip())
    postmaster = int((directory / "data" / "postmaster.pid").read_text().splitlines()[0])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reap_sandboxes(now=time.time() + 2 * HOURS) == 1
    assert postmaster_gone(directory, postmaster)


@pytest.mark.django_db
def test_a_kept_sandbox_lives_while_its_restore_runs_and_is_removed_when_it_expires(source_database):
    restore = Restore.objects.create(database=source_database, status=Status.RUNNING, keep_hours=1)
    sandbox = LocalSandboxes().create(15, keep=True, ttl_seconds=HOURS, job=restore)
    try:
        postmaster = int((sandbox.datadir / "postmaster.pid").read_text().splitlines()[0])
        assert label_of(sandbox)["job"] == f"drills.restore:{restore.pk}"
        assert reap_sandboxes(now=time.time() + 2 * HOURS) == 0  # still being filled
        Restore.objects.filter(pk=restore.pk).update(status=Status.SUCCEEDED)
        assert reap_sandboxes() == 0  # handed to the admin: kept until it expires
        assert answers(sandbox)
        assert reap_sandboxes(now=time.time() + 2 * HOURS) == 1
        assert postmaster_gone(sandbox.directory, postmaster)
    finally:
        sandbox.remove()


@pytest.mark.django_db
def test_a_sandbox_lives_as_long_as_the_task_time_limit_allows(settings):
    settings.CELERY_TASK_TIME_LIMIT = 9 * HOURS
    with LocalSandboxes().create(15) as sandbox:
        label = label_of(sandbox)
        assert label["expires"] - label["created"] == pytest.approx(9 * HOURS, abs=1)
        assert label["port"] == sandbox.port and sandbox.expires == label["expires"]


@pytest.mark.django_db(transaction=True)
def test_a_pitr_drill_keeps_its_cluster_past_an_hour_and_past_the_time_limit(archiving_cluster, monkeypatch):
    import drills.drill

    database, cluster, setup = archiving_cluster
    (BaseBackup.objects.create(database=database, kind="full")).execute()
    time.sleep(2)  # the target must come after the backup ended
    target = sql(cluster, "SELECT clock_timestamp()")
    sql(cluster, "CREATE TABLE after_target AS SELECT 1 AS id")  # a commit after the target
    PgBackRest(setup).check()
    reaped = []
    heartbeat = drills.drill.restored_heartbeat

    def reap_then_read(target_conninfo):
        # The reaper's tick, seen from long after the drill started.
        reaped.append(reap_sandboxes(now=time.time() + 7 * HOURS))
        return heartbeat(target_conninfo)

    monkeypatch.setattr(drills.drill, "restored_heartbeat", reap_then_read)

    drill = (Drill.objects.create(database=database, pitr_target=target, details={"pitr": True})).execute()
    assert drill.status == Status.SUCCEEDED, drill.error
    assert reaped == [0]


def test_a_drills_worker_starting_after_a_stop_removes_expired_kept_sandboxes_only(tmp_path):
    """The panel was stopped with kept restores running; the worker that starts next removes the expired one."""
    sandboxes = Path(tempfile.mkdtemp(prefix="rs-restart-sandboxes-"))  # reachable by the postgres OS user
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTORABLE_", "DATABASE_URL", "CELERY_"))}
    env.update(RESTORABLE_DATA_DIR=str(tmp_path / "data"), RESTORABLE_SANDBOX_DIR=str(sandboxes),
               DJANGO_SETTINGS_MODULE="controlpanel.settings")
    code = ("import django; django.setup(); from drills.sandboxes import LocalSandboxes; "
            "a = LocalSandboxes().create(15, keep=True, ttl_seconds=1); "
            "b = LocalSandboxes().create(15, keep=True, ttl_seconds=3600); print(a.directory, b.directory)")
    made = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    expiring, kept = (Path(p) for p in made.stdout.split())
    postmaster = int((expiring / "data" / "postmaster.pid").read_text().splitlines()[0])
    while time.time() <= json.loads((expiring / LABEL).read_text())["expires"]:
        time.sleep(0.1)  # until the first has expired, as if hours had passed
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlpanel", "worker", "-Q", "drills", "--concurrency", "1",
         "-n", f"restart{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert postmaster_gone(expiring, postmaster, timeout=60), "the worker did not remove the expired sandbox"
        assert kept.exists()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        Sandbox(major=15, directory=kept, port=0).remove()
        shutil.rmtree(sandboxes, ignore_errors=True)
