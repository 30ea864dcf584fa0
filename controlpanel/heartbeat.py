"""An outside heartbeat (a dead man's switch such as a healthchecks.io check).

The panel pings RESTORABLE_HEARTBEAT_URL after each verified backup, and from
beat only while every database has a verified backup within its RPO budget:
when backups stop, the pings stop, and the outside service raises the alarm
even if the panel, its worker or its machine is dead.
"""

import logging

import httpx
from django.conf import settings

log = logging.getLogger("restorable.heartbeat")


def ping(reason: str) -> bool:
    url = settings.HEARTBEAT_URL
    if not url:
        return False
    try:
        response = httpx.post(url, content=reason.encode(), timeout=10)
        response.raise_for_status()
        return True
    except httpx.HTTPError as exc:
        log.warning("heartbeat ping failed: %s", type(exc).__name__)  # the URL may hold a token: not logged
        return False
