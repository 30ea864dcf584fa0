"""The one notification point: every alert-worthy event goes through event().

Channels (apprise, webhooks, heartbeats) subscribe here; until they are
configured an event is a structured log line, so nothing fails silently.
"""

import logging

log = logging.getLogger("restorable.events")

EVENTS = (
    "backup_failed",
    "verification_failed",
    "drill_failed",
    "restore_started",
    "restore_finished",
)


def event(name: str, summary: str, **context) -> None:
    """Record an event; context holds ids and names, never secrets."""
    level = logging.WARNING if name.endswith("failed") else logging.INFO
    fields = " ".join(f"{k}={v}" for k, v in sorted(context.items()))
    log.log(level, "event=%s %s %s", name, fields, summary)
