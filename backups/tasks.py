"""Thin Celery tasks: load the row, call the domain code."""

import logging

from celery import shared_task
from django.conf import settings

from backups.models import BackupRun
from backups.services import agent_queue_for
from controlpanel.jobs import run_job

log = logging.getLogger("restorable.tasks")


@shared_task(bind=True, ignore_result=True, max_retries=3)
def backup(self, run_id: int) -> None:
    run = BackupRun.objects.select_related("database__primary_storage").filter(pk=run_id).first()
    if run is None:
        return
    retries_left = self.max_retries - self.request.retries
    execute_backup(run, retries_left=retries_left)
    if run.status == "queued":  # requeued after a transient storage error
        raise self.retry(countdown=retry_delay(self.request.retries))


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter, from RESTORABLE_RETRY_BACKOFF seconds."""
    import random

    return settings.RETRY_BACKOFF * (2 ** attempt) * random.uniform(0.8, 1.2)


def execute_backup(run: BackupRun, inline: bool = False, retries_left: int = 0) -> BackupRun:
    from backups.pipeline import run_backup

    run_job(run, run_backup)
    run.refresh_from_db()
    if run.status == "failed" and run.details.get("transient") and retries_left > 0 and requeue(run):
        return run  # the caller retries; no alert for a failure that may heal
    after_backup(run, inline=inline)
    return run


def requeue(run: BackupRun) -> bool:
    """failed -> queued again, keeping the reason on the run for the record."""
    from django.db import IntegrityError

    attempts = run.details.get("attempts", []) + [run.error]
    try:
        # Not a run someone asked to cancel: it failed before the worker saw the request.
        updated = BackupRun.objects.filter(pk=run.pk, status="failed", cancel_requested__isnull=True).update(
            status="queued", started=None, finished=None, stamp="", bytes_dumped=0, bytes_uploaded=0,
            error="", details={**run.details, "attempts": attempts, "transient": False},
        )
    except IntegrityError:  # another run of this database started meanwhile: it takes over
        updated = 0
    run.refresh_from_db()
    return updated == 1


def after_backup(run: BackupRun, inline: bool = False) -> None:
    """What follows a backup: an alert when it failed, else its verification
    (on the drills queue, or here when inline)."""
    from controlpanel.models import Status, Trigger
    from controlpanel.notify import event
    from drills.models import Verification

    run.refresh_from_db()
    if run.status == Status.CANCELLED:
        return  # someone chose to stop it: nothing to alert about, nothing to verify
    if run.status != Status.SUCCEEDED:
        event("backup_failed", run.error, run=run.pk, database=run.database.name)
        return
    if inline:
        from drills.tasks import execute_verification

        verification = Verification.objects.create(run=run, kind=Verification.Kind.AFTER_BACKUP, trigger=Trigger.API)
        execute_verification(verification)
    else:
        from drills.services import start_verification

        start_verification(run, kind=Verification.Kind.AFTER_BACKUP, trigger=run.trigger)


@shared_task(ignore_result=True)
def scheduled_backup(database_id: int) -> None:
    """Beat's entry point: start a scheduled run unless one is already going."""
    from backups.models import Database
    from backups.services import AlreadyRunning, start_backup
    from controlpanel.models import Trigger

    database = Database.objects.filter(pk=database_id).first()
    if database is None:
        return
    try:
        start_backup(database, trigger=Trigger.SCHEDULED)
    except AlreadyRunning:
        pass  # the running one covers this slot


@shared_task(ignore_result=True)
def apply_retention() -> int:
    from backups.retention import prune_all

    return prune_all()


def shared_queues() -> set[str]:
    """The queues any host's worker may take from (dumps, drills), unlike an agent's."""
    return {settings.CELERY_TASK_DEFAULT_QUEUE, *(route["queue"] for route in settings.CELERY_TASK_ROUTES.values())}


def sent_on_to_agent(task, database, args: list, kwargs: dict | None = None):
    """pgBackRest must run on the database host. A message that arrived on a
    shared queue is sent on to the database's agent queue (its new result is
    returned) instead of running here: whatever is sent by task name alone
    lands on dumps (the reaper re-sending a lost job, a beat row made before
    rows carried their queue). None: it arrived on an agent queue, or was
    called directly, and runs here. Agent queues are trusted as routed, so two
    processes with different RESTORABLE_AGENT_QUEUE never bounce a message."""
    arrived = (task.request.delivery_info or {}).get("routing_key")
    queue = agent_queue_for(database)
    if not arrived or arrived == queue or arrived not in shared_queues():
        return None
    log.info("%s for %s arrived on %s; sending it on to %s", task.name, database, arrived, queue)
    return task.apply_async(args=args, kwargs=kwargs or {}, queue=queue)


@shared_task(bind=True, ignore_result=True)
def base_backup(self, job_id: int) -> None:
    """On the database host's agent queue (routed when enqueued, re-routed if it arrives elsewhere)."""
    from backups.models import BaseBackup

    job = BaseBackup.objects.select_related("database").filter(pk=job_id).first()
    if job is None:
        return
    forwarded = sent_on_to_agent(self, job.database, [job_id])
    if forwarded is not None:
        BaseBackup.objects.filter(pk=job.pk).update(celery_task_id=forwarded.id)
        return
    execute_base_backup(job)


def execute_base_backup(job):
    from backups.pitr import run_base_backup
    from controlpanel.notify import event

    run_job(job, run_base_backup)
    job.refresh_from_db()
    if job.status == "failed":
        event("backup_failed", f"Base backup failed: {job.error}", database=job.database.name)
    return job


@shared_task(ignore_result=True)
def check_wal() -> int:
    """Every few minutes: WAL archiving health of each PITR-enabled database; alert once per episode."""
    from backups.models import PitrSetup
    from backups.pgtools import PgError
    from backups.pitr import wal_health
    from controlpanel.notify import event

    unhealthy = 0
    for setup in PitrSetup.objects.filter(enabled__isnull=False).select_related("database"):
        try:
            health = wal_health(setup)
        except PgError as exc:
            event("wal", f"Cannot read WAL archiving state: {exc}", once_key=f"wal-down:{setup.pk}",
                  database=setup.database.name)
            unhealthy += 1
            continue
        if not health.ok:
            unhealthy += 1
            failed = health.archiver.get("last_failed_time") or health.archiver.get("last_archived_time") or "never"
            event("wal", health.detail, once_key=f"wal:{setup.pk}:{failed}", database=setup.database.name)
    return unhealthy


@shared_task(bind=True, ignore_result=True)
def scheduled_base_backup(self, database_id: int, kind: str = "full") -> None:
    """Beat's entry point; it runs on the database host's agent queue (see pitr schedules)."""
    from backups.models import BaseBackup, Database
    from controlpanel.models import Trigger

    database = Database.objects.filter(pk=database_id).first()
    if database is not None and sent_on_to_agent(self, database, [database_id], {"kind": kind}) is None:
        execute_base_backup(BaseBackup.objects.create(database=database, kind=kind, trigger=Trigger.SCHEDULED))


@shared_task(bind=True, ignore_result=True)
def pgbackrest_verify(self, database_id: int) -> None:
    """Weekly `pgbackrest verify` of the repositories, its result kept on the setup."""
    from django.utils import timezone

    from backups.models import PitrSetup
    from backups.pgbackrest import PgBackRest, PitrError
    from controlpanel.notify import event

    setup = PitrSetup.objects.filter(database_id=database_id, enabled__isnull=False).select_related("database").first()
    if setup is None or sent_on_to_agent(self, setup.database, [database_id]) is not None:
        return
    try:
        output, ok = PgBackRest(setup).verify(), True
    except PitrError as exc:
        output, ok = str(exc), False
        event("verification_failed", f"pgbackrest verify failed: {exc}", database=setup.database.name)
    info = {**setup.info, "verify": {"ok": ok, "output": output[-2000:], "at": timezone.now().isoformat()}}
    PitrSetup.objects.filter(pk=setup.pk).update(info=info)


@shared_task(ignore_result=True)
def write_pitr_heartbeat(database_id: int) -> None:
    """Opt-in: upsert the time into restorable_heartbeat, so a PITR drill can tell
    exactly how far the recovered state is behind (and recovery always finds a
    commit after its target)."""
    from backups.models import PitrSetup
    from backups.pgtools import ConnInfo, PgError, connect

    setup = PitrSetup.objects.filter(database_id=database_id, heartbeat_seconds__isnull=False).first()
    if setup is None:
        return
    try:
        with connect(ConnInfo.of(setup.database), autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS restorable_heartbeat (id int PRIMARY KEY, at timestamptz NOT NULL)")
            conn.execute("INSERT INTO restorable_heartbeat VALUES (1, clock_timestamp()) "
                         "ON CONFLICT (id) DO UPDATE SET at = excluded.at")
    except PgError as exc:
        import logging

        logging.getLogger("restorable.pitr").warning("PITR heartbeat of %s failed: %s", setup.database, exc)
