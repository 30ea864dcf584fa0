"""Point-in-time restores and PITR drills from the pgBackRest repository.

The restored cluster runs with archive_mode = off, so it never writes into
the source's archive, and is promoted at the target. The point actually
reached (the last replayed transaction) is reported, and a target that
cannot be reached fails loudly instead of restoring to some other point.
"""

import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from django.utils import timezone

from backups.models import PitrSetup
from backups.pgbackrest import PgBackRest, PitrError, _allow_traverse, chown_to_owner
from backups.pgtools import PgError, connect, one_value
from drills.sandboxes import LocalSandboxes, Sandbox, bin_dir, new_label, sandbox_root, write_label


def check_target(engine: PgBackRest, target: datetime | None) -> None:
    if target is None:
        return
    if target > timezone.now():
        raise PitrError(f"The target {target:%Y-%m-%d %H:%M:%S %Z} is in the future: nothing has been archived "
                        "for it yet.")
    earliest = engine.earliest_consistent_time()
    if earliest is None:
        raise PitrError("The repository holds no base backup yet: take one before restoring to a point in time.")
    if target < earliest:
        raise PitrError(f"The target {target:%Y-%m-%d %H:%M:%S %Z} is before the earliest point a restore can "
                        f"reach, the end of the oldest base backup ({earliest:%Y-%m-%d %H:%M:%S %Z}).")


def restore_to_sandbox(setup: PitrSetup, target: datetime | None, keep_seconds: int | None, keep: bool,
                       job=None) -> tuple:
    """Restore the stanza at TARGET into a new sandbox; returns (sandbox, recovered_to).
    keep_seconds None: as long as a job may run (drills.sandboxes.job_seconds)."""
    engine = PgBackRest(setup)
    check_target(engine, target)
    major = setup.database.server_major
    if not major:
        raise PitrError("The source server's version is unknown; back up once to detect it.")
    bin_dir(major)  # refuse early, with the install hint, when the binaries are missing
    directory = Path(tempfile.mkdtemp(prefix=f"pitr{major}-", dir=sandbox_root()))
    os.chmod(directory, 0o755)
    label = new_label(major, ttl_seconds=keep_seconds, keep=keep, job=job)
    write_label(directory, label)
    sandbox = Sandbox(major=major, directory=directory, port=0, expires=label["expires"])
    try:
        datadir = sandbox.datadir
        datadir.mkdir(mode=0o700)
        (directory / "socket").mkdir(mode=0o755)
        for path in (directory, datadir, directory / "socket"):
            chown_to_owner(path)
        engine.restore(datadir, target)
        start_restored(sandbox, target)
        recovered_to = replayed_until(sandbox)
    except BaseException:
        sandbox.remove()
        raise
    return sandbox, recovered_to


def start_restored(sandbox: Sandbox, target: datetime | None) -> None:
    """Start the restored cluster and wait until recovery has ended and it is promoted."""
    # hot_standby off: recovery then does not insist that max_connections and
    # friends be at least the source's, and nobody reads a half-recovered state.
    extra = {"archive_mode": "off", "wal_level": "replica", "max_wal_senders": "10", "hot_standby": "off"}
    try:
        LocalSandboxes()._start(sandbox, bin_dir(sandbox.major), extra, keep_existing=True)
    except PitrError:
        raise
    except Exception as exc:
        raise PitrError(explain_recovery_failure(sandbox, target, str(exc))) from None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            with connect(sandbox.conninfo()) as conn:
                if not one_value(conn.execute("SELECT pg_is_in_recovery()")):
                    return
        except PgError:
            if not (sandbox.datadir / "postmaster.pid").exists():
                # The connection error only says the server is gone; the log says why.
                raise PitrError(
                    explain_recovery_failure(sandbox, target, "The restored cluster stopped during recovery.")
                ) from None
        time.sleep(0.2)
    raise PitrError("The restored cluster did not finish recovery within 10 minutes.")


def explain_recovery_failure(sandbox: Sandbox, target: datetime | None, fallback: str) -> str:
    server_log = sandbox.directory / "server.log"
    log = server_log.read_text(errors="replace") if server_log.exists() else ""
    if "recovery ended before configured recovery target was reached" in log:
        return (f"The target {target:%Y-%m-%d %H:%M:%S %Z} is after the last archived WAL: recovery ran out of "
                "WAL before reaching it (PostgreSQL stops at the first commit after the target, so that commit "
                "must be archived; on a quiet database wait for archive_timeout). Nothing was restored to another "
                "point." if target else "Recovery ran out of WAL before reaching its target.")
    return fallback


def replayed_until(sandbox: Sandbox) -> datetime | None:
    with connect(sandbox.conninfo()) as conn:
        return one_value(conn.execute("SELECT pg_last_xact_replay_timestamp()"))


def remove_sandbox(sandbox: Sandbox) -> None:
    sandbox.remove()  # stops the cluster and removes its directory


def restore_to_directory(setup: PitrSetup, target: datetime | None, path: Path) -> datetime | None:
    """Restore into a new data directory on this host: recovered, promoted at the
    target, archive_mode off, then stopped, for the operator to start where it
    belongs. Returns the last replayed commit's time."""
    engine = PgBackRest(setup)
    check_target(engine, target)
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise PitrError(f"{path} is not empty: a restore never writes over existing files.")
    major = setup.database.server_major
    if not major:
        raise PitrError("The source server's version is unknown; back up once to detect it.")
    binaries = bin_dir(major)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    chown_to_owner(path)
    _allow_traverse(path.parent)  # the cluster's OS user must reach it
    work = Path(tempfile.mkdtemp(prefix=f"pitr-dir{major}-", dir=sandbox_root()))
    os.chmod(work, 0o755)
    (work / "socket").mkdir(mode=0o755)
    chown_to_owner(work)  # pg_ctl writes its log there as the cluster's owner
    chown_to_owner(work / "socket")
    sandbox = Sandbox(major=major, directory=work, port=0, data_path=path)  # runs from its final place
    try:
        engine.restore(path, target)
        # The bulk-load settings and the sandbox's port and trust rules are for
        # this check only: put the restored configuration back afterwards.
        auto_conf = (path / "postgresql.auto.conf").read_text()
        missing = [name for name in ("postgresql.conf", "pg_hba.conf") if not (path / name).exists()]
        start_restored(sandbox, target)
        recovered_to = replayed_until(sandbox)
        sandbox.run_as_owner([str(binaries / "pg_ctl"), "-D", str(path), "-m", "fast", "-w", "stop"], timeout=120)
        (path / "postgresql.auto.conf").write_text(auto_conf)
        chown_to_owner(path / "postgresql.auto.conf")
        for name in missing:
            (path / name).unlink(missing_ok=True)
    except BaseException:
        sandbox.run_as_owner([str(binaries / "pg_ctl"), "-D", str(path), "-m", "immediate", "-w", "stop"],
                             timeout=120)
        # The directory was empty or new: leave it so, not half-restored.
        for child in path.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return recovered_to
