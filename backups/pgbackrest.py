"""Point-in-time recovery with pgBackRest: the playbook's layer two.

All pgBackRest knowledge lives here (configuration, stanza, backups, info,
restores), so another engine (wal-g, barman-cloud) can stand beside it. Every
command runs as the cluster's OS owner, on the database host (the agent
queue), with its own configuration file per stanza passed by --config, so the
archive_command in postgresql.conf names exactly the same file.
"""

import json
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings

from backups.pgtools import ConnInfo, PgError, connect, one_row
from controlpanel.cancel import run_tool

log = logging.getLogger("restorable.pitr")

PGBACKREST = "pgbackrest"


class PitrError(PgError):
    """A PITR step failed; the message says which and why."""


def owner() -> str | None:
    """pgBackRest must run as the cluster's OS owner: postgres when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PitrError("Running as root needs the cluster's 'postgres' OS user for pgBackRest.") from None
    return "postgres"


def as_owner(argv: list[str]) -> list[str]:
    user = owner()
    return ["runuser", "-u", user, "--", *argv] if user else argv


def chown_to_owner(path: Path) -> None:
    user = owner()
    if user:
        shutil.chown(path, user, user)


@dataclass
class Archiver:
    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime | None
    archive_mode: str
    archive_command: str

    @property
    def failing(self) -> bool:
        return bool(self.last_failed_time and (not self.last_archived_time or
                                               self.last_failed_time > self.last_archived_time))

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


class PgBackRest:
    """One stanza: its configuration file, repositories and commands."""

    def __init__(self, setup):
        self.setup = setup

    @property
    def database(self):
        return self.setup.database

    @property
    def root(self) -> Path:
        return Path(settings.DATA_DIR) / "pgbackrest" / self.setup.stanza

    @property
    def config_path(self) -> Path:
        return self.root / "pgbackrest.conf"

    def base_argv(self) -> list[str]:
        return [PGBACKREST, f"--config={self.config_path}", f"--stanza={self.setup.stanza}"]

    def archive_command(self) -> str:
        return f"{PGBACKREST} --config={self.config_path} --stanza={self.setup.stanza} archive-push %p"

    def postgresql_conf_lines(self) -> list[str]:
        return ["wal_level = replica", "archive_mode = on", f"archive_command = '{self.archive_command()}'",
                "archive_timeout = 60", "max_wal_senders = 3"]

    # --- configuration -------------------------------------------------

    def write_config(self) -> Path:
        """The stanza's configuration, readable only by the cluster owner (it holds repo keys)."""
        s = self.setup
        for sub in ("", "log", "lock", "spool"):
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            chown_to_owner(path)
        _allow_traverse(self.root)
        repo1 = Path(s.repo_path)
        repo1.mkdir(parents=True, exist_ok=True)
        chown_to_owner(repo1)
        _allow_traverse(repo1)
        lines = ["[global]", f"repo1-path={repo1}", f"repo1-retention-full={s.retention_full}",
                 "compress-type=zst", f"process-max={max(1, min(4, os.cpu_count() or 1))}",
                 f"log-path={self.root / 'log'}", f"lock-path={self.root / 'lock'}",
                 f"spool-path={self.root / 'spool'}", "log-level-console=warn", "log-level-file=info",
                 "start-fast=y", "archive-timeout=60"]
        if s.cipher_passphrase:
            lines += ["repo1-cipher-type=aes-256-cbc", f"repo1-cipher-pass={s.cipher_passphrase}"]
        if s.offsite_storage_id:
            lines += self.s3_repo_lines(s.offsite_storage, 2)
        lines += ["", f"[{s.stanza}]", f"pg1-path={s.data_directory}", f"pg1-port={self.database.port}",
                  f"pg1-socket-path={s.socket_directory}", f"pg1-user={self.database.user}"]
        self.config_path.write_text("\n".join(lines) + "\n")
        os.chmod(self.config_path, 0o600)
        chown_to_owner(self.config_path)
        return self.config_path

    def s3_repo_lines(self, storage, n: int) -> list[str]:
        endpoint = urlparse(storage.endpoint_url) if storage.endpoint_url else None
        lines = [f"repo{n}-type=s3", f"repo{n}-s3-bucket={storage.bucket}",
                 f"repo{n}-s3-region={storage.region or 'us-east-1'}",
                 f"repo{n}-s3-key={storage.access_key_id}", f"repo{n}-s3-key-secret={storage.secret_access_key}",
                 f"repo{n}-path=/{(storage.prefix.strip('/') + '/') if storage.prefix else ''}pgbackrest",
                 f"repo{n}-retention-full={self.setup.retention_full}",
                 f"repo{n}-s3-uri-style={'path' if storage.path_style else 'host'}"]
        if endpoint:
            lines.append(f"repo{n}-s3-endpoint={endpoint.hostname}")
            if endpoint.port:
                lines.append(f"repo{n}-storage-port={endpoint.port}")
        if not self.setup.verify_tls:
            lines.append(f"repo{n}-storage-verify-tls=n")
        if self.setup.cipher_passphrase:
            lines += [f"repo{n}-cipher-type=aes-256-cbc", f"repo{n}-cipher-pass={self.setup.cipher_passphrase}"]
        return lines

    # --- commands --------------------------------------------------------

    def run(self, *args: str, timeout: int | None = None) -> subprocess.CompletedProcess:
        argv = as_owner([*self.base_argv(), *args])
        try:
            result = run_tool(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise PitrError(
                "pgbackrest is not installed on this host (Debian/Ubuntu: apt-get install pgbackrest)."
            ) from None
        if result.returncode != 0:
            raise PitrError(f"pgbackrest {args[0]} failed: {self.explain(result)}")
        return result

    def explain(self, result: subprocess.CompletedProcess) -> str:
        text = (result.stderr.strip() or result.stdout.strip()).replace(
            str(self.setup.cipher_passphrase or "\0"), "***")
        lines = [line.split(": ", 1)[-1] for line in text.splitlines() if "ERROR" in line or "WARN" in line]
        return "; ".join(lines[-3:]) or text[-800:] or f"exit {result.returncode}"

    def stanza_create(self) -> None:
        self.run("stanza-create", timeout=300)

    def check(self) -> None:
        self.run("check", timeout=300)

    def repos(self) -> list[int]:
        return [1, 2] if self.setup.offsite_storage_id else [1]

    def backup(self, kind: str = "full") -> dict:
        """Back up into every repository: pgBackRest's backup writes to one repo per run
        (archive-push already feeds them all)."""
        for repo in self.repos():
            self.run(f"--repo={repo}", f"--type={kind}", "backup", timeout=settings.CELERY_TASK_TIME_LIMIT)
        return self.latest_backup()

    def verify(self) -> str:
        return self.run("verify", timeout=settings.CELERY_TASK_TIME_LIMIT).stdout.strip()

    def info(self) -> dict:
        result = self.run("--output=json", "info", timeout=120)
        data = json.loads(result.stdout or "[]")
        return next((s for s in data if s.get("name") == self.setup.stanza), {})

    def latest_backup(self) -> dict:
        backups = self.info().get("backup", [])
        return backups[-1] if backups else {}

    def earliest_consistent_time(self) -> datetime | None:
        return earliest_reachable(self.info())

    def restore(self, target_dir: Path, target_time: datetime | None) -> None:
        """Restore into TARGET_DIR (empty); recovery stops at target_time and promotes."""
        args = [f"--pg1-path={target_dir}", "--archive-mode=off", "--delta" if any(target_dir.iterdir()) else ""]
        if target_time is None:
            args += ["--type=default"]
        else:
            stamp = target_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
            args += ["--type=time", f"--target={stamp}", "--target-action=promote"]
        self.run(*[a for a in args if a], "restore", timeout=settings.CELERY_TASK_TIME_LIMIT)


def earliest_reachable(info: dict) -> datetime | None:
    """From `pgbackrest info` of a stanza: a restore can reach no earlier than
    the end of the oldest backup. pgBackRest keeps whole seconds and wants a
    backup that stopped before the target: the first reachable instant is the
    next second."""
    stops = [b["timestamp"]["stop"] for b in (info or {}).get("backup", []) if b.get("timestamp", {}).get("stop")]
    return datetime.fromtimestamp(min(stops) + 1, tz=UTC) if stops else None


def _allow_traverse(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents][:-1]:
        try:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
        except OSError:
            pass


def read_archiver(info: ConnInfo) -> Archiver:
    """pg_stat_archiver and the archive settings of the source server."""
    with connect(info) as conn:
        row = one_row(conn.execute(
            "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, "
            "last_failed_time, current_setting('archive_mode'), current_setting('archive_command') "
            "FROM pg_stat_archiver"))
    return Archiver(*row)


def discover(info: ConnInfo) -> dict:
    """Data directory, socket directory and version of the source server."""
    try:
        with connect(info) as conn:
            values = one_row(conn.execute(
                "SELECT current_setting('data_directory'), current_setting('unix_socket_directories'), "
                "current_setting('server_version_num')::int, current_setting('wal_level')"))
    except PgError:
        raise
    except Exception as exc:  # insufficient privilege to read data_directory
        raise PitrError(f"Cannot read the server's data directory (needs superuser or pg_read_all_settings): "
                        f"{type(exc).__name__}") from None
    data_directory, sockets, version, wal_level = values
    return {"data_directory": data_directory, "socket_directory": sockets.split(",")[0].strip(),
            "server_version": version, "wal_level": wal_level}
