"""Take a pgBackRest base backup now."""

import json

from django.core.management.base import BaseCommand, CommandError
from controlpanel.cli import TextArgsMixin
from django.db import transaction

from controlpanel.cli import follow, iso
from backups.models import BaseBackup, Database
from controlpanel.models import Status, Trigger


class Command(TextArgsMixin, BaseCommand):
    help = "Take a base backup (full or differential) of a PITR-enabled database."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--type", choices=["full", "diff", "incr"], default="full")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--inline", action="store_true")
        mode.add_argument("--wait", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, name, type, inline, wait, json: bool, **options):
        from backups.services import start_base_backup
        from backups.tasks import execute_base_backup

        database = Database.objects.filter(name=name).first()
        if database is None:
            raise CommandError(f"No database named {name!r}.")
        if inline:
            job = execute_base_backup(BaseBackup.objects.create(database=database, kind=type, trigger=Trigger.API))
        else:
            with transaction.atomic():
                job = start_base_backup(database, kind=type, trigger=Trigger.API)
            if wait:
                job = follow(job)
        data = {"id": job.pk, "status": job.status, "error": job.error, "type": job.kind, "label": job.label,
                "size_bytes": job.size_bytes, "repo_size_bytes": job.repo_size_bytes, "wal_start": job.wal_start,
                "wal_stop": job.wal_stop, "started": iso(job.started), "finished": iso(job.finished)}
        self.stdout.write(_dumps(data) if json else f"Base backup #{job.pk}: {job.status} {job.label} {job.error}")
        if (inline or wait) and job.status != Status.SUCCEEDED:
            raise SystemExit(1)


def _dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
