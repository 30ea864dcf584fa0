"""Take a pgBackRest base backup now."""

from backups.management.commands.backup import database_named
from backups.models import BaseBackup
from backups.services import start_base_backup
from controlpanel.cli import JobCommand, iso
from controlpanel.jobs import Trigger


class Command(JobCommand):
    help = "Take a base backup (full or differential) of a PITR-enabled database."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--type", choices=["full", "diff", "incr"], default="full")
        super().add_arguments(parser)

    def create(self, name, type, **options):
        return BaseBackup.objects.create(database=database_named(name), kind=type, trigger=Trigger.API)

    def start(self, name, type, **options):
        return start_base_backup(database_named(name), kind=type, trigger=Trigger.API)

    def as_dict(self, job):
        return {"id": job.pk, "status": job.status, "error": job.error, "type": job.kind, "label": job.label,
                "size_bytes": job.size_bytes, "repo_size_bytes": job.repo_size_bytes, "wal_start": job.wal_start,
                "wal_stop": job.wal_stop, "started": iso(job.started), "finished": iso(job.finished)}

    def queued(self, job):
        return self.line(job)

    def describe(self, job):
        self.stdout.write(self.line(job))

    def line(self, job) -> str:
        return f"Base backup #{job.pk}: {job.status} {job.label} {job.error}"
