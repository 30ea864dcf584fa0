"""Back up a database now: queued (default), followed (--wait) or in this process (--inline)."""

import json

from django.core.management.base import BaseCommand, CommandError
from controlpanel.cli import TextArgsMixin
from django.db import transaction

from controlpanel.cli import follow, iso
from backups.models import BackupRun, Database
from backups.services import AlreadyRunning, create_backup_run, start_backup
from controlpanel.models import Status, Trigger


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


class Command(TextArgsMixin, BaseCommand):
    help = "Back up a database now. Exit status 0 only when the backup succeeded."

    def add_arguments(self, parser):
        parser.add_argument("name")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--inline", action="store_true", help="run in this process, no worker needed")
        mode.add_argument("--wait", action="store_true", help="queue it and follow it to the end")
        parser.add_argument("--json", action="store_true", help="print the run as JSON")

    def handle(self, *args, name, inline, wait, json: bool, **options):
        database = Database.objects.filter(name=name).first()
        if database is None:
            raise CommandError(f"No database named {name!r}.")
        try:
            if inline:
                run = self.run_inline(database)
            else:
                with transaction.atomic():
                    run = start_backup(database, trigger=Trigger.API)
                if wait:
                    run = follow(run)
        except AlreadyRunning as exc:
            raise CommandError(str(exc)) from None
        self.report(run, json, queued=not (inline or wait))

    def run_inline(self, database) -> BackupRun:
        from backups.tasks import execute_backup

        run = create_backup_run(database, Trigger.API)
        execute_backup(run, inline=True)
        run.refresh_from_db()
        return run

    def report(self, run: BackupRun, as_json: bool, queued: bool) -> None:
        if as_json:
            self.stdout.write(_json_dumps(run_as_dict(run)))
        elif queued:
            self.stdout.write(f"Backup run #{run.pk} of {run.database} queued.")
        else:
            size = f", {run.size_bytes} bytes" if run.size_bytes else ""
            self.stdout.write(f"Backup run #{run.pk} of {run.database}: {run.status}{size}")
            if run.error:
                self.stderr.write(run.error)
        if not queued and run.status != Status.SUCCEEDED:
            raise SystemExit(1)


def _json_dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
