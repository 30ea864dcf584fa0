"""Every database with its last run and last verified backup."""

import json
from typing import Any

from django.core.management.base import BaseCommand

from backups.models import Database
from controlpanel.cli import TextArgsMixin, iso


class Command(TextArgsMixin, BaseCommand):
    help = "Show every database with its last backup run."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        rows: list[dict[str, Any]] = []
        for database in Database.objects.all():
            last, good = database.runs.first(), database.last_good_run()
            rows.append({
                "database": database.name,
                "server_version": database.server_version,
                "last_run": {"id": last.pk, "status": last.status, "verified": last.verified,
                             "created": iso(last.created), "error": last.error} if last else None,
                "last_verified_backup": {"id": good.pk, "created": iso(good.created)} if good else None,
            })
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("No databases yet: add one with `manage.py add_database`.")
        for row in rows:
            last_run = row["last_run"]
            state = (f"#{last_run['id']} {last_run['status']} ({last_run['verified']}) at {last_run['created']}"
                     if last_run
                     else "never backed up")
            self.stdout.write(f"{row['database']}: {state}")
