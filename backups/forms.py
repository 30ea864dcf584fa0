"""Forms for storages and databases; every bad value becomes a form error."""

import re
import zoneinfo
from pathlib import PurePosixPath

from celery.schedules import ParseException, crontab_parser
from django import forms
from django.core.exceptions import ValidationError

from backups.models import BackupPolicy, Database, Storage
from backups.pgtools import ConnInfo, PgError, check_server, tool_for
from backups.schedules import next_runs
from controlpanel.forms import KeepSecretsModelForm

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def validate_bucket(name: str) -> None:
    if not BUCKET_RE.match(name) or ".." in name or re.match(r"^\d+\.\d+\.\d+\.\d+$", name):
        raise ValidationError(
            "A bucket name is 3-63 characters: lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit."
        )


def validate_prefix(prefix: str) -> None:
    if any(part == ".." for part in prefix.split("/")) or "\\" in prefix or prefix.startswith("/"):
        raise ValidationError("A prefix is a relative path without '..' or backslashes, e.g. backups/prod.")
    if any(ord(c) < 32 for c in prefix):
        raise ValidationError("A prefix cannot contain control characters.")


def validate_local_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValidationError("Give an absolute directory path, e.g. /var/backups/restorable.")
    if ".." in PurePosixPath(path).parts or "\x00" in path:
        raise ValidationError("The path cannot contain '..'.")


def validate_cron(expression: str) -> None:
    fields = expression.split()
    if len(fields) != 5:
        raise ValidationError("A cron expression has 5 fields: minute hour day-of-month month day-of-week.")
    limits = [(60, 0), (24, 0), (31, 1), (12, 1), (7, 0)]
    for value, (size, start) in zip(fields, limits, strict=True):  # both have 5: checked above
        try:
            crontab_parser(size, start).parse(value)
        except (ParseException, ValueError, IndexError) as exc:
            raise ValidationError(f"Invalid cron field {value!r}: {exc}") from None
    # Each field can be fine while the whole never fires (day 31 of February):
    # beat and the database page would then fail on every computation of the next run.
    try:
        next_runs(expression, "UTC", count=1)
    except ValueError:
        raise ValidationError(f"{expression!r} never fires: that day does not occur in that month.") from None


def validate_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tzdata directory, a name too long
        raise ValidationError(f"Unknown time zone {name!r}; use a name like Europe/Berlin or UTC.") from None


class StorageForm(KeepSecretsModelForm):
    endpoint_url = forms.URLField(
        required=False, assume_scheme="https", label="Endpoint URL",
        help_text="Empty for AWS; e.g. https://<account>.r2.cloudflarestorage.com",
    )
    save_without_testing = forms.BooleanField(
        required=False, label="Save without testing",
        help_text="Saving first writes, reads and deletes a test object and applies the bucket lifecycle rule; "
                  "tick this to save a storage that cannot be reached yet (the Test button does both later).",
    )

    class Meta:
        model = Storage
        fields = [
            "name", "kind", "path", "endpoint_url", "region", "bucket", "prefix", "path_style",
            "access_key_id", "secret_access_key", "server_side_encryption", "checksum_when_required",
            "multipart_chunk_mb", "retention_days", "lifecycle_days",
        ]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind == Storage.Kind.LOCAL:
            path = cleaned.get("path") or ""
            try:
                validate_local_path(path)
            except ValidationError as exc:
                self.add_error("path", exc)
        elif kind == Storage.Kind.S3:
            try:
                validate_bucket(cleaned.get("bucket") or "")
            except ValidationError as exc:
                self.add_error("bucket", exc)
        try:
            validate_prefix(cleaned.get("prefix") or "")
        except ValidationError as exc:
            self.add_error("prefix", exc)
        return cleaned


class DatabaseForm(KeepSecretsModelForm):
    tables_that_matter = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Comma- or newline-separated, e.g. public.orders, public.users",
    )
    test_connection = forms.BooleanField(
        required=False, initial=True, help_text="Connect now, detect the version and check read access."
    )

    class Meta:
        model = Database
        fields = [
            "name", "host", "port", "dbname", "user", "password", "sslmode", "timezone",
            "primary_storage", "offsite_storages", "include_globals", "rto_budget_seconds",
            "rpo_budget_seconds", "tables_that_matter", "smoke_sql", "agent_queue",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["tables_that_matter"] = ", ".join(self.instance.tables_that_matter or [])

    def clean_tables_that_matter(self):
        raw = self.cleaned_data.get("tables_that_matter") or ""
        names = [n.strip() for n in re.split(r"[,\n]", raw) if n.strip()]
        for name in names:
            if not re.match(r"^[\w$]+(\.[\w$]+)?$", name):
                raise ValidationError(f"{name!r} is not a table name (schema.table).")
        return names

    def clean_timezone(self):
        value = self.cleaned_data["timezone"]
        validate_timezone(value)
        return value

    def clean_host(self):
        host = self.cleaned_data["host"].strip()
        if not re.match(r"^[\w.:/%-]+$", host) or host.startswith("-"):
            raise ValidationError("Give a host name, an IP address or a socket directory.")
        return host

    def clean(self):
        cleaned = super().clean()
        if self.errors or not cleaned.get("test_connection"):
            return cleaned
        info = ConnInfo(cleaned["host"], cleaned["port"], cleaned["dbname"], cleaned["user"],
                        cleaned.get("password") or "", cleaned["sslmode"])
        try:
            server = check_server(info)
            tool_for("pg_dump", server.major)
        except PgError as exc:
            raise ValidationError(str(exc)) from None
        if server.unreadable_tables:
            shown = ", ".join(server.unreadable_tables[:5])
            more = f" and {len(server.unreadable_tables) - 5} more" if len(server.unreadable_tables) > 5 else ""
            raise ValidationError(
                f"User {info.user!r} cannot read {shown}{more}: grant SELECT (see the least-privilege guide)."
            )
        self.instance.server_version = server.version_num
        return cleaned


class PolicyForm(forms.ModelForm):
    """A database's schedules and compression; its beat rows follow on save (backups.signals)."""

    LEVELS = {"zstd": (1, 19), "auto": (1, 19), "gzip": (1, 9)}

    class Meta:
        model = BackupPolicy
        fields = ["dump_cron", "drill_cron", "compression", "compression_level", "enabled"]
        labels = {"dump_cron": "Backup schedule", "drill_cron": "Restore drill schedule",
                  "enabled": "Schedules enabled"}
        help_texts = {
            "dump_cron": "cron: minute hour day-of-month month day-of-week, in the database's time zone.",
            "compression_level": "Empty: the measured default (zstd 1 as a stream, zstd 3 in pg_dump 16+, gzip 6).",
            "enabled": "Off pauses both schedules; manual backups and drills still work.",
        }

    def _cron(self, field: str) -> str:
        expression = " ".join(self.cleaned_data[field].split())
        validate_cron(expression)
        return expression

    def clean_dump_cron(self):
        return self._cron("dump_cron")

    def clean_drill_cron(self):
        return self._cron("drill_cron")

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # Django's ModelForm.clean() returns cleaned_data
        method, level = cleaned.get("compression"), cleaned.get("compression_level")
        if level is not None:
            if method == BackupPolicy.Compression.NONE:
                self.add_error("compression_level", "No compression has no level: leave it empty.")
            elif method in self.LEVELS and not self.LEVELS[method][0] <= level <= self.LEVELS[method][1]:
                low, high = self.LEVELS[method]
                self.add_error("compression_level", f"{method} levels go from {low} to {high}.")
        return cleaned
