"""Run a restore drill now: queued (default), followed (--wait) or in this process (--inline)."""

from django.core.management.base import CommandError

from backups.management.commands.backup import database_named
from backups.models import BackupRun
from controlpanel.cli import JobCommand, iso, parse_target_time
from controlpanel.jobs import Status, Trigger
from drills.models import Drill
from drills.services import start_drill


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


class Command(JobCommand):
    help = "Restore a backup into a throwaway PostgreSQL and check it. Exit 0 only when the drill passed."

    def add_arguments(self, parser):
        parser.add_argument("name", help="database name")
        parser.add_argument("--run", type=int, help="backup run to drill (default: the latest verified)")
        parser.add_argument("--pitr", action="store_true", help="drill the pgBackRest repository instead (PITR)")
        parser.add_argument("--target-time", help="with --pitr: ISO 8601 point (default: the last archived WAL)")
        super().add_arguments(parser)

    def drill_of(self, name, run, pitr, target_time, **options) -> dict:
        """What the drill is of: a database, and a backup run or a point in time."""
        database = database_named(name)
        if pitr:
            target = parse_target_time(target_time) if target_time else None
            return {"database": database, "details": {"pitr": True}, "pitr_target": target}
        if run is not None:
            source = BackupRun.objects.filter(pk=run, database=database, status=Status.SUCCEEDED).first()
            if source is None:
                raise CommandError(f"No succeeded backup run #{run} of {name}.")
            return {"database": database, "source_run": source}
        if database.last_good_run() is None:
            raise CommandError(f"{name} has no verified backup to drill with.")
        return {"database": database}

    def create(self, **options):
        return Drill.objects.create(trigger=Trigger.API, **self.drill_of(**options))

    def start(self, **options):
        return start_drill(trigger=Trigger.API, **self.drill_of(**options))

    def as_dict(self, drill):
        return drill_as_dict(drill)

    def queued(self, drill):
        return f"Drill #{drill.pk} of {drill.database.name} queued."

    def describe(self, drill):
        self.stdout.write(f"Drill #{drill.pk} of {drill.database.name}: {drill.status}, RTO {drill.rto_seconds} s")
        if drill.error:
            self.stderr.write(drill.error)
