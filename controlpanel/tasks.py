"""Housekeeping tasks of the panel itself."""

import logging

from celery import shared_task
from django.conf import settings

from controlpanel.jobs import job_models

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
