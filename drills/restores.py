"""Admin-triggered restores: into a sandbox kept for some hours, or into a
new database on a registered server; whole dumps or chosen tables/schemas.

An existing database is never dropped or overwritten unless the admin typed
its name to confirm.
"""

import secrets
import time as _time
from datetime import UTC, datetime
from pathlib import Path

from backups.models import PitrSetup
from backups.pgtools import ConnInfo
from controlpanel.jobs import Status
from controlpanel.models import AuditEvent
from drills.fetch import Staging, fetch_dump
from drills.models import Restore
from drills.pgrestore import RestoreFailed, create_database, database_exists, drop_database, pg_restore, restore_args
from drills.pitr import restore_to_directory, restore_to_sandbox
from drills.sandboxes import backend as sandbox_backend


def target_server(restore: Restore) -> ConnInfo:
    if restore.target_dsn:
        return ConnInfo.from_dsn(restore.target_dsn)
    return ConnInfo.of(restore.target_database or restore.database)


def check_overwrite(restore: Restore) -> bool:
    """True when the target exists and the admin confirmed; raises when not confirmed."""
    server = target_server(restore)
    if not database_exists(server, restore.target_dbname):
        return False
    if restore.confirmation != restore.target_dbname:
        raise RestoreFailed(
            f"Database {restore.target_dbname!r} already exists on {server.host}:{server.port}; it is only "
            "overwritten when its name is typed to confirm."
        )
    return True


def run_restore(restore: Restore) -> dict:
    """The body of a restore job (see controlpanel.jobs.run_job)."""
    if restore.pitr:
        return run_pitr_restore(restore)
    run = restore.source_run
    if run is None:
        raise RestoreFailed("Choose a backup to restore.")
    major = restore.database.server_major
    if not major:
        raise RestoreFailed("The source server's version is unknown; back up once to detect it.")
    selection = restore_args(restore.tables, restore.schemas)
    with Staging() as staging:
        restore.beat(phase="download")
        fetched = fetch_dump(run, staging)
        restore.beat(phase="restore")
        if restore.target == Restore.Target.SANDBOX:
            fields = restore_into_sandbox(restore, fetched.path, major, selection)
        else:
            fields = restore_into_database(restore, fetched.path, major, selection)
    AuditEvent.record("restore.finished", f"Restore #{restore.pk} of {restore.database} finished",
                      obj=restore, user=restore.requested_by, result=Status.SUCCEEDED, storage=fetched.storage.name)
    return {"phase": "done", **fields}


def restore_into_sandbox(restore: Restore, dump, major: int, selection: list[str]) -> dict:
    password = secrets.token_urlsafe(18)
    sandbox = sandbox_backend().create(major, password=password, ttl_seconds=restore.keep_hours * 3600, keep=True,
                                       job=restore)
    try:
        dbname = restore.database.dbname
        create_database(sandbox.conninfo(), dbname)
        pg_restore(dump, sandbox.conninfo(dbname), major, selection=selection)
    except BaseException:
        sandbox.remove()
        raise
    return {
        "connection": {"host": sandbox.host, "port": sandbox.port, "dbname": dbname, "user": sandbox.user},
        "one_time_password": password,
        "expires": datetime.fromtimestamp(sandbox.expires, UTC),  # what the reaper goes by
        # Where it lives on the drills host: the directory (local) or the container's name (docker).
        "details": {**restore.details, "sandbox": str(getattr(sandbox, "directory", "") or sandbox.name)},
    }


def restore_into_database(restore: Restore, dump, major: int, selection: list[str]) -> dict:
    server = target_server(restore)
    overwrite = check_overwrite(restore)
    create_database(server, restore.target_dbname, drop_existing=overwrite)
    try:
        pg_restore(dump, ConnInfo(server.host, server.port, restore.target_dbname, server.user, server.password,
                                  server.sslmode), major, selection=selection)
    except BaseException as exc:
        # Never leave a half-restored database behind that could pass for a good one.
        dropped = drop_database(server, restore.target_dbname)
        if isinstance(exc, RestoreFailed):
            note = "the half-restored database was dropped" if dropped else "the half-restored database is still there"
            raise RestoreFailed(f"{exc} ({restore.target_dbname!r}: {note}.)") from None
        raise
    return {"connection": {"host": server.host, "port": server.port, "dbname": restore.target_dbname,
                           "user": server.user, "overwrote": overwrite}}


def take_password(restore: Restore) -> str:
    """The sandbox password, once: reading it erases it."""
    password = restore.one_time_password
    if password:
        Restore.objects.filter(pk=restore.pk).update(one_time_password="")
    return password


def run_pitr_restore(restore: Restore) -> dict:
    """A point-in-time restore into a sandbox kept for restore.keep_hours."""
    setup = PitrSetup.objects.filter(database=restore.database, enabled__isnull=False).first()
    if setup is None:
        raise RestoreFailed(f"PITR is not enabled for {restore.database}.")
    started = _time.monotonic()
    restore.beat(phase="pgbackrest restore")
    if restore.details.get("datadir"):

        recovered_to = restore_to_directory(setup, restore.pitr_target, Path(restore.details["datadir"]))
        AuditEvent.record("restore.finished", f"PITR restore #{restore.pk} of {restore.database} into "
                          f"{restore.details['datadir']} finished", obj=restore, user=restore.requested_by,
                          result=Status.SUCCEEDED, recovered_to=recovered_to.isoformat() if recovered_to else None)
        return {"phase": "done", "recovered_to": recovered_to,
                "details": {**restore.details, "rto_seconds": round(_time.monotonic() - started, 3)}}
    sandbox, recovered_to = restore_to_sandbox(setup, restore.pitr_target, restore.keep_hours * 3600, keep=True,
                                               job=restore)
    AuditEvent.record("restore.finished", f"PITR restore #{restore.pk} of {restore.database} finished", obj=restore,
                      user=restore.requested_by, result=Status.SUCCEEDED,
                      recovered_to=recovered_to.isoformat() if recovered_to else None)
    return {
        "phase": "done", "recovered_to": recovered_to,
        "connection": {"host": sandbox.host, "port": sandbox.port, "dbname": restore.database.dbname,
                       "user": restore.database.user},
        "expires": datetime.fromtimestamp(sandbox.expires, UTC),
        "details": {**restore.details, "sandbox": str(sandbox.directory),
                    "rto_seconds": round(_time.monotonic() - started, 3)},
    }
