"""RTO and RPO budgets: is each database within them right now?

RPO exposure is the age of the last verified backup (the data a restore from
it would lose); RTO is what the last drill measured. Green: both within
budget. Amber: within budget but the RPO margin is under a fifth, the last
drill warned (creeping RTO) or no drill yet. Red: over a budget, or no
verified backup at all.
"""

from dataclasses import dataclass, field

from django.utils import timezone

from controlpanel.models import Status
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
    last_good = None
    last_drill = None


def database_health(database, now=None) -> Health:
    """Health of one database, loading what it needs (two queries)."""
    last_good = database.last_good_run()
    last_drill = Drill.objects.filter(database=database).exclude(status__in=("queued", "running", "cancelled")).first()
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
    if last_good_at is None:
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
