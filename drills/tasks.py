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
