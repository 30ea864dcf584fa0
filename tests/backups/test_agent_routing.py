"""pgBackRest runs on the database host: every base backup, `pgbackrest verify`
and PITR restore into a data directory goes to the database's agent queue,
whichever path sends it (a button, beat, the reaper, the CLI). The queues are
read back from the real Redis broker."""

import base64
import json
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from backups.models import BaseBackup, PitrSetup
from backups.schedules import sync_pitr_schedules
from backups.services import start_base_backup
from controlpanel.celery import app
from controlpanel.jobs import Status
from controlpanel.tasks import reap_dead_jobs
from drills.models import Restore
from drills.services import start_pitr_restore


def broker():
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def messages_on(queue: str) -> list[tuple[str, list, dict]]:
    """(task, args, kwargs) of each message waiting in QUEUE, as the worker would decode it."""
    found = []
    for raw in broker().lrange(queue, 0, -1):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], args, kwargs))
    return found


@pytest.fixture
def agent_queue():
    """A queue no worker listens on, so what is sent there stays to be read."""
    name = f"agent.test-{uuid.uuid4().hex[:8]}"
    yield name
    broker().delete(name)


@pytest.fixture
def pitr_database(source_database, tmp_path):
    PitrSetup.objects.create(database=source_database, stanza="app", repo_path=str(tmp_path / "repo"),
                             enabled=timezone.now())
    return source_database


def test_the_agent_queue_is_the_databases_own_or_else_the_panels_default(source_database, settings):
    settings.AGENT_QUEUE = "agent.panel-host"
    assert source_database.agent_queue_name == "agent.panel-host"
    source_database.agent_queue = "agent.db1"
    assert source_database.agent_queue_name == "agent.db1"


def test_base_backup_now_goes_to_the_agent_not_the_dumps_queue(client, pitr_database, operator, agent_queue,
                                                                settings, django_capture_on_commit_callbacks):
    settings.AGENT_QUEUE = agent_queue  # what RESTORABLE_AGENT_QUEUE sets; the database names no queue
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/databases/app/pitr/base-backup/", {"kind": "full"})
    job = BaseBackup.objects.get()
    assert messages_on(agent_queue) == [("backups.tasks.base_backup", [job.pk], {})]
    assert job.pk not in [args[0] for task, args, _ in messages_on("dumps") if task == "backups.tasks.base_backup"]


def test_a_database_with_its_own_agent_queue_gets_its_base_backups_there(pitr_database, agent_queue,
                                                                         django_capture_on_commit_callbacks):
    pitr_database.agent_queue = agent_queue
    pitr_database.save()
    with django_capture_on_commit_callbacks(execute=True):
        job = start_base_backup(pitr_database, kind="diff")
    assert messages_on(agent_queue) == [("backups.tasks.base_backup", [job.pk], {})]


def test_beat_sends_scheduled_base_backups_and_verify_to_the_agent(pitr_database, agent_queue):
    pitr_database.agent_queue = agent_queue
    pitr_database.save()
    sync_pitr_schedules(PitrSetup.objects.get(database=pitr_database))
    app.loader.import_default_modules()  # what beat and workers do at start: the apps' tasks, autodiscovered
    for kind in ("base backup full", "pgbackrest verify"):
        # What beat's Scheduler.apply_async does with a due entry (the scheduler
        # itself would close the test's database connection).
        entry = ModelEntry(PeriodicTask.objects.get(name=f"app: {kind}"), app=app)
        app.tasks[entry.task].apply_async(entry.args, entry.kwargs, **entry.options)
    assert sorted(messages_on(agent_queue)) == [
        ("backups.tasks.pgbackrest_verify", [pitr_database.pk], {}),
        ("backups.tasks.scheduled_base_backup", [pitr_database.pk], {"kind": "full"}),
    ]


def test_a_pitr_restore_into_a_data_directory_goes_to_the_agent_a_sandbox_one_to_drills(
        pitr_database, agent_queue, django_capture_on_commit_callbacks):
    pitr_database.agent_queue = agent_queue
    pitr_database.save()
    with django_capture_on_commit_callbacks(execute=True):
        into_datadir = start_pitr_restore(pitr_database, None, datadir="/srv/restored", keep_hours=1)
        into_sandbox = start_pitr_restore(pitr_database, None, keep_hours=1)
    assert messages_on(agent_queue) == [("drills.tasks.restore", [into_datadir.pk], {})]
    # The sandbox one names no queue: Celery's own router sends it to drills. (Read
    # from the router, not the drills queue, which a running test worker may drain.)
    assert into_sandbox.queue() is None
    assert app.amqp.router.route({}, "drills.tasks.restore")["queue"].name == "drills"
    assert into_sandbox.pk not in [args[0] for _, args, _ in messages_on(agent_queue)]
    for message in broker().lrange("drills", 0, -1):  # leave nothing for a later worker
        if json.loads(base64.b64decode(json.loads(message)["body"]))[0] == [into_sandbox.pk]:
            broker().lrem("drills", 0, message)


def test_work_that_arrived_on_an_agent_queue_runs_there_even_if_named_otherwise(pitr_database, agent_queue,
                                                                                  monkeypatch, settings):
    """Another process may compute the default agent queue differently
    (RESTORABLE_AGENT_QUEUE per host): what an agent took, it runs, never bounced."""
    from backups.tasks import base_backup

    settings.AGENT_QUEUE = agent_queue
    ran = []
    monkeypatch.setattr("backups.tasks.run_as_task", lambda task, job, **context: ran.append(job))
    job = BaseBackup.objects.create(database=pitr_database)
    base_backup.apply(args=[job.pk], routing_key="agent.some-other-name")
    assert ran == [job] and messages_on(agent_queue) == []
    base_backup.apply(args=[job.pk], routing_key="dumps")  # a shared queue: sent on, not run
    assert ran == [job] and messages_on(agent_queue) == [("backups.tasks.base_backup", [job.pk], {})]


@pytest.fixture
def dumps_worker(worker_env, tmp_path):
    """A real worker on the dumps queue only, as on the panel's host."""
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlpanel", "worker", "-Q", "dumps", "--pool", "solo",
             "--loglevel", "INFO", "-n", f"dumps-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip"],
            env=worker_env, stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: b"ready." in log.read_bytes() or proc.poll() is not None, 60, lambda: log.read_text())
    assert proc.poll() is None, log.read_text()[-3000:]
    proc.log = log
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(condition, seconds: float, explain=lambda: ""):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up after {seconds} s: {explain()[-3000:]}"
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_work_that_lands_on_the_dumps_queue_is_sent_on_to_the_agent_not_run_there(pitr_database, agent_queue,
                                                                                   dumps_worker):
    """The reaper re-sends a lost base backup by task name (which routes to dumps),
    and an old beat row may still name another queue: the dumps worker sends the
    message on to the database's agent instead of running pgBackRest itself."""
    pitr_database.agent_queue = agent_queue
    pitr_database.save()
    lost = BaseBackup.objects.create(database=pitr_database, created=timezone.now() - timedelta(
        seconds=settings.QUEUE_REDELIVER_SECONDS + 60))
    reap_dead_jobs()
    app.send_task("backups.tasks.pgbackrest_verify", args=[pitr_database.pk], queue="dumps")
    app.send_task("backups.tasks.scheduled_base_backup", args=[pitr_database.pk], kwargs={"kind": "diff"},
                  queue="dumps")

    expected = [
        ("backups.tasks.base_backup", [lost.pk], {}),
        ("backups.tasks.pgbackrest_verify", [pitr_database.pk], {}),
        ("backups.tasks.scheduled_base_backup", [pitr_database.pk], {"kind": "diff"}),
    ]
    wait_for(lambda: sorted(messages_on(agent_queue)) == expected, 30,
             lambda: f"{messages_on(agent_queue)}\n{dumps_worker.log.read_text()}")
    lost.refresh_from_db()
    assert lost.status == Status.QUEUED and not lost.worker  # not claimed on the wrong host
    assert BaseBackup.objects.count() == 1  # the scheduled one did not start here either
    assert "sending it on to " + agent_queue in dumps_worker.log.read_text()
    assert Restore.objects.count() == 0
