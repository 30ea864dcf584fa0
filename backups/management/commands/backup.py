"""Back up a database now: queued (default), followed (--wait) or in this process (--inline)."""

from django.core.management.base import CommandError

from backups.models import BackupRun, Database
from backups.services import AlreadyRunning, create_backup_run, start_backup
from controlpanel.cli import JobCommand, iso
from controlpanel.jobs import Trigger


def run_as_dict(run: BackupRun) -> dict:
    return {
        "id": run.pk,
        "database": run.database.name,
        "status": run.status,
        "verified": run.verified,
        "error": run.error,
        "trigger": run.trigger,
        "created": iso(run.created),
        "started": iso(run.started),
        "finished": iso(run.finished),
        "seconds": run.duration.total_seconds() if run.duration and not run.is_active else None,
        "server_version": run.server_version,
        "pg_dump_version": run.pg_dump_version,
        "compression": run.compression,
        "size_bytes": run.size_bytes,
        "artifacts": [
            {"storage": a.storage.name, "name": a.name, "key": a.key, "size": a.size, "sha256": a.sha256}
            for a in run.artifacts.select_related("storage")
        ],
        "row_counts": run.row_counts,
    }


def database_named(name: str) -> Database:
    database = Database.objects.filter(name=name).first()
    if database is None:
        raise CommandError(f"No database named {name!r}.")
    return database


class Command(JobCommand):
    help = "Back up a database now. Exit status 0 only when the backup succeeded."
    refusals = (AlreadyRunning,)

    def add_arguments(self, parser):
        parser.add_argument("name")
        super().add_arguments(parser)

    def create(self, name, **options):
        return create_backup_run(database_named(name), Trigger.API)

    def start(self, name, **options):
        return start_backup(database_named(name), trigger=Trigger.API)

    def as_dict(self, run):
        return run_as_dict(run)

    def queued(self, run):
        return f"Backup run #{run.pk} of {run.database} queued."

    def describe(self, run):
        size = f", {run.size_bytes} bytes" if run.size_bytes else ""
        self.stdout.write(f"Backup run #{run.pk} of {run.database}: {run.status}{size}")
        if run.error:
            self.stderr.write(run.error)
