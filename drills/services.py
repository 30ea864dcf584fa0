"""Starting verifications: a run record first, the task after commit."""

from django.db import transaction

from backups.models import BackupRun
from controlpanel.models import Trigger
from drills.models import Verification


def start_verification(run: BackupRun, kind: str = Verification.Kind.MANUAL, checksums_only: bool = False,
                       trigger: str = Trigger.MANUAL, request=None) -> Verification:
    from controlpanel.models import AuditEvent
    from drills.tasks import verify

    verification = Verification.objects.create(run=run, kind=kind, checksums_only=checksums_only, trigger=trigger)
    if request is not None:
        AuditEvent.record("verification.start", f"Verification of backup #{run.pk} started", obj=verification,
                          request=request)

    def enqueue():
        result = verify.delay(verification.pk)
        Verification.objects.filter(pk=verification.pk).update(celery_task_id=result.id)

    transaction.on_commit(enqueue)
    return verification
