"""Celery tasks of the backups app: each loads its row (quietly gone if it was
deleted) and calls the domain code. The job lifecycle is controlpanel.jobs's."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from backups.models import BackupRun, BaseBackup, Database, PitrSetup
from backups.pitr import check_archiving, verify_repositories, write_heartbeat
from backups.retention import prune_all
from backups.services import AlreadyRunning, start_backup
from controlpanel.jobs import Trigger, forwarded_to, run_as_task
from controlpanel.notify import event


@shared_task(bind=True, ignore_result=True, max_retries=3)
def backup(self, run_id: int) -> None:
    if run := BackupRun.objects.select_related("database__primary_storage").filter(pk=run_id).first():
        run_as_task(self, run)


@shared_task(ignore_result=True)
def scheduled_backup(database_id: int) -> None:
    """Beat's entry point: start a scheduled run unless one is already going."""
    if database := Database.objects.filter(pk=database_id).first():
        try:
            start_backup(database, trigger=Trigger.SCHEDULED)
        except AlreadyRunning:
            pass  # the running one covers this slot


@shared_task(bind=True, ignore_result=True)
def base_backup(self, job_id: int) -> None:
    """On the database host's agent queue (routed when enqueued, sent on if it arrives elsewhere)."""
    job = BaseBackup.objects.select_related("database").filter(pk=job_id).first()
    if job is not None and not forwarded_to(self, job.queue(), [job_id], job=job):
        run_as_task(self, job)


@shared_task(bind=True, ignore_result=True)
def scheduled_base_backup(self, database_id: int, kind: str = "full") -> None:
    """Beat's entry point; its row carries the database's agent queue."""
    database = Database.objects.filter(pk=database_id).first()
    if database is not None and not forwarded_to(self, database.agent_queue_name, [database_id], {"kind": kind}):
        run_as_task(self, BaseBackup.objects.create(database=database, kind=kind, trigger=Trigger.SCHEDULED))


@shared_task(bind=True, ignore_result=True)
def pgbackrest_verify(self, database_id: int) -> None:
    """Weekly `pgbackrest verify` of the repositories, on the database host."""
    setup = PitrSetup.objects.filter(database_id=database_id, enabled__isnull=False).select_related("database").first()
    if setup is not None and not forwarded_to(self, setup.database.agent_queue_name, [database_id]):
        verify_repositories(setup)


@shared_task(ignore_result=True)
def check_wal() -> int:
    """Every few minutes: WAL archiving health of each PITR-enabled database."""
    return check_archiving()


@shared_task(ignore_result=True)
def write_pitr_heartbeat(database_id: int) -> None:
    if setup := PitrSetup.objects.filter(database_id=database_id, heartbeat_seconds__isnull=False).first():
        write_heartbeat(setup)


@shared_task(ignore_result=True)
def apply_retention() -> int:
    return prune_all()


@shared_task(ignore_result=True)
def daily_digest() -> int:
    runs = BackupRun.objects.filter(created__gte=timezone.now() - timedelta(days=1))
    ok = runs.good().count()
    event("digest", f"Last 24 h: {ok} verified backups of {runs.count()} runs.")
    return ok
