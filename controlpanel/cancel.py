"""Cancelling a running job: its worker's cancel switch (set by the heartbeat
thread when the panel or the CLI asks), and running tools so that a cancel
stops every process they start.

A worker process runs one job at a time: `current_token()` marks the job this
process runs now, and every checkpoint (`check_cancelled`, a progress beat, a
tool ending) raises JobCancelled once its switch is set.
"""

import logging
import os
import signal
import subprocess
import threading
from contextlib import contextmanager

log = logging.getLogger("restorable.jobs")


class JobCancelled(Exception):
    """The job was cancelled from the panel or the CLI."""

    def __str__(self) -> str:
        return "Cancelled before it finished."


# The job this worker process runs now (a worker process runs one task at a time).
_current: "CancelToken | None" = None
CANCEL_POLL = 2.0  # seconds between the heartbeat thread's looks at cancel_requested


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


@contextmanager
def current_token():
    """Mark a new cancel switch as the one of the job this process runs now."""
    global _current
    token = _current = CancelToken()
    try:
        yield token
    finally:
        _current = None


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
