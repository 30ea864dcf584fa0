"""What the drills app does when something happens elsewhere: a backup that
succeeded gets verified; a worker that takes the drills queue starts reaping
its host's sandboxes."""

import logging
import threading
import time

from django.conf import settings

from controlpanel.jobs import Trigger
from drills.models import Verification
from drills.sandboxes import reap_sandboxes
from drills.services import start_verification

log = logging.getLogger("restorable.sandbox")


def reap_sandboxes_of_this_host(sender=None, **kwargs):
    """Celery's worker_ready: a worker on the drills queue reaps its own host's
    sandboxes when it starts and every RESTORABLE_SANDBOX_REAP_SECONDS: beat's
    reap task reaches one host per tick, and a host whose worker was killed
    should not wait for its turn."""
    consumer = getattr(sender, "task_consumer", None)
    queues = {queue.name for queue in getattr(consumer, "queues", [])}
    if "drills" not in queues:
        return

    def reap_forever():
        while True:
            try:
                removed = reap_sandboxes()
                if removed:
                    log.info("reaped %d sandboxes left on this host", removed)
            except Exception:  # never let the reaper take the worker down
                log.exception("reaping sandboxes failed")
            time.sleep(settings.SANDBOX_REAP_SECONDS)

    threading.Thread(target=reap_forever, name="sandbox-reaper", daemon=True).start()


def verify_new_backup(sender, run, inline: bool = False, **kwargs):
    """backup_succeeded: every backup is verified, on the drills queue, or in the
    backup's own process when it ran inline (`backup --inline`)."""
    if inline:
        Verification.objects.create(run=run, kind=Verification.Kind.AFTER_BACKUP, trigger=Trigger.API).execute()
    else:
        start_verification(run, kind=Verification.Kind.AFTER_BACKUP, trigger=run.trigger)
