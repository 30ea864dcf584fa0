"""The Celery app: configured from Django settings (CELERY_*), JSON only."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")

app = Celery("restorable")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def reap_sandboxes_of_this_host(sender=None, **kwargs):
    """A worker on the drills queue reaps its own host's sandboxes when it starts
    and every RESTORABLE_SANDBOX_REAP_SECONDS: beat's reap task reaches one host
    per tick, and a host whose worker was killed should not wait for its turn."""
    import logging
    import threading
    import time

    from django.conf import settings

    consumer = getattr(sender, "task_consumer", None)
    queues = {queue.name for queue in getattr(consumer, "queues", [])}
    if "drills" not in queues:
        return
    log = logging.getLogger("restorable.sandbox")

    def reap_forever():
        from drills.sandboxes import reap_sandboxes

        while True:
            try:
                removed = reap_sandboxes()
                if removed:
                    log.info("reaped %d sandboxes left on this host", removed)
            except Exception:  # never let the reaper take the worker down
                log.exception("reaping sandboxes failed")
            time.sleep(settings.SANDBOX_REAP_SECONDS)

    threading.Thread(target=reap_forever, name="sandbox-reaper", daemon=True).start()
