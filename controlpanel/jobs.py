"""Running a Job: claim it, keep its heartbeat, finish it on every path."""

import logging
import socket
import threading
from contextlib import contextmanager

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from controlpanel.models import Job, Status

log = logging.getLogger("restorable.jobs")


class JobError(Exception):
    """A failure whose message is meant for the operator as it is."""


@contextmanager
def heartbeat(job: Job, every: float | None = None):
    """Touch job.heartbeat from a thread while the body runs.

    A thread, because the body may block for a long time in one call (pg_dump
    waiting on a lock, a slow upload) and the reaper must not take that for a
    dead worker.
    """
    every = every or settings.HEARTBEAT_SECONDS
    stop = threading.Event()

    def beat():
        failing = False
        try:
            while not stop.wait(every):
                try:
                    type(job).objects.filter(pk=job.pk, status=Status.RUNNING).update(heartbeat=timezone.now())
                except DatabaseError as exc:
                    # The panel's database is away (restart, failover): keep
                    # trying, or the reaper would take a live job for a dead one.
                    connection.close()
                    if not failing:
                        log.warning("heartbeat of %s failed (%s); retrying", job, type(exc).__name__)
                    failing = True
                else:
                    if failing:
                        log.info("heartbeat of %s recorded again", job)
                    failing = False
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"Stopped: the task time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT} s) was reached."
    if isinstance(exc, KeyboardInterrupt):
        return "Stopped: the worker was shut down while the job ran."
    if isinstance(exc, JobError) or type(exc).__module__.split(".")[0] in ("backups", "drills", "controlpanel"):
        return str(exc)
    if isinstance(exc, DatabaseError):  # Django's errors: the panel's own database, not the one backed up
        return (f"The panel's own database failed while the job ran ({type(exc).__name__}); "
                "the worker log has the details.")
    # Unknown errors: the type only, the details go to the worker log, since a
    # library's message may quote connection settings.
    return f"Unexpected error ({type(exc).__name__}); the worker log has the details."


def run_job(job: Job, work) -> Job:
    """Claim JOB, run work(job) under a heartbeat, and always finish the job."""
    if not job.claim(worker=socket.gethostname()):
        log.info("%s was already claimed or ended (%s); skipping", job, job.status)
        return job
    log.info("%s started", job)
    try:
        with heartbeat(job):
            fields = work(job) or {}
    except BaseException as exc:
        log.exception("%s failed", job)
        # Transient failures (an S3 endpoint that went away) may be retried by the task.
        job.finish(Status.FAILED, describe_failure(exc),
                   details={**job.details, "transient": bool(getattr(exc, "transient", False))})
        if not isinstance(exc, Exception):
            raise
    else:
        job.finish(Status.SUCCEEDED, **fields)
        log.info("%s succeeded", job)
    return job
