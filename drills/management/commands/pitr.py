"""Restore a database to a point in time from its pgBackRest repository."""

from django.core.management.base import CommandError

from backups.management.commands.backup import database_named
from controlpanel.cli import JobCommand, iso, parse_target_time
from controlpanel.jobs import Trigger
from drills.services import create_pitr_restore, start_pitr_restore


class Command(JobCommand):
    help = "Point-in-time restore into a sandbox. Exit 0 only on success."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--target-time", required=True, help="ISO 8601 with a time zone, or 'latest'")
        parser.add_argument("--to-sandbox", action="store_true", default=True)
        parser.add_argument("--to-datadir", metavar="PATH",
                            help="restore into this new, empty data directory on this host instead (left stopped)")
        parser.add_argument("--hours", type=int, default=4)
        super().add_arguments(parser)

    def restore_of(self, name, target_time, hours, to_datadir=None, **options) -> tuple:
        database = database_named(name)
        target = None if target_time == "latest" else parse_target_time(target_time)
        if not 1 <= hours <= 336:
            raise CommandError("--hours must be between 1 and 336.")
        datadir = to_datadir or ""
        if datadir and not datadir.startswith("/"):
            raise CommandError("--to-datadir must be an absolute path.")
        return database, target, {"keep_hours": hours, "datadir": datadir, "trigger": Trigger.API}

    def create(self, **options):
        database, target, kwargs = self.restore_of(**options)
        return create_pitr_restore(database, target, **kwargs)

    def start(self, **options):
        database, target, kwargs = self.restore_of(**options)
        return start_pitr_restore(database, target, **kwargs)

    def as_dict(self, job):
        return {"id": job.pk, "status": job.status, "error": job.error,
                "target_time": iso(job.pitr_target) or "latest", "recovered_to": iso(job.recovered_to),
                "rto_seconds": job.details.get("rto_seconds"), "datadir": job.details.get("datadir"),
                "connection": job.connection, "expires": iso(job.expires)}

    def queued(self, job):
        return self.line(job)

    def describe(self, job):
        self.stdout.write(self.line(job))

    def line(self, job) -> str:
        return f"PITR restore #{job.pk}: {job.status}, recovered to {iso(job.recovered_to)} {job.error}"
