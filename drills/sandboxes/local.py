"""Local sandboxes: initdb + pg_ctl into a temporary directory on a free
loopback port, tuned for bulk loading since the data is thrown away. The
directory holds the label (restorable-sandbox.json)."""

import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from django.conf import settings

from backups.pgtools import ConnInfo, ToolMissing, installed_majors
from drills.sandboxes.base import (
    SandboxError,
    SandboxInfo,
    free_port,
    in_use,
    job_running,
    new_label,
    owner_running,
    reapable,
    sandbox_info,
)

if TYPE_CHECKING:
    from controlpanel.jobs import Job

log = logging.getLogger("restorable.sandbox")

LABEL = "restorable-sandbox.json"

# Safe only because the cluster is thrown away: no crash safety, no WAL
# beyond what recovery of a crash we would never attempt needs.
BULK_LOAD_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "archive_mode": "off",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "1h",
    "maintenance_work_mem": "512MB",
    "work_mem": "64MB",
    "autovacuum": "off",
    "shared_buffers": "256MB",
    "max_parallel_maintenance_workers": "2",
    "jit": "off",
    "logging_collector": "off",
}

def sandbox_root() -> Path:
    root = Path(getattr(settings, "SANDBOX_DIR", None) or settings.DATA_DIR / "sandboxes")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # the postgres OS user must reach its data directory
    for parent in list(root.parents)[:-1]:
        _allow_traverse(parent)
    return root

def _allow_traverse(path: Path) -> None:
    """mkdtemp makes 0700 directories; the cluster's OS user needs +x on the way down."""
    try:
        mode = path.stat().st_mode
        if os.geteuid() == 0 and not mode & 0o001:
            os.chmod(path, mode | 0o001)
    except OSError:
        pass

def bin_dir(major: int) -> Path:
    path = Path(settings.PG_BIN_ROOT) / str(major) / "bin"
    if not (path / "initdb").exists() or not (path / "pg_ctl").exists():
        have = ", ".join(map(str, installed_majors())) or "none"
        raise ToolMissing(
            f"No PostgreSQL {major} server binaries (initdb, pg_ctl) for a sandbox "
            f"(installed majors: {have}): apt-get install postgresql-{major} "
            "(from the PGDG repository if your release lacks it), or set RESTORABLE_PG_BIN_ROOT. "
            "A sandbox must match the source's major version."
        )
    return path

def cluster_user() -> str | None:
    """initdb and postgres refuse root: run them as the postgres OS user then."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise SandboxError("Running as root needs a 'postgres' OS user for sandboxes (initdb refuses root).") from None
    return "postgres"

@dataclass
class Sandbox:
    major: int
    directory: Path
    port: int
    password: str = ""
    user: str = "postgres"
    host: str = "127.0.0.1"
    settings: dict = field(default_factory=dict)
    data_path: Path | None = None  # a data directory kept outside the sandbox (a PITR restore to a path)
    expires: float = 0.0

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def datadir(self) -> Path:
        return self.data_path or self.directory / "data"

    @property
    def bin(self) -> Path:
        return bin_dir(self.major)

    def conninfo(self, dbname: str = "postgres") -> ConnInfo:
        return ConnInfo(self.host, self.port, dbname, self.user, self.password, "disable")

    def run_as_owner(self, argv: list[str], **kwargs: Any) -> "subprocess.CompletedProcess[str]":
        user = cluster_user()
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, **kwargs)

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self.run_as_owner([str(self.bin / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
                              timeout=60)

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

def write_label(directory: Path, label: dict) -> None:
    tmp = directory / f".{LABEL}.tmp"
    tmp.write_text(json.dumps(label))
    tmp.replace(directory / LABEL)  # the reaper and the sandbox list never read half a label

def read_label(directory: Path) -> dict:
    try:
        return json.loads((directory / LABEL).read_text())
    except (OSError, ValueError):
        return {}

class LocalSandboxes:
    """initdb + pg_ctl in a temporary directory; about a second to create."""

    def create(self, major: int, *, password: str = "", ttl_seconds: int | None = None,
               extra_settings: dict | None = None, keep: bool = False,
               job: "Job | None" = None) -> Sandbox:
        """keep=True: the sandbox outlives this process until ttl_seconds (a restore
        handed to an admin); otherwise it dies with its owner."""
        binaries = bin_dir(major)
        user = cluster_user()
        directory = Path(tempfile.mkdtemp(prefix=f"pg{major}-", dir=sandbox_root()))
        os.chmod(directory, 0o755)
        label = new_label(major, ttl_seconds=ttl_seconds, keep=keep, job=job)
        write_label(directory, label)
        sandbox = Sandbox(major=major, directory=directory, port=0, password=password, expires=label["expires"])
        try:
            self._initdb(sandbox, binaries, user)
            self._start(sandbox, binaries, extra_settings or {})
        except BaseException:
            sandbox.remove()
            raise
        return sandbox

    def _initdb(self, sandbox: Sandbox, binaries: Path, user: str | None) -> None:
        sandbox.datadir.mkdir(mode=0o700)
        (sandbox.directory / "socket").mkdir(mode=0o755)
        argv = [str(binaries / "initdb"), "-D", str(sandbox.datadir), "-U", "postgres", "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync", "--auth-local=trust"]
        if sandbox.password:
            pwfile = sandbox.directory / "pwfile"
            pwfile.write_text(sandbox.password + "\n")
            argv += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            argv += ["--auth-host=trust"]
        if user:
            shutil.chown(sandbox.directory, user)
            for path in sandbox.directory.rglob("*"):
                shutil.chown(path, user)
        result = sandbox.run_as_owner(argv, timeout=120)
        if sandbox.password:
            (sandbox.directory / "pwfile").unlink(missing_ok=True)
        if result.returncode != 0:
            raise SandboxError(
                f"initdb for a PostgreSQL {sandbox.major} sandbox failed: {result.stderr.strip()[-800:]}")

    def _start(self, sandbox: Sandbox, binaries: Path, extra: dict, keep_existing: bool = False) -> None:
        """Start the cluster; keep_existing appends to a restored postgresql.auto.conf
        (pgBackRest writes its restore_command and recovery target there)."""
        socket_dir = sandbox.directory / "socket"
        # A Unix socket's path holds at most 107 bytes: under a deep data
        # directory the sandbox listens on TCP only (everything connects by TCP).
        sockets = f"'{socket_dir}'" if len(f"{socket_dir}/.s.PGSQL.65535") <= 107 else "''"
        conf = {**BULK_LOAD_SETTINGS, **extra, "listen_addresses": "'127.0.0.1'", "unix_socket_directories": sockets}
        auto_conf = sandbox.datadir / "postgresql.auto.conf"
        existing = auto_conf.read_text() if keep_existing and auto_conf.exists() else ""
        hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        for name, text in (("postgresql.conf", ""), ("pg_hba.conf", hba)):
            if not (sandbox.datadir / name).exists():  # Debian keeps them in /etc, outside the data directory
                (sandbox.datadir / name).write_text(text)
        log_text = ""
        for _attempt in range(3):
            sandbox.port = free_port()
            lines = [f"{k} = {v if str(v).startswith(chr(39)) else repr(str(v))}" for k, v in conf.items()]
            lines.append(f"port = {sandbox.port}")
            auto_conf.write_text(existing + "\n".join(lines) + "\n")
            result = sandbox.run_as_owner(
                [str(binaries / "pg_ctl"), "-D", str(sandbox.datadir), "-l", str(sandbox.directory / "server.log"),
                 "-w", "-t", "60", "start"], timeout=90)
            if result.returncode == 0:
                sandbox.settings = conf
                label = read_label(sandbox.directory)
                if label:
                    write_label(sandbox.directory, {**label, "port": sandbox.port})  # for the sandbox list
                return
            log_path = sandbox.directory / "server.log"
            log_text = log_path.read_text(errors="replace")[-800:] if log_path.exists() else result.stderr[-800:]
            if "could not bind" not in log_text and "Address already in use" not in log_text:
                break
        raise SandboxError(f"The PostgreSQL {sandbox.major} sandbox did not start: {log_text.strip()}")

def _owner_state(label: dict) -> bool | None:
    if not label:
        return False  # an unreadable label: nobody can claim the sandbox
    owner = label.get("owner_pid")
    return owner_running(owner, label.get("owner_started")) if isinstance(owner, int) else None

def remove_directory(directory: Path, major: int | None) -> None:
    sandbox = Sandbox(major=major, directory=directory, port=0) if major else None
    try:
        if sandbox is not None:
            sandbox.remove()
        else:
            shutil.rmtree(directory, ignore_errors=True)
    except (ToolMissing, subprocess.SubprocessError, OSError) as exc:
        log.warning("could not stop sandbox %s: %s", directory, exc)
        _kill_postmaster(directory / "data")  # the datadir of a sandbox directory (no data_path)
        shutil.rmtree(directory, ignore_errors=True)

def _kill_postmaster(datadir: Path) -> None:
    try:
        pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


def reap_directories(now: float) -> int:
    """Remove this host's sandbox directories that reapable() gives up."""
    removed = 0
    for label_path in sandbox_root().glob(f"*/{LABEL}"):
        info = read_label(label_path.parent)
        if not reapable(info, now, _owner_state(info), job_running(info.get("job", ""))):
            continue
        remove_directory(label_path.parent, info.get("major"))
        removed += 1
    return removed


def list_directories() -> list[SandboxInfo]:
    found = []
    for label_path in sandbox_root().glob(f"*/{LABEL}"):
        info = read_label(label_path.parent)
        busy = in_use(_owner_state(info), job_running(info.get("job", "")))
        found.append(sandbox_info(label_path.parent.name, "local", info, "127.0.0.1", busy))
    return found
