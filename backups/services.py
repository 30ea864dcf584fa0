"""Starting backups (one run record per execution, enqueued after commit),
routing work to the database host's agent, and saving storages."""

from django.db import IntegrityError, transaction

from backups.models import Artifact, BackupRun, BaseBackup, Database, PitrSetup, Storage
from backups.storage import backend_for
from controlpanel.jobs import ACTIVE_STATES, Trigger
from controlpanel.models import AuditEvent


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
    return create_backup_run(database, trigger).enqueue(request, f"Backup of {database} started")


def start_base_backup(database: Database, kind: str = "full", trigger: str = Trigger.MANUAL, request=None):
    """A queued base backup, sent to the database host's agent queue after commit."""
    job = BaseBackup.objects.create(database=database, kind=kind, trigger=trigger)
    return job.enqueue(request, f"{job.get_kind_display()} base backup of {database} started")


class StorageInUse(Exception):
    """A storage that cannot be deleted: the message says why, for the operator."""


def save_storage(storage: Storage, *, test: bool = True, request=None) -> Storage:
    """The one way a storage is saved (page and CLI): unless TEST is off, test
    access and apply its bucket lifecycle rule first, so an unusable storage is
    never saved; then save and audit. StorageError means nothing was saved."""
    if test:
        check_storage(storage)
    storage.save()
    AuditEvent.record("storage.save", f"Storage {storage} saved" + ("" if test else " without testing access"),
                      obj=storage, request=request, tested=test, lifecycle_days=storage.lifecycle_days)
    return storage


def check_storage(storage: Storage) -> None:
    """Write, read and delete a probe object, then make the bucket's lifecycle
    rule match lifecycle_days (our rule only; removed when the days are cleared)."""
    backend = backend_for(storage)
    backend.test()
    stored = Storage.objects.filter(pk=storage.pk).values_list("lifecycle_days", flat=True).first()
    # Only touch the bucket's rules when there is a rule to set or ours to remove:
    # keys that may write objects need not be allowed to read lifecycle rules.
    if storage.lifecycle_days or stored:
        backend.set_lifecycle(storage.lifecycle_days)


def why_storage_is_in_use(storage: Storage) -> str:
    """Empty when the storage row may go; else the reason, in plain words."""
    users = sorted({*storage.primary_for.values_list("name", flat=True),
                    *storage.offsite_for.values_list("name", flat=True),
                    *PitrSetup.objects.filter(offsite_storage=storage).values_list("database__name", flat=True)})
    if users:
        return f"Storage {storage} is used by database {', '.join(users)}: choose another storage there first."
    if BackupRun.objects.filter(status__in=ACTIVE_STATES).exists():
        return f"A backup is queued or running and may still write to {storage}: delete it once backups are idle."
    retained = (BackupRun.objects.filter(artifacts__storage=storage, artifacts__deleted_at__isnull=True,
                                         pruned__isnull=True).distinct().order_by("pk"))
    count = retained.count()
    if count:
        first = ", ".join(f"#{pk}" for pk in retained.values_list("pk", flat=True)[:5])
        return (f"Storage {storage} still holds {count} retained backup{'s' if count != 1 else ''} ({first}"
                f"{', ...' if count > 5 else ''}): wait for retention to prune them, or restore from them first.")
    return ""


def delete_storage(storage: Storage, request=None) -> None:
    """Delete the storage's row, audited; StorageInUse while anything needs it.
    The files in its directory or bucket are never touched."""
    with transaction.atomic():
        storage = Storage.objects.select_for_update().get(pk=storage.pk)
        reason = why_storage_is_in_use(storage)
        if reason:
            raise StorageInUse(reason)
        # What is left are records of pruned or removed copies: history of a place that goes away.
        forgotten = Artifact.objects.filter(storage=storage).delete()[0]
        AuditEvent.record("storage.delete", f"Storage {storage} ({storage.location}) deleted; its files were left "
                          "in place", obj=storage, request=request, kind=storage.kind, location=storage.location,
                          forgotten_artifact_records=forgotten)
        storage.delete()
