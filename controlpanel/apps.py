from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ControlPanelConfig(AppConfig):
    name = "controlpanel"
    verbose_name = "Control panel"

    def ready(self):
        # In ready(), not at the top: these import models, which load after the app configs.
        from controlpanel.roles import sync_roles  # noqa: PLC0415
        from controlpanel.system_schedules import ensure_system_schedules  # noqa: PLC0415

        # Not limited to this app as sender: the permissions of backups and
        # drills are created by their own post_migrate, after ours.
        post_migrate.connect(sync_roles, dispatch_uid="restorable-sync-roles")
        post_migrate.connect(ensure_system_schedules, dispatch_uid="restorable-system-schedules")
