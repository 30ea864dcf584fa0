"""The overview's rows: each database with its health (one query for all of
them, drills.health.fleet_health) and its next scheduled runs."""

from backups.schedules import next_runs
from drills.health import fleet_health


def overview_rows() -> list[dict]:
    rows = []
    upcoming_for = {}  # most databases share their schedules: compute each once
    for database, health in fleet_health():
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
