"""The panel's own periodic tasks, kept as django-celery-beat rows."""

import json

from django.conf import settings
from django.db import connections
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

SYSTEM_TASKS = {
    # name: (task, every seconds)
    "restorable: reap dead jobs": ("controlpanel.tasks.reap_dead_jobs", None),
    "restorable: apply retention": ("backups.tasks.apply_retention", 3600),
    "restorable: reap sandboxes": ("drills.tasks.reap_sandboxes", 300),
    "restorable: outside heartbeat": ("drills.tasks.heartbeat", 300),
    "restorable: stale backup check": ("drills.tasks.check_staleness", 600),
    "restorable: WAL archiving check": ("backups.tasks.check_wal", 120),
}
# name: (task, cron minute hour day-of-month month day-of-week)
SYSTEM_CRONTABS = {
    "restorable: re-verify checksums weekly": ("drills.tasks.reverify_all", "0 4 * * 6"),
    "restorable: daily digest": ("backups.tasks.daily_digest", "0 8 * * *"),
}


def ensure_system_schedules(using="default", **kwargs) -> None:
    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return  # a partial migrate; the next full one creates them
    for name, (task, every) in SYSTEM_TASKS.items():
        seconds = every or max(settings.HEARTBEAT_SECONDS, 5)
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={"task": task, "interval": interval, "crontab": None, "args": json.dumps([]), "enabled": True},
        )
    for name, (task, expression) in SYSTEM_CRONTABS.items():
        minute, hour, day_of_month, month, day_of_week = expression.split()
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week,
            timezone=settings.TIME_ZONE,
        )
        row, created = PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "crontab": crontab, "args": json.dumps([]), "enabled": True}
        )
        if not created and row.task != task:  # a task that moved: keep the row's (perhaps edited) schedule
            PeriodicTask.objects.filter(pk=row.pk).update(task=task)
