"""Thin Celery tasks of the drills queue: verification and re-verification."""

from celery import shared_task

from controlpanel.jobs import run_job
from controlpanel.models import Status, Trigger
from controlpanel.notify import event
from drills.models import Verification


@shared_task(ignore_result=True)
def verify(verification_id: int) -> None:
    verification = Verification.objects.select_related("run__database").filter(pk=verification_id).first()
    if verification is not None:
        execute_verification(verification)


def execute_verification(verification: Verification) -> Verification:
    from drills.verification import run_verification

    run_job(verification, run_verification)
    verification.refresh_from_db()
    if verification.status == Status.FAILED:
        event("verification_failed", verification.error, run=verification.run_id,
              database=verification.run.database.name, verification=verification.pk)
    elif verification.status == Status.SUCCEEDED and verification.kind == Verification.Kind.AFTER_BACKUP:
        from controlpanel.heartbeat import ping

        ping(f"verified backup #{verification.run_id} of {verification.run.database.name}")
    return verification


@shared_task(ignore_result=True)
def reverify_all() -> int:
    """Weekly: re-check the checksums of every retained backup on every storage."""
    from backups.models import BackupRun
    from drills.services import start_verification

    runs = BackupRun.objects.filter(status=Status.SUCCEEDED, pruned__isnull=True)
    for run in runs:
        start_verification(run, kind=Verification.Kind.PERIODIC, checksums_only=True, trigger=Trigger.SCHEDULED)
    return runs.count()


@shared_task(ignore_result=True)
def drill(drill_id: int) -> None:
    from drills.models import Drill

    job = Drill.objects.select_related("database").filter(pk=drill_id).first()
    if job is not None:
        execute_drill(job)


def execute_drill(job):
    from drills.drill import run_drill

    run_job(job, run_drill)
    job.refresh_from_db()
    if job.status == Status.FAILED:
        event("drill_failed", job.error, drill=job.pk, database=job.database.name)
    elif job.within_budget is False:
        event("drill_over_budget", f"Drill RTO {job.rto_seconds:.0f} s is over the {job.database.rto_budget_seconds} s "
              "budget.", drill=job.pk, database=job.database.name)
    return job


@shared_task(ignore_result=True)
def scheduled_drill(database_id: int) -> None:
    from backups.models import Database
    from drills.services import start_drill

    database = Database.objects.filter(pk=database_id).first()
    if database is not None and database.last_good_run() is not None:
        start_drill(database, trigger=Trigger.SCHEDULED)


@shared_task(ignore_result=True)
def restore(restore_id: int) -> None:
    from drills.models import Restore

    job = Restore.objects.select_related("database", "source_run").filter(pk=restore_id).first()
    if job is not None:
        execute_restore(job)


def execute_restore(job):
    from controlpanel.models import AuditEvent
    from drills.restores import run_restore

    job.refresh_from_db()
    if job.status == Status.CANCELLED:
        return job  # cancelled while queued: it never starts
    event("restore_started", f"Restore #{job.pk} of {job.database} started", restore=job.pk, database=job.database.name)
    run_job(job, run_restore)
    job.refresh_from_db()
    if job.status != Status.SUCCEEDED:
        AuditEvent.record("restore.finished", f"Restore #{job.pk} of {job.database} {job.status}", obj=job,
                          user=job.requested_by, result=job.status, error=job.error)
    event("restore_finished", f"Restore #{job.pk} {job.status}", restore=job.pk, database=job.database.name)
    return job


@shared_task(ignore_result=True)
def scheduled_pitr_drill(database_id: int) -> None:
    """Monthly: a PITR drill to the last archived point."""
    from backups.models import Database
    from drills.services import start_drill

    database = Database.objects.filter(pk=database_id, pitr__enabled__isnull=False).first()
    if database is not None:
        start_drill(database, trigger=Trigger.SCHEDULED, details={"pitr": True})
