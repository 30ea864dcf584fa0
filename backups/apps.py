from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"

    def ready(self):
        # In ready(), not at the top: receivers imports models, which load after the app configs.
        from backups import receivers  # noqa: F401, PLC0415  keeps beat rows in step with databases
