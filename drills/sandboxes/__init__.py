"""Throwaway PostgreSQL servers (sandboxes) of an exact major version.

`local` (drills/sandboxes/local.py) runs initdb + pg_ctl in a temporary
directory; `docker` (drills/sandboxes/docker.py) runs a container. Both
implement SandboxBackend (drills/sandboxes/base.py).

Every sandbox carries a label: its owner process, the job it serves, whether
it is kept (a restore handed to an admin) and its expiry. The reaper never
removes a sandbox whose owner and job still run; otherwise it removes it when
its owner died, or, for a kept one, when it expires. A job's sandbox lives at
most as long as the job may (the task time limit). Binaries must be of the
source's major version: a dump restored into another major proves nothing
about the day it is needed.
"""

import time
from datetime import UTC, datetime

from django.conf import settings

from drills.sandboxes import docker, local
from drills.sandboxes.base import (
    RunningSandbox,
    SandboxBackend,
    SandboxError,
    SandboxInfo,
    free_port,
    job_seconds,
    new_label,
    process_started,
    reapable,
)
from drills.sandboxes.docker import DockerSandboxes
from drills.sandboxes.local import (
    BULK_LOAD_SETTINGS,
    LABEL,
    LocalSandboxes,
    Sandbox,
    bin_dir,
    cluster_user,
    read_label,
    sandbox_root,
    write_label,
)

__all__ = ["BULK_LOAD_SETTINGS", "LABEL", "DockerSandboxes", "LocalSandboxes", "RunningSandbox", "Sandbox",
           "SandboxBackend", "SandboxError", "SandboxInfo", "backend", "bin_dir", "cluster_user", "free_port",
           "job_seconds", "list_sandboxes", "new_label", "process_started", "read_label", "reap_sandboxes",
           "reapable", "sandbox_root", "write_label"]


def docker_backend() -> bool:
    return settings.SANDBOX_BACKEND == "docker"


def backend() -> SandboxBackend:
    """The configured sandbox backend."""
    return DockerSandboxes() if docker_backend() else LocalSandboxes()


def reap_sandboxes(now: float | None = None) -> int:
    """Remove this host's sandboxes that the reaper's rule gives up: owner gone, job ended, or a kept one expired."""
    now = now or time.time()
    removed = docker.reap_containers(now) if docker_backend() else 0
    return removed + local.reap_directories(now)


def list_sandboxes() -> list[SandboxInfo]:
    """This host's sandboxes (and the Docker engine's, with that backend), soonest expiry first."""
    found = local.list_directories() + (docker.list_containers() if docker_backend() else [])
    return sorted(found, key=lambda s: (s.expires or datetime.max.replace(tzinfo=UTC), s.name))
