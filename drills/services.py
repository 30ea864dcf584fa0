"""Starting verifications, drills and restores: a row first, audited, its task after commit (Job.enqueue)."""

from backups.models import BackupRun
from backups.pgtools import ConnInfo
from controlpanel.jobs import Trigger
from controlpanel.models import AuditEvent
from drills.models import Drill, Restore, Verification


def start_verification(run: BackupRun, kind: str = Verification.Kind.MANUAL, checksums_only: bool = False,
                       trigger: str = Trigger.MANUAL, request=None) -> Verification:
    verification = Verification.objects.create(run=run, kind=kind, checksums_only=checksums_only, trigger=trigger)
    return verification.enqueue(request, f"Verification of backup #{run.pk} started")


def start_drill(database, source_run=None, trigger: str = Trigger.MANUAL, request=None, **fields):
    job = Drill.objects.create(database=database, source_run=source_run, trigger=trigger, **fields)
    return job.enqueue(request, f"Drill of {database} started")


def create_restore(run: BackupRun, *, target: str, user=None, keep_hours: int = 4, target_database=None,
                   target_dbname: str = "", target_dsn: str = "", tables=(), schemas=(), confirmation: str = "",
                   trigger=Trigger.MANUAL, request=None):
    """A queued, audited restore (the caller enqueues it or runs it inline).
    TARGET_DSN: a server given by connection string (CLI), stored encrypted;
    only its host and port reach the audit log."""
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
    return create_restore(run, **kwargs).enqueue()  # create_restore audited it, with or without a request


def create_pitr_restore(database, target_time, *, keep_hours: int = 4, user=None, datadir: str = "",
                        trigger=Trigger.MANUAL, request=None):
    """A queued, audited point-in-time restore (target_time None: the latest archived point)."""
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
    return create_pitr_restore(database, target_time, **kwargs).enqueue()  # queue(): the agent for a data directory
