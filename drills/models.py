"""Proof that backups restore: verifications, drills and admin restores."""

from typing import Any, Self

from django.conf import settings
from django.db import models

from backups.models import BackupRun, Database, Storage
from controlpanel.crypto import EncryptedTextField
from controlpanel.heartbeat import ping
from controlpanel.jobs import Job, Status
from controlpanel.models import AuditEvent
from controlpanel.notify import event


class Verification(Job):
    """Checks of one backup run: checksums re-read from storage, a full read
    of the dump, and the schema replayed into a sandbox."""

    class Kind(models.TextChoices):
        AFTER_BACKUP = "after_backup", "After backup"
        PERIODIC = "periodic", "Periodic re-check"
        MANUAL = "manual", "Manual"

    run = models.ForeignKey(BackupRun, on_delete=models.CASCADE, related_name="verifications")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.AFTER_BACKUP)
    checksums_only = models.BooleanField(default=False)
    checks = models.JSONField(default=list, blank=True, help_text="[{storage, artifact, check, ok, detail, seconds}]")

    class Meta(Job.Meta):
        permissions = [("run_verification", "Can start verifications")]

    task_name = "drills.tasks.verify"
    page_name = "verification"
    body = "drills.verification.run_verification"

    def on_finished(self, **context) -> None:
        if self.status == Status.FAILED:
            event("verification_failed", self.error, run=self.run_id, database=self.run.database.name,
                  verification=self.pk)
        elif self.status == Status.SUCCEEDED and self.kind == self.Kind.AFTER_BACKUP:
            ping(f"verified backup #{self.run_id} of {self.run.database.name}")

    def __str__(self) -> str:
        return f"verification #{self.pk} of run #{self.run_id}"


class Drill(Job):
    """A full restore into a throwaway Postgres, timed and checked."""

    database = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="drills")
    source_run = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="drills")
    pitr_target = models.DateTimeField(null=True, blank=True)
    storage = models.ForeignKey(Storage, null=True, blank=True, on_delete=models.SET_NULL)
    recovered_to = models.DateTimeField(null=True, blank=True, help_text="Last replayed transaction (PITR).")
    download_seconds = models.FloatField(null=True, blank=True)
    restore_seconds = models.FloatField(null=True, blank=True)
    checks_seconds = models.FloatField(null=True, blank=True)
    rto_seconds = models.FloatField(null=True, blank=True)
    rpo_seconds = models.FloatField(null=True, blank=True)
    row_counts_match = models.BooleanField(null=True, blank=True)
    mismatches = models.JSONField(default=list, blank=True)
    smoke_results = models.JSONField(default=list, blank=True)
    within_budget = models.BooleanField(null=True, blank=True)

    class Meta(Job.Meta):
        permissions = [("run_drill", "Can start restore drills")]
        indexes = [models.Index(fields=["database", "-created"], name="drill_db_created")]

    task_name = "drills.tasks.drill"
    page_name = "drill"
    body = "drills.drill.run_drill"

    def on_finished(self, **context) -> None:
        if self.status == Status.FAILED:
            event("drill_failed", self.error, drill=self.pk, database=self.database.name)
        elif self.within_budget is False:
            event("drill_over_budget", f"Drill RTO {self.rto_seconds:.0f} s is over the "
                  f"{self.database.rto_budget_seconds} s budget.", drill=self.pk, database=self.database.name)

    def __str__(self) -> str:
        return f"drill #{self.pk} of {self.database}"


class Restore(Job):
    """An admin-triggered restore, audited."""

    class Target(models.TextChoices):
        SANDBOX = "sandbox", "A sandbox kept for a while"
        NEW_DATABASE = "new_database", "A new database on a registered server"

    database = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="restores")
    source_run = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="restores")
    pitr_target = models.DateTimeField(null=True, blank=True)
    pitr = models.BooleanField(default=False, help_text="A point-in-time restore from the pgBackRest repository.")
    recovered_to = models.DateTimeField(null=True, blank=True, help_text="Last replayed transaction (PITR).")
    target = models.CharField(max_length=16, choices=Target.choices, default=Target.SANDBOX)
    target_database = models.ForeignKey(
        Database, null=True, blank=True, on_delete=models.SET_NULL, related_name="restores_into"
    )
    target_dbname = models.CharField(max_length=63, blank=True)
    # A server given by connection string (CLI) instead of a registered database.
    target_dsn = EncryptedTextField(blank=True)
    tables = models.JSONField(default=list, blank=True)
    schemas = models.JSONField(default=list, blank=True)
    keep_hours = models.PositiveIntegerField(default=4)
    expires = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    confirmation = models.CharField(max_length=63, blank=True,
                                    help_text="The existing database's name, typed to allow overwriting it.")
    connection = models.JSONField(default=dict, blank=True,
                                  help_text="Where the restored data is: host, port, dbname, user.")
    # The sandbox password, shown to the admin once and then erased.
    one_time_password = EncryptedTextField(blank=True)

    task_name = "drills.tasks.restore"
    page_name = "restore"
    body = "drills.restores.run_restore"

    def queue(self) -> str | None:
        # Into a data directory: pgBackRest writes it on the database host, so its agent runs it.
        return self.database.agent_queue_name if self.details.get("datadir") else None

    def execute(self, retries_left: int = 0, **context: Any) -> Self:
        self.refresh_from_db()
        if self.status == Status.CANCELLED:
            return self  # cancelled while queued: it never starts, and nobody hears it did
        event("restore_started", f"Restore #{self.pk} of {self.database} started", restore=self.pk,
              database=self.database.name)
        return super().execute(retries_left, **context)

    def on_finished(self, **context) -> None:
        if self.status != Status.SUCCEEDED:
            AuditEvent.record("restore.finished", f"Restore #{self.pk} of {self.database} {self.status}", obj=self,
                              user=self.requested_by, result=self.status, error=self.error)
        event("restore_finished", f"Restore #{self.pk} {self.status}", restore=self.pk, database=self.database.name)

    class Meta(Job.Meta):
        permissions = [("run_restore", "Can restore backups")]

    def __str__(self) -> str:
        return f"restore #{self.pk} of {self.database}"
