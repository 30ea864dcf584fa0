"""Cancel a queued or running job: a backup run, verification, drill, restore or base backup."""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from controlpanel.cli import TextArgsMixin

KINDS = {"backup": "backups.BackupRun", "verification": "drills.Verification", "drill": "drills.Drill",
         "restore": "drills.Restore", "base_backup": "backups.BaseBackup"}


class Command(TextArgsMixin, BaseCommand):
    help = ("Cancel a job. A queued one is cancelled at once; a running one is stopped by its worker, which "
            "cleans up first. Exit 0 unless the job does not exist.")

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=sorted(KINDS))
        parser.add_argument("id", type=int)

    def handle(self, *args, kind, id, **options):
        job = apps.get_model(KINDS[kind]).objects.filter(pk=id).first()
        if job is None:
            raise CommandError(f"No {kind.replace('_', ' ')} #{id}.")
        self.stdout.write(job.cancel(via=" (CLI)")[1])
