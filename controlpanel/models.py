"""The audit trail, alert channels and what alerts were sent (jobs live in controlpanel/jobs.py)."""


from django.conf import settings
from django.db import models
from django.utils import timezone

from controlpanel.crypto import EncryptedTextField
from controlpanel.validators import name_validator


class AuditEvent(models.Model):
    """Who did what, when, from where, and how it ended."""

    created = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.user or 'system'} {self.action}: {self.summary}"

    @classmethod
    def record(cls, action: str, summary: str, obj=None, user=None, request=None, **details):
        if request is not None:
            user = user or (request.user if request.user.is_authenticated else None)
        return cls.objects.create(
            user=user,
            action=action,
            object_type=obj._meta.label if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            summary=summary[:500],
            details=details,
            ip=request.META.get("REMOTE_ADDR") if request is not None else None,
        )


class NotificationChannel(models.Model):
    """Where alerts go: an apprise URL (Telegram, Slack, Discord, email, JSON webhook)."""

    class Event(models.TextChoices):
        BACKUP_FAILED = "backup_failed", "Backup failed"
        VERIFICATION_FAILED = "verification_failed", "Verification failed"
        DRILL_FAILED = "drill_failed", "Drill failed or over its RTO budget"
        STALE = "stale", "No verified backup within the RPO budget"
        WAL = "wal", "WAL archiving failing or lagging"
        RESTORE = "restore", "Restore started and finished"
        DIGEST = "digest", "Daily digest of successes"

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    url = EncryptedTextField("apprise URL", help_text="e.g. tgram://BOT_TOKEN/CHAT_ID, slack://..., json://host/path")
    events = models.JSONField(default=list, blank=True, help_text="Empty: every event but the digest.")
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def wants(self, event: str) -> bool:
        if not self.enabled:
            return False
        return event in self.events if self.events else event != self.Event.DIGEST


class AlertState(models.Model):
    """Alerts already sent for a condition, so a lasting problem alerts once, not every check."""

    key = models.CharField(max_length=255, unique=True)
    sent = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key
