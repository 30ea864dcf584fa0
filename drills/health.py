"""RTO and RPO budgets: is each database within them right now?

RPO exposure is the age of the last verified backup (the data a restore from
it would lose); RTO is what the last drill measured. Green: both within
budget. Amber: within budget but the RPO margin is under a fifth, the last
drill warned (creeping RTO) or no drill yet. Red: over a budget, or no
verified backup at all.
"""

from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from backups.models import BackupRun, Database
from controlpanel.jobs import ACTIVE_STATES, Status
from drills.models import Drill

GREEN, AMBER, RED = "green", "amber", "red"


@dataclass
class Health:
    color: str
    rpo_age_seconds: float | None
    rpo_budget_seconds: int
    last_rto_seconds: float | None
    rto_budget_seconds: int
    reasons: list[str] = field(default_factory=list)
    # Set by database_health(), for the database page; not part of init, repr or comparison.
    last_good: BackupRun | None = field(default=None, init=False, repr=False, compare=False)
    last_drill: Drill | None = field(default=None, init=False, repr=False, compare=False)


def database_health(database, now=None) -> Health:
    """Health of one database, loading what it needs (two queries)."""
    last_good = database.last_good_run()
    last_drill = Drill.objects.filter(database=database).exclude(status__in=(*ACTIVE_STATES, Status.CANCELLED)).first()
    health = assess(database, (last_good.finished or last_good.created) if last_good else None,
                    DrillFacts.of(last_drill), now)
    health.last_good, health.last_drill = last_good, last_drill
    return health


@dataclass
class DrillFacts:
    status: str
    rto_seconds: float | None
    within_budget: bool | None
    warnings: list
    error: str

    @classmethod
    def of(cls, drill) -> "DrillFacts | None":
        if drill is None:
            return None
        return cls(drill.status, drill.rto_seconds, drill.within_budget, drill.details.get("warnings", []), drill.error)


def assess(database, last_good_at, drill: DrillFacts | None, now=None) -> Health:
    """Green, amber or red from already-loaded facts (no queries: the overview
    annotates them for every database at once)."""
    now = now or timezone.now()
    age = (now - last_good_at).total_seconds() if last_good_at else None
    health = Health(GREEN, age, database.rpo_budget_seconds, drill.rto_seconds if drill else None,
                    database.rto_budget_seconds)
    if age is None:  # no last_good_at
        health.reasons.append("No verified backup: nothing proven restorable yet.")
    elif age > database.rpo_budget_seconds:
        health.reasons.append(f"The last verified backup is {age / 3600:.1f} h old, over the "
                              f"{database.rpo_budget_seconds / 3600:.1f} h RPO budget.")
    if drill is not None and drill.status == Status.FAILED:
        health.reasons.append(f"The last drill failed: {drill.error[:200]}")
    elif drill is not None and drill.within_budget is False:
        health.reasons.append(f"The last drill took {drill.rto_seconds:.0f} s, over the "
                              f"{database.rto_budget_seconds} s RTO budget.")
    if health.reasons:
        health.color = RED
        return health
    if drill is None:
        health.reasons.append("No restore drill yet.")
    elif drill.warnings:
        health.reasons.extend(drill.warnings)
    if age is not None and age > 0.8 * database.rpo_budget_seconds:
        health.reasons.append("The last verified backup is close to the RPO budget.")
    health.color = AMBER if health.reasons else GREEN
    return health


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


def fleet_health():
    """(database, health) for every database, from one annotated query: the
    overview, /metrics, the stale check and the outside heartbeat all read this."""
    for database in databases_with_facts():
        drill = None
        if database.last_drill_id:
            details = database.last_drill_details or {}
            drill = DrillFacts(database.last_drill_status, database.last_drill_rto, database.last_drill_within,
                               details.get("warnings", []) if isinstance(details, dict) else [],
                               database.last_drill_error or "")
        yield database, assess(database, database.last_good_finished, drill)


def all_within_rpo() -> bool:
    """Every database has a verified backup within its RPO budget (and there is one)."""
    rows = list(fleet_health())
    return bool(rows) and all(health.rpo_age_seconds is not None and
                              health.rpo_age_seconds <= database.rpo_budget_seconds for database, health in rows)
