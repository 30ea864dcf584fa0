"""What every sandbox backend shares: the interface (SandboxBackend makes a
RunningSandbox), the label each sandbox carries (owner process, job, kept or
not, expiry) and the one rule that decides when the reaper removes it."""

import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection

from backups.pgtools import ConnInfo, PgError
from controlpanel.jobs import ACTIVE_STATES

if TYPE_CHECKING:
    from controlpanel.jobs import Job


class SandboxError(PgError):
    pass

@runtime_checkable
class RunningSandbox(Protocol):
    """A started sandbox, whichever backend made it."""

    major: int
    port: int
    password: str
    host: str
    user: str
    expires: float  # epoch seconds, as in its label

    @property
    def name(self) -> str: ...

    def conninfo(self, dbname: str = "postgres") -> ConnInfo: ...

    def remove(self) -> None: ...

    def __enter__(self) -> "RunningSandbox": ...

    def __exit__(self, *exc: object) -> None: ...

class SandboxBackend(Protocol):
    """How drills, verifications and restores get a sandbox (local or docker)."""

    def create(self, major: int, *, password: str = "", ttl_seconds: int | None = None,
               extra_settings: dict | None = None, keep: bool = False,
               job: "Job | None" = None) -> RunningSandbox:
        """keep=True: the sandbox outlives its owner until ttl_seconds (a restore handed
        to an admin); otherwise it dies with its owner. ttl_seconds defaults to job_seconds()."""
        ...

def job_seconds() -> int:
    """How long a job may run: Celery kills it at the hard time limit, so its
    sandbox needs no longer."""
    return settings.CELERY_TASK_TIME_LIMIT

def job_ref(job: "Job | None") -> str:
    """'drills.restore:12': the job a sandbox serves, as written in its label."""
    return f"{job._meta.label_lower}:{job.pk}" if job is not None and job.pk else ""

def job_running(ref: str) -> bool | None:
    """Whether the job named by a label has not ended; None when that cannot be told
    (no job named, its row not visible, the panel's database not answering):
    the reaper then goes by the owner process alone."""
    if not ref:
        return None

    label, _, pk = ref.rpartition(":")
    try:
        status = apps.get_model(label).objects.filter(pk=int(pk)).values_list("status", flat=True).first()
    except (LookupError, ValueError):
        return None
    except DatabaseError:
        connection.close()  # the reaper's thread reconnects next time instead of reusing a broken connection
        return None
    return None if status is None else status in ACTIVE_STATES

def process_started(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live
    owner from a new process that reused its pid; None where /proc cannot say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None

def owner_running(pid: int, started: int | None) -> bool:
    if not owner_alive(pid):
        return False
    now_started = process_started(pid)
    return started is None or now_started is None or now_started == started

def owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

def new_label(major: int, *, ttl_seconds: int | None, keep: bool, job: "Job | None" = None) -> dict:
    """What a sandbox records about itself for the reaper and the sandbox list.
    Kept sandboxes record their owner too: one still being filled by its
    running restore is not removed at its expiry."""
    now = time.time()
    return {"owner_pid": os.getpid(), "owner_started": process_started(os.getpid()), "kept": keep,
            "job": job_ref(job), "created": now, "expires": now + (ttl_seconds or job_seconds()),
            "major": major, "port": 0}

def is_kept(label: dict) -> bool:
    # Labels written before "kept" existed marked a kept sandbox with owner_pid None.
    return bool(label.get("kept", label.get("owner_pid", -1) is None))

def in_use(owner_is_running: bool | None, job_is_running: bool | None) -> bool:
    """Neither the owner process nor the job has ended, and one of them is known to run.
    None means unknown: no owner recorded or not checkable from here (another
    host's container); no job recorded, or the panel's database did not answer."""
    ended = owner_is_running is False or job_is_running is False
    return not ended and bool(owner_is_running or job_is_running)

def reapable(label: dict, now: float, owner_is_running: bool | None, job_is_running: bool | None) -> bool:
    """Whether the reaper removes a sandbox (the same rule for both backends)."""
    if in_use(owner_is_running, job_is_running):
        return False  # never removed under a live job, whatever its expiry
    if is_kept(label) or owner_is_running is None:
        return label.get("expires", 0) < now
    return True  # its owner died, or its job ended without removing it

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

@dataclass
class SandboxInfo:
    """One sandbox of this host, as the sandbox list and `manage.py up` show it."""

    name: str
    backend: str
    major: int | None
    host: str
    port: int
    created: datetime | None
    expires: datetime | None
    kept: bool
    job: str  # 'drills.restore:12', or ""
    in_use: bool

    @property
    def job_kind(self) -> str:
        return self.job.partition(":")[0].rpartition(".")[2]

    @property
    def job_pk(self) -> int | None:
        pk = self.job.rpartition(":")[2]
        return int(pk) if pk.isdigit() else None

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires < datetime.now(UTC)

def _when(value: object) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, (int, float)) and value else None

def sandbox_info(name: str, backend: str, label: dict, host: str, busy: bool) -> SandboxInfo:
    return SandboxInfo(name=name, backend=backend, major=label.get("major"), host=host, port=label.get("port") or 0,
                       created=_when(label.get("created")), expires=_when(label.get("expires")),
                       kept=is_kept(label), job=label.get("job") or "", in_use=busy)
