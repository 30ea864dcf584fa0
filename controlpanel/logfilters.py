"""Log what changed, not that nothing did.

Beat sends the panel's housekeeping tasks every few seconds, and Celery logs
each one three times at INFO (sent, received, succeeded): 300 lines in 17
minutes of an idle panel, which bury the lines that matter. Those tasks log
for themselves, at WARNING, when they do something (a job reaped, a sandbox
removed), so their routine INFO lines are dropped here. Failures still show:
Celery logs them at ERROR.
"""

import logging

# The periodic tasks of controlpanel/system_schedules.py that run more often than hourly.
QUIET_TASKS = (
    "controlpanel.tasks.reap_dead_jobs",
    "drills.tasks.reap_sandboxes",
    "drills.tasks.heartbeat",
    "drills.tasks.check_staleness",
    "backups.tasks.check_wal",
)
CELERY_ROUTINE = ("celery.beat", "celery.app.trace", "celery.worker.strategy")


class QuietHousekeeping(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith(CELERY_ROUTINE):
            return True
        message = record.getMessage()
        return not any(task in message for task in QUIET_TASKS)
