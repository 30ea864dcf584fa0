"""Housekeeping tasks of the panel itself."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from controlpanel.models import job_models

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def reap_dead_jobs() -> int:
    """Fail running jobs whose worker died (their heartbeat stopped)."""
    total = 0
    for model in job_models():
        reaped = model.reap(settings.HEARTBEAT_GRACE)
        if reaped:
            log.warning("reaped %d %s whose worker stopped responding", reaped, model._meta.verbose_name_plural)
        total += reaped
        model.redeliver_stale(settings.QUEUE_REDELIVER_SECONDS, settings.QUEUE_TIMEOUT_SECONDS)
    return total


@shared_task(ignore_result=True)
def reap_sandboxes() -> int:
    """Remove sandboxes left behind by killed workers, and expired kept ones."""
    from drills.sandboxes import reap_sandboxes as reap

    return reap()


@shared_task(ignore_result=True)
def heartbeat() -> bool:
    """From beat: ping the outside heartbeat while every database is within its RPO."""
    from controlpanel.heartbeat import all_within_rpo, ping

    return all_within_rpo() and ping("all databases have a verified backup within their RPO budget")


@shared_task(ignore_result=True)
def check_staleness() -> int:
    """Alert once per database whose last verified backup is older than its RPO budget
    (this catches a schedule that silently stopped)."""
    from controlpanel.notify import event
    from controlpanel.overview import overview_rows

    stale = 0
    for row in overview_rows():
        database, health = row["database"], row["health"]
        age = health.rpo_age_seconds
        if age is None or age > database.rpo_budget_seconds:
            stale += 1
            what = ("has no verified backup" if age is None else
                    f"has no verified backup for {age / 3600:.1f} h (RPO budget {database.rpo_budget_seconds / 3600:.1f} h)")
            event("stale", f"{database.name} {what}.", once_key=f"stale:{database.pk}:{database.last_good_id}",
                  database=database.name, run=database.last_run_id)
    return stale


@shared_task(ignore_result=True)
def daily_digest() -> int:
    from django.utils import timezone

    from backups.models import BackupRun
    from controlpanel.notify import event

    since = timezone.now() - timedelta(days=1)
    runs = BackupRun.objects.filter(created__gte=since)
    ok = runs.good().count()
    event("digest", f"Last 24 h: {ok} verified backups of {runs.count()} runs.")
    return ok
