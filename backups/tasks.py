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
    """What follows a backup: verification (queued, or here when inline)."""


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
