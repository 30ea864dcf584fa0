"""Starting backups: one run record per execution, enqueued after commit."""

from django.db import IntegrityError, transaction

from backups.models import BackupRun, Database
from controlpanel.models import ACTIVE_STATES, AuditEvent, Trigger


class AlreadyRunning(Exception):
    def __init__(self, run: BackupRun):
        self.run = run
        super().__init__(f"A backup of {run.database} is already {run.status} (run #{run.pk}).")


def create_backup_run(database: Database, trigger: str = Trigger.MANUAL) -> BackupRun:
    """A queued run, or AlreadyRunning: the partial unique index makes the check atomic."""
    try:
        with transaction.atomic():
            return BackupRun.objects.create(database=database, trigger=trigger)
    except IntegrityError:
        active = BackupRun.objects.filter(database=database, status__in=ACTIVE_STATES).first()
        if active is None:  # it ended between our insert and this read
            return create_backup_run(database, trigger)
        raise AlreadyRunning(active) from None


def start_backup(database: Database, trigger: str = Trigger.MANUAL, request=None) -> BackupRun:
    """Create the run and enqueue it on the dumps queue once the row is committed."""
    from backups.tasks import backup

    run = create_backup_run(database, trigger)
    if request is not None:
        AuditEvent.record("backup.start", f"Backup of {database} started", obj=run, request=request)

    def enqueue():
        result = backup.delay(run.pk)
        BackupRun.objects.filter(pk=run.pk).update(celery_task_id=result.id)

    transaction.on_commit(enqueue)
    return run


def start_base_backup(database: Database, kind: str = "full", trigger: str = Trigger.MANUAL, request=None):
    """A queued base backup, sent to the database host's agent queue after commit."""
    from backups.models import BaseBackup
    from backups.tasks import base_backup

    job = BaseBackup.objects.create(database=database, kind=kind, trigger=trigger)
    if request is not None:
        AuditEvent.record("base_backup.start", f"{job.get_kind_display()} base backup of {database} started",
                          obj=job, request=request)

    def enqueue():
        result = base_backup.apply_async(args=[job.pk], queue=database.agent_queue or None)
        BaseBackup.objects.filter(pk=job.pk).update(celery_task_id=result.id)

    transaction.on_commit(enqueue)
    return job
