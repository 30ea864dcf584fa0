"""What every command shares: text arguments refused when not UTF-8, and the
one shape of the commands that start a job (JobCommand): queued by default,
followed to its end with --wait, run in this process with --inline, printed
as JSON with --json, exit status 1 when a followed job did not succeed."""

import json
import os
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.dateparse import parse_datetime

from controlpanel.jobs import ACTIVE_STATES, Job, Status


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


class TextArgsMixin(BaseCommand):
    """Refuse argv that is not valid UTF-8 (bytes from another locale) with a
    clear message, before any lookup or save could trip over it."""

    def execute(self, *args, **options):
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
    value = os.environ.get(variable)
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise CommandError(f"Environment variable {variable} does not hold valid UTF-8 text.") from None
    return value


def parse_target_time(text: str):
    """An ISO 8601 moment with a time zone, or CommandError (impossible dates included)."""
    try:
        moment = parse_datetime(text)
    except ValueError:  # well formed but impossible: 2026-02-30, month 13
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CommandError("--target-time must be ISO 8601 with a time zone (e.g. 2026-11-24T14:32:01Z).")
    return moment


def dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)


class JobCommand(TextArgsMixin, BaseCommand):
    """A command that starts one job. Subclasses say how to make it (create: the
    row only, run here with --inline; start: the row, audited and enqueued) and
    how to show it (as_dict, describe); the modes, JSON and exit status are here."""

    # Errors whose message is the whole answer (e.g. a backup already running).
    refusals: tuple[type[Exception], ...] = ()

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--inline", action="store_true", help="run in this process, no worker needed")
        mode.add_argument("--wait", action="store_true", help="queue it and follow it to the end")
        parser.add_argument("--json", action="store_true", help="print the job as JSON")

    def handle(self, *args, inline: bool, wait: bool, json: bool, **options):
        try:
            if inline:
                job = self.create(**options).execute(inline=True)
            else:
                with transaction.atomic():
                    job = self.start(**options)
                if wait:
                    job = follow(job)
        except self.refusals as exc:
            raise CommandError(str(exc)) from None
        queued = not (inline or wait)
        if json:
            self.stdout.write(dumps(self.as_dict(job)))
        elif queued:
            self.stdout.write(self.queued(job))
        else:
            self.describe(job)
        if not queued and job.status != Status.SUCCEEDED:
            raise SystemExit(1)

    def create(self, *args: Any, **options: Any) -> Job:
        raise NotImplementedError

    def start(self, *args: Any, **options: Any) -> Job:
        raise NotImplementedError

    def as_dict(self, job: Job) -> dict:
        raise NotImplementedError

    def queued(self, job: Job) -> str:
        name = str(job)
        return f"{name[:1].upper()}{name[1:]} queued."

    def describe(self, job: Job) -> None:
        """A followed or inline job, once it ended."""
        self.stdout.write(f"{job}: {job.status}")
        if job.error:
            self.stderr.write(job.error)
