"""Celery tasks of the drills queue: each loads its row (quietly gone if it was
deleted) and calls the domain code. The job lifecycle is controlpanel.jobs's."""

from celery import shared_task

from backups.models import BackupRun, Database
from controlpanel.heartbeat import ping
from controlpanel.jobs import Status, Trigger, run_as_task
from controlpanel.notify import event
from drills import sandboxes
from drills.health import all_within_rpo, fleet_health
from drills.models import Drill, Restore, Verification
from drills.services import start_drill, start_verification


@shared_task(bind=True, ignore_result=True)
def verify(self, verification_id: int) -> None:
    if verification := Verification.objects.select_related("run__database").filter(pk=verification_id).first():
        run_as_task(self, verification)


@shared_task(bind=True, ignore_result=True)
def drill(self, drill_id: int) -> None:
    if job := Drill.objects.select_related("database").filter(pk=drill_id).first():
        run_as_task(self, job)


@shared_task(bind=True, ignore_result=True)
def restore(self, restore_id: int) -> None:
    if job := Restore.objects.select_related("database", "source_run").filter(pk=restore_id).first():
        run_as_task(self, job)


@shared_task(ignore_result=True)
def reverify_all() -> int:
    """Weekly: re-check the checksums of every retained backup on every storage."""
    runs = BackupRun.objects.filter(status=Status.SUCCEEDED, pruned__isnull=True)
    for run in runs:
        start_verification(run, kind=Verification.Kind.PERIODIC, checksums_only=True, trigger=Trigger.SCHEDULED)
    return runs.count()


@shared_task(ignore_result=True)
def scheduled_drill(database_id: int) -> None:
    database = Database.objects.filter(pk=database_id).first()
    if database is not None and database.last_good_run() is not None:
        start_drill(database, trigger=Trigger.SCHEDULED)


@shared_task(ignore_result=True)
def scheduled_pitr_drill(database_id: int) -> None:
    """Monthly: a PITR drill to the last archived point."""
    if database := Database.objects.filter(pk=database_id, pitr__enabled__isnull=False).first():
        start_drill(database, trigger=Trigger.SCHEDULED, details={"pitr": True})


@shared_task(ignore_result=True)
def reap_sandboxes() -> int:
    """Remove this host's sandboxes left behind by killed workers, and expired kept ones."""
    return sandboxes.reap_sandboxes()


@shared_task(ignore_result=True)
def heartbeat() -> bool:
    """From beat: ping the outside heartbeat while every database is within its RPO."""
    return all_within_rpo() and ping("all databases have a verified backup within their RPO budget")


@shared_task(ignore_result=True)
def check_staleness() -> int:
    """Alert once per database whose last verified backup is older than its RPO budget
    (this catches a schedule that silently stopped)."""
    stale = 0
    for database, health in fleet_health():
        age = health.rpo_age_seconds
        if age is None or age > database.rpo_budget_seconds:
            stale += 1
            what = ("has no verified backup" if age is None else
                    f"has no verified backup for {age / 3600:.1f} h "
                    f"(RPO budget {database.rpo_budget_seconds / 3600:.1f} h)")
            event("stale", f"{database.name} {what}.", once_key=f"stale:{database.pk}:{database.last_good_id}",
                  database=database.name, run=database.last_run_id)
    return stale
