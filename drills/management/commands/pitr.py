"""Restore a database to a point in time from its pgBackRest repository."""

import json

from django.core.management.base import BaseCommand, CommandError
from controlpanel.cli import TextArgsMixin
from django.db import transaction

from controlpanel.cli import follow, iso, parse_target_time
from backups.models import Database
from controlpanel.models import Status, Trigger


class Command(TextArgsMixin, BaseCommand):
    help = "Point-in-time restore into a sandbox. Exit 0 only on success."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--target-time", required=True, help="ISO 8601 with a time zone, or 'latest'")
        parser.add_argument("--to-sandbox", action="store_true", default=True)
        parser.add_argument("--to-datadir", metavar="PATH",
                            help="restore into this new, empty data directory on this host instead (left stopped)")
        parser.add_argument("--hours", type=int, default=4)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--inline", action="store_true")
        mode.add_argument("--wait", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, name, target_time, hours, inline, wait, **options):
        from drills.services import create_pitr_restore, start_pitr_restore
        from drills.tasks import execute_restore

        database = Database.objects.filter(name=name).first()
        if database is None:
            raise CommandError(f"No database named {name!r}.")
        target = None
        if target_time != "latest":
            target = parse_target_time(target_time)
        if not 1 <= hours <= 336:
            raise CommandError("--hours must be between 1 and 336.")
        datadir = options.get("to_datadir") or ""
        if datadir and not datadir.startswith("/"):
            raise CommandError("--to-datadir must be an absolute path.")
        kwargs = {"keep_hours": hours, "datadir": datadir, "trigger": Trigger.API}
        if inline:
            job = execute_restore(create_pitr_restore(database, target, **kwargs))
        else:
            with transaction.atomic():
                job = start_pitr_restore(database, target, **kwargs)
            if wait:
                job = follow(job)
        data = {"id": job.pk, "status": job.status, "error": job.error, "target_time": iso(job.pitr_target) or "latest",
                "recovered_to": iso(job.recovered_to), "rto_seconds": job.details.get("rto_seconds"),
                "datadir": job.details.get("datadir"),
                "connection": job.connection, "expires": iso(job.expires)}
        self.stdout.write(json.dumps(data, indent=2, default=str) if options["json"] else
                          f"PITR restore #{job.pk}: {job.status}, recovered to {data['recovered_to']} {job.error}")
        if (inline or wait) and job.status != Status.SUCCEEDED:
            raise SystemExit(1)
