"""Sandboxes in Docker containers (RESTORABLE_SANDBOX_BACKEND=docker).

The image is pinned to the source's major version (postgres:<major> by
default). Containers carry the same label as a local sandbox's directory,
as Docker labels, so one reaper rule (drills.sandboxes.base.reapable) decides for both.
"""

import json
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from django.conf import settings

from backups.pgtools import ConnectionProblem, ConnInfo, connect
from drills.sandboxes.base import (
    SandboxError,
    SandboxInfo,
    in_use,
    job_running,
    new_label,
    owner_running,
    reapable,
    sandbox_info,
)

if TYPE_CHECKING:
    from controlpanel.jobs import Job

LABEL = "restorable.sandbox"  # its value is the label, as JSON


def client() -> Any:  # a docker.DockerClient; the SDK has no type hints
    try:
        import docker  # noqa: PLC0415  here: the SDK (and requests) load only where the docker backend is used

        docker_client = docker.from_env(timeout=30)
        docker_client.ping()
        return docker_client
    except Exception as exc:  # the SDK raises several kinds for "no daemon"
        raise SandboxError(
            f"The Docker sandbox backend cannot reach a Docker engine ({type(exc).__name__}): start Docker, "
            "set DOCKER_HOST, or use RESTORABLE_SANDBOX_BACKEND=local."
        ) from None


@dataclass
class DockerSandbox:
    major: int
    container_id: str
    port: int
    password: str
    host: str = "127.0.0.1"
    user: str = "postgres"
    expires: float = 0.0

    @property
    def name(self) -> str:
        return self.container_id[:12]

    def conninfo(self, dbname: str = "postgres") -> ConnInfo:
        return ConnInfo(self.host, self.port, dbname, self.user, self.password, "disable")

    def remove(self) -> None:
        try:
            client().containers.get(self.container_id).remove(force=True)
        except Exception:
            pass  # already gone; the reaper catches the rest

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def container_labels(label: dict) -> dict:
    """The Docker labels of a sandbox container: the sandbox label plus the host its owner runs on."""
    return {LABEL: json.dumps({**label, "host": socket.gethostname()})}


def read_container_label(labels: dict) -> dict:
    try:
        label = json.loads(labels.get(LABEL) or "{}")
    except ValueError:
        label = {}
    return label if isinstance(label, dict) else {}


def owner_state(label: dict) -> bool | None:
    """Whether the container's owner runs; None when it runs on another host (or none is recorded)."""
    owner = label.get("owner_pid")
    if label.get("host") != socket.gethostname() or not isinstance(owner, int):
        return None
    return owner_running(owner, label.get("owner_started"))


def container_reapable(labels: dict, now: float) -> bool:
    """The reaper's decision for one container, from its Docker labels."""
    label = read_container_label(labels)
    if not label:
        return True  # carries our marker but no readable label: nobody can claim it
    return reapable(label, now, owner_state(label), job_running(label.get("job", "")))


class DockerSandboxes:
    def create(self, major: int, *, password: str = "", ttl_seconds: int | None = None,
               extra_settings: dict | None = None, keep: bool = False,
               job: "Job | None" = None) -> DockerSandbox:
        """keep=True: the sandbox outlives its owner until ttl_seconds (a restore handed
        to an admin); otherwise it dies with its owner. ttl_seconds defaults to job_seconds()."""
        docker_client = client()
        image = settings.SANDBOX_DOCKER_IMAGE.format(major=major)
        password = password or secrets.token_urlsafe(16)
        label = new_label(major, ttl_seconds=ttl_seconds, keep=keep, job=job)
        args = []
        for key, value in {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
                           "wal_level": "minimal", "max_wal_senders": "0", "autovacuum": "off",
                           **(extra_settings or {})}.items():
            args += ["-c", f"{key}={value}"]
        try:
            container = docker_client.containers.run(
                image, command=["postgres", *args], detach=True, auto_remove=False,
                environment={"POSTGRES_PASSWORD": password},
                ports={"5432/tcp": ("127.0.0.1", None)}, labels=container_labels(label),
            )
        except Exception as exc:
            raise SandboxError(f"Cannot start a {image} sandbox container: {exc}") from None
        container.reload()
        port = int(container.ports["5432/tcp"][0]["HostPort"])
        sandbox = DockerSandbox(major, container.id, port, password, expires=label["expires"])
        self._wait_ready(sandbox)
        return sandbox

    def _wait_ready(self, sandbox: DockerSandbox, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                connect(sandbox.conninfo()).close()
                return
            except ConnectionProblem:
                if time.monotonic() > deadline:
                    sandbox.remove()
                    raise SandboxError(f"The PostgreSQL {sandbox.major} container did not accept connections") from None
                time.sleep(0.5)


def reap_containers(now: float | None = None) -> int:
    """Remove the sandbox containers that container_reapable() gives up."""
    now = now or time.time()
    removed = 0
    for container in client().containers.list(all=True, filters={"label": LABEL}):
        if container_reapable(container.labels, now):
            container.remove(force=True)
            removed += 1
    return removed


def list_containers() -> list[SandboxInfo]:
    """The engine's sandbox containers, for the sandbox list."""
    found = []
    for container in client().containers.list(all=True, filters={"label": LABEL}):
        label = read_container_label(container.labels)
        bindings = (container.ports or {}).get("5432/tcp") or [{}]
        label["port"] = int(bindings[0].get("HostPort") or 0)
        busy = in_use(owner_state(label), job_running(label.get("job", "")))
        found.append(sandbox_info(container.id[:12], "docker", label, "127.0.0.1", busy))
    return found
