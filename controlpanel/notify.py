"""The one notification point: every alert-worthy event goes through event().

Each event is a structured log line (run id, database, outcome) and is sent
through apprise to the channels that subscribed to it. Messages carry ids,
names and the error text the jobs already wrote for operators, never a
password, key or connection string; channel URLs are secrets and are never
logged.
"""

import logging
from urllib.parse import parse_qsl, unquote, urlsplit

from django.conf import settings
from django.db import IntegrityError
from django.urls import reverse

from controlpanel.models import AlertState, NotificationChannel

log = logging.getLogger("restorable.events")

# event name -> the channel subscription it belongs to
SUBSCRIPTION = {
    "backup_failed": "backup_failed",
    "verification_failed": "verification_failed",
    "drill_failed": "drill_failed",
    "drill_over_budget": "drill_failed",
    "stale": "stale",
    "wal": "wal",
    "restore_started": "restore",
    "restore_finished": "restore",
    "digest": "digest",
    "test": "test",
}
# The most specific page first: a verification's alert links to the verification.
LINKS = {"verification": "verification-detail", "drill": "drill-detail", "restore": "restore-detail",
         "run": "run-detail"}


def link(context: dict) -> str:
    for key, name in LINKS.items():
        if context.get(key):
            return settings.BASE_URL.rstrip("/") + reverse(name, args=[context[key]])
    return settings.BASE_URL


def event(name: str, summary: str, once_key: str | None = None, **context) -> int:
    """Log an event and send it to the subscribed channels; returns how many got it.

    once_key: a condition that lasts (a stale database) alerts once per key.
    """
    level = logging.WARNING if name not in ("restore_started", "restore_finished", "digest", "test") else logging.INFO
    fields = " ".join(f"{k}={v}" for k, v in sorted(context.items()))
    log.log(level, "event=%s %s %s", name, fields, summary)
    if once_key and not _first_time(once_key):
        return 0
    return send(name, summary, **context)


def _first_time(key: str) -> bool:
    try:
        AlertState.objects.create(key=key[:255])
        return True
    except IntegrityError:
        return False


def send(name: str, summary: str, channels=None, **context) -> int:
    subscription = SUBSCRIPTION.get(name, name)
    if channels is None:
        channels = [c for c in NotificationChannel.objects.filter(enabled=True) if c.wants(subscription)]
    if not channels:
        return 0
    title = f"Restorable: {name.replace('_', ' ')}" + (f" ({context['database']})" if context.get("database") else "")
    body = f"{summary}\n{link(context)}"
    return sum(1 for channel in channels if deliver(channel, title, body) is None)


def _apprise():
    """The apprise module. Imported here, not at the top: it loads about 17 MB of
    service plugins, and every worker imports this module (the dumps worker has a
    150 MB budget); only a process that checks or sends a message pays for it."""
    import apprise  # noqa: PLC0415

    return apprise


def understands(url: str) -> bool:
    """Whether apprise knows what to do with URL (a channel's, never logged)."""
    return bool(_apprise().Apprise().add(url))


def send_test(channel) -> str | None:
    """Send the test message through one channel: None when it was accepted, else why not (no secret in it)."""
    return deliver(channel, "Restorable: test", f"A test alert from Restorable: this channel works.\n{link({})}")


def deliver(channel, title: str, body: str) -> str | None:
    """Send through one channel; None when the service accepted it, else the reason in plain words."""
    apprise = _apprise()
    sender = apprise.Apprise()
    if not sender.add(str(channel.url)):
        log.warning("notification channel %s has an URL apprise does not understand", channel.name)
        return "the URL is not one apprise understands (check its scheme and parts)"
    with apprise.LogCapture(level=apprise.logging.WARNING) as captured:
        ok = bool(sender.notify(title=title, body=body))
    if ok:
        return None
    reason = redact(captured.getvalue(), str(channel.url)) or "the service refused it without saying why"
    log.warning("notification channel %s did not accept the alert: %s", channel.name, reason)
    return reason


def redact(log_text: str, url: str) -> str:
    """apprise's warnings, one line, with every part of the channel's URL (a secret) blanked out."""
    lines = [line.split(" - ", 2)[-1].strip() for line in log_text.splitlines() if line.strip()]
    text = " ".join(dict.fromkeys(lines))  # apprise repeats itself on retries
    parts = urlsplit(url)
    secrets = {url, parts.netloc, parts.path, parts.query, parts.username or "", parts.password or ""}
    secrets |= {unquote(p) for p in parts.path.split("/")} | {v for _, v in parse_qsl(parts.query)}
    secrets |= set(parts.netloc.replace("@", ":").split(":"))
    # The longest first, so a token inside a longer part cannot survive its replacement.
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text[:300]
