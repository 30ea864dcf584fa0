"""Per-database schedules as django-celery-beat rows (editable in the UI)."""

import json
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from backups.models import BackupPolicy, Database


def crontab_for(expression: str, tz: str) -> CrontabSchedule:
    minute, hour, day_of_month, month, day_of_week = expression.split()
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month,
        day_of_week=day_of_week, timezone=tz,
    )
    return schedule


# kind -> (task name, policy field); later capabilities add drills and base backups here.
SCHEDULES = {
    "dump": ("backups.tasks.scheduled_backup", "dump_cron"),
    "drill": ("drills.tasks.scheduled_drill", "drill_cron"),
}


def schedule_name(database: Database, kind: str) -> str:
    return f"{database.name}: {kind}"


def our_rows(database: Database):
    """Every beat row of this database, whatever name it was created under."""
    tasks = {task for task, *_ in [*SCHEDULES.values(), *PITR_SCHEDULES.values()]} | {HEARTBEAT_TASK}
    return PeriodicTask.objects.filter(task__in=tasks, args=json.dumps([database.pk]))


def follow_rename(database: Database) -> None:
    """Rows are named "<database>: <kind>": after a rename, carry them over
    instead of leaving the old ones to fire beside new ones."""
    for row in our_rows(database).exclude(name__startswith=f"{database.name}: "):
        kind = row.name.split(": ", 1)[-1]
        new_name = schedule_name(database, kind)
        if PeriodicTask.objects.filter(name=new_name).exists():
            row.delete()
        else:
            row.name = new_name
            row.save(update_fields=["name"])


def sync_database_schedules(database: Database, policy: BackupPolicy | None = None) -> None:
    follow_rename(database)
    if policy is None:
        policy = BackupPolicy.objects.filter(database=database).first()
        if policy is None:
            policy = BackupPolicy(database=database)  # defaults until one is saved
    for kind, (task, field) in SCHEDULES.items():
        PeriodicTask.objects.update_or_create(
            name=schedule_name(database, kind),
            defaults={
                "task": task,
                "crontab": crontab_for(getattr(policy, field), database.timezone),
                "interval": None,
                "args": json.dumps([database.pk]),
                "enabled": policy.enabled,
            },
        )


def next_runs(expression: str, tz: str, start=None, count: int = 5) -> list:
    """The next COUNT times a cron expression fires, by the same crontab
    logic beat uses (django-celery-beat's time-zone-aware crontab)."""

    minute, hour, day_of_month, month, day_of_week = expression.split()
    row = CrontabSchedule(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month,
                          day_of_week=day_of_week, timezone=ZoneInfo(tz))
    moment = start or timezone.now()
    times = []
    for _ in range(count):
        schedule = row.schedule
        schedule.nowfun = lambda moment=moment: moment.astimezone(ZoneInfo(tz))
        # Arithmetic in UTC: adding to a wall-clock time goes wrong across DST.
        moment = (moment.astimezone(UTC) + schedule.remaining_estimate(moment)).astimezone(ZoneInfo(tz))
        times.append(moment)
        moment = moment + timedelta(seconds=1)
    return times


PITR_SCHEDULES = {
    # kind -> (task, setup field, kwargs)
    "base backup full": ("backups.tasks.scheduled_base_backup", "full_cron", {"kind": "full"}),
    "base backup diff": ("backups.tasks.scheduled_base_backup", "diff_cron", {"kind": "diff"}),
    "pgbackrest verify": ("backups.tasks.pgbackrest_verify", None, {}),
    "pitr drill": ("drills.tasks.scheduled_pitr_drill", "drill", {}),
}


def sync_pitr_schedules(setup) -> None:
    """Base backups and pgbackrest verify, routed to the database host's agent queue."""
    database = setup.database
    for kind, (task, field, kwargs) in PITR_SCHEDULES.items():
        if field == "drill":  # monthly, the database's drill day (first Sunday by default), an hour later
            policy = getattr(database, "policy", None)
            minute, hour, *rest = (policy.drill_cron if policy else "0 5 1-7 * 0").split()
            cron = " ".join([minute, str((int(hour) + 1) % 24) if hour.isdigit() else hour, *rest])
        else:
            cron = getattr(setup, field) if field else "0 6 * * 6"
        PeriodicTask.objects.update_or_create(
            name=schedule_name(database, kind),
            defaults={"task": task, "crontab": crontab_for(cron, database.timezone), "interval": None,
                      "args": json.dumps([database.pk]), "kwargs": json.dumps(kwargs),
                      "queue": "drills" if kind == "pitr drill" else database.agent_queue_name,
                      "enabled": setup.enabled is not None},
        )


HEARTBEAT_TASK = "backups.tasks.write_pitr_heartbeat"


def sync_pitr_heartbeat(setup) -> None:
    name = schedule_name(setup.database, "pitr heartbeat")
    if not setup.heartbeat_seconds or setup.enabled is None:
        PeriodicTask.objects.filter(name=name).delete()
        return
    interval, _ = IntervalSchedule.objects.get_or_create(every=setup.heartbeat_seconds, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name=name, defaults={"task": HEARTBEAT_TASK, "interval": interval, "crontab": None,
                             "args": json.dumps([setup.database_id]), "enabled": True})


def remove_database_schedules(database: Database) -> None:
    names = [schedule_name(database, k) for k in [*SCHEDULES, *PITR_SCHEDULES, "pitr heartbeat"]]
    PeriodicTask.objects.filter(name__in=names).delete()
    our_rows(database).delete()
