"""The overview's data: one query for every database, whatever their number
or history (subqueries pick each one's last run, last verified backup and
last drill; health is computed from those without further queries)."""

from django.db.models import OuterRef, Subquery

from backups.models import BackupRun, Database
from backups.schedules import next_runs
from controlpanel.models import ACTIVE_STATES, Status
from drills.health import DrillFacts, assess
from drills.models import Drill


def latest(queryset, field):
    return Subquery(queryset.values(field)[:1])


def databases_with_facts():
    runs = BackupRun.objects.filter(database=OuterRef("pk")).order_by("-created")
    good = runs.good()
    # A cancelled drill proves nothing either way: the last one that ended on its own counts.
    drills = (Drill.objects.filter(database=OuterRef("pk")).exclude(status__in=[*ACTIVE_STATES, Status.CANCELLED])
              .order_by("-created"))
    return (
        Database.objects.select_related("primary_storage", "policy")
        .annotate(
            last_run_id=latest(runs, "pk"), last_run_status=latest(runs, "status"),
            last_run_verified=latest(runs, "verified"), last_run_created=latest(runs, "created"),
            last_run_error=latest(runs, "error"),
            last_good_id=latest(good, "pk"), last_good_finished=latest(good, "finished"),
            last_drill_id=latest(drills, "pk"), last_drill_status=latest(drills, "status"),
            last_drill_rto=latest(drills, "rto_seconds"), last_drill_within=latest(drills, "within_budget"),
            last_drill_details=latest(drills, "details"), last_drill_error=latest(drills, "error"),
        )
    )


def overview_rows() -> list[dict]:
    rows = []
    upcoming_for = {}  # most databases share their schedules: compute each once
    for database in databases_with_facts():
        drill = None
        if database.last_drill_id:
            details = database.last_drill_details or {}
            drill = DrillFacts(database.last_drill_status, database.last_drill_rto, database.last_drill_within,
                               details.get("warnings", []) if isinstance(details, dict) else [],
                               database.last_drill_error or "")
        health = assess(database, database.last_good_finished, drill)
        policy = getattr(database, "policy", None)
        upcoming = []
        if policy is not None and policy.enabled:
            key = (policy.dump_cron, policy.drill_cron, database.timezone)
            if key not in upcoming_for:
                upcoming_for[key] = [("backup", next_runs(policy.dump_cron, database.timezone, count=1)[0]),
                                     ("drill", next_runs(policy.drill_cron, database.timezone, count=1)[0])]
            upcoming = upcoming_for[key]
        rows.append({"database": database, "health": health, "upcoming": upcoming})
    return rows
