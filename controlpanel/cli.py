"""Shared by the job commands: follow a job to its end, print it as JSON."""

import time

from controlpanel.models import ACTIVE_STATES


def follow(job, poll: float = 1.0, on_progress=None):
    """Poll the job row until it leaves the active states."""
    while True:
        job.refresh_from_db()
        if job.status not in ACTIVE_STATES:
            return job
        if on_progress:
            on_progress(job)
        time.sleep(poll)


def iso(value):
    return value.isoformat() if value else None


class TextArgsMixin:
    """Refuse argv that is not valid UTF-8 (bytes from another locale) with a
    clear message, before any lookup or save could trip over it."""

    def execute(self, *args, **options):
        from django.core.management.base import CommandError

        for name, value in [("argument", a) for a in args] + list(options.items()):
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, str):
                    try:
                        item.encode("utf-8")
                    except UnicodeEncodeError:
                        raise CommandError(f"{name.replace('_', '-')}: {item.encode('utf-8', 'replace')!r} "
                                           "is not valid UTF-8 text.") from None
        return super().execute(*args, **options)


def env_text(variable: str) -> str | None:
    """An environment variable's value, refused when it is not valid UTF-8."""
    import os

    from django.core.management.base import CommandError

    value = os.environ.get(variable)
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise CommandError(f"Environment variable {variable} does not hold valid UTF-8 text.") from None
    return value


def parse_target_time(text: str):
    """An ISO 8601 moment with a time zone, or CommandError (impossible dates included)."""
    from django.core.management.base import CommandError
    from django.utils.dateparse import parse_datetime

    try:
        moment = parse_datetime(text)
    except ValueError:  # well formed but impossible: 2026-02-30, month 13
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CommandError("--target-time must be ISO 8601 with a time zone (e.g. 2026-11-24T14:32:01Z).")
    return moment
