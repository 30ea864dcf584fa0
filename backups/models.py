"""Databases to protect, where their backups go, and what each run produced."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.timezone import now

from backups.signals import backup_succeeded
from backups.storage import remove_partial
from controlpanel.crypto import EncryptedTextField
from controlpanel.jobs import Job, Status
from controlpanel.notify import event
from controlpanel.validators import name_validator


class Storage(models.Model):
    class Kind(models.TextChoices):
        LOCAL = "local", "Local directory"
        S3 = "s3", "S3-compatible (AWS, Cloudflare R2, MinIO)"

    class ServerSideEncryption(models.TextChoices):
        NONE = "", "None"
        AES256 = "AES256", "AES256 (SSE-S3)"
        KMS = "aws:kms", "aws:kms"

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.LOCAL)
    path = models.CharField(max_length=1024, blank=True, help_text="Directory for a local storage.")
    endpoint_url = models.URLField("endpoint URL", blank=True, help_text="Empty for AWS; e.g. https://<account>.r2.cloudflarestorage.com")
    region = models.CharField(max_length=64, blank=True, default="auto")
    bucket = models.CharField(max_length=63, blank=True)
    prefix = models.CharField(max_length=512, blank=True)
    path_style = models.BooleanField(default=False, help_text="Path-style addressing (MinIO, most self-hosted S3).")
    access_key_id = EncryptedTextField("access key ID", blank=True)
    secret_access_key = EncryptedTextField(blank=True)
    server_side_encryption = models.CharField(
        "server-side encryption", max_length=16, choices=ServerSideEncryption.choices, blank=True, default=""
    )
    checksum_when_required = models.BooleanField(
        default=False,
        help_text="Send checksums only when the API requires them (needed by some S3-compatible services).",
    )
    multipart_chunk_mb = models.PositiveIntegerField(
        "multipart part size (MB)",
        default=5, validators=[MinValueValidator(5), MaxValueValidator(5120)],
        help_text="Multipart part size; R2 needs equal-sized parts, which this always uses.",
    )
    retention_days = models.PositiveIntegerField(default=14, validators=[MaxValueValidator(36500)])
    lifecycle_days = models.PositiveIntegerField(
        "bucket lifecycle (days)", null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(36500)],
        help_text="Bucket lifecycle rule that expires old objects (off-site).",
    )
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def location(self) -> str:
        if self.kind == self.Kind.LOCAL:
            return self.path
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


class Database(models.Model):
    class SSLMode(models.TextChoices):
        DISABLE = "disable"
        ALLOW = "allow"
        PREFER = "prefer"
        REQUIRE = "require"
        VERIFY_CA = "verify-ca"
        VERIFY_FULL = "verify-full"

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    host = models.CharField(max_length=255, default="127.0.0.1")
    port = models.PositiveIntegerField(default=5432, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    dbname = models.CharField("database name", max_length=63)
    user = models.CharField(max_length=63, default="postgres")
    password = EncryptedTextField(blank=True)
    sslmode = models.CharField("SSL mode", max_length=16, choices=SSLMode.choices, default=SSLMode.PREFER)
    server_version = models.PositiveIntegerField(null=True, blank=True, help_text="server_version_num, detected.")
    timezone = models.CharField("time zone", max_length=64, default="UTC", help_text="Time zone of the schedules.")
    rto_budget_seconds = models.PositiveIntegerField("RTO budget (s)", default=3600)
    rpo_budget_seconds = models.PositiveIntegerField("RPO budget (s)", default=86400)
    tables_that_matter = models.JSONField(default=list, blank=True)
    smoke_sql = models.TextField(
        "smoke SQL", blank=True,
        help_text="One query per line, run read-only after each drill; end a line with "
                  "'-- expect: VALUE' to compare its first column, "
                  "e.g. SELECT count(*) > 0 FROM orders -- expect: True",
    )
    primary_storage = models.ForeignKey(Storage, on_delete=models.PROTECT, related_name="primary_for")
    offsite_storages = models.ManyToManyField(Storage, blank=True, related_name="offsite_for",
                                              verbose_name="off-site storages")
    include_globals = models.BooleanField(default=False, help_text="Also dump roles (without passwords).")
    agent_queue = models.CharField(max_length=128, blank=True, help_text="Queue of the agent on the database host.")
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def server_major(self) -> int | None:
        return self.server_version // 10000 if self.server_version else None

    def storages(self) -> list[Storage]:
        """The primary storage first, then the off-site ones."""
        offsite = [s for s in self.offsite_storages.all() if s.pk != self.primary_storage_id]
        return [self.primary_storage, *offsite]

    def last_good_run(self):
        return self.runs.good().first()

    @property
    def agent_queue_name(self) -> str:
        """The queue of the agent on this database's host: pgBackRest (base backups,
        verify, a PITR restore into a data directory) must run there, never on
        whichever worker takes the dumps queue. The one place that routes it."""
        return self.agent_queue or settings.AGENT_QUEUE


class BackupPolicy(models.Model):
    """Schedules and choices of one database; schedules are django-celery-beat rows."""

    class Compression(models.TextChoices):
        AUTO = "auto", "Best available (pg_dump's zstd on 16+, else a zstd stream around an uncompressed dump)"
        ZSTD = "zstd", "zstd"
        GZIP = "gzip", "gzip"
        NONE = "none", "None"

    database = models.OneToOneField(Database, on_delete=models.CASCADE, related_name="policy")
    dump_cron = models.CharField(max_length=100, default="15 3 * * *")
    drill_cron = models.CharField(max_length=100, default="0 5 1-7 * 0",
                                  help_text="Default: first Sunday of the month.")
    compression = models.CharField(max_length=8, choices=Compression.choices, default=Compression.AUTO)
    compression_level = models.PositiveSmallIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "backup policies"

    def __str__(self) -> str:
        return f"policy of {self.database}"


class BackupRunQuerySet(models.QuerySet):
    def good(self):
        """Succeeded, verified and still stored: what a restore or a drill can use."""
        return self.filter(status=Status.SUCCEEDED, verified=BackupRun.Verified.PASSED, pruned__isnull=True)

    def ever_fully_verified(self):
        """Still stored and once passed a full verification (not only checksums), even if a
        later re-check failed: the last evidence of a restorable backup, kept by retention."""
        return self.filter(status=Status.SUCCEEDED, pruned__isnull=True, verifications__status=Status.SUCCEEDED,
                           verifications__checksums_only=False).distinct()


class BackupRun(Job):
    class Verified(models.TextChoices):
        PENDING = "pending", "Not verified yet"
        PASSED = "passed", "Verified"
        FAILED = "failed", "Verification failed"

    database = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="runs")
    stamp = models.CharField(max_length=32, blank=True, help_text="UTC timestamp used in object keys.")
    server_version = models.CharField(max_length=64, blank=True)
    pg_dump_version = models.CharField(max_length=64, blank=True)
    compression = models.CharField(max_length=32, blank=True)
    bytes_dumped = models.BigIntegerField(default=0)
    bytes_uploaded = models.BigIntegerField(default=0)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    row_counts = models.JSONField(default=dict, blank=True)
    verified = models.CharField(max_length=8, choices=Verified.choices, default=Verified.PENDING, db_index=True)
    keep = models.BooleanField(default=False, help_text="Pinned: retention never deletes it.")
    pruned = models.DateTimeField(null=True, blank=True)

    objects = BackupRunQuerySet.as_manager()

    class Meta(Job.Meta):
        permissions = [("run_backup", "Can start backups")]
        indexes = [
            models.Index(fields=["database", "-created"], name="backuprun_db_created"),
            # "The last verified backup" is asked on every page: a partial index answers it directly.
            models.Index(fields=["database", "-created"], name="backuprun_good_db_created",
                         condition=models.Q(status="succeeded", verified="passed", pruned__isnull=True)),
        ]
        constraints = [
            # One run per database at a time, enforced by the database itself so
            # twenty simultaneous clicks cannot start two dumps.
            models.UniqueConstraint(
                fields=["database"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_backup_per_database",
            )
        ]

    task_name = "backups.tasks.backup"
    page_name = "run"
    body = "backups.pipeline.run_backup"
    audit_name = "backup"
    retry_transient = True
    requeue_resets = (*Job.requeue_resets, "stamp", "bytes_dumped", "bytes_uploaded")

    def on_finished(self, inline: bool = False, **context) -> None:
        """An alert when it failed; else announce it (drills verifies it: on the
        drills queue, or in this process when it ran inline)."""
        if self.status == Status.CANCELLED:
            return  # someone chose to stop it: nothing to alert about, nothing to verify
        if self.status != Status.SUCCEEDED:
            event("backup_failed", self.error, run=self.pk, database=self.database.name)
            return
        backup_succeeded.send(sender=BackupRun, run=self, inline=inline)

    def after_reap(self) -> None:
        """A killed dump leaves partial objects and open multipart uploads: remove them."""
        if self.stamp:
            for storage in self.database.storages():
                remove_partial(storage, self.database.name, self.stamp)

    @property
    def progress_percent(self) -> int:
        """Bytes dumped against the database's size: an estimate, capped below 100 while running."""
        total = (self.details or {}).get("database_size") or 0
        if not total:
            return 5 if self.status == Status.QUEUED else 10
        return max(5, min(95, int(100 * self.bytes_dumped / total)))

    def __str__(self) -> str:
        return f"backup #{self.pk} of {self.database}"


class Artifact(models.Model):
    """One file of a run on one storage."""

    run = models.ForeignKey(BackupRun, on_delete=models.CASCADE, related_name="artifacts")
    storage = models.ForeignKey(Storage, on_delete=models.PROTECT, related_name="artifacts")
    name = models.CharField(max_length=64)
    key = models.CharField(max_length=1024)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created = models.DateTimeField(default=now)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_detail = models.TextField(blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "storage", "name"]
        constraints = [
            models.UniqueConstraint(fields=["run", "storage", "name"], name="one_artifact_per_file_and_storage")
        ]

    def __str__(self) -> str:
        return f"{self.storage}:{self.key}"


class PitrSetup(models.Model):
    """Point-in-time recovery of one database with pgBackRest: repo 1 a local
    directory on the database host, repo 2 an off-site S3-compatible bucket."""

    database = models.OneToOneField(Database, on_delete=models.CASCADE, related_name="pitr")
    stanza = models.CharField(max_length=63, validators=[name_validator])
    data_directory = models.CharField(max_length=1024, blank=True)
    socket_directory = models.CharField(max_length=1024, blank=True)
    repo_path = models.CharField("local repository", max_length=1024)
    offsite_storage = models.ForeignKey(Storage, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="pitr_repos", help_text="S3-compatible repository 2.")
    verify_tls = models.BooleanField(default=True)
    cipher_passphrase = EncryptedTextField("repository encryption passphrase", blank=True)
    retention_full = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1)])
    full_cron = models.CharField(max_length=100, default="30 2 * * 0", help_text="Weekly full base backup.")
    diff_cron = models.CharField(max_length=100, default="30 2 * * 1-6", help_text="Daily differential.")
    heartbeat_seconds = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(5)],
        help_text="Opt-in: write a one-row restorable_heartbeat table this often, so PITR drills measure the RPO "
                  "exactly (needs write access to the database).")
    enabled = models.DateTimeField(null=True, blank=True)
    info = models.JSONField(default=dict, blank=True, help_text="pgbackrest info --output=json, last synced.")
    archiver = models.JSONField(default=dict, blank=True, help_text="pg_stat_archiver, last read.")
    checked = models.DateTimeField(null=True, blank=True)
    status = models.TextField(blank=True, help_text="Why archiving is not working yet, in plain words.")

    class Meta:
        verbose_name = "PITR setup"

    def __str__(self) -> str:
        return f"PITR of {self.database}"


class BaseBackup(Job):
    class Kind(models.TextChoices):
        FULL = "full", "Full"
        DIFF = "diff", "Differential"
        INCR = "incr", "Incremental"

    database = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="base_backups")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FULL)
    label = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    repo_size_bytes = models.BigIntegerField(null=True, blank=True)
    wal_start = models.CharField(max_length=32, blank=True)
    wal_stop = models.CharField(max_length=32, blank=True)
    backup_start = models.DateTimeField(null=True, blank=True)
    backup_stop = models.DateTimeField(null=True, blank=True)

    task_name = "backups.tasks.base_backup"
    page_name = "base_backup"
    body = "backups.pitr.run_base_backup"
    audit_name = "base_backup"

    class Meta(Job.Meta):
        permissions = [("run_base_backup", "Can start base backups")]

    def queue(self) -> str:
        return self.database.agent_queue_name

    def on_finished(self, **context) -> None:
        if self.status == Status.FAILED:
            event("backup_failed", f"Base backup failed: {self.error}", database=self.database.name)

    def __str__(self) -> str:
        return f"base backup #{self.pk} of {self.database}"
