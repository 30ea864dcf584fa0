"""Run a restore drill now: queued (default), followed (--wait) or in this process (--inline)."""

import json

from django.core.management.base import BaseCommand, CommandError
from controlpanel.cli import TextArgsMixin
from django.db import transaction

from controlpanel.cli import follow, iso
from backups.models import BackupRun, Database
from controlpanel.models import Status, Trigger
from drills.models import Drill


def drill_as_dict(drill: Drill) -> dict:
    return {
        "id": drill.pk, "database": drill.database.name, "run": drill.source_run_id, "status": drill.status,
        "error": drill.error, "storage": drill.storage.name if drill.storage else None,
        "started": iso(drill.started), "finished": iso(drill.finished),
        "download_seconds": drill.download_seconds, "restore_seconds": drill.restore_seconds,
        "checks_seconds": drill.checks_seconds, "rto_seconds": drill.rto_seconds,
        "rto_budget_seconds": drill.database.rto_budget_seconds, "within_budget": drill.within_budget,
        "row_counts_match": drill.row_counts_match, "mismatches": drill.mismatches,
        "smoke": drill.smoke_results, "warnings": drill.details.get("warnings", []),
        "pitr": bool(drill.details.get("pitr")), "target_time": iso(drill.pitr_target),
        "recovered_to": iso(drill.recovered_to), "rpo_seconds": drill.rpo_seconds,
    }


class Command(TextArgsMixin, BaseCommand):
    help = "Restore a backup into a throwaway PostgreSQL and check it. Exit 0 only when the drill passed."

    def add_arguments(self, parser):
        parser.add_argument("name", help="database name")
        parser.add_argument("--run", type=int, help="backup run to drill (default: the latest verified)")
        parser.add_argument("--pitr", action="store_true", help="drill the pgBackRest repository instead (PITR)")
        parser.add_argument("--target-time", help="with --pitr: ISO 8601 point (default: the last archived WAL)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--inline", action="store_true")
        mode.add_argument("--wait", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, name, run, inline, wait, json: bool, pitr, target_time, **options):
        from controlpanel.cli import parse_target_time

        database = Database.objects.filter(name=name).first()
        if database is None:
            raise CommandError(f"No database named {name!r}.")
        source, extra = None, {}
        if pitr:
            target = parse_target_time(target_time) if target_time else None
            extra = {"details": {"pitr": True}, "pitr_target": target}
        elif run is not None:
            source = BackupRun.objects.filter(pk=run, database=database, status=Status.SUCCEEDED).first()
            if source is None:
                raise CommandError(f"No succeeded backup run #{run} of {name}.")
        elif database.last_good_run() is None:
            raise CommandError(f"{name} has no verified backup to drill with.")
        if inline:
            from drills.tasks import execute_drill

            job = execute_drill(Drill.objects.create(database=database, source_run=source, trigger=Trigger.API,
                                                     **extra))
        else:
            from drills.services import start_drill

            with transaction.atomic():
                job = start_drill(database, source_run=source, trigger=Trigger.API, **extra)
            if wait:
                job = follow(job)
        queued = not (inline or wait)
        if json:
            self.stdout.write(_dumps(drill_as_dict(job)))
        elif queued:
            self.stdout.write(f"Drill #{job.pk} of {name} queued.")
        else:
            self.stdout.write(f"Drill #{job.pk} of {name}: {job.status}, RTO {job.rto_seconds} s")
            if job.error:
                self.stderr.write(job.error)
        if not queued and job.status != Status.SUCCEEDED:
            raise SystemExit(1)


def _dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
