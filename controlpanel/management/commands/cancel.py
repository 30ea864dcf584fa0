"""Cancel a queued or running job: a backup run, verification, drill, restore or base backup."""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from backups.management.commands._follow import TextArgsMixin
from controlpanel.models import AuditEvent
from controlpanel.views import CANCELLABLE, cancel_message

KINDS = {"backup": "runs", "verification": "verifications", "drill": "drills", "restore": "restores",
         "base_backup": "base-backups"}


class Command(TextArgsMixin, BaseCommand):
    help = ("Cancel a job. A queued one is cancelled at once; a running one is stopped by its worker, which "
            "removes what it stored. Exit 0 unless the job does not exist.")

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=sorted(KINDS))
        parser.add_argument("id", type=int)

    def handle(self, *args, kind, id, **options):
        model = apps.get_model(CANCELLABLE[KINDS[kind]][0])
        job = model.objects.filter(pk=id).first()
        if job is None:
            raise CommandError(f"No {kind.replace('_', ' ')} #{id}.")
        outcome = job.request_cancel()
        if outcome != "ended":
            AuditEvent.record(f"{model._meta.model_name}.cancel", f"Cancel of {job} requested (CLI)", obj=job,
                              outcome=outcome)
        self.stdout.write(cancel_message(outcome, job))
