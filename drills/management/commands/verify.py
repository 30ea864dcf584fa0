"""Verify a backup run now: queued (default), followed (--wait) or in this process (--inline)."""

import json

from django.core.management.base import BaseCommand, CommandError
from controlpanel.cli import TextArgsMixin
from django.db import transaction

from controlpanel.cli import follow, iso
from backups.models import BackupRun
from controlpanel.models import Status, Trigger
from drills.models import Verification


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


class Command(TextArgsMixin, BaseCommand):
    help = "Verify a backup run: checksums from every storage, pg_restore full read, schema replay."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--inline", action="store_true", help="run in this process, no worker needed")
        mode.add_argument("--wait", action="store_true", help="queue it and follow it to the end")
        parser.add_argument("--checksums-only", action="store_true", help="only re-read and hash every copy")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, run_id, inline, wait, checksums_only, json: bool, **options):
        run = BackupRun.objects.filter(pk=run_id).select_related("database").first()
        if run is None:
            raise CommandError(f"No backup run #{run_id}.")
        if run.status != Status.SUCCEEDED:
            raise CommandError(f"Backup run #{run_id} is {run.status}; only a succeeded run can be verified.")
        if inline:
            from drills.tasks import execute_verification

            verification = Verification.objects.create(run=run, checksums_only=checksums_only, trigger=Trigger.API)
            verification = execute_verification(verification)
        else:
            from drills.services import start_verification

            with transaction.atomic():
                verification = start_verification(run, checksums_only=checksums_only, trigger=Trigger.API)
            if wait:
                verification = follow(verification)
        queued = not (inline or wait)
        if json:
            self.stdout.write(_dumps(verification_as_dict(verification)))
        elif queued:
            self.stdout.write(f"Verification #{verification.pk} of backup #{run.pk} queued.")
        else:
            for check in verification.checks:
                mark = "ok  " if check["ok"] else "FAIL"
                self.stdout.write(f"{mark} [{check['storage']}] {check['artifact']} {check['check']}: {check['detail']}")
            self.stdout.write(f"Verification #{verification.pk}: {verification.status}")
        if not queued and verification.status != Status.SUCCEEDED:
            raise SystemExit(1)


def _dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
