"""What every kind of job shares (backup runs, verifications, drills, restores),
and the audit trail."""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, models
from django.utils import timezone

from controlpanel.crypto import EncryptedTextField
from controlpanel.validators import name_validator

log = logging.getLogger("restorable.jobs")


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (Status.QUEUED, Status.RUNNING)
TERMINAL_STATES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


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
        claimed = type(self).objects.filter(pk=self.pk, status=Status.QUEUED).update(
            status=Status.RUNNING, started=now, heartbeat=now, worker=worker
        )
        if claimed:
            self.refresh_from_db()
        return claimed == 1

    def request_cancel(self) -> str:
        """Cancel: a queued job at once ("cancelled"); a running one through its
        worker, which cleans up first ("requested"); "ended" when it already had."""
        now = timezone.now()
        model = type(self).objects.filter(pk=self.pk)
        if model.filter(status=Status.QUEUED).update(status=Status.CANCELLED, finished=now, cancel_requested=now,
                                                     error="Cancelled before it started."):
            outcome = "cancelled"
        elif model.filter(status=Status.RUNNING).update(cancel_requested=now):
            outcome = "requested"
        else:
            outcome = "ended"
        self.refresh_from_db()
        return outcome

    def beat(self, **fields) -> None:
        """Touch the heartbeat and write progress fields in one short UPDATE.

        Progress is best effort: while the panel's own database is unreachable
        (a restart, a failover) the fields wait on the instance and go out with
        the next beat or with finish(), and the work goes on.
        """
        from controlpanel.jobs import check_cancelled

        check_cancelled()  # a checkpoint: a cancelled job stops at its next progress update
        fields["heartbeat"] = timezone.now()
        for name, value in fields.items():
            setattr(self, name, value)
        pending = {**getattr(self, "_unsaved", {}), **fields}
        try:
            type(self).objects.filter(pk=self.pk).update(**pending)
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
            lambda: type(self).objects.filter(pk=self.pk, status__in=ACTIVE_STATES).update(**fields), f"finish {self}")
        self._unsaved = {}
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        else:
            with_metadata_retries(self.refresh_from_db, f"reload {self}")

    # The Celery task that runs this kind of job, for re-delivery.
    task_name = ""

    @classmethod
    def redeliver_stale(cls, after_seconds: int, give_up_seconds: int) -> int:
        """Queued jobs whose message was lost (broker restart): send again, then give up.

        Sending twice is harmless: the worker claims with a compare-and-set.
        """
        from controlpanel.celery import app

        now = timezone.now()
        stale = cls.objects.filter(status=Status.QUEUED, created__lt=now - timedelta(seconds=after_seconds))
        given_up = stale.filter(created__lt=now - timedelta(seconds=give_up_seconds)).update(
            status=Status.FAILED, finished=now,
            error=f"No worker picked this up within {give_up_seconds} s: are workers running on its queue?",
        )
        if cls.task_name:
            for pk in stale.values_list("pk", flat=True):
                app.send_task(cls.task_name, args=[pk])
        return given_up

    @classmethod
    def reap(cls, grace_seconds: int) -> int:
        """Fail running jobs whose worker stopped sending heartbeats, then let
        each kind clean up after its dead worker (after_reap)."""
        cutoff = timezone.now() - timedelta(seconds=grace_seconds)
        dead = list(cls.objects.filter(status=Status.RUNNING, heartbeat__lt=cutoff).values_list("pk", flat=True))
        reaped = cls.objects.filter(pk__in=dead, status=Status.RUNNING).update(
            status=Status.FAILED,
            finished=timezone.now(),
            error=(
                f"The worker stopped responding (no heartbeat for over {grace_seconds} s): "
                "it was killed, lost its connection or the machine restarted."
            ),
        )
        for job in cls.objects.filter(pk__in=dead):
            job.after_reap()
        return reaped

    def after_reap(self) -> None:
        """Remove what a killed worker left half-done (overridden per kind)."""


def job_models() -> list[type[Job]]:
    """Every concrete Job model, for the reaper and the dashboard."""
    found, todo = [], list(Job.__subclasses__())
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        if not model._meta.abstract:
            found.append(model)
    return sorted(found, key=lambda m: m._meta.label)


class AuditEvent(models.Model):
    """Who did what, when, from where, and how it ended."""

    created = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.user or 'system'} {self.action}: {self.summary}"

    @classmethod
    def record(cls, action: str, summary: str, obj=None, user=None, request=None, **details):
        if request is not None:
            user = user or (request.user if request.user.is_authenticated else None)
        return cls.objects.create(
            user=user,
            action=action,
            object_type=obj._meta.label if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            summary=summary[:500],
            details=details,
            ip=request.META.get("REMOTE_ADDR") if request is not None else None,
        )


class NotificationChannel(models.Model):
    """Where alerts go: an apprise URL (Telegram, Slack, Discord, email, JSON webhook)."""

    class Event(models.TextChoices):
        BACKUP_FAILED = "backup_failed", "Backup failed"
        VERIFICATION_FAILED = "verification_failed", "Verification failed"
        DRILL_FAILED = "drill_failed", "Drill failed or over its RTO budget"
        STALE = "stale", "No verified backup within the RPO budget"
        WAL = "wal", "WAL archiving failing or lagging"
        RESTORE = "restore", "Restore started and finished"
        DIGEST = "digest", "Daily digest of successes"

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    url = EncryptedTextField("apprise URL", help_text="e.g. tgram://BOT_TOKEN/CHAT_ID, slack://..., json://host/path")
    events = models.JSONField(default=list, blank=True, help_text="Empty: every event but the digest.")
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def wants(self, event: str) -> bool:
        if not self.enabled:
            return False
        return event in self.events if self.events else event != self.Event.DIGEST


class AlertState(models.Model):
    """Alerts already sent for a condition, so a lasting problem alerts once, not every check."""

    key = models.CharField(max_length=255, unique=True)
    sent = models.DateTimeField(default=timezone.now)
