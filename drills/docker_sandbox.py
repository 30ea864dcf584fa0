"""Sandboxes in Docker containers (RESTORABLE_SANDBOX_BACKEND=docker).

The image is pinned to the source's major version (postgres:<major> by
default); containers carry labels so the reaper can find leftovers.
"""

import os
import secrets
import socket
import time
from dataclasses import dataclass

from django.conf import settings

from backups.pgtools import ConnInfo, ConnectionProblem, connect
from drills.sandbox import SandboxError, owner_alive

LABEL = "restorable.sandbox"


def client():
    try:
        import docker

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

    def conninfo(self, dbname: str = "postgres") -> ConnInfo:
        return ConnInfo(self.host, self.port, dbname, self.user, self.password, "disable")

    def remove(self) -> None:
        try:
            client().containers.get(self.container_id).remove(force=True)
        except Exception:
            pass  # already gone; the reaper catches the rest

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class DockerSandboxes:
    def create(self, major: int, *, password: str = "", ttl_seconds: int = 6 * 3600,
               extra_settings: dict | None = None) -> DockerSandbox:
        docker_client = client()
        image = settings.SANDBOX_DOCKER_IMAGE.format(major=major)
        password = password or secrets.token_urlsafe(16)
        args = []
        for key, value in {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
                           "wal_level": "minimal", "max_wal_senders": "0", "autovacuum": "off",
                           **(extra_settings or {})}.items():
            args += ["-c", f"{key}={value}"]
        try:
            container = docker_client.containers.run(
                image, command=["postgres", *args], detach=True, auto_remove=False,
                environment={"POSTGRES_PASSWORD": password},
                ports={"5432/tcp": ("127.0.0.1", None)},
                labels={LABEL: "1", "restorable.owner": f"{socket.gethostname()}:{os.getpid()}",
                        "restorable.expires": str(int(time.time() + ttl_seconds))},
            )
        except Exception as exc:
            raise SandboxError(f"Cannot start a {image} sandbox container: {exc}") from None
        container.reload()
        port = int(container.ports["5432/tcp"][0]["HostPort"])
        sandbox = DockerSandbox(major, container.id, port, password)
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
    """Remove sandbox containers of this host whose owner died or whose time is up."""
    now = now or time.time()
    removed = 0
    host = socket.gethostname()
    for container in client().containers.list(all=True, filters={"label": LABEL}):
        owner = container.labels.get("restorable.owner", "")
        owner_host, _, pid = owner.partition(":")
        expired = float(container.labels.get("restorable.expires", 0)) < now
        dead = owner_host == host and pid.isdigit() and not owner_alive(int(pid))
        if expired or dead:
            container.remove(force=True)
            removed += 1
    return removed

