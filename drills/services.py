"""Starting verifications: a run record first, the task after commit."""

from django.db import transaction

from backups.models import BackupRun
from backups.pgtools import ConnInfo
from backups.services import agent_queue_for
from controlpanel.models import Trigger
from drills.models import Verification


def start_verification(run: BackupRun, kind: str = Verification.Kind.MANUAL, checksums_only: bool = False,
                       trigger: str = Trigger.MANUAL, request=None) -> Verification:
    from controlpanel.models import AuditEvent
    from drills.tasks import verify

    verification = Verification.objects.create(run=run, kind=kind, checksums_only=checksums_only, trigger=trigger)
    if request is not None:
        AuditEvent.record("verification.start", f"Verification of backup #{run.pk} started", obj=verification,
                          request=request)

    def enqueue():
        result = verify.delay(verification.pk)
        Verification.objects.filter(pk=verification.pk).update(celery_task_id=result.id)

    transaction.on_commit(enqueue)
    return verification


def start_drill(database, source_run=None, trigger: str = Trigger.MANUAL, request=None, **fields):
    from controlpanel.models import AuditEvent
    from drills.models import Drill
    from drills.tasks import drill

    job = Drill.objects.create(database=database, source_run=source_run, trigger=trigger, **fields)
    if request is not None:
        AuditEvent.record("drill.start", f"Drill of {database} started", obj=job, request=request)
    transaction.on_commit(lambda: Drill.objects.filter(pk=job.pk).update(celery_task_id=drill.delay(job.pk).id))
    return job


def create_restore(run: BackupRun, *, target: str, user=None, keep_hours: int = 4, target_database=None,
                   target_dbname: str = "", target_dsn: str = "", tables=(), schemas=(), confirmation: str = "",
                   trigger=Trigger.MANUAL, request=None):
    """A queued, audited restore (the caller enqueues it or runs it inline).
    TARGET_DSN: a server given by connection string (CLI), stored encrypted;
    only its host and port reach the audit log."""
    from controlpanel.models import AuditEvent
    from drills.models import Restore

    job = Restore.objects.create(
        database=run.database, source_run=run, target=target, requested_by=user, keep_hours=keep_hours,
        target_database=target_database, target_dbname=target_dbname, target_dsn=target_dsn, tables=list(tables),
        schemas=list(schemas), confirmation=confirmation, trigger=trigger,
    )
    where = (f"a sandbox for {keep_hours} h" if target == Restore.Target.SANDBOX
             else f"database {target_dbname!r} on {target_server(run, target_database, target_dsn)}")
    what = f"tables {', '.join(tables)}" if tables else (f"schemas {', '.join(schemas)}" if schemas else "everything")
    AuditEvent.record("restore.start", f"Restore of backup #{run.pk} ({what}) into {where}", obj=job, user=user,
                      request=request, run=run.pk, target=target, tables=list(tables), schemas=list(schemas))
    return job


def target_server(run: BackupRun, target_database=None, target_dsn: str = "") -> str:
    """The server a restore into a new database goes to, for people: host and port, never the password."""
    conn = ConnInfo.from_dsn(target_dsn) if target_dsn else ConnInfo.of(target_database or run.database)
    return f"{conn.host}:{conn.port}"


def start_restore(run: BackupRun, **kwargs):
    from drills.models import Restore
    from drills.tasks import restore

    job = create_restore(run, **kwargs)
    transaction.on_commit(lambda: Restore.objects.filter(pk=job.pk).update(celery_task_id=restore.delay(job.pk).id))
    return job


def create_pitr_restore(database, target_time, *, keep_hours: int = 4, user=None, datadir: str = "",
                        trigger=Trigger.MANUAL, request=None):
    """A queued, audited point-in-time restore (target_time None: the latest archived point)."""
    from controlpanel.models import AuditEvent
    from drills.models import Restore

    job = Restore.objects.create(
        database=database, pitr=True, pitr_target=target_time, keep_hours=keep_hours, requested_by=user,
        target=Restore.Target.SANDBOX, trigger=trigger, details={"datadir": datadir} if datadir else {},
    )
    point = f"{target_time:%Y-%m-%d %H:%M:%S %Z}" if target_time else "the latest archived point"
    where = f"data directory {datadir}" if datadir else f"a sandbox for {keep_hours} h"
    AuditEvent.record("restore.start", f"Point-in-time restore of {database} to {point} into {where}", obj=job,
                      user=user, request=request, pitr=True,
                      target_time=target_time.isoformat() if target_time else "latest")
    return job


def start_pitr_restore(database, target_time, **kwargs):
    from drills.models import Restore
    from drills.tasks import restore

    job = create_pitr_restore(database, target_time, **kwargs)

    def enqueue():
        # Into a data directory: pgBackRest writes it on the database host, so its agent runs it.
        result = (restore.apply_async(args=[job.pk], queue=agent_queue_for(database)) if job.details.get("datadir")
                  else restore.delay(job.pk))
        Restore.objects.filter(pk=job.pk).update(celery_task_id=result.id)

    transaction.on_commit(enqueue)
    return job
