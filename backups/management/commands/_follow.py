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
