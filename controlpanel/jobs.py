"""Running a Job: claim it, keep its heartbeat, finish it on every path."""

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from controlpanel.models import AuditEvent, Job, Status

log = logging.getLogger("restorable.jobs")


class JobError(Exception):
    """A failure whose message is meant for the operator as it is."""


class JobCancelled(Exception):
    """The job was cancelled from the panel or the CLI."""

    def __str__(self) -> str:
        return "Cancelled before it finished."


class CancelToken:
    """A running job's cancel switch: set by its heartbeat thread when the
    panel asks; stops the job's processes and its next checkpoint."""

    def __init__(self):
        self.event = threading.Event()
        self.hooks: list = []
        self.lock = threading.Lock()

    def on_cancel(self, hook):
        with self.lock:
            if self.event.is_set():
                hook()
            self.hooks.append(hook)
        return lambda: self._forget(hook)

    def _forget(self, hook) -> None:
        with self.lock:
            if hook in self.hooks:
                self.hooks.remove(hook)

    def cancel(self) -> None:
        with self.lock:
            if self.event.is_set():
                return
            self.event.set()
            hooks = list(self.hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("a cancel hook failed")


# The job this worker process runs now (a worker process runs one task at a time).
_current: CancelToken | None = None
CANCEL_POLL = 2.0  # seconds between the heartbeat thread's looks at cancel_requested


CANCEL_MESSAGES = {
    "cancelled": "{job} was cancelled before it started.",
    "requested": "Stopping {job}: it cleans up, then ends as cancelled.",
    "ended": "{job} had already ended ({status}).",
}


def cancel_job(job: Job, request=None, via: str = "") -> tuple[str, str]:
    """Ask JOB to cancel (Job.request_cancel), audit the request, and say what
    happened: (outcome, a sentence for the operator). Panel and CLI alike."""
    outcome = job.request_cancel()
    if outcome != "ended":
        AuditEvent.record(f"{job._meta.model_name}.cancel", f"Cancel of {job} requested{via}", obj=job,
                          request=request, outcome=outcome)
    name = str(job)
    return outcome, CANCEL_MESSAGES[outcome].format(job=name[:1].upper() + name[1:],
                                                    status=job.get_status_display().lower())


def check_cancelled() -> None:
    if _current is not None and _current.event.is_set():
        raise JobCancelled()


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process's group: a tool started in a session of its own
    (runuser and what it runs, pg_restore's parallel workers)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to the process's group, then SIGKILL after GRACE seconds."""
    if proc.poll() is not None:
        return
    kill_group(proc, signal.SIGTERM)
    # The whole group, even when its leader is gone: a child may have outlived it.
    timer = threading.Timer(grace, kill_group, args=(proc,))
    timer.daemon = True
    timer.start()


@contextmanager
def on_cancel(hook):
    """Call HOOK (from the heartbeat thread) if the current job is cancelled meanwhile."""
    if _current is None:
        yield
        return
    forget = _current.on_cancel(hook)
    try:
        yield
    finally:
        forget()


def cancellable(proc: subprocess.Popen):
    """Stop PROC when the current job is cancelled."""
    return on_cancel(lambda: stop_process(proc))


def run_tool(argv, *, timeout=None, check: bool = False, capture_output: bool = False, text: bool = False,
             **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run that a cancel of the current job stops."""
    if capture_output:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # A session of its own, so that a cancel reaches every process the tool starts.
    with subprocess.Popen(argv, text=text, start_new_session=True, **kwargs) as proc, cancellable(proc):
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:  # a timeout, or the worker shutting down: nothing of the tool may outlive it
            kill_group(proc)
            proc.communicate()
            raise
    check_cancelled()
    result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


@contextmanager
def heartbeat(job: Job, every: float | None = None, token: CancelToken | None = None):
    """Touch job.heartbeat from a thread while the body runs, and watch for a
    cancel request (every CANCEL_POLL seconds at most).

    A thread, because the body may block for a long time in one call (pg_dump
    waiting on a lock, a slow upload) and the reaper must not take that for a
    dead worker.
    """
    every = every or settings.HEARTBEAT_SECONDS
    poll = min(every, CANCEL_POLL)
    stop = threading.Event()

    def beat():
        failing = False
        last = time.monotonic()
        try:
            while not stop.wait(poll):
                try:
                    if token is not None and not token.event.is_set() and type(job).objects.filter(
                            pk=job.pk, cancel_requested__isnull=False).exists():
                        log.info("%s: cancel requested; stopping it", job)
                        token.cancel()
                    if time.monotonic() - last >= every:
                        type(job).objects.filter(pk=job.pk, status=Status.RUNNING).update(heartbeat=timezone.now())
                        last = time.monotonic()
                except DatabaseError as exc:
                    # The panel's database is away (restart, failover): keep
                    # trying, or the reaper would take a live job for a dead one.
                    connection.close()
                    if not failing:
                        log.warning("heartbeat of %s failed (%s); retrying", job, type(exc).__name__)
                    failing = True
                else:
                    if failing:
                        log.info("heartbeat of %s recorded again", job)
                    failing = False
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"Stopped: the task time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT} s) was reached."
    if isinstance(exc, KeyboardInterrupt):
        return "Stopped: the worker was shut down while the job ran."
    if isinstance(exc, JobError) or type(exc).__module__.split(".")[0] in ("backups", "drills", "controlpanel"):
        return str(exc)
    if isinstance(exc, DatabaseError):  # Django's errors: the panel's own database, not the one backed up
        return (f"The panel's own database failed while the job ran ({type(exc).__name__}); "
                "the worker log has the details.")
    # Unknown errors: the type only, the details go to the worker log, since a
    # library's message may quote connection settings.
    return f"Unexpected error ({type(exc).__name__}); the worker log has the details."


def cancel_was_requested(job: Job) -> bool:
    """Asked before the heartbeat thread looked (it looks every CANCEL_POLL seconds)."""
    try:
        return type(job).objects.filter(pk=job.pk, cancel_requested__isnull=False).exists()
    except DatabaseError:
        return False


def run_job(job: Job, work) -> Job:
    """Claim JOB, run work(job) under a heartbeat, and always finish the job."""
    if not job.claim(worker=socket.gethostname()):
        log.info("%s was already claimed or ended (%s); skipping", job, job.status)
        return job
    log.info("%s started", job)
    global _current
    token = _current = CancelToken()
    try:
        with heartbeat(job, token=token):
            fields = work(job) or {}
    except BaseException as exc:
        if token.event.is_set() or cancel_was_requested(job):  # whatever broke, a cancel was asked for
            log.info("%s cancelled", job)
            job.finish(Status.CANCELLED, str(JobCancelled()))
            return job
        log.exception("%s failed", job)
        # Transient failures (an S3 endpoint that went away) may be retried by the task.
        job.finish(Status.FAILED, describe_failure(exc),
                   details={**job.details, "transient": bool(getattr(exc, "transient", False))})
        if not isinstance(exc, Exception):
            raise
    else:
        job.finish(Status.SUCCEEDED, **fields)
        log.info("%s succeeded", job)
    finally:
        _current = None
    return job
