"""Retention: delete what each storage keeps past its days, never the last good backup.

Protected whatever its age: the newest verified run of each database, the
newest run that ever passed a full verification (a later re-check may have
failed on a storage hiccup: it is still the last evidence of a restorable
backup), the newest succeeded run (verification may still be pending or
broken), and runs pinned "keep". A failure to delete one object is logged and
retried next time.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from backups.models import Artifact, BackupRun, Database, Storage
from backups.storage import StorageError, backend_for
from controlpanel.jobs import Status

log = logging.getLogger("restorable.retention")


def protected_run_ids(database: Database) -> set[int]:
    runs = database.runs.filter(status=Status.SUCCEEDED, pruned__isnull=True)
    protected = set(runs.filter(keep=True).values_list("pk", flat=True))
    for run in (runs.good().first(), runs.ever_fully_verified().order_by("-created").first(), runs.first()):
        if run is not None:
            protected.add(run.pk)
    return protected


def expired_artifacts(storage: Storage, now=None):
    cutoff = (now or timezone.now()) - timedelta(days=storage.retention_days)
    protected = set()
    for database in Database.objects.filter(runs__artifacts__storage=storage).distinct():
        protected |= protected_run_ids(database)
    return (Artifact.objects.filter(storage=storage, deleted_at__isnull=True, run__created__lt=cutoff)
            .exclude(run_id__in=protected).select_related("run"))


def prune_storage(storage: Storage, now=None) -> int:
    """Delete expired artifacts of STORAGE; returns how many objects were removed."""
    backend, removed, touched = backend_for(storage), 0, set()
    for artifact in expired_artifacts(storage, now):
        try:
            backend.delete(artifact.key)
        except StorageError as exc:
            log.warning("retention could not delete %s: %s", artifact, exc)
            continue
        Artifact.objects.filter(pk=artifact.pk).update(deleted_at=timezone.now())
        removed += 1
        touched.add(artifact.run_id)
    for run_id in touched:
        if not Artifact.objects.filter(run_id=run_id, deleted_at__isnull=True).exists():
            BackupRun.objects.filter(pk=run_id).update(pruned=timezone.now())
    if removed:
        log.info("retention removed %d objects from storage %s", removed, storage)
    return removed


def prune_all(now=None) -> int:
    return sum(prune_storage(storage, now) for storage in Storage.objects.all())
