from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"

    def ready(self):
        from backups import receivers  # noqa: F401  keeps beat rows in step with databases
