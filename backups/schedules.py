"""Per-database schedules as django-celery-beat rows (editable in the UI)."""

import json

from django_celery_beat.models import CrontabSchedule, PeriodicTask

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
}


def schedule_name(database: Database, kind: str) -> str:
    return f"{database.name}: {kind}"


def sync_database_schedules(database: Database, policy: BackupPolicy | None = None) -> None:
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


def remove_database_schedules(database: Database) -> None:
    PeriodicTask.objects.filter(name__in=[schedule_name(database, k) for k in SCHEDULES]).delete()
