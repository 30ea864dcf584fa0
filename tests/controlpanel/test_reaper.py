"""A run never stays "running" forever: the reaper fails runs whose heartbeat stopped."""

import time
from datetime import timedelta

from django.utils import timezone

from backups.models import BackupRun
from controlpanel.jobs import Status, heartbeat, run_job
from controlpanel.tasks import reap_dead_jobs
from drills.models import Drill


def test_reaper_fails_a_run_whose_heartbeat_stopped(source_database, settings):
    run = BackupRun.objects.create(database=source_database)
    assert run.claim("worker-that-dies")
    BackupRun.objects.filter(pk=run.pk).update(
        heartbeat=timezone.now() - timedelta(seconds=settings.HEARTBEAT_GRACE + 5))
    alive = BackupRun.objects.create(database=source_database, status=Status.SUCCEEDED)
    drill = Drill.objects.create(database=source_database, status=Status.RUNNING,
                                 heartbeat=timezone.now() - timedelta(hours=1))
    assert reap_dead_jobs() == 2
    run.refresh_from_db()
    drill.refresh_from_db()
    assert run.status == Status.FAILED and "stopped responding" in run.error and run.finished
    assert drill.status == Status.FAILED
    alive.refresh_from_db()
    assert alive.status == Status.SUCCEEDED


def test_reaper_leaves_a_run_with_a_fresh_heartbeat(source_database):
    run = BackupRun.objects.create(database=source_database)
    run.claim()
    assert reap_dead_jobs() == 0
    run.refresh_from_db()
    assert run.status == Status.RUNNING


def test_heartbeat_thread_keeps_a_long_blocking_job_alive(source_database, transactional_db):
    run = BackupRun.objects.create(database=source_database)
    run.claim()
    first = run.heartbeat
    with heartbeat(run, every=0.2):
        time.sleep(0.7)  # one long blocking call, like pg_dump waiting on a lock
    run.refresh_from_db()
    assert run.heartbeat > first


def test_a_finished_job_is_not_overwritten_by_a_late_finish(source_database):
    run = BackupRun.objects.create(database=source_database)
    run.claim()
    BackupRun.reap.__func__(BackupRun, -1)  # reaped while the worker still thinks it runs
    run.finish(Status.SUCCEEDED)
    run.refresh_from_db()
    assert run.status == Status.FAILED


def test_run_job_finishes_failed_with_the_error_on_any_exception(source_database):
    run = BackupRun.objects.create(database=source_database)

    def boom(job):
        raise RuntimeError("password=hunter2 in some library message")

    run_job(run, boom)
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "RuntimeError" in run.error and "hunter2" not in run.error


def test_a_job_is_claimed_only_once(source_database):
    run = BackupRun.objects.create(database=source_database)
    assert run.claim()
    assert not BackupRun.objects.get(pk=run.pk).claim()


def test_a_queued_run_whose_message_was_lost_is_sent_again_then_failed(source_database, monkeypatch):
    sent = []
    monkeypatch.setattr("controlpanel.celery.app.send_task", lambda name, args, queue: sent.append((name, args, queue)))
    lost = BackupRun.objects.create(database=source_database, created=timezone.now() - timedelta(minutes=15))
    reap_dead_jobs()
    assert sent == [("backups.tasks.backup", [lost.pk], None)]  # None: the task's own route (dumps)
    lost.refresh_from_db()
    assert lost.status == Status.QUEUED
    BackupRun.objects.filter(pk=lost.pk).update(created=timezone.now() - timedelta(days=1))
    reap_dead_jobs()
    lost.refresh_from_db()
    assert lost.status == Status.FAILED and "No worker picked this up" in lost.error
