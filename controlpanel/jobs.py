"""The job: one execution of a backup, verification, drill, restore or base
backup, from its row to its end.

The abstract Job holds the lifecycle every kind shares: `enqueue()` (audit,
send the kind's task after commit, keep its id, routed by `queue()`),
`execute(body)` (claim with a compare-and-set, run the body under a heartbeat
thread, finish on every path, then the kind's `on_finished()`), `requeue()`
after a transient failure, `cancel()`, and the reaper's `reap()` and
`redeliver_stale()`. A kind is a model, a body function and a template.
"""

import logging
import random
import socket
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Self

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection, models, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from controlpanel.cancel import CANCEL_POLL, CancelToken, JobCancelled, check_cancelled, current_token
from controlpanel.celery import app
from controlpanel.models import AuditEvent

log = logging.getLogger("restorable.jobs")


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (Status.QUEUED, Status.RUNNING)
TERMINAL_STATES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


CANCEL_MESSAGES = {
    "cancelled": "{job} was cancelled before it started.",
    "requested": "Stopping {job}: it cleans up, then ends as cancelled.",
    "ended": "{job} had already ended ({status}).",
}


class Trigger(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    MANUAL = "manual", "Manual"
    API = "api", "API / CLI"


def forget_broken_connection() -> None:
    """After a database error outside a transaction: drop the connection if it
    is unusable, so the next query opens a new one."""
    if connection.get_autocommit():
        connection.close_if_unusable_or_obsolete()


def with_metadata_retries(call, what: str):
    """CALL, retried with backoff while the panel's database is unreachable."""
    deadline = time.monotonic() + settings.METADATA_RETRY_SECONDS
    delay = 0.5
    while True:
        try:
            return call()
        except (OperationalError, InterfaceError) as exc:
            forget_broken_connection()
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s: metadata database unreachable (%s); retrying in %.1f s", what, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10)


class Job(models.Model):
    """One execution, created before the work starts and finished on every path.

    Workers claim a queued job with a compare-and-set, touch `heartbeat` while
    they work, and the reaper fails running jobs whose heartbeat stopped.
    """

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    phase = models.CharField(max_length=64, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    # Set from the panel or the CLI; the worker's heartbeat thread sees it,
    # stops the job's processes and the job ends "cancelled" after cleaning up.
    cancel_requested = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created"]

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATES

    @property
    def duration(self) -> timedelta | None:
        if not self.started:
            return None
        return (self.finished or timezone.now()) - self.started

    def claim(self, worker: str = "") -> bool:
        """Queued -> running, atomically; False when another worker got it first."""
        now = timezone.now()
        claimed = type(self)._default_manager.filter(pk=self.pk, status=Status.QUEUED).update(
            status=Status.RUNNING, started=now, heartbeat=now, worker=worker
        )
        if claimed:
            self.refresh_from_db()
        return claimed == 1

    def request_cancel(self) -> str:
        """Cancel: a queued job at once ("cancelled"); a running one through its
        worker, which cleans up first ("requested"); "ended" when it already had."""
        now = timezone.now()
        model = type(self)._default_manager.filter(pk=self.pk)
        if model.filter(status=Status.QUEUED).update(status=Status.CANCELLED, finished=now, cancel_requested=now,
                                                     error="Cancelled before it started."):
            outcome = "cancelled"
        elif model.filter(status=Status.RUNNING).update(cancel_requested=now):
            outcome = "requested"
        else:
            outcome = "ended"
        self.refresh_from_db()
        return outcome

    def cancel(self, request=None, via: str = "") -> tuple[str, str]:
        """Ask this job to cancel (request_cancel), audit the request, and say what
        happened: (outcome, a sentence for the operator). Panel and CLI alike."""
        outcome = self.request_cancel()
        if outcome != "ended":
            AuditEvent.record(f"{self._meta.model_name}.cancel", f"Cancel of {self} requested{via}", obj=self,
                              request=request, outcome=outcome)
        name = str(self)
        return outcome, CANCEL_MESSAGES[outcome].format(job=name[:1].upper() + name[1:],
                                                        status=self.get_status_display().lower())

    def beat(self, **fields) -> None:
        """Touch the heartbeat and write progress fields in one short UPDATE.

        Progress is best effort: while the panel's own database is unreachable
        (a restart, a failover) the fields wait on the instance and go out with
        the next beat or with finish(), and the work goes on.
        """
        check_cancelled()  # a checkpoint: a cancelled job stops at its next progress update
        fields["heartbeat"] = timezone.now()
        for name, value in fields.items():
            setattr(self, name, value)
        pending = {**getattr(self, "_unsaved", {}), **fields}
        try:
            type(self)._default_manager.filter(pk=self.pk).update(**pending)
        except DatabaseError as exc:
            self._unsaved = pending
            forget_broken_connection()
            log.warning("could not record progress of %s (metadata database: %s); carrying on",
                        self, type(exc).__name__)
        else:
            self._unsaved = {}

    def finish(self, status: str, error: str = "", **fields) -> None:
        """Record the outcome, unless the job already ended (e.g. reaped).

        The outcome must not be lost to a metadata database that is briefly
        away: retried with backoff for up to RESTORABLE_METADATA_RETRY_SECONDS.
        """
        now = timezone.now()
        fields = {**getattr(self, "_unsaved", {}), **fields}
        fields.update(status=status, error=error[:10000], finished=now, heartbeat=now)
        updated = with_metadata_retries(
            lambda: type(self)._default_manager.filter(pk=self.pk, status__in=ACTIVE_STATES).update(**fields),
            f"finish {self}")
        self._unsaved = {}
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        else:
            with_metadata_retries(self.refresh_from_db, f"reload {self}")

    # The Celery task that runs this kind of job (sent by name: no app imports its tasks to start one).
    task_name = ""
    # The function that does this kind's work, body(job) -> fields to record; a dotted path,
    # since the body's module imports the kind's model.
    body = ""
    # Whether a transient failure (an S3 endpoint that went away) is retried by the task.
    retry_transient = False
    # What the job is called in its page's context, element ids and URLs ("run", "drill", ...).
    page_name = ""
    # The audit action of a start ("<audit_name>.start"); the model's name unless a kind says otherwise.
    audit_name = ""

    def queue(self) -> str | None:
        """The queue this job's task goes to; None: the task's route (CELERY_TASK_ROUTES).
        Kinds that must run on the database host (pgBackRest) name its agent queue."""
        return None

    def enqueue(self, request: Any = None, audit: str = "", queue: str | None = None) -> Self:
        """Audit the start when someone asked (AUDIT, the sentence), then send the
        kind's task once this row is committed, on queue() unless told another, and
        keep the task's id."""
        if audit and request is not None:
            AuditEvent.record(f"{self.audit_name or self._meta.model_name}.start", audit, obj=self, request=request)
        queue = queue or self.queue()
        model, pk = type(self), self.pk

        def after_commit():
            result = send(self, queue)
            model._default_manager.filter(pk=pk).update(celery_task_id=result.id)

        transaction.on_commit(after_commit)
        return self

    def execute(self, retries_left: int = 0, **context: Any) -> Self:
        """Run this kind's body as this job: claimed, under a heartbeat, finished on
        every path. Then what follows (on_finished), unless a transient failure was
        requeued for another try (the job is queued again: its task retries it)."""
        if not run_job(self, import_string(self.body)):
            return self  # a duplicate delivery: the worker that claimed it does what follows
        with_metadata_retries(self.refresh_from_db, f"reload {self}")
        if (self.status == Status.FAILED and self.details.get("transient") and retries_left > 0
                and self.requeue()):
            return self  # no alert for a failure that may heal
        self.on_finished(**context)
        # What follows may have changed this row (a verification marks its backup verified).
        with_metadata_retries(self.refresh_from_db, f"reload {self}")
        return self

    def on_finished(self, **context) -> None:
        """What follows this kind of job once it ended (alerts, the next job); overridden per kind."""

    # Fields a retry starts afresh; each kind adds its progress fields.
    requeue_resets: tuple[str, ...] = ("started", "finished", "error")

    def requeue(self) -> bool:
        """failed -> queued again after a transient failure, keeping the reason in
        details["attempts"]. Not a job someone asked to cancel (it failed before its
        worker saw the request); False when another job took over."""
        attempts = self.details.get("attempts", []) + [self.error]
        fresh = {}
        for name in self.requeue_resets:
            field = type(self)._meta.get_field(name)
            assert isinstance(field, models.Field)  # requeue_resets names the model's fields, not reverse relations
            fresh[name] = field.get_default()
        try:
            updated = type(self)._default_manager.filter(
                pk=self.pk, status=Status.FAILED, cancel_requested__isnull=True
            ).update(status=Status.QUEUED, details={**self.details, "attempts": attempts, "transient": False}, **fresh)
        except IntegrityError:  # e.g. another backup of the database started meanwhile: it takes over
            updated = 0
        self.refresh_from_db()
        return updated == 1

    @classmethod
    def redeliver_stale(cls, after_seconds: int, give_up_seconds: int) -> int:
        """Queued jobs whose message was lost (broker restart): send again, each to its
        queue(), then give up. Sending twice is harmless: the worker claims with a
        compare-and-set."""
        now = timezone.now()
        stale = cls._default_manager.filter(status=Status.QUEUED, created__lt=now - timedelta(seconds=after_seconds))
        given_up = stale.filter(created__lt=now - timedelta(seconds=give_up_seconds)).update(
            status=Status.FAILED, finished=now,
            error=f"No worker picked this up within {give_up_seconds} s: are workers running on its queue?",
        )
        if cls.task_name:
            for job in stale:
                send(job, job.queue())
        return given_up

    @classmethod
    def reap(cls, grace_seconds: int) -> int:
        """Fail running jobs whose worker stopped sending heartbeats, then let
        each kind clean up after its dead worker (after_reap)."""
        cutoff = timezone.now() - timedelta(seconds=grace_seconds)
        dead = list(
            cls._default_manager.filter(status=Status.RUNNING, heartbeat__lt=cutoff).values_list("pk", flat=True))
        reaped = cls._default_manager.filter(pk__in=dead, status=Status.RUNNING).update(
            status=Status.FAILED,
            finished=timezone.now(),
            error=(
                f"The worker stopped responding (no heartbeat for over {grace_seconds} s): "
                "it was killed, lost its connection or the machine restarted."
            ),
        )
        for job in cls._default_manager.filter(pk__in=dead):
            job.after_reap()
        return reaped

    def after_reap(self) -> None:
        """Remove what a killed worker left half-done (overridden per kind)."""


def send(job: Job, queue: str | None):
    """Send JOB's task to the broker: the one place jobs are sent (a test holds them back here)."""
    return app.send_task(job.task_name, args=[job.pk], queue=queue)


def job_models() -> list[type[Job]]:
    """Every concrete Job model, for the reaper and the dashboard."""
    found, todo = [], list(Job.__subclasses__())
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        if not model._meta.abstract:
            found.append(model)
    return sorted(found, key=lambda m: m._meta.label)


class JobError(Exception):
    """A failure whose message is meant for the operator as it is."""


@contextmanager
def heartbeat(job: Job, every: float | None = None, token: CancelToken | None = None):
    """Touch job.heartbeat from a thread while the body runs, and watch for a
    cancel request (every CANCEL_POLL seconds at most).

    A thread, because the body may block for a long time in one call (pg_dump
    waiting on a lock, a slow upload) and the reaper must not take that for a
    dead worker.
    """
    every = every or settings.HEARTBEAT_SECONDS
    poll = min(every, CANCEL_POLL)
    stop = threading.Event()

    def beat():
        failing = False
        last = time.monotonic()
        try:
            while not stop.wait(poll):
                try:
                    if token is not None and not token.event.is_set() and type(job)._default_manager.filter(
                            pk=job.pk, cancel_requested__isnull=False).exists():
                        log.info("%s: cancel requested; stopping it", job)
                        token.cancel()
                    if time.monotonic() - last >= every:
                        type(job)._default_manager.filter(pk=job.pk, status=Status.RUNNING).update(
                            heartbeat=timezone.now())
                        last = time.monotonic()
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


def cancel_was_requested(job: Job) -> bool:
    """Asked before the heartbeat thread looked (it looks every CANCEL_POLL seconds)."""
    try:
        return type(job)._default_manager.filter(pk=job.pk, cancel_requested__isnull=False).exists()
    except DatabaseError:
        return False


def run_job(job: Job, work) -> bool:
    """Claim JOB, run work(job) under a heartbeat, and always finish the job.
    False when another worker had claimed it (or it had ended): nothing ran here."""
    if not job.claim(worker=socket.gethostname()):
        log.info("%s was already claimed or ended (%s); skipping", job, job.status)
        return False
    log.info("%s started", job)
    with current_token() as token:
        _run(job, work, token)
    return True


def _run(job: Job, work, token: CancelToken) -> None:
    try:
        with heartbeat(job, token=token):
            fields = work(job) or {}
    except BaseException as exc:
        if token.event.is_set() or cancel_was_requested(job):  # whatever broke, a cancel was asked for
            log.info("%s cancelled", job)
            job.finish(Status.CANCELLED, str(JobCancelled()))
            return
        log.exception("%s failed", job)
        # Transient failures (an S3 endpoint that went away) may be retried by the task.
        job.finish(Status.FAILED, describe_failure(exc),
                   details={**job.details, "transient": bool(getattr(exc, "transient", False))})
        if not isinstance(exc, Exception):
            raise
    else:
        job.finish(Status.SUCCEEDED, **fields)
        log.info("%s succeeded", job)


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter, from RESTORABLE_RETRY_BACKOFF seconds."""
    return settings.RETRY_BACKOFF * (2 ** attempt) * random.uniform(0.8, 1.2)


def run_as_task(task, job: Job, **context) -> None:
    """What every job's Celery task does: execute the job; a transient failure it
    requeued is retried by Celery with backoff (kinds with retry_transient)."""
    retries_left = (task.max_retries or 0) - task.request.retries if job.retry_transient else 0
    job.execute(retries_left=retries_left, **context)
    if job.status == Status.QUEUED:
        raise task.retry(countdown=retry_delay(task.request.retries))


def shared_queues() -> set[str]:
    """The queues any host's worker may take from (dumps, drills), unlike an agent's."""
    return {settings.CELERY_TASK_DEFAULT_QUEUE, *(route["queue"] for route in settings.CELERY_TASK_ROUTES.values())}


def forwarded_to(task, queue: str, args: list, kwargs: dict | None = None, job: Job | None = None) -> bool:
    """Work that must run on QUEUE (pgBackRest, on the database host) but arrived on
    a shared queue is sent on there instead of running here (True). Jobs are sent
    to their queue() from the start; this catches what was sent by task name
    alone (an older panel, a beat row made before rows carried their queue).
    Agent queues are trusted as routed, so two processes with different
    RESTORABLE_AGENT_QUEUE never bounce a message."""
    arrived = (task.request.delivery_info or {}).get("routing_key")
    if not arrived or arrived == queue or arrived not in shared_queues():
        return False
    log.info("%s arrived on %s; sending it on to %s", task.name, arrived, queue)
    result = task.apply_async(args=args, kwargs=kwargs or {}, queue=queue)
    if job is not None:
        type(job)._default_manager.filter(pk=job.pk).update(celery_task_id=result.id)
    return True
