"""Thin Celery tasks: load the row, call the domain code."""

from celery import shared_task

from backups.models import BackupRun
from controlpanel.jobs import run_job


@shared_task(ignore_result=True)
def backup(run_id: int) -> None:
    run = BackupRun.objects.select_related("database__primary_storage").filter(pk=run_id).first()
    if run is not None:
        execute_backup(run)


def execute_backup(run: BackupRun, inline: bool = False) -> BackupRun:
    from backups.pipeline import run_backup

    run_job(run, run_backup)
    after_backup(run, inline=inline)
    return run


def after_backup(run: BackupRun, inline: bool = False) -> None:
    """What follows a backup: an alert when it failed, else its verification
    (on the drills queue, or here when inline)."""
    from controlpanel.models import Status, Trigger
    from controlpanel.notify import event
    from drills.models import Verification

    run.refresh_from_db()
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
