"""Verify a backup run now: queued (default), followed (--wait) or in this process (--inline)."""

from django.core.management.base import CommandError

from backups.models import BackupRun
from controlpanel.cli import JobCommand, iso
from controlpanel.jobs import Status, Trigger
from drills.models import Verification
from drills.services import start_verification


def verification_as_dict(verification: Verification) -> dict:
    return {
        "id": verification.pk,
        "run": verification.run_id,
        "database": verification.run.database.name,
        "kind": verification.kind,
        "status": verification.status,
        "error": verification.error,
        "started": iso(verification.started),
        "finished": iso(verification.finished),
        "checks": verification.checks,
    }


def succeeded_run(run_id: int) -> BackupRun:
    run = BackupRun.objects.filter(pk=run_id).select_related("database").first()
    if run is None:
        raise CommandError(f"No backup run #{run_id}.")
    if run.status != Status.SUCCEEDED:
        raise CommandError(f"Backup run #{run_id} is {run.status}; only a succeeded run can be verified.")
    return run


class Command(JobCommand):
    help = "Verify a backup run: checksums from every storage, pg_restore full read, schema replay."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        parser.add_argument("--checksums-only", action="store_true", help="only re-read and hash every copy")
        super().add_arguments(parser)

    def create(self, run_id, checksums_only, **options):
        return Verification.objects.create(run=succeeded_run(run_id), checksums_only=checksums_only,
                                           trigger=Trigger.API)

    def start(self, run_id, checksums_only, **options):
        return start_verification(succeeded_run(run_id), checksums_only=checksums_only, trigger=Trigger.API)

    def as_dict(self, verification):
        return verification_as_dict(verification)

    def queued(self, verification):
        return f"Verification #{verification.pk} of backup #{verification.run_id} queued."

    def describe(self, verification):
        for check in verification.checks:
            mark = "ok  " if check["ok"] else "FAIL"
            self.stdout.write(f"{mark} [{check['storage']}] {check['artifact']} {check['check']}: {check['detail']}")
        self.stdout.write(f"Verification #{verification.pk}: {verification.status}")
