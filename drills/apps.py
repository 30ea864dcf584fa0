from celery.signals import worker_ready
from django.apps import AppConfig

from backups.signals import backup_succeeded


class DrillsConfig(AppConfig):
    name = "drills"

    def ready(self):
        # Here, not at the top: receivers imports models, which must wait until apps are ready.
        from drills import receivers  # noqa: PLC0415

        worker_ready.connect(receivers.reap_sandboxes_of_this_host, dispatch_uid="restorable-sandbox-reaper")
        backup_succeeded.connect(receivers.verify_new_backup, dispatch_uid="restorable-verify-new-backup")
